"""Budgets in the owner table: the ledger, the running executions of a consumer, the month's spend items.

Ledger (pk `BUDGET#<month>#<subject>`, subject = a consumer account or `UNATTRIBUTED#<pipeline arn>`): one item per
key (`THRESHOLD#0050`, `STOP#<execution arn>#<attempt>`, `SHARE#<share arn>#<principal>`, `DRYRUN#...`,
`FAILED#...`, ...), written with attribute_not_exists in the same transaction as the one outbox item
(`ALERT#<last key>`) the owner notifier publishes, and for an enforcement action the consumer's notice
(`NOTICE#<last key>`, item_type consumer-notice) the owner notifier puts on the consumer's notice bus. Items of the
crossing-based watcher (`ALERT#threshold-0050`) still count as their threshold's key. Spend items (`SPEND#<month>`)
are the cost code's (adapters/dynamodb_costs.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from pydantic import ValidationError

from pipeshare.adapters.aws_errors import translated
from pipeshare.adapters.dynamodb_common import consumer_spend_item, deserialize, transact
from pipeshare.adapters.dynamodb_common import iso as _iso
from pipeshare.adapters.dynamodb_common import item as _item
from pipeshare.adapters.dynamodb_common import plain as _plain
from pipeshare.adapters.dynamodb_executions import execution_pk
from pipeshare.logic.budgets import LEGACY_THRESHOLD, threshold_key
from pipeshare.models.budgets import ConsumerSpend, LineSpend, MonthSpend, RunView
from pipeshare.models.consumer_notices import EnforcementNotice
from pipeshare.models.messages import OwnerAlert

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_RUN_ATTRIBUTES = (
    "execution_arn",
    "pipeline_arn",
    "attempt",
    "attribution_source",
    "initiator_account",
    "open_status",
    "worst_case_usd",
    "worst_case_complete",
)


def ledger_pk(month: str, subject: str) -> str:
    return f"BUDGET#{month}#{subject}"


class DynamoDbBudgetLedger:
    """Implements ports.BudgetLedger, ports.RunningExecutions and ports.SpendSource."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._ddb = client or boto3.client("dynamodb")

    # ------------------------------------------------------------------------------------------ ports.BudgetLedger

    def recorded(self, month: str, subject: str) -> set[str]:
        keys: set[str] = set()
        for raw in self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=_item({":pk": ledger_pk(month, subject)}),
            ProjectionExpression="sk",
            ConsistentRead=True,
        ):
            sk = raw["sk"]["S"]
            legacy = LEGACY_THRESHOLD.match(sk)
            if legacy:
                keys.add(threshold_key(int(legacy.group(1))))
            elif not sk.startswith("ALERT#"):
                keys.add(sk)
        return keys

    def record(
        self,
        month: str,
        subject: str,
        keys: Sequence[str],
        alert: OwnerAlert | None,
        *,
        at: datetime,
        facts: Mapping[str, Any] | None = None,
        notice: EnforcementNotice | None = None,
    ) -> bool:
        if not keys:
            raise ValueError("record needs at least one ledger key")
        pk, stamp = ledger_pk(month, subject), _iso(at)
        values = [
            {"pk": pk, "sk": key, "item_type": "budget-ledger", "at": stamp, "month": month, **(facts or {})}
            for key in keys
        ]
        if alert is not None:
            values.append(
                {
                    "pk": pk,
                    "sk": f"ALERT#{keys[-1]}",
                    "item_type": "alert",
                    "at": stamp,
                    "subject": alert.subject,
                    "message": _plain(alert.message),
                    "attributes": alert.attributes,
                }
            )
        if notice is not None:
            values.append(
                {
                    "pk": pk,
                    "sk": f"NOTICE#{keys[-1]}",
                    "item_type": "consumer-notice",
                    "at": stamp,
                    "notice": notice.body(),
                }
            )
        items = [
            {"Put": {"TableName": self._table, "Item": _item(v), "ConditionExpression": "attribute_not_exists(pk)"}}
            for v in values
        ]
        return transact(self._ddb, items)

    # ------------------------------------------------------------------------------------ ports.RunningExecutions

    def running_for(self, consumer: str) -> list[RunView]:
        runs: list[RunView] = []
        for raw in self._query(
            IndexName="by_initiator",
            KeyConditionExpression="initiator_account = :c AND #s = :running",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=_item({":c": consumer, ":running": "Executing"}),
        ):
            run = _run({**deserialize(raw), "open_status": "Executing"})
            if run is not None:
                runs.append(run)
        return runs

    def execution(self, execution_arn: str) -> RunView | None:
        names = {f"#{a}": a for a in _RUN_ATTRIBUTES}
        with translated():
            response = self._ddb.get_item(
                TableName=self._table,
                Key=_item({"pk": execution_pk(execution_arn), "sk": "STATE"}),
                ConsistentRead=True,
                ProjectionExpression=", ".join(names),
                ExpressionAttributeNames=names,
            )
        return _run(deserialize(response["Item"])) if "Item" in response else None

    # ----------------------------------------------------------------------------------------- ports.SpendSource

    def month_spend_items(self, month: str) -> MonthSpend:
        consumers: list[ConsumerSpend] = []
        pipelines: dict[str, dict[str, Decimal]] = {}
        lines: list[LineSpend] = []
        for raw in self._query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues=_item({":pk": f"SPEND#{month}"})
        ):
            values = deserialize(raw)
            kind = values.get("kind")
            if kind == "consumer-total":
                spend = _consumer_spend(month, values)
                if spend is not None:
                    consumers.append(spend)
            elif kind == "consumer-pipeline-total" and "pipeline_arn" in values:
                account = str(values.get("consumer_account", ""))
                pipelines.setdefault(account, {})[str(values["pipeline_arn"])] = Decimal(str(values.get("total", 0)))
            elif kind == "unattributed-pipeline-total" and "pipeline_arn" in values:
                lines.append(LineSpend(month=month, pipeline_arn=str(values["pipeline_arn"]), total=_n(values)))
        return MonthSpend(
            month=month, consumers=tuple(consumers), consumer_pipelines=pipelines, unattributed=tuple(lines)
        )

    def consumer_spend(self, month: str, consumer: str) -> ConsumerSpend:
        values = consumer_spend_item(self._ddb, self._table, month, consumer)
        spend = _consumer_spend(month, {**values, "consumer_account": consumer})
        return spend or ConsumerSpend(consumer=consumer, month=month)

    def consumer_pipelines(self, month: str, consumer: str) -> dict[str, Decimal]:
        found: dict[str, Decimal] = {}
        for raw in self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": f"SPEND#{month}", ":prefix": f"CONSUMER#{consumer}#PIPELINE#"}),
        ):
            values = deserialize(raw)
            if "pipeline_arn" in values:
                found[str(values["pipeline_arn"])] = _n(values)
        return found

    # --------------------------------------------------------------------------------------------------- helpers

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query, page after page."""
        request: dict[str, Any] = {"TableName": self._table, **kwargs}
        with translated():
            while True:
                page = self._ddb.query(**request)
                yield from page.get("Items", [])
                if "LastEvaluatedKey" not in page:
                    return
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _n(values: Mapping[str, Any], key: str = "total") -> Decimal:
    return Decimal(str(values.get(key) or 0))


def _consumer_spend(month: str, values: Mapping[str, Any]) -> ConsumerSpend | None:
    """A consumer-total item; `confirmed_total` absent (an item from before it existed) counts as nothing confirmed."""
    try:
        return ConsumerSpend(
            consumer=str(values.get("consumer_account", "")),
            month=month,
            total=_n(values),
            confirmed_total=_n(values, "confirmed_total"),
        )
    except ValidationError:
        return None  # not a consumer's item (no account): nothing to budget


def _run(values: Mapping[str, Any]) -> RunView | None:
    try:
        return RunView.model_validate({k: values.get(k) for k in _RUN_ATTRIBUTES if values.get(k) is not None})
    except ValidationError:
        return None
