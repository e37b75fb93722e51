"""DynamoDB helpers shared by the table adapters: item (de)serialisation and one conditional transaction."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from pipeshare.adapters.aws_errors import translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_ser = TypeSerializer()
_de = TypeDeserializer()


def item(values: dict[str, Any]) -> dict[str, Any]:
    """Attribute values in DynamoDB's wire form; None values are left out."""
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None}


def deserialize(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in raw.items()}


def deserialize_value(raw: dict[str, Any]) -> Any:
    return _de.deserialize(raw)


def _json_default(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else str(value)


def plain(value: Any) -> Any:
    """JSON-like data as DynamoDB stores it: numbers as Decimal, everything else JSON."""
    return json.loads(json.dumps(value, default=_json_default), parse_float=Decimal)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def condition_failed(exc: ClientError) -> bool:
    """A conditional write refused (alone, or as the only reason a transaction was cancelled)."""
    code = exc.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) and all(
            r.get("Code") in ("None", "ConditionalCheckFailed", None) for r in reasons
        )
    return False


# cancellation reasons worth trying again at once: another transaction held an item, or the table was throttled
TRANSIENT_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
TRANSACT_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0
sleep: Callable[[float], None] = time.sleep  # replaced by tests and by the local stack's scenario clock


def transient(exc: ClientError) -> bool:
    """A transaction cancelled only for transient reasons (conflict, throttling): the same request may succeed."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    codes = {r.get("Code") for r in exc.response.get("CancellationReasons", [])} - {"None", None}
    return bool(codes) and codes <= TRANSIENT_REASONS


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return (rng or random).uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def transact(ddb: DynamoDBClient, items: list[dict[str, Any]]) -> bool:
    """TransactWriteItems: True when written, False when a condition refused it; other errors are translated.

    A transaction cancelled for transient reasons only (`TransactionConflict`, throttling) is sent again after a
    jittered backoff, up to TRANSACT_ATTEMPTS times in all, inside this invocation; then the error is raised."""
    for attempt in range(TRANSACT_ATTEMPTS):
        try:
            ddb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if condition_failed(exc):
                return False
            if transient(exc) and attempt < TRANSACT_ATTEMPTS - 1:
                sleep(backoff_seconds(attempt))
                continue
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return True
    raise AssertionError("unreachable")  # pragma: no cover


def consumer_spend_item(ddb: DynamoDBClient, table: str, month: str, consumer: str) -> dict[str, Any]:
    """The consumer's month-to-date spend item (`SPEND#<month>`, `CONSUMER#<account>`), read strongly consistent
    ({} when nothing is counted yet)."""
    try:
        response = ddb.get_item(
            TableName=table, Key=item({"pk": f"SPEND#{month}", "sk": f"CONSUMER#{consumer}"}), ConsistentRead=True
        )
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc) from exc
    return deserialize(response.get("Item") or {})
