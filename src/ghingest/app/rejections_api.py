"""`GET /api/rejections`: the rejected-requests log (`ports.RejectionLog`), newest minute first, with the same bearer
token as the rest of `/api`. The dashboard's Rejected page reads the same port with the same filters (`filters`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from ghingest.app.api import BAD_REQUEST, Cursor, Limit, RuntimeDep, epoch_filter
from ghingest.app.api_models import DateTime
from ghingest.app.auth import require_reader
from ghingest.app.openapi import DocumentedRoute
from ghingest.core.pagination import DEFAULT_PAGE_SIZE
from ghingest.core.rejections import AGGREGATED, MALFORMED, Reason, RejectionBucket
from ghingest.core.time import iso
from ghingest.ports.rejections import RejectionQuery

rejections_api = APIRouter(
    prefix="/api", dependencies=[Depends(require_reader)], tags=["rejected requests"], route_class=DocumentedRoute
)
HOOK_ID_DESCRIPTION = "Only this hook's (X-GitHub-Hook-ID, digits)."


class RejectionDocument(BaseModel):
    minute: DateTime | None = Field(description="The minute the bucket counts (UTC), ISO-8601.")
    reason: Reason = Field(description="Why the requests were refused.")
    status: int = Field(description="The HTTP status the requests were answered.")
    client: str = Field(description=f'The client address; "" unknown, "{MALFORMED}", "{AGGREGATED}" aggregated.')
    event: str = Field(description=f'X-GitHub-Event when well-formed; "" none, "{MALFORMED}", "{AGGREGATED}".')
    hook_id: str = Field(description=f'X-GitHub-Hook-ID when digits; "" none, "{MALFORMED}", "{AGGREGATED}".')
    delivery_id: str = Field(description=f'The newest request\'s X-GitHub-Delivery; "" none, "{MALFORMED}".')
    count: int = Field(description="Requests refused in the bucket.")
    first_at: DateTime | None
    last_at: DateTime | None
    aggregated: bool = Field(
        description="Past the cap of distinct buckets a minute: every client, event and hook of the reason."
    )

    @classmethod
    def of(cls, b: RejectionBucket) -> RejectionDocument:
        return cls(
            minute=iso(b.minute), reason=b.reason, status=b.reason.status, client=b.client, event=b.event,
            hook_id=b.hook_id, delivery_id=b.delivery_id, count=b.count, first_at=iso(b.first_at),
            last_at=iso(b.last_at), aggregated=b.aggregated,
        )  # fmt: skip


class RejectionPage(BaseModel):
    items: list[RejectionDocument]
    next_cursor: str | None


def filters(reasons: list[Reason] | None, since: str | None, until: str | None, hook_id: str | None) -> RejectionQuery:
    """The query of the page's and the API's parameters; `HTTPException(400)` naming a bad one."""

    if hook_id and not hook_id.isdigit():
        raise HTTPException(400, detail="hook_id must be digits")
    return RejectionQuery(
        reasons=frozenset(reasons) if reasons else None,
        since=epoch_filter("since", since),
        until=epoch_filter("until", until),
        hook_id=hook_id or None,
    )


@rejections_api.get(
    "/rejections", response_model=RejectionPage, responses=BAD_REQUEST, summary="Refused webhook requests"
)
async def list_rejections(
    runtime: RuntimeDep,
    reason: Annotated[list[Reason] | None, Query(description="Only these reasons (repeatable).")] = None,
    since: Annotated[str | None, Query(description="Buckets of this minute or later, ISO-8601.")] = None,
    until: Annotated[str | None, Query(description="Buckets before this time, ISO-8601.")] = None,
    hook_id: Annotated[str | None, Query(max_length=20, description=HOOK_ID_DESCRIPTION)] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> RejectionPage:
    query = filters(reason, since, until, hook_id)
    page = await runtime.backend.rejections.page(query, cursor=cursor, limit=limit)
    return RejectionPage(items=[RejectionDocument.of(b) for b in page.items], next_cursor=page.next_cursor)
