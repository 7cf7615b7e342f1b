"""The relational schema, as SQLAlchemy Core tables: the one description queries are built from.

Migrations (`ghingest/migrations/versions/`) create exactly this; `tests/contract/test_schema.py` checks that the
migrated database and these tables agree. Timestamps GitHub sends stay ISO-8601 text; timestamps ghingest makes
are UNIX epoch seconds (REAL / double precision).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Text, nullable=False, unique=True),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("hook_id", sa.Text),
    sa.Column("content_kind", sa.Text, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),  # JSON object of every header as received
    sa.Column("body", sa.LargeBinary, nullable=False),  # the exact body bytes
    sa.Column("secret_index", sa.Integer, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sqlite_autoincrement=True,
)
sa.Index("ix_deliveries_received_at", deliveries.c.received_at)

# What processing did with a delivery: small rows, updated in place, so that claiming and recording an outcome
# never rewrites a delivery's ~8 KB body (SQLite rewrites a whole row, overflow pages included, on any update).
# A trigger on `deliveries` creates the row in the same statement as the append (migration 0006).
delivery_states = sa.Table(
    "delivery_states",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),  # = deliveries.seq
    sa.Column("status", sa.Text, nullable=False, server_default="received"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False, server_default="0"),
    sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
    sa.Column("processed_at", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("size", sa.Integer, nullable=False, server_default="0"),  # the body's bytes (0008): claims by bytes
)
sa.Index("ix_delivery_states_status_seq", delivery_states.c.status, delivery_states.c.seq)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),  # = deliveries.seq
    sa.Column("delivery_id", sa.Text, nullable=False, unique=True),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("action", sa.Text),
    sa.Column("repository", sa.Text),
    sa.Column("organization", sa.Text),
    sa.Column("sender", sa.Text),
    sa.Column("installation_id", sa.BigInteger),
    sa.Column("hook_id", sa.BigInteger),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("processed_at", sa.Float),
    sa.Column("shape_warning", sa.Text),  # how the payload does not fit its event's published schema (0008)
)
sa.Index("ix_events_event_seq", events.c.event, events.c.seq)
sa.Index("ix_events_repository_seq", events.c.repository, events.c.seq)
sa.Index("ix_events_status_seq", events.c.status, events.c.seq)
sa.Index("ix_events_action_seq", events.c.action, events.c.seq)
sa.Index(  # 0005: the events page filters by type and action together; partial, so type-only queries keep the above
    "ix_events_event_action_seq",
    events.c.event,
    events.c.action,
    events.c.seq,
    sqlite_where=events.c.action.is_not(None),
    postgresql_where=events.c.action.is_not(None),
)

# 0017: the event log's filters by sender and by time, and the overview's hourly counts (read from the index)
sa.Index("ix_events_sender_seq", events.c.sender, events.c.seq)
sa.Index("ix_events_received_status", events.c.received_at, events.c.status)

# Hooks that delivered a delivery id already recorded (0008): GitHub gives every hook subscribed to an event the
# same X-GitHub-Delivery; the first is recorded in `deliveries`, each other (delivery id, hook id) is counted here.
delivery_sightings = sa.Table(
    "delivery_sightings",
    metadata,
    sa.Column("delivery_id", sa.Text, primary_key=True),
    sa.Column("hook_id", sa.Text, primary_key=True),  # '' when the request named no hook
    sa.Column("first_at", sa.Float, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("same_body", sa.Boolean),  # NULL: not known (0011)
    sa.Column("secret_index", sa.Integer, nullable=False),
)

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),  # GitHub's release.id
    sa.Column("repository", sa.Text),
    sa.Column("tag", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("author_login", sa.Text),
    sa.Column("author_avatar_url", sa.Text),
    sa.Column("draft", sa.Boolean, nullable=False),
    sa.Column("prerelease", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Text),
    sa.Column("published_at", sa.Text),
    sa.Column("html_url", sa.Text),
    sa.Column("body", sa.Text),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("sort_at", sa.Text, nullable=False),  # published_at, else created_at: "newest first"
    sa.Column("content_ts", sa.Text, nullable=False),
    sa.Column("content_seq", sa.Integer, nullable=False),
    sa.Column("first_seen_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
sa.Index("ix_releases_sort", releases.c.sort_at, releases.c.id)
sa.Index("ix_releases_repository_sort", releases.c.repository, releases.c.sort_at, releases.c.id)
sa.Index("ix_releases_state_sort", releases.c.state, releases.c.sort_at, releases.c.id)

release_changes = sa.Table(
    "release_changes",
    metadata,
    sa.Column("delivery_id", sa.Text, primary_key=True),
    sa.Column("release_id", sa.BigInteger, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("order_ts", sa.Text, nullable=False),
    sa.Column("order_seq", sa.Integer, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # JSON of ReleaseContent, so a record can be rebuilt
)
sa.Index("ix_release_changes_release", release_changes.c.release_id)

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("ref", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sqlite_autoincrement=True,
)

# --- forwarding (migration 0003): the outbox of forward jobs, every attempt, and per-destination counters -------

_ACTIVE_FORWARD = "status IN ('pending', 'retry', 'delivering')"

forward_jobs = sa.Table(
    "forward_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_seq", sa.Integer, nullable=False),  # = deliveries.seq
    sa.Column("delivery_id", sa.Text, nullable=False),
    sa.Column("destination", sa.Text, nullable=False),
    sa.Column("route", sa.Text),  # whose template applies; NULL: the payload as it is (a replay to a chosen one)
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),  # 0: the original; n: replay n
    sa.Column("replay", sa.Boolean, nullable=False, server_default="0"),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("received_at", sa.Float, nullable=False),  # the delivery's, for receipt-to-forward latency
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("next_attempt_at", sa.Float, nullable=False),  # due time; while delivering: the lease's end
    sa.Column("first_attempt_at", sa.Float),
    sa.Column("last_attempt_at", sa.Float),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("completed_at", sa.Float),
    sa.UniqueConstraint("delivery_seq", "destination", "generation", name="uq_forward_jobs_delivery_destination"),
    sqlite_autoincrement=True,
)
sa.Index(
    "ix_forward_jobs_due",
    forward_jobs.c.destination,
    forward_jobs.c.next_attempt_at,
    sqlite_where=sa.text(_ACTIVE_FORWARD),
    postgresql_where=sa.text(_ACTIVE_FORWARD),
)
sa.Index("ix_forward_jobs_status_destination", forward_jobs.c.status, forward_jobs.c.destination, forward_jobs.c.id)
# 0017: the event log's forward filters (the events with a job to a destination, in a status), and the overview's
# count of jobs dead-lettered lately
sa.Index(
    "ix_forward_jobs_destination_status_seq",
    forward_jobs.c.destination,
    forward_jobs.c.status,
    forward_jobs.c.delivery_seq,
)
sa.Index("ix_forward_jobs_status_seq", forward_jobs.c.status, forward_jobs.c.delivery_seq)
sa.Index(
    "ix_forward_jobs_dead_at",
    forward_jobs.c.completed_at,
    sqlite_where=sa.text("status = 'dead'"),
    postgresql_where=sa.text("status = 'dead'"),
)

forward_attempts = sa.Table(
    "forward_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Integer, nullable=False),
    sa.Column("delivery_seq", sa.Integer, nullable=False),
    sa.Column("destination", sa.Text, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),  # 1-based, within its job
    sa.Column("replay", sa.Boolean, nullable=False, server_default="0"),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("latency", sa.Float, nullable=False),  # seconds
    sa.Column("status_code", sa.Integer),
    sa.Column("outcome", sa.Text, nullable=False),  # delivered | retry | dead
    sa.Column("error", sa.Text),
    sa.Column("response_excerpt", sa.Text),
    sqlite_autoincrement=True,
)
sa.Index("ix_forward_attempts_delivery", forward_attempts.c.delivery_seq, forward_attempts.c.id)
# 0016: a destination's health windows and most recent attempts
sa.Index("ix_forward_attempts_destination_started", forward_attempts.c.destination, forward_attempts.c.started_at)

forward_stats = sa.Table(
    "forward_stats",
    metadata,
    sa.Column("destination", sa.Text, primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("delivered", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_attempt_at", sa.Float),
    sa.Column("last_success_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_at", sa.Float),
)

# What operators set per destination (migration 0016): a pause (no claim takes its jobs while `paused_at` is set),
# and the last test delivery (a signed `ping`, kept apart from the attempt log).
forward_destinations = sa.Table(
    "forward_destinations",
    metadata,
    sa.Column("destination", sa.Text, primary_key=True),
    sa.Column("paused_by", sa.Text),
    sa.Column("paused_at", sa.Float),
    sa.Column("test_delivery_id", sa.Text),
    sa.Column("test_by", sa.Text),
    sa.Column("test_at", sa.Float),
    sa.Column("test_latency", sa.Float),
    sa.Column("test_status_code", sa.Integer),
    sa.Column("test_error", sa.Text),
    sa.Column("test_excerpt", sa.Text),
)

# --- dashboard sessions (migration 0009): sign-outs, so that every process refuses a signed-out cookie -------------

session_revocations = sa.Table(
    "session_revocations",
    metadata,
    sa.Column("session_id", sa.Text, primary_key=True),  # the cookie's random `sid`
    sa.Column("revoked_at", sa.Float, nullable=False),
    sa.Column("until", sa.Float, nullable=False),  # when the cookie would have expired anyway; purged after it
)
sa.Index("ix_session_revocations_until", session_revocations.c.until)

# --- GitHub's API (migration 0012): reconciliation's gaps and runs, repositories whose releases are polled -------

OPEN_GAP = "state IN ('missing', 'requested')"  # core.reconcile.OPEN_STATES

github_gaps = sa.Table(
    "github_gaps",
    metadata,
    sa.Column("hook", sa.Text, primary_key=True),  # HookRef.key
    sa.Column("delivery_id", sa.Text, primary_key=True),  # the guid
    sa.Column("github_id", sa.BigInteger, nullable=False),  # GitHub's id of the attempt to redeliver
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("action", sa.Text),
    sa.Column("delivered_at", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("github_status", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # GapKind
    sa.Column("state", sa.Text, nullable=False),  # GapState
    sa.Column("found_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("last_requested_at", sa.Float),
    sa.Column("arrived_at", sa.Float),
    sa.Column("error", sa.Text),
)
sa.Index("ix_github_gaps_sort", github_gaps.c.delivered_at, github_gaps.c.hook, github_gaps.c.delivery_id)
sa.Index(
    "ix_github_gaps_state_sort",
    github_gaps.c.state,
    github_gaps.c.delivered_at,
    github_gaps.c.hook,
    github_gaps.c.delivery_id,
)
sa.Index(  # a hook's open gaps, oldest first: few rows, however many gaps have been closed
    "ix_github_gaps_open",
    github_gaps.c.hook,
    github_gaps.c.delivered_at,
    github_gaps.c.delivery_id,
    sqlite_where=sa.text(OPEN_GAP),
    postgresql_where=sa.text(OPEN_GAP),
)

github_hook_scans = sa.Table(
    "github_hook_scans",
    metadata,
    sa.Column("hook", sa.Text, primary_key=True),
    sa.Column("last_run_at", sa.Float, nullable=False),
    sa.Column("last_ok_at", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("newest_seen_at", sa.Float),
    sa.Column("deliveries_seen", sa.Integer, nullable=False),
    sa.Column("requests_made", sa.Integer, nullable=False),
)

tracked_repositories = sa.Table(
    "tracked_repositories",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),  # owner/repo, lower case
    sa.Column("full_name", sa.Text, nullable=False),
    sa.Column("added_at", sa.Float, nullable=False),
    sa.Column("added_by", sa.Text, nullable=False),
    sa.Column("repository_id", sa.BigInteger),
    sa.Column("etag", sa.Text),
    sa.Column("known", sa.Text, nullable=False),  # JSON object: release id -> content digest
    sa.Column("last_polled_at", sa.Float),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_changed_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("next_poll_at", sa.Float, nullable=False),
    sa.Column("polls", sa.Integer, nullable=False),
    sa.Column("not_modified", sa.Integer, nullable=False),
)

# --- leases (migration 0013): one process at a time runs a scheduled role (reconciliation, release tracking) ------

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),  # the role's, e.g. "reconcile"
    sa.Column("holder", sa.Text, nullable=False),  # the holding process's id
    sa.Column("until", sa.Float, nullable=False),  # when it runs out (epoch seconds, on the holders' clock)
)

# --- refused webhook requests (migration 0014): buckets of `core.rejections`, bounded by age and rows ------------

rejections = sa.Table(
    "rejections",
    metadata,
    sa.Column("minute", sa.BigInteger, primary_key=True),  # epoch seconds of the bucket's minute
    sa.Column("reason", sa.Text, primary_key=True),  # core.rejections.Reason
    sa.Column("client", sa.Text, primary_key=True),  # "" unknown, "(malformed)", "~" aggregated
    sa.Column("event", sa.Text, primary_key=True),
    sa.Column("hook_id", sa.Text, primary_key=True),
    sa.Column("delivery_id", sa.Text, nullable=False),  # the newest request's ("" none well-formed)
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("first_at", sa.Float, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
    sa.Column("aggregated", sa.Integer, nullable=False),  # 1: past the cap of distinct keys that minute
)

# --- the audit log (migration 0015): who started which operator action, when, on what, with what result ---------

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # random (ghingest.app.audit)
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("client", sa.Text),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("selection", sa.Text, nullable=False),  # JSON object
    sa.Column("result", sa.Text, nullable=False),  # JSON object
    sa.Column("ok", sa.Boolean, nullable=False),
)
sa.Index("ix_audit_log_sort", audit_log.c.at, audit_log.c.id)
sa.Index("ix_audit_log_action_sort", audit_log.c.action, audit_log.c.at, audit_log.c.id)
sa.Index("ix_audit_log_actor_sort", audit_log.c.actor, audit_log.c.at, audit_log.c.id)
