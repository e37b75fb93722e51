"""SNS publisher for decision notifications."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

# aws-facts §15.1: with MessageStructure json, `default` is required; keys of other protocols override it. The
# machine protocols get the JSON body under their own key too, so no subscriber depends on the fallback.
MACHINE_PROTOCOLS: Final = ("sqs", "lambda", "http", "https", "email-json", "firehose", "application")
# aws-facts §15.1: a published message (body and attributes) is at most 256 KiB by default.
MAX_MESSAGE_BYTES: Final = 262_144


def _json_default(value: Any) -> Any:
    """Numbers read back from DynamoDB are Decimals: publish them as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _size(message: str, attributes: Mapping[str, str]) -> int:
    return len(message.encode()) + sum(len(k.encode()) + len(v.encode()) + len("String") for k, v in attributes.items())


def structured(body: str, texts: Mapping[str, str], attributes: Mapping[str, str]) -> str | None:
    """The MessageStructure json message: the body under `default` and every machine protocol, `texts` over them.
    When that is too large, the body under `default` only; None when even that is (publish the body alone)."""
    for machine in (MACHINE_PROTOCOLS, ()):
        message = json.dumps({"default": body, **dict.fromkeys(machine, body), **texts})
        if _size(message, attributes) <= MAX_MESSAGE_BYTES:
            return message
    return None


class SnsNotifier:
    """Implements ports.Notifier."""

    def __init__(self, topic_arn: str, client: SNSClient | None = None) -> None:
        self._topic = topic_arn
        self._sns = client or boto3.client("sns")

    def publish(
        self,
        *,
        subject: str,
        message: dict[str, Any],
        attributes: dict[str, str],
        texts: Mapping[str, str] | None = None,
    ) -> str:
        body = json.dumps(message, sort_keys=True, default=_json_default)
        per_protocol = structured(body, texts, attributes) if texts else None
        if texts and per_protocol is None:
            logger.warning(
                "message too large for its per-protocol texts: published as JSON only", extra={"subject": subject}
            )
        extra: dict[str, Any] = {} if per_protocol is None else {"MessageStructure": "json"}
        with translated():
            response = self._sns.publish(
                TopicArn=self._topic,
                Subject=subject,
                Message=body if per_protocol is None else per_protocol,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
                **extra,
            )
        return str(response["MessageId"])
