"""Configuration is validated once; an error names the setting; secrets never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghingest.adapters.factory import UnsupportedBackend, open_github_api
from ghingest.app.credentials import api_tokens, webhook_secrets
from ghingest.app.settings import ConfigError, load_settings


def test_defaults_are_the_embedded_profile() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///./data/ghingest.db"
    assert settings.sqlite_synchronous == "FULL"
    assert settings.allow_sha1_signatures is False


def test_http_limits_default_to_bounded_values() -> None:
    s = load_settings()
    assert (s.http_header_timeout, s.http_body_timeout, s.http_keep_alive_timeout) == (10.0, 20.0, 5.0)
    assert (s.http_max_header_bytes, s.http_max_headers) == (64 * 1024, 100)
    assert (s.http_max_connections, s.http_backlog, s.http_max_form_bytes) == (1000, 2048, 64 * 1024)


def test_comma_separated_secrets_and_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHINGEST_WEBHOOK_SECRETS", "first-secret, second-secret")
    monkeypatch.setenv("GHINGEST_API_TOKENS", "token-number-one")
    settings = load_settings()
    assert [s.get_secret_value() for s in settings.webhook_secrets] == ["first-secret", "second-secret"]
    assert "first-secret" not in repr(settings)
    assert "token-number-one" not in str(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GHINGEST_PORT", "eighty"),
        ("GHINGEST_SQLITE_SYNCHRONOUS", "OFF"),
        ("GHINGEST_DATABASE_URL", "mysql://x"),
        ("GHINGEST_WORKER_BATCH_SIZE", "0"),
        ("GHINGEST_SSO_DEFAULT_ROLE", "admin"),
        ("GHINGEST_SIGN_IN_USER_BURST", "0"),
        ("GHINGEST_PASSWORD_HASH_THREADS", "0"),
        ("GHINGEST_TRUSTED_PROXIES", "10.0.0.0/8, not-an-address"),
        ("GHINGEST_HTTP_HEADER_TIMEOUT", "0"),
        ("GHINGEST_HTTP_BODY_TIMEOUT", "-1"),
        ("GHINGEST_HTTP_KEEP_ALIVE_TIMEOUT", "forever"),
        ("GHINGEST_HTTP_MAX_HEADER_BYTES", "100"),
        ("GHINGEST_HTTP_MAX_HEADERS", "5"),
        ("GHINGEST_HTTP_MAX_CONNECTIONS", "0"),
        ("GHINGEST_HTTP_BACKLOG", "0"),
        ("GHINGEST_HTTP_MAX_FORM_BYTES", "10"),
    ],
)
def test_an_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_sign_in_hardening_defaults_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.sso_default_role == "viewer"
    assert settings.sso_operators == ()
    assert (settings.sign_in_user_burst, settings.sign_in_user_interval) == (5, 60.0)
    assert (settings.sign_in_client_burst, settings.sign_in_client_interval) == (20, 6.0)
    assert (settings.password_hash_threads, settings.password_hash_queue) == (1, 4)
    assert settings.session_revocation_cache == 1.0
    monkeypatch.setenv("GHINGEST_SSO_OPERATORS", "alice@example.com, bob@example.com")
    assert load_settings().sso_operators == ("alice@example.com", "bob@example.com")


def test_a_short_secret_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHINGEST_WEBHOOK_SECRETS", "short")
    with pytest.raises(ConfigError, match="GHINGEST_WEBHOOK_SECRETS") as caught:
        load_settings()
    assert "short" not in str(caught.value).replace("shorter", "")


def test_toml_file_and_environment_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ghingest.toml"
    config.write_text('port = 9000\nhost = "127.0.0.2"\n', encoding="utf-8")
    monkeypatch.setenv("GHINGEST_CONFIG_FILE", str(config))
    monkeypatch.setenv("GHINGEST_PORT", "9100")
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.2", 9100)


def test_a_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GHINGEST_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="GHINGEST_CONFIG_FILE"):
        load_settings()


def test_secrets_file_one_per_line(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text("# rotated 2024-05\nnew-secret-value\nold-secret-value\n", encoding="utf-8")
    credential = webhook_secrets(load_settings(webhook_secrets_file=path), generate=False)
    assert credential.values == ("new-secret-value", "old-secret-value")
    assert "new-secret-value" not in repr(credential)


def test_secrets_file_skips_indented_comments_and_refuses_short_secrets(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text("  # an indented comment\n\t#another\n   new-secret-value  \n", encoding="utf-8")
    credential = webhook_secrets(load_settings(webhook_secrets_file=path), generate=False)
    assert credential.values == ("new-secret-value",)
    path.write_text("# fine\nnew-secret-value\nabc\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"GHINGEST_WEBHOOK_SECRETS_FILE.*line 3.*at least 8") as caught:
        webhook_secrets(load_settings(webhook_secrets_file=path), generate=False)
    assert "abc" not in str(caught.value).replace(str(path), "")


def test_a_generated_secret_is_strong_private_and_stable(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first = webhook_secrets(settings, generate=True)
    assert first.generated
    assert len(first.values[0]) >= 32
    assert (tmp_path / "webhook-secret").stat().st_mode & 0o777 == 0o600
    again = webhook_secrets(settings, generate=True)
    assert again.values == first.values
    assert not again.generated
    assert api_tokens(settings, generate=True).values != first.values


def test_without_a_secret_and_without_generation_it_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no webhook secret"):
        webhook_secrets(load_settings(data_dir=tmp_path), generate=False)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cr%40t@db.internal:5432/ghingest", "postgresql://app:***@db.internal:5432/ghingest"),
        ("postgresql://app@db/ghingest", "postgresql://app@db/ghingest"),
        ("sqlite:///./data/ghingest.db", "sqlite:///./data/ghingest.db"),
        ("postgresql://app:pw@db:notaport/x", "postgresql://…"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    from ghingest.app.settings import without_password

    assert without_password(url) == shown


def test_scale_out_settings() -> None:
    settings = load_settings(database_url="postgresql://app@db/ghingest", bus_url="nats://a:4222, nats://b:4222")
    assert settings.bus_url == ("nats://a:4222", "nats://b:4222")
    with pytest.raises(ConfigError, match="GHINGEST_BUS_URL"):
        load_settings(bus_url="http://a:4222")
    with pytest.raises(ConfigError, match="GHINGEST_DATABASE_URL"):
        load_settings(database_url="mysql://db/x")


def test_the_webhook_source_allow_list_is_off_by_default() -> None:
    s = load_settings()
    assert (s.github_hooks_allowlist, s.webhook_allowed_networks) == (False, ())
    assert (s.github_api_url, s.github_meta_refresh_interval) == ("https://api.github.com", 3600.0)


def test_allowed_networks_are_comma_separated_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHINGEST_GITHUB_HOOKS_ALLOWLIST", "true")
    monkeypatch.setenv("GHINGEST_WEBHOOK_ALLOWED_NETWORKS", " 10.20.0.0/16, 2001:db8::/32 ,192.0.2.7")
    monkeypatch.setenv("GHINGEST_GITHUB_API_URL", "https://ghe.example.com/api/v3/")
    s = load_settings()
    assert s.github_hooks_allowlist is True
    assert s.webhook_allowed_networks == ("10.20.0.0/16", "192.0.2.7/32", "2001:db8::/32")
    assert s.github_api_url == "https://ghe.example.com/api/v3"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("GHINGEST_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8, 10.0.0.1/16", "entry 2 '10.0.0.1/16': host bits set"),
        ("GHINGEST_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8,github.com", "entry 2 'github.com': not an IPv4"),
        ("GHINGEST_GITHUB_API_URL", "ftp://api.github.com", "the REST API's base URL"),
        ("GHINGEST_GITHUB_API_URL", "https://user:token@ghe.example.com/api/v3", "no credentials"),
        ("GHINGEST_GITHUB_META_REFRESH_INTERVAL", "1", "greater than or equal to 10"),
        ("GHINGEST_GITHUB_HOOKS_ALLOWLIST", "maybe", "boolean"),
    ],
)
def test_an_invalid_allow_list_setting_names_itself_and_the_entry(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name) as raised:
        load_settings()
    assert problem in str(raised.value)
    assert "user:token" not in str(raised.value)  # a URL is never echoed: it may hold a credential


def test_github_sync_settings_are_checked_and_name_the_setting() -> None:
    settings = load_settings(reconcile_hooks="repo:acme/widgets:42, org:acme:7,app", track_repositories="a/b,C/d")
    assert settings.reconcile_hooks == ("repo:acme/widgets:42", "org:acme:7", "app")
    assert settings.track_repositories == ("a/b", "C/d")
    for overrides, named in (
        ({"reconcile_hooks": "repo:acme:42"}, "GHINGEST_RECONCILE_HOOKS"),
        ({"track_repositories": "not a repo"}, "GHINGEST_TRACK_REPOSITORIES"),
        ({"github_app_private_key_file": "k.pem", "github_app_private_key": "-----BEGIN x"}, "not both"),
        ({"github_app_id": "12", "github_app_private_key_file": "k.pem", "github_token": "t" * 10}, "not both"),
        ({"track_interval": 5}, "GHINGEST_TRACK_INTERVAL"),
    ):
        with pytest.raises(ConfigError, match=named):
            load_settings(**overrides)
    with pytest.raises(ConfigError) as refused:
        load_settings(github_app_id="12", github_app_private_key_file="k.pem", github_token="ghp_secret_value")
    assert "ghp_secret_value" not in str(refused.value)
    with pytest.raises(UnsupportedBackend, match="GHINGEST_GITHUB_APP_PRIVATE_KEY_FILE"):
        open_github_api(load_settings(github_app_id="12"))  # no key: refused where the client is made
