"""The SNS messages pipeshare publishes: subject, JSON message and message attributes."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, ClassVar, Final, Literal

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
from pipeshare.models.budgets import Money, Month, _Frozen
from pipeshare.models.domain import AccountId
from pipeshare.models.executions import Candidate
from pipeshare.models.owner_events import TERMINAL_STATUSES

FINISH_SCHEMA: Final = "pipeshare.owner.execution-cost/2"
ALERT_SCHEMA: Final = "pipeshare.owner.execution-alert/1"
THRESHOLD_SCHEMA: Final = "pipeshare.owner.budget-threshold/2"
ENFORCEMENT_SCHEMA: Final = "pipeshare.owner.budget-enforcement/2"


def cents(value: Decimal) -> str:
    """An amount rounded for people: to the cent, plain notation."""
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


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


# ------------------------------------------------------------------------------------------- message bodies (JSON)


class MessageBody(Model):
    """A JSON message body: `body()` is its `model_dump(mode="json")`, field order as declared, None values kept
    except for the fields in OMIT_WHEN_NONE (absent from the body when None). Amounts are strings already rounded."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    def body(self) -> dict[str, Any]:
        absent = {name for name in self.OMIT_WHEN_NONE if getattr(self, name) is None}
        return self.model_dump(mode="json", by_alias=True, exclude=absent)


class _Part(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BudgetEnforceBlock(_Part):
    at_percent: int | None
    stop_executions: bool
    remove_from_share: bool
    downgrade_to_read_only: bool
    stop_when_worst_case_exceeds_remaining: bool
    switch_to_read_only: bool  # deprecated alias, as written
    dry_run: bool


class BudgetBlock(_Part):
    """A budget as messages show it."""

    currency: str
    monthly_limit: str
    percent_used: str
    thresholds: tuple[int, ...]
    enforce: BudgetEnforceBlock
    count_inferred: bool
    unpriced: str


class SpendBlock(_Part):
    """All a consumer's spend, the part attributed by evidence, and what enforcement counts (`enforced_on`)."""

    currency: str
    total: str
    confirmed: str
    inferred: str
    enforced_on: str
    enforced_percent: str
    remaining: str


class EstimateBilling(_Part):
    estimate: Literal[True] = True
    statement: str


class PayerBilling(_Part):
    payer_account: str
    statement: str


class EstimatePayerBilling(_Part):
    estimate: Literal[True] = True
    payer_account: str
    statement: str


# ----------------------------------------------------------------------------------------------- finish message


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


# ------------------------------------------------------------------------------------------------ alert message


class AlertExecution(_Part):
    status: str | None
    started_at: str | None
    ended_at: str | None


class GrantBlock(_Part):
    consumer: str
    share_arn: str
    share_name: str
    permission_arn: str | None
    permission_name: str | None
    association_status: str
    allow_execution: bool


class AttributionBlock(_Part):
    source: str
    rank: int
    evidence: str
    caveat: str | None


class Correction(_Part):
    source: str
    consumer_account: str | None
    candidates: tuple[str, ...]
    statement: str


class AlertMessage(MessageBody):
    """`pipeshare.owner.execution-alert/1`: who started, stopped or retried an owner's pipeline execution."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("corrects", "projection")

    schema_: Literal["pipeshare.owner.execution-alert/1"] = Field(default=ALERT_SCHEMA, alias="schema")
    event: str
    action: str
    attempt: int | None
    consumer_account: str | None
    principal: str | None
    principal_id: str | None
    candidates: tuple[str, ...]
    acted_at: str | None
    pipeline_name: str
    pipeline_arn: str
    execution_arn: str
    owner_account: str
    region: str
    execution: AlertExecution
    grant: GrantBlock | None
    attribution: AttributionBlock
    billing: PayerBilling
    corrects: Correction | None = None
    projection: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------- budget messages


class PipelineSpend(_Part):
    pipeline: str
    pipeline_arn: str
    spend: str


class EnforcementState(_Part):
    applies: bool
    dry_run: bool
    enforced_on: str
    statement: str


class ThresholdMessage(MessageBody):
    """`pipeshare.owner.budget-threshold/2`: a consumer's spend reached thresholds of its budget."""

    schema_: Literal["pipeshare.owner.budget-threshold/2"] = Field(default=THRESHOLD_SCHEMA, alias="schema")
    event: Literal["budget.threshold"] = "budget.threshold"
    consumer_account: str
    month: str
    threshold: int
    thresholds: tuple[int, ...]
    also_reached: tuple[int, ...]
    threshold_amount: str
    spend: SpendBlock
    budget: BudgetBlock
    top_pipelines: tuple[PipelineSpend, ...]
    enforcement: EnforcementState
    billing: EstimateBilling


class EnforcementMessage(MessageBody):
    """`pipeshare.owner.budget-enforcement/2`: the fields every enforcement action's message starts with."""

    schema_: Literal["pipeshare.owner.budget-enforcement/2"] = Field(default=ENFORCEMENT_SCHEMA, alias="schema")
    event: Literal["budget.enforcement"] = "budget.enforcement"
    action: str
    consumer_account: str
    month: str
    dry_run: bool
    outcome: str
    detail: str | None
    spend: SpendBlock
    budget: BudgetBlock
    enforce_at_percent: int


class StopExecutionBlock(_Part):
    execution_arn: str
    pipeline_arn: str | None
    pipeline_name: str
    attempt: int
    attribution_source: str | None
    initiator_account: str | None


class WorstCaseBlock(_Part):
    usd: str
    complete: bool | None
    remaining: str


class StopMessage(EnforcementMessage):
    reason: str
    why: str
    execution: StopExecutionBlock
    worst_case: WorstCaseBlock | None
    unpriced_instance_types: tuple[str, ...] | None
    notes: tuple[str, ...]
    billing: EstimateBilling


class ShareBlock(_Part):
    share_arn: str
    share_name: str
    principal: str
    pipelines: tuple[str, ...]
    other_principals: str = "unchanged: only this consumer's principal is taken off the share"


class ReadOnlyBlock(_Part):
    share_arn: str | None
    pipelines: tuple[str, ...]
    outcome: str


class ShareMessage(EnforcementMessage):
    reason: Literal["over-budget"] = "over-budget"
    why: str = "the consumer's spend is at or over its budget, and its budget takes it off its allow-execution shares"
    share: ShareBlock
    read_only: ReadOnlyBlock | None
    notes: tuple[str, ...]
    billing: EstimateBilling


class GroupShareBlock(_Part):
    share_arn: str
    share_name: str
    principals: tuple[str, ...]
    principal_kind: str
    pipelines: tuple[str, ...]


class GroupShareMessage(EnforcementMessage):
    reason: Literal["over-budget"] = "over-budget"
    why: str
    share: GroupShareBlock
    notes: tuple[str, ...]
    billing: EstimateBilling
