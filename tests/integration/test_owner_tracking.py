"""Consumer-started executions detected, attributed and alerted on the owner side (local stack)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.settings import Fault
from pipeshare_local.stack import LocalStack
from tests.conftest import load_event
from tests.integration.stackhelpers import CONSUMER, CONSUMER_B, OWNER, create_pipeline, deploy_shared_pipeline

OWNER_BUS_ARN = f"arn:aws:events:us-east-1:{OWNER}:event-bus/pipeshare-owner"
SETTLE = timedelta(minutes=10)  # InferenceSettleMinutes' default in template.yaml


def _setup(
    stack: LocalStack,
    *,
    consumers: tuple[str, ...] = (CONSUMER,),
    permission: str = "allow-execution",
    forward: bool = False,
) -> str:
    pipeline = create_pipeline(stack, OWNER, "churn-train")
    deploy_shared_pipeline(
        stack,
        pipeline,
        consumers,
        permission=permission,
        consumer_parameters={"OwnerEventBusArn": OWNER_BUS_ARN} if forward else None,
        ForwarderAccountIds=",".join(consumers),
    )
    return pipeline


def _start(stack: LocalStack, account: str, request_id: str = "t") -> str:
    """StartPipelineExecution on the owner's pipeline, by the owner (by name) or a consumer (by ARN)."""
    name = "churn-train" if account == OWNER else f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
    arn = stack.client(account, "sagemaker").start_pipeline_execution(
        PipelineName=name, ClientRequestToken=request_id * 32
    )["PipelineExecutionArn"]
    stack.deliver()
    return str(arn)


def _call_event(name: str, execution_arn: str) -> dict[str, Any]:
    text = json.dumps(load_event(name)).replace(
        "arn:aws:sagemaker:us-east-1:111111111111:pipeline/churn-train/execution/p4jn9xou8a8s", execution_arn
    )
    return json.loads(text)


def _record(stack: LocalStack, execution_arn: str) -> dict[str, Any] | None:
    items = [
        i
        for i in stack.table_items(OWNER, "OwnerTable")
        if i["pk"] == f"EXECUTION#{execution_arn.lower()}" and i["sk"] == "STATE"
    ]
    return items[0] if items else None


def _alerts(stack: LocalStack) -> list[dict[str, Any]]:
    return [
        n
        for n in stack.read_notifications(OWNER)
        if n["topic"] == "OwnerTopic" and n["message"].get("schema", "").startswith("pipeshare.owner.execution-alert")
    ]


def test_consumer_start_seen_only_through_status_is_inferred_and_alerted(stack: LocalStack) -> None:
    # Given a pipeline shared allow-execution with one consumer
    _setup(stack)
    # When the consumer starts the owner's pipeline by ARN (no CloudTrail record reaches the owner)
    execution = _start(stack, CONSUMER)
    # Then nothing is pinned on anybody before the settle period has passed
    assert (_record(stack, execution)["attribution_source"], _alerts(stack)) == ("unknown", [])
    stack.advance(SETTLE - timedelta(seconds=30))
    assert _alerts(stack) == []
    # and once it has, it is attributed to that consumer (inferred) and the owner team is alerted once
    stack.advance(timedelta(seconds=30))
    record = _record(stack, execution)
    assert (record["attribution_source"], record["initiator_account"]) == ("inferred", CONSUMER)
    [alert] = _alerts(stack)
    assert CONSUMER in alert["subject"]
    assert alert["message"]["execution_arn"].lower() == execution.lower()


def test_duplicate_and_late_events_alert_once(stack: LocalStack) -> None:
    # Given a consumer-started execution that ran to the end
    _setup(stack)
    execution = _start(stack, CONSUMER)
    stack.advance(timedelta(minutes=30))
    # When every owner-side event is delivered again, newest first
    for delivered in reversed([d.event for d in stack.delivered if d.account == OWNER and not d.dropped]):
        stack.put_event(OWNER, delivered)
    stack.deliver()
    # Then one alert, and the record ends Succeeded with its whole history
    assert len(_alerts(stack)) == 1
    record = _record(stack, execution)
    assert record["status"] == "Succeeded"
    assert set(record["status_history"]) == {"Executing", "Succeeded"}


def test_forwarded_start_is_verified_attributed_and_upgrades_nothing_later(stack: LocalStack) -> None:
    # Given a consumer forwarding its CloudTrail records to the owner bus
    _setup(stack, forward=True)
    # When the consumer starts the owner's pipeline
    execution = _start(stack, CONSUMER)
    # Then the record names the consumer's principal, source forwarded, and one alert was sent
    record = _record(stack, execution)
    assert (record["attribution_source"], record["initiator_account"]) == ("forwarded", CONSUMER)
    assert record["initiator_principal"].startswith(f"arn:aws:sts::{CONSUMER}:assumed-role/")
    # (inference waits for the settle period, so the one alert names the forwarded evidence, even after it)
    stack.advance(SETTLE)
    [alert] = _alerts(stack)
    assert alert["message"]["attribution"]["source"] == "forwarded"
    assert alert["message"]["grant"]["permission_name"] == "AWSRAMPermissionSageMakerPipelineAllowExecution"
    assert "pays for everything" in alert["message"]["billing"]["statement"]
    assert alert["message"]["attribution"]["rank"] == 3  # a JSON number, as composed


def test_forwarded_record_after_inference_upgrades_the_source_without_a_second_alert(stack: LocalStack) -> None:
    # Given a forwarding consumer whose forwarded record is delayed: the status event comes first
    _setup(stack, forward=True)
    execution = _start(stack, CONSUMER)
    forwarded = [d.event for d in stack.delivered if d.bus == "pipeshare-owner"]
    # When the same forwarded record arrives again (late duplicate)
    for event in forwarded:
        stack.put_event(CONSUMER, event)
    stack.deliver()
    # Then: forwarded, one alert
    assert _record(stack, execution)["attribution_source"] == "forwarded"
    assert len(_alerts(stack)) == 1


def test_forwarded_record_naming_an_unknown_execution_is_ignored(stack: LocalStack) -> None:
    # Given forwarding, and a forwarded record naming an execution that does not exist in the owner account
    _setup(stack, forward=True)
    fake = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/churn-train/execution/doesnotexist"
    stack.put_event(CONSUMER, _call_event("cloudtrail_start_pipeline_execution_consumer", fake))
    stack.deliver()
    # Then nothing is recorded or alerted, and the tracker says why
    assert _record(stack, fake) is None
    assert _alerts(stack) == []
    tracked = stack.deployments[OWNER].functions["TrackExecutionsFunction"].invocations
    assert [i.result["status"] for i in tracked] == ["unverified"]


def test_owners_own_start_is_recorded_without_alert(stack: LocalStack) -> None:
    _setup(stack)
    execution = _start(stack, OWNER)
    record = _record(stack, execution)
    assert (record["attribution_source"], record["initiator_account"]) == ("owner", OWNER)
    assert _alerts(stack) == []


def test_several_allow_execution_consumers_make_the_start_ambiguous(stack: LocalStack) -> None:
    _setup(stack, consumers=(CONSUMER, CONSUMER_B))
    execution = _start(stack, CONSUMER)
    stack.advance(SETTLE)
    record = _record(stack, execution)
    assert record["attribution_source"] == "ambiguous"
    assert sorted(record["candidates"]) == [CONSUMER, CONSUMER_B]
    [alert] = _alerts(stack)
    assert sorted(alert["message"]["candidates"]) == [CONSUMER, CONSUMER_B]


def test_read_only_consumer_cannot_start_and_nothing_runs(stack: LocalStack) -> None:
    # Given a read-only share
    _setup(stack, permission="read-only")
    # When the consumer tries to start the owner's pipeline
    with pytest.raises(ClientError) as denied:
        _start(stack, CONSUMER)
    # Then AWS answers AccessDenied, no execution exists and nobody is alerted
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    listed = stack.client(OWNER, "sagemaker").list_pipeline_executions(PipelineName="churn-train")
    assert listed["PipelineExecutionSummaries"] == []
    assert _alerts(stack) == []


def test_owner_copy_of_the_consumer_call_attributes_the_start(stack: LocalStack) -> None:
    # Given AWS delivering the owner a copy of the consumer's CloudTrail record (unconfirmed for SageMaker)
    _setup(stack)
    stack.sagemaker.owner_cloudtrail_copy = True
    # When the consumer starts the pipeline
    execution = _start(stack, CONSUMER)
    # Then the owner copy is the evidence
    record = _record(stack, execution)
    assert (record["attribution_source"], record["initiator_account"]) == ("cloudtrail-owner-copy", CONSUMER)
    assert len(_alerts(stack)) == 1


def test_consumer_stop_and_retry_are_alerted_as_their_own_actions(stack: LocalStack) -> None:
    # Given a forwarding consumer that starts, then stops, then retries an execution
    _setup(stack, forward=True)
    execution = _start(stack, CONSUMER)
    sagemaker = stack.client(CONSUMER, "sagemaker")
    sagemaker.stop_pipeline_execution(PipelineExecutionArn=execution, ClientRequestToken="s" * 32)
    stack.advance(timedelta(minutes=1))
    sagemaker.retry_pipeline_execution(PipelineExecutionArn=execution, ClientRequestToken="r" * 32)
    stack.deliver()
    # Then three alerts: start, stop, retry, each attributed to the consumer
    actions = sorted(a["message"]["action"] for a in _alerts(stack))
    assert actions == ["retry", "start", "stop"]


def test_inferred_alert_costs_three_calls_to_track_and_eight_to_settle_plus_the_publish(stack: LocalStack) -> None:
    # Given a consumer start the owner learns of by the status event only, of a pipeline whose step runs an hour
    # (the running-estimate tick also runs meanwhile: each function's calls are told apart by the key that signed them)
    _setup(stack)
    stack.sagemaker.define_steps(OWNER, "us-east-1", "churn-train", [StepSpec(name="Train", duration_seconds=3600)])

    def ops(function: str) -> list[str]:
        return [c[2] for c in stack.calls(OWNER, function=function)]

    published = len(ops("NotifyOwnerFunction"))  # the inventory message of the grant
    # When the execution starts
    execution = _start(stack, CONSUMER)
    # Then the tracker read the record, scheduled the settle message, wrote once
    assert ops("TrackExecutionsFunction") == ["GetItem", "SendMessage", "TransactWriteItems"]
    assert ops("SettleAttributionFunction") == []
    # When the settle period has passed (the tick has counted the running step's first minutes, held as unattributed)
    stack.advance(SETTLE)
    # Then the settler read the record and the grants, checked the owner's trail, read the estimate, moved its counted
    # spend to the inferred consumer (one transaction), wrote the record once; one publish
    assert ops("SettleAttributionFunction") == [
        "GetItem",
        "Query",
        "DescribeTrails",
        "GetTrailStatus",
        "GetEventSelectors",
        "GetItem",
        "TransactWriteItems",
        "TransactWriteItems",
    ]
    [estimate] = [
        i
        for i in stack.table_items(OWNER, "OwnerTable")
        if i["pk"] == f"EXECUTION#{execution.lower()}" and i["sk"] == "ESTIMATE"
    ]
    assert estimate["spend_holder"] == f"consumer:{CONSUMER}:inferred"
    assert estimate["total"] > 0
    # (the item's mark is read before the publish and written after it: published once)
    assert ops("NotifyOwnerFunction")[published:] == ["GetItem", "Publish", "PutItem"]
    assert ops("TrackExecutionsFunction") == ["GetItem", "SendMessage", "TransactWriteItems"]


def test_settle_of_a_start_claimed_by_the_forwarded_record_costs_one_call_and_no_alert(stack: LocalStack) -> None:
    # Given a forwarding consumer's start: the owner's status event records it unclaimed and schedules its settle,
    # then the forwarded CloudTrail record claims it (the one alert)
    _setup(stack, forward=True)

    def ops(function: str) -> list[str]:
        return [c[2] for c in stack.calls(OWNER, function=function)]

    execution = _start(stack, CONSUMER)
    assert _record(stack, execution)["attribution_source"] == "forwarded"
    assert "SendMessage" in ops("TrackExecutionsFunction")  # the settle request of the status event
    assert ops("SettleAttributionFunction") == []
    [alert] = _alerts(stack)
    # When the settle period has passed
    stack.advance(SETTLE)
    # Then the settler read the record once, found the start claimed, and did nothing more
    assert ops("SettleAttributionFunction") == ["GetItem"]
    [settle] = stack.deployments[OWNER].functions["SettleAttributionFunction"].invocations
    assert settle.result == {"batchItemFailures": []}
    [tracked] = [log for log in settle.logs if log.get("message") == "execution event tracked"]
    assert (tracked["status"], tracked["source"]) == ("duplicate", "forwarded")
    # and no second alert: the one alert still names the forwarded evidence
    assert _alerts(stack) == [alert]
    assert _record(stack, execution)["attribution_source"] == "forwarded"


def test_a_settle_request_failing_every_time_ends_in_the_settle_dlq_after_five_receives(stack: LocalStack) -> None:
    # Given a consumer start known by its status event only, and the settler's reads throttled on every call
    _setup(stack)
    execution = _start(stack, CONSUMER)
    stack.settings.faults = [
        Fault(
            service="dynamodb",
            operation="GetItem",
            function="SettleAttributionFunction",
            error="Throttling",
            count=100_000,
        )
    ]
    sqs = stack.client(OWNER, "sqs")
    url = stack.deployments[OWNER].refs["SettleQueue"]
    visibility = int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]["VisibilityTimeout"]
    )
    # When the settle period passes, then the queue hands the request back after each visibility timeout
    stack.advance(SETTLE)
    for _ in range(6):
        stack.advance(timedelta(seconds=visibility + 1))
    stack.settings.faults = []
    # Then the template's redrive policy (maxReceiveCount 5) moved it to SettleDlq: five failed settles, then no more
    settles = stack.deployments[OWNER].functions["SettleAttributionFunction"].invocations
    assert len(settles) == 5
    assert all((i.error or "").startswith("BatchProcessingError") for i in settles)  # its one record failed
    (dead,) = stack.queue_messages(OWNER, "SettleDlq")
    assert dead["execution_arn"] == execution
