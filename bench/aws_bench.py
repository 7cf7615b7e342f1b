"""`make bench BENCH_PROFILE=aws`: the AWS profile's Lambda handlers in process, against a moto server.

moto runs in a process of its own (`tests/moto_server.py` on 127.0.0.1, as in the tests), so the CPU figures
are the handlers' own (botocore's request building, signing and parsing included): what a Lambda function would be
billed for, less the time it waits on AWS. moto answers from memory, in Python, over loopback, closing each
connection: its wall times are not AWS's, and are reported apart.

Measured, each in a fresh interpreter (a cold start: imports, settings, the Secrets Manager read, clients):
- receiver: import, first invocation, then warm invocations one at a time (wall and CPU µs per delivery);
- processor: the deliveries the receiver recorded, in SQS batches of 10 as the event source sends them (first batch
  cold, then warm): µs per delivery and deliveries per second within one invocation;
- imports of the libraries a function loads (Powertools' metrics, Mangum, boto3), for the cold-start budget.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret-0123456789"
TOKEN = "bench-api-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "moto_server.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server, url
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto_server did not start")


def provision_environment(endpoint: str, work: Path) -> dict[str, str]:
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    from ghingest.adapters.aws.clients import AwsClients
    from ghingest.adapters.aws.options import AwsOptions
    from ghingest.adapters.aws.provision import provision

    options = AwsOptions(table=f"bench{int(time.time())}", region="us-east-1", endpoint_url=endpoint)
    clients = AwsClients(options)
    options = provision(options, clients)
    secret_arn = clients.secretsmanager.create_secret(
        Name=f"{options.table}-secrets",
        SecretString=json.dumps({"webhook_secrets": [SECRET], "api_tokens": [TOKEN], "session_secret": "s" * 40}),
    )["ARN"]
    return {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "GHINGEST_DATABASE_URL": f"dynamodb://{options.table}",
        "GHINGEST_AWS_REGION": "us-east-1",
        "GHINGEST_AWS_ENDPOINT_URL": endpoint,
        "GHINGEST_AWS_DELIVERIES_TOPIC_ARN": str(options.deliveries_topic_arn),
        "GHINGEST_AWS_INBOX_QUEUE_URL": str(options.inbox_queue_url),
        "GHINGEST_AWS_FORWARDS_TOPIC_ARN": str(options.forwards_topic_arn),
        "GHINGEST_AWS_PAYLOAD_BUCKET": str(options.payload_bucket),
        "GHINGEST_AWS_SECRETS_ARN": secret_arn,
        "GHINGEST_DATA_DIR": str(work / "data"),
        "GHINGEST_LOG_LEVEL": "warning",
        "POWERTOOLS_METRICS_NAMESPACE": "ghingest-bench",
    }


# --- what runs in the fresh interpreters ------------------------------------------------------------------------

RECEIVER = r"""
import json, sys, time, os
t0 = time.perf_counter(); c0 = time.process_time()
from ghingest.app.aws_lambda import receiver
from tests.e2e.aws_events import http_api_request
from ghingest.app import sender, samples
import orjson
imported = time.perf_counter() - t0
count, secret, run = int(sys.argv[1]), sys.argv[2], sys.argv[3]
events = []
for i in range(count + 1):
    payload = samples.release_payload(release_id=10_000 + i % 500, tag=f"v{i % 500}.0.0")
    req = sender.hookshot_request(orjson.dumps(payload), event="release", secret=secret, delivery_id=f"{run}-{i}")
    events.append(http_api_request("POST", "/webhooks/github", headers=req.headers, body=req.body))
import io, contextlib
sink = open(os.devnull, "w")
t1 = time.perf_counter()
with contextlib.redirect_stdout(sink):
    first = receiver.handler(events[0], None)
first_wall = time.perf_counter() - t1
cold_cpu = time.process_time() - c0
assert first["statusCode"] == 202, first
walls = []
c1 = time.process_time()
with contextlib.redirect_stdout(sink):
    for event in events[1:]:
        t = time.perf_counter()
        response = receiver.handler(event, None)
        walls.append(time.perf_counter() - t)
        assert response["statusCode"] == 202, response
warm_cpu = time.process_time() - c1
walls.sort()
print(json.dumps({"import_ms": imported * 1000, "first_ms": first_wall * 1000, "cold_cpu_ms": cold_cpu * 1000,
    "warm_wall_us_p50": walls[len(walls) // 2] * 1e6, "warm_wall_us_p99": walls[int(len(walls) * 0.99)] * 1e6,
    "warm_cpu_us": warm_cpu / len(walls) * 1e6, "count": len(walls)}))
"""

PROCESSOR = r"""
import json, sys, time, os
t0 = time.perf_counter(); c0 = time.process_time()
from ghingest.app.aws_lambda import processor
from tests.e2e.aws_events import sqs_batch
import boto3
imported = time.perf_counter() - t0
expected = int(sys.argv[1])
sqs = boto3.client("sqs", endpoint_url=os.environ["GHINGEST_AWS_ENDPOINT_URL"], region_name="us-east-1")
url = os.environ["GHINGEST_AWS_INBOX_QUEUE_URL"]
arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
import io, contextlib
sink = open(os.devnull, "w")
batches, cold, done, idle = [], None, 0, 0
while done < expected and idle < 20:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120,
                              AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
    if not got:
        idle += 1; time.sleep(0.2); continue
    idle = 0
    event = sqs_batch(got, queue_arn=arn)
    t = time.perf_counter(); c = time.process_time()
    with contextlib.redirect_stdout(sink):
        result = processor.handler(event, None)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert result == {"batchItemFailures": []}, result
    if cold is None:
        cold = {"first_ms": wall * 1000, "cold_cpu_ms": (time.process_time() - c0) * 1000, "size": len(got)}
    else:
        batches.append((len(got), wall, cpu))
    done += len(got)
n = sum(b[0] for b in batches)
wall = sum(b[1] for b in batches); cpu = sum(b[2] for b in batches)
full = [b for b in batches if b[0] == 10]
print(json.dumps({"import_ms": imported * 1000, **(cold or {}), "processed": done, "warm_batches": len(batches),
    "warm_wall_us_per_delivery": wall / n * 1e6, "warm_cpu_us_per_delivery": cpu / n * 1e6,
    "deliveries_per_s_in_a_batch_of_10": (10 * len(full) / sum(b[1] for b in full)) if full else None}))
"""

IMPORTS = r"""
import json, sys, time, importlib
t = time.perf_counter(); importlib.import_module(sys.argv[1]); print(json.dumps((time.perf_counter() - t) * 1000))
"""


def fresh(script: str, args: list[str], env: dict[str, str]) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    server, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="ghingest-aws-bench-") as work:
            env = provision_environment(endpoint, Path(work))
            imports = {
                module: fresh(IMPORTS, [module], env)
                for module in ("boto3", "mangum", "aws_lambda_powertools.metrics", "ghingest.app.aws_lambda.receiver")
            }
            received = fresh(RECEIVER, [str(args.count), SECRET, f"bench{int(time.time())}"], env)
            processed = fresh(PROCESSOR, [str(args.count + 1)], env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:  # werkzeug's server may not stop on SIGTERM while a connection idles
            server.kill()
            server.wait(timeout=10)
    lines = [
        f"AWS profile, handlers in process against moto_server (its CPU not counted); {args.count} deliveries",
        "imports in a fresh interpreter (ms): " + ", ".join(f"{m} {v:.0f}" for m, v in imports.items()),
        f"receiver cold start: import {received['import_ms']:.0f} ms, first invocation {received['first_ms']:.0f} ms"
        f" (CPU {received['cold_cpu_ms']:.0f} ms in all)",
        f"receiver warm: {received['warm_cpu_us']:.0f} µs CPU per delivery; wall p50 {received['warm_wall_us_p50']:.0f}"
        f" µs, p99 {received['warm_wall_us_p99']:.0f} µs (moto's answers included)",
        f"processor cold start: import {processed['import_ms']:.0f} ms, first batch {processed.get('first_ms', 0):.0f}"
        f" ms (CPU {processed.get('cold_cpu_ms', 0):.0f} ms in all)",
        f"processor warm: {processed['warm_cpu_us_per_delivery']:.0f} µs CPU per delivery,"
        f" {processed['warm_wall_us_per_delivery']:.0f} µs wall; one invocation handles"
        f" {processed['deliveries_per_s_in_a_batch_of_10'] or 0:.0f} deliveries/s in batches of 10"
        f" ({processed['processed']} processed)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(
            text + "\n" + json.dumps({"imports": imports, "receiver": received, "processor": processed})
        )


if __name__ == "__main__":
    main()
