"""Owner side: budgets that bind. Owner-table stream (spend totals, running executions, unpriced estimates): alert
what is due, enforce on the offender; the budget policy's SSM change and a daily schedule: the whole month again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse  # before pydantic: streams.py
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.adapters.ports import BudgetPorts
from pipeshare.config import load_settings
from pipeshare.config.owner import WatchBudgetsSettings
from pipeshare.dependencies import get_budget_ledger, get_budget_source, get_enforcer, get_grant_repository
from pipeshare.logic.budget_watch import (
    evaluate_month,
    on_execution_state,
    on_line_change,
    on_spend_change,
    on_unpriced_estimate,
)
from pipeshare.logic.budgets import month_of
from pipeshare.models.budget_events import (
    BudgetTrigger,
    ConsumerTotalImage,
    ExecutionStateImage,
    ParameterStoreChangeDetail,
    ParameterStoreChangeEvent,
    StreamImage,
    UnattributedTotalImage,
    image_model,
)
from pipeshare.models.budgets import RunView
from pipeshare.models.errors import EnforcementIncompleteError
from pipeshare.models.outcomes import Ignored, Rejected
from pipeshare.models.owner_outcomes import BudgetOutcome
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_budget
from pipeshare.streams import process_stream
from pipeshare.validation import parse_or_reject, record_id, stream_image_or_reject


def _ports(settings: WatchBudgetsSettings) -> BudgetPorts:
    ledger = get_budget_ledger(settings.owner_table_name)
    return BudgetPorts(
        budgets=get_budget_source(settings.budget_policy_parameter, settings.parameter_cache_seconds),
        ledger=ledger,
        spend=ledger,
        runs=ledger,
        grants=get_grant_repository(settings.owner_table_name),
        enforcer=get_enforcer(),
    )


def _previous(old: dict[str, Any] | None) -> RunView | None:
    """The execution as it was before this change (None when new, or not readable as one)."""
    try:
        return ExecutionStateImage.model_validate(old).run() if old else None
    except ValueError:
        return None


def _dispatch(image: StreamImage, old: dict[str, Any] | None, ports: BudgetPorts) -> BudgetOutcome:
    now = datetime.now(UTC)
    if isinstance(image, ConsumerTotalImage):
        return on_spend_change(image.spend(), ports=ports, now=now)
    if isinstance(image, UnattributedTotalImage):
        return on_line_change(image.line(), ports=ports, now=now)
    if isinstance(image, ExecutionStateImage):
        return on_execution_state(image.run(), _previous(old), ports=ports, now=now)
    if not image.unpriced:
        return BudgetOutcome(
            status="ignored", subject=image.execution_key, month=month_of(now)
        )  # incomplete for another reason
    return on_unpriced_estimate(image.execution_key, image.unpriced, ports=ports, now=now)


def record_handler(record: DynamoDBRecord) -> None:
    image = stream_image_or_reject(record)
    model = image_model(image) if image is not None else None
    parsed = parse_or_reject(image, model, event_id=record_id(record)) if model is not None else None
    if parsed is None:
        return  # not a watcher's item, or invalid (logged and counted): a retry cannot change it
    old = stream_image_or_reject(record, old=True)
    try:
        outcome = _dispatch(parsed, old, _ports(load_settings(WatchBudgetsSettings)))
    except EnforcementIncompleteError as exc:
        report_budget(exc.outcome)
        raise  # this record is retried: what failed is tried again, what was done is not repeated
    report_budget(outcome)


def _evaluate_month(event: Any) -> dict[str, Any]:
    settings = load_settings(WatchBudgetsSettings)
    trigger = parse_or_reject(event, BudgetTrigger, wrap="event")
    if trigger is None:
        return Rejected().response()
    changed = isinstance(trigger.event, ParameterStoreChangeEvent)
    detail = trigger.event.detail if changed else None
    if isinstance(detail, ParameterStoreChangeDetail) and detail.name != settings.budget_policy_parameter:
        return Ignored(reason="not the budget policy parameter").response()
    now = datetime.now(UTC)
    try:
        outcome = evaluate_month(month_of(now), ports=_ports(settings), now=now, fresh=changed)
    except EnforcementIncompleteError as exc:
        report_budget(exc.outcome)
        raise  # Lambda retries the invocation (then its on-failure destination)
    report_budget(outcome)
    return outcome.response()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse | dict[str, Any]:
    if isinstance(event, dict) and "Records" in event:  # the owner table's stream
        return process_stream(event, context, record_handler, received_metric="SpendChangesReceived")
    return _evaluate_month(event)  # the budget policy changed (SSM), or the daily schedule
