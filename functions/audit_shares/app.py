"""Daily audit of accepted shares: alert once per share when its owner has associated a disallowed resource type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import load_settings
from pipeshare.config.consumer import AuditSharesSettings
from pipeshare.dependencies import get_policy_source, get_ram_gateway, get_share_repository
from pipeshare.logic.audit import audit_shares
from pipeshare.models.events import ScheduledTrigger
from pipeshare.models.outcomes import Rejected
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_audit
from pipeshare.validation import parse_or_reject, reject_input


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(AuditSharesSettings)
    trigger = parse_or_reject(event, ScheduledTrigger, wrap="event")
    if trigger is None:
        return Rejected().response()
    outcome = audit_shares(
        ram=get_ram_gateway(),
        audits=get_share_repository(settings.share_table_name),
        policy_source=get_policy_source(settings),
        now=datetime.now(UTC),
        history_retention=timedelta(days=settings.history_retention_days),
        on_invalid=lambda reason, ref: reject_input(reason, event_id=trigger.event.id, kind=f"api:{ref}"),
    )
    report_audit(outcome)
    return outcome.response()
