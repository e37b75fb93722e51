"""The budget messages: a threshold reached (`pipeshare.owner.budget-threshold/2`) and each enforcement action
(`pipeshare.owner.budget-enforcement/2`)."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import (
    Field,
)

from pipeshare.models.messages import (
    BudgetBlock,
    EstimateBilling,
    MessageBody,
    SpendBlock,
    _Part,
)

THRESHOLD_SCHEMA: Final = "pipeshare.owner.budget-threshold/2"
ENFORCEMENT_SCHEMA: Final = "pipeshare.owner.budget-enforcement/2"


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
