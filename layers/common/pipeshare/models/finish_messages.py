"""The finish message (`pipeshare.owner.execution-cost/2`): an attempt of a consumer's execution ended, with its
estimated cost; and the validated fields it is built from."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Final, Literal

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
    model_validator,
)

from pipeshare.models.base import Model
from pipeshare.models.messages import (
    BudgetBlock,
    EstimatePayerBilling,
    MessageBody,
    _Part,
    cents,
)
from pipeshare.models.types import TERMINAL_STATUSES, AccountId, Candidate, Money, Month

FINISH_SCHEMA: Final = "pipeshare.owner.execution-cost/2"


class _Frozen(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepCostLine(Model):
    """One line of an estimate breakdown (the shape `logic/estimate.py` supplies, as a dict); in a finish message its
    cost is shown in cents."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    step: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: str | None = None
    state: str | None = None
    cost: Money | None = None  # None: the step could not be estimated
    issues: tuple[str, ...] = ()

    @field_serializer("cost")
    def _in_cents(self, value: Decimal | None) -> str | None:
        return None if value is None else cents(value)


class FinishFields(_Frozen):
    """The validated identity of a finish message: which execution attempt ended, for whom, when."""

    execution_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:sagemaker:.+/execution/.+$")]
    consumer: AccountId | None
    candidates: tuple[Candidate, ...] = ()  # accounts, or organization / OU ARNs (a share to an organization)
    status: str
    started_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    month: Month
    attempt: Annotated[int, Field(ge=1, le=1000)] = 1

    @field_validator("status")
    @classmethod
    def _terminal(cls, value: str) -> str:
        if value not in TERMINAL_STATUSES:
            raise ValueError(f"the execution has not ended (status {value!r})")
        return value

    @model_validator(mode="after")
    def _someone(self) -> FinishFields:
        if self.consumer is None and not self.candidates:
            raise ValueError("a finish message names the consumer, or the candidates of an ambiguous run")
        return self


class FinishExecution(_Part):
    status: str
    attempt: int
    started_at: str | None
    ended_at: str | None
    duration_seconds: int | None


class UnpricedHours(_Part):
    instance_type: str
    instance_hours: str


class FinishEstimate(_Part):
    currency: str
    attempt_total: str
    total: str
    complete: bool
    lower_bound: bool
    unestimated_steps: tuple[str, ...]
    unpriced: tuple[UnpricedHours, ...]
    steps: tuple[StepCostLine, ...]


class MonthToDate(_Part):
    month: str
    consumer_spend: str | None
    budget: BudgetBlock | None


class FinishMessage(MessageBody):
    """`pipeshare.owner.execution-cost/2`: an attempt of a consumer's execution ended, with its estimated cost."""

    schema_: Literal["pipeshare.owner.execution-cost/2"] = Field(default=FINISH_SCHEMA, alias="schema")
    event: Literal["execution.finished"] = "execution.finished"
    consumer_account: str | None
    candidates: tuple[str, ...]
    principal: str | None
    attribution_source: str | None
    pipeline_name: str
    pipeline_arn: str
    execution_arn: str
    owner_account: str
    region: str
    execution: FinishExecution
    estimate: FinishEstimate
    month_to_date: MonthToDate
    billing: EstimatePayerBilling
