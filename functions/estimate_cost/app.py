"""Owner side: estimate each execution's cost while it runs (a schedule), as its steps end, and when it (or a retry
of it) ends: finalise and alert."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import load_settings
from pipeshare.config.owner import EstimateCostSettings
from pipeshare.dependencies import (
    get_budget_source,
    get_cost_gateway,
    get_cost_repository,
    get_price_lookup,
    get_prices,
)
from pipeshare.logic.cost import on_execution_end, on_running_tick, on_step_event
from pipeshare.models.events import ScheduledTrigger
from pipeshare.models.outcomes import Ignored, Rejected
from pipeshare.models.owner_events import OwnerEvent, PipelineExecutionStatusEvent, PipelineStepStatusEvent
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_cost, report_tick
from pipeshare.validation import parse_or_reject

if TYPE_CHECKING:
    from pipeshare.adapters.ports import BudgetSource, CostDataGateway, CostRepository, PriceLookup
    from pipeshare.models.estimates import PriceTable


class _Ports(TypedDict):
    """What every cost use case is given (built only once the event is valid)."""

    owner_account: str
    costs: CostRepository
    sagemaker: CostDataGateway
    prices: PriceTable
    now: datetime
    price_lookup: PriceLookup | None


def _ports(settings: EstimateCostSettings, context: LambdaContext) -> _Ports:
    return {
        "owner_account": context.invoked_function_arn.split(":")[4],
        "costs": get_cost_repository(settings.owner_table_name),
        "sagemaker": get_cost_gateway(),
        "prices": get_prices(settings.price_override_parameter, settings.parameter_cache_seconds),
        "now": datetime.now(UTC),
        "price_lookup": get_price_lookup() if settings.use_price_list_api else None,
    }


def _budgets(settings: EstimateCostSettings) -> BudgetSource:
    return get_budget_source(settings.budget_policy_parameter, settings.parameter_cache_seconds)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(EstimateCostSettings)
    if isinstance(event, dict) and event.get("detail-type") == "Scheduled Event":
        if parse_or_reject(event, ScheduledTrigger, wrap="event") is None:
            return Rejected().response()
        tick = on_running_tick(budgets=_budgets(settings), **_ports(settings, context))
        report_tick(tick)
        return tick.response()
    parsed = parse_or_reject(event, OwnerEvent, wrap="event")
    if parsed is None or not isinstance(parsed.event, PipelineStepStatusEvent | PipelineExecutionStatusEvent):
        return (Rejected() if parsed is None else Ignored()).response()
    if isinstance(parsed.event, PipelineStepStatusEvent):
        outcome = on_step_event(parsed.event, **_ports(settings, context))
    else:
        outcome = on_execution_end(parsed.event, budgets=_budgets(settings), **_ports(settings, context))
    report_cost(outcome, event_id=parsed.event.id)
    return outcome.response()
