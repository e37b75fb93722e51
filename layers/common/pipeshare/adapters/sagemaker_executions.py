"""SageMaker pipeline executions in the owner account, through boto3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.models.errors import ExecutionNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


# SageMaker's answers for an execution or a job it does not know (deleted, or never there): None
_UNKNOWN: dict[str, None] = {"ResourceNotFound": None, "ValidationException": None}


class SageMakerExecutionGateway:
    """Implements ports.PipelineExecutionGateway."""

    def __init__(self, client: SageMakerClient | None = None) -> None:
        # built on first use: the tracker's status events (most of its invocations) never describe an execution, and a
        # SageMaker client is the largest botocore model (~20 MB)
        self._client = client

    @property
    def _sagemaker(self) -> SageMakerClient:
        if self._client is None:
            self._client = boto3.client("sagemaker")
        return self._client

    @translated(returning=_UNKNOWN)
    def describe_execution(self, execution_arn: str) -> dict[str, Any] | None:
        return dict(self._sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn))


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
        deleted = {"ResourceNotFound": lambda error: ExecutionNotFoundError(f"{execution_arn}: {error.message or ''}")}
        with translated(raising=deleted):
            while True:
                kwargs: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "MaxResults": 100}
                if token:
                    kwargs["NextToken"] = token
                page = self._sagemaker.list_pipeline_execution_steps(**kwargs)
                pages += 1
                steps.extend(dict(step) for step in page.get("PipelineExecutionSteps", []))
                token = page.get("NextToken")
                if not token:
                    return steps, pages

    @translated(returning=_UNKNOWN)
    def describe_job(self, kind: str, job_arn: str) -> dict[str, Any] | None:
        """Describe*Job for a step's job (kind: training, processing, transform, tuning); None when unknown."""
        operation, parameter = _DESCRIBE[kind]
        return dict(getattr(self._sagemaker, operation)(**{parameter: job_arn.rsplit("/", 1)[-1]}))
