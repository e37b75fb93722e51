"""Owner side: a settle period has passed (SQS delay queue): attribute what nobody has claimed from the grants."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import load_settings
from pipeshare.config.owner import SettleAttributionSettings
from pipeshare.dependencies import (
    get_cost_repository,
    get_execution_repository,
    get_grant_repository,
    get_trail_status,
)
from pipeshare.logic.track import settle_attribution
from pipeshare.models.settle import SettleRequest
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_tracking
from pipeshare.validation import batch_or_reject, parse_json_or_reject

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    request = parse_json_or_reject(record.get("body") or "", SettleRequest, event_id=record.message_id)
    if request is None:
        return  # logged and counted; a retry cannot fix it
    settings = load_settings(SettleAttributionSettings)
    outcome = settle_attribution(
        request,
        owner_account=lambda_context.invoked_function_arn.split(":")[4],  # the queue is this stack's own
        executions=get_execution_repository(settings.owner_table_name),
        grants=get_grant_repository(settings.owner_table_name),
        trail=get_trail_status(settings.trail_cache_seconds),
        alert_on_owner=settings.alert_on_owner_executions,
        spend=get_cost_repository(settings.owner_table_name),
        now=datetime.now(UTC),
    )
    report_tracking(outcome, event_id=record.message_id)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not batch_or_reject(event, processor.event_type):
        return {"batchItemFailures": []}
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
