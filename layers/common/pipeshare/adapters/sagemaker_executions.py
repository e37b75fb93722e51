"""SageMaker pipeline executions in the owner account, through boto3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeshare.adapters.aws_errors import translate
from pipeshare.models.errors import ExecutionNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


class SageMakerExecutionGateway:
    """Implements ports.PipelineExecutionGateway."""

    def __init__(self, client: SageMakerClient | None = None) -> None:
        self._sagemaker = client or boto3.client("sagemaker")

    def describe_execution(self, execution_arn: str) -> dict[str, Any] | None:
        try:
            return dict(self._sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("ResourceNotFound", "ValidationException"):
                return None
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc


_DESCRIBE = {
    "training": ("describe_training_job", "TrainingJobName"),
    "processing": ("describe_processing_job", "ProcessingJobName"),
    "transform": ("describe_transform_job", "TransformJobName"),
    "tuning": ("describe_hyper_parameter_tuning_job", "HyperParameterTuningJobName"),
}


class SageMakerCostGateway(SageMakerExecutionGateway):
    """Implements ports.CostDataGateway: the steps of an execution and the jobs they ran (owner account)."""

    def list_steps(self, execution_arn: str) -> tuple[list[dict[str, Any]], int]:
        """Every step (all pages) and the number of pages read. Raises ExecutionNotFoundError when SageMaker answers
        ResourceNotFound (the execution, or its pipeline, was deleted)."""
        steps: list[dict[str, Any]] = []
        pages = 0
        token: str | None = None
        try:
            while True:
                kwargs: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "MaxResults": 100}
                if token:
                    kwargs["NextToken"] = token
                page = self._sagemaker.list_pipeline_execution_steps(**kwargs)
                pages += 1
                steps.extend(page.get("PipelineExecutionSteps", []))
                token = page.get("NextToken")
                if not token:
                    return steps, pages
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFound":
                raise ExecutionNotFoundError(f"{execution_arn}: {exc.response['Error'].get('Message', '')}") from exc
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc

    def describe_job(self, kind: str, job_arn: str) -> dict[str, Any] | None:
        """Describe*Job for a step's job (kind: training, processing, transform, tuning); None when unknown."""
        operation, parameter = _DESCRIBE[kind]
        try:
            return dict(getattr(self._sagemaker, operation)(**{parameter: job_arn.rsplit("/", 1)[-1]}))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ResourceNotFound", "ValidationException"):
                return None
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
