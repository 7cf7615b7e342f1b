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

    def render(self) -> bytes:
        return generate_latest(self.registry)
