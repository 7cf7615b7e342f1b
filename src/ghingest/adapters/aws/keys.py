"""Every item's keys (docs/aws/dynamodb.md, "Items"): the only place that spells them."""

from __future__ import annotations

SHARDS = 4  # write shards of the "all deliveries" and "all events" index partitions


def n20(number: int) -> str:
    """A non-negative integer as a sort key that sorts as the number."""
    if number < 0:
        raise ValueError("keys hold non-negative numbers")
    return f"{number:020d}"


def t(seconds: float) -> str:
    """An epoch time as a sort key that sorts as the time."""
    return f"{seconds:017.6f}"


def shard(seq: int) -> int:
    return seq % SHARDS


# table metadata and counters
META = {"pk": "META", "sk": "TABLE"}
PROBE = {"pk": "META", "sk": "PROBE"}  # what the store's readiness check writes


def counter(name: str) -> dict[str, str]:
    return {"pk": "COUNTER", "sk": name}


# deliveries and what hangs off them
def delivery_pk(delivery_id: str) -> str:
    return f"DLV#{delivery_id}"


DELIVERY_SK = "#"
BODY_SK = "BODY"
EVENT_SK = "EVENT"
SIGHTING_PREFIX = "SIGHT#"
HOOKS_SK = "HOOKS"
JOB_GUARD_PREFIX = "JOB0#"


def delivery(delivery_id: str) -> dict[str, str]:
    return {"pk": delivery_pk(delivery_id), "sk": DELIVERY_SK}


def body(delivery_id: str) -> dict[str, str]:
    """A delivery's body item: in no index, so that only the table pays for its bytes (and its TTL may expire it)."""
    return {"pk": delivery_pk(delivery_id), "sk": BODY_SK}


def event(delivery_id: str) -> dict[str, str]:
    return {"pk": delivery_pk(delivery_id), "sk": EVENT_SK}


def sighting(delivery_id: str, hook_id: str | None) -> dict[str, str]:
    return {"pk": delivery_pk(delivery_id), "sk": SIGHTING_PREFIX + (hook_id or "")}


def hooks_seen(delivery_id: str) -> dict[str, str]:
    """The hook ids of a delivery id's sightings, in one item: what `Reads.hooks_seen` batch-reads."""
    return {"pk": delivery_pk(delivery_id), "sk": HOOKS_SK}


def job_guard(delivery_id: str, destination: str) -> dict[str, str]:
    return {"pk": delivery_pk(delivery_id), "sk": JOB_GUARD_PREFIX + destination}


def deliveries_shard(seq: int) -> str:
    return f"DLVS#{shard(seq)}"


def events_shard(seq: int) -> str:
    return f"EVTS#{shard(seq)}"


def events_of_type(event_name: str) -> str:
    return f"EVT#{event_name}"


def events_of_repository(repository: str) -> str:
    return f"REPO#{repository}"


UNPUBLISHED = "UNPUBLISHED"
UNDISPATCHED = "UNDISPATCHED"


# releases
def release_pk(release_id: int) -> str:
    return f"REL#{n20(release_id)}"


RELEASE_SK = "#"
CHANGE_PREFIX = "CHG#"
RELEASES = "RELS"


def release(release_id: int) -> dict[str, str]:
    return {"pk": release_pk(release_id), "sk": RELEASE_SK}


def release_change(release_id: int, delivery_id: str) -> dict[str, str]:
    return {"pk": release_pk(release_id), "sk": CHANGE_PREFIX + delivery_id}


def releases_of(repository: str) -> str:
    return f"RELS#{repository}"


def release_sort(sort_at: str, release_id: int) -> str:
    return f"{sort_at}#{n20(release_id)}"


REPOSITORIES = "REPOS"

# the change feed
FEED = "FEED"
FEED_HEAD = {"pk": FEED, "sk": "HEAD"}


def feed_entry(position: int) -> dict[str, str]:
    return {"pk": FEED, "sk": n20(position)}


# forwarding
def job_pk(job_id: int) -> str:
    return f"JOB#{n20(job_id)}"


JOB_SK = "#"
ATTEMPT_PREFIX = "ATT#"
DEAD = "DEAD"
DESTINATIONS = "DESTS"


def job(job_id: int) -> dict[str, str]:
    return {"pk": job_pk(job_id), "sk": JOB_SK}


def attempt(job_id: int, number: int) -> dict[str, str]:
    return {"pk": job_pk(job_id), "sk": ATTEMPT_PREFIX + n20(number)}


def jobs_of(delivery_id: str) -> str:
    return f"JOBS#{delivery_id}"


def destination_counts(destination: str) -> dict[str, str]:
    return {"pk": DESTINATIONS, "sk": destination}


PAUSED = "PAUSED"  # one item per paused destination
PINGS = "PINGS"  # one item per destination: its last test delivery


def destination_pause(destination: str) -> dict[str, str]:
    return {"pk": PAUSED, "sk": destination}


def destination_ping(destination: str) -> dict[str, str]:
    return {"pk": PINGS, "sk": destination}


def attempts_of(destination: str) -> str:
    """gsi3: a destination's attempts, by `attempt_sort` (its health windows, its most recent attempts)."""
    return f"ATTS#{destination}"


def attempt_sort(started_at: float, attempt_id: int) -> str:
    return f"{t(started_at)}#{n20(attempt_id)}"


# sessions
def session(session_id: str) -> dict[str, str]:
    return {"pk": f"SESSION#{session_id}", "sk": "#"}


# GitHub's API: reconciliation's gaps (a partition per hook), each hook's last run, tracked repositories
def gap(hook: str, delivery_id: str) -> dict[str, str]:
    return {"pk": f"GAP#{hook}", "sk": delivery_id}


GAPS = "GAPS"  # gsi1: every gap, by `gap_sort`


def gaps_of(hook: str) -> str:
    """gsi2: one hook's gaps, by `hook_gap_sort`."""
    return f"GAPS#{hook}"


def gaps_in(state: str) -> str:
    """gsi3: the gaps in one state, by `gap_sort`."""
    return f"GAPSTATE#{state}"


def gap_sort(delivered_at: float, hook: str, delivery_id: str) -> str:
    return f"{t(delivered_at)}#{hook}#{delivery_id}"


def hook_gap_sort(delivered_at: float, delivery_id: str) -> str:
    return f"{t(delivered_at)}#{delivery_id}"


SCANS = "SCANS"
TRACKED = "TRACKED"


def scan(hook: str) -> dict[str, str]:
    return {"pk": SCANS, "sk": hook}


def tracked(repository_key: str) -> dict[str, str]:
    return {"pk": TRACKED, "sk": repository_key}


# leases: which process runs a scheduled role (reconciliation, release tracking) until when
LEASES = "LEASES"


def lease(name: str) -> dict[str, str]:
    return {"pk": LEASES, "sk": name}


# refused webhook requests: one partition of buckets, by `rejection_sort` (the list's order: newest minute first)
REJECTIONS = "REJS"


def rejection_sort(minute: int, reason: str, client: str, event: str, hook_id: str) -> str:
    """Sorts as the tuple: no part holds "#" or anything below it (`core.rejections`: addresses, event names, digits,
    "(malformed)", "~")."""
    return f"{t(minute)}#{reason}#{client}#{event}#{hook_id}"


def rejection(minute: int, reason: str, client: str, event: str, hook_id: str) -> dict[str, str]:
    return {"pk": REJECTIONS, "sk": rejection_sort(minute, reason, client, event, hook_id)}


# the audit log: an entry by id; every entry (gsi1), an action's (gsi2), an actor's (gsi3), by `audit_sort`
def audit(entry_id: str) -> dict[str, str]:
    return {"pk": f"AUDIT#{entry_id}", "sk": "#"}


AUDIT = "AUDIT"  # gsi1: every entry


def audit_of_action(action: str) -> str:
    return f"AUDITACT#{action}"


def audit_of_actor(actor: str) -> str:
    return f"AUDITBY#{actor}"


def audit_sort(at: float, entry_id: str) -> str:
    return f"{t(at)}#{entry_id}"


# the payload bucket (S3): a body too large for its body item (the claim check)
def payload(delivery_id: str) -> str:
    return f"payloads/{delivery_id}"
