"""Execution records and their alert outbox in the owner table.

Keys: pk = "EXECUTION#<execution arn, lower-case>", sk = "STATE" | "ALERT#<action>". The record is written with an
optimistic version check; each alert is a Put guarded by attribute_not_exists in the same transaction, so an
(execution, action) alert exists once whatever the duplication, order or concurrency of events. The STATE item is
written by an Update that sets every attribute of the record (and removes those without a value): what it does not
name stays, such as `worst_case_usd` (Number) and `worst_case_complete` (Boolean), written with the start alert of a
consumer-started execution (logic/projection.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.adapters.dynamodb_common import deserialize_value, transact
from pipeshare.adapters.dynamodb_common import iso as _iso
from pipeshare.adapters.dynamodb_common import item as _item
from pipeshare.models.executions import AlertKey, ExecutionRecord
from pipeshare.models.messages import OwnerAlert

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def execution_pk(execution_arn: str) -> str:
    return f"EXECUTION#{execution_arn.lower()}"


class DynamoDbExecutionRepository:
    """Implements ports.ExecutionRepository."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._ddb = client or boto3.client("dynamodb")

    def get(self, execution_arn: str) -> tuple[ExecutionRecord | None, int]:
        with translated():
            response = self._ddb.get_item(
                TableName=self._table,
                Key=_item({"pk": execution_pk(execution_arn), "sk": "STATE"}),
                ConsistentRead=True,
                ProjectionExpression="#r, version",
                ExpressionAttributeNames={"#r": "record"},
            )
        if "Item" not in response:
            return None, 0
        data = {k: deserialize_value(v) for k, v in response["Item"].items()}
        return ExecutionRecord.model_validate_json(str(data["record"])), int(data["version"])

    def save(
        self,
        record: ExecutionRecord,
        *,
        version: int,
        alerts: list[tuple[AlertKey, OwnerAlert]],
        at: datetime,
        worst_case: tuple[Decimal, bool] | None = None,
    ) -> bool:
        """The STATE item (an Update conditioned on the version read) and the alerts' outbox items, in one
        transaction: False when another writer saved since `version` was read, or an alert exists already."""
        pk = execution_pk(record.key)
        update = _versioned(_update(_state(record, version, at, worst_case)), version)
        items: list[dict[str, Any]] = [
            {"Update": {"TableName": self._table, "Key": _item({"pk": pk, "sk": "STATE"}), **update}}
        ]
        items += [self._outbox(pk, key, alert, at) for key, alert in alerts]
        return transact(self._ddb, items)

    def _outbox(self, pk: str, key: AlertKey, alert: OwnerAlert, at: datetime) -> dict[str, Any]:
        """The alert's outbox item, written once (the owner notifier publishes it from the stream)."""
        outbox = {
            "pk": pk,
            "sk": key.item_key,
            "item_type": "alert",
            "at": _iso(at),
            "subject": alert.subject,
            "message": json.loads(json.dumps(alert.message, default=str)),
            "attributes": alert.attributes,
        }
        return {
            "Put": {
                "TableName": self._table,
                "Item": _item(outbox),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }


def _state(
    record: ExecutionRecord, version: int, at: datetime, worst_case: tuple[Decimal, bool] | None
) -> dict[str, Any]:
    """The STATE item's attributes: the exact record (for merging) and flat attributes for people and queries."""
    view = json.loads(record.model_dump_json())
    state: dict[str, Any] = {
        "item_type": "execution",
        "record": record.model_dump_json(),  # the exact record, for merging
        "version": version + 1,
        "updated_at": _iso(at),
        # flat attributes for people and queries
        "execution_arn": record.execution_arn,
        "pipeline_arn": view["pipeline_arn"],
        "status": view["status"],
        # sparse index `open_executions`: executions not ended (the running-estimate tick queries it)
        "open_status": None if view["ended_at"] or view["status"] is None else view["status"],
        "started_at": view["started_at"],
        "ended_at": view["ended_at"],
        "attempt": len(record.attempts()) + 1,  # 1, then 2, 3, ... for each retry the status events show
        "attribution_source": view["source"],
        "initiator_account": view["initiator_account"],
        "initiator_principal": view["initiator_principal"],
        "candidates": view["candidates"] or None,
        "actions": view["actions"] or None,
        "status_history": view["status_history"] or None,
    }
    if worst_case is not None:
        # the start projection (logic/projection.py), written with the start alert and kept by later saves: an
        # Update changes only the attributes it names (the budget watcher reads these two)
        state["worst_case_usd"], state["worst_case_complete"] = worst_case
    return state


def _versioned(update: dict[str, Any], version: int) -> dict[str, Any]:
    """The update conditioned on the version read: no item yet (0), or the item at that version."""
    if version == 0:
        update["ConditionExpression"] = "attribute_not_exists(pk)"
    else:  # the placeholder the update already gives `version`
        placeholder = next(k for k, v in update["ExpressionAttributeNames"].items() if v == "version")
        update["ConditionExpression"] = f"{placeholder} = :expected"
        update["ExpressionAttributeValues"].update(_item({":expected": version}))
    return update


def _update(state: dict[str, Any]) -> dict[str, Any]:
    """SET every attribute with a value, REMOVE those without (as a Put would leave them out), every name through a
    placeholder (status, record, version... are DynamoDB reserved words)."""
    names = {f"#a{i}": name for i, name in enumerate(state)}
    sets = [f"#a{i} = :v{i}" for i, value in enumerate(state.values()) if value is not None]
    removes = [f"#a{i}" for i, value in enumerate(state.values()) if value is None]
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": _item({f":v{i}": v for i, v in enumerate(state.values()) if v is not None}),
    }
