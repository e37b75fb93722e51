"""Estimate executions' cost as they run: each job counted while it runs (a running tick), when its step ends, and at
the latest when the execution (or one attempt of it) ends; month-to-date spend per consumer and pipeline; a finish
alert per attempt of a consumer's execution.

Exactly once: a job is counted first with a running mark (its cost so far) or its final cost, and every later count
replaces the mark by the writer that read it, moving the estimate and the spend by the difference. A retry reopens
the estimate: its new jobs are counted like the first attempt's, and its end is finalised with its own alert.
Counts go to the spend holder the execution's record names; when the estimate's total is held by another (the
tracker moves it before it saves the record), it is moved first, so the total is always one holder's.

Pure logic with ports as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pipeshare.adapters.ports import BudgetSource, CostDataGateway, CostRepository, PriceLookup
from pipeshare.logic.budgets import month_of
from pipeshare.logic.cost_messages import finish_message
from pipeshare.logic.estimate import ENDED_STEP_STATUSES, job_cost, jobs_to_describe, quantize_usd, step_costs
from pipeshare.logic.spend import spend_holder
from pipeshare.models.budgets import Budget
from pipeshare.models.errors import BudgetPolicyInvalidError, CostConflictError, ExecutionNotFoundError
from pipeshare.models.estimates import Estimate, PriceTable, StepCost
from pipeshare.models.executions import AttributionSource, ExecutionRecord
from pipeshare.models.messages import OwnerAlert
from pipeshare.models.owner import CountedJob, Finalisation, SpendHolder
from pipeshare.models.owner_outcomes import CostOutcome, TickOutcome
from pipeshare.models.types import arn_account

if TYPE_CHECKING:
    from pipeshare.models.owner_events import PipelineExecutionStatusEvent, PipelineStepStatusEvent

_KINDS = {"trainingJob": "training", "processingJob": "processing", "transformJob": "transform", "tuningJob": "tuning"}
_METADATA_KINDS = {"TrainingJob": "training", "ProcessingJob": "processing", "TransformJob": "transform"}
MAX_ATTEMPTS = 4
# an end finalised before anyone was known to have started the execution waits this long for its attribution
PENDING_FINISH_MAX = timedelta(hours=1)
PRICED_STATES = ("estimated", "cached", "no-compute")


# ------------------------------------------------------------------------------------------------------- helpers


def _priced(prices: PriceTable, lookup: PriceLookup | None, region: str, wanted: list[tuple[str, str]]) -> PriceTable:
    """The table with the Price List's rates for the (component, instance type) pairs used, when a lookup is
    configured (an SSM override keeps precedence; see PriceLookup)."""
    return prices if lookup is None or not wanted else lookup.fill(prices, region, sorted(set(wanted)))


def _pairs(component: Any, lines: Any) -> list[tuple[str, str]]:
    return [(str(component), str(i.instance_type)) for i in lines if i.instance_type]


def _cost(
    kind: str, described: Mapping[str, Any], region: str, prices: PriceTable, lookup: PriceLookup | None, now: datetime
) -> Any:
    cost = job_cost(kind, described, region=region, prices=prices, now=now)
    wanted = _pairs(cost.component, cost.instances) if cost.component else []
    if wanted and lookup is not None:
        cost = job_cost(kind, described, region=region, prices=_priced(prices, lookup, region, wanted), now=now)
    return cost


def unpriced_hours(details: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """Instance type -> instance-hours nobody could price, over the cost lines of counted jobs."""
    hours: dict[str, Decimal] = {}
    for detail in details:
        for line in detail.get("instances") or []:
            if line.get("instance_type") and line.get("usd_per_hour") is None:
                used = Decimal(str(line.get("seconds", 0))) * int(line.get("count", 0)) / 3600
                hours[str(line["instance_type"])] = hours.get(str(line["instance_type"]), Decimal(0)) + used
    return {k: v.quantize(Decimal("0.01")) for k, v in sorted(hours.items())}


def _line(job: CountedJob) -> dict[str, Any]:
    """A breakdown line for a counted job, with the state and issues the estimator gave it when it was counted."""
    detail = job.detail
    reason = detail.get("reason")
    return {
        "step": job.step,
        "type": job.kind,
        "job": job.job_arn,
        "state": "running" if not job.final else str(detail.get("state", "estimated")),
        "cost": str(job.cost),
        "issues": list(dict.fromkeys([str(i) for i in detail.get("issues", [])] + ([str(reason)] if reason else []))),
    }


def _estimate(
    lines: list[dict[str, Any]], details: Iterable[Mapping[str, Any]], total: Decimal, complete: bool
) -> dict[str, Any]:
    hours = unpriced_hours(details)
    return {
        "steps": lines,
        "complete": complete and not hours,
        "total": total,
        "unpriced": sorted(hours),
        "unpriced_instance_hours": {k: str(v) for k, v in hours.items()},
    }


def _merge_lines(previous: list[dict[str, Any]], jobs: list[CountedJob]) -> list[dict[str, Any]]:
    """The running breakdown with each job's line replaced (or added)."""
    by_job = {str(line.get("job", "")).lower(): line for line in previous if line.get("job")}
    lines = list(previous)
    for job in jobs:
        new = _line(job)
        old = by_job.get(job.job_arn.lower())
        if old is not None:
            lines[lines.index(old)] = new
        else:
            lines.append(new)
    return lines


def _details(state: Any, jobs: list[CountedJob]) -> list[Mapping[str, Any]]:
    merged = dict(state.details)
    merged.update({job.job_arn.lower(): job.detail for job in jobs})
    return list(merged.values())


def _counted(arn: str, step: str, kind: str, cost: Any, *, state: Any, final: bool, attempt: int) -> CountedJob:
    key = arn.lower()
    return CountedJob(
        job_arn=arn,
        step=step,
        kind=kind,
        cost=quantize_usd(cost.total),
        detail=cost.model_dump(mode="json"),
        final=final,
        previous=state.counted.get(key) if key in state.counted else None,
        attempt=attempt,
    )


def _attempt_now(record: ExecutionRecord | None, at: datetime | None = None) -> int:
    """The attempt running at `at` (now when None): 1 + the retries the status events show up to then."""
    if record is None:
        return 1
    return 1 + sum(1 for a in record.attempts() if at is None or a.at <= at)


# -------------------------------------------------------------------------------------------------- a step ended


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
    """A step ended: count the job(s) it ran at their final cost, once (replacing a running mark)."""
    execution = event.execution_arn()
    if event.owner_account() != owner_account:
        return CostOutcome(status="ignored", execution_arn=execution, reason="an execution of another account")
    if event.detail.current_status not in ENDED_STEP_STATUSES:
        return CostOutcome(
            status="running",
            execution_arn=execution,
            reason=f"step {event.detail.step_name} is {event.detail.current_status}",
        )
    if event.cache_hit:
        return CostOutcome(status="ignored", execution_arn=execution, reason="a cached step is not billed again")
    jobs = [(_KINDS[k], arn) for k, arn in event.job_arns().items() if k in _KINDS]
    if not jobs:
        return CostOutcome(status="ignored", execution_arn=execution, reason="the step ran no job")
    region = execution.split(":")[3]
    for _ in range(MAX_ATTEMPTS):
        state = costs.state(execution)
        todo = [(k, a) for k, a in jobs if a.lower() not in state.counted or a.lower() in state.running]
        if not todo:
            return CostOutcome(status="duplicate", execution_arn=execution, reason="job(s) already counted")
        attempt = _attempt_now(state.record)
        counted = []
        for kind, arn in todo:
            described = sagemaker.describe_job(kind, arn)
            if described is None:
                continue  # counted when the execution ends, or reported there as incomplete
            cost = _cost(kind, described, region, prices, price_lookup, now)
            counted.append(
                _counted(arn, event.detail.step_name, kind, cost, state=state, final=not cost.running, attempt=attempt)
            )
        if not counted:
            return CostOutcome(status="ignored", execution_arn=execution, reason="the job could not be described yet")
        outcome = _commit_counts(execution, event.pipeline_arn(), counted, state, costs, owner_account, now)
        if outcome is not None:
            return outcome
    raise CostConflictError(f"{execution}: the estimate kept changing while counting")


def _commit_counts(
    execution: str,
    pipeline_arn: str,
    jobs: list[CountedJob],
    state: Any,
    costs: CostRepository,
    owner_account: str,
    now: datetime,
) -> CostOutcome | None:
    """Count jobs into the running estimate; None when another writer was first (read again)."""
    holder = spend_holder(state.record, owner_account)
    if _follow_record(execution, state, holder, costs, now):
        return None
    added = sum((job.delta for job in jobs), Decimal(0))
    lines = _merge_lines(list((state.estimate or {}).get("breakdown") or []), jobs)
    estimate = _estimate(lines, _details(state, jobs), state.total + added, complete=False)
    if not costs.commit(
        execution,
        holder=holder,
        pipeline_arn=pipeline_arn,
        month=month_of(now),
        jobs=jobs,
        estimate=estimate,
        version=state.version,
        at=now,
    ):
        return None
    return CostOutcome(
        status="counted",
        execution_arn=execution,
        added=added,
        total=state.total + added,
        consumer=holder.account,
        unpriced=list(estimate["unpriced"]),
    )


# ----------------------------------------------------------------------------------------- an execution ended


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
    """The execution (an attempt of it) ended: list its steps, describe the jobs not counted at their final cost,
    count them, finalise the attempt and write its finish alert (or keep it pending until the execution is
    attributed)."""
    execution = event.execution_arn()
    if event.owner_account() != owner_account or not event.terminal:
        return CostOutcome(status="ignored", execution_arn=execution, reason="not a finished execution of this account")
    region = execution.split(":")[3]
    ended = event.time
    for _ in range(MAX_ATTEMPTS):
        state = costs.state(execution)
        if state.ended_at is not None and state.ended_at >= _iso(ended):
            return CostOutcome(
                status="duplicate", execution_arn=execution, reason="this end (or a later one) is already finalised"
            )
        try:
            steps, _pages = sagemaker.list_steps(execution)
        except ExecutionNotFoundError as exc:  # terminal: a retry cannot bring the execution back
            return CostOutcome(
                status="gone",
                execution_arn=execution,
                total=state.total if state.estimate else None,
                consumer=spend_holder(state.record, owner_account).account,
                reason="SageMaker no longer knows the execution (it, or its pipeline, was deleted): not finalised, "
                f"the estimate keeps only the jobs counted when their steps ended ({exc})",
            )
        outcome = _finalise(event, steps, state, region, costs, sagemaker, budgets, prices, price_lookup, now)
        if outcome is not None:
            return outcome
    raise CostConflictError(f"{execution}: the estimate kept changing while finalising")


def _finalise(
    event: PipelineExecutionStatusEvent,
    steps: list[dict[str, Any]],
    state: Any,
    region: str,
    costs: CostRepository,
    sagemaker: CostDataGateway,
    budgets: BudgetSource,
    prices: PriceTable,
    price_lookup: PriceLookup | None,
    now: datetime,
) -> CostOutcome | None:
    execution, owner = event.execution_arn(), event.owner_account()
    holder = spend_holder(state.record, owner)
    if _follow_record(execution, state, holder, costs, now):
        return None
    described = _describe_uncounted(steps, state, sagemaker)
    estimate = _priced_estimate(steps, described, event, region=region, prices=prices, lookup=price_lookup, now=now)
    previous = int((state.estimate or {}).get("attempt") or 0)
    attempt = max(_attempt_now(state.record, event.time), previous + 1)
    new = _counted_now(estimate.steps, described, state, attempt)
    added = sum((job.delta for job in new), Decimal(0))
    total = state.total + added
    lines = _final_lines(estimate.steps, state, new)
    complete = all(line["state"] in PRICED_STATES for line in lines)
    cost = _estimate(lines, _details(state, new), total, complete)
    month = month_of(now)
    attempt_total = total - Decimal(str((state.estimate or {}).get("finalised_total", 0)))
    budget, invalid = _budget(budgets, holder)
    alert, pending = _finish_or_pending(
        event, state, holder, costs, (attempt, cost, attempt_total, added), month=month, budget=budget
    )
    if not costs.commit(
        execution,
        holder=holder,
        pipeline_arn=event.pipeline_arn(),
        month=month,
        jobs=new,
        estimate=cost,
        version=state.version,
        finalise=Finalisation(event.time, attempt, str(event.status)),
        finish_alert=alert,
        pending_finish=pending,
        at=now,
    ):
        return None
    return CostOutcome(
        status="finalised",
        execution_arn=execution,
        added=added,
        total=total,
        consumer=holder.account,
        alerts=["finish"] if alert else (["finish-pending"] if pending else []),
        attempt=attempt,
        unpriced=list(cost["unpriced"]),
        budget_policy_invalid=invalid,
    )


def _describe_uncounted(
    steps: list[dict[str, Any]], state: Any, sagemaker: CostDataGateway
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The steps' jobs described now (arn -> (kind, response)); jobs counted at their final cost are not described
    again: their cost lines are on record."""
    described: dict[str, tuple[str, dict[str, Any]]] = {}
    for kind, arn in jobs_to_describe(steps):
        if arn.lower() in state.counted and arn.lower() not in state.running:
            continue
        response = sagemaker.describe_job(kind, arn)
        if response is not None:
            described[arn] = (kind, response)
    return described


def _priced_estimate(
    steps: list[dict[str, Any]],
    described: dict[str, tuple[str, dict[str, Any]]],
    event: PipelineExecutionStatusEvent,
    *,
    region: str,
    prices: PriceTable,
    lookup: PriceLookup | None,
    now: datetime,
) -> Estimate:
    """The steps' estimate; when some (instance type, component) pairs are not in the table and a lookup is given,
    estimated again with the prices it finds."""
    estimate = step_costs(steps, described, region=region, prices=prices, now=now, execution_status=event.status)
    wanted = [p for st in estimate.steps if st.component for p in _pairs(st.component, st.instances)]
    if wanted and lookup is not None:
        priced = _priced(prices, lookup, region, wanted)
        estimate = step_costs(steps, described, region=region, prices=priced, now=now, execution_status=event.status)
    return estimate


def _counted_now(
    steps: Sequence[StepCost], described: dict[str, tuple[str, dict[str, Any]]], state: Any, attempt: int
) -> list[CountedJob]:
    """Only a job described now is counted (a running mark is not replaced by nothing), once (a job listed under two
    steps), even at no cost (an unpriced instance type: its instance-hours are reported)."""
    new: list[CountedJob] = []
    fresh = {arn.lower() for arn in described}
    for s in steps:
        key = (s.job_arn or "").lower()
        if key not in fresh:
            continue
        fresh.discard(key)
        new.append(_counted(s.job_arn or "", s.step_name, s.kind or "", s, state=state, final=True, attempt=attempt))
    return new


def _finish_or_pending(
    event: PipelineExecutionStatusEvent,
    state: Any,
    holder: SpendHolder,
    costs: CostRepository,
    attempt_cost: tuple[int, dict[str, Any], Decimal, Decimal],
    *,
    month: str,
    budget: Budget | None,
) -> tuple[OwnerAlert | None, bool]:
    """The finish alert when it is due, else whether it waits for the attribution (a pending mark).
    `attempt_cost`: the attempt, its estimate, the attempt's total and what this finalisation adds."""
    attempt, cost, attempt_total, added = attempt_cost
    if _finish_due(state.record, holder):
        alert = _finish_alert(
            state.record,
            holder,
            status=str(event.status),
            ended_at=_ended_at(event),
            attempt=attempt,
            cost=cost,
            attempt_total=attempt_total,
            month=month,
            month_to_date=(costs.month_spend(month, holder.account) + added) if holder.account else None,
            budget=budget,
        )
        return alert, False
    return None, _attribution_pending(state.record)


def _ended_at(event: PipelineExecutionStatusEvent) -> datetime:
    """When the attempt ended, as the message shows it: the event's executionEndTime (the event's own time, when it
    is later, is its delivery), else the event's time."""
    end = event.detail.execution_end_time
    return end if end is not None and end.tzinfo is not None else event.time


def _follow_record(execution: str, state: Any, holder: SpendHolder, costs: CostRepository, now: datetime) -> bool:
    """Before counting more, make the counted total the spend of the holder the record names (True: moved, read
    again). The tracker moves the spend before it saves the record that changed it: a count that read the record in
    between, or an estimate first written from an older read, would otherwise add to one holder while the estimate
    says the total is another's (spend split between them, and negative after a later move)."""
    held = state.holder
    if held is None or held == holder:
        return False
    costs.move_spend(execution, holder=holder, at=now)
    return True


def _final_lines(steps: Iterable[Any], state: Any, new: list[CountedJob]) -> list[dict[str, Any]]:
    """The final breakdown: one line per listed step (a job counted at its final cost keeps the cost and state it was
    counted with), then the jobs counted for earlier attempts that the step list no longer shows."""
    fresh = {job.job_arn.lower(): job for job in new}
    lines, shown = [], set()
    for step in steps:
        arn = (step.job_arn or "").lower()
        first = arn not in shown  # a job listed under two steps shows its cost once, under the first
        shown.add(arn)
        if first and arn in fresh:
            lines.append({**_line(fresh[arn]), "step": step.step_name, "type": step.step_type or "-"})
        elif first and arn and arn in state.counted:
            recorded = CountedJob(
                step.job_arn or arn,
                step.step_name,
                step.step_type or "-",
                state.counted[arn],
                state.details[arn],
                final=arn not in state.running,
            )
            lines.append(_line(recorded))
        else:
            lines.append(_step_line(step))
    for arn, cost in state.counted.items():
        if arn not in shown:
            detail = state.details.get(arn, {})
            earlier = CountedJob(
                arn, "(earlier attempt)", str(detail.get("kind", "-")), cost, detail, final=arn not in state.running
            )
            lines.append({**_line(earlier), "issues": [*_line(earlier)["issues"], "a job of an earlier attempt"]})
    return lines


def _step_line(step: Any) -> dict[str, Any]:
    priced = step.state in PRICED_STATES
    return {
        "step": step.step_name,
        "type": step.step_type or "-",
        "job": step.job_arn,
        "state": str(step.state),
        "cost": str(quantize_usd(step.total)) if priced or step.total > 0 else None,
        "issues": list(dict.fromkeys([*step.issues, *([step.reason] if getattr(step, "reason", None) else [])])),
    }


def _budget(budgets: BudgetSource, holder: SpendHolder) -> tuple[Budget | None, bool]:
    """The consumer's budget, and whether the policy was invalid (then no budget: the estimate is still final)."""
    if holder.account is None:
        return None, False
    try:
        policy = budgets.load()
    except BudgetPolicyInvalidError:
        return None, True
    return (policy.budget_for(holder.account) if policy is not None else None), False


def _finish_due(record: ExecutionRecord | None, holder: SpendHolder) -> bool:
    """A finish alert goes out for consumer runs (forwarded, owner copy, inferred) and ambiguous ones."""
    if record is None:
        return False
    return holder.kind == "consumer" or record.source == AttributionSource.AMBIGUOUS


def _attribution_pending(record: ExecutionRecord | None) -> bool:
    return record is None or record.source == AttributionSource.UNKNOWN


def _finish_alert(
    record: ExecutionRecord,
    holder: SpendHolder,
    *,
    status: str,
    ended_at: datetime,
    attempt: int,
    cost: Mapping[str, Any],
    attempt_total: Decimal,
    month: str,
    month_to_date: Decimal | None,
    budget: Budget | None,
) -> OwnerAlert:
    return finish_message(
        execution_arn=record.execution_arn,
        consumer=holder.account,
        candidates=tuple(record.candidates),
        status=status,
        started_at=record.started_at,
        ended_at=ended_at,
        estimate_breakdown=cost["steps"],
        total=Decimal(str(cost["total"])),
        attempt=attempt,
        attempt_total=attempt_total,
        unpriced={k: Decimal(v) for k, v in dict(cost.get("unpriced_instance_hours") or {}).items()},
        month=month,
        consumer_month_to_date=month_to_date,
        budget=budget,
        principal=record.initiator_principal,
        attribution_source=record.source.value,
    )


# ---------------------------------------------------------------------------------------- the running tick


def on_running_tick(
    *,
    owner_account: str,
    costs: CostRepository,
    sagemaker: CostDataGateway,
    budgets: BudgetSource,
    prices: PriceTable,
    now: datetime,
    price_lookup: PriceLookup | None = None,
) -> TickOutcome:
    """Every RunningEstimateMinutes: count what each running job has cost so far (the increase since its last
    count, once), then release finish alerts that were waiting for their execution's attribution.

    Calls: one query for the running executions; per execution one state query and one ListPipelineExecutionSteps
    (per page); at most one Describe per running job; the rates through the price lookup (with the Price List on: one
    read of its cached answers per tick, a GetProducts + cache write per rate not cached yet); one transaction per
    execution whose jobs' counts moved; one query for pending finish alerts and, per pending alert, one state query
    and one transaction."""
    executions, jobs, conflicts, added, errors = 0, 0, 0, Decimal(0), []
    for execution in costs.open_executions():
        if arn_account(execution) != owner_account:
            continue
        executions += 1
        try:
            counted = _tick_execution(execution, costs, sagemaker, prices, price_lookup, owner_account, now)
        except ExecutionNotFoundError as exc:
            errors.append(f"{execution}: {exc}")
            continue
        jobs, added, conflicts = jobs + counted[0], added + counted[1], conflicts + counted[2]
    released, dropped = _release_pending(costs, budgets, owner_account, now)
    return TickOutcome(
        executions=executions,
        jobs_counted=jobs,
        added=added,
        finish_alerts=released,
        pending_dropped=dropped,
        conflicts=conflicts,
        errors=list(errors),
    )


def _tick_execution(
    execution: str,
    costs: CostRepository,
    sagemaker: CostDataGateway,
    prices: PriceTable,
    price_lookup: PriceLookup | None,
    owner_account: str,
    now: datetime,
) -> tuple[int, Decimal, int]:
    """Count the execution's running jobs: (jobs whose count moved, the amount added, conflicting writes met)."""
    region = execution.split(":")[3]
    steps, _pages = sagemaker.list_steps(execution)
    running = _running_jobs(steps)
    if not running:
        return 0, Decimal(0), 0
    state = costs.state(execution)
    attempt = _attempt_now(state.record)
    moved: list[CountedJob] = []
    for step_name, kind, arn in running:
        key = arn.lower()
        if key in state.counted and key not in state.running:
            continue  # counted at its final cost already
        described = sagemaker.describe_job(kind, arn)
        if described is None:
            continue
        cost = _cost(kind, described, region, prices, price_lookup, now)
        job = _counted(arn, step_name, kind, cost, state=state, final=not cost.running, attempt=attempt)
        if job.previous is None or job.cost != job.previous or job.final:
            moved.append(job)
    if not moved:
        return 0, Decimal(0), 0
    for conflicts in range(MAX_ATTEMPTS):
        done = _commit_counts(execution, steps_pipeline(execution), moved, state, costs, owner_account, now)
        if done is not None:
            return len(moved), done.added, conflicts
        state = costs.state(execution)  # another writer counted first: recount against what it wrote
        moved = [
            _recount(job, state)
            for job in moved
            if job.job_arn.lower() not in state.counted or job.job_arn.lower() in state.running
        ]
        if not moved:
            return 0, Decimal(0), conflicts + 1
    raise CostConflictError(f"{execution}: the estimate kept changing during the running tick")


def _recount(job: CountedJob, state: Any) -> CountedJob:
    key = job.job_arn.lower()
    previous = state.counted.get(key) if key in state.counted else None
    return CountedJob(job.job_arn, job.step, job.kind, job.cost, job.detail, job.final, previous, job.attempt)


def steps_pipeline(execution_arn: str) -> str:
    return execution_arn.split("/execution/")[0]


def _running_jobs(steps: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(step name, job kind, job ARN) of every step that is running a job."""
    found = []
    for step in steps:
        if step.get("StepStatus") not in ("Starting", "Executing", "Stopping"):
            continue
        metadata = step.get("Metadata") or {}
        for key, kind in _METADATA_KINDS.items():
            arn = (metadata.get(key) or {}).get("Arn")
            if arn:
                found.append((str(step.get("StepName", "-")), kind, str(arn)))
        tuning = (metadata.get("TuningJob") or {}).get("Arn")
        if tuning:
            found.append((str(step.get("StepName", "-")), "tuning", str(tuning)))
        for check in ("QualityCheck", "ClarifyCheck"):
            arn = (metadata.get(check) or {}).get("CheckJobArn")
            if arn:
                found.append((str(step.get("StepName", "-")), "processing", str(arn)))
    return found


def _release_pending(
    costs: CostRepository, budgets: BudgetSource, owner_account: str, now: datetime
) -> tuple[int, int]:
    """Release the finish alerts whose attribution is now known: (alerts released, alerts dropped)."""
    released = dropped = 0
    for pending in costs.pending_finishes():
        state = costs.state(pending.execution_arn)
        holder = spend_holder(state.record, owner_account)
        if _attribution_pending(state.record):
            if now - _parse_iso(pending.ended_at) > PENDING_FINISH_MAX:
                costs.resolve_pending(pending, None, at=now)  # nobody was ever known: no finish alert
                dropped += 1
            continue
        alert = None
        if _finish_due(state.record, holder) and state.record is not None and state.estimate is not None:
            budget, _invalid = _budget(budgets, holder)
            month = str(state.estimate.get("month") or month_of(now))
            alert = _finish_alert(
                state.record,
                holder,
                status=pending.status,
                ended_at=_parse_iso(pending.ended_at),
                attempt=pending.attempt,
                cost={
                    "steps": state.estimate.get("breakdown") or [],
                    "total": state.total,
                    "unpriced_instance_hours": state.estimate.get("unpriced_instance_hours") or {},
                },
                attempt_total=state.total,
                month=month,
                month_to_date=costs.month_spend(month, holder.account) if holder.account else None,
                budget=budget,
            )
        if costs.resolve_pending(pending, alert, at=now) and alert is not None:
            released += 1
    return released, dropped


# ------------------------------------------------------------------------------------------------------ time


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
