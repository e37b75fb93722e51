"""pipeshare.logic.budgets: the budget policy (fail closed), threshold crossings, enforcement plans, messages."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.budgets import (
    ENFORCEMENT_SCHEMA,
    SUBJECT_MAX,
    SWITCH_NOTE,
    THRESHOLD_SCHEMA,
    Budget,
    BudgetPolicy,
    BudgetPolicyInvalidError,
    EnforcementPlan,
    enforcement_message,
    enforcement_plan,
    month_of,
    parse_budget_policy,
    threshold_message,
    thresholds_crossed,
)
from pipeshare.logic.policy import fingerprint
from pipeshare.models.owner import ALLOW_EXECUTION, READ_ONLY, Grant

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
MONTH = "2026-05"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/abc123"
SHARE = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/11111111-aaaa"
OTHER_SHARE = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/22222222-bbbb"
ORG = "arn:aws:organizations::111111111111:organization/o-abcdef1234"


def document(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "currency": "USD",
        "default": {"monthly_limit": 100},
        "consumers": {
            CONSUMER: {
                "monthly_limit": 250.0,
                "thresholds": [50, 80, 100],
                "enforce": {"stop_executions": False, "switch_to_read_only": False},
                "dry_run": False,
            }
        },
    }
    doc.update(overrides)
    return doc


def budget(limit: str = "250", **fields: Any) -> Budget:
    return Budget.model_validate({"monthly_limit": Decimal(limit), **fields})


def enforcing(*, stop: bool = True, switch: bool = True, dry_run: bool = False, **fields: Any) -> Budget:
    return budget(enforce={"stop_executions": stop, "switch_to_read_only": switch}, dry_run=dry_run, **fields)


def policy_errors(doc: Any) -> list[str]:
    with pytest.raises(BudgetPolicyInvalidError) as info:
        parse_budget_policy(doc, source="ssm:/pipeshare/budgets")
    return info.value.errors


def grant(
    consumer: str = CONSUMER,
    *,
    share: str = SHARE,
    pipeline: str = PIPELINE,
    permission: str = ALLOW_EXECUTION,
    status: str = "ASSOCIATED",
) -> Grant:
    return Grant(
        pipeline_arn=pipeline,
        consumer=consumer,
        share_arn=share,
        share_name=share.rsplit("/", 1)[-1],
        association_status=status,
        permission_name=permission,
    )


def plan_for(
    b: Budget | None, crossed: list[int], *, running: Sequence[str] = (), grants: Sequence[Grant] = ()
) -> EnforcementPlan:
    return enforcement_plan(
        b,
        crossed,
        consumer=CONSUMER,
        month=MONTH,
        spend=Decimal("251"),
        running_executions=list(running),
        grants=list(grants),
    )


def execution(n: int) -> str:
    return f"{PIPELINE}/execution/run{n}"


def floats_in(value: Any) -> list[Any]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, list):
        return [f for v in value for f in floats_in(v)]
    return []


def assert_well_formed(subject: str, message: dict[str, Any], attributes: dict[str, str]) -> None:
    assert len(subject) <= SUBJECT_MAX
    assert subject.isascii()
    assert subject.isprintable()
    assert json.loads(json.dumps(message)) == message  # plain JSON: no Decimal, no datetime
    assert floats_in(message) == []  # amounts are exact strings (DynamoDB refuses floats)
    assert all(isinstance(v, str) for v in attributes.values())


# ---------------------------------------------------------------------------------------------------- the policy


def test_parse_budget_policy_accepts_a_valid_document() -> None:
    # Given the documented shape
    doc = document(
        consumers={
            CONSUMER: {
                "monthly_limit": 250.0,
                "thresholds": [50, 80, 100],
                "enforce": {"stop_executions": True, "switch_to_read_only": False},
                "dry_run": True,
            }
        }
    )

    # When it is parsed
    policy = parse_budget_policy(doc, source="ssm:/pipeshare/budgets")

    # Then every value is carried over, with the source and the document's fingerprint
    b = policy.consumers[CONSUMER]
    assert (b.monthly_limit, b.thresholds, b.dry_run) == (Decimal("250"), (50, 80, 100), True)
    assert (b.enforce.stop_executions, b.enforce.switch_to_read_only) == (True, False)
    assert policy.default is not None
    assert policy.default.monthly_limit == Decimal("100")
    assert policy.currency == "USD"
    assert (policy.source, policy.fingerprint) == ("ssm:/pipeshare/budgets", fingerprint(doc))


def test_parse_budget_policy_reads_json_text_with_exact_decimals() -> None:
    # Given the document as SSM returns it: JSON text, with a limit a float cannot hold exactly
    text = json.dumps({"version": 1, "consumers": {CONSUMER: {"monthly_limit": 0.1}}})

    # When it is parsed
    policy = parse_budget_policy(text, source="ssm")

    # Then the limit is the exact decimal written
    assert policy.consumers[CONSUMER].monthly_limit == Decimal("0.1")


def test_parse_budget_policy_applies_the_defaults() -> None:
    # Given a consumer with only a limit
    doc = {"version": 1, "consumers": {CONSUMER: {"monthly_limit": 10}}}

    # When it is parsed
    b = parse_budget_policy(doc, source="test").consumers[CONSUMER]

    # Then thresholds are 50/80/100, enforcement is off, and it is not a dry run
    assert b.thresholds == (50, 80, 100)
    assert (b.enforce.stop_executions, b.enforce.switch_to_read_only, b.dry_run) == (False, False, False)


def test_parse_budget_policy_sorts_thresholds() -> None:
    # Given thresholds out of order
    doc = {"version": 1, "consumers": {CONSUMER: {"monthly_limit": 10, "thresholds": [100, 25, 75, 150]}}}

    # When / Then they are kept in increasing order
    assert parse_budget_policy(doc, source="test").consumers[CONSUMER].thresholds == (25, 75, 100, 150)


def test_budget_for_prefers_the_consumer_entry_over_the_default() -> None:
    # Given a policy with a default and an entry for CONSUMER
    policy = parse_budget_policy(document(), source="test")

    # When / Then CONSUMER gets its own budget
    assert policy.budget_for(CONSUMER) == policy.consumers[CONSUMER]


def test_budget_for_falls_back_to_the_default() -> None:
    # Given a policy with a default and no entry for OTHER
    policy = parse_budget_policy(document(), source="test")

    # When / Then OTHER gets the default budget
    assert policy.budget_for(OTHER) == policy.default


def test_budget_for_is_none_without_entry_or_default() -> None:
    # Given a policy without a default
    policy = parse_budget_policy(document(default=None), source="test")

    # When / Then a consumer absent from it has no budget
    assert policy.budget_for(OTHER) is None


def test_an_empty_policy_is_valid_and_budgets_nobody() -> None:
    # Given / When
    policy = parse_budget_policy({"version": 1}, source="test")

    # Then
    assert policy == BudgetPolicy(version=1, source="test", fingerprint=fingerprint({"version": 1}))
    assert policy.budget_for(CONSUMER) is None


def _consumer(**fields: Any) -> dict[str, Any]:
    return document(consumers={CONSUMER: {"monthly_limit": 10, **fields}})


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param([], "<root>: the budget policy must be a JSON object", id="not-an-object"),
        pytest.param("{version: 1", "<root>: not valid JSON", id="not-json"),
        pytest.param({"consumers": {}}, "version: Field required", id="no-version"),
        pytest.param(document(version=2), "version: Input should be 1", id="unknown-version"),
        pytest.param(document(currency="EUR"), "currency: Input should be 'USD'", id="currency"),
        pytest.param(document(owners=[]), "owners: Extra inputs are not permitted", id="unknown-top-key"),
        pytest.param(document(source="x"), "source: Extra inputs are not permitted", id="internal-key"),
        pytest.param(document(consumers=[]), "consumers: Input should be a valid dictionary", id="consumers-list"),
        pytest.param(
            document(consumers={"12345": {"monthly_limit": 1}}), "consumers.12345.[key]: String", id="bad-account"
        ),
        pytest.param(_consumer(limit=5), f"consumers.{CONSUMER}.limit: Extra inputs", id="unknown-budget-key"),
        pytest.param(
            _consumer(enforce={"stop": True}), f"consumers.{CONSUMER}.enforce.stop: Extra", id="unknown-enforce-key"
        ),
        pytest.param(
            document(consumers={CONSUMER: {}}), f"consumers.{CONSUMER}.monthly_limit: Field required", id="no-limit"
        ),
        pytest.param(
            _consumer(monthly_limit=0), f"consumers.{CONSUMER}.monthly_limit: Input should be greater", id="0"
        ),
        pytest.param(
            _consumer(monthly_limit=-5), f"consumers.{CONSUMER}.monthly_limit: Input should be great", id="<0"
        ),
        pytest.param(_consumer(monthly_limit="lots"), f"consumers.{CONSUMER}.monthly_limit:", id="limit-not-a-number"),
        pytest.param(_consumer(monthly_limit=True), f"consumers.{CONSUMER}.monthly_limit:", id="limit-bool"),
        pytest.param(_consumer(monthly_limit=float("inf")), f"consumers.{CONSUMER}.monthly_limit:", id="limit-inf"),
        pytest.param(_consumer(thresholds=[]), f"consumers.{CONSUMER}.thresholds: ", id="no-thresholds"),
        pytest.param(_consumer(thresholds=[0, 100]), f"consumers.{CONSUMER}.thresholds.0: ", id="threshold-0"),
        pytest.param(_consumer(thresholds=[1001]), f"consumers.{CONSUMER}.thresholds.0: ", id="threshold-1001"),
        pytest.param(_consumer(thresholds=[50.5]), f"consumers.{CONSUMER}.thresholds.0: ", id="threshold-float"),
        pytest.param(_consumer(thresholds=["50"]), f"consumers.{CONSUMER}.thresholds.0: ", id="threshold-string"),
        pytest.param(_consumer(thresholds=50), f"consumers.{CONSUMER}.thresholds: ", id="thresholds-not-a-list"),
        pytest.param(
            _consumer(thresholds=[50, 50, 100]), "thresholds must be unique; repeated: 50", id="repeated-threshold"
        ),
        pytest.param(
            _consumer(thresholds=[50, 80], enforce={"stop_executions": True}),
            f"consumers.{CONSUMER}: Value error, enforce is set but no threshold is >= 100",
            id="enforcement-unreachable",
        ),
        pytest.param(_consumer(dry_run="maybe"), f"consumers.{CONSUMER}.dry_run: ", id="dry-run-not-bool"),
        pytest.param(document(default={"monthly_limit": 0}), "default.monthly_limit: ", id="bad-default"),
    ],
)
def test_parse_budget_policy_refuses_an_invalid_document(doc: Any, expected: str) -> None:
    # Given an invalid document / When it is parsed
    errors = policy_errors(doc)

    # Then it is refused, naming the problem
    assert any(e.startswith(expected) or expected in e for e in errors), errors


def test_parse_budget_policy_lists_every_problem() -> None:
    # Given a document with problems in several places
    doc = document(
        version=2,
        extra=True,
        default={"monthly_limit": 0},
        consumers={CONSUMER: {"monthly_limit": 10, "thresholds": [50, 50, 100]}, "123": {"monthly_limit": 1}},
    )

    # When it is parsed
    errors = policy_errors(doc)

    # Then each one is reported, in one error
    assert [e.split(":")[0] for e in errors] == [
        "version",
        "default.monthly_limit",
        f"consumers.{CONSUMER}.thresholds",
        "consumers.123.[key]",
        "extra",
    ]


def test_parse_budget_policy_error_names_the_source_and_fingerprint() -> None:
    # Given an invalid document
    doc = document(version=3)

    # When it is parsed
    with pytest.raises(BudgetPolicyInvalidError) as info:
        parse_budget_policy(doc, source="ssm:/pipeshare/budgets")

    # Then the error says where it came from and which document it was
    assert (info.value.source, info.value.fingerprint) == ("ssm:/pipeshare/budgets", fingerprint(doc))
    assert str(info.value).startswith("budget policy from ssm:/pipeshare/budgets is invalid: version:")


# ---------------------------------------------------------------------------------------------------------- month_of


def test_month_of_is_the_utc_month() -> None:
    # Given / When / Then
    assert month_of(datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC)) == "2026-05"


def test_month_of_converts_to_utc_first() -> None:
    # Given 23:30 on May 31st at UTC-2, which is June 1st in UTC
    at = datetime(2026, 5, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2)))

    # When / Then
    assert month_of(at) == "2026-06"


def test_month_of_refuses_a_naive_time() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="timezone-aware"):
        month_of(datetime(2026, 5, 1))


# ------------------------------------------------------------------------------------------------ thresholds_crossed


def test_thresholds_crossed_none_below_the_first_threshold() -> None:
    # Given a 250 budget (50% = 125) / When spend goes from 0 to 124.99 / Then nothing is crossed
    assert thresholds_crossed(Decimal(0), Decimal("124.99"), budget()) == []


def test_thresholds_crossed_counts_exactly_at_the_threshold() -> None:
    # Given a 250 budget (50% = 125) / When spend reaches exactly 125 / Then 50 is crossed
    assert thresholds_crossed(Decimal("100"), Decimal("125"), budget()) == [50]


def test_thresholds_crossed_does_not_recross_from_exactly_the_threshold() -> None:
    # Given spend already exactly at 50% / When it rises a little / Then 50 is not crossed again
    assert thresholds_crossed(Decimal("125"), Decimal("130"), budget()) == []


def test_thresholds_crossed_jumps_over_several_thresholds() -> None:
    # Given a 250 budget / When one execution takes spend from 10 to 300 / Then 50, 80 and 100 are crossed together
    assert thresholds_crossed(Decimal("10"), Decimal("300"), budget()) == [50, 80, 100]


def test_thresholds_crossed_includes_thresholds_above_100() -> None:
    # Given thresholds up to 200% / When spend goes from 240 to 400 (96% -> 160%) / Then 100 and 150 are crossed
    assert thresholds_crossed(Decimal("240"), Decimal("400"), budget(thresholds=[50, 100, 150, 200])) == [100, 150]


@pytest.mark.parametrize(("before", "after"), [("200", "200"), ("260", "100")], ids=["equal", "decrease"])
def test_thresholds_crossed_none_without_an_increase(before: str, after: str) -> None:
    # Given / When spend does not rise / Then nothing is crossed
    assert thresholds_crossed(Decimal(before), Decimal(after), budget()) == []


def test_thresholds_crossed_none_without_a_budget() -> None:
    # Given / When / Then
    assert thresholds_crossed(Decimal(0), Decimal(10_000), None) == []


def test_thresholds_crossed_refuses_float_amounts() -> None:
    # Given / When / Then money stays exact
    with pytest.raises(TypeError, match="Decimal"):
        thresholds_crossed(0.1, Decimal("1"), budget())  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(20))
def test_thresholds_crossed_once_each_over_many_small_updates(seed: int) -> None:
    # Given a budget and a random increasing sequence of month-to-date spends, landing on thresholds at times
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography
    b = budget("97.30", thresholds=[1, 33, 50, 80, 99, 100, 101, 250, 1000])
    spends = [Decimal(0)]
    while spends[-1] < Decimal("1000"):
        step = rng.choice([Decimal("0.01"), Decimal("0.37"), Decimal("2.5"), Decimal("40"), Decimal(0)])
        on_threshold = b.amount(rng.choice(b.thresholds))
        spends.append(on_threshold if spends[-1] < on_threshold and rng.random() < 0.2 else spends[-1] + step)

    # When every update reports its crossings
    crossings = Counter(t for before, after in itertools.pairwise(spends) for t in thresholds_crossed(before, after, b))

    # Then each threshold reached was crossed exactly once
    reached = [t for t in b.thresholds if b.amount(t) <= spends[-1]]
    assert crossings == Counter(reached)
    assert reached == list(b.thresholds)


# ------------------------------------------------------------------------------------------------- enforcement_plan


def test_enforcement_plan_is_empty_below_100() -> None:
    # Given enforcement on / When only 50 and 80 are crossed
    plan = plan_for(enforcing(), [50, 80], running=[execution(1)], grants=[grant()])

    # Then nothing is planned
    assert (plan.threshold, plan.actions, plan.empty) == (None, (), True)


def test_enforcement_plan_is_empty_without_a_budget() -> None:
    # Given / When / Then
    assert plan_for(None, [], running=[execution(1)], grants=[grant()]).empty


def test_enforcement_plan_refuses_a_threshold_the_budget_lacks() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="120"):
        plan_for(enforcing(), [100, 120])


def test_enforcement_plan_stops_each_running_execution() -> None:
    # Given stop_executions only, two running executions, one listed twice (ARNs compare case-insensitively)
    running = [execution(2), execution(1), execution(2).replace("churn-train", "Churn-Train")]

    # When 100 is crossed
    plan = plan_for(enforcing(switch=False), [80, 100], running=running, grants=[grant()])

    # Then each execution is stopped once (the form with upper-case letters kept), and no share is switched
    assert plan.threshold == 100
    assert [(a.action, a.target) for a in plan.actions] == [
        ("stop_execution", execution(1)),
        ("stop_execution", execution(2).replace("churn-train", "Churn-Train")),
    ]


def test_enforcement_plan_switches_the_shares_the_consumer_runs_through() -> None:
    # Given switch_to_read_only only, and grants of every kind
    grants = [
        grant(),  # the consumer, allow-execution
        grant(f"arn:aws:iam::{CONSUMER}:role/ml", share=OTHER_SHARE),  # a role of the consumer
        grant(OTHER, share=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/other"),  # another consumer
        grant(share=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/ro", permission=READ_ONLY),  # read-only
        grant(share=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/gone", status="DISASSOCIATED"),  # no longer held
    ]

    # When 100 is crossed
    plan = plan_for(enforcing(stop=False), [100], running=[execution(1)], grants=grants)

    # Then the two shares through which the consumer holds allow-execution are switched, and nothing is stopped
    assert [(a.action, a.target) for a in plan.actions] == [
        ("switch_share_to_read_only", SHARE),
        ("switch_share_to_read_only", OTHER_SHARE),
    ]


def test_enforcement_plan_notes_that_a_switch_affects_every_principal() -> None:
    # Given / When
    plan = plan_for(enforcing(stop=False), [100], grants=[grant()])

    # Then the plan and the action both say so
    assert SWITCH_NOTE in plan.notes
    assert plan.actions[0].note == SWITCH_NOTE
    assert "every principal" in SWITCH_NOTE


def test_enforcement_plan_switches_a_share_once_for_several_pipelines() -> None:
    # Given two pipelines reached through the same share
    second = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-score"

    # When
    plan = plan_for(enforcing(stop=False), [100], grants=[grant(), grant(pipeline=second)])

    # Then one action, listing both pipelines
    assert [(a.target, a.pipelines) for a in plan.actions] == [(SHARE, tuple(sorted([PIPELINE, second])))]


def test_enforcement_plan_notes_an_organization_share_without_switching_it() -> None:
    # Given allow-execution granted to the organization on another share
    plan = plan_for(enforcing(stop=False), [100], grants=[grant(), grant(ORG, share=OTHER_SHARE)])

    # When / Then only the consumer's own share is switched; the organization's is pointed out
    assert [a.target for a in plan.actions] == [SHARE]
    assert any(OTHER_SHARE in note and ORG in note for note in plan.notes)


def test_enforcement_plan_stops_then_switches_when_both_are_on() -> None:
    # Given / When
    plan = plan_for(enforcing(), [100], running=[execution(1)], grants=[grant()])

    # Then
    assert [a.action for a in plan.actions] == ["stop_execution", "switch_share_to_read_only"]
    assert (plan.consumer, plan.month, plan.spend, plan.monthly_limit) == (
        CONSUMER,
        MONTH,
        Decimal("251"),
        Decimal("250"),
    )


def test_enforcement_plan_without_enforce_options_plans_nothing_at_100() -> None:
    # Given a budget that only alerts
    plan = plan_for(budget(), [100], running=[execution(1)], grants=[grant()])

    # When / Then the threshold is recorded, with no action and a note saying why
    assert (plan.threshold, plan.actions) == (100, ())
    assert any("alert only" in note for note in plan.notes)


@pytest.mark.parametrize("dry_run", [True, False])
def test_enforcement_plan_carries_the_dry_run_flag(dry_run: bool) -> None:
    # Given / When
    plan = plan_for(enforcing(dry_run=dry_run), [100], running=[execution(1)], grants=[grant()])

    # Then the plan and every action carry the budget's flag
    assert plan.dry_run is dry_run
    assert len(plan.actions) == 2
    assert {a.dry_run for a in plan.actions} == {dry_run}


def test_enforcement_plan_triggers_on_the_highest_threshold_at_or_above_100() -> None:
    # Given thresholds beyond 100 / When 100 and 150 are crossed together
    plan = plan_for(enforcing(thresholds=[50, 100, 150]), [50, 100, 150], running=[execution(1)])

    # Then the plan is for 150
    assert plan.threshold == 150


# ----------------------------------------------------------------------------------------------------- messages


def test_threshold_message_is_well_formed() -> None:
    # Given / When
    alert = threshold_message(CONSUMER, MONTH, 80, Decimal("212.40"), budget(), {"churn-train": Decimal("212.40")})

    # Then
    assert_well_formed(*alert)
    assert alert.subject == f"pipeshare: consumer {CONSUMER} reached 80% of {MONTH} budget: est. USD 212.40 of 250.00"
    assert alert.message["schema"] == THRESHOLD_SCHEMA
    assert set(alert.message) == {
        "schema",
        "event",
        "consumer_account",
        "month",
        "threshold",
        "threshold_amount",
        "spend",
        "budget",
        "top_pipelines",
        "enforcement",
        "billing",
    }
    assert (alert.message["threshold_amount"], alert.message["budget"]["percent_used"]) == ("200", "84.9")
    assert alert.attributes == {
        "event": "budget.threshold",
        "consumer_account": CONSUMER,
        "month": MONTH,
        "threshold": "80",
    }


def test_threshold_message_lists_the_top_pipelines_largest_first() -> None:
    # Given spend on seven pipelines
    per_pipeline = {f"p{i}": Decimal(i) for i in range(7)}

    # When
    alert = threshold_message(CONSUMER, MONTH, 50, Decimal(21), budget("40"), per_pipeline)

    # Then the five largest are listed, largest first
    assert [p["pipeline"] for p in alert.message["top_pipelines"]] == ["p6", "p5", "p4", "p3", "p2"]


def test_threshold_message_at_100_says_whether_enforcement_applies() -> None:
    # Given an enforcing budget / When 100 is crossed, and 80
    at_100 = threshold_message(CONSUMER, MONTH, 100, Decimal(250), enforcing(dry_run=True))
    at_80 = threshold_message(CONSUMER, MONTH, 80, Decimal(200), enforcing(dry_run=True))

    # Then only the 100 alert announces (dry-run) enforcement
    assert (at_100.message["enforcement"]["applies"], at_100.message["enforcement"]["dry_run"]) == (True, True)
    assert at_80.message["enforcement"]["applies"] is False


def test_threshold_message_refuses_a_threshold_not_in_the_budget() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="75"):
        threshold_message(CONSUMER, MONTH, 75, Decimal(200), budget())


def test_threshold_message_subject_fits_with_large_amounts() -> None:
    # Given / When
    alert = threshold_message(
        CONSUMER, MONTH, 1000, Decimal("123456789012.34"), budget("99999999.99", thresholds=[1000])
    )

    # Then
    assert_well_formed(*alert)


def test_enforcement_message_reports_each_outcome() -> None:
    # Given a real plan, executed: the stop done, the switch failed
    plan = plan_for(enforcing(), [100], running=[execution(1)], grants=[grant()])
    stop, switch = plan.actions

    # When
    alert = enforcement_message(
        plan, {stop.key: "done", switch.key: {"outcome": "failed", "detail": "AccessDeniedException"}}
    )

    # Then each action has its outcome, and the subject says it failed
    assert_well_formed(*alert)
    assert [(a["action"], a["outcome"], a["detail"]) for a in alert.message["actions"]] == [
        ("stop_execution", "done", None),
        ("switch_share_to_read_only", "failed", "AccessDeniedException"),
    ]
    assert alert.message["schema"] == ENFORCEMENT_SCHEMA
    assert (
        alert.subject == f"pipeshare: enforcement FAILED on {CONSUMER} at 100%: stopped 1/1 runs, 0/1 shares read-only"
    )


def test_enforcement_message_when_everything_was_done() -> None:
    # Given / When
    plan = plan_for(enforcing(), [100], running=[execution(1), execution(2)], grants=[grant()])
    alert = enforcement_message(plan, {a.key: "done" for a in plan.actions})

    # Then
    assert alert.subject == f"pipeshare: budget enforced on {CONSUMER} at 100%: stopped 2/2 runs, 1/1 shares read-only"
    assert alert.attributes == {
        "event": "budget.enforcement",
        "consumer_account": CONSUMER,
        "month": MONTH,
        "threshold": "100",
        "dry_run": "false",
    }


def test_enforcement_message_in_dry_run_says_what_would_be_done() -> None:
    # Given a dry-run plan / When nothing was run
    plan = plan_for(enforcing(dry_run=True), [100], running=[execution(1)], grants=[grant()])
    alert = enforcement_message(plan, {})

    # Then
    assert_well_formed(*alert)
    assert (
        alert.subject
        == f"pipeshare: DRY RUN enforcement on {CONSUMER} at 100%: would stop 1 run, make 1 share read-only"
    )
    assert {(a["dry_run"], a["outcome"]) for a in alert.message["actions"]} == {(True, "not-run")}
    assert (alert.message["dry_run"], alert.attributes["dry_run"]) == (True, "true")


def test_enforcement_message_refuses_a_dry_run_action_reported_done() -> None:
    # Given / When / Then
    plan = plan_for(enforcing(dry_run=True), [100], running=[execution(1)])
    with pytest.raises(ValueError, match="dry-run"):
        enforcement_message(plan, {plan.actions[0].key: "done"})


@pytest.mark.parametrize(
    ("results", "match"),
    [
        ({"stop_execution#arn:aws:sagemaker:nowhere": "done"}, "not in the plan"),
        ({"KEY": "maybe"}, "unknown outcome"),
    ],
    ids=["stray-key", "unknown-outcome"],
)
def test_enforcement_message_refuses_bad_results(results: dict[str, Any], match: str) -> None:
    # Given a plan
    plan = plan_for(enforcing(), [100], running=[execution(1)])
    results = {plan.actions[0].key if k == "KEY" else k: v for k, v in results.items()}

    # When / Then
    with pytest.raises(ValueError, match=match):
        enforcement_message(plan, results)


def test_enforcement_message_refuses_a_plan_without_a_trigger() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="no threshold"):
        enforcement_message(plan_for(enforcing(), [50]), {})
