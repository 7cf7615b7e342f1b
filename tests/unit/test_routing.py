"""Routing: matching, the outgoing request (kept headers, form → JSON, re-signed) and sandboxed templates."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from ghingest.app.samples import release_payload
from ghingest.core import signature
from ghingest.core.delivery import ContentKind
from ghingest.core.routing import (
    Destination,
    ForwardBuildError,
    ForwardTarget,
    Route,
    RouteTable,
    RoutingError,
    build_forward,
    compile_condition,
    compile_template,
)

SECRET = b"destination-secret"
DEST = Destination(name="ci", url="https://ci.internal/hooks/github", secret=SECRET, headers={"X-Team": "a"})


def table(*routes: Route) -> RouteTable:
    names = {name for route in routes for name in route.destinations}
    return RouteTable(
        destinations={n: Destination(name=n, url=f"https://{n}.internal/", secret=SECRET) for n in names},
        routes=routes,
    )


def match(t: RouteTable, event: str = "release", action: str | None = "published",
          repository: str | None = "acme/api", payload: dict[str, Any] | None = None) -> list[str]:  # fmt: skip
    found = t.match(event=event, action=action, repository=repository, payload=payload or {})
    return [target.destination for target in found]


def test_a_route_matches_on_event_action_and_repository_glob() -> None:
    t = table(
        Route(
            name="r",
            destinations=("ci",),
            events=frozenset({"release"}),
            actions=frozenset({"published"}),
            repositories=("acme/*", "other/exact"),
        )
    )
    assert match(t) == ["ci"]
    assert match(t, repository="ACME/Web") == ["ci"]  # GitHub names are case-insensitive
    assert match(t, repository="other/exact") == ["ci"]
    assert match(t, event="push") == []
    assert match(t, action="created") == []
    assert match(t, repository="acmeco/api") == []
    assert match(t, repository=None) == []


def test_empty_filters_match_everything() -> None:
    t = table(Route(name="all", destinations=("log",)))
    assert match(t, event="push", action=None, repository=None) == ["log"]


def test_a_condition_on_payload_fields() -> None:
    t = table(Route(name="r", destinations=("ci",), when=compile_condition("release.prerelease == `false`")))
    assert match(t, payload=release_payload(prerelease=False)) == ["ci"]
    assert match(t, payload=release_payload(prerelease=True)) == []
    assert match(t, payload={}) == []


def test_condition_truthiness_follows_jmespath() -> None:
    t = table(Route(name="r", destinations=("ci",), when=compile_condition("labels")))
    assert match(t, payload={"labels": ["x"]}) == ["ci"]
    for empty in ([], {}, "", None, False):
        assert match(t, payload={"labels": empty}) == []


def test_each_destination_once_and_the_first_route_wins() -> None:
    t = table(
        Route(name="first", destinations=("ci", "chat")),
        Route(name="second", destinations=("chat", "audit")),
    )
    found = t.match(event="release", action="published", repository="a/b", payload={})
    assert found == (
        ForwardTarget("ci", "first"),
        ForwardTarget("chat", "first"),
        ForwardTarget("audit", "second"),
    )


def test_invalid_conditions_and_templates_fail_at_load() -> None:
    with pytest.raises(RoutingError, match="JMESPath"):
        compile_condition("release.[[[")
    with pytest.raises(RoutingError, match="syntax error"):
        compile_template("{{ payload.release.tag_name ")


def github_headers(content_type: str = "application/json") -> dict[str, str]:
    return {
        "content-type": content_type,
        "user-agent": "GitHub-Hookshot/abc",
        "x-github-event": "release",
        "x-github-delivery": "d-1",
        "x-github-hook-id": "424242",
        "x-github-hook-installation-target-id": "186853002",
        "x-github-hook-installation-target-type": "repository",
        "x-hub-signature": "sha1=0000000000000000000000000000000000000000",
        "x-hub-signature-256": "sha256=" + "0" * 64,
        "authorization": "never forwarded",
    }


def test_the_forward_keeps_the_exact_body_and_githubs_headers_and_is_re_signed() -> None:
    body = orjson.dumps(release_payload())
    out = build_forward(DEST, delivery_id="d-1", event="release", content_kind=ContentKind.JSON,
                        headers=github_headers(), body=body)  # fmt: skip
    assert out.url == DEST.url
    assert out.body == body
    assert signature.verify(out.body, signature_256=out.headers["X-Hub-Signature-256"], secrets=[SECRET]) == 0
    assert out.headers["X-GitHub-Event"] == "release"
    assert out.headers["X-GitHub-Delivery"] == "d-1"
    assert out.headers["X-GitHub-Hook-ID"] == "424242"
    assert out.headers["X-GitHub-Hook-Installation-Target-ID"] == "186853002"
    assert out.headers["X-GitHub-Hook-Installation-Target-Type"] == "repository"
    assert out.headers["Content-Type"] == "application/json"
    assert out.headers["X-Team"] == "a"
    lowered = {name.lower() for name in out.headers}
    assert "x-hub-signature" not in lowered
    assert "authorization" not in lowered


def test_a_form_delivery_goes_out_as_its_json_payload() -> None:
    payload = orjson.dumps(release_payload())
    form = urlencode({"payload": payload.decode()}).encode()
    out = build_forward(DEST, delivery_id="d-1", event="release", content_kind=ContentKind.FORM,
                        headers=github_headers("application/x-www-form-urlencoded"), body=form)  # fmt: skip
    assert out.body == payload
    assert out.headers["Content-Type"] == "application/json"
    assert signature.verify(out.body, signature_256=out.headers["X-Hub-Signature-256"], secrets=[SECRET]) == 0


def forward_with(template: str, payload: dict[str, Any] | None = None) -> bytes:
    body = orjson.dumps(payload if payload is not None else release_payload(tag="v2.0.0"))
    return build_forward(DEST, delivery_id="d-1", event="release", content_kind=ContentKind.JSON,
                         headers=github_headers(), body=body, template=compile_template(template)).body  # fmt: skip


def test_a_template_shapes_a_chat_message() -> None:
    out = forward_with(
        '{"text": {{ "New release " ~ payload.release.tag_name ~ " of " ~ repository }},'
        ' "url": {{ payload.release.html_url | json }}, "event": {{ event }}}'
    )
    document = orjson.loads(out)
    assert document["text"] == "New release v2.0.0 of octo-org/octo-repo"
    assert document["url"].startswith("https://github.com/")
    assert document["event"] == "release"


INJECTION = 'v1", "admin": true, "x": "'


def test_every_interpolation_is_a_json_value_so_a_payload_cannot_add_fields() -> None:
    payload = release_payload(tag=INJECTION)
    out = forward_with('{"text": {{ "Release " ~ payload.release.tag_name }}, "tag": {{ payload.release.tag_name }}}',
                       payload)  # fmt: skip
    document = orjson.loads(out)
    assert set(document) == {"text", "tag"}
    assert document == {"text": "Release " + INJECTION, "tag": INJECTION}


def test_values_keep_their_json_types_and_the_json_filter_is_not_applied_twice() -> None:
    payload = {"n": 3, "ok": True, "none": None, "labels": [{"name": "bug"}, {"name": 'say "hi"'}]}
    template = (
        '{"n": {{ payload.n }}, "ok": {{ payload.ok }}, "none": {{ payload.none }}, "sum": {{ payload.n + 1 }},'
        ' "labels": {{ payload.labels | map(attribute="name") | list }}, "json": {{ payload.labels | json }},'
        ' "tojson": {{ payload.n | tojson }}, "names": [{% for l in payload.labels %}{{ l.name }}'
        '{% if not loop.last %}, {% endif %}{% endfor %}], "text": "a \\" {} {%- if true %} b {% endif %}"}'
    )
    assert orjson.loads(forward_with(template, payload)) == {
        "n": 3, "ok": True, "none": None, "sum": 4, "labels": ["bug", 'say "hi"'],
        "json": payload["labels"], "tojson": 3, "names": ["bug", 'say "hi"'], "text": 'a " {} b ',
    }  # fmt: skip


@pytest.mark.parametrize(
    ("template", "line"),
    [
        ('{"text": "New release {{ payload.release.tag_name }}"}', 1),
        ('{\n  "a": {{ event }},\n  "b": "x \\" {{ event }}"\n}', 3),
        ('{"{{ event }}": 1}', 1),
    ],
)
def test_an_interpolation_inside_a_json_string_is_refused_at_load(template: str, line: int) -> None:
    with pytest.raises(RoutingError, match=f"^line {line}: an interpolation inside a JSON string"):
        compile_template(template)


def test_text_that_only_looks_like_a_string_is_accepted() -> None:
    # Quotes in comments, in {% %} blocks and in expressions are not the template's text; an escaped quote does not
    # close a string.
    compile_template('{# "a #}{"a": {{ "x\\"" ~ event }}, "b": "\\"", "c": {% if "q" %}{{ 1 }}{% endif %}}')


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ payload.__class__.__init__.__globals__ }}",
        "{{ payload.release.update({'x': 1}) }}",
        "{% for i in range(10**9) %}{% endfor %}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ],
)
def test_the_template_sandbox_refuses_code(template: str) -> None:
    with pytest.raises(ForwardBuildError):
        forward_with(template)


def test_a_template_must_produce_json_and_name_existing_fields() -> None:
    with pytest.raises(ForwardBuildError, match="not valid JSON"):
        forward_with("New release {{ payload.release.tag_name }}")
    with pytest.raises(ForwardBuildError, match="template failed"):
        forward_with('{"x": {{ payload.nothing.here }}}')
