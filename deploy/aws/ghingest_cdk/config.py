"""What the stack is built from: the forwarding destinations (CDK context) and the asset's location.

Destinations come from the route file that `ghingest.app.routes_config` reads (`-c routesFile=routes.toml`), so the
stack and the functions agree on names and on what each destination may receive; or, without routes, from a plain
list (`-c destinations=ci,chat`). This module imports no `aws_cdk` and performs no I/O beyond reading that file, so
its rules (the filter policies above all) are plain functions of the route table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ghingest.app.routes_config import RoutesError, parse_routes
from ghingest.core.routing import RouteTable

# SNS allows at most 150 combinations of values in one filter policy (the product of the lists' lengths).
MAX_FILTER_COMBINATIONS = 150
# A forward queue's redrive allows the destination's own attempts plus this many receives that were not attempts
# (a function that timed out or crashed before it recorded one).
EXTRA_RECEIVES = 20  # receives that were no attempt: see `max_receive_count`
DEFAULT_MAX_ATTEMPTS = 10  # RetryConfig's default
DEFAULT_BUILD_DIR = Path(__file__).resolve().parents[1] / "build"  # deploy/aws/build (deploy/aws/.gitignore)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a destination's name, as routes_config checks it


class ConfigError(Exception):
    """The CDK context does not describe a valid stack; the message names the context key."""


@dataclass(frozen=True, slots=True)
class DestinationSpec:
    """One forwarding destination as the stack sees it: a queue, a DLQ and a filtered subscription.

    `events` / `actions` empty means no filter on that attribute (some route to the destination takes any).
    """

    name: str
    events: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    concurrency: int | None = None  # the destination's `concurrency`: at most this many invocations at once

    @property
    def max_receive_count(self) -> int:
        """The redrive: a safety net for a notice that crashes the forwarder every time, never the retry limit
        (the forward queue dead-letters a job itself, after its attempts, and sends the notice to the DLQ). A
        notice is also received without an attempt (hidden again until a backoff longer than 12 h is due, a
        duplicate notice, a lease run out), so the count allows several receives per attempt (SQS's cap: 1,000)."""
        return min(1000, 4 * self.max_attempts + EXTRA_RECEIVES)

    def filter_policy(self) -> dict[str, list[str]]:
        """The forwards topic's subscription filter for this destination, on the notice's message attributes.

        `destination` always; `event` and `action` only when every route to the destination names them, since
        a route without a list takes any value, or none (a notice of an event without an action has no `action`
        attribute, which an `action` filter would drop). The filter is a superset of what the routes accept: the
        processor decides what is forwarded; the filter only keeps a queue from seeing other destinations' jobs.
        When the lists multiply past SNS's limit, `action` and then `event` are left out (still a superset).
        """
        policy: dict[str, list[str]] = {"destination": [self.name]}
        if self.events:
            policy["event"] = list(self.events)
        if self.actions:
            policy["action"] = list(self.actions)
        for dropped in ("action", "event"):
            if _combinations(policy) <= MAX_FILTER_COMBINATIONS:
                break
            policy.pop(dropped, None)
        return policy


def _combinations(policy: Mapping[str, list[str]]) -> int:
    product = 1
    for values in policy.values():
        product *= len(values)
    return product


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Everything the stack takes that is not a CloudFormation parameter (those are chosen at deploy time)."""

    destinations: tuple[DestinationSpec, ...] = ()
    routes_file: Path | None = None  # shipped in the code asset as routes.toml when given
    lambda_bundle: Path | None = None  # a directory made by bundle.py; None: the source-only fallback
    build_dir: Path = DEFAULT_BUILD_DIR  # where the source-only asset is staged

    def destination_names(self) -> Iterator[str]:
        return (d.name for d in self.destinations)


class _Placeholders(Mapping[str, str]):
    """An environment in which every variable is set: `secret_env` names are resolved by the functions at run
    time, not on the machine that synthesizes the template."""

    def __getitem__(self, key: str) -> str:
        return "synth-placeholder"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def destinations_from_routes(table: RouteTable) -> tuple[DestinationSpec, ...]:
    """One `DestinationSpec` per destination of a route table, with the union of its routes' events and actions
    (none when any route to it lists none, or no route reaches it)."""
    specs: list[DestinationSpec] = []
    for name, destination in table.destinations.items():
        routes = [route for route in table.routes if name in route.destinations]
        events = sorted(set().union(*(r.events for r in routes))) if routes and all(r.events for r in routes) else []
        actions = sorted(set().union(*(r.actions for r in routes))) if routes and all(r.actions for r in routes) else []
        specs.append(
            DestinationSpec(
                name=name,
                events=tuple(events),
                actions=tuple(actions),
                max_attempts=destination.retry.max_attempts,
                concurrency=destination.concurrency,
            )
        )
    return tuple(specs)


def load_routes_file(path: Path) -> RouteTable:
    """The route table with `ghingest`'s own validation; secrets named by `secret_env` need not be set here."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"context routesFile: cannot read {path}: {exc.strerror}") from None
    try:
        return parse_routes(text, path=path, environ=_Placeholders())
    except RoutesError as exc:
        raise ConfigError(f"context routesFile: {exc}") from None


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ConfigError("context destinations: a comma-separated string or a list of names")
    names = tuple(item for item in items if item)
    if len(set(names)) != len(names):
        raise ConfigError("context destinations: a name is listed twice")
    return names


def config_from_context(context: Mapping[str, object], *, base: Path) -> StackConfig:
    """Read `routesFile`, `destinations`, `lambdaBundle` and `buildDir` (relative paths: to `base`). Without
    `lambdaBundle`, `<buildDir>/lambda` is the bundle when `bundle.py` made it."""

    def path_of(key: str) -> Path | None:
        value = context.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(f"context {key}: a path")
        return (base / value).resolve()

    routes_file = path_of("routesFile")
    if routes_file is not None:
        if context.get("destinations"):
            raise ConfigError("context: give routesFile or destinations, not both")
        destinations = destinations_from_routes(load_routes_file(routes_file))
    elif context.get("destinations"):
        destinations = tuple(DestinationSpec(name=name) for name in _names(context["destinations"]))
    else:
        destinations = ()
    for spec in destinations:
        if not _NAME.fullmatch(spec.name):
            raise ConfigError(f"context destinations: {spec.name[:70]!r} is not a destination name (as in routes)")
    build_dir = path_of("buildDir") or DEFAULT_BUILD_DIR
    bundle = path_of("lambdaBundle")
    if bundle is None and (build_dir / "lambda" / "ghingest").is_dir():
        bundle = build_dir / "lambda"  # what `bundle.py` made, when it was run
    if bundle is not None and not (bundle / "ghingest").is_dir():
        raise ConfigError(f"context lambdaBundle: {bundle} holds no ghingest package (run deploy/aws/bundle.py)")
    return StackConfig(destinations=destinations, routes_file=routes_file, lambda_bundle=bundle, build_dir=build_dir)
