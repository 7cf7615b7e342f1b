"""Configuration: `GHINGEST_*` environment variables and an optional TOML file, validated once at start.

The environment wins over the file (`GHINGEST_CONFIG_FILE`). Secrets are `SecretStr`: they print as `**********`
in logs, `repr` and error messages. An invalid value raises `ConfigError`, whose message names the setting.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ghingest.app.forward_transport import check_ca_bundle, check_proxy
from ghingest.core.errors import GhingestError
from ghingest.core.github_hooks import HookRef
from ghingest.core.networks import parse_networks
from ghingest.core.tracking import repository_key

ENV_PREFIX = "GHINGEST_"
CONFIG_FILE_ENV = "GHINGEST_CONFIG_FILE"


class ConfigError(GhingestError):
    """The configuration is invalid; the message names the setting."""


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    # The store: sqlite:///path (embedded), postgresql://user:password@host:port/db (scale-out), memory://,
    # dynamodb://TABLE (the AWS serverless profile: every port on DynamoDB, SNS, SQS and S3; the aws_* settings).
    database_url: str = "sqlite:///./data/ghingest.db"
    database_pool_size: int = Field(default=10, ge=1, le=200)  # connections per process (PostgreSQL)
    # The inbox on NATS JetStream: comma-separated nats:// servers of one cluster. Unset: the inbox is in the store.
    bus_url: Annotated[tuple[str, ...], NoDecode] = ()
    bus_stream: str = Field(default="GHINGEST_DELIVERIES", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    bus_replicas: int = Field(default=3, ge=1, le=5)  # the stream's replicas (R3: an ack means a quorum has it)
    bus_publish_timeout: float = Field(default=4.0, gt=0, le=8)  # a receiver answers 503 after this
    bus_max_bytes: int = Field(default=8 * 1024**3, ge=1024**2)  # the stream's backlog; full: appends refused (503)
    # The AWS serverless profile (set by the CDK stack on every Lambda function; docs/aws/dynamodb.md).
    aws_region: str | None = None  # unset: the AWS SDK's own (AWS_REGION on Lambda)
    aws_endpoint_url: str | None = None  # one endpoint for every AWS service (moto server, LocalStack); unset: AWS
    aws_deliveries_topic_arn: str | None = None  # SNS: the receiver publishes a notice of each new delivery
    aws_inbox_queue_url: str | None = None  # SQS: the processor's queue, subscribed to the deliveries topic
    aws_forwards_topic_arn: str | None = None  # SNS: a notice per forward job; filter policies route by destination
    aws_forward_queues: dict[str, str] = Field(default_factory=dict)  # destination -> its SQS queue URL (JSON)
    aws_forward_dead_letter_queues: dict[str, str] = Field(default_factory=dict)  # destination -> DLQ URL (JSON)
    aws_payload_bucket: str | None = None  # S3: bodies too large for a DynamoDB item (the claim check)
    # Days after which a raw body expires from the table (its body item's TTL; the bucket's lifecycle rule expires
    # large ones after the same days): the delivery's record stays, its body then reads as empty. 0: kept.
    aws_payload_retention_days: int = Field(default=0, ge=0)
    aws_secrets_arn: str | None = None  # Secrets Manager: JSON {"webhook_secrets": [...], "api_tokens": [...], ...}
    aws_secrets_cache_seconds: float = Field(default=300.0, ge=0, le=3600)  # how long a function keeps them
    # Local runs against moto or LocalStack only: a destination with no queue gets one on first use (in AWS the
    # CDK stack creates each destination's queue from the routes file).
    aws_create_missing_queues: bool = False
    aws_sweep_after: float = Field(default=600.0, ge=30)  # s before the sweeper republishes an unpublished delivery
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None  # how GitHub reaches this service, for the first-start instructions

    webhook_secrets: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    webhook_secrets_file: Path | None = None
    allow_sha1_signatures: bool = False
    max_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)

    api_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()

    # Dashboard sign-in (docs: README "Dashboard"; docs/adr/0005-dashboard.md).
    session_secret: SecretStr | None = None  # signs session cookies; generated in data_dir when unset
    session_max_age: int = Field(default=12 * 3600, ge=60)
    users_file: Path | None = None  # lines "name:<argon2 hash>[:viewer|operator]" (`ghingest users hash`)
    sso_header: str | None = None  # e.g. X-Forwarded-User from oauth2-proxy; trusted only from trusted_proxies
    # IP addresses or CIDR networks of reverse proxies: the SSO header and X-Forwarded-For/-Proto count only on
    # connections whose TCP peer is one of them (ghingest.app.proxies).
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()

    # Webhook sources (README "Webhook sources"; ADR 0020): the webhook route accepts deliveries only from the
    # networks GitHub's `/meta` lists as `hooks` (fetched from github_api_url, kept in data_dir, refreshed every
    # interval) and from webhook_allowed_networks; the client is the one behind trusted_proxies. Either one alone
    # turns the check on; neither (the default): every source is accepted, as before.
    github_hooks_allowlist: bool = False
    github_api_url: str = "https://api.github.com"  # GitHub Enterprise Server: https://HOST/api/v3
    github_meta_refresh_interval: float = Field(default=3600.0, ge=10, le=7 * 86400)  # seconds, with jitter
    webhook_allowed_networks: Annotated[tuple[str, ...], NoDecode] = ()  # CIDRs accepted besides GitHub's

    # Sign-in hardening (README "Dashboard")
    # Roles: `viewer` reads; `operator` may also reprocess, replay, retry and forward again. API tokens (bearer or
    # token sign-in) are operators; a users-file line names its role (no role: operator, as before roles).
    sso_default_role: Literal["viewer", "operator"] = "viewer"  # SSO users not listed in sso_operators
    sso_operators: Annotated[tuple[str, ...], NoDecode] = ()  # SSO user names with the operator role
    # Failed sign-ins: a bucket of `burst` attempts per user name and per client address (after trusted-proxy
    # resolution), one more every `interval` seconds; past it 429 with Retry-After. Token sign-ins count per client.
    sign_in_user_burst: int = Field(default=5, ge=1)
    sign_in_user_interval: float = Field(default=60.0, gt=0)
    sign_in_client_burst: int = Field(default=20, ge=1)
    sign_in_client_interval: float = Field(default=6.0, gt=0)
    sign_in_tracked_keys: int = Field(default=10_000, ge=100)  # buckets kept per kind; least recently used go
    # argon2 verifications run on a pool of their own: this many at once, this many waiting; more: 503 at once.
    password_hash_threads: int = Field(default=1, ge=1, le=8)
    password_hash_queue: int = Field(default=4, ge=0, le=1000)
    # Sign-outs are stored in the database; another process sees one within this many seconds (its cache).
    session_revocation_cache: float = Field(default=1.0, ge=0, le=60)

    sqlite_synchronous: Literal["FULL", "EXTRA", "NORMAL"] = "FULL"
    # Seconds a write waits for a lock another process holds before the delivery is answered 503 (GitHub waits 10).
    sqlite_busy_timeout: float = Field(default=2.0, gt=0, le=8)
    # Seconds the receiver waits for a delivery's commit before it answers 503 (the delivery may still commit;
    # a redelivery is then a duplicate): an answer always comes well inside GitHub's 10 s.
    ack_timeout: float = Field(default=6.0, gt=0, le=9)
    worker_batch_size: int = Field(default=200, ge=1, le=5000)
    worker_poll_interval: float = Field(default=0.5, gt=0)
    worker_max_attempts: int = Field(default=8, ge=1)
    worker_retry_base_delay: float = Field(default=1.0, gt=0)
    # A claimed delivery is hidden from other claimers this long; after a crash it is claimed again after this.
    worker_lease_seconds: float = Field(default=15.0, gt=0)
    # Processing limits (README "Limits"): a batch holds at most this many body bytes (and at least one delivery);
    # a body larger than `offload_bytes` is verified and processed in a worker process, off the event loop.
    worker_batch_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    offload_bytes: int = Field(default=64 * 1024, ge=0)

    # Forwarding (README "Forwarding"; docs/adr: outbox and retries).
    routes_file: Path | None = None  # TOML: [[destinations]] and [[routes]]; reloaded when it changes
    routes_reload_interval: float = Field(default=1.0, gt=0)  # how often the file's mtime is checked
    forward_poll_interval: float = Field(default=0.5, gt=0)  # fallback poll for due retries and other processes

    # Forwarding transport (README "Forwarding"; ADR 0006, addendum 2): defaults for destinations that set none.
    forward_ca_bundle: Path | None = None  # PEM CA certificates for https destinations; unset: the system's store
    forward_proxy: SecretStr | None = None  # http://[user:password@]host:port for every destination; unset: direct

    @field_validator("forward_proxy", "forward_ca_bundle", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("forward_proxy")
    @classmethod
    def _proxy_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_proxy(value.get_secret_value())
        return value

    @field_validator("forward_ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: Path | None) -> Path | None:
        if value is not None:
            check_ca_bundle(str(value))
        return value

    # HTTP limits (README "Limits"): every listener (serve, receiver, dashboard); app/http_limits.py, ADR 0008.
    http_header_timeout: float = Field(default=10.0, gt=0, le=300)  # s to send the request line and headers
    http_body_timeout: float = Field(default=20.0, gt=0, le=600)  # s to send the whole body, from the end of the head
    http_keep_alive_timeout: float = Field(default=5.0, gt=0, le=300)  # s an idle keep-alive connection stays open
    http_max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)  # request line + header fields
    http_max_headers: int = Field(default=100, ge=10, le=1000)  # header fields per request
    http_max_connections: int = Field(default=1000, ge=1, le=100_000)  # past it: 503 + Retry-After, closed
    http_backlog: int = Field(default=2048, ge=1, le=65535)  # the listen queue (the kernel caps it at somaxconn)
    http_max_form_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)  # body cap off the webhook

    # GitHub's REST API (README "Never miss an event"): reconciliation with the deliveries API, release tracking;
    # at github_api_url (above).
    github_token: SecretStr | None = None  # a token that may read the hooks' deliveries (and redeliver) / releases
    github_app_id: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$")  # or authenticate as a GitHub App
    github_app_private_key_file: Path | None = None  # the App's private key (PEM)
    github_app_private_key: SecretStr | None = None  # or the PEM text itself (the AWS profile: from its secret)
    github_mutation_interval: float = Field(default=1.0, ge=0, le=60)  # s between redelivery requests (GitHub's advice)
    github_max_wait: float = Field(default=900.0, ge=0, le=3600)  # longest rate-limit wait before a run gives up
    # Hooks to reconcile: comma-separated repo:OWNER/REPO:HOOK_ID, org:ORG:HOOK_ID, app[:HOOK_ID].
    reconcile_hooks: Annotated[tuple[str, ...], NoDecode] = ()
    reconcile_interval: float = Field(default=300.0, ge=0)  # s between scheduled runs; 0: only `ghingest reconcile`
    reconcile_horizon: float = Field(default=71 * 3600.0, ge=600, le=7 * 86400)  # look back (GitHub keeps 3 days)
    reconcile_min_age: float = Field(default=120.0, ge=0, le=3600)  # younger deliveries wait for the next run
    reconcile_retry_after: float = Field(default=900.0, ge=60)  # s before an unarrived redelivery is asked again
    reconcile_max_requests: int = Field(default=3, ge=1, le=10)  # redelivery requests per gap, at most
    # Repositories whose releases are polled (comma-separated OWNER/REPO; `ghingest track` adds more).
    track_repositories: Annotated[tuple[str, ...], NoDecode] = ()
    track_interval: float = Field(default=600.0, ge=60)  # s between two polls of one repository
    track_page_size: int = Field(default=30, ge=1, le=100)  # releases read per poll (the newest)
    track_concurrency: int = Field(default=4, ge=1, le=32)  # polls in flight at once

    # How open dashboard pages follow changes: a stream (Server-Sent Events held open), or, where the front end
    # cannot stream (API Gateway on the AWS profile buffers whole responses), short requests every poll interval.
    live_updates: Literal["stream", "poll"] = "stream"
    # CPU seconds a release's notes may take to render as Markdown; past it they are shown as plain text.
    notes_render_budget: float = Field(default=1.0, gt=0, le=10)
    live_poll_interval: float = Field(default=5.0, ge=1, le=300)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("webhook_secrets", "api_tokens", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("webhook_secrets", "api_tokens")
    @classmethod
    def _strong_enough(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for secret in value:
            if len(secret.get_secret_value()) < 8:
                raise ValueError("each secret must be at least 8 characters long")
        return value

    @field_validator("reconcile_hooks", "track_repositories", mode="before")
    @classmethod
    def _github_lists(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("reconcile_hooks")
    @classmethod
    def _hooks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(HookRef.parse(item).key for item in value)  # InvalidHookRef (a ValueError) names the bad one

    @field_validator("track_repositories")
    @classmethod
    def _repositories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            repository_key(item)
        return value

    @field_validator("trusted_proxies", "sso_operators", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad address
        return value

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _network_list(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(parse_networks(value).texts())  # InvalidNetworks (a ValueError) names the bad entry

    @field_validator("github_app_private_key")
    @classmethod
    def _pem(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and "-----BEGIN" not in value.get_secret_value():
            raise ValueError("the App's private key in PEM (-----BEGIN RSA PRIVATE KEY----- …)")
        return value

    @field_validator("github_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        _ = parts.port  # ValueError for a port that is not one
        if (
            parts.scheme not in ("https", "http")
            or not parts.hostname
            or parts.username is not None
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                "the REST API's base URL: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise"
                " Server (no credentials, query or fragment)"
            )
        return value.rstrip("/")

    @field_validator("session_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("the session secret must be at least 32 characters long")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "memory://", "postgresql://", "postgres://", "dynamodb://")):
            raise ValueError(
                "a database URL is sqlite:///path, postgresql://…, dynamodb://TABLE or memory:// (nothing persists)"
            )
        return value

    @field_validator("bus_url", mode="before")
    @classmethod
    def _bus_servers(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("bus_url")
    @classmethod
    def _nats_servers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for server in value:
            if not server.startswith(("nats://", "tls://")):
                raise ValueError("each bus server is nats://host:port (or tls://host:port)")
        return value

    @model_validator(mode="after")
    def _github_credentials(self) -> Settings:
        # (GHINGEST_GITHUB_APP_ID without a key is refused where the client is made: on the AWS profile the key
        # comes from the function's secret, after these settings are read.)
        if self.github_app_private_key_file is not None and self.github_app_private_key is not None:
            raise ValueError("set GHINGEST_GITHUB_APP_PRIVATE_KEY_FILE or GHINGEST_GITHUB_APP_PRIVATE_KEY, not both")
        if self.github_app_id is not None and self.github_token is not None:
            raise ValueError("set GHINGEST_GITHUB_TOKEN or GHINGEST_GITHUB_APP_ID, not both")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def without_password(url: str) -> str:
    """A database or bus URL fit for logs and the console: its password replaced by `***`."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a URL urllib can read: show its scheme only
        return url.split("://", 1)[0] + "://…"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{parts.hostname or ''}{port}"))


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the configuration once; raise `ConfigError` naming each invalid setting."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"{CONFIG_FILE_ENV}: no such file: {config_file}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if error["loc"]:
                name = ENV_PREFIX + "_".join(str(part) for part in error["loc"][:1]).upper()
                problems.append(f"{name}: {error['msg']}")
            else:  # a rule across settings: its message names them
                problems.append(str(error["msg"]).removeprefix("Value error, "))
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    except ValueError as exc:  # a malformed TOML file
        raise ConfigError(f"{CONFIG_FILE_ENV}: {exc}") from None
