"""Budget ledger in the owner table: pk BUDGET#<month>#<consumer>; the alert items (sk ALERT#...) are the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeshare.adapters.aws_errors import translate
from pipeshare.adapters.dynamodb_common import iso as _iso
from pipeshare.adapters.dynamodb_common import item as _item
from pipeshare.adapters.dynamodb_common import plain as _plain
from pipeshare.logic.attribution import OwnerAlert

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoDbBudgetLedger:
    """Implements ports.BudgetLedger and ports.RunningExecutions."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._ddb = client or boto3.client("dynamodb")

    def _put_once(self, values: dict[str, Any]) -> bool:
        try:
            self._ddb.put_item(
                TableName=self._table, Item=_item(values), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return True

    def _alert(self, pk: str, sk: str, alert: OwnerAlert, at: datetime) -> dict[str, Any]:
        return {
            "pk": pk,
            "sk": sk,
            "item_type": "alert",
            "at": _iso(at),
            "subject": alert.subject,
            "message": _plain(alert.message),
            "attributes": alert.attributes,
        }

    def record_threshold(self, month: str, consumer: str, threshold: int, alert: OwnerAlert, *, at: datetime) -> bool:
        return self._put_once(self._alert(f"BUDGET#{month}#{consumer}", f"ALERT#threshold-{threshold:04d}", alert, at))

    def claim_enforcement(self, month: str, consumer: str, *, at: datetime) -> bool:
        return self._put_once({"pk": f"BUDGET#{month}#{consumer}", "sk": "ENFORCEMENT", "at": _iso(at)})

    def record_enforcement(self, month: str, consumer: str, alert: OwnerAlert, *, at: datetime) -> None:
        self._put_once(self._alert(f"BUDGET#{month}#{consumer}", "ALERT#enforcement", alert, at))

    def running_for(self, consumer: str) -> list[str]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "by_initiator",
            "KeyConditionExpression": "initiator_account = :c AND #s = :running",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": _item({":c": consumer, ":running": "Executing"}),
        }
        found: list[str] = []
        try:
            while True:
                page = self._ddb.query(**kwargs)
                found += [raw["execution_arn"]["S"] for raw in page.get("Items", []) if "execution_arn" in raw]
                if "LastEvaluatedKey" not in page:
                    return found
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
