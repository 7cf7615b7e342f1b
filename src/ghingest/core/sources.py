"""Where a delivery came from: a GitHub webhook, or ghingest's own poll of a repository's releases
(`core.tracking`). Read from the delivery id, whose `poll:` namespace the receiver refuses to webhooks
(`core.delivery.check_head`; docs/adr/0019-release-sources.md)."""

from __future__ import annotations

POLL_DELIVERY_PREFIX = "poll:"
SOURCE_HEADER = "x-ghingest-source"  # on a polled delivery: POLL_SOURCE (informative; the id decides)
POLL_SOURCE = "poll"
WEBHOOK_SOURCE = "webhook"


def source_of(delivery_id: str) -> str:
    """`POLL_SOURCE` for an id in the poller's namespace, else `WEBHOOK_SOURCE`."""
    return POLL_SOURCE if delivery_id.startswith(POLL_DELIVERY_PREFIX) else WEBHOOK_SOURCE


def is_polled(delivery_id: str) -> bool:
    return delivery_id.startswith(POLL_DELIVERY_PREFIX)
