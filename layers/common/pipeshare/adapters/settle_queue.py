"""Settle requests on an SQS delay queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3

from pipeshare.adapters.aws_errors import translated

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from pipeshare.models.settle import SettleRequest

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds maximum (SQS Developer Guide, "Amazon SQS delay queues")


class SqsSettleScheduler:
    """Implements ports.SettleScheduler: one message per request, delivered after delay_seconds (<= 15 minutes)."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._sqs = client or boto3.client("sqs")

    def schedule(self, request: SettleRequest, *, delay_seconds: int) -> None:
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay_seconds must be 0..{MAX_DELAY_SECONDS}, not {delay_seconds}")
        with translated():
            self._sqs.send_message(
                QueueUrl=self._queue_url, MessageBody=request.model_dump_json(), DelaySeconds=delay_seconds
            )
