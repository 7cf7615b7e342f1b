#!/usr/bin/env python3
"""Generate GitHub's webhook event vocabulary, and one minimal payload per (event, action), from GitHub's schemas.

The source is GitHub's official webhooks OpenAPI description as the npm package `@octokit/openapi-webhooks`
publishes it (one document per product: github.com, GitHub Enterprise Cloud, each GHES release). The vocabulary
is the union over every product: an event "carries an action" only when every payload schema of it, in every
product, requires one.

    python3 scripts/generate_github_events.py               # npm pack the pinned version into a temp dir
    python3 scripts/generate_github_events.py --package DIR # or use an unpacked package (DIR/generated/*.json)

Writes `src/ghingest/core/github_events.py` (the vocabulary, imported by the processor, metrics and dashboard)
and `tests/fixtures/github_payloads.jsonl` (a minimal schema-valid payload per webhook, one JSON line each: only
required properties, the first choice of every union; the processing tests feed every one through the pipeline).
Both are committed; re-run this script to move to a newer schema release, and review the diff.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKAGE = "@octokit/openapi-webhooks"
VERSION = "12.1.0"
ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "src" / "ghingest" / "core" / "github_events.py"
FIXTURE = ROOT / "tests" / "fixtures" / "github_payloads.jsonl"
_MAX_DEPTH = 12
_LINE_LENGTH = 120


def _event_name(operation_id: str) -> str:
    return operation_id.split("/", 1)[0].replace("-", "_")


def _resolve(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _payload_schema(document: Mapping[str, Any], post: Mapping[str, Any]) -> Mapping[str, Any]:
    return _resolve(document, post["requestBody"]["content"]["application/json"]["schema"])


def _requires(document: Mapping[str, Any], schema: Mapping[str, Any], key: str) -> bool:
    """Whether every payload `schema` admits has property `key` (through `oneOf`/`anyOf`/`allOf`)."""
    schema = _resolve(document, schema)
    if key in schema.get("required", []):
        return True
    if any(_requires(document, part, key) for part in schema.get("allOf", [])):
        return True
    for union in ("oneOf", "anyOf"):
        if schema.get(union):
            return all(_requires(document, part, key) for part in schema[union])
    return False


def _values(document: Mapping[str, Any], schema: Mapping[str, Any], key: str) -> set[str]:
    """The `enum` values property `key` takes anywhere in `schema`."""
    schema = _resolve(document, schema)
    found = set(_resolve(document, schema.get("properties", {}).get(key, {})).get("enum", []))
    for union in ("oneOf", "anyOf", "allOf"):
        for part in schema.get(union, []):
            found |= _values(document, part, key)
    return found


def vocabulary(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{event: {"action": bool, "actions": sorted list}} over every product."""
    events: dict[str, dict[str, Any]] = {}
    for document in documents.values():
        for webhook in document["webhooks"].values():
            post = webhook["post"]
            name = _event_name(post["operationId"])
            schema = _payload_schema(document, post)
            entry = events.setdefault(name, {"action": True, "actions": set()})
            entry["action"] = entry["action"] and _requires(document, schema, "action")
            entry["actions"].update(_values(document, schema, "action"))
    return {name: {"action": e["action"], "actions": sorted(e["actions"])} for name, e in sorted(events.items())}


def _example(document: Mapping[str, Any], schema: Mapping[str, Any], depth: int = 0) -> Any:
    """A minimal value that satisfies `schema`: required properties only, the first choice of every union."""
    schema = _resolve(document, schema)
    for union in ("allOf",):
        if union in schema:
            merged: dict[str, Any] = {}
            for part in schema[union]:
                value = _example(document, part, depth)
                if isinstance(value, dict):
                    merged.update(value)
            return merged
    for union in ("oneOf", "anyOf"):
        if union in schema:
            choices = [_resolve(document, s) for s in schema[union]]
            non_null = [s for s in choices if s.get("type") != "null"] or choices
            return _example(document, non_null[0], depth)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        if depth >= _MAX_DEPTH:
            return {}
        properties = schema.get("properties", {})
        return {key: _example(document, properties.get(key, {}), depth + 1) for key in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2024-05-01T12:00:00Z"
    if fmt in ("uri", "url"):
        return "https://github.com/octo-org/octo-repo"
    if fmt == "email":
        return "octocat@github.com"
    return "octocat"


def examples(documents: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One minimal payload per webhook of the github.com description (else the first product's)."""
    product = "api.github.com" if "api.github.com" in documents else next(iter(documents))
    document = documents[product]
    out = []
    for key, webhook in sorted(document["webhooks"].items()):
        post = webhook["post"]
        payload = _example(document, _payload_schema(document, post))
        out.append({"webhook": key, "event": _event_name(post["operationId"]), "payload": payload})
    return out


def render_module(events: Mapping[str, Mapping[str, Any]], source: str) -> str:
    lines = [
        '"""GitHub\'s webhook event vocabulary. GENERATED by scripts/generate_github_events.py: do not edit by hand.',
        "",
        f"From {source}: GitHub's webhooks OpenAPI description, every product (github.com, GHEC, GHES).",
        "",
        "`EVENTS`: every event name GitHub documents. `EVENTS_WITH_ACTION`: the events whose payloads always carry an",
        "`action` (every schema of the event, in every product, requires it). `ACTIONS`: the actions each event is",
        "documented with (an event may carry an action that is not listed: `repository_dispatch` takes any, and GitHub",
        "adds actions over time).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from collections.abc import Mapping",
        "",
        f'SOURCE = "{source}"',
        "",
        "ACTIONS: Mapping[str, tuple[str, ...]] = {",
    ]
    for name, entry in events.items():
        actions = ", ".join(f'"{a}"' for a in entry["actions"])
        trailing = "," if len(entry["actions"]) == 1 else ""
        line = f'    "{name}": ({actions}{trailing}),'
        if len(line) <= _LINE_LENGTH:
            lines.append(line)
        else:  # one action a line, as `ruff format` writes it
            lines += [f'    "{name}": (', *(f'        "{a}",' for a in entry["actions"]), "    ),"]
    lines += [
        "}",
        "",
        "EVENTS: frozenset[str] = frozenset(ACTIONS)",
        "",
        "EVENTS_WITH_ACTION: frozenset[str] = frozenset(",
        "    {",
    ]
    lines += [f'        "{name}",' for name, entry in events.items() if entry["action"]]
    lines += ["    }", ")", ""]
    return "\n".join(lines)


def _load(package: Path) -> dict[str, dict[str, Any]]:
    generated = package / "generated"
    files = sorted(generated.glob("*.json"))
    if not files:
        sys.exit(f"no {generated}/*.json: is {package} an unpacked {PACKAGE}?")
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in files}


def _npm_pack(into: Path) -> Path:
    spec = f"{PACKAGE}@{VERSION}"
    subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(into)], check=True)
    archive = next(into.glob("*.tgz"))
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "package"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", type=Path, help=f"an unpacked {PACKAGE} (default: npm pack {VERSION})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package or _npm_pack(Path(tmp))
        manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
        source = f"{manifest['name']}@{manifest['version']}"
        documents = _load(package)
        events = vocabulary(documents)
        MODULE.write_text(render_module(events, source), encoding="utf-8")
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        rows = [json.dumps({"source": source}, sort_keys=True)]
        rows += [json.dumps(row, sort_keys=True, separators=(",", ":")) for row in examples(documents)]
        FIXTURE.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"{len(events)} events from {source} -> {MODULE.relative_to(ROOT)}, {FIXTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
