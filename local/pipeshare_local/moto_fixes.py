"""Corrections to moto behaviour that the local stack depends on, applied once per process.

moto 5.2.5 TransactWriteItems runs every operation, then rolls a cancelled transaction back by swapping in deep
copies of the tables. Two effects differ from DynamoDB: stream records of the cancelled operations are emitted, and
stream iterators handed out earlier point at the swapped-out table, so they never see later records. DynamoDB emits
nothing for a cancelled transaction. The fix evaluates every condition first and cancels before anything is written.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend

_applied = False


def _key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return op["Key"]  # type: ignore[no-any-return]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _precheck(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    errors: list[tuple[str | None, str | None, Any]] = []
    for item in transact_items:
        op_type, op = next(iter(item.items()))
        condition = op.get("ConditionExpression")
        if condition is None or op["TableName"] not in backend.tables:
            errors.append((None, None, None))
            continue
        current = backend.get_item(op["TableName"], _key(backend, op_type, op))
        check = get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        )
        if check.expr(current):
            errors.append((None, None, None))
        else:
            old = (
                current.to_json()["Attributes"]
                if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                else None
            )
            errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)


def apply() -> None:
    global _applied
    if _applied:
        return
    original = DynamoDBBackend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        _precheck(self, transact_items)
        original(self, transact_items)

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _applied = True
