"""How every AWS adapter talks to its table: the shared `TableContext`, attribute values, and the table calls
that more than one port makes (counters, single and batched reads, paged queries and scans).

Its own module, not `items`: `items` and `job_items` say what each record looks like as an item, this one how any
item goes in and out, with no record in mind; every port (and the codecs) use it, it uses none of them. Items are
low-level client attribute-value maps (`{"S": ...}`), made with boto3's own `TypeSerializer`, so that the table
holds plain attributes that the console and the CLI show as they are. Numbers are decimals: a float goes in as
`Decimal(str(x))` (the shortest text that reads back as the same float) and comes back as an int or a float by the
field it fills; a `None` is left out (a missing attribute reads as None), so that no index key is ever NULL.

The table calls are blocking: a port runs them on a thread through `TableContext.run`, which turns any AWS failure
into `StoreUnavailable`. Keys go in as `keys`' plain dicts; reads hand out plain values (`from_item`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar, cast

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.clients import AwsClients, call, unavailable
from ghingest.adapters.aws.options import AwsOptions
from ghingest.core.errors import StoreUnavailable
from ghingest.ports import Clock

P = ParamSpec("P")
T = TypeVar("T")
Item = dict[str, Any]  # a low-level attribute-value map

COUNTER_VALUE = "value"  # the attribute of a `COUNTER` item that `ADD` moves
_BATCH_GET = 100  # keys per BatchGetItem
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


@dataclass(eq=False)
class TableContext:
    """The table, its clients and the clock, shared by every port of one backend; `closed` once the backend's
    resources are closed (every port then raises `StoreUnavailable`, as the other backends do)."""

    options: AwsOptions
    clients: AwsClients
    clock: Clock
    closed: bool = False

    @property
    def table(self) -> str:
        return self.options.table

    async def run(self, what: str, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`function` (blocking boto3 calls) on a thread; any AWS failure as `StoreUnavailable` naming `what` and
        the service's error code only (never an item, a body or a request)."""
        if self.closed:
            raise StoreUnavailable(f"{what}: the AWS backend is closed")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await call(function, *args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(exc, what) from None


# --- attribute values -------------------------------------------------------------------------------------------


def _storable(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return bytes(cast(Any, value).value)  # (the stubs do not declare `value`)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_item(values: Mapping[str, Any]) -> Item:
    """Plain values as an attribute-value map (None left out, floats as decimals)."""
    return {name: _SERIALIZER.serialize(_storable(v)) for name, v in values.items() if v is not None}


def value(plain: Any) -> dict[str, Any]:
    """One plain value as an attribute value (expression values)."""
    return dict(_SERIALIZER.serialize(_storable(plain)))


def values(**plain: Any) -> Item:
    """Expression attribute values: `values(n=1)` → `{":n": {"N": "1"}}`."""
    return {f":{name}": value(v) for name, v in plain.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An attribute-value map as plain values (numbers as int or float, binary as bytes)."""
    return {name: _plain(_DESERIALIZER.deserialize(v)) for name, v in item.items()}


def float_or_none(number: Any) -> float | None:
    """An optional number attribute (plain) as a float."""
    return None if number is None else float(number)


def int_or_none(number: Any) -> int | None:
    """An optional number attribute (plain) as an int."""
    return None if number is None else int(number)


def key(item_key: Mapping[str, str]) -> Item:
    """An item key of `keys` as an attribute-value map."""
    return to_item(item_key)


def put_new(table: str, item: Item) -> Item:
    """A transaction entry that creates `item`, on the condition that it does not exist."""
    return {"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


# --- table calls (blocking: through `TableContext.run`) ---------------------------------------------------------


def reserve(db: TableContext, counter: str, count: int) -> range:
    """`count` new numbers of a counter (`delivery`, `job`, `attempt`; one `UpdateItem ADD`, none for 0): unique,
    not gapless (numbers a failed write took are never used again)."""
    if count <= 0:
        return range(0)
    response = db.clients.dynamodb.update_item(
        TableName=db.table,
        Key=key(keys.counter(counter)),
        UpdateExpression="ADD #value :count",
        ExpressionAttributeNames={"#value": COUNTER_VALUE},
        ExpressionAttributeValues=values(count=count),
        ReturnValues="UPDATED_NEW",
    )
    last = int(from_item(response["Attributes"])[COUNTER_VALUE])
    return range(last - count + 1, last + 1)


def get(db: TableContext, item_key: Mapping[str, str]) -> dict[str, Any] | None:
    """One item (strongly consistent), or None when it does not exist."""
    response = db.clients.dynamodb.get_item(TableName=db.table, Key=key(item_key), ConsistentRead=True)
    item = response.get("Item")
    return None if item is None else from_item(item)


def batch_get(db: TableContext, item_keys: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """The items of `item_keys` that exist: strongly consistent, in no order, each key read once (BatchGetItem
    refuses a key twice), unprocessed keys asked again."""
    unique = [key(k) for k in {tuple(sorted(k.items())): k for k in item_keys}.values()]
    found: list[dict[str, Any]] = []
    for start in range(0, len(unique), _BATCH_GET):
        request: dict[str, Any] = {db.table: {"Keys": unique[start : start + _BATCH_GET], "ConsistentRead": True}}
        while request:
            response = db.clients.dynamodb.batch_get_item(RequestItems=request)
            found += map(from_item, response.get("Responses", {}).get(db.table, []))
            request = response.get("UnprocessedKeys") or {}
    return found


def query(db: TableContext, **arguments: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query of the table returns, page after page, lazily."""
    return _pages(db.clients.dynamodb.query, {"TableName": db.table, **arguments})


def scan(db: TableContext, **arguments: Any) -> Iterator[dict[str, Any]]:
    """Every item a Scan of the table returns, page after page, lazily."""
    return _pages(db.clients.dynamodb.scan, {"TableName": db.table, **arguments})


def _pages(function: Callable[..., Any], arguments: dict[str, Any]) -> Iterator[dict[str, Any]]:
    while True:
        response = function(**arguments)
        yield from map(from_item, response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
