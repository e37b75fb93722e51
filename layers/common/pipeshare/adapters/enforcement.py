"""Budget enforcement actions in the owner account: stop an execution, switch a share to the read-only permission."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeshare.adapters.aws_errors import translate
from pipeshare.models.owner import READ_ONLY

if TYPE_CHECKING:
    from mypy_boto3_ram import RAMClient
    from mypy_boto3_sagemaker import SageMakerClient

_NAMESPACE = uuid.UUID("b7a1c3f0-52a4-4a46-9c1e-1f6f0a5d8e21")


class AwsEnforcementGateway:
    """Implements ports.EnforcementGateway."""

    def __init__(self, sagemaker: SageMakerClient | None = None, ram: RAMClient | None = None) -> None:
        self._sagemaker = sagemaker or boto3.client("sagemaker")
        self._ram = ram or boto3.client("ram")

    def stop_execution(self, execution_arn: str) -> bool:
        token = str(uuid.uuid5(_NAMESPACE, f"stop:{execution_arn}"))  # a retried stop is the same request
        try:
            self._sagemaker.stop_pipeline_execution(PipelineExecutionArn=execution_arn, ClientRequestToken=token)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConflictException":  # it had already ended
                return False
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return True

    def switch_share_to_read_only(self, share_arn: str) -> bool:
        partition = share_arn.split(":")[1]
        try:
            self._ram.associate_resource_share_permission(
                resourceShareArn=share_arn,
                permissionArn=f"arn:{partition}:ram::aws:permission/{READ_ONLY}",
                replace=True,
                clientToken=str(uuid.uuid5(_NAMESPACE, f"read-only:{share_arn}")),
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return True
