"""pipeshare.logic.cost_messages: the message sent when an attempt of a consumer's (or an ambiguous) execution ends
(schema pipeshare.owner.execution-cost/2: amounts rounded to cents, attempt and execution totals, candidates of an
ambiguous run, unpriced instance types as a lower bound)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.budgets import SUBJECT_MAX
from pipeshare.logic.cost_messages import FINISH_SCHEMA, finish_message
from pipeshare.models.budgets import Budget

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
MONTH = "2026-05"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/abc123"
OU = f"arn:aws:organizations::{OWNER}:ou/o-abcdef1234/ou-ab12-cdefgh34"


def budget(limit: str = "250") -> Budget:
    return Budget.model_validate({"monthly_limit": Decimal(limit)})


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
    assert floats_in(message) == []  # amounts are strings (DynamoDB refuses floats)
    assert all(isinstance(v, str) for v in attributes.values())


def finish(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "execution_arn": EXECUTION,
        "consumer": CONSUMER,
        "status": "Succeeded",
        "started_at": datetime(2026, 5, 3, 10, 0, tzinfo=UTC),
        "ended_at": datetime(2026, 5, 3, 11, 30, tzinfo=UTC),
        "estimate_breakdown": [
            {"step": "Preprocess", "type": "Processing", "state": "Succeeded", "cost": Decimal("1.25"), "issues": []},
            {"step": "Train", "type": "Training", "state": "Succeeded", "cost": Decimal("10.5"), "issues": []},
        ],
        "total": Decimal("11.75"),
        "month": MONTH,
        "consumer_month_to_date": Decimal("125"),
        "budget": budget(),
    }
    fields.update(overrides)
    return finish_message(**fields)


def test_finish_message_is_well_formed() -> None:
    # Given / When
    alert = finish()

    # Then
    assert_well_formed(*alert)
    assert alert.subject == (
        f"pipeshare: run of churn-train by {CONSUMER} Succeeded: est. USD 11.75, MTD 50.0% of budget"
    )
    assert alert.message["schema"] == FINISH_SCHEMA == "pipeshare.owner.execution-cost/2"
    assert set(alert.message) >= {
        "consumer_account",
        "candidates",
        "execution_arn",
        "execution",
        "estimate",
        "month_to_date",
        "billing",
    }
    assert alert.message["execution"] == {
        "status": "Succeeded",
        "attempt": 1,
        "started_at": "2026-05-03T10:00:00Z",
        "ended_at": "2026-05-03T11:30:00Z",
        "duration_seconds": 5400,
    }
    assert alert.attributes == {
        "event": "execution.finished",
        "consumer_account": CONSUMER,
        "owner_account": OWNER,
        "month": MONTH,
        "status": "Succeeded",
        "attempt": "1",
    }


def test_finish_message_breaks_down_the_cost_per_step_in_cents() -> None:
    # Given / When
    estimate = finish().message["estimate"]

    # Then every amount is rounded to cents, and this attempt's total is the execution's (a first attempt)
    assert (estimate["total"], estimate["attempt_total"], estimate["complete"]) == ("11.75", "11.75", True)
    assert (estimate["lower_bound"], estimate["unpriced"], estimate["unestimated_steps"]) == (False, [], [])
    assert estimate["steps"] == [
        {"step": "Preprocess", "type": "Processing", "state": "Succeeded", "cost": "1.25", "issues": []},
        {"step": "Train", "type": "Training", "state": "Succeeded", "cost": "10.50", "issues": []},
    ]


def test_finish_message_rounds_micro_dollar_amounts_half_up_to_cents() -> None:
    # Given amounts as stored (quantised to 1e-6 USD)
    steps = [{"step": "Train", "type": "Training", "state": "estimated", "cost": Decimal("0.064999"), "issues": []}]

    # When
    alert = finish(
        estimate_breakdown=steps,
        total=Decimal("0.065493"),
        attempt_total=Decimal("0.004999"),
        consumer_month_to_date=Decimal("10.005"),
        budget=None,
    )

    # Then people see cents, rounded half-up
    estimate = alert.message["estimate"]
    assert (estimate["steps"][0]["cost"], estimate["total"], estimate["attempt_total"]) == ("0.06", "0.07", "0.00")
    assert alert.message["month_to_date"]["consumer_spend"] == "10.01"
    assert alert.subject.endswith("Succeeded: est. USD 0.00")


def test_finish_message_gives_month_to_date_against_the_budget() -> None:
    # Given / When
    mtd = finish().message["month_to_date"]

    # Then
    assert (mtd["month"], mtd["consumer_spend"]) == (MONTH, "125.00")
    assert (mtd["budget"]["monthly_limit"], mtd["budget"]["percent_used"]) == ("250", "50.0")


def test_finish_message_says_it_is_an_estimate_paid_by_the_owner() -> None:
    # Given / When
    billing = finish().message["billing"]

    # Then
    assert (billing["estimate"], billing["payer_account"]) == (True, OWNER)
    assert "estimate" in billing["statement"]
    assert "not the AWS bill" in billing["statement"]
    assert "owner account pays" in billing["statement"]


def test_finish_message_without_a_budget() -> None:
    # Given / When
    alert = finish(budget=None)

    # Then
    assert alert.message["month_to_date"]["budget"] is None
    assert "budget" not in alert.subject


def test_finish_message_flags_steps_that_could_not_be_estimated() -> None:
    # Given a step without a cost
    steps = [{"step": "Callback", "type": "Callback", "state": "Succeeded", "cost": None, "issues": ["no price"]}]

    # When
    alert = finish(estimate_breakdown=steps, total=Decimal(0))

    # Then the estimate is marked incomplete, and the subject shows the total as a floor
    assert (alert.message["estimate"]["complete"], alert.message["estimate"]["unestimated_steps"]) == (
        False,
        ["Callback"],
    )
    assert "est. USD 0.00+," in alert.subject


def test_finish_message_of_a_retry_gives_the_attempt_and_the_execution_totals() -> None:
    # Given the second attempt (the first retry) of an execution: 4.20 this attempt, 11.75 in all
    alert = finish(attempt=2, attempt_total=Decimal("4.2"), status="Failed")

    # Then the subject names the retry and this attempt's cost; the body has both totals and the attempt
    assert_well_formed(*alert)
    assert alert.subject == (
        f"pipeshare: retry 1 of churn-train by {CONSUMER} Failed: est. USD 4.20, MTD 50.0% of budget"
    )
    assert (alert.message["estimate"]["attempt_total"], alert.message["estimate"]["total"]) == ("4.20", "11.75")
    assert alert.message["execution"]["attempt"] == 2
    assert alert.attributes["attempt"] == "2"


def test_finish_message_of_an_ambiguous_run_names_the_candidates() -> None:
    # Given a run two consumers could have started: no consumer, no month-to-date spend, no budget
    alert = finish(consumer=None, candidates=[CONSUMER, OTHER], consumer_month_to_date=None, budget=None)

    # Then
    assert_well_formed(*alert)
    assert (alert.message["consumer_account"], alert.message["candidates"]) == (None, [CONSUMER, OTHER])
    assert alert.message["month_to_date"] == {"month": MONTH, "consumer_spend": None, "budget": None}
    assert alert.attributes["consumer_account"] == "ambiguous"
    assert (
        alert.subject == f"pipeshare: run of churn-train by {CONSUMER} or {OTHER} (ambiguous) Succeeded: est. USD 11.75"
    )


def test_finish_message_of_a_run_shared_through_an_organization_names_the_unit() -> None:
    # Given a run anyone in an organizational unit could have started (the share names the OU, not accounts)
    alert = finish(consumer=None, candidates=[OU], consumer_month_to_date=None, budget=None)

    # Then the body keeps the OU's ARN; the subject names the unit by its ID, and keeps the figures
    assert_well_formed(*alert)
    assert alert.message["candidates"] == [OU]
    assert alert.subject == "pipeshare: run of churn-train by ou-ab12-cdefgh34 (ambiguous) Succeeded: est. USD 11.75"


def test_a_finish_message_naming_neither_consumer_nor_candidates_is_refused() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="names the consumer, or the candidates"):
        finish(consumer=None, candidates=[], consumer_month_to_date=None, budget=None)


def test_finish_message_with_an_unpriced_instance_type_is_a_lower_bound() -> None:
    # Given 1.5 instance-hours on an instance type nobody could price
    alert = finish(unpriced={"ml.p4d.24xlarge": Decimal("1.50")}, budget=None)

    # Then the subject and the body say the figure is a lower bound, and what is missing
    assert_well_formed(*alert)
    assert alert.subject.endswith("Succeeded: est. >= USD 11.75, unpriced: ml.p4d.24xlarge")
    estimate = alert.message["estimate"]
    assert (estimate["lower_bound"], estimate["complete"]) == (True, False)
    assert estimate["unpriced"] == [{"instance_type": "ml.p4d.24xlarge", "instance_hours": "1.50"}]


def test_finish_message_subject_fits_a_long_pipeline_name() -> None:
    # Given a pipeline name of 256 characters (SageMaker's maximum)
    long_execution = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/{'a' * 256}/execution/abc123"

    # When
    alert = finish(execution_arn=long_execution)

    # Then the name is shortened, the figures kept
    assert_well_formed(*alert)
    assert alert.subject.endswith(f"... by {CONSUMER} Succeeded: est. USD 11.75, MTD 50.0% of budget")


def test_finish_message_refuses_an_execution_that_has_not_ended() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="has not ended"):
        finish(status="Executing")
