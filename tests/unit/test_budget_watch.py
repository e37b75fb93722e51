"""pipeshare.logic.budget_watch: on each change of a consumer's month-to-date spend, alert each threshold crossed once
per month and, at 100 %, enforce once (stop executions, switch shares to read-only) or, in dry run, say what would be
done."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.attribution import OwnerAlert
from pipeshare.logic.budget_watch import BudgetOutcome, on_spend_change
from pipeshare.logic.budgets import (
    ENFORCEMENT_SCHEMA,
    THRESHOLD_SCHEMA,
    BudgetPolicy,
    BudgetPolicyInvalidError,
    parse_budget_policy,
)
from pipeshare.models.errors import TransientError
from pipeshare.models.owner import ALLOW_EXECUTION, READ_ONLY, Grant
from tests.fakes import (
    FakeBudgetLedger,
    FakeBudgetSource,
    FakeEnforcementGateway,
    FakeGrantRepository,
    FakeRunningExecutions,
)

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
MONTH = "2026-05"
NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
OTHER_PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/batch-score"
FIRST_RUN = f"{PIPELINE}/execution/aaaa1111"
SECOND_RUN = f"{OTHER_PIPELINE}/execution/BBBB2222"
OTHERS_RUN = f"{PIPELINE}/execution/cccc3333"
SHARE_A = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/aaaaaaaa-0001"
SHARE_B = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/bbbbbbbb-0002"
SHARE_C = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/cccccccc-0003"
SHARE_D = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/dddddddd-0004"
SHARE_E = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/eeeeeeee-0005"
ORG = "arn:aws:organizations::111111111111:organization/o-abcdef1234"


def policy(**budget: Any) -> BudgetPolicy:
    """A policy giving CONSUMER a 100 USD monthly budget (thresholds 50, 80, 100), with `budget` fields laid over."""
    return parse_budget_policy(
        {"version": 1, "consumers": {CONSUMER: {"monthly_limit": "100", **budget}}}, source="ssm:/pipeshare/budgets"
    )


def grant(share: str, *, consumer: str = CONSUMER, pipeline: str = PIPELINE, **fields: Any) -> Grant:
    values: dict[str, Any] = {
        "pipeline_arn": pipeline,
        "consumer": consumer,
        "share_arn": share,
        "share_name": share.rsplit("/", 1)[-1],
        "association_status": "ASSOCIATED",
        "permission_name": ALLOW_EXECUTION,
        **fields,
    }
    return Grant.model_validate(values)


@dataclass
class Owner:
    """The owner account's ports, in memory."""

    budgets: FakeBudgetSource
    ledger: FakeBudgetLedger = field(default_factory=FakeBudgetLedger)
    running: FakeRunningExecutions = field(default_factory=FakeRunningExecutions)
    grants: FakeGrantRepository = field(default_factory=FakeGrantRepository)
    enforcer: FakeEnforcementGateway = field(default_factory=FakeEnforcementGateway)

    def spend_changes(self, before: str, after: str) -> BudgetOutcome:
        return on_spend_change(
            CONSUMER,
            MONTH,
            Decimal(before),
            Decimal(after),
            budgets=self.budgets,
            ledger=self.ledger,
            running=self.running,
            grants=self.grants,
            enforcer=self.enforcer,
            now=NOW,
        )

    def enforcement(self) -> OwnerAlert:
        assert list(self.ledger.enforcements) == [(MONTH, CONSUMER)]
        return self.ledger.enforcements[(MONTH, CONSUMER)]


def stopping(*, dry_run: bool = False) -> Owner:
    """A budget that stops the consumer's executions at 100 %; the consumer has two running, another consumer one."""
    return Owner(
        FakeBudgetSource(policy(enforce={"stop_executions": True}, dry_run=dry_run)),
        running=FakeRunningExecutions({CONSUMER: [SECOND_RUN, FIRST_RUN], OTHER: [OTHERS_RUN]}),
    )


def stop_key(execution: str) -> str:
    return f"stop_execution#{execution.lower()}"


def switch_key(share: str) -> str:
    return f"switch_share_to_read_only#{share}"


def nothing_recorded(owner: Owner) -> bool:
    ledger = owner.ledger
    return not (ledger.threshold_attempts or ledger.claim_attempts or ledger.enforcement_attempts)


# ------------------------------------------------------------------------------------------------- no alert


def test_no_policy_means_no_budget() -> None:
    # Given no budget policy is configured
    owner = Owner(FakeBudgetSource(None))

    # When the consumer's spend grows past any amount
    outcome = owner.spend_changes("0", "1000")

    # Then there is no budget: nothing recorded, nothing enforced
    assert (outcome.status, outcome.consumer, outcome.month) == ("no-budget", CONSUMER, MONTH)
    assert nothing_recorded(owner)
    assert owner.enforcer.calls == []


def test_policy_without_a_budget_for_the_consumer_means_no_budget() -> None:
    # Given a policy with a budget for another consumer only, and no default
    owner = Owner(
        FakeBudgetSource(parse_budget_policy({"version": 1, "consumers": {OTHER: {"monthly_limit": "1"}}}, source="t"))
    )

    # When / Then
    assert owner.spend_changes("0", "1000").status == "no-budget"
    assert nothing_recorded(owner)


def test_invalid_policy_fails_closed_and_records_nothing() -> None:
    # Given the budget policy fails validation
    error = BudgetPolicyInvalidError(
        "ssm:/pipeshare/budgets", ["consumers.222222222222.monthly_limit: Input should be greater than 0"], "f00d"
    )
    owner = Owner(FakeBudgetSource(error=error))

    # When the consumer's spend grows past any amount
    outcome = owner.spend_changes("0", "1000")

    # Then the outcome says so, with the reason; no alert, no claim, no enforcement, no query
    assert outcome.status == "policy-invalid"
    assert outcome.reason == str(error)
    assert "monthly_limit" in outcome.reason
    assert nothing_recorded(owner)
    assert owner.running.queries == []
    assert owner.enforcer.calls == []


def test_spend_below_every_threshold_is_below() -> None:
    # Given a 100 USD budget (thresholds 50, 80, 100)
    owner = Owner(FakeBudgetSource(policy(enforce={"stop_executions": True})))

    # When the spend goes from 10 to 49.99
    outcome = owner.spend_changes("10", "49.99")

    # Then no threshold is crossed
    assert (outcome.status, outcome.thresholds, outcome.actions) == ("below", [], {})
    assert nothing_recorded(owner)
    assert owner.enforcer.calls == []


# --------------------------------------------------------------------------------------------- threshold alerts


def test_crossing_50_and_80_in_one_update_writes_two_threshold_alerts() -> None:
    # Given a 100 USD budget
    owner = Owner(FakeBudgetSource(policy()))

    # When one update takes the spend from 40 to 85
    outcome = owner.spend_changes("40", "85")

    # Then both thresholds are alerted, each with its own message; no enforcement is attempted below 100 %
    assert (outcome.status, outcome.thresholds) == ("alerted", [50, 80])
    alerts = owner.ledger.thresholds
    assert sorted(alerts) == [(MONTH, CONSUMER, 50), (MONTH, CONSUMER, 80)]
    for threshold in (50, 80):
        message = alerts[(MONTH, CONSUMER, threshold)].message
        assert (message["schema"], message["threshold"], message["spend"]) == (THRESHOLD_SCHEMA, threshold, "85")
    assert owner.ledger.claim_attempts == []
    assert owner.enforcer.calls == []


def test_repeated_update_writes_no_new_alert() -> None:
    # Given the 50 and 80 alerts were written for this month
    owner = Owner(FakeBudgetSource(policy()))
    owner.spend_changes("40", "85")
    written = dict(owner.ledger.thresholds)

    # When the same update is delivered again
    outcome = owner.spend_changes("40", "85")

    # Then the ledger refuses both: no new alert
    assert outcome.thresholds == []
    assert owner.ledger.thresholds == written
    assert len(owner.ledger.threshold_attempts) == 4


# --------------------------------------------------------------------------------------------------- enforcement


def test_crossing_100_with_stop_executions_stops_the_consumers_running_executions() -> None:
    # Given a budget stopping the consumer's executions at 100 %, and two of its executions running
    owner = stopping()

    # When the spend goes from 90 to 120
    outcome = owner.spend_changes("90", "120")

    # Then both are stopped through the gateway (not the other consumer's), and the enforcement is recorded once
    assert (outcome.status, outcome.thresholds) == ("enforced", [100])
    assert owner.running.queries == [CONSUMER]
    assert sorted(owner.enforcer.stopped) == sorted([FIRST_RUN, SECOND_RUN])
    assert outcome.actions == {stop_key(FIRST_RUN): "done", stop_key(SECOND_RUN): "done"}
    assert owner.ledger.claim_attempts == [(MONTH, CONSUMER)]
    assert owner.ledger.enforcement_attempts == [(MONTH, CONSUMER)]
    alert = owner.enforcement()
    assert alert.message["schema"] == ENFORCEMENT_SCHEMA
    assert {row["target"]: row["outcome"] for row in alert.message["actions"]} == {
        FIRST_RUN: "done",
        SECOND_RUN: "done",
    }
    assert alert.subject == f"pipeshare: budget enforced on {CONSUMER} at 100%: stopped 2/2 runs"


def test_execution_that_had_already_ended_is_skipped() -> None:
    # Given one of the consumer's executions ended before it could be stopped
    owner = stopping()
    owner.enforcer.ended.add(FIRST_RUN.lower())

    # When the spend crosses 100 %
    outcome = owner.spend_changes("90", "120")

    # Then that action is reported skipped, the other done
    assert outcome.actions == {stop_key(FIRST_RUN): "skipped", stop_key(SECOND_RUN): "done"}
    assert {row["target"]: row["outcome"] for row in owner.enforcement().message["actions"]} == {
        FIRST_RUN: "skipped",
        SECOND_RUN: "done",
    }


def test_second_crossing_in_the_same_month_enforces_nothing_more() -> None:
    # Given the month's enforcement was taken by a first crossing of 100 %
    owner = stopping()
    owner.spend_changes("90", "120")
    calls = list(owner.enforcer.calls)

    # When 100 % is crossed again in the same month (the same update delivered again)
    outcome = owner.spend_changes("90", "120")

    # Then the claim is refused: no action, no second enforcement message
    assert (outcome.status, outcome.thresholds, outcome.actions) == ("alerted", [], {})
    assert owner.enforcer.calls == calls
    assert len(owner.ledger.claim_attempts) == 2
    assert owner.ledger.enforcement_attempts == [(MONTH, CONSUMER)]


def test_dry_run_calls_no_gateway_and_says_what_would_be_done() -> None:
    # Given a dry-run budget that would stop executions and switch shares
    owner = stopping(dry_run=True)
    owner.budgets.policy = policy(enforce={"stop_executions": True, "switch_to_read_only": True}, dry_run=True)
    owner.grants = FakeGrantRepository([grant(SHARE_A)])

    # When the spend crosses 100 %
    outcome = owner.spend_changes("90", "120")

    # Then nothing is called, every action is not-run, and the recorded message says DRY RUN
    assert owner.enforcer.calls == []
    assert outcome.status == "enforced"
    assert outcome.actions == {
        stop_key(FIRST_RUN): "not-run",
        stop_key(SECOND_RUN): "not-run",
        switch_key(SHARE_A): "not-run",
    }
    alert = owner.enforcement()
    assert alert.subject == (
        f"pipeshare: DRY RUN enforcement on {CONSUMER} at 100%: would stop 2 runs, make 1 share read-only"
    )
    assert alert.message["dry_run"] is True
    assert alert.attributes["dry_run"] == "true"
    assert {row["outcome"] for row in alert.message["actions"]} == {"not-run"}


def test_gateway_failure_is_reported_failed_and_still_recorded() -> None:
    # Given stopping the first execution fails
    owner = stopping()
    owner.enforcer.fail("stop_execution", TransientError("ThrottlingException: Rate exceeded"), target=FIRST_RUN)

    # When the spend crosses 100 %
    outcome = owner.spend_changes("90", "120")

    # Then that action is failed with the error, the other still done, and the enforcement is recorded
    assert outcome.status == "enforced"
    assert outcome.actions == {
        stop_key(FIRST_RUN): "failed: ThrottlingException: Rate exceeded",
        stop_key(SECOND_RUN): "done",
    }
    assert owner.enforcer.stopped == [SECOND_RUN]
    alert = owner.enforcement()
    rows = {row["target"]: (row["outcome"], row["detail"]) for row in alert.message["actions"]}
    assert rows == {FIRST_RUN: ("failed", "ThrottlingException: Rate exceeded"), SECOND_RUN: ("done", None)}
    assert alert.subject.startswith(f"pipeshare: enforcement FAILED on {CONSUMER} at 100%")


def test_switch_to_read_only_switches_the_shares_giving_the_consumer_allow_execution() -> None:
    # Given the consumer holds allow-execution through share A (its account) and B (one of its roles), read-only
    # through C, a disassociated grant through D, and another consumer holds allow-execution through E
    owner = Owner(
        FakeBudgetSource(policy(enforce={"switch_to_read_only": True})),
        grants=FakeGrantRepository(
            [
                grant(SHARE_A),
                grant(SHARE_B, consumer=f"arn:aws:iam::{CONSUMER}:role/DataScience", pipeline=OTHER_PIPELINE),
                grant(SHARE_C, pipeline=f"{PIPELINE}-v2", permission_name=READ_ONLY),
                grant(SHARE_D, pipeline=f"{PIPELINE}-v3", association_status="DISASSOCIATED"),
                grant(SHARE_E, consumer=OTHER),
            ]
        ),
    )

    # When the spend crosses 100 %
    outcome = owner.spend_changes("90", "120")

    # Then A and B are switched through the gateway, and nothing else; no running execution is looked up
    assert outcome.status == "enforced"
    assert owner.enforcer.switched == [SHARE_A, SHARE_B]
    assert outcome.actions == {switch_key(SHARE_A): "done", switch_key(SHARE_B): "done"}
    assert owner.running.queries == []
    rows = {row["target"]: row["pipelines"] for row in owner.enforcement().message["actions"]}
    assert rows == {SHARE_A: [PIPELINE], SHARE_B: [OTHER_PIPELINE]}


def test_enforcement_notes_a_share_granting_allow_execution_to_an_organization() -> None:
    # Given the consumer holds allow-execution through share A, and share E grants it to the whole organization
    owner = Owner(
        FakeBudgetSource(policy(enforce={"switch_to_read_only": True})),
        grants=FakeGrantRepository([grant(SHARE_A), grant(SHARE_E, consumer=ORG, pipeline=OTHER_PIPELINE)]),
    )

    # When the spend crosses 100 %
    owner.spend_changes("90", "120")

    # Then A is switched, and the message notes the organization's share, which is not switched
    assert owner.enforcer.switched == [SHARE_A]
    notes = owner.enforcement().message["notes"]
    assert any(SHARE_E in note and ORG in note for note in notes)


def test_enforcement_with_nothing_to_do_is_still_reported() -> None:
    # Given a budget stopping executions at 100 %, and no running execution of the consumer
    owner = Owner(FakeBudgetSource(policy(enforce={"stop_executions": True})))

    # When the spend crosses 100 %
    outcome = owner.spend_changes("90", "120")

    # Then the threshold alert promises an enforcement message, and that message says there was nothing to do
    statement = owner.ledger.thresholds[(MONTH, CONSUMER, 100)].message["enforcement"]["statement"]
    assert "budget-enforcement message reports what was done" in statement
    assert outcome.status == "enforced"
    alert = owner.enforcement()
    assert alert.message["summary"] == "nothing to do"
    assert f"No running execution of consumer {CONSUMER} to stop." in alert.message["notes"]


def test_switch_to_read_only_finds_the_allow_execution_share_of_a_pipeline_held_through_two_shares() -> None:
    # Given the consumer holds the same pipeline read-only through share C and with allow-execution through share A
    # (the inventory keeps one grant per share: the read-only one cannot hide the other)
    grants = FakeGrantRepository([grant(SHARE_A), grant(SHARE_C, permission_name=READ_ONLY)])
    assert len(grants.grants(PIPELINE)) == 2
    owner = Owner(FakeBudgetSource(policy(enforce={"switch_to_read_only": True})), grants=grants)

    # When the spend crosses 100 %
    outcome = owner.spend_changes("90", "120")

    # Then share A is switched, share C (already read-only) is not
    assert owner.enforcer.switched == [SHARE_A]
    assert outcome.actions == {switch_key(SHARE_A): "done"}
