"""The message sent when a consumer's execution (or one attempt of it) ends: its estimated cost per step and in total,
the consumer's month-to-date spend against its budget. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints, field_validator

from pipeshare.logic.attribution import OwnerAlert
from pipeshare.logic.budgets import (
    ESTIMATE_STATEMENT,
    Budget,
    Money,
    Month,
    _amount,
    _budget_block,
    _cents,
    _fit,
    _Frozen,
    _iso,
    _money,
)
from pipeshare.models.domain import AccountId
from pipeshare.models.owner_events import TERMINAL_STATUSES, arn_account, pipeline_of

FINISH_SCHEMA = "pipeshare.owner.execution-cost/1"


class _StepCost(BaseModel):
    """One line of an estimate breakdown (the shape `logic/estimate.py` supplies, as a dict)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    step: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: str | None = None
    state: str | None = None
    cost: Money | None = None  # None: the step could not be estimated
    issues: tuple[str, ...] = ()


class _FinishFields(_Frozen):
    execution_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:sagemaker:.+/execution/.+$")]
    consumer: AccountId
    status: str
    started_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    month: Month

    @field_validator("status")
    @classmethod
    def _terminal(cls, value: str) -> str:
        if value not in TERMINAL_STATUSES:
            raise ValueError(f"the execution has not ended (status {value!r})")
        return value


def finish_message(
    *,
    execution_arn: str,
    consumer: str,
    status: str,
    started_at: datetime | None,
    ended_at: datetime | None,
    estimate_breakdown: Sequence[Mapping[str, Any]],
    total: Decimal,
    month: str,
    consumer_month_to_date: Decimal,
    budget: Budget | None,
    principal: str | None = None,
    attribution_source: str | None = None,
    currency: str = "USD",
) -> OwnerAlert:
    """The alert when a consumer's execution ends: the estimated cost per step and in total, the consumer's
    month-to-date estimated spend (this execution included) and its share of the budget, and the plain statement
    that this is an estimate, not the bill, paid by the owner account.

    `estimate_breakdown`: dicts {step, type, state, cost, issues} (cost None: not estimated). Raises ValueError
    (pydantic's ValidationError) for a malformed field or an execution that has not ended.
    """
    fields = _FinishFields(
        execution_arn=execution_arn,
        consumer=consumer,
        status=status,
        started_at=started_at,
        ended_at=ended_at,
        month=month,
    )
    steps = [_StepCost.model_validate(dict(step)) for step in estimate_breakdown]
    total, mtd = _money(total), _money(consumer_month_to_date)
    pipeline_arn = pipeline_of(fields.execution_arn)
    pipeline_name = pipeline_arn.rsplit("/", 1)[-1]
    owner = arn_account(fields.execution_arn)
    duration = (
        int((fields.ended_at - fields.started_at).total_seconds()) if fields.started_at and fields.ended_at else None
    )
    unestimated = [s.step for s in steps if s.cost is None]
    event = "execution.finished"
    message: dict[str, Any] = {
        "schema": FINISH_SCHEMA,
        "event": event,
        "consumer_account": fields.consumer,
        "principal": principal,
        "attribution_source": attribution_source,
        "pipeline_name": pipeline_name,
        "pipeline_arn": pipeline_arn,
        "execution_arn": fields.execution_arn,
        "owner_account": owner,
        "region": fields.execution_arn.split(":")[3],
        "execution": {
            "status": fields.status,
            "started_at": _iso(fields.started_at),
            "ended_at": _iso(fields.ended_at),
            "duration_seconds": duration,
        },
        "estimate": {
            "currency": currency,
            "total": _amount(total),
            "complete": not unestimated,
            "unestimated_steps": unestimated,
            "steps": [
                {
                    "step": s.step,
                    "type": s.type,
                    "state": s.state,
                    "cost": None if s.cost is None else _amount(s.cost),
                    "issues": list(s.issues),
                }
                for s in steps
            ],
        },
        "month_to_date": {
            "month": fields.month,
            "consumer_spend": _amount(mtd),
            "budget": None if budget is None else _budget_block(budget, mtd, currency),
        },
        "billing": {"estimate": True, "payer_account": owner, "statement": ESTIMATE_STATEMENT},
    }
    attributes = {
        "event": event,
        "consumer_account": fields.consumer,
        "owner_account": owner,
        "month": fields.month,
        "status": fields.status,
    }
    used = f", MTD {_amount(budget.percent_used(mtd))}% of budget" if budget is not None else ""
    subject = _fit(
        "run of ",
        pipeline_name,
        f" by {fields.consumer} {fields.status}: est. {currency} {_cents(total)}{'+' if unestimated else ''}{used}",
    )
    return OwnerAlert(subject=subject, message=message, attributes=attributes)
