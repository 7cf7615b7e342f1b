"""The seams between the application and its backends, as small `typing.Protocol`s, one module each.

Adapters (`ghingest.adapters.*`) implement them; the application (`ghingest.app.*`, `ghingest.dashboard.*`)
depends only on these, through a `Backend` that `ghingest.adapters.factory` opens from the configuration. Each
port has one contract suite in `tests/contract/`, run unchanged against every adapter (capability flags where a
backend cannot do something; docs/adr/0012-ports-for-every-backend.md checks each port against each backend).
"""

from ghingest.ports.audit import AuditEntry, AuditLog, AuditQuery
from ghingest.ports.backend import Backend, Resources
from ghingest.ports.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from ghingest.ports.feed import Change, ChangeFeed
from ghingest.ports.forwarding import (
    AttemptResult,
    AttemptView,
    DestinationActivity,
    DestinationPause,
    DestinationStats,
    DestinationTest,
    ForwardJob,
    ForwardLog,
    ForwardQueue,
    ForwardQueueCapabilities,
    ForwardView,
    ReplaySelection,
    ReplayTarget,
    TargetDelivery,
)
from ghingest.ports.github_sync import GitHubSyncState
from ghingest.ports.inbox import Claimed, Inbox, InboxCapabilities, Settle, Settlement
from ghingest.ports.reads import (
    DeliveryView,
    EventQuery,
    EventView,
    ForwardOutcome,
    HourCounts,
    ReadCapabilities,
    Reads,
    ReleaseQuery,
    ReleaseRef,
    ReleaseView,
    ReprocessSelection,
    Sighting,
)
from ghingest.ports.rejections import RejectionLog, RejectionQuery, RejectionSummary
from ghingest.ports.sessions import SessionRevocations
from ghingest.ports.store import Outcome, Store, StoreCapabilities

__all__ = [
    "SYSTEM_CLOCK",
    "AttemptResult",
    "AttemptView",
    "AuditEntry",
    "AuditLog",
    "AuditQuery",
    "Backend",
    "Change",
    "ChangeFeed",
    "Claimed",
    "Clock",
    "DeliveryView",
    "DestinationActivity",
    "DestinationPause",
    "DestinationStats",
    "DestinationTest",
    "EventQuery",
    "EventView",
    "ForwardJob",
    "ForwardLog",
    "ForwardOutcome",
    "ForwardQueue",
    "ForwardQueueCapabilities",
    "ForwardView",
    "GitHubSyncState",
    "HourCounts",
    "Inbox",
    "InboxCapabilities",
    "ManualClock",
    "Outcome",
    "ReadCapabilities",
    "Reads",
    "RejectionLog",
    "RejectionQuery",
    "RejectionSummary",
    "ReleaseQuery",
    "ReleaseRef",
    "ReleaseView",
    "ReplaySelection",
    "ReplayTarget",
    "ReprocessSelection",
    "Resources",
    "SessionRevocations",
    "Settle",
    "Settlement",
    "Sighting",
    "Store",
    "StoreCapabilities",
    "SystemClock",
    "TargetDelivery",
]
