"""SageMaker pipeline executions in the owner account, through boto3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeshare.adapters.aws_errors import translate

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
