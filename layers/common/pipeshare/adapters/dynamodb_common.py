"""DynamoDB helpers shared by the table adapters: item (de)serialisation and one conditional transaction."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from pipeshare.adapters.aws_errors import CONDITION_FAILED, TRANSIENT_CANCELLATION, translated

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_ser = TypeSerializer()
_de = TypeDeserializer()


def item(values: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    """Attribute values in DynamoDB's wire form; None values are left out."""
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None}


def deserialize(raw: Mapping[str, AttributeValueTypeDef]) -> dict[str, Any]:
    """An item's attributes as Python values (numbers as Decimal): what DynamoDB holds is untyped JSON."""
    return {k: _de.deserialize(v) for k, v in raw.items()}


def deserialize_value(raw: AttributeValueTypeDef) -> Any:
    return _de.deserialize(raw)


def _json_default(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else str(value)


def plain(value: Any) -> Any:
    """JSON-like data as DynamoDB stores it: numbers as Decimal, everything else JSON."""
    return json.loads(json.dumps(value, default=_json_default), parse_float=Decimal)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


TRANSACT_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0
sleep: Callable[[float], None] = time.sleep  # replaced by tests and by the local stack's scenario clock


class _Again(Enum):
    """A transaction cancelled for transient reasons only: send it again."""

    AGAIN = "again"


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return (rng or random).uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def transact(ddb: DynamoDBClient, items: list[dict[str, Any]]) -> bool:
    """TransactWriteItems: True when written, False when a condition refused it; other errors are translated.

    A transaction cancelled for transient reasons only (`TransactionConflict`, throttling) is sent again after a
    jittered backoff, up to TRANSACT_ATTEMPTS times in all, inside this invocation; then the error is raised."""
    for attempt in range(TRANSACT_ATTEMPTS - 1):
        written = _transact_or_again(ddb, items)
        if written is not _Again.AGAIN:
            return written
        sleep(backoff_seconds(attempt))
    return _transact_once(ddb, items)


_REFUSED: Final[Mapping[str, bool | _Again]] = {CONDITION_FAILED: False, TRANSIENT_CANCELLATION: _Again.AGAIN}


@translated(returning=_REFUSED)
def _transact_or_again(ddb: DynamoDBClient, items: list[dict[str, Any]]) -> bool:
    ddb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
    return True


@translated(returning={CONDITION_FAILED: False})
def _transact_once(ddb: DynamoDBClient, items: list[dict[str, Any]]) -> bool:
    """The last attempt: a transient cancellation is raised (translated) too."""
    ddb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
    return True


@translated()
def consumer_spend_item(ddb: DynamoDBClient, table: str, month: str, consumer: str) -> dict[str, Any]:
    """The consumer's month-to-date spend item (`SPEND#<month>`, `CONSUMER#<account>`), read strongly consistent
    ({} when nothing is counted yet)."""
    response = ddb.get_item(
        TableName=table, Key=item({"pk": f"SPEND#{month}", "sk": f"CONSUMER#{consumer}"}), ConsistentRead=True
    )
    return deserialize(response.get("Item") or {})
