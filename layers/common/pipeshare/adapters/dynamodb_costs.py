"""Cost records in the owner table: each job counted once, the execution's estimate, month-to-date spend.

Keys (pk / sk):
- `EXECUTION#<execution arn>` / `JOB#<job arn>`: a job counted into the estimate (written once, attribute_not_exists);
- `EXECUTION#<execution arn>` / `ESTIMATE`: running total (ADD), latest breakdown, `final`;
- `EXECUTION#<execution arn>` / `ALERT#finish`: the finish alert (outbox, once);
- `SPEND#<yyyy-mm>` / `CONSUMER#<account>` (kind consumer-total), `PIPELINE#<arn>` (kind pipeline-total) and
  `CONSUMER#<account>#PIPELINE#<arn>` (kind consumer-pipeline-total): month-to-date estimated spend (ADD: atomic).
Every ARN in a key is lower-case (`execution_pk`, `job_sk`, `pipeline_sk`): ARNs compare case-insensitively, so one
pipeline, execution or job is one item whatever the case it is named in; the items keep the ARNs as given.
A job's cost reaches the estimate and the spend in the same transaction that records it: exactly once, whatever
the duplication, order or concurrency of events. The estimate's `consumer_account` says whose consumer spend holds
its total ("-": nobody's); a commit counts toward that consumer only (a commit that read another attribution loses
and retries), and `move_spend` moves the whole total when the attribution changes (settled, or corrected).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeshare.adapters.aws_errors import translate
from pipeshare.adapters.dynamodb_common import deserialize_value, transact
from pipeshare.adapters.dynamodb_common import iso as _iso
from pipeshare.adapters.dynamodb_common import item as _item
from pipeshare.adapters.dynamodb_common import plain as _plain
from pipeshare.adapters.dynamodb_executions import execution_pk
from pipeshare.logic.attribution import ExecutionRecord, OwnerAlert
from pipeshare.models.errors import TransactionConflictError
from pipeshare.models.owner import CountedJob

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_JOBS_PER_TRANSACTION = 90  # DynamoDB allows 100 items per transaction; the rest are the estimate and spend


def job_sk(job_arn: str) -> str:
    return f"JOB#{job_arn.lower()}"


def pipeline_sk(pipeline_arn: str) -> str:
    """The month-to-date spend of one pipeline (sk under `SPEND#<month>`)."""
    return f"PIPELINE#{pipeline_arn.lower()}"


@dataclass(frozen=True)
class CostState:
    record: ExecutionRecord | None
    counted: dict[str, Decimal]  # job arn (lower-case) -> cost counted
    estimate: dict[str, Any] | None
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # job arn (lower-case) -> its cost lines


class DynamoDbCostRepository:
    """Implements ports.CostRepository."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._ddb = client or boto3.client("dynamodb")

    def state(self, execution_arn: str) -> CostState:
        """One query: the execution record, the jobs already counted and the estimate."""
        record: ExecutionRecord | None = None
        counted: dict[str, Decimal] = {}
        details: dict[str, dict[str, Any]] = {}
        estimate: dict[str, Any] | None = None
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": _item({":pk": execution_pk(execution_arn)}),
            "ConsistentRead": True,
        }
        try:
            while True:
                page = self._ddb.query(**kwargs)
                for raw in page.get("Items", []):
                    sk = raw["sk"]["S"]
                    if sk == "STATE":
                        record = ExecutionRecord.model_validate_json(raw["record"]["S"])
                    elif sk.startswith("JOB#"):
                        counted[sk.removeprefix("JOB#")] = Decimal(raw["cost"]["N"])
                        details[sk.removeprefix("JOB#")] = deserialize_value(raw["detail"]) if "detail" in raw else {}
                    elif sk == "ESTIMATE":
                        estimate = {k: deserialize_value(v) for k, v in raw.items()}
                if "LastEvaluatedKey" not in page:
                    return CostState(record, counted, estimate, details)
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def commit(
        self,
        execution_arn: str,
        *,
        consumer: str | None,
        pipeline_arn: str,
        month: str,
        jobs: list[CountedJob],
        estimate: dict[str, Any],
        final: bool,
        finish_alert: OwnerAlert | None,
        at: datetime,
    ) -> bool:
        """Count new jobs (each once) into the estimate and the month's spend; False when another writer was first."""
        chunks = [jobs[i : i + MAX_JOBS_PER_TRANSACTION] for i in range(0, len(jobs), MAX_JOBS_PER_TRANSACTION)] or [[]]
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            items = self._job_items(execution_arn, chunk, at) + self._estimate_items(
                execution_arn, consumer, pipeline_arn, month, chunk, estimate, final and last, at
            )
            if last and finish_alert is not None:
                items.append(self._alert_item(execution_arn, finish_alert, at))
            if not transact(self._ddb, items):
                return False
        return True

    def _job_items(self, execution_arn: str, jobs: list[CountedJob], at: datetime) -> list[dict[str, Any]]:
        pk = execution_pk(execution_arn)
        return [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _item(
                        {
                            "pk": pk,
                            "sk": job_sk(job.job_arn),
                            "item_type": "job-cost",
                            "job_arn": job.job_arn,
                            "step": job.step,
                            "kind": job.kind,
                            "cost": job.cost,
                            "detail": _plain(job.detail),
                            "at": _iso(at),
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for job in jobs
        ]

    def _estimate_items(
        self,
        execution_arn: str,
        consumer: str | None,
        pipeline_arn: str,
        month: str,
        jobs: list[CountedJob],
        estimate: dict[str, Any],
        final: bool,
        at: datetime,
    ) -> list[dict[str, Any]]:
        added = sum((job.cost for job in jobs), Decimal(0))
        # every attribute through a placeholder: several are DynamoDB reserved words (final, month, total, ...)
        sets = (
            "SET #item_type = :type, #breakdown = :breakdown, #complete = :complete, #updated_at = :at, "
            "#pipeline_arn = :pipeline, #consumer_account = :consumer, #month = if_not_exists(#month, :month), "
            "#final = " + (":true" if final else "if_not_exists(#final, :false)")
        )
        names = {
            f"#{n}": n
            for n in (
                "item_type",
                "breakdown",
                "complete",
                "updated_at",
                "pipeline_arn",
                "consumer_account",
                "month",
                "final",
                "total",
            )
        }
        values = {
            ":type": "estimate",
            ":breakdown": _plain(estimate.get("steps", [])),
            ":complete": bool(estimate.get("complete", False)),
            ":at": _iso(at),
            ":pipeline": pipeline_arn,
            ":consumer": consumer or "-",
            ":month": month,
            ":true" if final else ":false": final,
            ":added": added,
        }
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": _item({"pk": execution_pk(execution_arn), "sk": "ESTIMATE"}),
                    "UpdateExpression": sets + " ADD #total :added",
                    # the spend this estimate holds belongs to one consumer: count toward it, or lose and re-read
                    "ConditionExpression": "attribute_not_exists(#consumer_account) OR #consumer_account = :consumer",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": _item(values),
                }
            }
        ]
        if added <= 0:
            return items
        items += self._spend_items(None, pipeline_arn, month, added, at)
        if consumer:
            items += self._spend_items(consumer, pipeline_arn, month, added, at)
        return items

    def _alert_item(self, execution_arn: str, alert: OwnerAlert, at: datetime) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": _item(
                    {
                        "pk": execution_pk(execution_arn),
                        "sk": "ALERT#finish",
                        "item_type": "alert",
                        "at": _iso(at),
                        "subject": alert.subject,
                        "message": _plain(alert.message),
                        "attributes": alert.attributes,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def month_spend(self, month: str, consumer: str) -> Decimal:
        try:
            response = self._ddb.get_item(
                TableName=self._table,
                Key=_item({"pk": f"SPEND#{month}", "sk": f"CONSUMER#{consumer}"}),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return Decimal(response["Item"]["total"]["N"]) if "Item" in response else Decimal(0)

    def move_spend(self, execution_arn: str, *, consumer: str | None, at: datetime) -> Decimal | None:
        """Make the execution's counted total the spend of `consumer` (None: of no consumer): move it out of the
        consumer the estimate holds it for and into the new one, in one transaction conditioned on the estimate as
        read (a concurrent commit or move makes it read again). Returns the amount moved (None: nothing to move)."""
        key = _item({"pk": execution_pk(execution_arn), "sk": "ESTIMATE"})
        wanted = consumer or "-"
        for _ in range(4):
            try:
                raw = self._ddb.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            if raw is None:
                return None
            estimate = {k: deserialize_value(v) for k, v in raw.items()}
            held, total = str(estimate.get("consumer_account") or "-"), Decimal(str(estimate.get("total", 0)))
            if held == wanted:
                return None
            month, pipeline_arn = str(estimate["month"]), str(estimate["pipeline_arn"])
            items: list[dict[str, Any]] = [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": key,
                        "UpdateExpression": "SET #consumer_account = :to, #updated_at = :at",
                        "ConditionExpression": "#consumer_account = :held AND #total = :total",
                        "ExpressionAttributeNames": {
                            "#consumer_account": "consumer_account",
                            "#updated_at": "updated_at",
                            "#total": "total",
                        },
                        "ExpressionAttributeValues": _item(
                            {":to": wanted, ":at": _iso(at), ":held": held, ":total": total}
                        ),
                    }
                }
            ]
            if total > 0:
                for account, sign in ((held, -1), (wanted, 1)):
                    if account != "-":
                        items += self._spend_items(account, pipeline_arn, month, sign * total, at)
            if transact(self._ddb, items):
                return total
        raise TransactionConflictError(f"{execution_arn}: the estimate kept changing while its spend was moved")

    def _spend_items(
        self, consumer: str | None, pipeline_arn: str, month: str, amount: Decimal, at: datetime
    ) -> list[dict[str, Any]]:
        """ADD amount to the month's spend: of the pipeline (consumer None), or of the consumer, in total and on the
        pipeline."""
        totals = (
            [(pipeline_sk(pipeline_arn), "pipeline-total")]
            if consumer is None
            else [
                (f"CONSUMER#{consumer}", "consumer-total"),
                (f"CONSUMER#{consumer}#{pipeline_sk(pipeline_arn)}", "consumer-pipeline-total"),
            ]
        )
        return [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": _item({"pk": f"SPEND#{month}", "sk": sk}),
                    "UpdateExpression": "SET #kind = :kind, #month = :month, #consumer_account = :consumer, "
                    "#pipeline_arn = :pipeline, #updated_at = :at ADD #total :amount",
                    "ExpressionAttributeNames": {
                        f"#{n}": n for n in ("kind", "month", "consumer_account", "pipeline_arn", "updated_at", "total")
                    },
                    "ExpressionAttributeValues": _item(
                        {
                            ":kind": kind,
                            ":month": month,
                            ":consumer": consumer or "-",
                            ":pipeline": pipeline_arn if "PIPELINE#" in sk else "-",
                            ":at": _iso(at),
                            ":amount": amount,
                        }
                    ),
                }
            }
            for sk, kind in totals
        ]
