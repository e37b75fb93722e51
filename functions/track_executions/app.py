"""Owner side: record every pipeline execution, attribute consumer starts/stops/retries, make alerts due once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.adapters.ports import ProjectionSources, Settle
from pipeshare.config import load_settings
from pipeshare.config.owner import TrackExecutionsSettings
from pipeshare.dependencies import (
    get_budget_source,
    get_cost_repository,
    get_definition_gateway,
    get_execution_gateway,
    get_execution_repository,
    get_grant_repository,
    get_price_lookup,
    get_prices,
    get_run_history,
    get_settle_scheduler,
)
from pipeshare.logic.track import track_event
from pipeshare.models.outcomes import Ignored, Rejected
from pipeshare.models.owner_events import OwnerEvent, OwnerShareStateChange
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_tracking
from pipeshare.validation import parse_or_reject


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(TrackExecutionsSettings)
    parsed = parse_or_reject(event, OwnerEvent, wrap="event")
    if parsed is None:
        return Rejected().response()
    if isinstance(parsed.event, OwnerShareStateChange):  # valid, but the share inventory's (OwnerInventoryFunction)
        return Ignored(reason="a RAM share change is not an execution event").response()
    settle = (
        Settle(get_settle_scheduler(settings.settle_queue_url), settings.inference_settle_minutes * 60)
        if settings.infer_consumer_starts
        else None
    )
    outcome = track_event(
        parsed.event,
        owner_account=context.invoked_function_arn.split(":")[4],
        executions=get_execution_repository(settings.owner_table_name),
        grants=get_grant_repository(settings.owner_table_name),
        sagemaker=get_execution_gateway(),
        alert_on_owner=settings.alert_on_owner_executions,
        settle=settle,
        spend=get_cost_repository(settings.owner_table_name),
        now=datetime.now(UTC),
        projection=_projection_sources(settings),
    )
    report_tracking(outcome, event_id=parsed.event.id)
    if outcome.projection_unavailable:  # the start alert went out without (part of) its projection
        metrics.add_metric(name="ProjectionUnavailable", unit=MetricUnit.Count, value=1)
    return outcome.response()


def _projection_sources(settings: TrackExecutionsSettings) -> ProjectionSources:
    """The start projection's inputs: the budget policy and prices as EstimateCostFunction reads them; each built only
    when a consumer start alert is due."""
    cache = settings.parameter_cache_seconds
    return ProjectionSources(
        definitions=get_definition_gateway,
        history=lambda: get_run_history(settings.owner_table_name),
        budgets=lambda: get_budget_source(settings.budget_policy_parameter, cache),
        prices=lambda: get_prices(settings.price_override_parameter, cache),
        price_lookup=(lambda: get_price_lookup(settings.owner_table_name, settings.price_cache_seconds))
        if settings.use_price_list_api
        else None,
    )
