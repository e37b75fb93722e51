"""pipeshare.reporting: the metrics an outcome becomes, read back from the EMF Powertools writes (tests/emf.py).
The dashboards in template.yaml draw these (tests/infrastructure/test_dashboards.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipeshare.models.consumer_outcomes import InvitationOutcome, SweepOutcome
from pipeshare.models.owner_outcomes import BudgetOutcome, TrackOutcome
from pipeshare.reporting import report_budget, report_sweep, report_tracking
from tests.emf import EmittedMetric, capture

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
EXECUTION = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train/execution/p4jn9xou8a8s"


def invitation(n: int, status: str, *, changed: bool) -> InvitationOutcome:
    return InvitationOutcome(
        invitation_arn=f"arn:aws:ram:us-east-1:{OWNER}:resource-share-invitation/{n}",
        status=status,
        rule="r",
        reason="",
        changed=changed,
    )


def named(emitted: list[EmittedMetric], name: str) -> list[EmittedMetric]:
    return [m for m in emitted if m.name == name]


def test_a_sweep_reports_every_invitation_held_now_and_the_holds_it_made() -> None:
    # Given a sweep that saw two invitations held before, held a new one and accepted another
    outcome = SweepOutcome(
        mode="sweep",
        invitations=[
            invitation(1, "HELD", changed=False),
            invitation(2, "HELD", changed=False),
            invitation(3, "HELD", changed=True),
            invitation(4, "ACCEPTED", changed=True),
        ],
    )

    # When it is reported
    emitted = capture(lambda: report_sweep(outcome))

    # Then the held count is all three (a gauge), the decisions only what this sweep did
    values = {m.name: m.value for m in emitted}
    assert (values["InvitationsHeld"], values["InvitationHeld"], values["InvitationAccepted"]) == (3, 1, 1)
    assert {(m.namespace, m.dimensions) for m in emitted} == {("Pipeshare", (("service", "pipeshare"),))}


def test_an_event_triggered_run_reports_no_held_count() -> None:
    # Given a run on one invitation (a RAM event): it has not seen the others
    outcome = SweepOutcome(mode="targeted", invitations=[invitation(1, "HELD", changed=True)])

    # When / Then: its one hold is a decision, not the number held
    emitted = capture(lambda: report_sweep(outcome))
    assert named(emitted, "InvitationsHeld") == []
    assert [m.value for m in named(emitted, "InvitationHeld")] == [1]


@pytest.mark.parametrize(
    ("attribution", "initiator", "source", "metric", "initiator_dimension"),
    [
        ("new", CONSUMER, "forwarded", "ExecutionAttributed", CONSUMER),
        ("new", OWNER, "owner", "ExecutionAttributed", OWNER),
        ("new", None, "ambiguous", "ExecutionAttributed", "none"),
        ("changed", CONSUMER, "inferred", "AttributionChanged", CONSUMER),
    ],
)
def test_an_attribution_is_counted_by_initiator_and_source(
    attribution: str, initiator: str | None, source: str, metric: str, initiator_dimension: str
) -> None:
    # Given a tracked event that attributed (or re-attributed) an execution's start
    outcome = TrackOutcome(
        status="recorded",
        execution_arn=EXECUTION,
        attribution=attribution,
        source=source,
        initiator_account=initiator,
    )

    # When it is reported
    emitted = capture(lambda: report_tracking(outcome, event_id="e1"))

    # Then one count, with its own dimensions beside service; the event itself is counted as before
    (counted,) = named(emitted, metric)
    assert (counted.namespace, counted.value, counted.unit) == ("Pipeshare", 1, "Count")
    assert counted.dimensions == (("initiator", initiator_dimension), ("service", "pipeshare"), ("source", source))
    assert [m.dimensions for m in named(emitted, "ExecutionRecorded")] == [(("service", "pipeshare"),)]


def test_an_event_that_changes_no_attribution_counts_none() -> None:
    outcome = TrackOutcome(status="recorded", execution_arn=EXECUTION, source="unknown")

    emitted = capture(lambda: report_tracking(outcome, event_id="e1"))

    assert named(emitted, "ExecutionAttributed") == named(emitted, "AttributionChanged") == []


def test_each_consumer_evaluated_gets_its_spend_and_budget_gauges() -> None:
    # Given a budget evaluation of two consumers, one of them enforced on
    outcome = BudgetOutcome(
        status="enforced",
        subject="month",
        month="2026-12",
        actions={"STOP#a#1": "done", "STOP#b#1": "failed: throttled"},
        spend={CONSUMER: (Decimal("120.5"), Decimal("100")), OTHER: (Decimal("3"), Decimal("50"))},
    )

    # When it is reported
    emitted = capture(lambda: report_budget(outcome))

    # Then per consumer: spend and budget in USD, dimension consumer beside service; the actions counted as before
    gauges = {(m.name, m.dimension("consumer")): m.value for m in emitted if m.name.startswith("Consumer")}
    assert gauges == {
        ("ConsumerSpendUsd", CONSUMER): 120.5,
        ("ConsumerBudgetUsd", CONSUMER): 100,
        ("ConsumerSpendUsd", OTHER): 3,
        ("ConsumerBudgetUsd", OTHER): 50,
    }
    assert {m.dimension_names for m in named(emitted, "ConsumerSpendUsd")} == {frozenset({"service", "consumer"})}
    assert [(m.value, m.dimensions) for m in named(emitted, "BudgetEnforced")] == [(1, (("service", "pipeshare"),))]
    assert [m.value for m in named(emitted, "BudgetEnforcementFailed")] == [1]
