"""Publish the owner team's messages from the owner table's stream (CHANGE# and ALERT# inserts), and put each
consumer's enforcement notice (NOTICE# inserts) on that consumer's notice bus."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse  # before pydantic: streams.py
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import load_settings
from pipeshare.config.owner import NotifyOwnerSettings
from pipeshare.dependencies import get_notice_publisher, get_publish_once
from pipeshare.logic.consumer_notices import notice_bus_arn
from pipeshare.logic.owner_notify import owner_notification, publish_owner_notification
from pipeshare.models.consumer_notices import ConsumerNoticeItem
from pipeshare.models.errors import NoticeUndeliverableError
from pipeshare.models.outbox import OwnerOutboxItem
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_consumer_notice, report_owner_notification
from pipeshare.streams import process_stream
from pipeshare.validation import parse_or_reject, record_id, stream_image_or_reject


def _consumer_notice(image: dict[str, Any], record: DynamoDBRecord) -> None:
    item = parse_or_reject(image, ConsumerNoticeItem, event_id=record_id(record))
    if item is None:
        return  # logged and counted; a retry cannot fix it
    settings = load_settings(NotifyOwnerSettings)
    notice = item.notice
    if not settings.consumer_notice_bus_name:
        report_consumer_notice(notice, status="off")  # ConsumerNoticeBusName empty: consumers are not told
        return
    bus = notice_bus_arn(
        partition=settings.partition,
        region=settings.region,
        consumer=notice.consumer_account_id,
        bus_name=settings.consumer_notice_bus_name,
    )
    publisher = get_notice_publisher(bus, settings.owner_table_name).for_item(item.pk, item.sk)
    try:
        event_id = publisher.publish(subject="", message=notice.body(), attributes={})
    except NoticeUndeliverableError as exc:  # the consumer's bus refuses it: a retry cannot change that
        report_consumer_notice(notice, status="undeliverable", bus_arn=bus, detail=str(exc))
        return
    report_consumer_notice(notice, status="sent", bus_arn=bus, detail=event_id)


def record_handler(record: DynamoDBRecord) -> None:
    image = stream_image_or_reject(record)
    if image is not None and str(image.get("sk", "")).startswith("NOTICE#"):
        _consumer_notice(image, record)
        return
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
