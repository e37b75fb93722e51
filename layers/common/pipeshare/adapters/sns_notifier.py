"""SNS publisher for decision notifications."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


def _json_default(value: Any) -> Any:
    """Numbers read back from DynamoDB are Decimals: publish them as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


class SnsNotifier:
    """Implements ports.Notifier."""

    def __init__(self, topic_arn: str, client: SNSClient | None = None) -> None:
        self._topic = topic_arn
        self._sns = client or boto3.client("sns")

    def publish(self, *, subject: str, message: dict[str, Any], attributes: dict[str, str]) -> str:
        with translated():
            response = self._sns.publish(
                TopicArn=self._topic,
                Subject=subject,
                Message=json.dumps(message, sort_keys=True, default=_json_default),
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
            )
        return str(response["MessageId"])
