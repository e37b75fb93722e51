"""Shared field types, constants and helpers of the models: account IDs, SageMaker pipeline and execution ARNs,
execution statuses and actions, months and amounts. It defines no model class, so importing it builds nothing: a
function's models take their field types from here, not from another function's model module.

ARNs are compared case-insensitively (aws-facts §3.1: the docs example keeps mixed-case pipeline names).
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints

AccountId = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]

Month = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]


Money = Annotated[Decimal, Field(allow_inf_nan=False)]


# A candidate is an account ID, or the ARN of a group principal (organization / OU: any account in it may have acted).
Candidate = Annotated[str, StringConstraints(pattern=r"^([0-9]{12}|arn:aws[a-z-]*:.+)$", max_length=2048)]


_PIPELINE_NAME = r"[A-Za-z0-9](-*[A-Za-z0-9]){0,255}"
_PIPELINE_PREFIX = r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:pipeline/"
PipelineArn = Annotated[str, StringConstraints(pattern=rf"^{_PIPELINE_PREFIX}{_PIPELINE_NAME}$", max_length=512)]
ExecutionArn = Annotated[
    str,
    StringConstraints(pattern=rf"^{_PIPELINE_PREFIX}{_PIPELINE_NAME}/execution/[A-Za-z0-9]{{1,64}}$", max_length=600),
]
PipelineNameOrArn = Annotated[
    str, StringConstraints(pattern=rf"^({_PIPELINE_PREFIX})?{_PIPELINE_NAME}$", max_length=512)
]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")]
Arn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:", max_length=2048)]
Text = Annotated[str, StringConstraints(max_length=2048)]

# Statuses are open values: the API enums [C] (botocore) name the known ones, events are not promised to stay inside
# them (the step enum has `Starting`, the execution enum does not). Any word is kept; only its shape is checked.
_StatusText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_ -]{0,63}$")]
ExecutionStatus = _StatusText
StepStatus = _StatusText
KNOWN_EXECUTION_STATUSES: frozenset[str] = frozenset(
    {"Executing", "Stopping", "Stopped", "Failed", "Succeeded", "CompletedWithFailures"}
)
KNOWN_STEP_STATUSES: frozenset[str] = frozenset({"Starting", "Executing", "Stopping", "Stopped", "Failed", "Succeeded"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"Stopped", "Failed", "Succeeded", "CompletedWithFailures"})
RETRYABLE_STATUSES: frozenset[str] = frozenset({"Failed", "Stopped"})  # RetryPipelineExecution's starting points


class PipelineAction(StrEnum):
    """The three calls the allow-execution permission grants to consumers."""

    START = "start"
    STOP = "stop"
    RETRY = "retry"


ACTION_BY_EVENT_NAME: dict[str, PipelineAction] = {
    "StartPipelineExecution": PipelineAction.START,
    "StopPipelineExecution": PipelineAction.STOP,
    "RetryPipelineExecution": PipelineAction.RETRY,
}


# ------------------------------------------------------------------------------------------------------ ARN helpers


def arn_account(arn: str) -> str:
    """The account field of an ARN (for a pipeline or execution ARN: the owner account)."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[4]


def pipeline_of(execution_arn: str) -> str:
    """The pipeline ARN an execution ARN sits under (`.../pipeline/<name>/execution/<id>` -> `.../pipeline/<name>`)."""
    head, sep, _ = execution_arn.rpartition("/execution/")
    if not sep:
        raise ValueError(f"not a pipeline execution ARN: {execution_arn!r}")
    return head


def same_arn(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def is_account(value: str) -> bool:
    return len(value) == 12 and value.isdigit()


def candidate_of(consumer: str) -> str:
    """The candidate a grant's principal stands for: its account (account ID, IAM role/user ARN) or itself (org/OU)."""
    if is_account(consumer):
        return consumer
    parts = consumer.split(":", 5)
    if len(parts) == 6 and parts[2] == "iam" and is_account(parts[4]):
        return parts[4]
    return consumer


def fingerprint(document: Any) -> str:
    """A stable hash of a policy document (any JSON value)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
