"""Put a consumer's enforcement notice on its notice bus (EventBridge PutEvents, the bus named by its ARN).

Implements ports.Notifier, so the owner notifier wraps it in PublishOnce (adapters/publish_once.py): one PutEvents per
outbox item, a mark written after it. PutEvents has no idempotency token: the one duplicate left (the event accepted,
the mark not written) carries the same `notice_id`, which the consumer's relay publishes once.

PutEvents answers per entry (aws-facts §14): InternalFailure and ThrottlingException are retryable (TransientError: the
stream record is retried); AccessDeniedException (the bus's policy does not admit this owner, or the bus is not there)
and every other entry error are not: NoticeUndeliverableError, which the handler reports without failing the record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.models.consumer_notices import NOTICE_DETAIL_TYPE, NOTICE_SOURCE
from pipeshare.models.errors import AccessDeniedError, NoticeUndeliverableError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

RETRYABLE_ENTRY_ERRORS = frozenset({"InternalFailure", "ThrottlingException"})


class EventBridgeNoticeSender:
    """Implements ports.Notifier: `publish` puts one event (the message as its detail) on one bus; returns its id."""

    def __init__(self, bus_arn: str, client: EventBridgeClient | None = None) -> None:
        self._bus = bus_arn
        # one per bus (dependencies.get_notice_publisher caches the senders)
        self._events = client or boto3.client("events")

    def publish(
        self,
        *,
        subject: str,
        message: dict[str, Any],
        attributes: dict[str, str],
        texts: Mapping[str, str] | None = None,  # per-protocol texts are SNS's: an event carries the JSON body only
    ) -> str:
        entry: PutEventsRequestEntryTypeDef = {
            "Source": NOTICE_SOURCE,
            "DetailType": NOTICE_DETAIL_TYPE,
            "Detail": json.dumps(message, sort_keys=True),
            "EventBusName": self._bus,
        }
        try:
            with translated():
                response = self._events.put_events(Entries=[entry])
        except AccessDeniedError as exc:  # the whole call refused (IAM, or the bus policy)
            raise NoticeUndeliverableError(self._bus, "AccessDeniedException", str(exc)) from exc
        [result] = response.get("Entries") or [{}]
        if response.get("FailedEntryCount", 0) == 0 and result.get("EventId"):
            return str(result["EventId"])
        code, text = str(result.get("ErrorCode", "Unknown")), str(result.get("ErrorMessage", ""))
        if code in RETRYABLE_ENTRY_ERRORS:
            raise TransientError(f"PutEvents to {self._bus}: {code}: {text}")
        raise NoticeUndeliverableError(self._bus, code, text)
