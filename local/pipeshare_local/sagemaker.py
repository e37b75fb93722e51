"""In-process emulation of SageMaker pipeline executions, spoken to over SageMaker's real wire protocol.

moto 5.2.5 has pipelines but executions that are instantly ``Succeeded``, no cross-account start, no Stop/Retry, no
steps and no events. The local stack therefore answers twelve operations here and leaves every other SageMaker call
(CreatePipeline, DescribePipeline, UpdatePipeline, ListTrainingJobs, ...) to moto:

    StartPipelineExecution, StopPipelineExecution, RetryPipelineExecution,
    DescribePipelineExecution, ListPipelineExecutions, ListPipelineExecutionSteps,
    DescribePipelineDefinitionForExecution, ListPipelineParametersForExecution,
    DescribeTrainingJob, DescribeProcessingJob, DescribeTransformJob, DescribeHyperParameterTuningJob

An execution keeps the pipeline definition (moto's, as DescribePipeline shows it) it started with:
DescribePipelineDefinitionForExecution answers that one, whatever UpdatePipeline does afterwards. ``define_steps``
also writes the pipeline's definition, generated in AWS's pipeline definition schema from the step specifications
(``pipeline_definition``), so DescribePipeline, DescribePipelineDefinitionForExecution and what the executions run
agree.

The four Describe*Job operations answer for the jobs the emulated steps run (named by the job ARNs in the step
metadata). The jobs live in the pipeline OWNER's account and follow their step: InProgress while it runs, then
Completed / Failed / Stopping / Stopped; nobody else can see them (sharing a pipeline does not share its jobs).

The contract is botocore's ``sagemaker`` 2017-07-24 service model (protocol json 1.1, target prefix ``SageMaker``):
inputs are validated against the input shape (botocore's ``ParamValidator`` plus enums, ``max`` and ``pattern``),
responses are serialised from the output shape (timestamps as epoch seconds), errors are answered as HTTP 400 with
``{"__type": <code>, "Message": ...}``, which botocore turns into ``client.exceptions.<Code>``.

Cross-account access follows AWS RAM: a consumer names the owner's pipeline (or execution) by ARN and is let in only
while ``RamEmulator.grant`` says it holds the pipeline; Start/Stop/Retry additionally need the AllowExecution
permission. Executions live in the owner's account and progress over scenario time when ``tick()`` is called.

Behaviour that AWS does not document precisely is marked ``[unverified]`` where it is decided.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Unpack

from botocore.model import OperationModel, ServiceModel

from pipeshare_local import wire
from pipeshare_local.ram import RamEmulator
from pipeshare_local.settings import EmulationSettings
from pipeshare_local.wire import StrictParamValidator

__all__ = [
    "ALLOW_EXECUTION_PERMISSION",
    "DEFAULT_STEPS",
    "JOB_OPERATIONS",
    "OPERATIONS",
    "READ_ONLY_PERMISSION",
    "SageMakerError",
    "SageMakerParamValidator",
    "SageMakerPipelineEmulator",
    "StepSpec",
    "account_identity",
    "assumed_role_identity",
    "cloudtrail_event",
    "execution_status_event",
    "moto_assumed_role",
    "moto_pipeline_definition",
    "moto_pipeline_exists",
    "moto_pipeline_role",
    "moto_store_pipeline_definition",
    "pipeline_definition",
    "sagemaker_service_model",
    "step_status_event",
]

logger = logging.getLogger(__name__)

ALLOW_EXECUTION_PERMISSION = "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution"
READ_ONLY_PERMISSION = "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"

EXECUTION_STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
STEP_STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Step Status Change"
API_CALL_VIA_CLOUDTRAIL = "AWS API Call via CloudTrail"

START, STOP, RETRY = "StartPipelineExecution", "StopPipelineExecution", "RetryPipelineExecution"
DESCRIBE, LIST_EXECUTIONS, LIST_STEPS = (
    "DescribePipelineExecution",
    "ListPipelineExecutions",
    "ListPipelineExecutionSteps",
)
DESCRIBE_DEFINITION, LIST_PARAMETERS = "DescribePipelineDefinitionForExecution", "ListPipelineParametersForExecution"
# Describe*Job operation -> (ARN resource type of the job, input member naming it)
JOB_OPERATIONS = {
    "DescribeTrainingJob": ("training-job", "TrainingJobName"),
    "DescribeProcessingJob": ("processing-job", "ProcessingJobName"),
    "DescribeTransformJob": ("transform-job", "TransformJobName"),
    "DescribeHyperParameterTuningJob": ("hyper-parameter-tuning-job", "HyperParameterTuningJobName"),
}
OPERATIONS = frozenset(
    {START, STOP, RETRY, DESCRIBE, LIST_EXECUTIONS, LIST_STEPS, DESCRIBE_DEFINITION, LIST_PARAMETERS, *JOB_OPERATIONS}
)
MUTATING = frozenset({START, STOP, RETRY})

# Execution statuses (PipelineExecutionStatus) and step statuses (StepStatus).
EXECUTING, STOPPING, STOPPED, FAILED, SUCCEEDED = "Executing", "Stopping", "Stopped", "Failed", "Succeeded"
STARTING = "Starting"
TERMINAL = frozenset({SUCCEEDED, FAILED, STOPPED})
_ACTIVE_STEP = frozenset({STARTING, EXECUTING, STOPPING})

DEFAULT_ROLE = "pipeshare-local"  # role/session used in CloudTrail when the credentials name no assumed role
# [unverified] role reported by the jobs when the pipeline's own role cannot be looked up.
FALLBACK_PIPELINE_ROLE = "SageMakerPipelineExecRole"
# [unverified] SageMaker's execution-level reason when a step fails.
EXECUTION_FAILURE_REASON = "Step failure: One or multiple steps failed."

_TARGET_PREFIX = "SageMaker."
_PIPELINE_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]*):(?P<account>\d{12}|aws):pipeline/(?P<name>.+)$"
)
_EXECUTION_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]*):(?P<account>\d{12}):"
    r"pipeline/(?P<name>[^/]+)/execution/(?P<id>[^/]+)$"
)
_STEP_NAME_RE = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
_TRAINING_TYPES = frozenset({"Training", "Tuning"})
# step types whose job request takes StoppingCondition.MaxRuntimeInSeconds (CreateTransformJob has none)
_RUNTIME_TYPES = frozenset({"Training", "Tuning", "Processing", "QualityCheck", "ClarifyCheck"})
_PROCESSING_MAX_RUNTIME = 777600  # botocore ProcessingStoppingCondition.MaxRuntimeInSeconds max
DEFINITION_VERSION = "2020-12-01"  # the pipeline definition schema's only Version (aws-facts §4.6)
# [unverified] what a job of a step without an instance type reports (the describe outputs require one).
DEFAULT_JOB_INSTANCE_TYPE = "ml.m5.xlarge"
_ID_ALPHABET = string.ascii_lowercase + string.digits


def sagemaker_service_model() -> ServiceModel:
    """botocore's SageMaker service model (the installed botocore's copy)."""
    return wire.service_model("sagemaker")


# --------------------------------------------------------------------------------------------------------------
# Step specifications
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepSpec:
    """One step of an emulated pipeline: it runs for duration_seconds, then ends with outcome.

    type decides the step metadata (job ARNs): Training | Processing | Transform | Tuning | AutoML | Model |
    RegisterModel | Condition | Fail | Lambda | Callback | EMR | QualityCheck | ClarifyCheck; other types get none.
    A Fail step always fails (that is what a FailStep does). instance_type/instance_count are reported by
    snapshot() for cost estimates and by the step's job (Describe*Job); a job step without an instance type reports
    DEFAULT_JOB_INSTANCE_TYPE. The instance type must be one the job's describe output allows (botocore's enums).

    Job options (Training and Tuning steps only, except volume_gb and cache_hit):
      spot: managed spot training; the finished training job bills round(duration * (1 - spot_saving)) seconds.
      instance_groups: heterogeneous cluster, (instance type, count) pairs used instead of instance_type/count
        (snapshot() then reports instanceType None, the total instanceCount and instanceGroups).
      volume_gb: ML storage volume per instance (training / processing / tuning jobs).
      cache_hit: the step is served from cache: it succeeds at once and runs no job (CacheHitResult).
    max_runtime_seconds (Training, Tuning, Processing, QualityCheck, ClarifyCheck): the job's StoppingCondition.
      MaxRuntimeInSeconds, in the definition and in Describe*Job; at least duration_seconds (the emulation does not
      stop a job at its limit). None: a training job reports the default AWS documents (1 day, or duration_seconds
      when longer); a processing job reports no StoppingCondition (AWS documents no default).
    A Tuning step's tuning job runs duration_seconds on instance_type * instance_count (one training job).
    """

    name: str
    type: str = "Processing"
    duration_seconds: int = 300
    instance_type: str | None = "ml.m5.xlarge"
    instance_count: int = 1
    outcome: str = "Succeeded"  # Succeeded | Failed
    spot: bool = False
    spot_saving: float = 0.6
    instance_groups: tuple[tuple[str, int], ...] = ()
    volume_gb: int = 30
    cache_hit: bool = False
    max_runtime_seconds: int | None = None

    def __post_init__(self) -> None:
        if not _STEP_NAME_RE.match(self.name):
            raise ValueError(f"step name {self.name!r} must match [A-Za-z0-9-_]{{1,64}}")
        if self.outcome not in (SUCCEEDED, FAILED):
            raise ValueError(f"outcome must be Succeeded or Failed, not {self.outcome!r}")
        if self.duration_seconds < 0:
            raise ValueError("duration_seconds must be >= 0")
        if self.instance_count < 1:
            raise ValueError("instance_count must be >= 1")
        self._check_job_options()

    def _check_job_options(self) -> None:
        groups = tuple((str(kind), int(count)) for kind, count in self.instance_groups)
        object.__setattr__(self, "instance_groups", groups)  # lists (e.g. from JSON) become tuples
        if (self.spot or groups) and self.type not in _TRAINING_TYPES:
            raise ValueError("spot and instance_groups apply to Training and Tuning steps only")
        if not 0 <= self.spot_saving < 1:
            raise ValueError("spot_saving must be >= 0 and < 1")
        if any(count < 1 or not kind for kind, count in groups):
            raise ValueError("instance_groups must be (instance type, count >= 1) pairs")
        if self.volume_gb < 1:
            raise ValueError("volume_gb must be >= 1")
        if self.cache_hit and self.fails:
            raise ValueError("a step served from cache succeeds: cache_hit needs outcome Succeeded (and no Fail step)")
        self._check_runtime()

    def _check_runtime(self) -> None:
        limit = self.max_runtime_seconds
        if limit is None:
            return
        if self.type not in _RUNTIME_TYPES:
            raise ValueError(f"max_runtime_seconds applies to {', '.join(sorted(_RUNTIME_TYPES))} steps only")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("max_runtime_seconds must be a whole number >= 1")
        if self.type not in _TRAINING_TYPES and limit > _PROCESSING_MAX_RUNTIME:
            raise ValueError(f"a processing job's MaxRuntimeInSeconds is at most {_PROCESSING_MAX_RUNTIME}")
        if limit < self.duration_seconds:
            raise ValueError("max_runtime_seconds must be >= duration_seconds (the job would be stopped at its limit)")

    @property
    def fails(self) -> bool:
        return self.outcome == FAILED or self.type == "Fail"

    @property
    def job_instance_type(self) -> str:
        return self.instance_type or DEFAULT_JOB_INSTANCE_TYPE


DEFAULT_STEPS: tuple[StepSpec, ...] = (StepSpec(name="Process", type="Processing", duration_seconds=300),)

# step type -> (PipelineExecutionStepMetadata member, ARN resource type) for steps that run a SageMaker job
_JOB_STEPS = {
    "Training": ("TrainingJob", "training-job"),
    "Processing": ("ProcessingJob", "processing-job"),
    "Transform": ("TransformJob", "transform-job"),
    "Tuning": ("TuningJob", "hyper-parameter-tuning-job"),
    "AutoML": ("AutoMLJob", "automl-job"),
    "Model": ("Model", "model"),
}


# --------------------------------------------------------------------------------------------------------------
# Events: one function per shape (aws-facts §3.1 and §5.3)
# --------------------------------------------------------------------------------------------------------------


_envelope = partial(wire.event_envelope, source="aws.sagemaker")


def execution_status_event(
    *,
    account: str,
    region: str,
    time: datetime,
    pipeline_arn: str,
    execution_arn: str,
    display_name: str,
    current: str,
    previous: str | None,
    start_time: datetime,
    end_time: datetime | None = None,
    description: str | None = None,
) -> dict:
    """The "SageMaker Model Building Pipeline Execution Status Change" event (shape confirmed, aws-facts §3.1).

    account is the receiving account (the owner's default bus). previousPipelineExecutionStatus is left out when
    previous is None ([unverified] what the first event carries: settings.sagemaker.first_previous_status),
    executionEndTime is present only for a terminal status and pipelineExecutionDescription only when the execution
    has a description.
    """
    detail: dict[str, Any] = {"pipelineExecutionDisplayName": display_name, "currentPipelineExecutionStatus": current}
    if previous is not None:
        detail["previousPipelineExecutionStatus"] = previous
    detail["executionStartTime"] = wire.event_time(start_time)
    if end_time is not None:
        detail["executionEndTime"] = wire.event_time(end_time)
    if description is not None:
        detail["pipelineExecutionDescription"] = description
    detail["pipelineArn"] = pipeline_arn
    detail["pipelineExecutionArn"] = execution_arn
    return _envelope(
        detail_type=EXECUTION_STATUS_CHANGE,
        account=account,
        region=region,
        time=time,
        resources=[pipeline_arn, execution_arn],
        detail=detail,
    )


def step_status_event(
    *,
    account: str,
    region: str,
    time: datetime,
    pipeline_arn: str,
    execution_arn: str,
    step_name: str,
    step_type: str,
    current: str,
    previous: str | None,
    start_time: datetime,
    end_time: datetime | None = None,
    metadata: dict | None = None,
    failure_reason: str | None = None,
    cache_hit_source: str | None = None,
) -> dict:
    """The "SageMaker Model Building Pipeline Execution Step Status Change" event (confirmed, aws-facts §3.1).

    metadata is the API's PipelineExecutionStepMetadata (PascalCase); the event carries it in camelCase
    (`{"processingJob": {"arn": ...}}` is confirmed; [unverified] the other keys, e.g. trainingJob, transformJob).
    failureReason only when current is Failed; cacheHitResult only on a cache hit (confirmed keys; [unverified]
    cacheHitResult's inner key sourcePipelineExecutionArn). previousStepStatus is left out when previous is None
    ([unverified] the first event of a step: settings.sagemaker.first_previous_step_status) and stepEndTime is
    present only once the step has ended.
    """
    detail: dict[str, Any] = {"metadata": _camel(metadata or {}), "stepStartTime": wire.event_time(start_time)}
    if end_time is not None:
        detail["stepEndTime"] = wire.event_time(end_time)
    detail["stepName"] = step_name
    detail["stepType"] = step_type
    if previous is not None:
        detail["previousStepStatus"] = previous
    detail["currentStepStatus"] = current
    if failure_reason is not None and current == FAILED:
        detail["failureReason"] = failure_reason
    if cache_hit_source is not None:
        detail["cacheHitResult"] = {"sourcePipelineExecutionArn": cache_hit_source}
    detail["pipelineArn"] = pipeline_arn
    detail["pipelineExecutionArn"] = execution_arn
    return _envelope(
        detail_type=STEP_STATUS_CHANGE,
        account=account,
        region=region,
        time=time,
        resources=[pipeline_arn, execution_arn],
        detail=detail,
    )


def assumed_role_identity(
    *, account: str, role_name: str, session_name: str, principal_id: str, access_key_id: str | None, time: datetime
) -> dict:
    """CloudTrail userIdentity of an assumed-role caller (the caller's own copy; CloudTrail record contents).

    [unverified] sessionContext.attributes.creationDate: the session's real start is unknown here; the call time is
    used.
    """
    role_id = principal_id.split(":", 1)[0]
    identity: dict[str, Any] = {
        "type": "AssumedRole",
        "principalId": principal_id,
        "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}",
        "accountId": account,
    }
    if access_key_id:
        identity["accessKeyId"] = access_key_id
    identity["sessionContext"] = {
        "sessionIssuer": {
            "type": "Role",
            "principalId": role_id,
            "arn": f"arn:aws:iam::{account}:role/{role_name}",
            "accountId": account,
            "userName": role_name,
        },
        "webIdFederationData": {},
        "attributes": {"creationDate": wire.event_time(time), "mfaAuthenticated": "false"},
    }
    return identity


def account_identity(*, principal_id: str, account: str) -> dict:
    """CloudTrail userIdentity in a resource owner's copy of a cross-account call. [unverified] for SageMaker
    (aws-facts §5.1/§5.3: the AWSAccount type is documented, its use by SageMaker is not)."""
    return {"type": "AWSAccount", "principalId": principal_id, "accountId": account}


def cloudtrail_event(
    *,
    recipient: str,
    region: str,
    time: datetime,
    event_name: str,
    user_identity: dict,
    request_parameters: dict | None,
    response_elements: dict | None,
    request_id: str,
    source_ip: str,
    user_agent: str,
    shared_event_id: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> dict:
    """The "AWS API Call via CloudTrail" event of a SageMaker call, on recipient's default bus (aws-facts §5.3).

    The envelope and the CloudTrail record keys are documented; [unverified] the SageMaker requestParameters /
    responseElements key names (lowerCamelCase of the API members, the documented SageMaker convention). A failed
    call carries errorCode/errorMessage and "responseElements": null, as CloudTrail records failed calls.
    """
    detail: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": user_identity,
        "eventTime": wire.event_time(time),
        "eventSource": "sagemaker.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
    }
    if error_code is not None:
        detail["errorCode"] = error_code
        detail["errorMessage"] = error_message or ""
    detail["requestParameters"] = request_parameters
    detail["responseElements"] = None if error_code is not None else response_elements
    detail.update(
        {
            "requestID": request_id,
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": recipient,
        }
    )
    if shared_event_id is not None:
        detail["sharedEventID"] = shared_event_id
    detail["eventCategory"] = "Management"
    return _envelope(
        detail_type=API_CALL_VIA_CLOUDTRAIL, account=recipient, region=region, time=time, resources=[], detail=detail
    )


def _camel_key(key: str) -> str:
    return key.lower() if key.isupper() else key[:1].lower() + key[1:]


def _camel(value: Any) -> Any:
    """API member names (PascalCase) -> event / CloudTrail key names (lowerCamelCase), recursively."""
    if isinstance(value, dict):
        return {_camel_key(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    if isinstance(value, datetime):
        return wire.event_time(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


# --------------------------------------------------------------------------------------------------------------
# moto lookups (defaults for the local stack)
# --------------------------------------------------------------------------------------------------------------


def moto_pipeline_exists(account: str, region: str, name: str) -> bool:
    """Whether moto (in this process) holds pipeline `name` in account/region."""
    from moto.sagemaker.models import sagemaker_backends

    try:
        return name in sagemaker_backends[account][region].pipelines
    except KeyError:
        return False


def moto_pipeline_role(account: str, region: str, name: str) -> str | None:
    """RoleArn of moto's pipeline `name` in account/region (in this process), else None."""
    from moto.sagemaker.models import sagemaker_backends

    try:
        pipeline = sagemaker_backends[account][region].pipelines.get(name)
    except KeyError:
        return None
    role = getattr(pipeline, "role_arn", None)
    return role if isinstance(role, str) and role else None


def _moto_pipeline(account: str, region: str, name: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    try:
        return sagemaker_backends[account][region].pipelines.get(name)
    except KeyError:
        return None


def moto_pipeline_definition(account: str, region: str, name: str) -> tuple[str, datetime] | None:
    """(PipelineDefinition, CreationTime) of moto's pipeline `name` in account/region (in this process), else None."""
    pipeline = _moto_pipeline(account, region, name)
    if pipeline is None:
        return None
    created = pipeline.creation_time
    return str(pipeline.pipeline_definition), created if created.tzinfo else created.replace(tzinfo=UTC)


def moto_store_pipeline_definition(account: str, region: str, name: str, definition: str) -> bool:
    """Set moto's pipeline `name` definition, as UpdatePipeline would; False when there is no such pipeline."""
    pipeline = _moto_pipeline(account, region, name)
    if pipeline is None:
        return False
    pipeline.pipeline_definition = definition
    return True


def moto_assumed_role(access_key_id: str) -> tuple[str, str] | None:
    """(role ARN, session name) of credentials issued by moto STS AssumeRole (in this process), else None."""
    try:
        from moto.sts.models import sts_backends
    except ImportError:  # pragma: no cover - moto is a dependency of the local stack
        return None
    for by_partition in list(sts_backends.values()):
        for backend in list(by_partition.values()):
            role = backend.get_assumed_role_from_access_key(access_key_id)
            if role is not None:
                return role.role_arn, role.session_name
    return None


# --------------------------------------------------------------------------------------------------------------
# Validation and errors
# --------------------------------------------------------------------------------------------------------------


# Wording of the errors StrictParamValidator adds, as SageMaker words its validation errors.
_CONSTRAINT_MESSAGES = {
    "pattern mismatch": (
        "Value '{param}' at '{name}' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        "{pattern}"
    ),
    "invalid enum value": (
        "Value '{param}' at '{name}' failed to satisfy constraint: Member must satisfy enum value set: [{valid_values}]"
    ),
    "above max": (
        "Value '{param}' at '{name}' failed to satisfy constraint: Member must have length or value less than or "
        "equal to {max_allowed}"
    ),
}


class SageMakerParamValidator(StrictParamValidator):
    """StrictParamValidator plus ``pattern`` (whole-value match, as the service applies it), with SageMaker's
    wording of the errors."""

    messages = _CONSTRAINT_MESSAGES
    check_pattern = True


_UNMODELLED_STATUS = {
    "UnrecognizedClientException": 403,
    "MissingAuthenticationTokenException": 403,
    "UnknownOperationException": 400,
    "InternalFailure": 500,
}


class SageMakerError(wire.ServiceError):
    """An error answered as SageMaker does: HTTP status (400 unless noted) and {"__type": code, "Message": ...}."""

    unmodelled_status = _UNMODELLED_STATUS


def _validation_error(message: str) -> SageMakerError:
    return SageMakerError("ValidationException", message)


def _pipeline_not_found(pipeline_arn: str) -> SageMakerError:
    # [unverified] message wording
    return SageMakerError("ResourceNotFound", f"Pipeline '{pipeline_arn}' does not exist.")


def _execution_not_found(execution_arn: str) -> SageMakerError:
    # [unverified] message wording
    return SageMakerError("ResourceNotFound", f"Pipeline execution '{execution_arn}' does not exist.")


def _bad_body(message: str) -> SageMakerError:
    return SageMakerError("SerializationException", message)


def _invalid_token() -> SageMakerError:
    return _validation_error("The NextToken is not valid for this request.")


# An empty NextToken is as none.
_PAGES = wire.Pages(
    next_member="NextToken", limit_member="MaxResults", invalid_token=_invalid_token, blank_token_is_none=True
)


# --------------------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Job:
    """A SageMaker job run by a step attempt, in the owner's account; its status follows the step's."""

    resource: str  # ARN resource type: training-job | processing-job | transform-job | hyper-parameter-tuning-job
    name: str
    arn: str
    owner: str
    region: str
    spec: StepSpec
    role_arn: str
    output: str  # S3 prefix of the job's output
    created: datetime
    modified: datetime
    status: str = "InProgress"
    end: datetime | None = None
    failure: str | None = None
    model_name: str | None = None  # transform jobs: the model they run

    def seconds(self, now: datetime) -> int:
        """Run time so far (until the end once ended; never past the step's duration while running)."""
        if self.end is not None:
            return round((self.end - self.created).total_seconds())
        return min(round((now - self.created).total_seconds()), self.spec.duration_seconds)


@dataclass
class _Step:
    spec: StepSpec
    status: str | None = None  # None: not started yet
    start: datetime | None = None
    end: datetime | None = None
    attempt: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    job: _Job | None = None  # the job of the current attempt
    cache_source: str | None = None  # served from cache: the execution whose result it reuses


@dataclass
class _Execution:
    arn: str
    execution_id: str
    pipeline_arn: str
    pipeline_name: str
    owner: str
    region: str
    started_by: str
    display_name: str
    description: str | None
    created: datetime
    modified: datetime
    steps: list[_Step]
    ready_at: datetime  # when the step at `cursor` may start
    status: str = EXECUTING
    cursor: int = 0
    end: datetime | None = None
    failure: str | None = None
    parameters: list[dict[str, str]] = field(default_factory=list)
    parallelism: dict[str, Any] | None = None
    selective: dict[str, Any] | None = None
    version_id: int = 1
    announced: bool = False  # the first status event has no previous status (settings.sagemaker.first_previous_status)
    role_arn: str = ""  # the pipeline's role: the role its jobs run with
    definition: str = ""  # the pipeline definition as it was when the execution started
    pipeline_created: datetime | None = None  # the pipeline's CreationTime (DescribePipelineDefinitionForExecution)


@dataclass
class _Caller:
    account: str
    region: str
    access_key: str | None
    role_name: str
    session_name: str
    principal_id: str
    source_ip: str
    user_agent: str

    @property
    def arn(self) -> str:
        return f"arn:aws:sts::{self.account}:assumed-role/{self.role_name}/{self.session_name}"


@dataclass
class _Resolution:
    """What a request names, filled in step by step (CloudTrail needs it even when the request fails)."""

    owner: str | None = None
    region: str | None = None
    pipeline_name: str | None = None
    pipeline_arn: str | None = None
    execution_arn: str | None = None
    permission: str | None = None  # RAM permission of a cross-account caller
    role_arn: str | None = None  # StartPipelineExecution: the pipeline's role
    definition: tuple[str, datetime | None] | None = None  # StartPipelineExecution: the pipeline's definition now


@dataclass
class _Call:
    op: str
    caller: _Caller
    target: _Resolution
    now: datetime
    events: list[tuple[datetime, dict]] = field(default_factory=list)
    mark: int = 0  # events before this index happened before the call itself (catch-up)


# --------------------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------------------


def _setting(name: str) -> property:
    """An attribute that reads and writes settings.sagemaker.<name> (validated on assignment)."""

    def get(self: SageMakerPipelineEmulator) -> Any:
        return getattr(self.settings.sagemaker, name)

    def put(self: SageMakerPipelineEmulator, value: Any) -> None:
        setattr(self.settings.sagemaker, name, value)

    return property(get, put, doc=f"settings.sagemaker.{name}")


class SageMakerPipelineEmulator(wire.WireEmulator):
    """WSGI app answering the SageMaker pipeline-execution operations and the Describe*Job operations of the jobs
    the steps run (OPERATIONS); state kept in memory.

    Undocumented behaviour follows ``settings`` (pipeshare_local.settings.EmulationSettings: its ``sagemaker`` block
    and ``cloudtrail.order``; docs/scenarios.md "Emulation settings"). The object is read at every use, so a change
    takes effect at once; reset() restores the constructor's values. Shortcuts (settable attributes):
      owner_cloudtrail_copy: also deliver a CloudTrail copy of a cross-account Start/Stop/Retry to the owner.
      consumer_status_events: also deliver status/step events of an execution a consumer started to that consumer
        (aws-facts §3.2: undocumented either way).
      job_not_found_code: error code of a Describe*Job for an unknown (or another account's) job. ResourceNotFound,
        as the model documents; real DescribeTrainingJob has been seen answering ValidationException "Requested
        resource not found." (aws/aws-sdk#165), which can be chosen instead.
      access_denied_cloudtrail_code: CloudTrail's errorCode for an IAM denial (the API answers AccessDeniedException).
    ``response_observer`` (optional) is called with (operation name, response dict) before serialisation.
    pipeline_role looks up the pipeline's RoleArn (owner, region, name) at start; the jobs report it.
    pipeline_definition looks up the pipeline's (definition, creation time) at start, and store_definition writes a
    pipeline's definition (define_steps); None: the definition is generated from the step specifications and kept
    here only. The other keyword arguments are wire.Wiring's (account_for_access_key, clock, emit, page_size).
    """

    error = SageMakerError
    label = "SageMaker emulator"

    def __init__(
        self,
        *,
        ram: RamEmulator,
        pipeline_exists: Callable[[str, str, str], bool],
        settings: EmulationSettings | None = None,
        role_for_access_key: Callable[[str], tuple[str, str] | None] | None = moto_assumed_role,
        pipeline_role: Callable[[str, str, str], str | None] | None = moto_pipeline_role,
        pipeline_definition: Callable[[str, str, str], tuple[str, datetime] | None] | None = moto_pipeline_definition,
        store_definition: Callable[[str, str, str, str], bool] | None = moto_store_pipeline_definition,
        **wiring: Unpack[wire.Wiring],
    ) -> None:
        super().__init__(sagemaker_service_model(), **wiring)
        self._ram = ram
        self._pipeline_exists = pipeline_exists
        self._role_for_access_key = role_for_access_key
        self._pipeline_role = pipeline_role
        self._pipeline_definition = pipeline_definition
        self._store_definition = store_definition
        self.settings = settings if settings is not None else EmulationSettings()
        self._initial_settings = self.settings.model_copy(deep=True)
        self._emit_lock = threading.RLock()  # state change + emission, so events leave in the order they happen
        self.reset()

    # ---------------------------------------------------------------------------------------------- public API

    def reset(self) -> None:
        """Forget executions, jobs, idempotency tokens and step definitions; restore the constructor's options."""
        with self._lock:
            self._executions: dict[str, _Execution] = {}  # lower-case execution ARN -> execution
            self._tokens: dict[tuple[str, str, str], str] = {}  # (op, lower-case ARN, token) -> execution ARN
            self._steps: dict[tuple[str, str, str], tuple[StepSpec, ...]] = {}
            self._jobs: dict[tuple[str, str, str, str], _Job] = {}  # (owner, region, resource, lower name) -> job
            self.settings.restore(self._initial_settings)

    # settings shortcuts (scenarios' owner_cloudtrail_copy step, tests)
    owner_cloudtrail_copy = _setting("owner_cloudtrail_copy")
    consumer_status_events = _setting("consumer_status_events")
    job_not_found_code = _setting("job_not_found_code")
    access_denied_cloudtrail_code = _setting("access_denied_cloudtrail_code")

    def next_change(self) -> datetime | None:
        """When an execution next changes by itself (a step starts or ends), as of the last tick; None when no
        execution runs. The local stack's advance() stops there, so events are delivered in time order."""
        with self._lock:
            times = [t for t in map(_next_change, self._executions.values()) if t is not None]
        return min(times, default=None)

    def define_steps(self, account: str, region: str, pipeline_name: str, steps: list[StepSpec]) -> dict[str, Any]:
        """Steps of executions started from now on for the pipeline (owner account, region, name). The pipeline's
        definition becomes the one generated from them (returned; written to moto's pipeline when it exists)."""
        specs = tuple(steps)
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique: {names}")
        role = self._lookup_role(account, region, pipeline_name)
        definition = pipeline_definition(specs, owner=account, region=region, pipeline_name=pipeline_name, role=role)
        if self._store_definition is not None:
            self._store_definition(account, region, pipeline_name, json.dumps(definition))
        with self._lock:
            self._steps[(account, region, pipeline_name.lower())] = specs
        return definition

    def tick(self) -> None:
        """Move every execution forward to clock(), emitting step and status events in time order."""
        with self._emit_lock:
            with self._lock:
                now = self._now()
                timeline: list[tuple[datetime, dict]] = []
                for execution in self._executions.values():
                    self._advance(execution, now, timeline)
            self._emit_all(self._service_events(timeline))

    def snapshot(self) -> dict:
        """JSON-serialisable dump of every execution (as of the last tick)."""
        with self._lock:
            return {
                "now": wire.iso(self._now()),
                "executions": [self._execution_snapshot(e) for e in self._executions.values()],
            }

    def handles(self, environ: dict) -> bool:
        """True for SageMaker JSON 1.1 requests (X-Amz-Target "SageMaker.<Op>") of an emulated operation
        (OPERATIONS: the pipeline-execution operations and the four Describe*Job)."""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        return target.startswith(_TARGET_PREFIX) and target[len(_TARGET_PREFIX) :] in OPERATIONS

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        op_name = environ.get("HTTP_X_AMZ_TARGET", "")[len(_TARGET_PREFIX) :]
        caller: _Caller | None = None
        params: dict[str, Any] = {}
        target = _Resolution()
        result: dict[str, Any] | None = None
        error: SageMakerError | None = None
        op_model: OperationModel | None = None
        try:
            if op_name not in OPERATIONS:
                raise SageMakerError("UnknownOperationException", f"{op_name} is not emulated here.")
            op_model = self._model.operation_model(op_name)
            caller = self._caller(environ)
            params = wire.read_params(op_model, environ, _bad_body)
            self._validate_input(op_model, params)
            self._resolve(op_name, caller, params, target)  # may call out (RAM, moto): no lock held
        except SageMakerError as err:
            error = err
        except Exception:  # the client must get an answer; the traceback goes to the log
            logger.exception("SageMaker emulator failed")
            error = SageMakerError("InternalFailure", "Internal error in the SageMaker emulator.")
        with self._emit_lock:
            call = _Call(op_name, caller, target, self._now()) if caller is not None else None
            if error is None and call is not None:
                try:
                    with self._lock:
                        call.now = self._now()
                        result = getattr(self, f"_op_{op_name}")(call, params)
                except SageMakerError as err:
                    error = err
                except Exception:
                    logger.exception("SageMaker emulator failed")
                    error = SageMakerError("InternalFailure", "Internal error in the SageMaker emulator.")
            events: list[dict] = []
            if call is not None:
                before, after = call.events[: call.mark], call.events[call.mark :]
                events = self._service_events(before) + self._service_events(after)
                if op_name in MUTATING:
                    # [unverified] which comes first at the same instant: settings.cloudtrail.order
                    trail = self._cloudtrail(call, params, result, error, request_id)
                    at = len(events) if self.settings.cloudtrail.order == "after_service_events" else len(before)
                    events[at:at] = trail
            self._emit_all(events)
        if error is None and op_model is not None and result is not None:
            self._observe(op_name, result)
            response = wire.success_response(op_model, result)
        else:
            error = error or SageMakerError("InternalFailure", "Internal error in the SageMaker emulator.")
            response = wire.error_response(self._model, error)
        return wire.finish(start_response, response, request_id)

    # ------------------------------------------------------------------------------------------------ plumbing

    def _caller(self, environ: dict) -> _Caller:
        signer = self._signer(environ)
        account, access_key = signer.account, signer.access_key
        role_name, session_name = DEFAULT_ROLE, DEFAULT_ROLE
        role = self._role_for_access_key(access_key) if access_key and self._role_for_access_key else None
        if role is not None and f":{account}:" in role[0]:
            role_name, session_name = role[0].rsplit("/", 1)[-1], role[1]
        role_id = "AROA" + base64.b32encode(hashlib.sha256(f"{account}/{role_name}".encode()).digest()).decode()[:17]
        return _Caller(
            account=account,
            region=signer.region,
            access_key=access_key,
            role_name=role_name,
            session_name=session_name,
            principal_id=f"{role_id}:{session_name}",
            source_ip=environ.get("REMOTE_ADDR", "127.0.0.1"),
            user_agent=environ.get("HTTP_USER_AGENT", ""),
        )

    @staticmethod
    def _validate_input(op_model: OperationModel, params: dict[str, Any]) -> None:
        report = SageMakerParamValidator().validate(params, op_model.input_shape)
        if report.has_errors():
            raise _validation_error(report.generate_report())
        if op_model.name == LIST_STEPS and not params.get("PipelineExecutionArn"):
            # Not required by the model, but the operation needs it.
            raise _validation_error("PipelineExecutionArn is required.")

    def _resolve(self, op: str, caller: _Caller, params: dict[str, Any], target: _Resolution) -> None:
        """Which pipeline (and execution) the request names, and whether the caller may act on it."""
        if op in JOB_OPERATIONS:
            # Jobs are looked up in the caller's own account and region only (a share does not cover them).
            target.owner, target.region = caller.account, caller.region
            return
        if op in (START, LIST_EXECUTIONS):
            name = params["PipelineName"]
            match = _PIPELINE_ARN_RE.match(name) if name.startswith("arn:") else None
            if name.startswith("arn:") and (match is None or "/" in match["name"] or match["account"] == "aws"):
                raise _pipeline_not_found(name)
            owner, region = (match["account"], match["region"]) if match else (caller.account, caller.region)
            pipeline_name = match["name"] if match else name
            pipeline_arn = name if match else f"arn:aws:sagemaker:{region}:{owner}:pipeline/{name}"
        else:
            arn = params["PipelineExecutionArn"]
            match = _EXECUTION_ARN_RE.match(arn)
            if match is None:
                raise _execution_not_found(arn)
            owner, region, pipeline_name = match["account"], match["region"], match["name"]
            pipeline_arn = arn.split("/execution/", 1)[0]
            target.execution_arn = arn
        target.owner, target.region = owner, region
        target.pipeline_name, target.pipeline_arn = pipeline_name, pipeline_arn
        if region != caller.region:
            # [unverified] SageMaker is regional: another region's pipeline is not found from this endpoint.
            raise _pipeline_not_found(pipeline_arn)
        if owner != caller.account:
            target.permission = self._ram.grant(caller.account, pipeline_arn)
            if target.permission is None:
                raise _pipeline_not_found(pipeline_arn)  # no share: as if the pipeline did not exist
            if op in MUTATING and target.permission != ALLOW_EXECUTION_PERMISSION:
                raise SageMakerError(
                    "AccessDeniedException",
                    f"User: {caller.arn} is not authorized to perform: sagemaker:{op} on resource: "
                    f"{target.execution_arn or pipeline_arn} because no resource-based policy allows the "
                    f"sagemaker:{op} action",
                )
        if op in (START, LIST_EXECUTIONS) and not self._pipeline_exists(owner, region, pipeline_name):
            raise _pipeline_not_found(pipeline_arn)
        if op == START:
            target.role_arn = self._lookup_role(owner, region, pipeline_name)
            found = self._pipeline_definition(owner, region, pipeline_name) if self._pipeline_definition else None
            target.definition = found

    def _lookup_role(self, owner: str, region: str, pipeline_name: str) -> str:
        role = None
        if self._pipeline_role is not None:
            try:
                role = self._pipeline_role(owner, region, pipeline_name)
            except Exception:  # a lookup failure only loses the role name
                logger.exception("SageMaker emulator: pipeline role lookup failed")
        return role or f"arn:aws:iam::{owner}:role/{FALLBACK_PIPELINE_ROLE}"

    def _execution(self, call: _Call) -> _Execution:
        arn = call.target.execution_arn or ""
        execution = self._executions.get(arn.lower())
        if execution is None:
            raise _execution_not_found(arn)
        return execution

    # ---------------------------------------------------------------------------------------------- CloudTrail

    def _cloudtrail(
        self,
        call: _Call,
        params: dict[str, Any],
        result: dict[str, Any] | None,
        error: SageMakerError | None,
        request_id: str,
    ) -> list[dict]:
        """The caller's CloudTrail record, and the owner's copy when enabled.

        [unverified] The owner copy is sent for a cross-account call that reached the owner's pipeline: the caller
        holds a share of it (successful or AccessDenied calls), not when the caller has no share at all.
        """
        caller, target = call.caller, call.target
        error_code = None
        if error is not None:
            error_code = self.access_denied_cloudtrail_code if error.code == "AccessDeniedException" else error.code
        owner_copy = self.owner_cloudtrail_copy and target.owner != caller.account and target.permission is not None
        shared = str(uuid.uuid4()) if owner_copy else None
        common: dict[str, Any] = {
            "region": caller.region,
            "time": call.now,
            "event_name": call.op,
            "request_parameters": _camel(params),
            "response_elements": _camel(result) if result is not None else None,
            "request_id": request_id,
            "source_ip": caller.source_ip,
            "user_agent": caller.user_agent,
            "shared_event_id": shared,
            "error_code": error_code,
            "error_message": error.message if error is not None else None,
        }
        identity = assumed_role_identity(
            account=caller.account,
            role_name=caller.role_name,
            session_name=caller.session_name,
            principal_id=caller.principal_id,
            access_key_id=caller.access_key,
            time=call.now,
        )
        events = [cloudtrail_event(recipient=caller.account, user_identity=identity, **common)]
        if owner_copy and target.owner is not None:
            owner_identity = account_identity(principal_id=caller.principal_id, account=caller.account)
            events.append(cloudtrail_event(recipient=target.owner, user_identity=owner_identity, **common))
        return events

    # ---------------------------------------------------------------------------------------------- progression

    def _service_events(self, timeline: list[tuple[datetime, dict]]) -> list[dict]:
        """Status / step events in time order. [unverified] Those of one instant go as they happen (causal) or
        reversed (settings.sagemaker.same_instant_order); each is sent twice when settings.sagemaker.duplicate_events
        says so (AWS documents that it "may send multiple events" per state change)."""
        sign = -1 if self.settings.sagemaker.same_instant_order == "reverse" else 1
        ranked = sorted(enumerate(timeline), key=lambda item: (item[1][0], sign * item[0]))
        duplicates = self.settings.sagemaker.duplicate_events
        events: list[dict] = []
        for _, (_, event) in ranked:
            events.append(event)
            if duplicates != "none":
                copy_ = copy.deepcopy(event)
                if duplicates == "new_id":
                    copy_["id"] = str(uuid.uuid4())
                events.append(copy_)
        return events

    def _status(self, execution: _Execution, status: str, at: datetime, out: list[tuple[datetime, dict]]) -> None:
        # [unverified] the previous status of an execution's first event: settings.sagemaker.first_previous_status
        previous = execution.status if execution.announced else _given(self.settings.sagemaker.first_previous_status)
        execution.announced = True
        execution.status = status
        execution.modified = at
        if status in TERMINAL:
            execution.end = at
        for account in self._receivers(execution):
            out.append(
                (
                    at,
                    execution_status_event(
                        account=account,
                        region=execution.region,
                        time=at,
                        pipeline_arn=execution.pipeline_arn,
                        execution_arn=execution.arn,
                        display_name=execution.display_name,
                        current=status,
                        previous=previous,
                        start_time=execution.created,
                        end_time=execution.end if status in TERMINAL else None,
                        description=execution.description,
                    ),
                )
            )

    def _step_status(
        self, execution: _Execution, step: _Step, status: str, at: datetime, out: list[tuple[datetime, dict]]
    ) -> None:
        # [unverified] the previous status of a step's first event: settings.sagemaker.first_previous_step_status
        first = _given(self.settings.sagemaker.first_previous_step_status)
        previous = step.status if step.status is not None else first
        step.status = status
        if status in TERMINAL:
            step.end = at
        if step.job is not None:
            _follow_step(step.job, status, at)
        for account in self._receivers(execution):
            out.append(
                (
                    at,
                    step_status_event(
                        account=account,
                        region=execution.region,
                        time=at,
                        pipeline_arn=execution.pipeline_arn,
                        execution_arn=execution.arn,
                        step_name=step.spec.name,
                        step_type=step.spec.type,
                        current=status,
                        previous=previous,
                        start_time=step.start or at,
                        end_time=step.end if status in TERMINAL else None,
                        metadata=step.metadata,
                        failure_reason=step.failure,
                        cache_hit_source=step.cache_source,
                    ),
                )
            )

    def _receivers(self, execution: _Execution) -> list[str]:
        receivers = [execution.owner]
        if self.consumer_status_events and execution.started_by != execution.owner:
            receivers.append(execution.started_by)
        return receivers

    def _advance(self, execution: _Execution, now: datetime, out: list[tuple[datetime, dict]]) -> None:
        """Run one execution forward to `now`: steps one after the other, each Starting -> Executing -> end."""
        while True:
            if execution.status == STOPPING:
                for step in execution.steps:
                    if step.status in _ACTIVE_STEP:
                        self._step_status(execution, step, STOPPED, now, out)
                self._status(execution, STOPPED, now, out)
                return
            if execution.status != EXECUTING:
                return
            if execution.cursor >= len(execution.steps):
                self._status(execution, SUCCEEDED, execution.ready_at, out)
                return
            step = execution.steps[execution.cursor]
            if step.status in (None, FAILED, STOPPED):  # not started yet, or being retried
                if execution.ready_at > now:
                    return
                if step.spec.cache_hit:
                    self._serve_from_cache(execution, step, execution.ready_at, out)
                    execution.cursor += 1
                    continue
                self._start_step(execution, step, execution.ready_at, out)
                continue
            done = (step.start or now) + timedelta(seconds=step.spec.duration_seconds)
            if done > now:
                return
            if step.spec.fails:
                step.failure = _step_failure(step.spec)
                self._step_status(execution, step, FAILED, done, out)
                execution.failure = EXECUTION_FAILURE_REASON
                self._status(execution, FAILED, done, out)
                return
            self._step_status(execution, step, SUCCEEDED, done, out)
            execution.cursor += 1
            execution.ready_at = done

    def _start_step(self, execution: _Execution, step: _Step, at: datetime, out: list[tuple[datetime, dict]]) -> None:
        step.attempt += 1
        step.start, step.end, step.failure = at, None, None
        step.metadata = _step_metadata(execution, step.spec)
        step.job = self._create_job(execution, step, at)
        # [unverified] Starting and Executing at the same instant (or Executing only: settings.sagemaker.
        # step_starting_event); the metadata (job ARN) is known from the first event.
        if self.settings.sagemaker.step_starting_event:
            self._step_status(execution, step, STARTING, at, out)
        self._step_status(execution, step, EXECUTING, at, out)

    def _serve_from_cache(
        self, execution: _Execution, step: _Step, at: datetime, out: list[tuple[datetime, dict]]
    ) -> None:
        """A cache hit: the step succeeds at once without a job, reusing an earlier execution's result.

        [unverified] One Succeeded step event (no Starting/Executing: nothing runs), carrying cacheHitResult; the
        step's Metadata is that of the step in the source execution (it points at the earlier job), or empty.
        """
        step.attempt += 1
        step.start, step.end, step.failure, step.job = at, None, None, None
        step.cache_source, metadata = self._cache_source(execution, step.spec.name)
        step.metadata = metadata
        step.status = None  # a single event: the first event's previous status
        self._step_status(execution, step, SUCCEEDED, at, out)

    def _cache_source(self, execution: _Execution, step_name: str) -> tuple[str, dict[str, Any]]:
        """(source execution ARN, metadata) of a cache hit.

        [unverified] The latest earlier execution of the pipeline in which the step succeeded (following that step's
        own cache source), with its metadata; else the latest earlier execution (no metadata); else the execution
        itself (no metadata).
        """
        pipeline = execution.pipeline_arn.lower()
        earlier: list[_Execution] = []
        for other in self._executions.values():  # insertion order is creation order
            if other is execution:
                break
            if other.pipeline_arn.lower() == pipeline:
                earlier.append(other)
        for other in reversed(earlier):
            for candidate in other.steps:
                if candidate.spec.name == step_name and candidate.status == SUCCEEDED:
                    return candidate.cache_source or other.arn, copy.deepcopy(candidate.metadata)
        return (earlier[-1].arn if earlier else execution.arn), {}

    def _create_job(self, execution: _Execution, step: _Step, at: datetime) -> _Job | None:
        """The describable job of a step attempt (named by the job ARN in its metadata), if it runs one."""
        arn = _job_arn(step.metadata)
        if arn is None:
            return None
        resource, name = arn.split(":", 5)[5].split("/", 1)
        if resource not in _JOB_RESOURCES:
            return None
        model_name = None
        if resource == "transform-job":
            models = [s.metadata["Model"]["Arn"] for s in execution.steps if "Model" in s.metadata]
            model_name = models[-1].rsplit("/", 1)[-1] if models else f"pipelines-{execution.execution_id}-model"
        job = _Job(
            resource=resource,
            name=name,
            arn=arn,
            owner=execution.owner,
            region=execution.region,
            spec=step.spec,
            role_arn=execution.role_arn,
            output=f"s3://sagemaker-{execution.region}-{execution.owner}/{execution.pipeline_name}/{name}",
            created=at,
            modified=at,
            model_name=model_name,
        )
        self._jobs[(job.owner, job.region, resource, name.lower())] = job
        return job

    # --------------------------------------------------------------------------------------------- operations

    def _op_StartPipelineExecution(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        target = call.target
        pipeline_arn, owner, region = target.pipeline_arn or "", target.owner or "", target.region or ""
        token_key = (START, pipeline_arn.lower(), params["ClientRequestToken"])
        if token_key in self._tokens:
            # [unverified] the same token returns the existing execution whatever the other parameters are.
            return {"PipelineExecutionArn": self._tokens[token_key]}
        if params.get("RoleArn"):
            raise _validation_error("RoleArn can only be specified for pipelines that AWS manages.")
        if params.get("PipelineVersionAlias"):
            raise SageMakerError("ResourceNotFound", f"No version of pipeline '{pipeline_arn}' has the alias given.")
        specs = self._steps.get((owner, region, (target.pipeline_name or "").lower()), DEFAULT_STEPS)
        # the definition as it is now: a later UpdatePipeline does not change what this execution runs
        definition, created = target.definition or (self._generated(specs, target), None)
        selective = params.get("SelectiveExecutionConfig")
        if selective:
            wanted = [s["StepName"] for s in selective["SelectedSteps"]]
            unknown = sorted(set(wanted) - {s.name for s in specs})
            if unknown:
                raise _validation_error(f"Selected steps {unknown} are not steps of the pipeline.")
            specs = tuple(s for s in specs if s.name in wanted)
        execution_id = _rand(12)
        arn = f"{pipeline_arn}/execution/{execution_id}"
        execution = _Execution(
            arn=arn,
            execution_id=execution_id,
            pipeline_arn=pipeline_arn,
            pipeline_name=target.pipeline_name or "",
            owner=owner,
            region=region,
            started_by=call.caller.account,
            display_name=params.get("PipelineExecutionDisplayName") or f"execution-{int(call.now.timestamp() * 1000)}",
            description=params.get("PipelineExecutionDescription"),
            created=call.now,
            modified=call.now,
            steps=[_Step(spec) for spec in specs],
            ready_at=call.now,
            parameters=[dict(p) for p in params.get("PipelineParameters", [])],
            parallelism=params.get("ParallelismConfiguration"),
            selective=selective,
            version_id=params.get("PipelineVersionId", 1),
            role_arn=target.role_arn or f"arn:aws:iam::{owner}:role/{FALLBACK_PIPELINE_ROLE}",
            definition=definition,
            pipeline_created=created,
        )
        self._executions[arn.lower()] = execution
        self._tokens[token_key] = arn
        call.mark = len(call.events)
        self._status(execution, EXECUTING, call.now, call.events)
        self._advance(execution, call.now, call.events)
        return {"PipelineExecutionArn": arn}

    def _op_StopPipelineExecution(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(call)
        token_key = (STOP, execution.arn.lower(), params["ClientRequestToken"])
        if token_key in self._tokens:
            return {"PipelineExecutionArn": execution.arn}
        self._advance(execution, call.now, call.events)  # what has happened up to now happened before the stop
        call.mark = len(call.events)
        if execution.status in TERMINAL:
            # [unverified] code and wording for stopping a finished execution.
            raise SageMakerError(
                "ConflictException",
                f"Pipeline execution '{execution.arn}' is in {execution.status} status and cannot be stopped.",
            )
        if execution.status == EXECUTING:
            self._status(execution, STOPPING, call.now, call.events)
            for step in execution.steps:
                if step.status in (STARTING, EXECUTING):
                    self._step_status(execution, step, STOPPING, call.now, call.events)
        self._tokens[token_key] = execution.arn
        return {"PipelineExecutionArn": execution.arn}

    def _op_RetryPipelineExecution(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(call)
        token_key = (RETRY, execution.arn.lower(), params["ClientRequestToken"])
        if token_key in self._tokens:
            return {"PipelineExecutionArn": execution.arn}
        self._advance(execution, call.now, call.events)
        call.mark = len(call.events)
        if execution.status not in (FAILED, STOPPED):
            # [unverified] code and wording; only Failed (and, here, Stopped) executions can be retried.
            raise SageMakerError(
                "ConflictException",
                f"Pipeline execution '{execution.arn}' is in {execution.status} status; only Failed or Stopped "
                "executions can be retried.",
            )
        if params.get("ParallelismConfiguration"):
            execution.parallelism = params["ParallelismConfiguration"]
        execution.failure, execution.end, execution.ready_at = None, None, call.now
        # the step at the cursor (Failed / Stopped, or not started) runs again at the next _advance: AttemptCount + 1
        self._status(execution, EXECUTING, call.now, call.events)
        self._advance(execution, call.now, call.events)
        self._tokens[token_key] = execution.arn
        return {"PipelineExecutionArn": execution.arn}

    def _op_DescribePipelineExecution(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(call)
        view: dict[str, Any] = {
            "PipelineArn": execution.pipeline_arn,
            "PipelineExecutionArn": execution.arn,
            "PipelineExecutionDisplayName": execution.display_name,
            "PipelineExecutionStatus": execution.status,
        }
        if execution.description is not None:
            view["PipelineExecutionDescription"] = execution.description
        if len(execution.pipeline_name) <= 120:
            view["PipelineExperimentConfig"] = {
                "ExperimentName": execution.pipeline_name,
                "TrialName": execution.execution_id,
            }
        if execution.failure is not None:
            view["FailureReason"] = execution.failure
        view.update(
            {
                "CreationTime": execution.created,
                "LastModifiedTime": execution.modified,
                # AWS does not fill IamIdentity for API-started executions (aws-facts §4.2): empty user contexts.
                "CreatedBy": {},
                "LastModifiedBy": {},
                "PipelineVersionId": execution.version_id,
            }
        )
        if execution.parallelism is not None:
            view["ParallelismConfiguration"] = copy.deepcopy(execution.parallelism)
        if execution.selective is not None:
            view["SelectiveExecutionConfig"] = copy.deepcopy(execution.selective)
        return view

    def _op_DescribePipelineDefinitionForExecution(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(call)
        view: dict[str, Any] = {"PipelineDefinition": execution.definition}
        if execution.pipeline_created is not None:
            view["CreationTime"] = execution.pipeline_created  # "The time when the pipeline was created."
        return view

    def _op_ListPipelineParametersForExecution(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(call)
        # [unverified] whether declared parameters not given at start are listed (execution_parameters setting)
        items = _execution_parameters(execution, with_defaults=self.settings.sagemaker.execution_parameters != "given")
        return self._paginate(call, params, items, "PipelineParameters")

    def _generated(self, specs: tuple[StepSpec, ...], target: _Resolution) -> str:
        """The definition generated from the step specifications (no definition lookup configured)."""
        owner, region, name = target.owner or "", target.region or "", target.pipeline_name or ""
        role = target.role_arn or f"arn:aws:iam::{owner}:role/{FALLBACK_PIPELINE_ROLE}"
        return json.dumps(pipeline_definition(specs, owner=owner, region=region, pipeline_name=name, role=role))

    def _op_ListPipelineExecutions(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        pipeline_arn = (call.target.pipeline_arn or "").lower()
        after, before = params.get("CreatedAfter"), params.get("CreatedBefore")
        executions = [
            e
            for e in self._executions.values()
            if e.pipeline_arn.lower() == pipeline_arn
            and (after is None or e.created > after)
            and (before is None or e.created < before)
        ]
        if params.get("SortBy", "CreationTime") == "CreationTime":
            executions.sort(key=lambda e: e.created)
        else:
            executions.sort(key=lambda e: e.arn)
        if params.get("SortOrder", "Descending") == "Descending":
            executions.reverse()
        items = [_summary(e) for e in executions]
        return self._paginate(call, params, items, "PipelineExecutionSummaries")

    def _op_ListPipelineExecutionSteps(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(call)
        started = [(i, s) for i, s in enumerate(execution.steps) if s.status is not None]
        started.sort(key=lambda item: (item[1].start, item[0]))
        if params.get("SortOrder", "Descending") == "Descending":
            started.reverse()
        items = [_step_view(s) for _, s in started]
        return self._paginate(call, params, items, "PipelineExecutionSteps")

    def _op_DescribeTrainingJob(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        return _training_view(self._job(call, params))

    def _op_DescribeProcessingJob(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        return _processing_view(self._job(call, params))

    def _op_DescribeTransformJob(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        return _transform_view(self._job(call, params))

    def _op_DescribeHyperParameterTuningJob(self, call: _Call, params: dict[str, Any]) -> dict[str, Any]:
        return _tuning_view(self._job(call, params), call.now)

    def _job(self, call: _Call, params: dict[str, Any]) -> _Job:
        """The job the request names, in the caller's account and region (state as of the last tick)."""
        resource, member = JOB_OPERATIONS[call.op]
        name = params[member]
        job = self._jobs.get((call.caller.account, call.caller.region, resource, name.lower()))
        if job is None:
            # [unverified] message wording (DescribeTrainingJob's is the one seen from AWS).
            message = _JOB_NOT_FOUND[resource].format(name=name)
            raise SageMakerError(self.job_not_found_code, message)
        return job

    def _paginate(self, call: _Call, params: dict[str, Any], items: list[Any], key: str) -> dict[str, Any]:
        return _PAGES.page([call.op, call.caller.account], params, items, key, self._page_size)

    # ----------------------------------------------------------------------------------------------- snapshot

    @staticmethod
    def _execution_snapshot(execution: _Execution) -> dict[str, Any]:
        return {
            "arn": execution.arn,
            "pipelineArn": execution.pipeline_arn,
            "owner": execution.owner,
            "region": execution.region,
            "startedBy": execution.started_by,
            "displayName": execution.display_name,
            "status": execution.status,
            "createdAt": wire.iso(execution.created),
            "lastModifiedAt": wire.iso(execution.modified),
            "endedAt": wire.iso(execution.end) if execution.end else None,
            "failureReason": execution.failure,
            "parameters": [dict(p) for p in execution.parameters],
            "steps": [
                {
                    "name": s.spec.name,
                    "type": s.spec.type,
                    "status": s.status,
                    "attemptCount": s.attempt,
                    "startedAt": wire.iso(s.start) if s.start else None,
                    "endedAt": wire.iso(s.end) if s.end else None,
                    "instanceType": None if s.spec.instance_groups else s.spec.instance_type,
                    "instanceCount": sum(c for _, c in s.spec.instance_groups) or s.spec.instance_count,
                    "instanceGroups": [list(group) for group in s.spec.instance_groups],
                    "volumeSizeInGB": s.spec.volume_gb,
                    "maxRuntimeSeconds": s.spec.max_runtime_seconds,
                    "spot": s.spec.spot,
                    "cacheHitSource": s.cache_source,
                    "metadata": copy.deepcopy(s.metadata),
                    "failureReason": s.failure,
                }
                for s in execution.steps
            ],
        }


# --------------------------------------------------------------------------------------------------------------
# Views and helpers
# --------------------------------------------------------------------------------------------------------------


def _summary(execution: _Execution) -> dict[str, Any]:
    view: dict[str, Any] = {
        "PipelineExecutionArn": execution.arn,
        "StartTime": execution.created,
        "PipelineExecutionStatus": execution.status,
        "PipelineExecutionDisplayName": execution.display_name,
    }
    if execution.description is not None:
        view["PipelineExecutionDescription"] = execution.description
    if execution.failure is not None:
        view["PipelineExecutionFailureReason"] = execution.failure
    return view


def _step_view(step: _Step) -> dict[str, Any]:
    view: dict[str, Any] = {"StepName": step.spec.name}
    if step.start is not None:
        view["StartTime"] = step.start
    if step.end is not None:
        view["EndTime"] = step.end
    view["StepStatus"] = step.status
    if step.cache_source is not None:
        view["CacheHitResult"] = {"SourcePipelineExecutionArn": step.cache_source}
    if step.failure is not None:
        view["FailureReason"] = step.failure
    view["Metadata"] = copy.deepcopy(step.metadata)
    view["AttemptCount"] = step.attempt
    return view


def _step_failure(spec: StepSpec) -> str:
    if spec.type == "Fail":
        return f"Fail step {spec.name} was reached."
    return f"ClientError: {spec.type} step {spec.name} failed (emulated outcome)."


def _given(value: str) -> str | None:
    """A status setting's value for an event: None for "absent"."""
    return None if value == "absent" else value


def _next_change(execution: _Execution) -> datetime | None:
    """When `execution` next changes by itself (see SageMakerPipelineEmulator.next_change)."""
    if execution.status == STOPPING:
        return execution.modified  # stopped at the next tick
    if execution.status != EXECUTING:
        return None
    if execution.cursor >= len(execution.steps):
        return execution.ready_at
    step = execution.steps[execution.cursor]
    if step.status in (None, FAILED, STOPPED):
        return execution.ready_at
    return (step.start or execution.ready_at) + timedelta(seconds=step.spec.duration_seconds)


def _rand(n: int, alphabet: str = _ID_ALPHABET) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _step_metadata(execution: _Execution, spec: StepSpec) -> dict[str, Any]:
    """PipelineExecutionStepMetadata for a step attempt: the resources it creates live in the OWNER's account.

    Job names follow `pipelines-<execution id>-<step>-<random>`; SageMaker job ARNs are lower case. Tuning job names
    are at most 32 characters: [unverified] `<execution id>-<step, 8 chars>-<random>`.
    """
    prefix = f"arn:aws:sagemaker:{execution.region}:{execution.owner}"
    slug = re.sub(r"[^a-z0-9-]", "", spec.name.lower())[:28] or "step"
    job_name = f"pipelines-{execution.execution_id}-{slug}-{_rand(10)}"
    if spec.type == "Tuning":
        job_name = f"{execution.execution_id}-{slug[:8].strip('-') or 'tuning'}-{_rand(10)}"
    if spec.type in _JOB_STEPS:
        member, resource = _JOB_STEPS[spec.type]
        return {member: {"Arn": f"{prefix}:{resource}/{job_name}"}}
    if spec.type in ("QualityCheck", "ClarifyCheck"):
        check = "DATA_QUALITY" if spec.type == "QualityCheck" else "DATA_BIAS"
        return {spec.type: {"CheckType": check, "CheckJobArn": f"{prefix}:processing-job/{job_name}"}}
    if spec.type == "RegisterModel":
        group = re.sub(r"[^a-z0-9-]", "", execution.pipeline_name.lower()) or "models"
        return {"RegisterModel": {"Arn": f"{prefix}:model-package/{group}/1"}}
    if spec.type == "Condition":
        return {"Condition": {"Outcome": "True"}}
    if spec.type == "Fail":
        return {"Fail": {"ErrorMessage": f"Fail step {spec.name} was reached."}}
    if spec.type == "Lambda":
        return {"Lambda": {"Arn": f"arn:aws:lambda:{execution.region}:{execution.owner}:function:{slug}"}}
    if spec.type == "Callback":
        return {
            "Callback": {
                "CallbackToken": _rand(10, string.ascii_letters + string.digits),
                "SqsQueueUrl": f"https://sqs.{execution.region}.amazonaws.com/{execution.owner}/{slug}",
            }
        }
    if spec.type == "EMR":
        return {"EMR": {"ClusterId": f"j-{_rand(13).upper()}", "StepId": f"s-{_rand(13).upper()}", "StepName": slug}}
    return {}


# --------------------------------------------------------------------------------------------------------------
# Pipeline definitions (the schema of aws-facts §4.6)
# --------------------------------------------------------------------------------------------------------------


def pipeline_definition(
    specs: Iterable[StepSpec], *, owner: str, region: str, pipeline_name: str, role: str
) -> dict[str, Any]:
    """The pipeline definition JSON of these steps, in AWS's schema (Version 2020-12-01): each step's Arguments are
    the request of the job it runs (CreateTrainingJob, CreateProcessingJob, ...) as the SageMaker Python SDK writes
    them, with the instance types, counts, volumes and runtime limits the emulated jobs report; the steps run one
    after the other (DependsOn). Output paths join the execution id at run time (Std:Join, Execution variable).
    [unverified] images, paths and the values of arguments pipeshare does not read."""
    steps: list[dict[str, Any]] = []
    context = {"owner": owner, "region": region, "pipeline": pipeline_name, "role": role}
    for spec in specs:
        step: dict[str, Any] = {"Name": spec.name, "Type": spec.type}
        if steps:
            step["DependsOn"] = [steps[-1]["Name"]]
        step.update(_definition_extras(spec, context, steps))
        if spec.cache_hit:
            step["CacheConfig"] = {"Enabled": True, "ExpireAfter": "P30D"}
        steps.append(step)
    return {"Version": DEFINITION_VERSION, "Metadata": {}, "Parameters": [], "Steps": steps}


def _output(context: dict[str, str], step: str) -> dict[str, Any]:
    bucket = f"sagemaker-{context['region']}-{context['owner']}"
    parts = ["s3:/", bucket, context["pipeline"], {"Get": "Execution.PipelineExecutionId"}, step]
    return {"Std:Join": {"On": "/", "Values": parts}}


def _training_request(spec: StepSpec, context: dict[str, str]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": _image_for(spec.type, context["region"]),
            "TrainingInputMode": "File",
        },
        "OutputDataConfig": {"S3OutputPath": _output(context, spec.name)},
        "ResourceConfig": _resource_config(spec),
        "RoleArn": context["role"],
    }
    if spec.max_runtime_seconds is not None:
        request["StoppingCondition"] = {"MaxRuntimeInSeconds": spec.max_runtime_seconds}
    if spec.spot:
        request["EnableManagedSpotTraining"] = True
        runtime = spec.max_runtime_seconds or max(_MAX_RUNTIME, spec.duration_seconds)
        request.setdefault("StoppingCondition", {})["MaxWaitTimeInSeconds"] = 2 * runtime
    return request


def _processing_request(spec: StepSpec, context: dict[str, str]) -> dict[str, Any]:
    cluster = {"InstanceCount": spec.instance_count, "InstanceType": spec.job_instance_type}
    request: dict[str, Any] = {
        "ProcessingResources": {"ClusterConfig": {**cluster, "VolumeSizeInGB": spec.volume_gb}},
        "AppSpecification": {"ImageUri": _image_for(spec.type, context["region"])},
        "RoleArn": context["role"],
    }
    if spec.max_runtime_seconds is not None:
        request["StoppingCondition"] = {"MaxRuntimeInSeconds": spec.max_runtime_seconds}
    return request


def _definition_extras(spec: StepSpec, context: dict[str, str], before: list[dict[str, Any]]) -> dict[str, Any]:
    """The step's Arguments (and its other type-specific keys)."""
    if spec.type == "Training":
        return {"Arguments": _training_request(spec, context)}
    if spec.type == "Processing":
        return {"Arguments": _processing_request(spec, context)}
    if spec.type in ("QualityCheck", "ClarifyCheck"):
        check = "DATA_QUALITY" if spec.type == "QualityCheck" else "DATA_BIAS"
        return {"CheckType": check, "Arguments": _processing_request(spec, context)}
    if spec.type == "Tuning":
        definition = _training_request(spec, context)
        definition["StoppingCondition"] = _stopping_condition(spec)  # required in a tuning job's training definition
        config = {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
            "TrainingJobEarlyStoppingType": "Off",
        }
        return {"Arguments": {"HyperParameterTuningJobConfig": config, "TrainingJobDefinition": definition}}
    if spec.type == "Transform":
        models = [step["Name"] for step in before if step["Type"] == "Model"]
        model = {"Get": f"Steps.{models[-1]}.ModelName"} if models else f"{context['pipeline']}-model"
        source = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": _output(context, f"{spec.name}-input")}}
        resources = {"InstanceType": spec.job_instance_type, "InstanceCount": spec.instance_count}
        arguments = {
            "ModelName": model,
            "TransformInput": {"DataSource": source, "ContentType": "text/csv", "SplitType": "Line"},
            "TransformOutput": {"S3OutputPath": _output(context, spec.name)},
            "TransformResources": resources,
        }
        return {"Arguments": arguments}
    return _other_extras(spec, context)


def _other_extras(spec: StepSpec, context: dict[str, str]) -> dict[str, Any]:
    region, owner = context["region"], context["owner"]
    slug = re.sub(r"[^a-z0-9-]", "", spec.name.lower())[:28] or "step"
    if spec.type == "Condition":
        return {"Arguments": {"Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}], "IfSteps": []}}
    if spec.type == "Fail":
        return {"Arguments": {"ErrorMessage": f"Fail step {spec.name} was reached."}}
    if spec.type == "RegisterModel":
        group = re.sub(r"[^a-z0-9-]", "", context["pipeline"].lower()) or "models"
        return {"Arguments": {"ModelPackageGroupName": group, "ModelApprovalStatus": "PendingManualApproval"}}
    if spec.type == "Model":
        container = {"Image": _image_for("Training", region)}
        return {"Arguments": {"ExecutionRoleArn": context["role"], "PrimaryContainer": container}}
    if spec.type == "Lambda":
        return {"FunctionArn": f"arn:aws:lambda:{region}:{owner}:function:{slug}", "Arguments": {}}
    if spec.type == "Callback":
        return {"SqsQueueUrl": f"https://sqs.{region}.amazonaws.com/{owner}/{slug}", "Arguments": {}}
    if spec.type == "EMR":
        step_config = {"HadoopJarStep": {"Jar": "command-runner.jar"}}
        return {"Arguments": {"ClusterId": f"j-{slug.upper()[:13]}", "StepConfig": step_config}}
    return {"Arguments": {}}


def _execution_parameters(execution: _Execution, *, with_defaults: bool) -> list[dict[str, str]]:
    """ListPipelineParametersForExecution's items: the values given at start; with_defaults: every parameter the
    execution's definition declares too, with its default when none was given (as text: [unverified] how AWS renders
    a non-string default)."""
    given = {p["Name"]: p["Value"] for p in execution.parameters}
    if not with_defaults:
        return [{"Name": name, "Value": value} for name, value in given.items()]
    try:
        declared = json.loads(execution.definition).get("Parameters") or []
    except (ValueError, AttributeError):
        declared = []
    items: dict[str, str] = {}
    for parameter in declared if isinstance(declared, list) else []:
        if not isinstance(parameter, dict):
            continue
        name, default = parameter.get("Name"), parameter.get("DefaultValue")
        if isinstance(name, str) and (name in given or default is not None):
            text = json.dumps(default) if isinstance(default, bool) else str(default)
            items[name] = given.get(name, text)
    items.update(given)
    return [{"Name": name, "Value": value} for name, value in items.items()]


# --------------------------------------------------------------------------------------------------------------
# Jobs (Describe*Job)
# --------------------------------------------------------------------------------------------------------------

_JOB_RESOURCES = frozenset(resource for resource, _ in JOB_OPERATIONS.values())
_JOB_NOT_FOUND = {
    "training-job": "Requested resource not found.",
    "processing-job": "Could not find requested job with name {name}",
    "transform-job": "Could not find requested job with name {name}",
    "hyper-parameter-tuning-job": "Amazon SageMaker can't find a tuning job with name {name}",
}
# step status -> job status (the four job status enums share these values)
_JOB_STATUS = {
    STARTING: "InProgress",
    EXECUTING: "InProgress",
    STOPPING: "Stopping",
    STOPPED: "Stopped",
    FAILED: "Failed",
    SUCCEEDED: "Completed",
}
_SECONDARY_STATUS = {"InProgress": "Training", "Completed": "Completed", "Failed": "Failed", "Stopping": "Stopping"}
_JOB_ENDED = frozenset({"Completed", "Failed", "Stopped"})
# [unverified] images: the us-east-1 registries of the SageMaker-provided containers, with the job's region.
_IMAGES = {
    "Training": "683313688378.dkr.ecr.{region}.amazonaws.com/sagemaker-xgboost:1.7-1",
    "Processing": "683313688378.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
    "QualityCheck": "156813124566.dkr.ecr.{region}.amazonaws.com/sagemaker-model-monitor-analyzer",
    "ClarifyCheck": "205585389593.dkr.ecr.{region}.amazonaws.com/sagemaker-clarify-processing:1.0",
}
# botocore StoppingCondition.MaxRuntimeInSeconds: "The default value is 1 day." (aws-facts §4.6)
_MAX_RUNTIME = 86400


def _job_arn(metadata: dict[str, Any]) -> str | None:
    for member in ("TrainingJob", "ProcessingJob", "TransformJob", "TuningJob"):
        if member in metadata:
            return metadata[member].get("Arn")  # type: ignore[no-any-return]
    for member in ("QualityCheck", "ClarifyCheck"):
        if member in metadata:
            return metadata[member].get("CheckJobArn")  # type: ignore[no-any-return]
    return None


def _follow_step(job: _Job, step_status: str, at: datetime) -> None:
    status = _JOB_STATUS.get(step_status, job.status)
    if status == job.status:
        return
    job.status, job.modified = status, at
    if status in _JOB_ENDED:
        job.end = at
    if status == "Failed":
        # [unverified] the job's reason (the step reports a ClientError of its own).
        job.failure = f"AlgorithmError: the job of {job.spec.type} step {job.spec.name} failed (emulated outcome)."


def _image(job: _Job) -> str:
    return _image_for(job.spec.type, job.region)


def _image_for(step_type: str, region: str) -> str:
    kind = "Training" if step_type in _TRAINING_TYPES else step_type
    return _IMAGES.get(kind, _IMAGES["Processing"]).format(region=region)


def _resource_config(spec: StepSpec) -> dict[str, Any]:
    if spec.instance_groups:
        # [unverified] group names: the SageMaker Python SDK examples' instance_group_<n>.
        groups = [
            {"InstanceType": kind, "InstanceCount": count, "InstanceGroupName": f"instance_group_{i}"}
            for i, (kind, count) in enumerate(spec.instance_groups, start=1)
        ]
        return {"VolumeSizeInGB": spec.volume_gb, "InstanceGroups": groups}
    return {
        "InstanceType": spec.job_instance_type,
        "InstanceCount": spec.instance_count,
        "VolumeSizeInGB": spec.volume_gb,
    }


def _stopping_condition(spec: StepSpec) -> dict[str, Any]:
    """A training job's: the step's max_runtime_seconds, else the documented default (the step's duration when
    longer: the emulation does not stop a job at its limit)."""
    runtime = spec.max_runtime_seconds or max(_MAX_RUNTIME, spec.duration_seconds)
    condition: dict[str, Any] = {"MaxRuntimeInSeconds": runtime}
    if spec.spot:
        condition["MaxWaitTimeInSeconds"] = 2 * runtime  # spot needs a wait time >= the runtime
    return condition


def _billable_seconds(job: _Job) -> int:
    """Managed spot training: round(duration * (1 - spot_saving)); otherwise the duration. At least 1 (the model's
    minimum; [unverified] what AWS reports for a job that ran under a second)."""
    seconds = job.seconds(job.end or job.created)
    if job.spec.spot:
        seconds = round(seconds * (1 - job.spec.spot_saving))
    return max(1, seconds)


def _training_view(job: _Job) -> dict[str, Any]:
    view: dict[str, Any] = {
        "TrainingJobName": job.name,
        "TrainingJobArn": job.arn,
        "ModelArtifacts": {"S3ModelArtifacts": f"{job.output}/output/model.tar.gz"},
        "TrainingJobStatus": job.status,
        "SecondaryStatus": _SECONDARY_STATUS.get(job.status, job.status),
    }
    if job.failure is not None:
        view["FailureReason"] = job.failure
    view.update(
        {
            "AlgorithmSpecification": {"TrainingImage": _image(job), "TrainingInputMode": "File"},
            "RoleArn": job.role_arn,
            "OutputDataConfig": {"S3OutputPath": job.output},
            "ResourceConfig": _resource_config(job.spec),
            "StoppingCondition": _stopping_condition(job.spec),
            "CreationTime": job.created,
            # [unverified] no provisioning time: training starts when the job is created.
            "TrainingStartTime": job.created,
        }
    )
    if job.end is not None:
        view["TrainingEndTime"] = job.end
    view.update(
        {
            "LastModifiedTime": job.modified,
            "EnableNetworkIsolation": False,
            "EnableInterContainerTrafficEncryption": False,
            "EnableManagedSpotTraining": job.spec.spot,
        }
    )
    if job.end is not None:
        view["TrainingTimeInSeconds"] = max(1, job.seconds(job.end))
        view["BillableTimeInSeconds"] = _billable_seconds(job)
    return view


def _processing_view(job: _Job) -> dict[str, Any]:
    spec = job.spec
    cluster = {
        "InstanceCount": spec.instance_count,
        "InstanceType": spec.job_instance_type,
        "VolumeSizeInGB": spec.volume_gb,
    }
    view: dict[str, Any] = {
        "ProcessingJobName": job.name,
        "ProcessingResources": {"ClusterConfig": cluster},
        "AppSpecification": {"ImageUri": _image(job)},
        "RoleArn": job.role_arn,
        "ProcessingJobArn": job.arn,
        "ProcessingJobStatus": job.status,
    }
    if spec.max_runtime_seconds is not None:
        view["StoppingCondition"] = {"MaxRuntimeInSeconds": spec.max_runtime_seconds}
    if job.failure is not None:
        view["FailureReason"] = job.failure
    if job.end is not None:
        view["ProcessingEndTime"] = job.end
    view.update({"ProcessingStartTime": job.created, "LastModifiedTime": job.modified, "CreationTime": job.created})
    return view


def _transform_view(job: _Job) -> dict[str, Any]:
    view: dict[str, Any] = {
        "TransformJobName": job.name,
        "TransformJobArn": job.arn,
        "TransformJobStatus": job.status,
    }
    if job.failure is not None:
        view["FailureReason"] = job.failure
    view.update(
        {
            "ModelName": job.model_name,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{job.output}/input"}},
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": f"{job.output}/output"},
            "TransformResources": {
                "InstanceType": job.spec.job_instance_type,
                "InstanceCount": job.spec.instance_count,
            },
            "CreationTime": job.created,
            "TransformStartTime": job.created,
        }
    )
    if job.end is not None:
        view["TransformEndTime"] = job.end
    return view


def _tuning_counters(status: str) -> tuple[dict[str, int], dict[str, int]]:
    """(TrainingJobStatusCounters, ObjectiveStatusCounters) of a tuning job that runs one training job."""
    jobs = dict.fromkeys(("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped"), 0)
    objective = dict.fromkeys(("Succeeded", "Pending", "Failed"), 0)
    if status in ("InProgress", "Stopping"):
        jobs["InProgress"], objective["Pending"] = 1, 1
    elif status == "Completed":
        jobs["Completed"], objective["Succeeded"] = 1, 1
    elif status == "Failed":
        jobs["NonRetryableError"], objective["Failed"] = 1, 1
    elif status == "Stopped":
        jobs["Stopped"] = 1
    return jobs, objective


def _tuning_view(job: _Job, now: datetime) -> dict[str, Any]:
    """[unverified] The emulated tuning job runs a single training job (Bayesian strategy, one at a time)."""
    jobs, objective = _tuning_counters(job.status)
    view: dict[str, Any] = {
        "HyperParameterTuningJobName": job.name,
        "HyperParameterTuningJobArn": job.arn,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": _image(job), "TrainingInputMode": "File"},
            "RoleArn": job.role_arn,
            "OutputDataConfig": {"S3OutputPath": job.output},
            "ResourceConfig": _resource_config(job.spec),
            "StoppingCondition": _stopping_condition(job.spec),
            "EnableNetworkIsolation": False,
            "EnableInterContainerTrafficEncryption": False,
            "EnableManagedSpotTraining": job.spec.spot,
        },
        "HyperParameterTuningJobStatus": job.status,
        "CreationTime": job.created,
    }
    if job.end is not None:
        view["HyperParameterTuningEndTime"] = job.end
    view.update(
        {"LastModifiedTime": job.modified, "TrainingJobStatusCounters": jobs, "ObjectiveStatusCounters": objective}
    )
    if job.failure is not None:
        view["FailureReason"] = job.failure
    # [unverified] while running: the time run so far (as of the call, never past the step's duration).
    view["ConsumedResources"] = {"RuntimeInSeconds": job.seconds(now)}
    return view
