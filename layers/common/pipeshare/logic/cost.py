"""Estimate executions' cost as they run: each job counted once (on its step's end, or at the latest when the
execution ends), month-to-date spend per consumer and pipeline, and a finish alert for consumer executions.

Pure logic with ports as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipeshare.adapters.ports import BudgetSource, CostDataGateway, CostRepository, PriceLookup
from pipeshare.logic.attribution import consumer_of
from pipeshare.logic.budgets import month_of
from pipeshare.logic.cost_messages import finish_message
from pipeshare.logic.estimate import ENDED_STEP_STATUSES, PriceTable, job_cost, jobs_to_describe, step_costs
from pipeshare.models.errors import ExecutionNotFoundError, PipeshareError
from pipeshare.models.owner import CountedJob
from pipeshare.models.owner_events import PipelineExecutionStatusEvent, PipelineStepStatusEvent

_KINDS = {"trainingJob": "training", "processingJob": "processing", "transformJob": "transform", "tuningJob": "tuning"}
MAX_ATTEMPTS = 4


class CostConflictError(PipeshareError):
    """Another invocation kept counting the same execution: fail, and let Lambda retry."""


@dataclass
class CostOutcome:
    status: str  # counted | duplicate | running | ignored | finalised | gone
    execution_arn: str | None = None
    added: Decimal = Decimal(0)
    total: Decimal | None = None
    consumer: str | None = None
    reason: str = ""
    alerts: list[str] = field(default_factory=list)


def _missing_rates(component: Any, lines: Any) -> list[tuple[str, str]]:
    return [(str(component), str(i.instance_type)) for i in lines if i.instance_type and i.usd_per_hour is None]


def _priced(prices: PriceTable, lookup: PriceLookup | None, region: str, wanted: list[tuple[str, str]]) -> PriceTable:
    """The table with live rates for the (component, instance type) pairs it lacks, when a lookup is configured."""
    return prices if lookup is None or not wanted else lookup.fill(prices, region, wanted)


def on_step_event(
    event: PipelineStepStatusEvent,
    *,
    owner_account: str,
    costs: CostRepository,
    sagemaker: CostDataGateway,
    prices: PriceTable,
    now: datetime,
    price_lookup: PriceLookup | None = None,
) -> CostOutcome:
    """A step ended: count the job(s) it ran into the running estimate, once."""
    execution = event.execution_arn()
    if event.owner_account() != owner_account:
        return CostOutcome("ignored", execution, reason="an execution of another account")
    if event.detail.current_status not in ENDED_STEP_STATUSES:
        return CostOutcome(
            "running", execution, reason=f"step {event.detail.step_name} is {event.detail.current_status}"
        )
    if event.cache_hit:
        return CostOutcome("ignored", execution, reason="a cached step is not billed again")
    jobs = [(_KINDS[k], arn) for k, arn in event.job_arns().items() if k in _KINDS]
    if not jobs:
        return CostOutcome("ignored", execution, reason="the step ran no job")
    region = execution.split(":")[3]
    for _ in range(MAX_ATTEMPTS):
        state = costs.state(execution)
        if state.estimate and state.estimate.get("final"):
            return CostOutcome("duplicate", execution, reason="the estimate is final: the end counted every job")
        new = [(kind, arn) for kind, arn in jobs if arn.lower() not in state.counted]
        if not new:
            return CostOutcome("duplicate", execution, reason="job(s) already counted")
        counted = _describe_and_cost(new, event.detail.step_name, sagemaker, region, prices, price_lookup, now)
        if not counted:
            return CostOutcome("ignored", execution, reason="the job could not be described yet")
        consumer = consumer_of(state.record, owner_account)
        breakdown = [*((state.estimate or {}).get("breakdown") or []), *(_line(c) for c in counted)]
        if costs.commit(
            execution,
            consumer=consumer,
            pipeline_arn=event.pipeline_arn(),
            month=month_of(now),
            jobs=counted,
            estimate={"steps": breakdown, "complete": False},
            final=False,
            finish_alert=None,
            at=now,
        ):
            added = sum((c.cost for c in counted), Decimal(0))
            previous = Decimal(str((state.estimate or {}).get("total", 0)))
            return CostOutcome("counted", execution, added, previous + added, consumer)
    raise CostConflictError(f"{execution}: the estimate kept changing while counting")


def _describe_and_cost(
    jobs: list[tuple[str, str]],
    step: str,
    sagemaker: CostDataGateway,
    region: str,
    prices: PriceTable,
    price_lookup: PriceLookup | None,
    now: datetime,
) -> list[CountedJob]:
    counted = []
    for kind, arn in jobs:
        described = sagemaker.describe_job(kind, arn)
        if described is None:
            continue  # counted when the execution ends, or reported there as incomplete
        cost = job_cost(kind, described, region=region, prices=prices, now=now)
        missing = _missing_rates(cost.component, cost.instances) if cost.component else []
        if missing and price_lookup is not None:
            prices = _priced(prices, price_lookup, region, missing)
            cost = job_cost(kind, described, region=region, prices=prices, now=now)
        counted.append(_counted(arn, step, kind, cost.total, cost.model_dump(mode="json")))
    return counted


def on_execution_end(
    event: PipelineExecutionStatusEvent,
    *,
    owner_account: str,
    costs: CostRepository,
    sagemaker: CostDataGateway,
    budgets: BudgetSource,
    prices: PriceTable,
    now: datetime,
    price_lookup: PriceLookup | None = None,
) -> CostOutcome:
    """The execution ended: list its steps, describe its jobs, count what is not counted yet, finalise, alert."""
    execution = event.execution_arn()
    if event.owner_account() != owner_account or not event.terminal:
        return CostOutcome("ignored", execution, reason="not a finished execution of this account")
    region = execution.split(":")[3]
    for _ in range(MAX_ATTEMPTS):
        state = costs.state(execution)
        if state.estimate and state.estimate.get("final"):
            return CostOutcome("duplicate", execution, reason="already finalised")
        try:
            steps, _pages = sagemaker.list_steps(execution)
        except ExecutionNotFoundError as exc:  # terminal: a retry cannot bring the execution back
            previous = (state.estimate or {}).get("total")
            return CostOutcome(
                "gone",
                execution,
                total=None if previous is None else Decimal(str(previous)),
                consumer=consumer_of(state.record, owner_account),
                reason="SageMaker no longer knows the execution (it, or its pipeline, was deleted): not finalised, "
                f"the estimate keeps only the jobs counted when their steps ended ({exc})",
            )
        # jobs counted when their step ended are not described again: their cost lines are on record
        described: dict[str, tuple[str, dict[str, Any]]] = {}
        for kind, arn in jobs_to_describe(steps):
            if arn.lower() in state.counted:
                continue
            response = sagemaker.describe_job(kind, arn)
            if response is not None:
                described[arn] = (kind, response)
        estimate = step_costs(steps, described, region=region, prices=prices, now=now, execution_status=event.status)
        missing = [m for st in estimate.steps if st.component for m in _missing_rates(st.component, st.instances)]
        if missing and price_lookup is not None:
            prices = _priced(prices, price_lookup, region, missing)
            estimate = step_costs(
                steps, described, region=region, prices=prices, now=now, execution_status=event.status
            )
        new = [
            _counted(s.job_arn, s.step_name, s.kind or "", s.total, s.model_dump(mode="json"))
            for s in estimate.steps
            if s.job_arn and s.job_arn.lower() not in state.counted and s.total > 0
        ]
        consumer = consumer_of(state.record, owner_account)
        breakdown = [_final_line(s, state) for s in estimate.steps]
        total = sum((Decimal(line["cost"]) for line in breakdown if line["cost"] is not None), Decimal(0))
        complete = all(line["state"] in ("estimated", "cached", "no-compute") for line in breakdown)
        month = month_of(now)
        alert = None
        if consumer is not None and state.record is not None:
            budget_policy = budgets.load()
            budget = budget_policy.budget_for(consumer) if budget_policy is not None else None
            added = sum((c.cost for c in new), Decimal(0))
            alert = finish_message(
                execution_arn=state.record.execution_arn,
                consumer=consumer,
                status=str(event.status),
                started_at=state.record.started_at,
                ended_at=state.record.ended_at or now,
                estimate_breakdown=breakdown,
                total=total,
                month=month,
                consumer_month_to_date=costs.month_spend(month, consumer) + added,
                budget=budget,
                principal=state.record.initiator_principal,
                attribution_source=state.record.source.value,
            )
        if costs.commit(
            execution,
            consumer=consumer,
            pipeline_arn=event.pipeline_arn(),
            month=month,
            jobs=new,
            estimate={"steps": breakdown, "complete": complete},
            final=True,
            finish_alert=alert,
            at=now,
        ):
            return CostOutcome(
                "finalised",
                execution,
                sum((c.cost for c in new), Decimal(0)),
                total,
                consumer,
                alerts=["finish"] if alert else [],
            )
    raise CostConflictError(f"{execution}: the estimate kept changing while finalising")


def _counted(arn: str, step: str, kind: str, cost: Decimal, detail: dict[str, Any]) -> CountedJob:
    return CountedJob(job_arn=arn, step=step, kind=kind, cost=cost, detail=detail)


def _recorded_line(step: str, kind: str, cost: Decimal, detail: dict[str, Any]) -> dict[str, Any]:
    """A breakdown line for a counted job, with the state and issues the estimator gave it when it was counted."""
    reason = detail.get("reason")
    return {
        "step": step,
        "type": kind,
        "state": str(detail.get("state", "estimated")),
        "cost": str(cost),
        "issues": [str(i) for i in detail.get("issues", [])] + ([str(reason)] if reason else []),
    }


def _line(job: CountedJob) -> dict[str, Any]:
    """A running-estimate line for a job counted at its step's end."""
    return _recorded_line(job.step, job.kind, job.cost, job.detail)


def _final_line(step: Any, state: Any) -> dict[str, Any]:
    """A final breakdown line: a job counted when its step ended keeps the cost and state it was counted with."""
    arn = (step.job_arn or "").lower()
    if arn and arn in state.counted:
        return _recorded_line(step.step_name, step.step_type or "-", state.counted[arn], state.details.get(arn, {}))
    return _step_line(step)


def _step_line(step: Any) -> dict[str, Any]:
    priced = step.state in ("estimated", "cached", "no-compute")
    return {
        "step": step.step_name,
        "type": step.step_type or "-",
        "state": str(step.state),
        "cost": str(step.total) if priced or step.total > 0 else None,
        "issues": list(step.issues) + ([step.reason] if getattr(step, "reason", None) else []),
    }
