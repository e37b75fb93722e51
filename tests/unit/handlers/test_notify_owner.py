"""functions/notify_owner: the owner table's stream (ALERT# and CHANGE# outbox items), published once each through
PublishOnce (marks in memory) to a FakeNotifier."""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare.adapters.publish_once import PublishOnce
from tests.conftest import load_event
from tests.fakes import CONSUMER, OWNER, FakeNotifier
from tests.unit.handlers.conftest import Invoker, Marks, assert_refused_without_side_effect, stream_batch

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "notify_owner"
NO_FAILURE = {"batchItemFailures": []}
EXECUTION = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train/execution/abc123"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"


def alert_item(action: str = "start") -> dict[str, Any]:
    """An execution alert's outbox item as adapters/dynamodb_executions.py writes it."""
    return {
        "pk": f"EXECUTION#{EXECUTION}",
        "sk": f"ALERT#{action}",
        "item_type": "alert",
        "at": "2026-05-01T09:00:00Z",
        "subject": f"pipeshare: consumer {CONSUMER} started churn-train",
        "message": {"schema": "pipeshare.owner.execution/1", "event": f"execution.{action}", "execution": EXECUTION},
        "attributes": {"event": f"execution.{action}", "consumer_account_id": CONSUMER},
    }


def change_item(kind: str = "accepted", *, notable: bool = True) -> dict[str, Any]:
    """An inventory change's outbox item (CHANGE#), with the grant after the change."""
    grant = {
        "pipeline_arn": PIPELINE,
        "consumer": CONSUMER,
        "association_status": "ASSOCIATED",
        "share_arn": f"arn:aws:ram:us-east-1:{OWNER}:resource-share/s1",
        "share_name": "churn-share",
        "permission_arn": "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution",
        "permission_name": "AWSRAMPermissionSageMakerPipelineAllowExecution",
    }
    return {
        "pk": "INVENTORY",
        "sk": f"CHANGE#2026-05-01T09:00:00Z#{kind}",
        "item_type": "change",
        "at": "2026-05-01T09:00:00Z",
        "kind": kind,
        "notable": notable,
        "after": grant,
    }


class Topic:
    def __init__(self, invoke: Invoker) -> None:
        self.sns = FakeNotifier()
        self.marks = Marks()
        self.once = PublishOnce(self.sns, invoke.environment["OWNER_TABLE_NAME"], client=self.marks)

    def ports(self) -> dict[str, Any]:
        return {"get_publish_once": self.once}


def test_an_execution_alert_is_published_as_composed(invoke: Invoker) -> None:
    # Given the stream record of an alert outbox item
    topic = Topic(invoke)

    # When the batch arrives
    run = invoke(stream_batch(alert_item()), **topic.ports())

    # Then its subject, message and attributes go out once, on the owner topic the template names
    [published] = topic.sns.published
    assert published.subject == alert_item()["subject"]
    assert published.message == alert_item()["message"]
    assert published.attributes["event"] == "execution.start"
    assert run.built == [
        ("get_publish_once", (invoke.environment["OWNER_TOPIC_ARN"], invoke.environment["OWNER_TABLE_NAME"]))
    ]
    assert run.result == NO_FAILURE
    assert run.metrics["OwnerRecordsReceived"] == 1
    assert run.errors == []


def test_a_notable_inventory_change_is_published(invoke: Invoker) -> None:
    # Given a new cost-bearing grant (allow-execution)
    topic = Topic(invoke)

    # When its outbox item arrives
    run = invoke(stream_batch(change_item()), **topic.ports())

    # Then one inventory message names the consumer and the pipeline
    [published] = topic.sns.published
    assert published.message["event"] == "inventory.accepted"
    assert (published.message["consumer_account_id"], published.message["pipeline_arn"]) == (CONSUMER, PIPELINE)
    assert published.message["cost_bearing"] is True
    assert run.result == NO_FAILURE


def test_a_change_that_is_not_notable_publishes_nothing(invoke: Invoker) -> None:
    # Given an inventory change not worth a message
    topic = Topic(invoke)

    # When it arrives
    run = invoke(stream_batch(change_item("updated", notable=False)), **topic.ports())

    # Then nothing is published and nothing is refused
    assert topic.sns.published == []
    assert run.errors == []
    assert run.result == NO_FAILURE


def test_the_batch_delivered_again_publishes_nothing_more(invoke: Invoker) -> None:
    # Given a batch of two alerts already published
    topic = Topic(invoke)
    batch = stream_batch(alert_item("start"), alert_item("stop"))
    invoke(batch, **topic.ports())

    # When the stream delivers it again
    run = invoke(batch, **topic.ports())

    # Then each alert was published once
    assert [p.attributes["event"] for p in topic.sns.published] == ["execution.start", "execution.stop"]
    assert run.result == NO_FAILURE


def _without_sequence_number() -> dict[str, Any]:
    batch = stream_batch(alert_item())
    del batch["Records"][0]["dynamodb"]["SequenceNumber"]
    return batch


@pytest.mark.parametrize(
    ("event", "event_id"),
    [
        pytest.param({}, None, id="not-a-batch"),
        pytest.param({"Records": []}, None, id="empty-batch"),
        pytest.param(_without_sequence_number(), None, id="record-without-its-id"),
        pytest.param(load_event("invalid_wrong_source"), "bad-0001-wrong-source", id="an-eventbridge-event"),
    ],
)
def test_what_is_not_a_stream_batch_is_refused_once_without_any_port_call(
    invoke: Invoker, event: Any, event_id: str | None
) -> None:
    # Given input that is not a DynamoDB stream batch
    topic = Topic(invoke)

    # When it is handed to the handler
    run = invoke(event, **topic.ports())

    # Then it is refused once, no item failure, nothing published
    assert_refused_without_side_effect(run, event_id=event_id, answer=NO_FAILURE, reason="not a DynamoDB")
    assert topic.sns.published == []


@pytest.mark.parametrize(
    "image",
    [
        pytest.param({**alert_item(), "sk": "STATE"}, id="not-an-outbox-item"),
        pytest.param({**alert_item(), "item_type": "execution"}, id="wrong-item-type"),
        pytest.param({k: v for k, v in alert_item().items() if k != "at"}, id="missing-field"),
    ],
)
def test_a_record_that_is_not_an_outbox_item_is_refused_with_its_event_id(
    invoke: Invoker, image: dict[str, Any]
) -> None:
    # Given a stream record whose image is not an owner outbox item
    topic = Topic(invoke)
    batch = stream_batch(image)

    # When it arrives
    run = invoke(batch, **topic.ports())

    # Then it is refused with the record's eventID, not retried, nothing published
    assert_refused_without_side_effect(run, event_id=batch["Records"][0]["eventID"], answer=NO_FAILURE)
    assert topic.sns.published == []
