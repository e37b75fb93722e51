"""Publish one SNS message per recorded decision, from the share table's stream (HIST# inserts only)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse  # before pydantic: streams.py
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import load_settings
from pipeshare.config.consumer import NotifyDecisionsSettings
from pipeshare.dependencies import get_publish_once
from pipeshare.logic.notify import notify_decision
from pipeshare.models.outbox import DecisionHistoryItem
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_notification
from pipeshare.streams import process_stream
from pipeshare.validation import parse_or_reject, record_id, stream_image_or_reject


def record_handler(record: DynamoDBRecord) -> None:
    image = stream_image_or_reject(record)
    item = None if image is None else parse_or_reject(image, DecisionHistoryItem, event_id=record_id(record))
    if item is None:
        return  # logged and counted; a retry cannot fix it
    settings = load_settings(NotifyDecisionsSettings)
    once = get_publish_once(settings.consumer_topic_arn, settings.share_table_name)
    report_notification(item, notify_decision(item, notifier=once.for_item(item.pk, item.sk), chat=settings.chat_key))


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_stream(event, context, record_handler, received_metric="HistoryRecordsReceived")
