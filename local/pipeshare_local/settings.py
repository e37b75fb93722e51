"""Emulation settings: every behaviour of the emulated AWS services that AWS does not document is one named setting.

One model, ``EmulationSettings``, with a block per emulated channel:

* ``cloudtrail``: how "AWS API Call via CloudTrail" records reach EventBridge (latency, which accounts have a trail,
  and the order against the service events the same call causes);
* ``sagemaker``: what the SageMaker pipeline-execution emulation sends where AWS documents no value or no rule;
* ``ram``: the RAM emulation's invitation window and event shapes;
* ``pricing``: the Price List (GetProducts) emulation's page size and filter matching;
* ``faults``: the fault plan, transient faults injected at the endpoint into the functions' calls (``Fault``).

The local stack takes it (``LocalStack(settings=...)``), scenarios set it (top-level ``cloudtrail:``, ``sagemaker:``,
``ram:`` blocks and a ``faults:`` list), and docs/scenarios.md ("Emulation settings") lists every setting with its
variants, its default and what AWS documents about it. Unknown keys and values are refused. The models validate
assignments too, so a setting changed while a stack runs (``stack.settings.cloudtrail.delay_minutes = 5``) is checked
as well.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "SCENARIO_CLOUDTRAIL_DELAY_MINUTES",
    "STACK_CLOUDTRAIL_DELAY_MINUTES",
    "CloudTrailSettings",
    "EmulationSettings",
    "Fault",
    "PricingSettings",
    "RamSettings",
    "SageMakerSettings",
]

# CloudTrail -> EventBridge latency of a LocalStack built without settings (tests): none, so that a call's record is
# delivered with the call's own events.
STACK_CLOUDTRAIL_DELAY_MINUTES: float = 0
# The same latency for scenarios that do not set `cloudtrail: {delay_minutes: ...}`: the one constant to change.
SCENARIO_CLOUDTRAIL_DELAY_MINUTES: float = 3

AccountId = Annotated[str, Field(pattern=r"^[0-9]{12}$")]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CloudTrailSettings(_Settings):
    """CloudTrail management events on EventBridge ("AWS API Call via CloudTrail").

    AWS documents that they are delivered best effort, with no ordering or latency promise relative to the service's
    own events, and only in an account with a trail logging management events.
    """

    delay_minutes: float = Field(default=STACK_CLOUDTRAIL_DELAY_MINUTES, ge=0, le=24 * 60)
    owner_trail: bool = True  # records reach the account that owns the called resource (own calls, owner copies)
    consumer_trail: bool = True  # records reach a calling account that does not own the called resource
    trails: dict[AccountId, bool] = Field(default_factory=dict)  # per-account override of the two above
    order: Literal["before_service_events", "after_service_events"] = "before_service_events"

    @property
    def delay(self) -> timedelta:
        return timedelta(minutes=self.delay_minutes)

    def has_trail(self, account: str, *, owns_resource: bool) -> bool:
        """Whether `account` has a trail logging management events, as the settings say."""
        default = self.owner_trail if owns_resource else self.consumer_trail
        return self.trails.get(account, default)


StatusValue = Literal["absent", "Starting", "Executing"]


class SageMakerSettings(_Settings):
    """The SageMaker pipeline-execution emulation (status / step events, CloudTrail records, errors)."""

    first_previous_status: StatusValue = "absent"  # previousPipelineExecutionStatus of an execution's first event
    first_previous_step_status: StatusValue = "absent"  # previousStepStatus of a step attempt's first event
    step_starting_event: bool = True  # a step sends Starting, then Executing at the same instant (else Executing only)
    same_instant_order: Literal["causal", "reverse"] = "causal"  # events of one instant: as they happen, or reversed
    duplicate_events: Literal["none", "same_id", "new_id"] = "none"  # status / step events sent twice
    owner_cloudtrail_copy: bool = False  # the resource owner gets a copy of a cross-account call's CloudTrail record
    consumer_status_events: bool = False  # a consumer-started execution's status / step events also go to it
    job_not_found_code: Literal["ResourceNotFound", "ValidationException"] = "ResourceNotFound"
    access_denied_cloudtrail_code: Literal["AccessDenied", "AccessDeniedException"] = "AccessDenied"
    # ListPipelineParametersForExecution: the values given at start only, or every declared parameter (its default
    # when none was given): AWS documents "a list of parameters for a pipeline execution", nothing more
    execution_parameters: Literal["given", "with_defaults"] = "given"


class RamSettings(_Settings):
    """The RAM emulation."""

    invitation_ttl_hours: float = Field(default=12, gt=0)
    event_resources: Literal["arn", "empty"] = "arn"  # `resources` of RAM events: the invitation / share ARN, or []
    # DisassociateResourceShare naming a principal that is not associated: UnknownResourceException, or success
    disassociate_unassociated: Literal["unknown_resource", "no_op"] = "unknown_resource"

    @property
    def invitation_ttl(self) -> timedelta:
        return timedelta(hours=self.invitation_ttl_hours)


class PricingSettings(_Settings):
    """The Price List (GetProducts) emulation: what the API reference leaves unsaid (docs/aws-facts.md §4.5)."""

    default_max_results: int = Field(default=100, ge=1, le=100)  # page size when the request sets no MaxResults
    term_match_case: Literal["exact", "insensitive"] = "exact"  # TERM_MATCH compares values case-sensitively or not
    # ANY_OF / NONE_OF: the values in one string, split on this (AWS Labs' pricing MCP server joins them with ",")
    list_separator: str = Field(default=",", min_length=1, max_length=3)
    unknown_service_code: Literal["empty", "NotFoundException"] = "empty"  # a ServiceCode the fixture has no product of


FaultKind = Literal["Throttling", "InternalError", "timeout"]


class Fault(_Settings):
    """One transient fault injected at the endpoint into the calls functions make (never into tooling calls).

    The calls it applies to: `service` (the signing name, as `stack.calls()` reports it: dynamodb, sns, ram, ...) and
    `operation` (the API operation, e.g. TransactWriteItems), optionally only one `account`'s and one `function`'s
    (the signing function's logical ID). Which of them fail: the first `count` matching calls, or each with
    probability `rate` (a random.Random(`seed`) per fault: the same calls fail on every run). `error`: `Throttling`
    and `InternalError` answer the service's own throttling / internal error in its protocol (pipeshare_local/
    faults.py lists the codes); `timeout` applies the request and loses the answer (the connection is closed).
    """

    service: str = Field(min_length=1)
    operation: str = Field(min_length=1)
    error: FaultKind
    count: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, ge=0, le=1)
    seed: int = 0
    account: AccountId | None = None
    function: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _count_or_rate(self) -> Fault:
        if (self.count is None) == (self.rate is None):
            raise ValueError("a fault takes one of count (the first N matching calls) or rate (0..1)")
        return self


class EmulationSettings(_Settings):
    """Every emulation setting of the local stack (see the module docstring)."""

    cloudtrail: CloudTrailSettings = Field(default_factory=CloudTrailSettings)
    sagemaker: SageMakerSettings = Field(default_factory=SageMakerSettings)
    ram: RamSettings = Field(default_factory=RamSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    faults: list[Fault] = Field(default_factory=list)  # the fault plan: none by default

    def restore(self, other: EmulationSettings) -> None:
        """Take other's values, in place (whoever holds this object sees them)."""
        for name in type(self).model_fields:
            setattr(self, name, other.model_copy(deep=True).__dict__[name])

    def changed(self) -> dict[str, dict[str, object]]:
        """The settings that differ from the defaults, per block (for reports; the fault plan as `faults.plan`)."""
        default = EmulationSettings()
        changes: dict[str, dict[str, object]] = {}
        if self.faults:
            changes["faults"] = {"plan": [fault.model_dump(exclude_none=True) for fault in self.faults]}
        for name in type(self).model_fields:
            if name == "faults":
                continue
            mine, theirs = getattr(self, name).model_dump(), getattr(default, name).model_dump()
            diff = {key: value for key, value in mine.items() if theirs.get(key) != value}
            if diff:
                changes[name] = diff
        return changes
