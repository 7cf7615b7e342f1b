"""The inbox on NATS JetStream (the scale-out profile): `GHINGEST_BUS_URL` puts it in place of the database's own.

- `inbox.NatsInbox`: the `Inbox` port on a file-storage stream and one durable pull consumer shared by workers.
- `connection.Connection`: one connection kept up in the background that never replays a lost connection's buffer.
- `codec`: subjects and headers of a delivery's message.
- `backend.open_nats_inbox`, `CombinedResources`: what the factory combines with a database backend.

docs/adr/0013-jetstream-inbox.md has the design and what survives what.
"""

from ghingest.adapters.nats.backend import (
    CombinedResources,
    NatsResources,
    open_nats_inbox,
    options_from_settings,
    with_nats_inbox,
)
from ghingest.adapters.nats.inbox import JetStreamOptions, NatsInbox

__all__ = [
    "CombinedResources",
    "JetStreamOptions",
    "NatsInbox",
    "NatsResources",
    "open_nats_inbox",
    "options_from_settings",
    "with_nats_inbox",
]
