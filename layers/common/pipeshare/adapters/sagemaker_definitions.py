"""What a pipeline execution runs, through boto3: its definition and its parameter values (owner account).

The client is created on first use (a tracker invocation that projects nothing builds none) and retries once, with
short timeouts: the start projection must not hold up the start alert (a failure is reported in the alert instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Never

import boto3
from botocore.config import Config

from pipeshare.adapters.aws_errors import ErrorDetail, Translation, translated
from pipeshare.models.errors import ExecutionNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

# standard retry mode: total_max_attempts counts the first call, so 2 = one retry (botocore's `max_attempts` counts
# retries only, and botocore rewrites it in place into total_max_attempts when a client is built)
CLIENT_CONFIG = Config(retries={"total_max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=5)
PAGE_SIZE = 100  # ListPipelineParametersForExecution MaxResults (1-100)


class SageMakerDefinitionGateway:
    """Implements ports.PipelineDefinitionGateway."""

    def __init__(self, client: SageMakerClient | None = None) -> None:
        self._client = client

    @property
    def _sagemaker(self) -> SageMakerClient:
        if self._client is None:
            self._client = boto3.client("sagemaker", config=CLIENT_CONFIG)
        return self._client

    def definition_for_execution(self, execution_arn: str) -> str:
        with _translated(execution_arn):
            response = self._sagemaker.describe_pipeline_definition_for_execution(PipelineExecutionArn=execution_arn)
        return str(response.get("PipelineDefinition", ""))

    def parameters_for_execution(self, execution_arn: str) -> dict[str, str]:
        found: dict[str, str] = {}
        kwargs: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "MaxResults": PAGE_SIZE}
        with _translated(execution_arn):
            while True:
                page = self._sagemaker.list_pipeline_parameters_for_execution(**kwargs)
                found.update({p["Name"]: p["Value"] for p in page.get("PipelineParameters", [])})
                if not page.get("NextToken"):
                    return found
                kwargs["NextToken"] = page["NextToken"]


def _translated(execution_arn: str) -> Translation[Never]:
    """AWS errors translated; ResourceNotFound (the execution, or its pipeline, was deleted): ExecutionNotFoundError."""
    return translated(raising={"ResourceNotFound": lambda error: _not_found(execution_arn, error)})


def _not_found(execution_arn: str, error: ErrorDetail) -> ExecutionNotFoundError:
    return ExecutionNotFoundError(f"{execution_arn}: {'not found' if error.message is None else error.message}")
