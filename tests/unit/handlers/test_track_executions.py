"""functions/track_executions: SageMaker execution status events and CloudTrail Start/Stop/Retry calls, with the
execution records, grants, SageMaker, the settle queue, spend and the start projection's sources in memory."""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare.logic.estimate import load_shipped_prices
from tests.conftest import load_event
from tests.fakes import (
    FakeBudgetSource,
    FakeCostRepository,
    FakeDefinitionGateway,
    FakeExecutionGateway,
    FakeExecutionRepository,
    FakeGrantRepository,
    FakePriceLookup,
    FakeRunHistory,
    FakeSettleScheduler,
)
from tests.unit.handlers.conftest import Invoker, PlainValue, assert_refused_without_side_effect, invalid_fixtures

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "track_executions"


class Owner:
    def __init__(self) -> None:
        self.executions = FakeExecutionRepository()
        self.grants = FakeGrantRepository()
        self.sagemaker = FakeExecutionGateway()
        self.queue = FakeSettleScheduler()
        self.spend = FakeCostRepository()
        self.definitions = FakeDefinitionGateway()
        self.history = FakeRunHistory()
        self.budgets = FakeBudgetSource(None)
        self.price_list = FakePriceLookup()

    def ports(self) -> dict[str, Any]:
        return {
            "get_execution_repository": self.executions,
            "get_grant_repository": self.grants,
            "get_execution_gateway": self.sagemaker,
            "get_settle_scheduler": self.queue,
            "get_cost_repository": self.spend,
            "get_definition_gateway": self.definitions,
            "get_run_history": self.history,
            "get_budget_source": self.budgets,
            "get_prices": PlainValue(load_shipped_prices()),
            "get_price_lookup": self.price_list,
        }


EXECUTING = load_event("sagemaker_execution_status_executing")
EXECUTION = EXECUTING["detail"]["pipelineExecutionArn"]


def test_an_unclaimed_start_is_recorded_and_scheduled_to_settle_once(invoke: Invoker) -> None:
    # Given an execution nobody has claimed yet
    owner = Owner()

    # When its Executing status event arrives
    run = invoke(EXECUTING, **owner.ports())

    # Then it is recorded once, and its start is scheduled to settle after the template's settle period
    assert owner.executions.saves == [(EXECUTION.lower(), 0, True)]
    [(request, delay)] = owner.queue.scheduled
    assert request.execution_arn == EXECUTION
    assert delay == int(invoke.environment["INFERENCE_SETTLE_MINUTES"]) * 60
    assert owner.executions.alert_items() == []
    assert (run.result["status"], run.result["execution_arn"], run.result["settling"]) == (
        "recorded",
        EXECUTION,
        ["start"],
    )
    assert run.errors == []


def test_the_event_delivered_again_records_and_schedules_nothing_more(invoke: Invoker) -> None:
    # Given an execution the first delivery recorded
    owner = Owner()
    invoke(EXECUTING, **owner.ports())

    # When the same event comes again
    run = invoke(EXECUTING, **owner.ports())

    # Then nothing more is saved nor scheduled
    assert len(owner.executions.saves) == 1
    assert len(owner.queue.scheduled) == 1
    assert run.result["status"] == "duplicate"


def test_a_start_call_for_an_execution_sagemaker_does_not_know_is_not_recorded(invoke: Invoker) -> None:
    # Given a CloudTrail StartPipelineExecution for an execution this account does not have
    owner = Owner()

    # When it arrives
    run = invoke(load_event("cloudtrail_start_pipeline_execution_consumer"), **owner.ports())

    # Then it is checked with SageMaker and nothing is recorded
    assert owner.sagemaker.calls == [EXECUTION]
    assert owner.executions.saves == []
    assert run.result["status"] == "unverified"


@pytest.mark.parametrize(
    "event",
    [
        *invalid_fixtures(),
        pytest.param(load_event("sagemaker_execution_status_executing", detail_type="Other"), id="wrong-type"),
        pytest.param(load_event("cloudtrail_start_pipeline_execution_consumer", source="custom"), id="wrong-source"),
    ],
)
def test_an_invalid_event_is_refused_once_without_any_port_call(invoke: Invoker, event: Any) -> None:
    # Given an event that is not an execution event
    owner = Owner()

    # When it is handed to the handler
    run = invoke(event, **owner.ports())

    # Then one error line with its id, one InvalidEvent, {"status": "invalid"}; nothing recorded or scheduled
    assert_refused_without_side_effect(run, event_id=event["id"], answer={"status": "invalid"})
    assert owner.executions.saves == []
    assert owner.queue.scheduled == []
