"""Logs and metrics for outcomes (business metrics in PascalCase).

Every metric goes to the namespace POWERTOOLS_METRICS_NAMESPACE with the dimension `service` (template.yaml Globals).
Most carry that dimension only (the invocation's metric set, flushed by `@metrics.log_metrics`); the few broken down
by an account carry more (`_by`: one EMF record each, written at once): ExecutionAttributed / AttributionChanged
(`initiator`, `source`), ConsumerSpendUsd / ConsumerBudgetUsd (`consumer`). The dashboards in template.yaml use them;
tests/infrastructure/test_dashboards.py checks each widget against what this module emits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from pipeshare.observability import logger, metrics

if TYPE_CHECKING:
    from pipeshare.models.consumer_notices import EnforcementNotice
    from pipeshare.models.consumer_outcomes import AuditOutcome, SweepOutcome
    from pipeshare.models.notification import Notification
    from pipeshare.models.outbox import DecisionHistoryItem
    from pipeshare.models.owner_outcomes import BudgetOutcome, CostOutcome, InventoryOutcome, TickOutcome, TrackOutcome

_STATUS_METRICS = {
    "ACCEPTED": "InvitationAccepted",
    "HELD": "InvitationHeld",
    "REJECTED": "InvitationRejected",
    "EXPIRED": "InvitationExpired",
}


def _by(name: str, value: float, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """One metric with dimensions of its own besides `service` (an EMF record of its own, written now): the
    invocation's metric set has one dimension set for all its metrics."""
    with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
        if metrics.service:
            metric.add_dimension(name="service", value=str(metrics.service))
        for key, text in dimensions.items():
            metric.add_dimension(name=key, value=text)


def report_sweep(outcome: SweepOutcome) -> None:
    metrics.add_metric(name="InvitationsSeen", unit=MetricUnit.Count, value=len(outcome.invitations))
    if outcome.mode == "sweep":  # a sweep lists every invitation: how many are held now (a gauge: Maximum)
        metrics.add_metric(name="InvitationsHeld", unit=MetricUnit.Count, value=outcome.current("HELD"))
    for status, name in _STATUS_METRICS.items():
        count = outcome.count(status)
        if count:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    if not outcome.policy_valid:
        metrics.add_metric(name="PolicyInvalid", unit=MetricUnit.Count, value=1)
        logger.error("trust policy invalid: failing closed", extra={"problems": outcome.problems})
    if outcome.transient_failures:
        metrics.add_metric(name="TransientFailure", unit=MetricUnit.Count, value=outcome.transient_failures)
    if outcome.failures:
        metrics.add_metric(name="UnexpectedFailure", unit=MetricUnit.Count, value=outcome.failures)
    for item in outcome.invitations:
        if item.changed:
            logger.info(
                "invitation decided",
                extra={
                    "invitation_arn": item.invitation_arn,
                    "status": item.status,
                    "rule": item.rule,
                    "reason": item.reason,
                },
            )
    if outcome.problems:
        logger.warning("sweep finished with problems", extra={"problems": outcome.problems[:50]})
    logger.info("sweep finished", extra=outcome.log_fields())


def report_audit(outcome: AuditOutcome) -> None:
    metrics.add_metric(name="SharedResourcesAudited", unit=MetricUnit.Count, value=outcome.resources)
    if outcome.alerted:
        metrics.add_metric(name="DisallowedResourceAlerted", unit=MetricUnit.Count, value=len(outcome.alerted))
    if outcome.status == "policy-invalid":
        metrics.add_metric(name="PolicyInvalid", unit=MetricUnit.Count, value=1)
        logger.error("trust policy invalid: accepted shares not audited", extra={"problems": outcome.problems})
    logger.info("accepted shares audited", extra=outcome.log_fields())


def report_notification(item: DecisionHistoryItem, message_id: str | None) -> None:
    if message_id is None:
        logger.debug("no notification for this history item", extra={"sk": item.sk})
        return
    metrics.add_metric(name="DecisionNotified", unit=MetricUnit.Count, value=1)
    logger.info("decision notified", extra={"pk": item.pk, "status": item.to_status, "message_id": message_id})


def report_inventory(outcome: InventoryOutcome) -> None:
    metrics.add_metric(name="CostBearingGrants", unit=MetricUnit.Count, value=outcome.cost_bearing)
    metrics.add_metric(name="InventoryChanges", unit=MetricUnit.Count, value=len(outcome.changes))
    logger.info("inventory reconciled", extra=outcome.log_fields())


def report_owner_notification(notification: Notification, message_id: str) -> None:
    metrics.add_metric(name="OwnerNotified", unit=MetricUnit.Count, value=1)
    logger.info("owner notified", extra={"event": notification.message.get("event"), "message_id": message_id})


_NOTICE_METRICS = {
    "sent": "ConsumerNoticeSent",
    "off": "ConsumerNoticeOff",
    "undeliverable": "ConsumerNoticeUndeliverable",
}


def report_consumer_notice(
    notice: EnforcementNotice, *, status: str, bus_arn: str | None = None, detail: str | None = None
) -> None:
    """Owner side: a consumer's enforcement notice put on its bus (sent), not sent (off: no bus name configured), or
    refused by the consumer's bus (undeliverable: a structured error and a metric)."""
    metrics.add_metric(name=_NOTICE_METRICS[status], unit=MetricUnit.Count, value=1)
    fields = {
        "notice_id": notice.notice_id,
        "consumer_account_id": notice.consumer_account_id,
        "action": notice.action,
        "bus_arn": bus_arn,
        "detail": (detail or "")[:500],
    }
    log = logger.error if status == "undeliverable" else logger.info
    log(f"consumer notice {status}", extra=fields)


def report_notice_relay(notice_id: str | None, owner: str | None, *, status: str, detail: str = "") -> None:
    """Consumer side: a notice relayed to the consumer topic, or refused (not from a trusted owner, not about this
    account, the trust policy invalid: a structured error and a metric; nothing is published)."""
    name = "ConsumerNoticeRelayed" if status == "relayed" else "ConsumerNoticeRefused"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    log = logger.info if status == "relayed" else logger.error
    log(f"consumer notice {status}", extra={"notice_id": notice_id, "owner_account_id": owner, "detail": detail[:500]})


_TRACK_METRICS = {
    "recorded": "ExecutionRecorded",
    "duplicate": "ExecutionDuplicate",
    "ignored": "ExecutionEventIgnored",
    "unverified": "ForwardedUnverified",
}


def report_tracking(outcome: TrackOutcome, *, event_id: str) -> None:
    metrics.add_metric(name=_TRACK_METRICS[outcome.status], unit=MetricUnit.Count, value=1)
    if outcome.alerts:
        metrics.add_metric(name="ConsumerActionAlertDue", unit=MetricUnit.Count, value=len(outcome.alerts))
    if outcome.settling:
        metrics.add_metric(name="AttributionSettling", unit=MetricUnit.Count, value=len(outcome.settling))
    if outcome.attribution is not None:  # the start attributed for the first time, or its attribution changed
        _by(
            "ExecutionAttributed" if outcome.attribution == "new" else "AttributionChanged",
            1,
            initiator=outcome.initiator_account or "none",
            source=outcome.source or "unknown",
        )
    log = logger.warning if outcome.status == "unverified" else logger.info
    log("execution event tracked", extra={"event_id": event_id, **outcome.log_fields()})


def report_cost(outcome: CostOutcome, *, event_id: str) -> None:
    if outcome.budget_policy_invalid:  # finalised with no budget: the estimate and its alert are not lost
        metrics.add_metric(name="BudgetPolicyInvalid", unit=MetricUnit.Count, value=1)
        logger.error("budget policy invalid: finalised without a budget", extra={"event_id": event_id})
    if outcome.unpriced:
        metrics.add_metric(name="UnpricedInstanceTypes", unit=MetricUnit.Count, value=len(outcome.unpriced))
    if outcome.status in ("counted", "finalised") and outcome.added > 0:
        metrics.add_metric(name="EstimatedCostCents", unit=MetricUnit.Count, value=float(outcome.added * 100))
    metrics.add_metric(name=f"Cost{outcome.status.capitalize()}", unit=MetricUnit.Count, value=1)
    log = logger.warning if outcome.status == "gone" else logger.info  # gone: CostGone, not retried
    log("cost event processed", extra={"event_id": event_id, **outcome.log_fields()})


def report_tick(outcome: TickOutcome) -> None:
    """The running-estimate tick: executions looked at, jobs recounted, cents added, finish alerts released."""
    metrics.add_metric(name="RunningExecutions", unit=MetricUnit.Count, value=outcome.executions)
    metrics.add_metric(name="RunningJobsCounted", unit=MetricUnit.Count, value=outcome.jobs_counted)
    if outcome.added:
        metrics.add_metric(name="EstimatedCostCents", unit=MetricUnit.Count, value=float(outcome.added * 100))
    if outcome.finish_alerts:
        metrics.add_metric(name="FinishAlertsReleased", unit=MetricUnit.Count, value=outcome.finish_alerts)
    if outcome.pending_dropped:
        metrics.add_metric(name="FinishUnattributed", unit=MetricUnit.Count, value=outcome.pending_dropped)
    log = logger.warning if outcome.errors else logger.info
    log("running estimate tick", extra=outcome.log_fields())


def report_budget(outcome: BudgetOutcome) -> None:
    """Thresholds alerted, enforcement actions done / reported in dry run / failed, an invalid policy (alarmed)."""
    if outcome.thresholds:
        metrics.add_metric(name="BudgetThresholdAlerted", unit=MetricUnit.Count, value=len(outcome.thresholds))
    counts = {
        name: sum(1 for result in outcome.actions.values() if result.startswith(prefix))
        for name, prefix in (
            ("BudgetEnforced", "done"),
            ("BudgetDryRun", "not-run"),
            ("BudgetEnforcementFailed", "failed"),
        )
    }
    for name, count in counts.items():
        if count:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    for consumer, (spend, limit) in sorted(outcome.spend.items()):  # gauges: month to date, read with Maximum
        _by("ConsumerSpendUsd", float(spend), MetricUnit.NoUnit, consumer=consumer)
        _by("ConsumerBudgetUsd", float(limit), MetricUnit.NoUnit, consumer=consumer)
    if outcome.status == "policy-invalid":
        metrics.add_metric(name="BudgetPolicyInvalid", unit=MetricUnit.Count, value=1)
        logger.error("budget policy invalid: no budget applied, nothing enforced", extra={"reason": outcome.reason})
    log = logger.warning if outcome.failures else logger.info
    log("budgets checked", extra=outcome.log_fields())
