"""The route file: the documented shape loads; every error names the route or destination and the field."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ghingest.app.metrics import Metrics
from ghingest.app.routes_config import Routes, RoutesError, parse_routes
from ghingest.app.samples import release_payload
from ghingest.core.delivery import ContentKind
from ghingest.core.routing import build_forward
from tests.destinations import readme_routes_example

EXAMPLE = """
[[destinations]]
name = "ci"
url = "https://ci.internal/hooks/github"
secret = "s3cr3t-for-ci"

[[destinations]]
name = "chat"
url = "https://chat.internal/hooks/abc"
secret_env = "CHAT_HOOK_SECRET"
headers = { "X-Team" = "platform" }
timeout = 5
concurrency = 2
retry = { max_attempts = 5, base_delay = 2, max_delay = 60, max_age = 3600 }

[[routes]]
name = "releases-to-ci"
events = ["release"]
destinations = ["ci"]

[[routes]]
name = "published-to-chat"
events = ["release"]
actions = ["published"]
repositories = ["acme/*"]
when = "release.prerelease == `false`"
template = '{"text": {{ "New release " ~ payload.release.tag_name }}}'
destinations = ["chat"]
"""


def test_the_documented_example_loads() -> None:
    table = parse_routes(EXAMPLE, environ={"CHAT_HOOK_SECRET": "from-the-environment"})
    assert set(table.destinations) == {"ci", "chat"}
    chat = table.destinations["chat"]
    assert chat.secret == b"from-the-environment"
    assert (chat.timeout, chat.concurrency, chat.retry.max_attempts, chat.retry.max_age) == (5, 2, 5, 3600)
    assert dict(chat.headers) == {"X-Team": "platform"}
    assert [r.name for r in table.routes] == ["releases-to-ci", "published-to-chat"]
    assert "s3cr3t" not in repr(table)


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(RoutesError) as caught:
        parse_routes(text, environ=environ or {})
    assert "s3cr3t" not in str(caught.value)
    return caught.value.problems


def test_a_missing_secret_env_names_the_destination_and_field() -> None:
    assert problems(EXAMPLE) == [
        "destination 'chat': secret_env: environment variable CHAT_HOOK_SECRET is not set or empty"
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('url = "https://ci.internal/hooks/github"', 'url = "ci.internal"'), "destination 'ci': url: "),
        (('destinations = ["ci"]', 'destinations = ["cd"]'), "route 'releases-to-ci': destinations: no destination"),
        (('events = ["release"]\ndestinations', 'events = "x"\ndestinations'), "route 'releases-to-ci': events: "),
        (("when = \"release.prerelease == `false`\"", 'when = "release.[["'), "route 'published-to-chat': when: "),
        (("payload.release.tag_name }}", "payload.release.tag_name"), "route 'published-to-chat': template: "),
        (('{{ "New release " ~ payload.release.tag_name }}', '"New release {{ payload.release.tag_name }}"'),
         "route 'published-to-chat': template: line 1: an interpolation inside a JSON string"),
        (('secret = "s3cr3t-for-ci"', 'secret = "s3cr3t-for-ci"\ncolour = "red"'), "destination 'ci': colour: "),
        (('secret = "s3cr3t-for-ci"', "secret = 12345678"), "destination 'ci': secret: "),
        (('secret = "s3cr3t-for-ci"', ""), "destination 'ci': secret: set exactly one"),
        (("concurrency = 2", "concurrency = 0"), "destination 'chat': concurrency: "),
        (('"X-Team" = "platform"', '"X-Hub-Signature-256" = "x"'), "destination 'chat': headers: "),
        (('name = "ci"', 'name = "chat"'), "destination 'chat': name: another destination"),
    ],
)  # fmt: skip
def test_errors_name_the_entry_and_the_field(change: tuple[str, str], expected: str) -> None:
    text = EXAMPLE.replace(*change, 1)
    found = problems(text, environ={"CHAT_HOOK_SECRET": "x"})
    assert any(p.startswith(expected) for p in found), found


def test_not_toml() -> None:
    assert problems("[[routes]\nname =")[0].startswith("not valid TOML")


def test_a_bad_reload_keeps_the_running_table(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(EXAMPLE.replace('secret_env = "CHAT_HOOK_SECRET"', 'secret = "chat-secret"'))
    metrics = Metrics()
    routes = Routes(path, metrics=metrics)
    running = routes.current()
    path.write_text(EXAMPLE.replace('destinations = ["ci"]', 'destinations = ["gone"]'))
    assert routes.changed()
    assert routes.reload() is False
    assert routes.current() is running
    assert routes.last_error is not None
    assert "route 'releases-to-ci': destinations" in routes.last_error
    assert metrics.routes_reloads.labels("error")._value.get() == 1
    path.write_text("")
    assert routes.reload() is True
    assert routes.current().routes == ()
    assert routes.last_error is None


def test_an_invalid_file_at_start_raises(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text('[[routes]]\nname = "r"\ndestinations = ["x"]\n')
    with pytest.raises(RoutesError, match="route 'r': destinations"):
        Routes(path, metrics=Metrics())
    with pytest.raises(RoutesError, match="cannot read"):
        Routes(tmp_path / "missing.toml", metrics=Metrics())


def test_the_readme_route_file_example_loads_and_its_template_is_safe_from_injection() -> None:
    table = parse_routes(readme_routes_example(), environ={"CHAT_HOOK_SECRET": "from-the-environment"})
    assert set(table.destinations) == {"ci", "chat"}
    assert [r.name for r in table.routes] == ["releases-to-ci", "published-releases-to-chat"]
    assert table.destinations["chat"].proxy == "http://proxy.internal:3128"
    assert table.destinations["ci"].ca_bundle is None  # commented out in the example: a file that must exist
    template = table.routes[1].template
    assert template is not None
    # A release tag that tries to add fields to the chat message stays inside the text.
    tag = 'v1", "admin": true, "x": "'
    payload = release_payload(tag=tag, repository_name="acme/api")
    out = build_forward(table.destinations["chat"], delivery_id="d-1", event="release", content_kind=ContentKind.JSON,
                        headers={}, body=orjson.dumps(payload), template=template)  # fmt: skip
    document = orjson.loads(out.body)
    assert set(document) == {"text"}
    assert document["text"] == f"New release {tag} of acme/api: {payload['release']['html_url']}"


HTTPS_CI = """
[[destinations]]
name = "ci"
url = "https://ci.internal/hooks/github"
secret = "s3cr3t-for-ci"
{extra}

[[destinations]]
name = "plain"
url = "http://plain.internal/hook"
secret = "s3cr3t-for-plain"
"""


def test_a_ca_bundle_is_read_relative_to_the_route_file_and_checked_at_load(tmp_path: Path) -> None:
    from tests.destinations import certificates

    tls = certificates(tmp_path)
    path = tmp_path / "routes.toml"
    path.write_text(HTTPS_CI.format(extra='ca_bundle = "ca.pem"'))
    table = Routes(path, metrics=Metrics()).current()
    assert table.destinations["ci"].ca_bundle == str(tls.ca_bundle)
    assert table.destinations["plain"].ca_bundle is None
    path.write_text(HTTPS_CI.format(extra='ca_bundle = "missing.pem"'))
    with pytest.raises(RoutesError) as caught:
        Routes(path, metrics=Metrics())
    assert caught.value.problems == [
        "destination 'ci': ca_bundle: cannot be used as a CA bundle: No such file or directory"
    ]
    path.write_text(HTTPS_CI.format(extra='ca_bundle = "routes.toml"'))  # a file without certificates
    with pytest.raises(RoutesError, match="destination 'ci': ca_bundle: cannot be used as a CA bundle: no PEM"):
        Routes(path, metrics=Metrics())


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('proxy = "https://proxy.internal:3128"', "destination 'ci': proxy: must be an http:// proxy URL"),
        ('proxy = "http://u:s3cr3t@proxy.internal:3128/path"', "destination 'ci': proxy: must be a proxy URL"),
        ('proxy = "http://u:s3cr3t@proxy.internal:99999"', "destination 'ci': proxy: must be a proxy URL"),
        ('proxy = "proxy.internal:3128"', "destination 'ci': proxy: must be an http:// proxy URL"),
    ],
)
def test_a_bad_proxy_names_the_destination_and_never_its_value(extra: str, expected: str) -> None:
    found = problems(HTTPS_CI.format(extra=extra))
    assert len(found) == 1
    assert found[0].startswith(expected), found
    assert "proxy.internal" not in found[0]


def test_a_ca_bundle_on_an_http_destination_is_refused() -> None:
    text = HTTPS_CI.format(extra="").replace('secret = "s3cr3t-for-plain"', 'secret = "x"\nca_bundle = "/x.pem"')
    assert problems(text) == [
        "destination 'plain': ca_bundle: only an https:// destination is verified; remove it or use https://"
    ]


def test_the_settings_give_the_defaults_and_a_destination_overrides_them(tmp_path: Path) -> None:
    from ghingest.app.routes_config import TransportDefaults
    from ghingest.app.settings import load_settings
    from tests.destinations import certificates

    tls = certificates(tmp_path)
    settings = load_settings(forward_proxy="http://u:s3cr3t@proxy.internal:3128", forward_ca_bundle=tls.ca_bundle)
    defaults = TransportDefaults.from_settings(settings)
    assert "s3cr3t" not in repr(defaults)
    table = parse_routes(HTTPS_CI.format(extra=""), defaults=defaults)
    ci, plain = table.destinations["ci"], table.destinations["plain"]
    assert (ci.ca_bundle, ci.proxy) == (str(tls.ca_bundle), "http://u:s3cr3t@proxy.internal:3128")
    assert (plain.ca_bundle, plain.proxy) == (None, "http://u:s3cr3t@proxy.internal:3128")  # a bundle: https only
    assert "s3cr3t" not in repr(table)
    direct = parse_routes(HTTPS_CI.format(extra='proxy = ""'), defaults=defaults)
    assert direct.destinations["ci"].proxy is None  # "": a direct connection, whatever the default
    own = parse_routes(HTTPS_CI.format(extra='proxy = "http://other:8080"'), defaults=defaults)
    assert own.destinations["ci"].proxy == "http://other:8080"
    assert TransportDefaults.from_settings(load_settings()) == TransportDefaults()


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("forward_proxy", "https://u:s3cr3t@proxy:1", "GHINGEST_FORWARD_PROXY: Value error, must be an http://"),
        ("forward_ca_bundle", "/nonexistent/ca.pem", "GHINGEST_FORWARD_CA_BUNDLE: Value error, cannot be used as"),
    ],
)
def test_invalid_transport_settings_name_the_setting(setting: str, value: str, expected: str) -> None:
    from ghingest.app.settings import ConfigError, load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings(**{setting: value})
    assert expected in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
