"""pipeshare.logic.budget_watch: budgets that bind. Thresholds are level-triggered (every threshold reached and not yet
in the ledger is alerted once, several at once in one message), on spend changes, policy changes and daily; while a
consumer is over budget, enforcement holds all month on the offender only (every run it starts or retries is stopped,
once per attempt; it is taken off its shares once per share); a dry run claims nothing; inferred spend and runs are
not enforced on unless count_inferred; the unattributed spend of a pipeline has its own alert-only line."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.budget_messages import ENFORCEMENT_SCHEMA, THRESHOLD_SCHEMA, UNATTRIBUTED_SCHEMA
from pipeshare.logic.budget_watch import (
    BudgetOutcome,
    BudgetPorts,
    evaluate_month,
    on_execution_state,
    on_line_change,
    on_spend_change,
    on_unpriced_estimate,
)
from pipeshare.logic.budgets import parse_budget_policy
from pipeshare.models.budgets import BudgetPolicy, ConsumerSpend, LineSpend, RunView
from pipeshare.models.errors import BudgetPolicyInvalidError, EnforcementIncompleteError, TransientError
from pipeshare.models.owner import ALLOW_EXECUTION, READ_ONLY, Grant
from tests.fakes import (
    FakeBudgetLedger,
    FakeBudgetSource,
    FakeEnforcementGateway,
    FakeGrantRepository,
    FakeRunningExecutions,
    FakeSpendSource,
)

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
MONTH = "2026-05"
NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
OTHER_PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/batch-score"
SHARE_A = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/aaaaaaaa-0001"
SHARE_B = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/bbbbbbbb-0002"
SHARE_C = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/cccccccc-0003"
SHARE_E = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/eeeeeeee-0005"
ORG = "arn:aws:organizations::111111111111:organization/o-abcdef1234"


def policy(**budget: Any) -> BudgetPolicy:
    """A policy giving CONSUMER a 100 USD monthly budget (thresholds 50, 80, 100), with `budget` fields laid over."""
    return parse_budget_policy(
        {"version": 1, "consumers": {CONSUMER: {"monthly_limit": "100", **budget}}}, source="ssm:/pipeshare/budgets"
    )


def spend(total: str, confirmed: str | None = None, *, consumer: str = CONSUMER, month: str = MONTH) -> ConsumerSpend:
    """Month-to-date spend; confirmed defaults to all of it (every run attributed by evidence)."""
    return ConsumerSpend(
        consumer=consumer, month=month, total=Decimal(total), confirmed_total=Decimal(confirmed or total)
    )


def run(n: int, *, source: str = "forwarded", consumer: str = CONSUMER, attempt: int = 1, **fields: Any) -> RunView:
    values: dict[str, Any] = {
        "execution_arn": f"{PIPELINE}/execution/run{n}",
        "pipeline_arn": PIPELINE,
        "attempt": attempt,
        "attribution_source": source,
        "initiator_account": consumer,
        "open_status": "Executing",
        **fields,
    }
    return RunView.model_validate(values)


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
    spend: FakeSpendSource = field(default_factory=FakeSpendSource)
    runs: FakeRunningExecutions = field(default_factory=FakeRunningExecutions)
    grants: FakeGrantRepository = field(default_factory=FakeGrantRepository)
    enforcer: FakeEnforcementGateway = field(default_factory=FakeEnforcementGateway)

    @property
    def ports(self) -> BudgetPorts:
        return BudgetPorts(self.budgets, self.ledger, self.spend, self.runs, self.grants, self.enforcer)

    def spend_changes(self, total: str, confirmed: str | None = None, *, at: datetime = NOW) -> BudgetOutcome:
        self.spend.set(spend(total, confirmed))
        return on_spend_change(spend(total, confirmed), ports=self.ports, now=at)

    def daily(self, *, at: datetime = NOW, fresh: bool = False) -> BudgetOutcome:
        return evaluate_month(MONTH, ports=self.ports, now=at, fresh=fresh)

    def running(self, state: RunView, previous: RunView | None = None, *, at: datetime = NOW) -> BudgetOutcome:
        self.runs.add(state)
        return on_execution_state(state, previous, ports=self.ports, now=at)

    def messages(self, schema: str) -> list[dict[str, Any]]:
        return [a.message for a in self.ledger.messages(schema)]

    def subjects(self, schema: str = "") -> list[str]:
        return [a.subject for a in self.ledger.messages(schema)]


def owner(**budget: Any) -> Owner:
    return Owner(FakeBudgetSource(policy(**budget)))


def stop_key(state: RunView, *, dry_run: bool = False) -> str:
    return f"{'DRYRUN#' if dry_run else ''}STOP#{state.execution_arn.lower()}#{state.attempt}"


# ------------------------------------------------------------------------------------------------------ no budget


def test_no_policy_means_no_budget_and_no_read() -> None:
    # Given no budget policy is configured
    o = Owner(FakeBudgetSource(None))

    # When the consumer's spend grows past any amount, and the daily run comes
    outcome = o.spend_changes("1000")
    daily = o.daily()

    # Then nothing is read, recorded or enforced
    assert (outcome.status, daily.status) == ("no-budget", "no-budget")
    assert (o.ledger.reads, o.ledger.writes, o.spend.reads, o.enforcer.calls) == ([], [], [], [])


def test_policy_without_a_budget_for_the_consumer_means_no_budget() -> None:
    # Given a policy with a budget for another consumer only, and no default
    o = Owner(
        FakeBudgetSource(parse_budget_policy({"version": 1, "consumers": {OTHER: {"monthly_limit": "1"}}}, source="t"))
    )

    # When / Then
    assert o.spend_changes("1000").status == "no-budget"
    assert o.ledger.writes == []


def test_invalid_policy_fails_closed_and_records_nothing() -> None:
    # Given the budget policy fails validation, and a consumer running over any budget
    error = BudgetPolicyInvalidError("ssm:/pipeshare/budgets", ["consumers.x: bad"], "f00d")
    o = Owner(FakeBudgetSource(error=error))
    o.runs.add(run(1))

    # When its spend changes, its run is seen, and the daily run comes
    outcomes = [o.spend_changes("1000"), o.running(run(1)), o.daily()]

    # Then each says the policy is invalid, with the reason; nothing is alerted, read, stopped or removed
    assert {x.status for x in outcomes} == {"policy-invalid"}
    assert all(x.reason == str(error) for x in outcomes)
    assert (o.ledger.writes, o.enforcer.calls, o.runs.queries) == ([], [], [])


def test_spend_below_every_threshold_reads_nothing() -> None:
    # Given a 100 USD budget (thresholds 50, 80, 100)
    o = owner(enforce={"stop_executions": True})

    # When the spend reaches 49.99
    outcome = o.spend_changes("49.99")

    # Then nothing is due: not even the ledger is read
    assert (outcome.status, outcome.thresholds, outcome.actions) == ("below", [], {})
    assert (o.ledger.reads, o.ledger.writes) == ([], [])


# --------------------------------------------------------------------------------------------- threshold alerts


def test_reaching_50_and_80_at_once_writes_one_message_naming_80() -> None:
    # Given a 100 USD budget, and the consumer's spend on two pipelines
    o = owner()
    o.spend.pipelines[(MONTH, CONSUMER)] = {PIPELINE: Decimal("60.004"), OTHER_PIPELINE: Decimal("25")}

    # When one update takes the spend to 85.004
    outcome = o.spend_changes("85.004")

    # Then one transaction records both thresholds with ONE message naming 80 and listing 50
    assert (outcome.status, outcome.thresholds) == ("alerted", [f"{CONSUMER}:50", f"{CONSUMER}:80"])
    [write] = o.ledger.writes
    assert (write.keys, write.written) == (["THRESHOLD#0050", "THRESHOLD#0080"], True)
    [message] = o.messages(THRESHOLD_SCHEMA)
    assert (message["threshold"], message["thresholds"], message["also_reached"]) == (80, [50, 80], [50])
    # amounts rounded for people in the message, exact on the ledger item
    assert message["spend"]["total"] == "85.00"
    assert write.facts["spend_total"] == Decimal("85.004")
    # the consumer's top pipelines, from one query of its per-pipeline spend
    assert [(p["pipeline"], p["spend"]) for p in message["top_pipelines"]] == [
        ("churn-train", "60.00"),
        ("batch-score", "25.00"),
    ]
    assert o.spend.reads == [("pipelines", MONTH, CONSUMER)]
    assert o.subjects() == [
        f"pipeshare: consumer {CONSUMER} at 80% of {MONTH} budget (also 50%): est. USD 85.00 of 100.00"
    ]


def test_the_same_level_again_writes_nothing_new() -> None:
    # Given 50 and 80 were alerted this month
    o = owner()
    o.spend_changes("85")

    # When the spend changes but stays below 100 (and the same update comes again)
    outcomes = [o.spend_changes("85"), o.spend_changes("99.99")]

    # Then no new message, and no write attempted
    assert [x.thresholds for x in outcomes] == [[], []]
    assert len(o.ledger.writes) == 1


def test_a_threshold_missed_by_a_lost_update_is_alerted_at_the_next_change() -> None:
    # Given 50 was alerted, then the update that reached 80 was lost (no stream record reached the watcher)
    o = owner()
    o.spend_changes("55")

    # When the next update arrives, the spend now at 81
    outcome = o.spend_changes("81")

    # Then 80 is alerted now (level, not crossing): the spend went from 81 to 81 as far as this update knows
    assert outcome.thresholds == [f"{CONSUMER}:80"]
    assert [m["thresholds"] for m in o.messages(THRESHOLD_SCHEMA)] == [[50], [80]]


def test_another_writer_first_alerts_the_rest_without_a_duplicate() -> None:
    # Given another invocation records threshold 50 (with its message) just before this one writes 50 and 80
    o = owner()
    o.ledger.interleave(lambda: o.ledger.record(MONTH, CONSUMER, ["THRESHOLD#0050"], None, at=NOW))

    # When the spend reaches 85
    outcome = o.spend_changes("85")

    # Then the first transaction is refused, the ledger read again, and 80 alone is alerted
    assert [(w.keys, w.written) for w in o.ledger.writes] == [
        (["THRESHOLD#0050"], True),
        (["THRESHOLD#0050", "THRESHOLD#0080"], False),
        (["THRESHOLD#0080"], True),
    ]
    assert outcome.thresholds == [f"{CONSUMER}:80"]


def test_a_limit_lowered_below_the_spend_alerts_at_once_on_the_policy_change() -> None:
    # Given a consumer at 60 USD of a 200 USD budget (nothing due), and the month's spend as the table holds it
    o = Owner(
        FakeBudgetSource(
            parse_budget_policy({"version": 1, "consumers": {CONSUMER: {"monthly_limit": "200"}}}, source="t")
        )
    )
    o.spend_changes("60")
    o.spend.set(spend("60"), {PIPELINE: Decimal("60")})
    assert o.ledger.writes == []

    # When the owner lowers the limit to 100 and the policy-change evaluation runs (the policy read fresh)
    o.budgets.policy = policy()
    outcome = o.daily(fresh=True)

    # Then 50 is alerted at once, from the month's spend items (no extra query for the pipelines)
    assert outcome.thresholds == [f"{CONSUMER}:50"]
    assert o.budgets.fresh_loads == 1
    [message] = o.messages(THRESHOLD_SCHEMA)
    assert message["top_pipelines"][0]["pipeline_arn"] == PIPELINE
    assert ("pipelines", MONTH, CONSUMER) not in o.spend.reads


def test_a_budget_added_mid_month_alerts_at_once() -> None:
    # Given a consumer without a budget, already at 95 USD this month
    o = Owner(FakeBudgetSource(parse_budget_policy({"version": 1}, source="t")))
    assert o.spend_changes("95").status == "no-budget"

    # When a 100 USD budget is added and evaluated
    o.budgets.policy = policy()
    outcome = o.daily(fresh=True)

    # Then 50 and 80 are alerted in one message
    assert outcome.thresholds == [f"{CONSUMER}:50", f"{CONSUMER}:80"]
    assert [m["threshold"] for m in o.messages(THRESHOLD_SCHEMA)] == [80]


def test_an_invalid_policy_window_is_caught_up_once_valid_again() -> None:
    # Given the policy is invalid while the consumer's spend reaches 90
    o = owner()
    valid = o.budgets.policy
    o.budgets.error = BudgetPolicyInvalidError("ssm:/pipeshare/budgets", ["version: bad"], "f00d")
    assert o.spend_changes("90").status == "policy-invalid"

    # When it is fixed and the policy-change evaluation runs
    o.budgets.error, o.budgets.policy = None, valid
    outcome = o.daily(fresh=True)

    # Then what was due meanwhile is alerted
    assert outcome.thresholds == [f"{CONSUMER}:50", f"{CONSUMER}:80"]


def test_daily_run_evaluates_every_consumer_and_line_of_the_month_once() -> None:
    # Given two consumers with a default budget and an unattributed line, from one query of the month
    o = Owner(
        FakeBudgetSource(
            parse_budget_policy(
                {"version": 1, "default": {"monthly_limit": "10"}, "unattributed": {"default": {"monthly_limit": "4"}}},
                source="t",
            )
        )
    )
    o.spend.set(spend("5", consumer=CONSUMER))
    o.spend.set(spend("2", consumer=OTHER))
    o.spend.set_line(LineSpend(pipeline_arn=PIPELINE, month=MONTH, total=Decimal("3.2")))

    # When the daily run comes, twice
    first, second = o.daily(), o.daily()

    # Then CONSUMER's 50 % and the line's 50 and 80 % are alerted once; OTHER (20 %) needs no ledger read
    assert sorted(first.thresholds) == sorted(
        [f"{CONSUMER}:50", f"UNATTRIBUTED#{PIPELINE.lower()}:50", f"UNATTRIBUTED#{PIPELINE.lower()}:80"]
    )
    assert (first.evaluated, second.thresholds) == (3, [])
    assert [r for r in o.spend.reads if r[0] == "month"] == [("month", MONTH), ("month", MONTH)]
    assert (MONTH, OTHER) not in o.ledger.reads


# ---------------------------------------------------------------------------------------------- unattributed line


def test_unattributed_spend_alerts_its_pipeline_line_by_name_and_never_enforces() -> None:
    # Given a line for churn-train named by its pipeline name, and enforcement on for every consumer
    o = Owner(
        FakeBudgetSource(
            parse_budget_policy(
                {
                    "version": 1,
                    "default": {"monthly_limit": "1", "enforce": {"stop_executions": True}},
                    "unattributed": {"pipelines": {"churn-train": {"monthly_limit": "10", "thresholds": [25, 100]}}},
                },
                source="t",
            )
        )
    )
    line = LineSpend(pipeline_arn=PIPELINE, month=MONTH, total=Decimal("12.5"))

    # When the pipeline's unattributed spend changes to 12.50
    outcome = on_line_change(line, ports=o.ports, now=NOW)

    # Then 25 and 100 are alerted in one message about the pipeline; nothing is stopped or looked up
    assert outcome.thresholds == [f"UNATTRIBUTED#{PIPELINE.lower()}:25", f"UNATTRIBUTED#{PIPELINE.lower()}:100"]
    [message] = o.messages(UNATTRIBUTED_SCHEMA)
    assert (message["pipeline_name"], message["threshold"], message["line"]["matched_by"]) == (
        "churn-train",
        100,
        "name",
    )
    assert (o.enforcer.calls, o.runs.queries) == ([], [])


def test_a_pipeline_without_a_line_is_not_alerted() -> None:
    # Given lines for another pipeline only, no default
    o = Owner(
        FakeBudgetSource(
            parse_budget_policy(
                {"version": 1, "unattributed": {"pipelines": {"batch-score": {"monthly_limit": "1"}}}}, source="t"
            )
        )
    )

    # When / Then
    assert (
        on_line_change(
            LineSpend(pipeline_arn=PIPELINE, month=MONTH, total=Decimal("100")), ports=o.ports, now=NOW
        ).status
        == "below"
    )
    assert o.ledger.writes == []


# --------------------------------------------------------------------------------------------------- enforcement


def stopping(**budget: Any) -> Owner:
    """A budget stopping the consumer's runs at 100 %; it runs a forwarded, an owner-copy, an inferred and an
    ambiguous run; another consumer runs one."""
    o = owner(enforce={"stop_executions": True}, **budget)
    for n, source in ((1, "forwarded"), (2, "cloudtrail-owner-copy"), (3, "inferred")):
        o.runs.add(run(n, source=source))
    o.runs.running[CONSUMER].append(run(4, source="ambiguous"))
    o.runs.add(run(5, consumer=OTHER))
    return o


def test_over_budget_stops_the_consumers_runs_attributed_by_evidence_one_message_each() -> None:
    # Given a consumer running runs of every attribution, and another consumer's run
    o = stopping()

    # When its spend reaches its limit
    outcome = o.spend_changes("100")

    # Then its forwarded and owner-copy runs are stopped, not the inferred or ambiguous ones, not the other's
    assert o.enforcer.stopped == [run(1).execution_arn, run(2).execution_arn]
    assert outcome.status == "enforced"
    assert outcome.actions == {stop_key(run(1)): "done", stop_key(run(2)): "done"}
    stops = o.messages(ENFORCEMENT_SCHEMA)
    assert [(m["action"], m["outcome"], m["execution"]["execution_arn"]) for m in stops] == [
        ("stop_execution", "done", run(1).execution_arn),
        ("stop_execution", "done", run(2).execution_arn),
    ]
    assert o.subjects(ENFORCEMENT_SCHEMA)[0] == f"pipeshare: budget enforced on {CONSUMER}: stopped run of churn-train"
    assert o.runs.queries == [CONSUMER]


def test_enforcement_counts_the_confirmed_spend_unless_count_inferred() -> None:
    # Given a consumer at 150 USD, of which 90 attributed by evidence
    o = stopping()

    # When its spend changes
    outcome = o.spend_changes("150", confirmed="90")

    # Then every threshold is alerted (on all its spend), but nothing is enforced: the confirmed part is below 100
    assert outcome.thresholds == [f"{CONSUMER}:50", f"{CONSUMER}:80", f"{CONSUMER}:100"]
    assert o.enforcer.calls == []
    message = o.messages(THRESHOLD_SCHEMA)[0]
    assert (message["spend"]["confirmed"], message["spend"]["inferred"]) == ("90.00", "60.00")
    assert message["enforcement"]["applies"] is False


def test_count_inferred_enforces_on_all_spend_and_inferred_runs_too() -> None:
    # Given the same consumer with count_inferred
    o = stopping(count_inferred=True)

    # When its spend changes
    o.spend_changes("150", confirmed="90")

    # Then its inferred run is stopped too (ambiguous never)
    assert o.enforcer.stopped == [run(n).execution_arn for n in (1, 2, 3)]


def test_enforcement_holds_all_month_every_new_start_and_retry_is_stopped_once() -> None:
    # Given a consumer over budget whose runs were stopped on the 15th
    o = stopping()
    o.spend_changes("120")
    messages = len(o.ledger.alerts)

    # When it starts a new run the next day, its STATE is seen running (twice: two status events)
    tomorrow = NOW + timedelta(days=1)
    new_run = run(9)
    first = o.running(new_run, at=tomorrow)
    again = o.running(new_run, new_run, at=tomorrow)
    # and it retries the stopped run 1 (attempt 2) the day after: it runs again
    o.enforcer.ended.discard(run(1).execution_arn.lower())
    retried = o.running(run(1, attempt=2), run(1), at=tomorrow + timedelta(days=1))

    # Then each attempt is stopped once, with one message per stop
    assert first.actions == {stop_key(new_run): "done"}
    assert again.actions == {}
    assert retried.actions == {stop_key(run(1, attempt=2)): "done"}
    assert o.enforcer.stopped[-2:] == [new_run.execution_arn, run(1).execution_arn]
    new_messages = o.ledger.alerts[messages:]
    assert [(m.message["execution"]["execution_arn"], m.message["execution"]["attempt"]) for *_, m in new_messages] == [
        (new_run.execution_arn, 1),
        (run(1).execution_arn, 2),
    ]
    assert o.subjects(ENFORCEMENT_SCHEMA)[-1].endswith("stopped run of churn-train (attempt 2)")


def test_a_run_that_had_already_ended_is_neither_recorded_nor_announced() -> None:
    # Given the consumer's forwarded run ended just before it could be stopped
    o = stopping()
    o.enforcer.ended.add(run(1).execution_arn.lower())

    # When it goes over budget
    outcome = o.spend_changes("100")

    # Then that run is skipped: no ledger key, no message; the other is stopped
    assert outcome.actions[stop_key(run(1))] == "skipped"
    assert [m["execution"]["execution_arn"] for m in o.messages(ENFORCEMENT_SCHEMA)] == [run(2).execution_arn]


def test_the_owners_own_runs_ambiguous_and_unknown_ones_are_never_stopped() -> None:
    # Given a consumer over budget, and runs seen running: its own? no: the owner's, an ambiguous one, an unknown one
    o = stopping(count_inferred=True)
    o.spend.set(spend("500"))
    runs = [run(7, source="owner", consumer=OWNER), run(8, source="ambiguous"), run(9, source="unknown")]

    # When each is seen running
    outcomes = [o.running(r) for r in runs]

    # Then none is stopped
    assert [x.status for x in outcomes] == ["ignored", "ignored", "ignored"]
    assert o.enforcer.calls == []


def test_a_past_months_late_update_alerts_and_enforces_nothing() -> None:
    # Given it is June; April's spend item changes (a late attribution) to over the budget
    o = stopping()
    late = ConsumerSpend(consumer=CONSUMER, month="2026-04", total=Decimal("120"), confirmed_total=Decimal("120"))

    # When the change is seen
    outcome = on_spend_change(late, ports=o.ports, now=datetime(2026, 6, 2, tzinfo=UTC))

    # Then April's thresholds are alerted under April; nothing is stopped
    assert outcome.thresholds == [f"{CONSUMER}:50", f"{CONSUMER}:80", f"{CONSUMER}:100"]
    assert o.ledger.writes[0].month == "2026-04"
    assert o.enforcer.calls == []


def test_dry_run_stops_nothing_reports_once_and_real_enforcement_still_happens_the_same_month() -> None:
    # Given a dry-run budget and a consumer over it
    o = stopping(dry_run=True)

    # When its spend changes twice
    o.spend_changes("120")
    o.spend_changes("121")

    # Then nothing is stopped; one DRY RUN message per run that would be stopped, under the dry run's own keys
    assert o.enforcer.calls == []
    dry = o.messages(ENFORCEMENT_SCHEMA)
    assert [(m["dry_run"], m["outcome"]) for m in dry] == [(True, "not-run"), (True, "not-run")]
    assert all(
        s.startswith("pipeshare: DRY RUN: would stop run of churn-train by") for s in o.subjects(ENFORCEMENT_SCHEMA)
    )
    assert stop_key(run(1), dry_run=True) in o.ledger.keys[(MONTH, CONSUMER)]

    # When the owner turns dry_run off the same month, and the spend changes again
    o.budgets.policy = policy(enforce={"stop_executions": True})
    outcome = o.spend_changes("122")

    # Then the runs are really stopped now, each reported once more (for real)
    assert o.enforcer.stopped == [run(1).execution_arn, run(2).execution_arn]
    assert outcome.actions == {stop_key(run(1)): "done", stop_key(run(2)): "done"}


def test_a_failed_stop_is_reported_once_and_tried_again() -> None:
    # Given stopping the forwarded run fails (throttled)
    o = stopping()
    o.enforcer.fail("stop_execution", TransientError("ThrottlingException: Rate exceeded"), target=run(1).execution_arn)

    # When it goes over budget, twice (the retry)
    with pytest.raises(EnforcementIncompleteError) as first:
        o.spend_changes("100")
    with pytest.raises(EnforcementIncompleteError):
        o.spend_changes("100")

    # Then the other run is stopped once, the failure reported once, and the invocation fails so Lambda retries it
    assert first.value.outcome.actions[stop_key(run(1))].startswith("failed: ThrottlingException")
    failed = [m for m in o.messages(ENFORCEMENT_SCHEMA) if m["outcome"] == "failed"]
    assert len(failed) == 1
    assert "ThrottlingException" in failed[0]["detail"]

    # When SageMaker answers again
    o.enforcer.heal()
    outcome = o.spend_changes("100")

    # Then the run is stopped and announced
    assert outcome.actions == {stop_key(run(1)): "done"}
    assert o.messages(ENFORCEMENT_SCHEMA)[-1]["outcome"] == "done"


# ---------------------------------------------------------------------------------------- only the offender's shares


def removing(**enforce: Any) -> Owner:
    """The consumer holds allow-execution through shares A (two pipelines) and B, read-only through C; another
    consumer holds allow-execution through share A too, and E; the organization holds share E."""
    o = owner(enforce={"remove_from_share": True, **enforce})
    o.grants = FakeGrantRepository(
        [
            grant(SHARE_A),
            grant(SHARE_A, pipeline=OTHER_PIPELINE),
            grant(SHARE_B, pipeline=OTHER_PIPELINE),
            grant(SHARE_C, pipeline=f"{PIPELINE}-v2", permission_name=READ_ONLY),
            grant(SHARE_A, consumer=OTHER),
            grant(SHARE_E, consumer=OTHER),
            grant(SHARE_E, consumer=ORG, pipeline=f"{PIPELINE}-v3"),
        ]
    )
    return o


def test_remove_from_share_takes_only_the_offender_off_its_allow_execution_shares_once_a_month() -> None:
    # Given the shares above
    o = removing()

    # When the consumer goes over budget, and its spend changes again
    o.spend_changes("100")
    o.spend_changes("130")

    # Then the consumer alone is removed from A and B, once each (the other consumer stays on A and E)
    assert o.enforcer.removed == [(SHARE_A, CONSUMER, MONTH), (SHARE_B, CONSUMER, MONTH)]
    removals = [m for m in o.messages(ENFORCEMENT_SCHEMA) if m["action"] == "remove_from_share"]
    assert [(m["share"]["share_arn"], m["share"]["pipelines"], m["read_only"]) for m in removals] == [
        (SHARE_A, sorted([PIPELINE, OTHER_PIPELINE]), None),
        (SHARE_B, [OTHER_PIPELINE], None),
    ]
    assert all("only this consumer" in m["share"]["other_principals"] for m in removals)
    # and the organization's share E, which one account cannot be taken off, is pointed out once
    [note] = [m for m in o.messages(ENFORCEMENT_SCHEMA) if m["action"] == "cannot_remove_from_share"]
    assert (note["share"]["share_arn"], note["share"]["principals"]) == (SHARE_E, [ORG])


def test_downgrade_gives_the_pipelines_back_read_only_in_one_call() -> None:
    # Given removal with downgrade_to_read_only
    o = removing(downgrade_to_read_only=True)

    # When the consumer goes over budget
    o.spend_changes("100")

    # Then one read-only grant for every pipeline it lost, named in each removal's message
    assert [c for c in o.enforcer.calls if c[0] == "grant_read_only"] == [
        ("grant_read_only", CONSUMER, ",".join(sorted([OTHER_PIPELINE, PIPELINE])), MONTH)
    ]
    removals = [m for m in o.messages(ENFORCEMENT_SCHEMA) if m["action"] == "remove_from_share"]
    assert {m["read_only"]["outcome"] for m in removals} == {"done"}
    assert all(s.endswith(", now read-only") for s in o.subjects(ENFORCEMENT_SCHEMA) if "removed from share" in s)


def test_the_deprecated_switch_to_read_only_means_remove_and_downgrade_with_a_note() -> None:
    # Given the old option
    o = removing()
    o.budgets.policy = policy(enforce={"switch_to_read_only": True})

    # When the consumer goes over budget
    o.spend_changes("100")

    # Then it is removed and given read-only access (not the whole share switched), and the message says why
    assert [c[0] for c in o.enforcer.calls] == ["remove_principal", "remove_principal", "grant_read_only"]
    assert all(any("deprecated" in n for n in m["notes"]) for m in o.messages(ENFORCEMENT_SCHEMA))


def test_a_failed_read_only_grant_is_reported_in_the_removal_and_tried_again() -> None:
    # Given the read-only grant fails once
    o = removing(downgrade_to_read_only=True)
    o.enforcer.fail("grant_read_only", TransientError("ThrottlingException"))

    # When the consumer goes over budget
    with pytest.raises(EnforcementIncompleteError):
        o.spend_changes("100")

    # Then the removals are done and announced, saying the read-only grant failed
    first = [m for m in o.messages(ENFORCEMENT_SCHEMA) if m["action"] == "remove_from_share"]
    assert {(m["outcome"], m["read_only"]["outcome"]) for m in first} == {("done", "failed")}

    # When the next trigger comes and RAM answers
    o.enforcer.heal()
    o.spend_changes("101")

    # Then the consumer is not removed again, it gets its read-only share, and that is announced
    assert len(o.enforcer.removed) == 2
    assert o.enforcer.read_only[CONSUMER] == {PIPELINE, OTHER_PIPELINE}
    again = [m for m in o.messages(ENFORCEMENT_SCHEMA) if m["action"] == "remove_from_share"][len(first) :]
    assert {m["read_only"]["outcome"] for m in again} == {"done"}


def test_dry_run_removal_calls_nothing() -> None:
    # Given a dry run
    o = removing(downgrade_to_read_only=True)
    o.budgets.policy = policy(enforce={"remove_from_share": True, "downgrade_to_read_only": True}, dry_run=True)

    # When the consumer goes over budget
    o.spend_changes("100")

    # Then no RAM call; one DRY RUN message per share
    assert o.enforcer.calls == []
    subjects = [s for s in o.subjects(ENFORCEMENT_SCHEMA) if "would remove" in s]
    assert subjects == [
        f"pipeshare: DRY RUN: would remove {CONSUMER} from share aaaaaaaa-0001, give read-only",
        f"pipeshare: DRY RUN: would remove {CONSUMER} from share bbbbbbbb-0002, give read-only",
    ]


def test_a_share_granted_to_an_iam_role_of_the_consumer_is_pointed_out_not_removed() -> None:
    # Given the consumer holds allow-execution through a role on share B only
    o = owner(enforce={"remove_from_share": True})
    o.grants = FakeGrantRepository([grant(SHARE_B, consumer=f"arn:aws:iam::{CONSUMER}:role/DataScience")])

    # When it goes over budget
    o.spend_changes("100")

    # Then nothing is removed; the owner is told once to remove the role by hand
    assert o.enforcer.calls == []
    [note] = o.messages(ENFORCEMENT_SCHEMA)
    assert (note["action"], note["share"]["principal_kind"]) == ("cannot_remove_from_share", "iam-principal")


# -------------------------------------------------------------------------------------- worst case and unpriced


def test_a_new_run_whose_worst_case_exceeds_what_is_left_is_stopped() -> None:
    # Given 70 USD spent of 100, and stop_when_worst_case_exceeds_remaining
    o = owner(enforce={"stop_when_worst_case_exceeds_remaining": True})
    o.spend.set(spend("70"))
    costly, cheap = (
        run(1, worst_case_usd=Decimal("30.01"), worst_case_complete=True),
        run(2, worst_case_usd=Decimal("30")),
    )

    # When each new run is seen running
    stopped, allowed = o.running(costly), o.running(cheap)

    # Then the one that could exceed the remaining 30 USD is stopped, and says so
    assert (stopped.actions, allowed.actions) == ({stop_key(costly): "done"}, {})
    [message] = o.messages(ENFORCEMENT_SCHEMA)
    assert (message["reason"], message["worst_case"]) == (
        "worst-case",
        {"usd": "30.01", "complete": True, "remaining": "30.00"},
    )
    assert o.subjects() == [
        f"pipeshare: budget on {CONSUMER}: stopped run of churn-train: worst case USD 30.01 > 30.00 left"
    ]


def test_the_worst_case_rule_judges_a_run_when_it_is_admitted_not_later() -> None:
    # Given a run admitted while 30 USD were left, its own cost now counted in the spend
    o = owner(enforce={"stop_when_worst_case_exceeds_remaining": True})
    o.spend.set(spend("90"))
    state = run(1, worst_case_usd=Decimal("25"))

    # When a later status change of the same attempt is seen
    outcome = o.running(state, previous=state)

    # Then it is not stopped for its worst case
    assert outcome.actions == {}


def test_a_worst_case_recorded_after_the_attribution_is_still_judged() -> None:
    # Given a run seen running and attributed before its worst case was known, 70 USD spent of 100
    o = owner(enforce={"stop_when_worst_case_exceeds_remaining": True})
    o.spend.set(spend("70"))
    before = run(1)
    assert o.running(before).actions == {}

    # When the tracker records its worst case (40 USD) on the same attempt
    outcome = o.running(run(1, worst_case_usd=Decimal("40")), previous=before)

    # Then it is judged now, and stopped
    assert outcome.actions == {stop_key(before): "done"}


def test_an_unpriced_run_of_a_consumer_at_risk_is_stopped() -> None:
    # Given `unpriced: stop`, the consumer at 50 USD (its first threshold), its run running
    o = owner(unpriced="stop")
    o.spend.set(spend("50"))
    o.runs.add(run(1))

    # When the run's estimate shows instance types nobody could price
    outcome = on_unpriced_estimate(run(1).execution_arn.lower(), ["ml.p5.48xlarge"], ports=o.ports, now=NOW)

    # Then it is stopped, and the message names the types
    assert outcome.actions == {stop_key(run(1)): "done"}
    [message] = o.messages(ENFORCEMENT_SCHEMA)
    assert (message["reason"], message["unpriced_instance_types"]) == ("unpriced", ["ml.p5.48xlarge"])


@pytest.mark.parametrize(
    ("budget", "total"), [({"unpriced": "stop"}, "49.99"), ({"unpriced": "alert"}, "99")], ids=["not-at-risk", "alert"]
)
def test_an_unpriced_run_is_not_stopped_below_risk_or_with_unpriced_alert(budget: dict[str, Any], total: str) -> None:
    # Given the consumer below its first threshold with `unpriced: stop`, or at 99 % with `unpriced: alert`
    o = owner(**budget)
    o.spend.set(spend(total))
    o.runs.add(run(1))

    # When / Then its unpriced run goes on
    on_unpriced_estimate(run(1).execution_arn.lower(), ["ml.x"], ports=o.ports, now=NOW)
    assert o.enforcer.calls == []


def test_an_unpriced_estimate_of_a_run_that_ended_is_ignored() -> None:
    # Given the run ended
    o = owner(unpriced="stop")
    o.spend.set(spend("90"))
    o.runs.add(run(1, open_status=None), running=False)

    # When / Then
    assert on_unpriced_estimate(run(1).execution_arn.lower(), ["ml.x"], ports=o.ports, now=NOW).status == "ignored"
    assert o.enforcer.calls == []


# ---------------------------------------------------------------------------------------- spend against budget


def test_each_evaluated_consumer_reports_its_spend_and_limit_for_the_dashboard() -> None:
    # Given two consumers with the default 10 USD budget, one below every threshold
    o = Owner(FakeBudgetSource(parse_budget_policy({"version": 1, "default": {"monthly_limit": "10"}}, source="t")))
    o.spend.set(spend("5", consumer=CONSUMER))
    o.spend.set(spend("2", consumer=OTHER))

    # When the daily run evaluates the month, and a spend change evaluates one consumer
    daily = o.daily()
    change = o.spend_changes("6.5")

    # Then each outcome carries every consumer it evaluated, below a threshold or not: spend and limit
    assert daily.spend == {CONSUMER: (Decimal("5"), Decimal("10")), OTHER: (Decimal("2"), Decimal("10"))}
    assert change.spend == {CONSUMER: (Decimal("6.5"), Decimal("10"))}


def test_a_past_months_spend_is_not_reported_as_the_current_spend() -> None:
    # Given it is June and April's spend changes
    o = owner()
    late = ConsumerSpend(consumer=CONSUMER, month="2026-04", total=Decimal("20"), confirmed_total=Decimal("20"))

    # When the change is seen
    outcome = on_spend_change(late, ports=o.ports, now=datetime(2026, 6, 2, tzinfo=UTC))

    # Then April's figure is not the month-to-date spend the dashboard draws
    assert outcome.spend == {}
