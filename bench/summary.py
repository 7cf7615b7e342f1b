"""Print the summary table of a `bench/run.sh` run from the files it left in its work directory."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any


def wrk_runs(work: Path, pattern: str = "wrk-[0-9]*.txt") -> list[dict[str, float]]:
    runs = []
    for path in sorted(work.glob(pattern)):
        match = re.search(r"WRK_RESULT (.*)", path.read_text())
        if match:
            runs.append({k: float(v) for k, v in (item.split("=") for item in match.group(1).split())})
    return runs


def acks_per_s(run: dict[str, float]) -> float:
    return (run["requests"] - run["errors_status"] - run["errors_timeout"]) / (run["duration_us"] / 1e6)


def load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def row(name: str, value: str, target: str = "", ok: bool | None = None) -> str:
    verdict = "" if ok is None else ("met" if ok else "MISSED")
    return f"{name:52s} {value:>24s}  {target:>14s}  {verdict}"


def main() -> None:
    work = Path(sys.argv[1])
    meta = dict(line.split("=", 1) for line in (work / "meta.txt").read_text().split() if "=" in line)
    out: list[str] = []
    out.append("ghingest benchmark summary")
    out.append(f"  run {meta.get('started')}  commit {meta.get('commit')}  quick={meta.get('quick')}")
    out.append(
        f"  {meta.get('cpus')} CPUs, loopback only; server on CPUs {meta.get('server_cpus')},"
        f" load generators on CPUs {meta.get('load_cpus')} (taskset), nice {meta.get('nice', '0')}"
    )
    out.append(
        f"  load average before {meta.get('loadavg_before')}, after {meta.get('loadavg_after')}"
        " (other work on the machine makes every figure noisier)"
    )
    out.append("")
    out.append(row("INGEST (issue 2), `ghingest serve`, ~8 KB release", "value", "target", None))

    runs = wrk_runs(work)
    if runs:
        acks = [acks_per_s(r) for r in runs]
        median_run = sorted(runs, key=lambda r: r["requests"])[len(runs) // 2]
        errors = sum(r["errors_status"] + r["errors_timeout"] + r["errors_read"] + r["errors_connect"] for r in runs)
        out.append(
            row(
                f"durable acks/s at saturation (wrk -c{meta.get('connections', '?')}, median of {len(runs)})",
                f"{statistics.median(acks):,.0f}/s",
                ">= 5,000/s",
                statistics.median(acks) >= 5000,
            )
        )
        out.append(row("  all runs", " / ".join(f"{a:,.0f}" for a in acks)))
        out.append(
            row(
                "ack latency p50 / p99 at saturation (median run)",
                f"{median_run['p50_us'] / 1000:.1f} / {median_run['p99_us'] / 1000:.1f} ms",
            )
        )
        out.append(row("  non-2xx, timeouts, socket errors (all runs)", f"{errors:.0f}"))
    stored = (work / "stored.txt").read_text().strip() if (work / "stored.txt").exists() else ""
    if stored and runs:
        n = int(stored.split("=")[1])
        acked = sum(r["requests"] - r["errors_status"] - r["errors_timeout"] for r in runs)
        out.append(row("  rows stored for those runs (>= acks: durable)", f"{n:,} vs {acked:,.0f} acks"))
    for close in wrk_runs(work, "wrk-close.txt"):
        out.append(
            row(
                "acks/s, a new connection per request (p50 / p99)",
                f"{acks_per_s(close):,.0f}/s ({close['p50_us'] / 1000:.1f} / {close['p99_us'] / 1000:.1f} ms)",
            )
        )
        errors_close = close["errors_status"] + close["errors_timeout"] + close["errors_connect"] + close["errors_read"]
        out.append(row("  non-2xx, timeouts, socket errors", f"{errors_close:.0f}"))
    fixed = load(work / "fixed500.json")
    if fixed:
        out.append(
            row(
                "ack latency p50 / p99 at 500 req/s (open loop)",
                f"{fixed['ack_p50_ms']:.1f} / {fixed['ack_p99_ms']:.1f} ms",
                "p99 < 15 ms",
                fixed["ack_p99_ms"] < 15,
            )
        )
        out.append(
            row(
                "  achieved rate, statuses",
                f"{fixed['achieved_rate']:.0f}/s {fixed['statuses']}",
            )
        )
        if "e2e_p99_ms" in fixed:
            out.append(
                row(
                    "end-to-end p50 / p99 at 500 req/s (send->visible)",
                    f"{fixed['e2e_p50_ms']:.1f} / {fixed['e2e_p99_ms']:.1f} ms",
                    "p99 < 100 ms",
                    fixed["e2e_p99_ms"] < 100,
                )
            )
            out.append(row("  deliveries seen in the store", f"{fixed['e2e_seen']:,} of {fixed['sent']:,}"))
    processing = [load(p) for p in sorted(work.glob("processing-*.json"))]
    if processing:
        rates = [p["processing_per_s"] for p in processing]
        out.append(
            row(
                f"processing rate inbox->release record (median of {len(rates)})",
                f"{statistics.median(rates):,.0f}/s",
                ">= 5,000/s",
                statistics.median(rates) >= 5000,
            )
        )
        out.append(
            row(
                "  all runs; worker batch size",
                " / ".join(f"{r:,.0f}" for r in rates) + f"; {processing[0]['worker_batch_size']}",
            )
        )
    rss = (work / "rss.txt").read_text() if (work / "rss.txt").exists() else ""
    match = re.search(r"VmHWM: (\d+) kB", rss)
    if match:
        mb = int(match.group(1)) / 1024
        out.append(row("peak RSS of the server (VmHWM, after all ingest runs)", f"{mb:.0f} MB", "< 200 MB", mb < 200))

    seed = load(work / "seed.json")
    read = load(work / "read.json")
    if read:
        out.append("")
        title = "READ SIDE (issue 3)"
        if seed:
            title += (
                f": {seed['events']:,} events, {seed['releases']:,} releases, {seed['repositories']:,} repos"
                f" ({seed['size_mb']:,} MB, seeded in {seed['seconds']} s)"
            )
        out.append(title)
        out.append(row("case (one request at a time)", "p50 / p95 ms", "p95 < 50 ms", None))
        for name, figures in read["cases"].items():
            out.append(
                row(
                    f"  {name} (n={figures['n']})",
                    f"{figures['p50_ms']:.1f} / {figures['p95_ms']:.1f}",
                    "",
                    figures["p95_ms"] < 50,
                )
            )
        if not read["dashboard"]:
            out.append("  dashboard pages: not measured (no sign-in link available)")
    forward = work / "forward.txt"
    if forward.exists():
        out.append("")
        out.append("FORWARDING (issue 4), bench/forward_bench.py output:")
        out.extend("  " + line for line in forward.read_text().splitlines()[-30:])
    github = work / "github.txt"
    if github.exists():
        out.append("")
        out.append("GITHUB SYNC (issue 11), bench/github_bench.py (target: 0 rate-limit cost when nothing changed):")
        out.extend("  " + line for line in github.read_text().splitlines())
    print("\n".join(out))


if __name__ == "__main__":
    main()
