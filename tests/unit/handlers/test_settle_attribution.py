"""functions/settle_attribution: the settle queue (SQS), with the execution records, grants, trail status and spend in
memory. The message is the SQS record the local stack delivers around a SettleRequest for the execution of an events/
fixture (tests/fuzz_strategies.seeds)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.fakes import FakeCostRepository, FakeExecutionRepository, FakeGrantRepository, FakeTrailStatus
from tests.fuzz_strategies import seeds
from tests.unit.handlers.conftest import Invoker, assert_refused_without_side_effect

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "settle_attribution"
MESSAGE = seeds(HANDLER)["sqs:settle_request"]
NO_FAILURE = {"batchItemFailures": []}


class Owner:
    def __init__(self) -> None:
        self.executions = FakeExecutionRepository()
        self.grants = FakeGrantRepository()
        self.trail = FakeTrailStatus()
        self.spend = FakeCostRepository()

    def ports(self) -> dict[str, Any]:
        return {
            "get_execution_repository": self.executions,
            "get_grant_repository": self.grants,
            "get_trail_status": self.trail,
            "get_cost_repository": self.spend,
        }


def test_a_settle_request_is_processed_without_item_failure(invoke: Invoker) -> None:
    # Given a settle request for an execution
    owner = Owner()

    # When the queue delivers it
    run = invoke(copy.deepcopy(MESSAGE), **owner.ports())

    # Then its record is read, and the batch reports no failure, nothing refused
    assert run.calls_to("get_execution_repository")[:1] == ["get"]
    assert run.result == NO_FAILURE
    assert run.errors == []
    assert run.metrics["InvalidEvent"] == 0


def _message(change: Any) -> dict[str, Any]:
    message = copy.deepcopy(MESSAGE)
    change(message["Records"][0])
    return message


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param({}, "not a SQS batch", id="not-a-batch"),
        pytest.param(_message(lambda r: r.pop("messageId")), "not a SQS batch", id="record-without-its-id"),
        pytest.param({"Records": [1]}, "not a SQS batch", id="record-not-an-object"),
    ],
)
def test_a_malformed_batch_is_refused_once_without_any_port_call(invoke: Invoker, event: Any, reason: str) -> None:
    # Given a queue batch Lambda could not have delivered
    owner = Owner()

    # When it is handed to the handler
    run = invoke(event, **owner.ports())

    # Then it is refused once, with no item failure and no port call
    assert_refused_without_side_effect(run, event_id=None, answer=NO_FAILURE, reason=reason)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("not json", id="not-json"),
        pytest.param(json.dumps({"execution_arn": "x", "action": "start", "attempt": 0}), id="bad-arn"),
        pytest.param(json.dumps({"action": "start", "attempt": 0}), id="missing-field"),
    ],
)
def test_an_invalid_message_is_refused_with_its_message_id(invoke: Invoker, body: str) -> None:
    # Given a message whose body is not a settle request
    owner = Owner()
    event = _message(lambda r: r.update(body=body))

    # When it arrives
    run = invoke(event, **owner.ports())

    # Then it is refused with its messageId, not retried, and nothing is read or written
    assert_refused_without_side_effect(run, event_id=event["Records"][0]["messageId"], answer=NO_FAILURE)
    assert owner.executions.saves == []
