"""functions/estimate_cost: SageMaker step and execution status events and the running-estimate schedule, with the
owner table's cost items, SageMaker, the budget policy and the price list in memory."""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare.logic.estimate import load_shipped_prices
from tests.conftest import load_event
from tests.fakes import FakeBudgetSource, FakeCostDataGateway, FakeCostRepository, FakePriceLookup
from tests.unit.handlers.conftest import Invoker, PlainValue, assert_refused_without_side_effect, invalid_fixtures

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "estimate_cost"
ENDED = load_event("sagemaker_execution_status_succeeded")
EXECUTION = ENDED["detail"]["pipelineExecutionArn"]
PRICES = load_shipped_prices()


class Owner:
    def __init__(self) -> None:
        self.costs = FakeCostRepository()
        self.sagemaker = FakeCostDataGateway()
        self.budgets = FakeBudgetSource(None)
        self.price_list = FakePriceLookup()

    def ports(self) -> dict[str, Any]:
        return {
            "get_cost_repository": self.costs,
            "get_cost_gateway": self.sagemaker,
            "get_prices": PlainValue(PRICES),
            "get_price_lookup": self.price_list,
            "get_budget_source": self.budgets,
        }


def test_an_ended_execution_is_finalised_once_with_its_run(invoke: Invoker) -> None:
    # Given an execution SageMaker reports ended, with no step to count
    owner = Owner()

    # When its status event arrives
    run = invoke(ENDED, **owner.ports())

    # Then its estimate is finalised in one written commit (attempt 1, its status), a RUNS item is kept, and the finish
    # alert waits for an attribution (no consumer known yet)
    [commit] = owner.costs.commits
    assert commit.written
    assert commit.execution_arn == EXECUTION
    assert commit.finalise is not None
    assert (commit.finalise.attempt, commit.finalise.status) == (1, "Succeeded")
    assert commit.pending_finish
    assert [r["execution_arn"] for r in owner.costs.runs] == [EXECUTION]
    assert owner.sagemaker.calls_to("ListPipelineExecutionSteps") == [EXECUTION]
    assert run.result["status"] == "finalised"
    assert run.result["execution_arn"] == EXECUTION
    assert (run.result["added"], run.result["total"], run.result["attempt"]) == ("0", "0", 1)
    assert run.result["alerts"] == ["finish-pending"]
    assert run.errors == []


def test_the_ended_event_delivered_again_finalises_nothing_more(invoke: Invoker) -> None:
    # Given an execution already finalised
    owner = Owner()
    invoke(ENDED, **owner.ports())

    # When the same event comes again
    run = invoke(ENDED, **owner.ports())

    # Then no second finalisation is written, one RUNS item stays
    assert [c.written for c in owner.costs.commits if c.finalise is not None].count(True) == 1
    assert len(owner.costs.runs) == 1
    assert len(owner.costs.pending) == 1
    assert run.result["execution_arn"] == EXECUTION
    assert run.errors == []


def test_a_step_whose_job_cannot_be_described_yet_counts_nothing(invoke: Invoker) -> None:
    # Given a step event whose job SageMaker does not describe (yet)
    owner = Owner()

    # When it arrives
    run = invoke(load_event("sagemaker_step_status_succeeded"), **owner.ports())

    # Then nothing is counted and the response says why
    assert owner.costs.commits == []
    assert len(owner.sagemaker.describes) == 1
    assert (run.result["status"], run.result["added"]) == ("ignored", "0")
    assert run.result["reason"]


def test_the_schedule_with_nothing_running_counts_nothing(invoke: Invoker) -> None:
    # Given no open execution and no finish waiting
    owner = Owner()

    # When the running-estimate schedule fires
    run = invoke(load_event("scheduled_event_docs_example"), **owner.ports())

    # Then nothing is written and the tick says so
    assert owner.costs.commits == []
    assert (run.result["status"], run.result["executions"], run.result["added"]) == ("ticked", 0, "0")
    assert run.result["errors"] == []


def _schedule_without_detail() -> dict[str, Any]:
    event = load_event("scheduled_event_docs_example")
    del event["detail"]
    return event


@pytest.mark.parametrize(
    "event",
    [
        *invalid_fixtures(),
        pytest.param(load_event("sagemaker_step_status_succeeded", detail_type="Step Status Changed"), id="wrong-type"),
        pytest.param(load_event("sagemaker_execution_status_succeeded", source="custom.sagemaker"), id="wrong-source"),
        pytest.param(_schedule_without_detail(), id="malformed-schedule"),
        pytest.param(load_event("scheduled_event_docs_example", source="aws.sagemaker"), id="schedule-wrong-source"),
    ],
)
def test_an_invalid_event_is_refused_once_without_any_port_call(invoke: Invoker, event: Any) -> None:
    # Given an event that is neither a SageMaker status event nor the schedule
    owner = Owner()
    owner.costs.open.append(EXECUTION)

    # When it is handed to the handler
    run = invoke(event, **owner.ports())

    # Then one error line with its id, one InvalidEvent metric, {"status": "invalid"}; nothing read, counted or alerted
    assert_refused_without_side_effect(run, event_id=event["id"], answer={"status": "invalid"})
    assert owner.costs.calls == []
    assert owner.sagemaker.api_calls == []
    assert owner.budgets.loads == 0
