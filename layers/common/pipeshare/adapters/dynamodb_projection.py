"""The owner table as the start projection reads it: a pipeline's last finished runs and a consumer's month-to-date
spend.

Items read (written by the cost code, adapters/dynamodb_costs.py):
- `RUNS#<pipeline arn, lower-case>` / `<ended_at ISO 8601 UTC, Z>#<execution arn, lower-case>#<attempt, 2 digits>`:
  one per finalised execution attempt, `total` (Number, USD), `complete` (Boolean), `execution_arn`. One Query,
  newest first (the sort key starts with the end time), at most `limit` items;
- `SPEND#<yyyy-mm>` / `CONSUMER#<account>`: `total` (Number), the consumer's month-to-date estimated spend.
The client is created on first use: a tracker invocation that projects nothing builds none.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.adapters.dynamodb_common import item as _item
from pipeshare.models.projections import FinishedRun

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def runs_pk(pipeline_arn: str) -> str:
    return f"RUNS#{pipeline_arn.lower()}"


class DynamoDbRunHistory:
    """Implements ports.RunHistory."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client = client

    @property
    def _ddb(self) -> DynamoDBClient:
        if self._client is None:
            self._client = boto3.client("dynamodb")
        return self._client

    def recent_runs(self, pipeline_arn: str, limit: int) -> list[FinishedRun]:
        """Newest first. An item without a numeric `total` counts as a run that is not complete."""
        with translated():
            response = self._ddb.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=_item({":pk": runs_pk(pipeline_arn)}),
                ExpressionAttributeNames={"#total": "total", "#complete": "complete"},
                ProjectionExpression="#total, #complete",
                ScanIndexForward=False,
                Limit=limit,
            )
        return [_run(raw) for raw in response.get("Items", [])]

    def month_spend(self, month: str, consumer: str) -> Decimal:
        with translated():
            response = self._ddb.get_item(
                TableName=self._table,
                Key=_item({"pk": f"SPEND#{month}", "sk": f"CONSUMER#{consumer}"}),
                ProjectionExpression="#total",
                ExpressionAttributeNames={"#total": "total"},
                ConsistentRead=True,
            )
        total = _number(response.get("Item", {}).get("total"))
        return total if total is not None else Decimal(0)


def _number(raw: Any) -> Decimal | None:
    if not isinstance(raw, dict) or "N" not in raw:
        return None
    try:
        value = Decimal(raw["N"])
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _run(raw: dict[str, Any]) -> FinishedRun:
    total = _number(raw.get("total"))
    complete = raw.get("complete", {}).get("BOOL") is True and total is not None
    return FinishedRun(total=total if total is not None else Decimal(0), complete=complete)
