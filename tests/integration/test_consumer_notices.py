"""The consumer is told too, on the local stack: the owner's budget watcher stops an over-budget consumer's run; the
owner notifier puts one enforcement notice on the consumer's notice bus (cross-account PutEvents, admitted by the
bus's policy); the consumer's relay publishes it to the consumer topic, once even when the event comes twice. A
notice from an account the bus does not admit is refused by EventBridge (AccessDeniedException), and one that gets
through to the relay from an untrusted sender is refused by the relay."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import CONSUMER, OWNER, STRANGER, create_pipeline, deploy_shared_pipeline
from tests.integration.test_owner_budgets import BUDGETS, OWNER_BUS, PIPELINE, STEPS, _budget, _put_policy

pytestmark = pytest.mark.local_stack

BUS = "pipeshare-notices"
CONSUMER_BUS = f"arn:aws:events:us-east-1:{CONSUMER}:event-bus/{BUS}"


def _setup(stack: LocalStack, consumers: dict[str, Any]) -> None:
    create_pipeline(stack, OWNER, "churn-train")
    stack.sagemaker.define_steps(OWNER, "us-east-1", "churn-train", STEPS)
    _put_policy(stack, consumers, deliver=False)
    deploy_shared_pipeline(
        stack,
        PIPELINE,
        (CONSUMER,),
        consumer_parameters={"OwnerEventBusArn": OWNER_BUS, "ConsumerNoticeBusName": BUS},
        BudgetPolicyParameterName=BUDGETS,
        ForwarderAccountIds=CONSUMER,
        ConsumerNoticeBusName=BUS,
    )


def _notices(stack: LocalStack) -> list[dict[str, Any]]:
    return [
        n
        for n in stack.read_notifications(CONSUMER)
        if n["message"].get("schema") == "pipeshare.consumer.enforcement-notice/1"
    ]


def _on_notice_bus(stack: LocalStack) -> list[dict[str, Any]]:
    return [d.event for d in stack.delivered if d.account == CONSUMER and d.bus == BUS]


def test_the_consumer_whose_run_is_stopped_is_told_once_even_when_the_event_comes_twice(stack: LocalStack) -> None:
    # Given a forwarding consumer with a 0.05 USD budget that stops its executions, both sides with the notice bus
    _setup(stack, {CONSUMER: _budget(enforce={"stop_executions": True})})
    execution = stack.client(CONSUMER, "sagemaker").start_pipeline_execution(
        PipelineName=PIPELINE, ClientRequestToken="n" * 32
    )["PipelineExecutionArn"]
    stack.deliver()

    # When its run's first step (about 0.08 USD) is counted and the owner stops the run
    stack.advance(timedelta(minutes=12))

    # Then one notice crossed to the consumer's bus, sent by the owner account, and the consumer topic got one message
    # naming the owner, the pipeline, the month's figure and the limit
    [event] = _on_notice_bus(stack)
    assert (event["account"], event["source"]) == (OWNER, "pipeshare.owner")
    [notice] = _notices(stack)
    body = notice["message"]
    assert (body["owner_account_id"], body["consumer_account_id"]) == (OWNER, CONSUMER)
    assert (body["action"], body["outcome"], body["execution_arn"]) == ("stop_execution", "done", execution)
    assert body["pipeline_arns"] == [PIPELINE]
    assert body["spend"]["monthly_limit"] == "0.05"
    assert float(body["spend"]["counted"]) >= 0.05
    assert notice["subject"].startswith(f"pipeshare: owner {OWNER} stopped your run of churn-train (budget ")

    # When EventBridge delivers the same event again (at least once)
    stack.put_event(CONSUMER, event, bus=BUS)
    stack.deliver()

    # Then the relay ran again, found the notice published (the same message id) and published nothing new
    relay = stack.deployments[CONSUMER].functions["RelayNoticesFunction"]
    first, second = relay.invocations
    assert second.result == first.result
    assert first.result["status"] == "relayed"
    assert _notices(stack) == [notice]


def test_a_stranger_is_refused_by_the_consumers_bus_and_by_the_relay(stack: LocalStack) -> None:
    # Given a consumer whose notice bus admits its trusted owner only
    _setup(stack, {CONSUMER: _budget(enforce={"stop_executions": True})})
    notice = {
        "schema": "pipeshare.consumer.enforcement-notice/1",
        "notice_id": "0" * 32,
        "owner_account_id": STRANGER,
        "consumer_account_id": CONSUMER,
        "month": "2026-05",
        "action": "stop_execution",
        "outcome": "done",
        "dry_run": False,
        "reason": "over-budget",
        "pipeline_arns": [f"arn:aws:sagemaker:us-east-1:{STRANGER}:pipeline/fake"],
        "execution_arn": f"arn:aws:sagemaker:us-east-1:{STRANGER}:pipeline/fake/execution/abc123",
        "attempt": 1,
        "spend": {
            "currency": "USD",
            "month_to_date": "9.00",
            "counted": "9.00",
            "counts": "confirmed",
            "monthly_limit": "1.00",
            "percent_used": "900.0",
        },
        "at": "2026-05-01T08:00:00+00:00",
    }

    # When a stranger puts a notice on it
    answer = stack.client(STRANGER, "events").put_events(
        Entries=[
            {
                "Source": "pipeshare.owner",
                "DetailType": "Pipeshare Enforcement Notice",
                "Detail": json.dumps(notice),
                "EventBusName": CONSUMER_BUS,
            }
        ]
    )
    stack.deliver()

    # Then EventBridge refuses it: nothing reaches the bus, nothing is published
    assert answer["FailedEntryCount"] == 1
    assert answer["Entries"][0]["ErrorCode"] == "AccessDeniedException"
    assert _on_notice_bus(stack) == []

    # When such an event reaches the relay anyway (a bus policy widened by hand)
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Pipeshare Enforcement Notice",
        "source": "pipeshare.owner",
        "account": STRANGER,
        "time": "2026-05-01T08:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": notice,
    }
    relay = stack.deployments[CONSUMER].functions["RelayNoticesFunction"]
    [invocation] = relay.invoke_async(event, trigger="test")

    # Then the relay refuses it (the sender is not a trusted owner), counts it, and publishes nothing
    assert invocation.result["status"] == "refused"
    assert STRANGER in invocation.result["reason"]
    assert invocation.metrics.get("ConsumerNoticeRefused") == 1
    assert _notices(stack) == []


def test_the_owner_notifier_may_put_on_the_consumers_notice_bus_only(stack: LocalStack) -> None:
    # Given both sides deployed with the notice bus
    _setup(stack, {CONSUMER: _budget(enforce={"stop_executions": True})})
    events = stack.function_client(OWNER, "NotifyOwnerFunction", "events")

    def put(bus: str, source: str = "pipeshare.owner") -> Any:
        entry = {"Source": source, "DetailType": "Pipeshare Enforcement Notice", "Detail": "{}", "EventBusName": bus}
        return events.put_events(Entries=[entry])

    # When the owner notifier's role puts an event on the consumer's notice bus: the role and the bus policy allow it
    assert put(CONSUMER_BUS)["FailedEntryCount"] == 0

    # Then any other bus (the consumer's default bus, the owner's own bus) is refused by its role (IAM)
    for bus in (f"arn:aws:events:us-east-1:{CONSUMER}:event-bus/default", OWNER_BUS):
        with pytest.raises(ClientError, match="AccessDenied"):
            put(bus)
    # and another source on the notice bus is refused by the bus policy (per entry)
    assert put(CONSUMER_BUS, "pipeshare.other")["Entries"][0]["ErrorCode"] == "AccessDeniedException"
