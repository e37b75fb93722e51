"""The message sent when a consumer's execution (or one attempt of it) ends: its estimated cost per step and in total,
the consumer's month-to-date spend against its budget. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipeshare.logic.budgets import ESTIMATE_STATEMENT, SUBJECT_MAX, _amount, _budget_block, _cents, _fit, _iso
from pipeshare.models.budgets import Budget, _money
from pipeshare.models.finish_messages import (
    FINISH_SCHEMA,
    FinishEstimate,
    FinishExecution,
    FinishFields,
    FinishMessage,
    MonthToDate,
    StepCostLine,
    UnpricedHours,
)
from pipeshare.models.messages import EstimatePayerBilling, OwnerAlert
from pipeshare.models.types import arn_account, pipeline_of

__all__ = ["FINISH_SCHEMA", "finish_message"]
NAME_ROOM = 8  # characters of the pipeline name ("..." included) a finish subject keeps at least, when it can


def _who(fields: FinishFields) -> str:
    if fields.consumer is not None:
        return fields.consumer
    shown = " or ".join(_short(c) for c in fields.candidates[:2]) + (
        f" (+{len(fields.candidates) - 2})" if len(fields.candidates) > 2 else ""
    )
    return f"{shown} (ambiguous)"


def _short(candidate: str) -> str:
    """A candidate as the subject names it: an account ID, or the last part of an organization / OU ARN."""
    return candidate.rsplit("/", 1)[-1] if candidate.startswith("arn:") else candidate


def _estimate_phrase(total: Decimal, currency: str, unpriced: Mapping[str, Decimal], unestimated: bool) -> str:
    """ "est. USD 12.40"; when something is not priced, the figure is a lower bound and the subject says why."""
    if unpriced:
        return f"est. >= {currency} {_cents(total)}, unpriced: {', '.join(sorted(unpriced))}"
    return f"est. {currency} {_cents(total)}{'+' if unestimated else ''}"


def finish_message(
    *,
    execution_arn: str,
    consumer: str | None,
    status: str,
    started_at: datetime | None,
    ended_at: datetime | None,
    estimate_breakdown: Sequence[Mapping[str, Any]],
    total: Decimal,
    month: str,
    consumer_month_to_date: Decimal | None,
    budget: Budget | None,
    principal: str | None = None,
    attribution_source: str | None = None,
    currency: str = "USD",
    attempt: int = 1,
    attempt_total: Decimal | None = None,
    candidates: Sequence[str] = (),
    unpriced: Mapping[str, Decimal] | None = None,
) -> OwnerAlert:
    """The alert when an attempt of a consumer's execution ends (attempt 1: the run; 2, 3, ...: its retries): the
    estimated cost per step, of this attempt and of the execution so far, the consumer's month-to-date estimated
    spend and its share of the budget, and the plain statement that this is an estimate, not the bill, paid by the
    owner account. An ambiguous run (several consumers could have started it) names the `candidates` instead of a
    consumer. `unpriced`: instance type -> instance-hours nobody could price; the estimate is then a lower bound
    (complete false) and the subject says so. Amounts are rounded to cents for people.

    `estimate_breakdown`: dicts {step, type, state, cost, issues} (cost None: not estimated). Raises ValueError
    (pydantic's ValidationError) for a malformed field or an execution that has not ended.
    """
    fields = FinishFields(
        execution_arn=execution_arn,
        consumer=consumer,
        candidates=tuple(candidates),
        status=status,
        started_at=started_at,
        ended_at=ended_at,
        month=month,
        attempt=attempt,
    )
    steps = tuple(StepCostLine.model_validate(dict(step)) for step in estimate_breakdown)
    total = _money(total)
    this_attempt = total if attempt_total is None else _money(attempt_total)
    mtd = None if consumer_month_to_date is None else _money(consumer_month_to_date)
    hours = {k: _money(v) for k, v in (unpriced or {}).items()}
    message = _finish_body(
        fields, steps, (this_attempt, total, mtd), hours, budget, currency, attribution=(principal, attribution_source)
    )
    subject = _finish_subject(message, budget, mtd, this_attempt, hours, fields)
    return OwnerAlert(subject=subject, message=message.body(), attributes=_finish_attributes(message))


def _finish_body(
    fields: FinishFields,
    steps: tuple[StepCostLine, ...],
    amounts: tuple[Decimal, Decimal, Decimal | None],
    hours: Mapping[str, Decimal],
    budget: Budget | None,
    currency: str,
    *,
    attribution: tuple[str | None, str | None],
) -> FinishMessage:
    """The body. `amounts`: this attempt's total, the execution's total, the consumer's month to date (or None);
    `attribution`: the principal and the attribution source."""
    this_attempt, total, mtd = amounts
    pipeline_arn, owner = pipeline_of(fields.execution_arn), arn_account(fields.execution_arn)
    return FinishMessage(
        consumer_account=fields.consumer,
        candidates=fields.candidates,
        principal=attribution[0],
        attribution_source=attribution[1],
        pipeline_name=pipeline_arn.rsplit("/", 1)[-1],
        pipeline_arn=pipeline_arn,
        execution_arn=fields.execution_arn,
        owner_account=owner,
        region=fields.execution_arn.split(":")[3],
        execution=_execution(fields),
        estimate=_estimate(steps, this_attempt, total, hours, currency),
        month_to_date=MonthToDate(
            month=fields.month,
            consumer_spend=None if mtd is None else _cents(mtd),
            budget=None if budget is None or mtd is None else _budget_block(budget, mtd, currency),
        ),
        billing=EstimatePayerBilling(payer_account=owner, statement=ESTIMATE_STATEMENT),
    )


def _execution(fields: FinishFields) -> FinishExecution:
    ended, started = fields.ended_at, fields.started_at
    return FinishExecution(
        status=fields.status,
        attempt=fields.attempt,
        started_at=_iso(started),
        ended_at=_iso(ended),
        duration_seconds=int((ended - started).total_seconds()) if started and ended else None,
    )


def _estimate(
    steps: tuple[StepCostLine, ...], this_attempt: Decimal, total: Decimal, hours: Mapping[str, Decimal], currency: str
) -> FinishEstimate:
    unestimated = tuple(s.step for s in steps if s.cost is None)
    return FinishEstimate(
        currency=currency,
        attempt_total=_cents(this_attempt),
        total=_cents(total),
        complete=not unestimated and not hours,
        lower_bound=bool(hours),
        unestimated_steps=unestimated,
        unpriced=tuple(UnpricedHours(instance_type=k, instance_hours=_amount(v)) for k, v in sorted(hours.items())),
        steps=steps,
    )


def _finish_attributes(message: FinishMessage) -> dict[str, str]:
    return {
        "event": message.event,
        "consumer_account": message.consumer_account or "ambiguous",
        "owner_account": message.owner_account,
        "month": message.month_to_date.month,
        "status": message.execution.status,
        "attempt": str(message.execution.attempt),
    }


def _finish_subject(
    message: FinishMessage,
    budget: Budget | None,
    mtd: Decimal | None,
    this_attempt: Decimal,
    hours: Mapping[str, Decimal],
    fields: FinishFields,
) -> str:
    used = f", MTD {_amount(budget.percent_used(mtd))}% of budget" if budget is not None and mtd is not None else ""
    phrase = _estimate_phrase(this_attempt, message.estimate.currency, hours, bool(message.estimate.unestimated_steps))
    head = "run of " if fields.attempt == 1 else f"retry {fields.attempt - 1} of "
    who = f" by {_who(fields)} {fields.status}: "
    tails = [f"{who}{phrase}{used}"]
    if hours:  # the unpriced types must not crowd the pipeline out: drop the MTD part, then count the types instead
        counted = f"est. >= {message.estimate.currency} {_cents(this_attempt)}, {len(hours)} type(s) unpriced"
        tails += [f"{who}{phrase}", f"{who}{counted}{used}", f"{who}{counted}"]
    keep = min(len(message.pipeline_name), NAME_ROOM)
    tail = next((t for t in tails if len(f"pipeshare: {head}") + keep + len(t) <= SUBJECT_MAX), tails[-1])
    return _fit(head, message.pipeline_name, tail)
