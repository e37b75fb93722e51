"""Owner share inventory: who holds which pipeline with which permission. aws.ram events and a schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import load_settings
from pipeshare.config.owner import OwnerInventorySettings
from pipeshare.dependencies import get_grant_repository, get_owner_gateway
from pipeshare.logic.inventory import reconcile_inventory
from pipeshare.models.events import AcceptTrigger
from pipeshare.models.outcomes import Rejected
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_inventory
from pipeshare.validation import parse_or_reject


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(OwnerInventorySettings)
    if parse_or_reject(event, AcceptTrigger, wrap="event") is None:  # a RAM state change or the schedule
        return Rejected().response()
    outcome = reconcile_inventory(
        ram=get_owner_gateway(),
        grants=get_grant_repository(settings.owner_table_name),
        now=datetime.now(UTC),
        history_retention=timedelta(days=settings.history_retention_days),
    )
    report_inventory(outcome)
    return outcome.response()
