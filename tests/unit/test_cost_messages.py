"""pipeshare.logic.cost_messages: the message sent when a consumer's execution ends."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.cost_messages import FINISH_SCHEMA, finish_message
from tests.unit.test_budgets import CONSUMER, EXECUTION, MONTH, OWNER, assert_well_formed, budget

pytestmark = pytest.mark.usefixtures("socket_disabled")


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
    assert alert.message["schema"] == FINISH_SCHEMA
    assert set(alert.message) >= {
        "consumer_account",
        "execution_arn",
        "execution",
        "estimate",
        "month_to_date",
        "billing",
    }
    assert alert.attributes == {
        "event": "execution.finished",
        "consumer_account": CONSUMER,
        "owner_account": OWNER,
        "month": MONTH,
        "status": "Succeeded",
    }


def test_finish_message_breaks_down_the_cost_per_step() -> None:
    # Given / When
    estimate = finish().message["estimate"]

    # Then
    assert (estimate["total"], estimate["complete"]) == ("11.75", True)
    assert estimate["steps"] == [
        {"step": "Preprocess", "type": "Processing", "state": "Succeeded", "cost": "1.25", "issues": []},
        {"step": "Train", "type": "Training", "state": "Succeeded", "cost": "10.5", "issues": []},
    ]


def test_finish_message_gives_month_to_date_against_the_budget() -> None:
    # Given / When
    mtd = finish().message["month_to_date"]

    # Then
    assert (mtd["month"], mtd["consumer_spend"]) == (MONTH, "125")
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
