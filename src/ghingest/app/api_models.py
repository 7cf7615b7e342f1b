"""The read API's documents (pydantic models: they are also the OpenAPI schema, with their examples)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, Field, WithJsonSchema
from pydantic.config import JsonDict

from ghingest.core.delivery import ContentKind
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.processing import FailureKind, failure_kind
from ghingest.core.releases import ReleaseState
from ghingest.core.sources import POLL_SOURCE, WEBHOOK_SOURCE
from ghingest.core.states import DeliveryStatus
from ghingest.core.time import iso
from ghingest.ports import DeliveryView, EventView, ReleaseView, Sighting

SOURCES = (WEBHOOK_SOURCE, POLL_SOURCE)  # the order `Release.sources` lists them in
EXAMPLE_TIME = "2024-05-20T10:00:00.000Z"
DELIVERY_ID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

# A time as the API writes it (`core.time.iso`: ISO-8601 in UTC, milliseconds, a trailing Z), and as a time filter
# takes it (any ISO-8601 time; `core.time.parse_time`). A string on the wire, `format: date-time` in the document.
DateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time", "examples": [EXAMPLE_TIME]})]
Source = Annotated[str, WithJsonSchema({"type": "string", "enum": list(SOURCES)})]
EventStatus = Literal[DeliveryStatus.PROCESSED, DeliveryStatus.FAILED]


EXAMPLES: dict[str, list[JsonDict]] = {}  # schema name -> examples, for the OpenAPI document (`app.openapi`)
Model = TypeVar("Model", bound=type[BaseModel])


def examples(*documents: JsonDict) -> Callable[[Model], Model]:
    """Class decorator: the model's examples in the OpenAPI document. (Not in the model's `json_schema_extra`:
    FastAPI drops every null from the document it builds, and an example's nulls are part of it.)"""

    def register(model: Model) -> Model:
        EXAMPLES[model.__name__] = list(documents)
        return model

    return register


@examples({"error": "invalid_request", "detail": "since: must be an ISO-8601 time"})
class ErrorDocument(BaseModel):
    """Every error the API answers (4xx, and the webhook's and readiness's 5xx)."""

    error: str = Field(
        description="A stable error code: `invalid_request`, `invalid_cursor`, `unauthorized`, `forbidden`,"
        " `not_found`, `payload_too_large`, `not_ready` (readiness); the webhook's own (`invalid_signature`, …).",
        examples=["invalid_request"],
    )
    detail: str = Field(description="What was wrong, for people.")


class HistoryItem(BaseModel):
    delivery_id: str
    action: str
    timestamp: str = Field(description="The payload's own timestamp that orders this change ('' if none).")
    received_at: DateTime | None
    source: Source = Field(
        description="webhook | poll: a delivery from GitHub, or a change ghingest found by polling the releases API."
    )


@examples(
    {
        "id": 1001,
        "repository": "octo-org/octo-repo",
        "tag": "v2.0.0",
        "name": "Zeppelin",
        "author_login": "hubot",
        "author_avatar_url": "https://avatars.githubusercontent.com/u/1?v=4",
        "draft": False,
        "prerelease": False,
        "state": "published",
        "created_at": "2024-05-20T09:58:00Z",
        "published_at": "2024-05-20T10:00:00Z",
        "html_url": "https://github.com/octo-org/octo-repo/releases/tag/v2.0.0",
        "body": "Adds the **zeppelin** mode.",
        "first_seen_at": EXAMPLE_TIME,
        "updated_at": EXAMPLE_TIME,
        "sources": ["webhook"],
        "history": None,
    }
)
class Release(BaseModel):
    id: int = Field(description="GitHub's release id.")
    repository: str | None = Field(description="OWNER/REPO.")
    tag: str | None
    name: str | None
    author_login: str | None
    author_avatar_url: str | None
    draft: bool
    prerelease: bool
    state: ReleaseState
    created_at: DateTime | None = Field(description="As GitHub gave it.")
    published_at: DateTime | None = Field(description="As GitHub gave it.")
    html_url: str | None
    body: str | None = Field(description="Release notes (Markdown, untrusted).")
    first_seen_at: DateTime | None
    updated_at: DateTime | None
    sources: list[Source] = Field(
        description="Where its history entries came from, in the order webhook, poll. A poll that found what a webhook"
        " said is no entry of its own."
    )
    history: list[HistoryItem] | None = Field(default=None, description="Only on `GET /api/releases/{release_id}`.")

    @classmethod
    def of(cls, view: ReleaseView, *, with_history: bool = False) -> Release:
        record, content = view.record, view.record.content
        return cls(
            id=record.release_id,
            repository=content.repository,
            tag=content.tag,
            name=content.name,
            author_login=content.author_login,
            author_avatar_url=content.author_avatar_url,
            draft=content.draft,
            prerelease=content.prerelease,
            state=record.state,
            created_at=content.created_at,
            published_at=content.published_at,
            html_url=content.html_url,
            body=content.body,
            first_seen_at=iso(view.first_seen_at),
            updated_at=iso(view.updated_at),
            sources=sorted(view.sources, key=SOURCES.index),
            history=[
                HistoryItem(
                    delivery_id=e.delivery_id,
                    action=e.action,
                    timestamp=e.order.timestamp,
                    received_at=iso(e.received_at),
                    source=e.source,
                )
                for e in record.history
            ]
            if with_history
            else None,
        )


NEXT_CURSOR = Field(description="Pass as `cursor` for the next (older) page; null on the last page.")


class ReleasePage(BaseModel):
    items: list[Release]
    next_cursor: str | None = NEXT_CURSOR


class EventForward(BaseModel):
    destination: str
    status: ForwardStatus
    status_code: int | None = Field(description="The last attempt's HTTP status, if it had one.")
    attempts: int


class EventRelease(BaseModel):
    id: int = Field(description="The release's id (GET /api/releases/{id}).")
    repository: str | None
    tag: str | None


@examples(
    {
        "delivery_id": DELIVERY_ID,
        "event": "release",
        "action": "published",
        "repository": "octo-org/octo-repo",
        "organization": "octo-org",
        "sender": "hubot",
        "installation_id": None,
        "hook_id": 123456,
        "status": "processed",
        "error": None,
        "shape_warning": None,
        "received_at": EXAMPLE_TIME,
        "processed_at": "2024-05-20T10:00:00.042Z",
    }
)
class Event(BaseModel):
    delivery_id: str
    event: str = Field(description="X-GitHub-Event, e.g. `release`.")
    action: str | None
    repository: str | None
    organization: str | None
    sender: str | None
    installation_id: int | None
    hook_id: int | None
    status: EventStatus
    error: str | None = Field(description="Why processing failed.")
    shape_warning: str | None = Field(
        default=None,
        description="How the payload does not fit GitHub's published schema of its event (still processed).",
    )
    failure: FailureKind | None = Field(
        default=None,
        description="Why a failed delivery failed: 'shape' (cannot succeed without a code change: the payload did"
        " not have the shape ghingest expects), 'invalid' (the body cannot be parsed) or 'transient' (reprocessing"
        " may succeed).",
    )
    forwards: list[EventForward] = Field(
        default_factory=list, description="Its forward jobs, the newest per destination."
    )
    release: EventRelease | None = Field(default=None, description="The release the delivery changed.")
    received_at: DateTime | None
    processed_at: DateTime | None

    @classmethod
    def of(cls, view: EventView) -> Event:
        r = view.record
        return cls(
            delivery_id=r.delivery_id,
            event=r.event,
            action=r.action,
            repository=r.repository,
            organization=r.organization,
            sender=r.sender,
            installation_id=r.installation_id,
            hook_id=r.hook_id,
            status=view.status,
            error=view.error,
            shape_warning=r.shape_warning,
            failure=None if view.status != DeliveryStatus.FAILED else failure_kind(view.error),
            forwards=[
                EventForward(
                    destination=f.destination, status=f.status.value, status_code=f.status_code, attempts=f.attempts
                )
                for f in view.forwards
            ],
            release=None
            if view.release is None
            else EventRelease(id=view.release.release_id, repository=view.release.repository, tag=view.release.tag),
            received_at=iso(view.received_at),
            processed_at=iso(view.processed_at),
        )


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None = NEXT_CURSOR


class DeliverySighting(BaseModel):
    hook_id: str | None = Field(description="X-GitHub-Hook-ID of the hook that delivered the id again.")
    first_at: DateTime | None
    last_at: DateTime | None
    count: int
    same_body: bool | None = Field(
        description="Every such delivery's body was byte-for-byte the recorded one's; null: not known (a copy came"
        " before the delivery itself was recorded, as happens when the inbox is NATS JetStream)."
    )
    secret_index: int

    @classmethod
    def of(cls, sighting: Sighting) -> DeliverySighting:
        return cls(
            hook_id=sighting.hook_id,
            first_at=iso(sighting.first_at),
            last_at=iso(sighting.last_at),
            count=sighting.count,
            same_body=sighting.same_body,
            secret_index=sighting.secret_index,
        )


@examples(
    {
        "delivery_id": DELIVERY_ID,
        "event": "release",
        "status": "processed",
        "received_at": EXAMPLE_TIME,
        "processed_at": "2024-05-20T10:00:00.042Z",
        "attempts": 1,
        "error": None,
        "secret_index": 0,
        "hook_id": "123456",
        "sightings": [],
        "content_type": "json",
        "headers": {"x-github-event": "release", "x-github-delivery": DELIVERY_ID},
        "body": None,
        "body_encoding": None,
    }
)
class Delivery(BaseModel):
    delivery_id: str
    event: str
    status: DeliveryStatus = Field(description="received: not processed yet (or being reprocessed).")
    received_at: DateTime | None
    processed_at: DateTime | None
    attempts: int = Field(description="Processing attempts.")
    error: str | None
    secret_index: int = Field(description="Which configured webhook secret verified the signature (0-based).")
    hook_id: str | None = Field(default=None, description="X-GitHub-Hook-ID of the recorded delivery.")
    sightings: list[DeliverySighting] = Field(
        default_factory=list,
        description="Other hooks (or redeliveries) that delivered this delivery id after it was recorded; GitHub"
        " gives every hook subscribed to an event the same id. Answered as duplicates, counted here.",
    )
    content_type: ContentKind = Field(description="How the body came: JSON, or a form with a `payload` field.")
    headers: dict[str, str] = Field(description="The request's headers as recorded (names in lower case).")
    body: str | None = Field(default=None, description="The exact body (only with ?raw=1).")
    body_encoding: Literal["utf-8", "base64"] | None = Field(
        default=None, description="How `body` is written (only with ?raw=1)."
    )

    @classmethod
    def of(cls, view: DeliveryView, *, raw: bool) -> Delivery:
        body: str | None = None
        encoding: Literal["utf-8", "base64"] | None = None
        if raw:
            try:
                body, encoding = view.body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                body, encoding = base64.b64encode(view.body).decode("ascii"), "base64"
        return cls(
            delivery_id=view.delivery_id,
            event=view.event,
            status=view.status,
            received_at=iso(view.received_at),
            processed_at=iso(view.processed_at),
            attempts=view.attempts,
            error=view.error,
            secret_index=view.secret_index,
            hook_id=view.hook_id,
            sightings=[DeliverySighting.of(s) for s in view.sightings],
            content_type=view.content_kind,
            headers=dict(view.headers),
            body=body,
            body_encoding=encoding,
        )


class Accepted(BaseModel):
    delivery_id: str


class Duplicate(BaseModel):
    delivery_id: str
    duplicate: bool = True
