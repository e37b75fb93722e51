"""Input contracts of the budget watcher: the Parameter Store Change event (events/ fixture, from the Systems Manager
guide) and the schedule; the owner-table stream images it acts on."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from pipeshare.models.budget_events import (
    BudgetTrigger,
    ConsumerTotalImage,
    EstimateImage,
    ExecutionStateImage,
    ParameterStoreChangeEvent,
    UnattributedTotalImage,
    image_model,
)
from pipeshare.models.events import ScheduledEvent
from tests.conftest import load_event

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER = "111111111111", "222222222222"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/p4jn9xou8a8s"


def test_the_parameter_store_change_fixture_is_a_budget_trigger_naming_the_parameter() -> None:
    # Given / When
    trigger = BudgetTrigger.model_validate({"event": load_event("ssm_parameter_store_change_budget_policy")})

    # Then
    assert isinstance(trigger.event, ParameterStoreChangeEvent)
    assert (trigger.event.detail.name, trigger.event.detail.operation) == ("/pipeshare/budgets", "Update")


def test_the_schedule_is_a_budget_trigger() -> None:
    # Given / When / Then
    assert isinstance(
        BudgetTrigger.model_validate({"event": load_event("scheduled_event_docs_example")}).event, ScheduledEvent
    )


@pytest.mark.parametrize(
    "change",
    [
        {"source": "aws.ram"},
        {"detail-type": "Parameter Store Policy Action"},
        {"detail": {"operation": "Update"}},
        {"detail": {"name": "/pipeshare/budgets"}},
        {"extra": True},
    ],
    ids=["other-source", "policy-action", "no-name", "no-operation", "envelope-key"],
)
def test_other_events_are_refused(change: dict[str, Any]) -> None:
    # Given the fixture changed / When / Then it is not a budget trigger
    with pytest.raises(ValidationError):
        BudgetTrigger.model_validate({"event": {**load_event("ssm_parameter_store_change_budget_policy"), **change}})


def test_a_consumer_total_from_before_confirmed_total_confirms_nothing() -> None:
    # Given an item written before the confirmed part existed
    image = {"pk": "SPEND#2026-05", "sk": f"CONSUMER#{CONSUMER}", "kind": "consumer-total",
             "consumer_account": CONSUMER, "month": "2026-05", "total": Decimal("3.5")}  # fmt: skip

    # When / Then
    assert image_model(image) is ConsumerTotalImage
    spend = ConsumerTotalImage.model_validate(image).spend()
    assert (spend.total, spend.confirmed_total) == (Decimal("3.5"), 0)


def test_an_unattributed_total_takes_its_month_from_the_key() -> None:
    # Given / When
    image = {"pk": "SPEND#2026-05", "sk": f"UNATTRIBUTED#PIPELINE#{PIPELINE}", "kind": "unattributed-pipeline-total",
             "pipeline_arn": PIPELINE, "total": Decimal("2")}  # fmt: skip
    line = UnattributedTotalImage.model_validate(image).line()

    # Then
    assert (line.month, line.pipeline_arn, line.total) == ("2026-05", PIPELINE, Decimal("2"))


def test_an_execution_state_becomes_a_run_view() -> None:
    # Given the tracker's flat attributes (numbers as the stream gives them: Decimal)
    image = {"pk": f"EXECUTION#{EXECUTION}", "sk": "STATE", "item_type": "execution", "execution_arn": EXECUTION,
             "pipeline_arn": PIPELINE, "status": "Executing", "open_status": "Executing", "attempt": Decimal(2),
             "initiator_account": CONSUMER, "attribution_source": "forwarded", "worst_case_usd": Decimal("5.66"),
             "worst_case_complete": False, "record": "{}"}  # fmt: skip

    # When
    run = ExecutionStateImage.model_validate(image).run()

    # Then
    assert (run.attempt, run.initiator_account, run.worst_case_usd, run.open_status) == (
        2,
        CONSUMER,
        Decimal("5.66"),
        "Executing",
    )


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ({"item_type": "estimate"}, EstimateImage),
        ({"item_type": "alert"}, None),
        ({"kind": "pipeline-total"}, None),
        ({}, None),
    ],
)
def test_image_model_routes_by_kind_and_item_type(image: dict[str, Any], expected: type | None) -> None:
    # Given / When / Then
    assert image_model(image) is expected


def test_an_estimate_image_keys_its_execution_and_lists_what_nobody_could_price() -> None:
    # Given / When
    image = EstimateImage.model_validate(
        {
            "pk": f"EXECUTION#{EXECUTION}",
            "sk": "ESTIMATE",
            "item_type": "estimate",
            "consumer_account": CONSUMER,
            "unpriced": ["ml.p5.48xlarge"],
            "complete": False,
        }
    )

    # Then
    assert (image.execution_key, image.unpriced) == (EXECUTION, ["ml.p5.48xlarge"])
