"""Accept RAM invitations from trusted owners; hold or reject the rest. Triggered by aws.ram events and a schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import load_settings
from pipeshare.config.consumer import AcceptInvitationsSettings
from pipeshare.dependencies import get_policy_source, get_ram_gateway, get_share_repository
from pipeshare.logic.accept import process_invitations
from pipeshare.models.errors import SweepIncompleteError
from pipeshare.models.events import AcceptTrigger, RamStateChangeEvent
from pipeshare.models.outcomes import Rejected
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_sweep
from pipeshare.validation import parse_or_reject, reject_input


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(AcceptInvitationsSettings)
    trigger = parse_or_reject(event, AcceptTrigger, wrap="event")
    if trigger is None:
        return Rejected().response()
    targeted = trigger.event.invitation_arns() if isinstance(trigger.event, RamStateChangeEvent) else []
    outcome = process_invitations(
        targeted or None,
        ram=get_ram_gateway(),
        shares=get_share_repository(settings.share_table_name),
        policy_source=get_policy_source(settings),
        now=datetime.now(UTC),
        history_retention=timedelta(days=settings.history_retention_days),
        on_invalid=lambda reason, ref: reject_input(reason, event_id=trigger.event.id, kind=f"api:{ref}"),
        held_digest_threshold=settings.held_digest_threshold,
        reminder_before=timedelta(minutes=settings.held_reminder_minutes),
        invitation_window=timedelta(hours=settings.invitation_window_hours),
    )
    report_sweep(outcome)
    if outcome.transient_failures or outcome.failures:
        raise SweepIncompleteError(
            f"{outcome.transient_failures} transient and {outcome.failures} unexpected error(s); the sweep is retried"
        )
    return outcome.response()
