"""Owner-side handlers refuse malformed input: one error line, an InvalidEvent metric, no AWS call, no retry."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipeshare_local.stack import LocalStack
from tests.conftest import load_event
from tests.integration.stackhelpers import OWNER


def _malformed_cloudtrail() -> dict[str, Any]:
    event = load_event("cloudtrail_start_pipeline_execution_consumer")
    event["detail"]["userIdentity"]["accountId"] = 222222222222  # a number, not a string
    return event


def _bad_envelope_account() -> dict[str, Any]:
    event = load_event("sagemaker_execution_status_executing")
    event["account"] = "11111111111"  # 11 digits: the receiving account is security-relevant, checked strictly
    return event


def _status_without_arn() -> dict[str, Any]:
    event = load_event("sagemaker_execution_status_executing")
    del event["detail"]["pipelineExecutionArn"]
    return event


BAD_EVENTS = {
    "wrong_source": lambda: load_event("invalid_wrong_source"),
    "missing_detail": lambda: load_event("invalid_missing_detail"),
    "wrong_types": lambda: load_event("invalid_wrong_types"),
    "malformed_cloudtrail": _malformed_cloudtrail,
    "bad_envelope_account": _bad_envelope_account,
    "status_without_execution": _status_without_arn,
    "not_an_object": lambda: ["not", "an", "event"],
}


@pytest.mark.parametrize("name", sorted(BAD_EVENTS))
@pytest.mark.parametrize("function", ["TrackExecutionsFunction", "OwnerInventoryFunction"])
def test_owner_handler_rejects_malformed_events(stack: LocalStack, function: str, name: str) -> None:
    # Given an owner deployment
    stack.deploy(OWNER, {"Mode": "owner"})
    event = BAD_EVENTS[name]()
    before = len(stack.calls(OWNER, functions_only=True))
    # When the malformed event is invoked asynchronously
    attempts = stack.deployments[OWNER].functions[function].invoke_async(event, trigger="test")
    # Then one attempt, the InvalidEvent metric, one error line, and no AWS call
    assert len(attempts) == 1
    assert attempts[0].result == {"status": "invalid"}
    assert attempts[0].metrics.get("InvalidEvent") == 1
    assert len([line for line in attempts[0].logs if line.get("level") == "ERROR"]) == 1
    assert stack.calls(OWNER, functions_only=True)[before:] == []


def test_owner_notifier_skips_a_malformed_outbox_item(stack: LocalStack) -> None:
    # Given a stream record whose item is neither an inventory change nor an alert
    stack.deploy(OWNER, {"Mode": "owner"})
    event = copy.deepcopy(load_event("ddb_stream_decision_accepted"))
    image = event["Records"][0]["dynamodb"]["NewImage"]
    image["sk"] = {"S": "ALERT#start"}
    image["item_type"] = {"S": "mystery"}
    # When the owner notifier receives it
    invocation = stack.deployments[OWNER].functions["NotifyOwnerFunction"].invoke_once(event, trigger="test")
    # Then it is counted as invalid, not retried, not published
    assert invocation.result == {"batchItemFailures": []}
    assert invocation.metrics["InvalidEvent"] == 1
    assert stack.read_notifications(OWNER) == []
