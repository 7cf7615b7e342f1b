"""ghingest: receive, verify, durably record and process GitHub webhook deliveries."""

__version__ = "0.1.0"
