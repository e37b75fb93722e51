"""Cost records in the owner table: each job counted once (or, while it runs, up to a counted-until mark), the
execution's estimate, month-to-date spend.

Keys (pk / sk):
- `EXECUTION#<execution arn>` / `JOB#<job arn>`: a job's cost as counted: `cost`, `final` (the job ended: its cost is
  settled) or a running mark (`final` false, `until`: the time it was counted up to), `attempt`;
- `EXECUTION#<execution arn>` / `ESTIMATE`: running total (ADD), latest breakdown, `final` (the last end seen was
  finalised; a retry reopens it), `ended_at` / `attempt` / `finalised_total` of the last finalised end, `spend_holder`
  (whose spend holds the total), `unpriced`, and `version` (every write is conditioned on it: one writer at a time);
- `EXECUTION#<execution arn>` / `ALERT#finish` (attempt 1) or `ALERT#finish#<n>`: the finish alerts (outbox, once);
- `SPEND#<yyyy-mm>` / `CONSUMER#<account>` (kind consumer-total: `total`, and `confirmed_total` for forwarded /
  owner-copy attributions), `CONSUMER#<account>#PIPELINE#<arn>` (consumer-pipeline-total), `PIPELINE#<arn>`
  (pipeline-total), `UNATTRIBUTED#PIPELINE#<arn>` (unattributed-pipeline-total): month-to-date estimated spend (ADD);
- `RUNS#<pipeline arn>` / `<ended_at>#<execution arn>#<attempt>`: every finalised end with the execution's total then
  (the typical cost of a pipeline's runs);
- `PENDING#finish` / `<execution arn>#<attempt>`: an end finalised before anyone was known to have started the
  execution: its finish alert waits for the attribution (the running-estimate tick resolves it).
Every ARN in a key is lower-case: ARNs compare case-insensitively; the items keep the ARNs as given.
A job's cost reaches the estimate and the spend in the same transaction that records it: exactly once, whatever the
duplication, order or concurrency of events (each transaction is conditioned on the estimate's version as read).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.adapters.dynamodb_common import consumer_spend_item, deserialize_value, transact
from pipeshare.adapters.dynamodb_common import iso as _iso
from pipeshare.adapters.dynamodb_common import item as _item
from pipeshare.adapters.dynamodb_common import plain as _plain
from pipeshare.adapters.dynamodb_executions import execution_pk
from pipeshare.models.costs import CostState
from pipeshare.models.errors import TransactionConflictError
from pipeshare.models.executions import ExecutionRecord
from pipeshare.models.messages import OwnerAlert
from pipeshare.models.owner import CountedJob, Finalisation, PendingFinish, SpendHolder

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_JOBS_PER_TRANSACTION = 90  # DynamoDB allows 100 items per transaction; the rest: estimate, spend, alert, marks
PENDING_FINISH_PK = "PENDING#finish"
OPEN_INDEX = "open_executions"


def job_sk(job_arn: str) -> str:
    return f"JOB#{job_arn.lower()}"


def pipeline_sk(pipeline_arn: str) -> str:
    """The month-to-date spend of one pipeline (sk under `SPEND#<month>`)."""
    return f"PIPELINE#{pipeline_arn.lower()}"


def finish_sk(attempt: int) -> str:
    return "ALERT#finish" if attempt <= 1 else f"ALERT#finish#{attempt}"


class DynamoDbCostRepository:
    """Implements ports.CostRepository, ports.SpendLedger and ports.OpenExecutions."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._ddb = client or boto3.client("dynamodb")

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        kwargs = {"TableName": self._table, **kwargs}
        with translated():
            while True:
                page = self._ddb.query(**kwargs)
                found += page.get("Items", [])
                if "LastEvaluatedKey" not in page:
                    return found
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def state(self, execution_arn: str) -> CostState:
        """One query: the execution record, the jobs already counted and the estimate."""
        record: ExecutionRecord | None = None
        counted: dict[str, Decimal] = {}
        details: dict[str, dict[str, Any]] = {}
        running: set[str] = set()
        estimate: dict[str, Any] | None = None
        for raw in self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=_item({":pk": execution_pk(execution_arn)}),
            ConsistentRead=True,
        ):
            sk = raw["sk"]["S"]
            if sk == "STATE":
                record = ExecutionRecord.model_validate_json(raw["record"]["S"])
            elif sk.startswith("JOB#"):
                arn = sk.removeprefix("JOB#")
                counted[arn] = Decimal(raw["cost"]["N"])
                details[arn] = deserialize_value(raw["detail"]) if "detail" in raw else {}
                if "final" in raw and not raw["final"].get("BOOL", True):
                    running.add(arn)
            elif sk == "ESTIMATE":
                estimate = {k: deserialize_value(v) for k, v in raw.items()}
        version = int((estimate or {}).get("version", 0))
        return CostState(record, counted, estimate, details, frozenset(running), version)

    def commit(
        self,
        execution_arn: str,
        *,
        holder: SpendHolder,
        pipeline_arn: str,
        month: str,
        jobs: list[CountedJob],
        estimate: dict[str, Any],
        version: int,
        finalise: Finalisation | None = None,
        finish_alert: OwnerAlert | None = None,
        pending_finish: bool = False,
        at: datetime,
    ) -> bool:
        """Count jobs (new ones once; running ones up to their new mark) into the estimate and the month's spend, and
        with `finalise`, close the attempt that ended (its finish alert, or a pending mark, and its RUNS# item).
        False when another writer changed the estimate since `version` was read (nothing written)."""
        chunks = [jobs[i : i + MAX_JOBS_PER_TRANSACTION] for i in range(0, len(jobs), MAX_JOBS_PER_TRANSACTION)] or [[]]
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            closing = finalise if last else None
            items = self._job_items(execution_arn, chunk, at)
            items.append(
                self._estimate_item(execution_arn, holder, pipeline_arn, month, chunk, estimate, version, closing, at)
            )
            items += self._spend_items(holder, pipeline_arn, month, sum((j.delta for j in chunk), Decimal(0)), at)
            if closing is not None:
                items.append(self._run_item(execution_arn, pipeline_arn, closing, estimate))
                if finish_alert is not None:
                    items.append(
                        self._put_once(
                            execution_pk(execution_arn), finish_sk(closing.attempt), self._alert(finish_alert, at)
                        )
                    )
                elif pending_finish:
                    items.append(self._pending_item(execution_arn, closing, at))
            if not transact(self._ddb, items):
                return False
            version += 1
        return True

    def _put_once(self, pk: str, sk: str, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": _item({"pk": pk, "sk": sk, **values}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _job_items(self, execution_arn: str, jobs: list[CountedJob], at: datetime) -> list[dict[str, Any]]:
        pk = execution_pk(execution_arn)
        items = []
        for job in jobs:
            values = {
                "pk": pk,
                "sk": job_sk(job.job_arn),
                "item_type": "job-cost",
                "job_arn": job.job_arn,
                "step": job.step,
                "kind": job.kind,
                "cost": job.cost,
                "final": job.final,
                "attempt": job.attempt,
                "until": _iso(at),
                "detail": _plain(job.detail),
                "at": _iso(at),
            }
            guard: dict[str, Any] = (
                {"ConditionExpression": "attribute_not_exists(pk)"}
                if job.previous is None
                else {  # a running mark, replaced once: by the writer that read it
                    "ConditionExpression": "#final = :false AND #cost = :previous",
                    "ExpressionAttributeNames": {"#final": "final", "#cost": "cost"},
                    "ExpressionAttributeValues": _item({":false": False, ":previous": job.previous}),
                }
            )
            items.append({"Put": {"TableName": self._table, "Item": _item(values), **guard}})
        return items

    def _estimate_item(
        self,
        execution_arn: str,
        holder: SpendHolder,
        pipeline_arn: str,
        month: str,
        jobs: list[CountedJob],
        estimate: dict[str, Any],
        version: int,
        finalise: Finalisation | None,
        at: datetime,
    ) -> dict[str, Any]:
        """The Update of the ESTIMATE item: ADD the jobs' deltas to its total and SET the rest (with `finalise`, the
        attempt that ended too), conditioned on the version read (see `_version_guard`)."""
        added = sum((job.delta for job in jobs), Decimal(0))
        values = _estimate_values(holder, pipeline_arn, month, estimate, finalise is not None, at, added, version)
        sets = list(_ESTIMATE_SETS)
        if finalise is not None:
            values |= _finalised_values(finalise, estimate)
            sets += _FINALISED_SETS
        names = {f"#{part.split(' ')[0][1:]}": part.split(" ")[0][1:] for part in sets} | {"#total": "total"}
        guard, read = _version_guard(version)
        return {
            "Update": {
                "TableName": self._table,
                "Key": _item({"pk": execution_pk(execution_arn), "sk": "ESTIMATE"}),
                # every attribute through a placeholder: several are DynamoDB reserved words (final, month, total...)
                "UpdateExpression": "SET " + ", ".join(sets) + " ADD #total :added",
                "ConditionExpression": guard,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _item(values | read),
            }
        }

    def _run_item(
        self, execution_arn: str, pipeline_arn: str, finalise: Finalisation, estimate: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": _item(
                    {
                        "pk": f"RUNS#{pipeline_arn.lower()}",
                        "sk": f"{_iso(finalise.ended_at)}#{execution_arn.lower()}#{finalise.attempt:02d}",
                        "item_type": "finished-run",
                        "execution_arn": execution_arn,
                        "attempt": finalise.attempt,
                        "status": finalise.status,
                        "total": Decimal(str(estimate.get("total", 0))),
                        "complete": bool(estimate.get("complete", False)),
                    }
                ),
            }
        }

    def _pending_item(self, execution_arn: str, finalise: Finalisation, at: datetime) -> dict[str, Any]:
        return self._put_once(
            PENDING_FINISH_PK,
            f"{execution_arn.lower()}#{finalise.attempt}",
            {
                "item_type": "pending-finish",
                "execution_arn": execution_arn,
                "attempt": finalise.attempt,
                "ended_at": _iso(finalise.ended_at),
                "status": finalise.status,
                "at": _iso(at),
            },
        )

    @staticmethod
    def _alert(alert: OwnerAlert, at: datetime) -> dict[str, Any]:
        return {
            "item_type": "alert",
            "at": _iso(at),
            "subject": alert.subject,
            "message": _plain(alert.message),
            "attributes": alert.attributes,
        }

    # ---- pending finish alerts

    def pending_finishes(self) -> list[PendingFinish]:
        """Ends finalised before the execution was attributed (one query)."""
        return [
            PendingFinish(raw["execution_arn"]["S"], int(raw["attempt"]["N"]), raw["ended_at"]["S"], raw["status"]["S"])
            for raw in self._query(
                KeyConditionExpression="pk = :pk", ExpressionAttributeValues=_item({":pk": PENDING_FINISH_PK})
            )
        ]

    def resolve_pending(self, pending: PendingFinish, alert: OwnerAlert | None, *, at: datetime) -> bool:
        """Drop the pending mark and, with `alert`, write the finish alert, in one transaction (False: already done)."""
        items: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": _item({"pk": PENDING_FINISH_PK, "sk": f"{pending.execution_arn.lower()}#{pending.attempt}"}),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
        ]
        if alert is not None:
            items.append(
                self._put_once(execution_pk(pending.execution_arn), finish_sk(pending.attempt), self._alert(alert, at))
            )
        return transact(self._ddb, items)

    # ---- running executions

    def open_executions(self) -> list[str]:
        """The executions whose last status is Executing (one query of the sparse `open_executions` index)."""
        return [
            raw["execution_arn"]["S"]
            for raw in self._query(
                IndexName=OPEN_INDEX,
                KeyConditionExpression="open_status = :executing",
                ExpressionAttributeValues=_item({":executing": "Executing"}),
            )
            if "execution_arn" in raw
        ]

    # ---- month-to-date spend

    def month_spend(self, month: str, consumer: str) -> Decimal:
        return Decimal(str(consumer_spend_item(self._ddb, self._table, month, consumer).get("total", 0)))

    def move_spend(self, execution_arn: str, *, holder: SpendHolder, at: datetime) -> Decimal | None:
        """Make the execution's counted total the spend of `holder`: move it out of the holder the estimate holds it
        for and into the new one, in one transaction conditioned on the estimate's version as read (a concurrent
        commit or move makes it read again). Returns the amount moved (None: nothing to move)."""
        key = _item({"pk": execution_pk(execution_arn), "sk": "ESTIMATE"})
        for _ in range(4):
            with translated():
                raw = self._ddb.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            if raw is None:
                return None
            estimate = {k: deserialize_value(v) for k, v in raw.items()}
            held = SpendHolder.from_key(str(estimate.get("spend_holder") or estimate.get("consumer_account") or "-"))
            if held == holder:
                return None
            total, version = Decimal(str(estimate.get("total", 0))), int(estimate.get("version", 0))
            month, pipeline_arn = str(estimate["month"]), str(estimate["pipeline_arn"])
            values: dict[str, Any] = {
                ":holder": holder.key,
                ":consumer": holder.account or "-",
                ":at": _iso(at),
                ":version": version + 1,
            }
            if version:
                values[":read_version"] = version
            items: list[dict[str, Any]] = [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": key,
                        "UpdateExpression": "SET #spend_holder = :holder, #consumer_account = :consumer, "
                        "#updated_at = :at, #version = :version",
                        "ConditionExpression": "#version = :read_version"
                        if version
                        else "attribute_not_exists(#version)",
                        "ExpressionAttributeNames": {
                            "#spend_holder": "spend_holder",
                            "#consumer_account": "consumer_account",
                            "#updated_at": "updated_at",
                            "#version": "version",
                        },
                        "ExpressionAttributeValues": _item(values),
                    }
                }
            ]
            if total:
                items += self._holder_items([(held, -total), (holder, total)], pipeline_arn, month, at)
            if transact(self._ddb, items):
                return total
        raise TransactionConflictError(f"{execution_arn}: the estimate kept changing while its spend was moved")

    def _spend_items(
        self, holder: SpendHolder, pipeline_arn: str, month: str, amount: Decimal, at: datetime
    ) -> list[dict[str, Any]]:
        """ADD amount to the month's spend: of the pipeline, and of whoever holds it (see `_holder_lines`)."""
        if not amount:
            return []
        lines = {pipeline_sk(pipeline_arn): _Line("pipeline-total", None, pipeline_arn, amount, Decimal(0))}
        return self._updates(month, {**lines, **self._holder_lines(holder, pipeline_arn, amount)}, at)

    def _holder_items(
        self, moves: list[tuple[SpendHolder, Decimal]], pipeline_arn: str, month: str, at: datetime
    ) -> list[dict[str, Any]]:
        """The spend lines of several holders moved by their amounts, one update per item (a transaction may not
        touch one item twice: moving from a consumer's inferred to its confirmed spend is one update)."""
        merged: dict[str, _Line] = {}
        for holder, amount in moves:
            for sk, line in self._holder_lines(holder, pipeline_arn, amount).items():
                old = merged.get(sk)
                merged[sk] = (
                    line
                    if old is None
                    else old._replace(total=old.total + line.total, confirmed=old.confirmed + line.confirmed)
                )
        return self._updates(month, {sk: line for sk, line in merged.items() if line.total or line.confirmed}, at)

    @staticmethod
    def _holder_lines(holder: SpendHolder, pipeline_arn: str, amount: Decimal) -> dict[str, _Line]:
        """The spend lines a holder owns besides the pipeline's: a consumer's total (and confirmed total) and its
        spend on the pipeline; the pipeline's unattributed line; nothing for the owner's own runs."""
        if holder.kind == "consumer" and holder.account:
            confirmed = amount if holder.confirmed else Decimal(0)
            return {
                f"CONSUMER#{holder.account}": _Line("consumer-total", holder.account, None, amount, confirmed),
                f"CONSUMER#{holder.account}#{pipeline_sk(pipeline_arn)}": _Line(
                    "consumer-pipeline-total", holder.account, pipeline_arn, amount, Decimal(0)
                ),
            }
        if holder.kind == "unattributed":
            return {
                f"UNATTRIBUTED#{pipeline_sk(pipeline_arn)}": _Line(
                    "unattributed-pipeline-total", None, pipeline_arn, amount, Decimal(0)
                )
            }
        return {}

    def _updates(self, month: str, lines: dict[str, _Line], at: datetime) -> list[dict[str, Any]]:
        return [self._add(month, sk, line, at) for sk, line in lines.items()]

    def _add(self, month: str, sk: str, line: _Line, at: datetime) -> dict[str, Any]:
        adds = "ADD #total :amount" + (", #confirmed_total :confirmed" if line.confirmed else "")
        names = {f"#{n}": n for n in ("kind", "month", "consumer_account", "pipeline_arn", "updated_at", "total")}
        values: dict[str, Any] = {
            ":kind": line.kind,
            ":month": month,
            ":consumer": line.consumer or "-",
            ":pipeline": line.pipeline_arn or "-",
            ":at": _iso(at),
            ":amount": line.total,
        }
        if line.confirmed:
            names["#confirmed_total"] = "confirmed_total"
            values[":confirmed"] = line.confirmed
        return {
            "Update": {
                "TableName": self._table,
                "Key": _item({"pk": f"SPEND#{month}", "sk": sk}),
                "UpdateExpression": "SET #kind = :kind, #month = :month, #consumer_account = :consumer, "
                "#pipeline_arn = :pipeline, #updated_at = :at " + adds,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _item(values),
            }
        }


# the ESTIMATE item's attributes SET by every commit (`#month` only by the first), and by one that finalises
_ESTIMATE_SETS = (
    "#item_type = :type",
    "#breakdown = :breakdown",
    "#complete = :complete",
    "#updated_at = :at",
    "#pipeline_arn = :pipeline",
    "#consumer_account = :consumer",
    "#spend_holder = :holder",
    "#month = if_not_exists(#month, :month)",
    "#final = :final",
    "#unpriced = :unpriced",
    "#unpriced_instance_hours = :unpriced_hours",
    "#version = :version",
)
_FINALISED_SETS = (
    "#ended_at = :ended_at",
    "#attempt = :attempt",
    "#status = :status",
    "#finalised_total = :finalised_total",
)


def _estimate_values(
    holder: SpendHolder,
    pipeline_arn: str,
    month: str,
    estimate: dict[str, Any],
    final: bool,
    at: datetime,
    added: Decimal,
    version: int,
) -> dict[str, Any]:
    """The values of `_ESTIMATE_SETS` (and `:added`, the amount added to the total)."""
    return {
        ":type": "estimate",
        ":breakdown": _plain(estimate.get("steps", [])),
        ":complete": bool(estimate.get("complete", False)),
        ":at": _iso(at),
        ":pipeline": pipeline_arn,
        ":consumer": holder.account or "-",
        ":holder": holder.key,
        ":month": month,
        ":final": final,
        ":unpriced": _plain(estimate.get("unpriced", [])),
        ":unpriced_hours": _plain(estimate.get("unpriced_instance_hours", {})),
        ":added": added,
        ":version": version + 1,
    }


def _finalised_values(finalise: Finalisation, estimate: dict[str, Any]) -> dict[str, Any]:
    """The values of `_FINALISED_SETS`: the end closed and the total when it closed."""
    return {
        ":ended_at": _iso(finalise.ended_at),
        ":attempt": finalise.attempt,
        ":status": finalise.status,
        ":finalised_total": Decimal(str(estimate.get("total", 0))),
    }


def _version_guard(version: int) -> tuple[str, dict[str, Any]]:
    """The condition on the ESTIMATE item's version as read (none yet when 0), and its placeholder's value."""
    if version == 0:
        return "attribute_not_exists(#version)", {}
    return "#version = :read_version", {":read_version": version}


class _Line(NamedTuple):
    """One month-to-date spend item and what to ADD to it."""

    kind: str
    consumer: str | None
    pipeline_arn: str | None
    total: Decimal
    confirmed: Decimal
