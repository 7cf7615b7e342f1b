"""The Lambda container's secrets: read from Secrets Manager's JSON, checked like settings, rotated without a
restart, destination secrets put where the route file's `secret_env` finds them; and the receiver's answer while
nothing is configured."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from ghingest.app.aws_lambda import container as lambda_container
from ghingest.app.aws_lambda import processor, receiver
from ghingest.app.aws_lambda.container import Container, destination_secrets, secret_overrides
from ghingest.app.settings import ConfigError
from tests.e2e.aws_events import http_api_request


@pytest.fixture
def memory_function(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GHINGEST_DATABASE_URL", "memory://")
    monkeypatch.setenv("GHINGEST_AWS_SECRETS_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:ghingest")
    monkeypatch.setenv("GHINGEST_AWS_SECRETS_CACHE_SECONDS", "0")  # every invocation reads the secret again
    lambda_container.reset()
    yield
    lambda_container.reset()


def document(**values: object) -> str:
    return orjson.dumps(values).decode()


PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...\n-----END RSA PRIVATE KEY-----\n"  # never parsed here


def test_the_secret_gives_webhook_secrets_tokens_and_the_session_secret() -> None:
    overrides = secret_overrides(document(webhook_secrets=["a" * 12], api_tokens=["t" * 20], session_secret="s" * 40))
    assert overrides == {"webhook_secrets": ("a" * 12,), "api_tokens": ("t" * 20,), "session_secret": "s" * 40}


def test_the_secret_may_give_the_github_credentials() -> None:
    overrides = secret_overrides(document(github_token=" ghp_token123 ", github_app_private_key=PEM))
    assert overrides == {"github_token": "ghp_token123", "github_app_private_key": PEM}
    assert "github_token" not in secret_overrides(document(github_token=None))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        (document(webhook_secret=["x" * 12]), "unknown fields webhook_secret"),
        (document(webhook_secrets="x" * 12), "webhook_secrets must be a list of strings"),
        (document(api_tokens=[1]), "api_tokens must be a list of strings"),
        (document(github_token=["x" * 12]), "github_token must be a non-empty string"),
        (document(github_token="  "), "github_token must be a non-empty string"),
        (document(github_app_private_key={"pem": "x" * 12}), "github_app_private_key must be a non-empty string"),
    ],
)
def test_a_malformed_secret_is_a_config_error_that_names_the_problem_not_the_value(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        secret_overrides(text)
    assert "x" * 12 not in str(raised.value)


def test_destination_secrets_must_be_environment_names_with_string_values() -> None:
    assert destination_secrets(document(destination_secrets={"CI_SECRET": "v"})) == {"CI_SECRET": "v"}
    assert destination_secrets(document(webhook_secrets=[])) == {}
    for bad in ({"not a name": "v"}, {"CI_SECRET": 1}, ["CI_SECRET"]):
        with pytest.raises(ConfigError, match="destination_secrets"):
            destination_secrets(document(destination_secrets=bad))


def test_a_rotated_secret_takes_effect_without_a_restart_and_an_unchanged_one_keeps_the_runtime(
    memory_function: None,
) -> None:
    current = {"text": document(webhook_secrets=["old-secret-123"], session_secret="s" * 40)}
    box = Container(fetch_secret=lambda _settings: current["text"])
    try:
        first = box.runtime()
        assert first.webhook_secrets.values == ("old-secret-123",)
        assert box.runtime() is first  # read again, unchanged: the same runtime (and clients)
        current["text"] = document(webhook_secrets=["old-secret-123", "new-secret-456"], session_secret="s" * 40)
        rotated = box.runtime()
        assert rotated is not first
        assert rotated.webhook_secrets.values == ("old-secret-123", "new-secret-456")
    finally:
        box.close()


def test_the_runtime_s_github_client_uses_the_token_or_the_app_key_from_the_secret(
    memory_function: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Container(
        fetch_secret=lambda _settings: document(
            webhook_secrets=["a-webhook-secret"], github_token="ghp_from_the_secret"
        )
    )
    try:
        runtime = box.runtime()
        assert runtime.settings.github_token is not None
        assert runtime.settings.github_token.get_secret_value() == "ghp_from_the_secret"
        assert repr(runtime.github()) == "GitHubClient(api_url='https://api.github.com', auth='token')"
    finally:
        box.close()
    monkeypatch.setenv("GHINGEST_GITHUB_APP_ID", "4242")  # the App's id is a plain setting of the function
    box = Container(
        fetch_secret=lambda _settings: document(webhook_secrets=["a-webhook-secret"], github_app_private_key=PEM)
    )
    try:
        assert repr(box.runtime().github()) == "GitHubClient(api_url='https://api.github.com', auth='app:4242')"
    finally:
        box.close()


def test_a_github_key_that_is_no_pem_is_a_config_error_that_does_not_show_it(memory_function: None) -> None:
    box = Container(fetch_secret=lambda _settings: document(github_app_private_key="x" * 40))
    try:
        with pytest.raises(ConfigError, match=r"GHINGEST_GITHUB_APP_PRIVATE_KEY: .*PEM") as raised:
            box.runtime()
        assert "x" * 40 not in str(raised.value)
    finally:
        box.close()


@pytest.mark.filterwarnings("ignore:No application metrics")  # nothing was counted: it failed first (observe.py)
def test_an_sqs_function_on_another_backend_is_a_config_error_that_names_it(
    memory_function: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = document(webhook_secrets=["a-webhook-secret"], session_secret="s" * 40)
    monkeypatch.setattr(lambda_container, "_secrets_manager_value", lambda _settings: secret)
    with pytest.raises(ConfigError, match=r"needs the AWS backend \(dynamodb://\), not memory"):
        processor.handler({"Records": []}, None)


def test_the_receiver_answers_503_json_while_the_secret_holds_no_webhook_secret(
    memory_function: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lambda_container, "_secrets_manager_value", lambda _settings: document(webhook_secrets=[]))
    event = http_api_request("POST", "/webhooks/github", headers={"content-type": "application/json"}, body=b"{}")
    response = receiver.handler(event, None)
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"] == "5"
    assert orjson.loads(response["body"])["error"] == "not_configured"


@pytest.mark.parametrize(
    ("name", "value"),
    [("GHINGEST_GITHUB_HOOKS_ALLOWLIST", "true"), ("GHINGEST_WEBHOOK_ALLOWED_NETWORKS", "192.30.252.0/22")],
)
def test_the_receiver_refuses_a_source_allow_list_it_cannot_enforce(
    memory_function: None, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Not silently ignored: every delivery is answered 503 until the setting is removed (ADR 0020)."""
    monkeypatch.setenv(name, value)
    secret = document(webhook_secrets=["a-webhook-secret"], session_secret="s" * 40)
    monkeypatch.setattr(lambda_container, "_secrets_manager_value", lambda _settings: secret)
    event = http_api_request("POST", "/webhooks/github", headers={"content-type": "application/json"}, body=b"{}")
    response = receiver.handler(event, None)
    assert response["statusCode"] == 503
    assert orjson.loads(response["body"])["error"] == "not_configured"
