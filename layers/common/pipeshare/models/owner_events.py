"""Owner-side input contracts: SageMaker pipeline status/step events, CloudTrail Start/Stop/Retry calls, RAM changes.

Shapes: docs/aws-facts.md §3 (status/step events, [C]) and §5 (CloudTrail, the owner copy is [U] for SageMaker).
Parsed for what decisions need: what is security-relevant is strict (source, detail-type, account, region, the ARNs
and their accounts, the fields a decision reads); what AWS may extend is open: unknown keys (in the envelope and in
`detail`) are ignored or kept, and status values outside the API enums are kept as text (`is_known_*` tells them
apart; the handlers log them). The previous status is never a reason to refuse an event: what SageMaker sends for an
execution's first event is not documented (aws-facts §3.1).
ARNs are compared case-insensitively (aws-facts §3.1: the docs example keeps mixed-case pipeline names).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, StringConstraints, Tag, model_validator

from pipeshare.models.base import EventEnvelope, Model
from pipeshare.models.events import RamStateChangeEvent
from pipeshare.models.types import (
    ACTION_BY_EVENT_NAME,
    KNOWN_EXECUTION_STATUSES,
    KNOWN_STEP_STATUSES,
    TERMINAL_STATUSES,
    AccountId,
    Arn,
    ExecutionArn,
    ExecutionStatus,
    PipelineAction,
    PipelineArn,
    PipelineNameOrArn,
    Region,
    StepStatus,
    Text,
    arn_account,
    partition_of,
    pipeline_of,
    same_arn,
)

STATUS_DETAIL_TYPE = "SageMaker Model Building Pipeline Execution Status Change"
STEP_DETAIL_TYPE = "SageMaker Model Building Pipeline Execution Step Status Change"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
RAM_DETAIL_TYPE = "Resource Sharing State Change"

# --------------------------------------------------------------------------------------------------------- envelope


class _Envelope(EventEnvelope):
    """The standard envelope. Its documented keys are checked; keys EventBridge may add (e.g. `replay-name` on a
    replayed event) are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", defer_build=True)

    version: Literal["0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    account: AccountId
    region: Region
    resources: list[Arn] = Field(default_factory=list, max_length=100)


class _Detail(Model):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


# ----------------------------------------------------------------------------------------- pipeline status / steps


class _ExecutionDetail(_Detail):
    pipeline_arn: PipelineArn = Field(alias="pipelineArn")
    pipeline_execution_arn: ExecutionArn = Field(alias="pipelineExecutionArn")

    @model_validator(mode="after")
    def _execution_under_pipeline(self) -> _ExecutionDetail:
        if not same_arn(pipeline_of(self.pipeline_execution_arn), self.pipeline_arn):
            raise ValueError("pipelineExecutionArn is not an execution of pipelineArn")
        return self


class ExecutionStatusDetail(_ExecutionDetail):
    current_status: ExecutionStatus = Field(alias="currentPipelineExecutionStatus")
    previous_status: ExecutionStatus | None = Field(default=None, alias="previousPipelineExecutionStatus")
    execution_start_time: datetime | None = Field(default=None, alias="executionStartTime")
    execution_end_time: datetime | None = Field(default=None, alias="executionEndTime")
    display_name: Text | None = Field(default=None, alias="pipelineExecutionDisplayName")
    description: Text | None = Field(default=None, alias="pipelineExecutionDescription")


class _PipelineEvent(_Envelope):
    """A SageMaker pipeline event about one execution (status or step): the execution, its pipeline and owner."""

    source: Literal["aws.sagemaker"]
    detail: _ExecutionDetail

    def execution_arn(self) -> str:
        return self.detail.pipeline_execution_arn

    def pipeline_arn(self) -> str:
        return self.detail.pipeline_arn

    def owner_account(self) -> str:
        return arn_account(self.detail.pipeline_arn)


class PipelineExecutionStatusEvent(_PipelineEvent):
    """`SageMaker Model Building Pipeline Execution Status Change`, delivered to the owner account. No caller field."""

    detail_type: Literal["SageMaker Model Building Pipeline Execution Status Change"] = Field(alias="detail-type")
    detail: ExecutionStatusDetail

    @property
    def status(self) -> ExecutionStatus:
        return self.detail.current_status

    @property
    def terminal(self) -> bool:
        return self.detail.current_status in TERMINAL_STATUSES

    def unknown_values(self) -> dict[str, str]:
        """Status values outside the API enum (kept, logged by the handler, never a reason to refuse the event)."""
        values = {
            "currentPipelineExecutionStatus": self.detail.current_status,
            "previousPipelineExecutionStatus": self.detail.previous_status,
        }
        return {k: v for k, v in values.items() if v is not None and v not in KNOWN_EXECUTION_STATUSES}


class StepStatusDetail(_ExecutionDetail):
    step_name: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(alias="stepName")
    step_type: Text | None = Field(default=None, alias="stepType")
    current_status: StepStatus = Field(alias="currentStepStatus")
    previous_status: StepStatus | None = Field(default=None, alias="previousStepStatus")
    step_start_time: datetime | None = Field(default=None, alias="stepStartTime")
    step_end_time: datetime | None = Field(default=None, alias="stepEndTime")
    metadata: dict[str, Any] = Field(default_factory=dict)
    cache_hit_result: dict[str, Any] | None = Field(default=None, alias="cacheHitResult")
    failure_reason: Text | None = Field(default=None, alias="failureReason")


class PipelineStepStatusEvent(_PipelineEvent):
    """`SageMaker Model Building Pipeline Execution Step Status Change` (cost input: the jobs a step ran)."""

    detail_type: Literal["SageMaker Model Building Pipeline Execution Step Status Change"] = Field(alias="detail-type")
    detail: StepStatusDetail

    def unknown_values(self) -> dict[str, str]:
        values = {"currentStepStatus": self.detail.current_status, "previousStepStatus": self.detail.previous_status}
        return {k: v for k, v in values.items() if v is not None and v not in KNOWN_STEP_STATUSES}

    @property
    def cache_hit(self) -> bool:
        """A cached step points at an earlier job: it must not be billed again (aws-facts §4.3)."""
        return self.detail.cache_hit_result is not None

    def job_arns(self) -> dict[str, str]:
        """metadata kind -> ARN, e.g. {"processingJob": "arn:...:processing-job/..."}; kinds without an ARN skipped."""
        found: dict[str, str] = {}
        for kind, value in sorted(self.detail.metadata.items()):
            arn = value.get("arn") if isinstance(value, dict) else None
            if isinstance(arn, str) and arn.startswith("arn:"):
                found[kind] = arn
        return found


# ------------------------------------------------------------------------------------------ CloudTrail API calls


class UserIdentity(_Detail):
    """The caller. AssumedRole: arn and sessionContext; AWSAccount (owner copy, [U]): principalId, accountId only."""

    type: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{1,64}$")]
    principal_id: Annotated[str, StringConstraints(max_length=512)] | None = Field(default=None, alias="principalId")
    arn: Arn | None = None
    account_id: AccountId = Field(alias="accountId")
    session_context: dict[str, Any] | None = Field(default=None, alias="sessionContext")

    @model_validator(mode="after")
    def _assumed_role_has_arn(self) -> UserIdentity:
        if self.type == "AssumedRole" and self.arn is None:
            raise ValueError("an AssumedRole userIdentity must carry its arn")
        return self


class PipelineRequestParameters(_Detail):
    """Start carries pipelineName (a name or an ARN); Stop/Retry carry pipelineExecutionArn."""

    pipeline_name: PipelineNameOrArn | None = Field(default=None, alias="pipelineName")
    pipeline_execution_arn: ExecutionArn | None = Field(default=None, alias="pipelineExecutionArn")
    client_request_token: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None, alias="clientRequestToken"
    )
    display_name: Text | None = Field(default=None, alias="pipelineExecutionDisplayName")


class PipelineResponseElements(_Detail):
    pipeline_execution_arn: ExecutionArn | None = Field(default=None, alias="pipelineExecutionArn")


class PipelineApiCallDetail(_Detail):
    event_version: Text | None = Field(default=None, alias="eventVersion")
    user_identity: UserIdentity = Field(alias="userIdentity")
    event_time: datetime = Field(alias="eventTime")
    event_source: Literal["sagemaker.amazonaws.com"] = Field(alias="eventSource")
    event_name: Literal["StartPipelineExecution", "StopPipelineExecution", "RetryPipelineExecution"] = Field(
        alias="eventName"
    )
    aws_region: Region = Field(alias="awsRegion")
    request_parameters: PipelineRequestParameters | None = Field(default=None, alias="requestParameters")
    response_elements: PipelineResponseElements | None = Field(default=None, alias="responseElements")
    error_code: Text | None = Field(default=None, alias="errorCode")
    error_message: Text | None = Field(default=None, alias="errorMessage")
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(alias="eventID")
    request_id: Text | None = Field(default=None, alias="requestID")
    recipient_account_id: AccountId = Field(alias="recipientAccountId")
    shared_event_id: Text | None = Field(default=None, alias="sharedEventID")


class PipelineApiCallEvent(_Envelope):
    """`AWS API Call via CloudTrail` for Start/Stop/RetryPipelineExecution (source aws.sagemaker).

    A successful call must name its execution (responseElements or requestParameters); when both name it they agree.
    """

    source: Literal["aws.sagemaker"]
    detail_type: Literal["AWS API Call via CloudTrail"] = Field(alias="detail-type")
    detail: PipelineApiCallDetail

    @model_validator(mode="after")
    def _names_its_execution(self) -> PipelineApiCallEvent:
        request = self.detail.request_parameters
        response = self.detail.response_elements
        requested = request.pipeline_execution_arn if request else None
        returned = response.pipeline_execution_arn if response else None
        if requested and returned and not same_arn(requested, returned):
            raise ValueError("requestParameters and responseElements name different executions")
        if self.succeeded and self.execution_arn() is None:
            raise ValueError("a successful pipeline call must name its pipelineExecutionArn")
        if self.succeeded and self.action is not PipelineAction.START and requested is None:
            raise ValueError(f"{self.detail.event_name} must carry requestParameters.pipelineExecutionArn")
        pipeline, execution = self.pipeline_arn(), self.execution_arn()
        if pipeline and execution and not same_arn(pipeline_of(execution), pipeline):
            raise ValueError("requestParameters.pipelineName and the execution ARN name different pipelines")
        return self

    @property
    def action(self) -> PipelineAction:
        return ACTION_BY_EVENT_NAME[self.detail.event_name]

    @property
    def succeeded(self) -> bool:
        """False for refused or failed calls (errorCode present, e.g. AccessDenied)."""
        return self.detail.error_code is None

    @property
    def is_cross_account_copy(self) -> bool:
        """Delivered to another account than the caller's (the resource owner's copy, [U] for SageMaker)."""
        return self.detail.recipient_account_id != self.detail.user_identity.account_id

    def execution_arn(self) -> str | None:
        """The execution acted on: responseElements first, else requestParameters (Stop/Retry); None if unknown."""
        response = self.detail.response_elements
        if response and response.pipeline_execution_arn:
            return response.pipeline_execution_arn
        request = self.detail.request_parameters
        return request.pipeline_execution_arn if request else None

    def pipeline_arn(self) -> str | None:
        """The pipeline acted on. A bare pipelineName resolves in the caller's own account and region."""
        request = self.detail.request_parameters
        name = request.pipeline_name if request else None
        if name and name.startswith("arn:"):
            return name
        if name:
            region = self.detail.aws_region
            return f"arn:{partition_of(region)}:sagemaker:{region}:{self.caller_account()}:pipeline/{name}"
        execution = self.execution_arn()
        return pipeline_of(execution) if execution else None

    def pipeline_owner_account(self) -> str | None:
        pipeline = self.pipeline_arn()
        return arn_account(pipeline) if pipeline else None

    def caller_account(self) -> str:
        return self.detail.user_identity.account_id

    def principal_arn(self) -> str | None:
        """The caller's ARN (AssumedRole, IAMUser...); None for an AWSAccount identity (owner copy)."""
        return self.detail.user_identity.arn

    def principal_id(self) -> str | None:
        return self.detail.user_identity.principal_id


# ------------------------------------------------------------------------------------------------ RAM (owner side)


class OwnerShareStateChange(RamStateChangeEvent):
    """The RAM `Resource Sharing State Change`, as the owner sees it: a trigger to re-read the share's grants."""

    def share_arns(self) -> list[str]:
        return [r for r in self.resources if ":resource-share/" in r]


# -------------------------------------------------------------------------------------------------- any owner event


def _owner_event_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        tag = value.get("detail-type", value.get("detail_type"))
        return tag if isinstance(tag, str) else None
    return getattr(value, "detail_type", None)


OwnerEventUnion = Annotated[
    Annotated[PipelineExecutionStatusEvent, Tag(STATUS_DETAIL_TYPE)]
    | Annotated[PipelineStepStatusEvent, Tag(STEP_DETAIL_TYPE)]
    | Annotated[PipelineApiCallEvent, Tag(CLOUDTRAIL_DETAIL_TYPE)]
    | Annotated[OwnerShareStateChange, Tag(RAM_DETAIL_TYPE)],
    Discriminator(_owner_event_tag),
]


class OwnerEvent(Model):
    """Any event the owner side consumes, chosen by its detail-type (use with parse_or_reject(..., wrap="event"))."""

    event: OwnerEventUnion
