"""Prometheus metrics, in a registry of their own per application instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "ghingest_deliveries_total",
            "Webhook deliveries by event and outcome (accepted, duplicate, rejected, unavailable,"
            " processed, failed, retried).",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "ghingest_signature_failures_total",
            "Requests refused because their signature was missing or wrong.",
            registry=self.registry,
        )
        self.rejections = Counter(
            "ghingest_rejections_total", "Requests refused, by error code.", ["code"], registry=self.registry
        )
        self.rejected_requests = Counter(
            "ghingest_rejected_requests_total",
            "Webhook requests refused, by reason (wrong_secret, missing_signature, malformed_signature,"
            " unsupported_algorithm, bad_headers, malformed_payload, too_large, unsupported_media_type,"
            " forbidden_source): what the Rejected page lists.",
            ["reason"],
            registry=self.registry,
        )
        self.rejections_unrecorded = Counter(
            "ghingest_rejections_unrecorded_total",
            "Refused requests counted in no bucket of the rejected-requests log: the buffer was full (the store"
            " down for long, under a flood).",
            registry=self.registry,
        )
        self.inbox_depth = Gauge(
            "ghingest_inbox_depth", "Deliveries recorded but not processed yet.", registry=self.registry
        )
        self.processing_lag = Histogram(
            "ghingest_processing_lag_seconds",
            "Time from receipt to the end of processing.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.processing_failures = Counter(
            "ghingest_processing_failures_total",
            "Processing attempts that raised, by whether the delivery will be retried.",
            ["final"],
            registry=self.registry,
        )

        self.forwards = Counter(
            "ghingest_forwards_total",
            "Forward attempts by destination and outcome (delivered, retry, dead).",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.forward_attempt_seconds = Histogram(
            "ghingest_forward_attempt_seconds",
            "Duration of one forward attempt (request to answer or error), by destination.",
            ["destination"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.forward_receipt_to_attempt = Histogram(
            "ghingest_forward_receipt_to_first_attempt_seconds",
            "Time from a delivery's receipt to the start of its first forward attempt.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.forward_queue_depth = Gauge(
            "ghingest_forward_queue_depth",
            "Forward jobs pending, awaiting a retry or in flight, by destination.",
            ["destination"],
            registry=self.registry,
        )
        self.forward_dead_letters = Gauge(
            "ghingest_forward_dead_letters",
            "Forward jobs dead-lettered and not replayed, by destination.",
            ["destination"],
            registry=self.registry,
        )
        self.forward_paused = Gauge(
            "ghingest_forward_destination_paused",
            "1 while an operator has paused the destination (its forwards wait), else 0.",
            ["destination"],
            registry=self.registry,
        )
        self.routes_reloads = Counter(
            "ghingest_routes_reloads_total",
            "Reloads of the route file, by result (ok, error; an error keeps the running routes).",
            ["result"],
            registry=self.registry,
        )
        self.github_meta_refreshes = Counter(
            "ghingest_github_meta_refreshes_total",
            "Fetches of GitHub's /meta for the webhook source allow-list, by result (ok, not_modified, error; an"
            " error keeps the list in force).",
            ["result"],
            registry=self.registry,
        )
        self.github_meta_checked = Gauge(
            "ghingest_github_meta_checked_timestamp_seconds",
            "When GitHub's /meta last confirmed the hook networks in force (200 or 304; at start, from the disk"
            " cache), UNIX time; 0: no list loaded.",
            registry=self.registry,
        )
        self.webhook_allowed_networks = Gauge(
            "ghingest_webhook_allowed_networks",
            "Networks the webhook route accepts deliveries from (GitHub's hooks and the configured ones).",
            registry=self.registry,
        )

        self.sign_ins = Counter(
            "ghingest_sign_ins_total",
            "Dashboard sign-in attempts by method (token, password) and outcome (ok, failed, throttled, busy).",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.audit_write_failures = Counter(
            "ghingest_audit_write_failures_total",
            "Audit log entries that could not be written, by action (the action's effect stands; the entry is in"
            " the error log as audit.not_recorded).",
            ["action"],
            registry=self.registry,
        )
        self.http_refusals = Counter(
            "ghingest_http_refusals_total",
            "Requests or connections cut by an HTTP limit, by reason (header_timeout, body_timeout,"
            " header_too_large, too_many_headers, too_many_connections, body_too_large).",
            ["reason"],
            registry=self.registry,
        )

        # GitHub's REST API: reconciliation (deliveries API) and release tracking (README "Never miss an event").
        self.reconcile_runs = Counter(
            "ghingest_reconcile_runs_total",
            "Reconciliation runs by hook and result (ok, error).",
            ["hook", "result"],
            registry=self.registry,
        )
        self.reconcile_gaps_found = Counter(
            "ghingest_reconcile_gaps_found_total",
            "Deliveries GitHub lists for a hook that ghingest had not recorded from it, by hook and kind (lost: no"
            " hook's copy is here; hook: another hook's is).",
            ["hook", "kind"],
            registry=self.registry,
        )
        self.reconcile_redeliveries = Counter(
            "ghingest_reconcile_redeliveries_total",
            "Redelivery requests by hook and result (requested, refused, failed).",
            ["hook", "result"],
            registry=self.registry,
        )
        self.reconcile_arrived = Counter(
            "ghingest_reconcile_arrived_total",
            "Gaps whose delivery arrived after it was found, by hook.",
            ["hook"],
            registry=self.registry,
        )
        self.reconcile_gaps = Gauge(
            "ghingest_reconcile_gaps",
            "Gaps by state (missing, requested, arrived, gave_up, refused, expired), as last counted.",
            ["state"],
            registry=self.registry,
        )
        self.github_requests = Counter(
            "ghingest_github_requests_total",
            "Requests to GitHub's REST API by route template and status (304: not modified, no rate-limit cost).",
            ["route", "status"],
            registry=self.registry,
        )
        self.github_rate_limit_remaining = Gauge(
            "ghingest_github_rate_limit_remaining",
            "Requests left in GitHub's primary rate limit, by resource, as its last answer said.",
            ["resource"],
            registry=self.registry,
        )
        self.track_polls = Counter(
            "ghingest_track_polls_total",
            "Polls of tracked repositories' releases by result (changed, not_modified, unchanged, error).",
            ["result"],
            registry=self.registry,
        )
        self.track_releases = Counter(
            "ghingest_track_releases_total",
            "New or changed releases a poll put into the pipeline, by action (published, created, edited).",
            ["action"],
            registry=self.registry,
        )
        self.tracked_repositories = Gauge(
            "ghingest_tracked_repositories", "Repositories whose releases are polled.", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
