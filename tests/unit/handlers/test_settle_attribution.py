"""functions/settle_attribution: the settle queue (SQS), with the execution records, grants, trail status and spend in
memory. The message is the SQS record the local stack delivers around a SettleRequest for the execution of an events/
fixture (tests/fuzz_strategies.seeds); the execution is on record as the tracker leaves a status-event start nobody has
claimed (source `unknown`), its cost already counted, unattributed."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.attribution import ExecutionRecord, merge, observe_call, observe_status
from pipeshare.models.owner import ALLOW_EXECUTION, UNATTRIBUTED, CountedJob, Grant, SpendHolder
from pipeshare.models.owner_events import PipelineApiCallEvent, PipelineExecutionStatusEvent
from tests.conftest import load_event
from tests.fakes import (
    CONSUMER,
    OWNER,
    FakeCostRepository,
    FakeExecutionRepository,
    FakeGrantRepository,
    FakeTrailStatus,
)
from tests.fuzz_strategies import seeds
from tests.unit.handlers.conftest import Invoker, assert_refused_without_side_effect

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "settle_attribution"
MESSAGE = seeds(HANDLER)["sqs:settle_request"]
NO_FAILURE = {"batchItemFailures": []}
EXECUTING = load_event("sagemaker_execution_status_executing")
EXECUTION = json.loads(MESSAGE["Records"][0]["body"])["execution_arn"]
PIPELINE = EXECUTING["detail"]["pipelineArn"]
MONTH = "2024-05"
COUNTED = Decimal("1.25")


def unclaimed_start() -> ExecutionRecord:
    """The record the tracker keeps of a status-event start nobody has claimed (logic/attribution.merge)."""
    record = merge(None, observe_status(PipelineExecutionStatusEvent.model_validate(EXECUTING)))
    assert record.execution_arn == EXECUTION
    assert record.source == "unknown"
    return record


def started_by_the_owner() -> ExecutionRecord:
    """The same start with the owner's own CloudTrail record of the call merged in."""
    call = observe_call(
        PipelineApiCallEvent.model_validate(load_event("cloudtrail_start_pipeline_execution_owner")),
        owner_account=OWNER,
    )
    assert call is not None
    return merge(unclaimed_start(), call)


def allow_execution(consumer: str) -> Grant:
    return Grant.model_validate(
        {
            "pipeline_arn": PIPELINE,
            "consumer": consumer,
            "association_status": "ASSOCIATED",
            "share_arn": f"arn:aws:ram:us-east-1:{OWNER}:resource-share/s1",
            "share_name": "churn-share",
            "permission_arn": f"arn:aws:ram::aws:permission/{ALLOW_EXECUTION}",
            "permission_name": ALLOW_EXECUTION,
        }
    )


class Owner:
    def __init__(
        self, record: ExecutionRecord | None = None, *grants: Grant, trail_records_owner_calls: bool = True
    ) -> None:
        self.executions = FakeExecutionRepository()
        if record is not None:
            self.executions.seed(record)
        self.grants = FakeGrantRepository(grants)
        self.trail = FakeTrailStatus(recorded=trail_records_owner_calls)
        self.spend = FakeCostRepository()

    def count_unattributed(self) -> None:
        """What the cost estimator counted for the execution before anybody was attributed."""
        job = CountedJob(
            f"arn:aws:sagemaker:us-east-1:{OWNER}:processing-job/prep", "Preprocess", "processing", COUNTED, {}
        )
        assert self.spend.commit(
            EXECUTION,
            holder=UNATTRIBUTED,
            pipeline_arn=PIPELINE,
            month=MONTH,
            jobs=[job],
            estimate={"steps": [], "complete": True, "total": COUNTED},
            version=0,
            at=unclaimed_start().status_at,  # type: ignore[arg-type]
        )

    def ports(self) -> dict[str, Any]:
        return {
            "get_execution_repository": self.executions,
            "get_grant_repository": self.grants,
            "get_trail_status": self.trail,
            "get_cost_repository": self.spend,
        }


def test_a_settle_request_infers_the_only_allow_execution_consumer_and_makes_its_alert_due(invoke: Invoker) -> None:
    # Given an unclaimed start of a pipeline one consumer may run, its cost counted unattributed
    owner = Owner(unclaimed_start(), allow_execution(CONSUMER))
    owner.count_unattributed()

    # When the settle period has passed and the queue delivers the settle request
    run = invoke(copy.deepcopy(MESSAGE), **owner.ports())

    # Then the start is attributed to that consumer, inferred from the grants
    record = owner.executions.record(EXECUTION)
    assert record is not None
    assert (record.source, record.initiator_account, record.candidates) == ("inferred", CONSUMER, (CONSUMER,))
    # and exactly one start alert is due, naming the consumer, the evidence and the grant that allowed it
    assert owner.executions.alert_items() == ["ALERT#start"]
    [alert] = owner.executions.alerts.values()
    assert (alert.message["event"], alert.message["consumer_account"]) == ("execution.start", CONSUMER)
    assert alert.message["attribution"]["source"] == "inferred"
    assert "grants" in alert.message["attribution"]["evidence"]
    assert alert.message["attribution"]["caveat"].startswith(f"Inferred, not observed: account {CONSUMER}")
    assert alert.message["grant"]["consumer"] == CONSUMER
    assert alert.attributes["consumer_account"] == CONSUMER
    # and the cost already counted now counts toward the consumer (inferred, not confirmed)
    assert owner.spend.moves == [SpendHolder("consumer", CONSUMER, False)]
    assert owner.spend.month_spend(MONTH, CONSUMER) == COUNTED
    assert owner.spend.unattributed_spend(MONTH, PIPELINE) == 0
    # the batch reports no failure, nothing refused
    assert owner.trail.regions == ["us-east-1"]
    assert run.result == NO_FAILURE
    assert run.errors == []
    assert run.metrics["InvalidEvent"] == 0


def test_a_redelivered_settle_request_makes_no_second_alert(invoke: Invoker) -> None:
    # Given a settle request already processed once
    owner = Owner(unclaimed_start(), allow_execution(CONSUMER))
    owner.count_unattributed()
    invoke(copy.deepcopy(MESSAGE), **owner.ports())
    settled = owner.executions.record(EXECUTION)

    # When the queue delivers it again (at-least-once)
    run = invoke(copy.deepcopy(MESSAGE), **owner.ports())

    # Then nothing more is written: one alert, the same record, the spend moved once
    assert owner.executions.alert_items() == ["ALERT#start"]
    assert [written for *_, written in owner.executions.saves] == [True]
    assert owner.executions.record(EXECUTION) == settled
    assert owner.spend.moves == [SpendHolder("consumer", CONSUMER, False)]
    assert owner.spend.month_spend(MONTH, CONSUMER) == COUNTED
    assert run.result == NO_FAILURE
    assert run.errors == []


def test_a_settle_request_for_a_start_the_owner_claimed_makes_no_consumer_alert(invoke: Invoker) -> None:
    # Given the owner's own start: its CloudTrail record arrived within the settle period; a consumer holds a grant
    owner = Owner(started_by_the_owner(), allow_execution(CONSUMER))

    # When the settle request is delivered
    run = invoke(copy.deepcopy(MESSAGE), **owner.ports())

    # Then nothing is inferred nor alerted: the record still names the owner
    record = owner.executions.record(EXECUTION)
    assert record is not None
    assert (record.source, record.initiator_account) == ("owner", OWNER)
    assert owner.executions.alerts == {}
    assert owner.executions.saves == []
    assert owner.spend.moves == []
    assert run.result == NO_FAILURE


def test_a_settle_request_without_any_grant_and_no_owner_trail_leaves_the_owner_unalerted(invoke: Invoker) -> None:
    # Given an unclaimed start, no allow-execution grant on the pipeline, and no trail recording the owner's calls
    owner = Owner(unclaimed_start(), trail_records_owner_calls=False)
    owner.count_unattributed()

    # When the settle request is delivered (AlertOnOwnerExecutions at its template default: false)
    assert invoke.environment["ALERT_ON_OWNER_EXECUTIONS"] == "false"
    run = invoke(copy.deepcopy(MESSAGE), **owner.ports())

    # Then only the owner could have started it: inferred to the owner, no alert, and the cost counted toward no
    # consumer (an inference is not the owner's confirmed run: it stays unattributed)
    record = owner.executions.record(EXECUTION)
    assert record is not None
    assert (record.source, record.initiator_account) == ("inferred", OWNER)
    assert owner.executions.alerts == {}
    assert owner.spend.moves == []
    assert owner.spend.month_spend(MONTH, CONSUMER) == 0
    assert owner.spend.unattributed_spend(MONTH, PIPELINE) == COUNTED
    assert run.result == NO_FAILURE
    assert run.errors == []


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
