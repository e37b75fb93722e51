"""Publish the owner team's messages from the owner table's stream (CHANGE# and ALERT# inserts only)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse  # before pydantic: streams.py
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import load_settings
from pipeshare.config.owner import NotifyOwnerSettings
from pipeshare.dependencies import get_publish_once
from pipeshare.logic.owner_notify import owner_notification, publish_owner_notification
from pipeshare.models.outbox import OwnerOutboxItem
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_owner_notification
from pipeshare.streams import process_stream
from pipeshare.validation import parse_or_reject, record_id, stream_image_or_reject


def record_handler(record: DynamoDBRecord) -> None:
    image = stream_image_or_reject(record)
    item = None if image is None else parse_or_reject(image, OwnerOutboxItem, event_id=record_id(record))
    if item is None:
        return  # logged and counted; a retry cannot fix it
    notification = owner_notification(item.model_dump())
    if notification is None:
        return
    settings = load_settings(NotifyOwnerSettings)
    notifier = get_publish_once(settings.owner_topic_arn, settings.owner_table_name).for_item(item.pk, item.sk)
    message_id = publish_owner_notification(notification, notifier=notifier, chat=settings.chat_key)
    report_owner_notification(notification, message_id)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_stream(event, context, record_handler, received_metric="OwnerRecordsReceived")
