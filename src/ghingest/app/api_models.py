"""The read API's documents (pydantic models: they are also the OpenAPI schema)."""

from __future__ import annotations

import base64

from pydantic import BaseModel, Field

from ghingest.core.processing import failure_kind
from ghingest.core.sources import POLL_SOURCE, WEBHOOK_SOURCE
from ghingest.core.states import DeliveryStatus
from ghingest.core.time import iso
from ghingest.ports import DeliveryView, EventView, ReleaseView, Sighting

SOURCES = (WEBHOOK_SOURCE, POLL_SOURCE)  # the order `Release.sources` lists them in


class ErrorDocument(BaseModel):
    error: str = Field(description="A stable error code, e.g. 'invalid_signature'.")
    detail: str = Field(description="What was wrong, for people.")


class HistoryItem(BaseModel):
    delivery_id: str
    action: str
    timestamp: str = Field(description="The payload's own timestamp that orders this change ('' if none).")
    received_at: str | None
    source: str = Field(
        description="webhook | poll: a delivery from GitHub, or a change ghingest found by polling the releases API."
    )


class Release(BaseModel):
    id: int
    repository: str | None
    tag: str | None
    name: str | None
    author_login: str | None
    author_avatar_url: str | None
    draft: bool
    prerelease: bool
    state: str = Field(description="draft | published | unpublished | deleted")
    created_at: str | None
    published_at: str | None
    html_url: str | None
    body: str | None = Field(description="Release notes (Markdown, untrusted).")
    first_seen_at: str | None
    updated_at: str | None
    sources: list[str] = Field(
        description="Where its history entries came from, in the order webhook, poll. A poll that found what a webhook"
        " said is no entry of its own."
    )
    history: list[HistoryItem] | None = None

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
            state=record.state.value,
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


class ReleasePage(BaseModel):
    items: list[Release]
    next_cursor: str | None


class EventForward(BaseModel):
    destination: str
    status: str = Field(description="pending | delivering | retry | delivered | dead | replayed")
    status_code: int | None = Field(description="The last attempt's HTTP status, if it had one.")
    attempts: int


class EventRelease(BaseModel):
    id: int = Field(description="The release's id (GET /api/releases/{id}).")
    repository: str | None
    tag: str | None


class Event(BaseModel):
    delivery_id: str
    event: str
    action: str | None
    repository: str | None
    organization: str | None
    sender: str | None
    installation_id: int | None
    hook_id: int | None
    status: str = Field(description="processed | failed")
    error: str | None
    shape_warning: str | None = Field(
        default=None,
        description="How the payload does not fit GitHub's published schema of its event (still processed).",
    )
    failure: str | None = Field(
        default=None,
        description="Why a failed delivery failed: 'shape' (cannot succeed without a code change: the payload did"
        " not have the shape ghingest expects), 'invalid' (the body cannot be parsed) or 'transient' (reprocessing"
        " may succeed).",
    )
    forwards: list[EventForward] = Field(
        default_factory=list, description="Its forward jobs, the newest per destination."
    )
    release: EventRelease | None = Field(default=None, description="The release the delivery changed.")
    received_at: str | None
    processed_at: str | None

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
            status=view.status.value,
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
    next_cursor: str | None


class DeliverySighting(BaseModel):
    hook_id: str | None = Field(description="X-GitHub-Hook-ID of the hook that delivered the id again.")
    first_at: str | None
    last_at: str | None
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


class Delivery(BaseModel):
    delivery_id: str
    event: str
    status: str = Field(description="received | processed | failed")
    received_at: str | None
    processed_at: str | None
    attempts: int
    error: str | None
    secret_index: int = Field(description="Which configured webhook secret verified the signature (0-based).")
    hook_id: str | None = Field(default=None, description="X-GitHub-Hook-ID of the recorded delivery.")
    sightings: list[DeliverySighting] = Field(
        default_factory=list,
        description="Other hooks (or redeliveries) that delivered this delivery id after it was recorded; GitHub"
        " gives every hook subscribed to an event the same id. Answered as duplicates, counted here.",
    )
    content_type: str
    headers: dict[str, str]
    body: str | None = Field(default=None, description="The exact body (only with ?raw=1).")
    body_encoding: str | None = Field(default=None, description="'utf-8' or 'base64' (only with ?raw=1).")

    @classmethod
    def of(cls, view: DeliveryView, *, raw: bool) -> Delivery:
        body = encoding = None
        if raw:
            try:
                body, encoding = view.body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                body, encoding = base64.b64encode(view.body).decode("ascii"), "base64"
        return cls(
            delivery_id=view.delivery_id,
            event=view.event,
            status=view.status.value,
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
