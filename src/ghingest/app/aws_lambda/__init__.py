"""The AWS serverless profile's Lambda functions: the same receiver, worker, forwarder, dashboard, reconciler and
release tracker as every other profile, each behind the event shape its trigger sends (API Gateway HTTP API payload
2.0, SQS batches, a schedule). `container` holds what one Lambda container keeps across invocations; deploy/aws/
wires the functions.

| function | trigger | runs |
|---|---|---|
| `receiver.handler` | `POST /webhooks/github` | `app.receiver.WebhookReceiver` (Mangum) |
| `processor.handler` | the inbox queue (SQS, partial batch failures) | `app.worker.Worker.handle` |
| `forwarder.handler` | every destination's queue (SQS, partial batch failures) | `app.forwarder.Forwarder.deliver` |
| `dashboard.handler` | every other route | the read API and dashboard (Mangum), polling instead of streaming |
| `sweeper.handler` | a schedule | republishes what was recorded but never sent on |
| `github_sync.handler` | a schedule | a round of `Reconciler.run_once` and `ReleaseTracker.poll_due`, under leases |
"""
