"""Owner side: budgets per consumer - threshold alerts once a month, enforcement (or dry run) at 100 %."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import WatchBudgetsSettings, load_settings
from pipeshare.dependencies import get_budget_ledger, get_budget_source, get_enforcer, get_grant_repository
from pipeshare.logic.budget_watch import on_spend_change
from pipeshare.models.events import SpendChange
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_budget
from pipeshare.validation import parse_or_reject

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else None
    old = (record.dynamodb.old_image if record.dynamodb else None) or {}
    change = parse_or_reject({**(image or {}), "before": old.get("total", 0)}, SpendChange)
    if change is None:
        return  # logged and counted; a retry cannot fix it
    settings = load_settings(WatchBudgetsSettings)
    ledger = get_budget_ledger(settings.owner_table_name)
    outcome = on_spend_change(
        change.consumer_account,
        change.month,
        change.before,
        change.total,
        budgets=get_budget_source(settings.budget_policy_parameter, settings.parameter_cache_seconds),
        ledger=ledger,
        running=ledger,
        grants=get_grant_repository(settings.owner_table_name),
        enforcer=get_enforcer(),
        now=datetime.now(UTC),
    )
    report_budget(outcome)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="SpendChangesReceived", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
