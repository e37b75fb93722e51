"""pipeshare.logic.budgets and budget_messages: the budget policy (fail closed, every option), thresholds reached
(level), what enforcement does to whom (stop orders, share removals of the offender only), and the messages."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.budget_messages import (
    ENFORCEMENT_SCHEMA,
    THRESHOLD_SCHEMA,
    UNATTRIBUTED_SCHEMA,
    group_share_message,
    share_message,
    stop_message,
    threshold_message,
    unattributed_message,
)
from pipeshare.logic.budgets import (
    ALIAS_NOTE,
    SUBJECT_MAX,
    month_of,
    over_limit,
    parse_budget_policy,
    share_removals,
    stop_reason,
    threshold_key,
    thresholds_reached,
)
from pipeshare.models.budgets import (
    MAX_THRESHOLDS,
    Budget,
    BudgetPolicy,
    ConsumerSpend,
    LineSpend,
    RunView,
    StopOrder,
    UnattributedLine,
)
from pipeshare.models.errors import BudgetPolicyInvalidError
from pipeshare.models.owner import ALLOW_EXECUTION, READ_ONLY, Grant
from pipeshare.models.types import fingerprint

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
MONTH = "2026-05"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/abc123"
SHARE = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/11111111-aaaa"
OTHER_SHARE = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/22222222-bbbb"
ORG = "arn:aws:organizations::111111111111:organization/o-abcdef1234"
LONG_NAME = "p" + "-x" * 120  # a 241-character pipeline name (SageMaker allows 256)


def document(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "currency": "USD",
        "default": {"monthly_limit": 100},
        "consumers": {
            CONSUMER: {
                "monthly_limit": 250.0,
                "thresholds": [50, 80, 100],
                "enforce": {"stop_executions": False, "remove_from_share": False},
                "dry_run": False,
            }
        },
    }
    doc.update(overrides)
    return doc


def budget(limit: str = "250", **fields: Any) -> Budget:
    return Budget.model_validate({"monthly_limit": Decimal(limit), **fields})


def enforcing(**fields: Any) -> Budget:
    enforce = {"stop_executions": True, "remove_from_share": True, "downgrade_to_read_only": True}
    return budget(enforce=enforce, **fields)


def spend(total: str, confirmed: str | None = None) -> ConsumerSpend:
    return ConsumerSpend(
        consumer=CONSUMER, month=MONTH, total=Decimal(total), confirmed_total=Decimal(confirmed or total)
    )


def run(source: str = "forwarded", *, consumer: str = CONSUMER, **fields: Any) -> RunView:
    values = {"execution_arn": EXECUTION, "pipeline_arn": PIPELINE, "attribution_source": source}
    return RunView.model_validate({**values, "initiator_account": consumer, "open_status": "Executing", **fields})


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
                "enforce": {
                    "stop_executions": True,
                    "remove_from_share": True,
                    "downgrade_to_read_only": True,
                    "stop_when_worst_case_exceeds_remaining": True,
                },
                "dry_run": True,
                "count_inferred": True,
                "unpriced": "stop",
            }
        },
        unattributed={"default": {"monthly_limit": "20"}, "pipelines": {PIPELINE: {"monthly_limit": "5"}}},
    )

    # When it is parsed
    policy = parse_budget_policy(doc, source="ssm:/pipeshare/budgets")

    # Then every value is carried over, with the source and the document's fingerprint
    b = policy.consumers[CONSUMER]
    assert (b.monthly_limit, b.thresholds, b.dry_run) == (Decimal("250"), (50, 80, 100), True)
    assert (b.enforce.stop_executions, b.enforce.remove_from_share, b.enforce.downgrade_to_read_only) == (True,) * 3
    assert b.enforce.stop_when_worst_case_exceeds_remaining is True
    assert (b.count_inferred, b.unpriced, b.limit_threshold, b.enforced_on) == (True, "stop", 100, "total")
    assert policy.unattributed_line(PIPELINE.upper().replace("ARN:AWS", "arn:aws")) == (
        UnattributedLine(monthly_limit=Decimal("5")),
        "arn",
    )
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

    # Then thresholds are 50/80/100, enforcement is off, not a dry run, inferred spend not enforced on, unpriced alerts
    assert b.thresholds == (50, 80, 100)
    assert (b.enforce.any, b.dry_run, b.count_inferred, b.unpriced, b.enforced_on) == (
        False,
        False,
        False,
        "alert",
        "confirmed",
    )


def test_parse_budget_policy_sorts_thresholds() -> None:
    # Given thresholds out of order
    doc = {"version": 1, "consumers": {CONSUMER: {"monthly_limit": 10, "thresholds": [100, 25, 75, 150]}}}

    # When / Then they are kept in increasing order; enforcement applies from the lowest at or above 100
    parsed = parse_budget_policy(doc, source="test").consumers[CONSUMER]
    assert (parsed.thresholds, parsed.limit_threshold) == ((25, 75, 100, 150), 100)


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
        pytest.param(_consumer(dry_run="true"), f"consumers.{CONSUMER}.dry_run: ", id="dry-run-string"),
        pytest.param(document(default={"monthly_limit": 0}), "default.monthly_limit: ", id="bad-default"),
        pytest.param(
            _consumer(thresholds=list(range(1, MAX_THRESHOLDS + 2))),
            f"consumers.{CONSUMER}.thresholds: Tuple should have at most {MAX_THRESHOLDS} items",
            id="too-many-thresholds",
        ),
        pytest.param(
            _consumer(enforce={"downgrade_to_read_only": True}),
            "downgrade_to_read_only requires remove_from_share",
            id="downgrade-alone",
        ),
        pytest.param(
            _consumer(enforce={"switch_to_read_only": True, "remove_from_share": False}),
            "switch_to_read_only (deprecated) means remove_from_share + downgrade_to_read_only; it conflicts",
            id="alias-conflict",
        ),
        pytest.param(
            _consumer(enforce={"stop_executions": 1}), f"consumers.{CONSUMER}.enforce.stop_executions", id="int-bool"
        ),
        pytest.param(_consumer(count_inferred="yes"), f"consumers.{CONSUMER}.count_inferred", id="count-inferred"),
        pytest.param(_consumer(unpriced="ignore"), f"consumers.{CONSUMER}.unpriced: Input should be", id="unpriced"),
        pytest.param(
            _consumer(thresholds=[50], enforce={"remove_from_share": True}),
            "enforce is set but no threshold is >= 100",
            id="removal-unreachable",
        ),
        pytest.param(
            document(unattributed={"pipelines": {"churn train": {"monthly_limit": 1}}}),
            "unattributed.pipelines: Value error, not a pipeline name or pipeline ARN: churn train",
            id="unattributed-bad-name",
        ),
        pytest.param(
            document(unattributed={"pipelines": {"Churn": {"monthly_limit": 1}, "churn": {"monthly_limit": 2}}}),
            "pipelines named twice",
            id="unattributed-twice",
        ),
        pytest.param(
            document(unattributed={"default": {"monthly_limit": 1, "enforce": {"stop_executions": True}}}),
            "unattributed.default.enforce: Extra inputs are not permitted",
            id="unattributed-enforce",
        ),
        pytest.param(document(unattributed={"lines": {}}), "unattributed.lines: Extra", id="unattributed-key"),
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


def test_switch_to_read_only_is_read_as_remove_from_share_and_downgrade() -> None:
    # Given the deprecated option of the crossing-based watcher
    doc = _consumer(enforce={"switch_to_read_only": True})

    # When it is parsed
    enforce = parse_budget_policy(doc, source="test").consumers[CONSUMER].enforce

    # Then it means: take this consumer off its shares, and give it the pipelines read-only (never a whole share)
    assert (enforce.remove_from_share, enforce.downgrade_to_read_only, enforce.switch_to_read_only) == (True,) * 3
    assert "deprecated" in ALIAS_NOTE


def test_worst_case_stopping_needs_no_threshold_at_100() -> None:
    # Given a budget alerting at 50 and 80 only, stopping runs whose worst case exceeds what is left
    doc = _consumer(thresholds=[50, 80], enforce={"stop_when_worst_case_exceeds_remaining": True})

    # When / Then it is valid (it applies below the limit), with no enforcement threshold
    parsed = parse_budget_policy(doc, source="test").consumers[CONSUMER]
    assert (parsed.enforce.at_limit, parsed.enforce.any, parsed.limit_threshold) == (False, True, None)


@pytest.mark.parametrize(
    ("pipeline", "expected"),
    [
        (PIPELINE, ("5", "arn")),
        (f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/Batch-Score", ("7", "name")),
        (f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/other", ("20", "default")),
    ],
    ids=["by-arn", "by-name-any-case", "default"],
)
def test_unattributed_line_is_found_by_arn_then_name_then_default(pipeline: str, expected: tuple[str, str]) -> None:
    # Given lines by ARN and by name, and a default
    lines = {PIPELINE: {"monthly_limit": "5"}, "batch-score": {"monthly_limit": "7"}}
    policy = parse_budget_policy(
        document(unattributed={"default": {"monthly_limit": "20"}, "pipelines": lines}), source="t"
    )

    # When / Then
    line, found_by = policy.unattributed_line(pipeline)
    assert (str(line.monthly_limit) if line else None, found_by) == expected


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


# ------------------------------------------------------------------------------------------------ thresholds_reached


def test_thresholds_reached_none_below_the_first_threshold() -> None:
    # Given a 250 budget (50% = 125) / When the spend is 124.99 / Then nothing is reached
    assert thresholds_reached(Decimal("124.99"), budget()) == []


def test_thresholds_reached_counts_exactly_at_the_threshold() -> None:
    # Given a 250 budget (50% = 125) / When the spend is exactly 125 / Then 50 is reached
    assert thresholds_reached(Decimal("125"), budget()) == [50]


def test_thresholds_reached_is_a_level_every_threshold_at_or_below_the_spend() -> None:
    # Given thresholds up to 200% / When the spend is at 160% / Then 50 and 100 and 150 are reached, whatever the path
    assert thresholds_reached(Decimal("400"), budget(thresholds=[50, 100, 150, 200])) == [50, 100, 150]


def test_thresholds_reached_none_without_a_budget() -> None:
    # Given / When / Then
    assert thresholds_reached(Decimal(10_000), None) == []


def test_thresholds_reached_refuses_float_amounts() -> None:
    # Given / When / Then money stays exact
    with pytest.raises(TypeError, match="Decimal"):
        thresholds_reached(0.1, budget())  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(20))
def test_level_thresholds_with_a_ledger_alert_each_once_whatever_the_path_and_lost_updates(seed: int) -> None:
    # Given a budget, a random month-to-date spend path (rising, falling back when an attribution moves, a limit
    # lowered half way), of which a random part of the updates is lost before the watcher sees them
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography
    b = budget("97.30", thresholds=[1, 33, 50, 80, 99, 100, 101, 250, 1000])
    spends = [Decimal(0)]
    while spends[-1] < Decimal("1000"):
        step = rng.choice([Decimal("0.01"), Decimal("0.37"), Decimal("2.5"), Decimal("40"), Decimal("-3"), Decimal(0)])
        spends.append(max(spends[-1] + step, Decimal(0)))
    seen = [s for s in spends if rng.random() < 0.7] + [spends[-1]]  # the last level is always seen (daily run)

    # When each seen update alerts what is reached and not in the ledger
    ledger: set[str] = set()
    alerted: Counter[int] = Counter()
    for level in seen:
        due = [t for t in thresholds_reached(level, b) if threshold_key(t) not in ledger]
        ledger |= {threshold_key(t) for t in due}
        alerted.update(due)

    # Then every threshold the spend reached was alerted exactly once
    assert alerted == Counter(b.thresholds)
    assert set(alerted.values()) == {1}


# ------------------------------------------------------------------------------------------- who enforcement touches


def test_over_limit_counts_the_confirmed_spend_unless_count_inferred() -> None:
    # Given 300 spent of a 250 budget, 200 of it attributed by evidence
    mixed = spend("300", confirmed="200")

    # When / Then enforcement does not apply on the confirmed part, it does on all of it with count_inferred
    assert over_limit(mixed, enforcing()) is False
    assert over_limit(mixed, enforcing(count_inferred=True)) is True
    assert over_limit(spend("250"), enforcing()) is True
    assert over_limit(spend("9999"), budget()) is False  # alert only


def test_over_limit_applies_from_the_lowest_threshold_at_or_above_100() -> None:
    # Given thresholds 50, 120, 150 / When / Then enforcement starts at 120 % (300 of 250)
    b = enforcing(thresholds=[50, 120, 150])
    assert (over_limit(spend("299.99"), b), over_limit(spend("300"), b)) == (False, True)


@pytest.mark.parametrize(
    ("source", "count_inferred", "stopped"),
    [
        ("forwarded", False, True),
        ("cloudtrail-owner-copy", False, True),
        ("inferred", False, False),
        ("inferred", True, True),
        ("ambiguous", True, False),
        ("unknown", True, False),
        (None, True, False),
    ],
)
def test_stop_reason_acts_only_on_runs_attributed_by_evidence(
    source: str | None, count_inferred: bool, stopped: bool
) -> None:
    # Given a consumer over its budget
    b = enforcing(count_inferred=count_inferred)

    # When / Then its running run is stopped only when attributed by evidence (inferred with count_inferred)
    order = stop_reason(
        run(source or "unknown") if source else run(attribution_source=None), spend("300"), b, admitted_now=True
    )
    assert (order is not None) is stopped


def test_stop_reason_never_stops_the_owners_own_run() -> None:
    # Given the owner's own run (its account is the initiator) and a default budget over its limit
    own = run("owner", consumer=OWNER)

    # When / Then
    assert stop_reason(own, spend("300"), enforcing(), admitted_now=True) is None


def test_stop_reason_worst_case_only_when_newly_admitted() -> None:
    # Given 200 spent of 250, a run whose worst case is 50.01
    b = budget(enforce={"stop_when_worst_case_exceeds_remaining": True})
    costly = run(worst_case_usd=Decimal("50.01"))

    # When / Then it is stopped when admitted, not on a later change of the same attempt; 50.00 would fit
    order = stop_reason(costly, spend("200"), b, admitted_now=True)
    assert order is not None
    assert order.reason == "worst-case"
    assert stop_reason(costly, spend("200"), b, admitted_now=False) is None
    assert stop_reason(run(worst_case_usd=Decimal("50")), spend("200"), b, admitted_now=True) is None


def test_stop_reason_unpriced_from_the_first_threshold() -> None:
    # Given `unpriced: stop` (first threshold 50 % = 125)
    b = budget(unpriced="stop")

    # When / Then an unpriced run is stopped from 125, not below; a priced one never
    assert stop_reason(run(), spend("124.99"), b, admitted_now=False, unpriced=["ml.x"]) is None
    order = stop_reason(run(), spend("125"), b, admitted_now=False, unpriced=["ml.y", "ml.x", "ml.x"])
    assert order is not None
    assert (order.reason, order.unpriced) == ("unpriced", ("ml.x", "ml.y"))
    assert stop_reason(run(), spend("200"), b, admitted_now=False) is None


def test_stop_keys_are_per_execution_attempt_and_dry_run() -> None:
    # Given the same execution, attempts 1 and 2, real and dry run
    keys = {
        StopOrder(
            run=run(attempt=n, execution_arn=EXECUTION.upper().replace("ARN:AWS:SAGEMAKER", "arn:aws:sagemaker")),
            reason="over-budget",
            dry_run=d,
        ).key
        for n in (1, 2)
        for d in (False, True)
    }

    # When / Then four keys, ARNs lower-case
    assert keys == {
        f"STOP#{EXECUTION.lower()}#1",
        f"STOP#{EXECUTION.lower()}#2",
        f"DRYRUN#STOP#{EXECUTION.lower()}#1",
        f"DRYRUN#STOP#{EXECUTION.lower()}#2",
    }


def test_share_removals_take_only_the_consumers_account_off_its_allow_execution_shares() -> None:
    # Given grants of every kind
    second = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-score"
    grants = [
        grant(),  # the consumer, allow-execution
        grant(pipeline=second),  # the same share, another pipeline
        grant(OTHER),  # another consumer on the same share: untouched
        grant(f"arn:aws:iam::{CONSUMER}:role/ml", share=OTHER_SHARE),  # a role of the consumer: pointed out
        grant(share=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/ro", permission=READ_ONLY),  # read-only
        grant(share=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/gone", status="DISASSOCIATED"),  # no longer held
        grant(ORG, share=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/org"),  # the organization: pointed out
    ]

    # When
    removals, notes = share_removals(CONSUMER, grants)

    # Then one removal (the consumer's account from SHARE, both pipelines), two shares it cannot be taken off
    assert [(r.share_arn, r.principal, r.pipelines) for r in removals] == [
        (SHARE, CONSUMER, tuple(sorted([PIPELINE, second])))
    ]
    assert [(n.share_arn.rsplit("/", 1)[-1], n.kind) for n in notes] == [
        ("22222222-bbbb", "iam-principal"),
        ("org", "organization"),
    ]
    assert removals[0].key == f"SHARE#{SHARE.lower()}#{CONSUMER}"


# ----------------------------------------------------------------------------------------------------- messages


def test_threshold_message_names_the_highest_and_lists_the_others() -> None:
    # Given 212.404 USD spent of 250 (201.00 confirmed), on two pipelines
    pipelines = {PIPELINE: Decimal("200.4"), f"{PIPELINE}-v2": Decimal("12.004")}

    # When 50 and 80 are due at once
    alert = threshold_message(spend("212.404", confirmed="201"), [80, 50], budget(), pipelines)

    # Then one well-formed message, amounts in cents, the highest named
    assert_well_formed(*alert)
    assert (
        alert.subject
        == f"pipeshare: consumer {CONSUMER} at 80% of {MONTH} budget (also 50%): est. USD 212.40 of 250.00"
    )
    message = alert.message
    assert (message["schema"], message["threshold"], message["thresholds"], message["also_reached"]) == (
        THRESHOLD_SCHEMA,
        80,
        [50, 80],
        [50],
    )
    assert message["spend"] == {
        "currency": "USD",
        "total": "212.40",
        "confirmed": "201.00",
        "inferred": "11.40",
        "enforced_on": "confirmed",
        "enforced_percent": "80.4",
        "remaining": "49.00",
    }
    assert (message["threshold_amount"], message["budget"]["monthly_limit"], message["budget"]["percent_used"]) == (
        "200.00",
        "250.00",
        "84.9",
    )
    assert [p["spend"] for p in message["top_pipelines"]] == ["200.40", "12.00"]
    assert alert.attributes == {
        "event": "budget.threshold",
        "consumer_account": CONSUMER,
        "month": MONTH,
        "threshold": "80",
        "thresholds": "50,80",
    }


def test_threshold_message_lists_the_five_top_pipelines_largest_first() -> None:
    # Given spend on seven pipelines
    per_pipeline = {f"{PIPELINE}-{i}": Decimal(i) for i in range(7)}

    # When
    alert = threshold_message(spend("21"), [50], budget("40"), per_pipeline)

    # Then the five largest are listed, largest first
    assert [p["pipeline"] for p in alert.message["top_pipelines"]] == [f"churn-train-{i}" for i in (6, 5, 4, 3, 2)]


def test_threshold_message_says_whether_enforcement_applies() -> None:
    # Given an enforcing budget, the spend over its limit but mostly inferred, then confirmed
    inferred, confirmed = spend("300", confirmed="10"), spend("300")

    # When / Then enforcement is announced only when the spend it counts is over the limit
    assert threshold_message(inferred, [100], enforcing(), {}).message["enforcement"]["applies"] is False
    applies = threshold_message(confirmed, [100], enforcing(dry_run=True), {}).message["enforcement"]
    assert (applies["applies"], applies["dry_run"]) == (True, True)
    assert "DRY RUN" in applies["statement"]


@pytest.mark.parametrize("thresholds", [[], [75]], ids=["none", "not-in-budget"])
def test_threshold_message_refuses_thresholds_not_in_the_budget(thresholds: list[int]) -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="not reached thresholds"):
        threshold_message(spend("200"), thresholds, budget())


def test_threshold_subject_fits_and_keeps_the_account_with_huge_amounts() -> None:
    # Given / When
    big = ConsumerSpend(consumer=CONSUMER, month=MONTH, total=Decimal("123456789012.34"))
    alert = threshold_message(big, [100, 150, 1000], budget("99999999.99", thresholds=[100, 150, 1000]))

    # Then it fits, the account whole; the list of the others is the part left out
    assert_well_formed(*alert)
    assert f"consumer {CONSUMER} at 1000%" in alert.subject


def test_unattributed_message_is_about_the_pipeline_and_alert_only() -> None:
    # Given a pipeline's unattributed spend at 12.5 of a 10 USD line
    line = LineSpend(pipeline_arn=PIPELINE, month=MONTH, total=Decimal("12.5"))

    # When 80 and 100 are due
    alert = unattributed_message(line, [80, 100], UnattributedLine(monthly_limit=Decimal("10")), matched_by="default")

    # Then
    assert_well_formed(*alert)
    assert (
        alert.subject
        == f"pipeshare: unattributed runs of churn-train reached 100% of {MONTH} line: est. USD 12.50 of 10.00"
    )
    assert (alert.message["schema"], alert.message["spend"], alert.message["also_reached"]) == (
        UNATTRIBUTED_SCHEMA,
        "12.50",
        [80],
    )
    assert "nothing is stopped" in alert.message["statement"]


@pytest.mark.parametrize(
    ("reason", "fields", "ending"),
    [
        ("over-budget", {}, "stopped run of churn-train"),
        ("worst-case", {"worst_case_usd": Decimal("60.004")}, "worst case USD 60.00 > 50.00 left"),
        ("unpriced", {}, "stopped run of churn-train: unpriced instance types"),
    ],
)
def test_stop_message_per_reason(reason: str, fields: dict[str, Any], ending: str) -> None:
    # Given a stop order for the consumer's run (200 spent of 250)
    order = StopOrder(run=run(**fields), reason=reason, unpriced=("ml.x",) if reason == "unpriced" else ())

    # When it was done
    alert = stop_message(order, spend("200"), enforcing(), outcome="done")

    # Then one well-formed message naming the execution and why
    assert_well_formed(*alert)
    assert alert.subject.endswith(ending)
    assert CONSUMER in alert.subject
    assert (alert.message["schema"], alert.message["action"], alert.message["reason"]) == (
        ENFORCEMENT_SCHEMA,
        "stop_execution",
        reason,
    )
    assert alert.message["execution"]["execution_arn"] == EXECUTION
    assert alert.attributes["reason"] == reason


@pytest.mark.parametrize("outcome", ["done", "failed", "not-run"])
def test_enforcement_subjects_fit_and_never_cut_the_account_with_a_long_pipeline_name(outcome: str) -> None:
    # Given a 241-character pipeline name and a 241-character share name
    long_run = run(
        execution_arn=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/{LONG_NAME}/execution/x", pipeline_arn=""
    )
    b = enforcing(dry_run=outcome == "not-run")
    removal, _ = share_removals(CONSUMER, [grant(share=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/{LONG_NAME}")])

    # When
    alerts = [
        stop_message(
            StopOrder(run=long_run, reason="over-budget", dry_run=b.dry_run), spend("300"), b, outcome=outcome
        ),
        share_message(removal[0], spend("300"), b, outcome=outcome),
    ]

    # Then each fits, the name shortened, the account whole
    for alert in alerts:
        assert_well_formed(*alert)
        assert CONSUMER in alert.subject
        assert "..." in alert.subject


def test_a_dry_run_action_cannot_be_reported_done() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="dry-run"):
        stop_message(
            StopOrder(run=run(), reason="over-budget", dry_run=True),
            spend("300"),
            enforcing(dry_run=True),
            outcome="done",
        )


def test_share_message_says_only_this_consumer_lost_access_and_what_it_keeps() -> None:
    # Given the consumer removed from its share and given its pipelines read-only
    [removal], _ = share_removals(CONSUMER, [grant()])

    # When
    alert = share_message(
        removal, spend("300"), enforcing(), outcome="done", read_only_share=OTHER_SHARE, read_only_outcome="done"
    )

    # Then
    assert_well_formed(*alert)
    assert alert.subject == f"pipeshare: budget enforced on {CONSUMER}: removed from share 11111111-aaaa, now read-only"
    assert alert.message["read_only"] == {"share_arn": OTHER_SHARE, "pipelines": [PIPELINE], "outcome": "done"}
    assert "only this consumer" in alert.message["share"]["other_principals"]


def test_group_share_message_explains_what_the_owner_can_do() -> None:
    # Given the consumer may run through the organization's share
    _, [group] = share_removals(CONSUMER, [grant(ORG)])

    # When
    alert = group_share_message(group, spend("300"), enforcing())

    # Then
    assert_well_formed(*alert)
    assert alert.subject == f"pipeshare: budget: cannot remove {CONSUMER} from organization share 11111111-aaaa"
    assert any(ORG in note for note in alert.message["notes"])


def test_messages_are_deterministic() -> None:
    # Given the same inputs twice / When / Then the messages are identical (a retried write writes the same message)
    first, second = (threshold_message(spend("212.4"), [80, 50], budget()) for _ in range(2))
    assert first == second
