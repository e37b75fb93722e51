"""functions/notify_decisions: the share table's stream (HIST# items), published once each through PublishOnce (marks
in memory) to a FakeNotifier."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipeshare.adapters.publish_once import MESSAGE_ID_ATTRIBUTE, PublishOnce
from tests.conftest import load_event
from tests.fakes import FakeNotifier
from tests.unit.handlers.conftest import Invoker, Marks, assert_refused_without_side_effect, stream_batch

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "notify_decisions"
NO_FAILURE = {"batchItemFailures": []}
PENDING_ID = load_event("ram_invitation_pending")["id"]


class Topic:
    """The consumer topic (FakeNotifier) behind the real PublishOnce, its marks in memory."""

    def __init__(self, invoke: Invoker) -> None:
        self.sns = FakeNotifier()
        self.marks = Marks()
        self.once = PublishOnce(self.sns, invoke.environment["SHARE_TABLE_NAME"], client=self.marks)

    def ports(self) -> dict[str, Any]:
        return {"get_publish_once": self.once}


def _image(batch: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    new_image = batch["Records"][0]["dynamodb"]["NewImage"]
    return {key: TypeDeserializer().deserialize(value) for key, value in new_image.items()}


def test_an_accepted_decision_is_published_once_to_the_consumer_topic(invoke: Invoker) -> None:
    # Given the stream record of an ACCEPTED history item
    topic = Topic(invoke)
    batch = stream_batch()

    # When the batch arrives
    run = invoke(batch, **topic.ports())

    # Then one message, for that invitation, on the topic the template names; no item failure
    [published] = topic.sns.published
    assert published.attributes["event"] == "invitation.accepted"
    assert published.attributes["status"] == "ACCEPTED"
    assert MESSAGE_ID_ATTRIBUTE in published.attributes
    assert published.message["invitation_arn"] == _image(batch)["invitation_arn"]
    assert published.message["share_name"] == "churn-pipeline-share"
    assert run.built == [
        ("get_publish_once", (invoke.environment["CONSUMER_TOPIC_ARN"], invoke.environment["SHARE_TABLE_NAME"]))
    ]
    assert run.result == NO_FAILURE
    assert run.metrics["HistoryRecordsReceived"] == 1
    assert run.errors == []
    assert len(topic.marks.items) == 1


def test_the_batch_delivered_again_publishes_nothing_more(invoke: Invoker) -> None:
    # Given a batch whose decision was published
    topic = Topic(invoke)
    invoke(stream_batch(), **topic.ports())

    # When the stream delivers it again (a retry of the batch)
    run = invoke(stream_batch(), **topic.ports())

    # Then the one message stays the only one
    assert len(topic.sns.published) == 1
    assert run.result == NO_FAILURE


def test_each_decision_of_a_batch_is_published(invoke: Invoker) -> None:
    # Given two history items (two invitations) in one batch
    topic = Topic(invoke)
    first = _image(stream_batch())
    second = {**first, "pk": first["pk"] + "-2", "invitation_arn": first["invitation_arn"] + "-2"}

    # When the batch arrives
    run = invoke(stream_batch(first, second), **topic.ports())

    # Then one message per item
    arns = [p.message["invitation_arn"] for p in topic.sns.published]
    assert arns == [first["invitation_arn"], second["invitation_arn"]]
    assert run.result == NO_FAILURE


def _without_sequence_number() -> dict[str, Any]:
    batch = stream_batch()
    del batch["Records"][0]["dynamodb"]["SequenceNumber"]
    return batch


@pytest.mark.parametrize(
    ("event", "event_id"),
    [
        pytest.param({}, None, id="not-a-batch"),
        pytest.param({"Records": "x"}, None, id="records-not-a-list"),
        pytest.param(_without_sequence_number(), None, id="record-without-its-id"),
        pytest.param(load_event("invalid_wrong_source"), "bad-0001-wrong-source", id="an-eventbridge-event"),
        pytest.param(load_event("ram_invitation_pending"), PENDING_ID, id="a-ram-event"),
    ],
)
def test_what_is_not_a_stream_batch_is_refused_once_without_any_port_call(
    invoke: Invoker, event: Any, event_id: str | None
) -> None:
    # Given input that is not a DynamoDB stream batch (or a record Lambda could not report for a retry)
    topic = Topic(invoke)

    # When it is handed to the handler
    run = invoke(copy.deepcopy(event), **topic.ports())

    # Then one error line (the event's id when it has one), one InvalidEvent, no item failure, nothing published
    assert_refused_without_side_effect(run, event_id=event_id, answer=NO_FAILURE, reason="not a DynamoDB")
    assert topic.sns.published == []
    assert topic.marks.items == {}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"kind": "alert"}, id="not-a-decision-kind"),
        pytest.param({"sk": "STATE"}, id="not-a-history-item"),
        pytest.param({"to_status": 7}, id="wrong-type"),
    ],
)
def test_a_record_that_is_not_a_decision_is_refused_with_its_event_id(invoke: Invoker, change: dict[str, Any]) -> None:
    # Given a stream record whose image is not a decision history item
    topic = Topic(invoke)
    batch = stream_batch({**_image(stream_batch()), **change})

    # When it arrives
    run = invoke(batch, **topic.ports())

    # Then it is refused with the record's eventID, not retried (no item failure), and nothing is published
    assert_refused_without_side_effect(run, event_id=batch["Records"][0]["eventID"], answer=NO_FAILURE)
    assert topic.sns.published == []


def test_a_reminder_is_published_once_with_the_deadline_and_how_to_approve(invoke: Invoker) -> None:
    # Given the stream record of a reminder outbox item (as the sweep writes it: tests/unit/test_reminders.py)
    topic = Topic(invoke)
    accepted = _image(stream_batch())
    reminder = {
        "pk": accepted["pk"],
        "sk": "HIST#2026-05-01T17:01:24Z#REMINDER",
        "item_type": "history",
        "kind": "reminder",
        "to_status": "HELD",
        "expires_at": 1_900_000_000,
        "invitation_arn": accepted["invitation_arn"],
        "share_arn": accepted["share_arn"],
        "share_name": accepted["share_name"],
        "sender_account_id": accepted["sender_account_id"],
        "region": "us-east-1",
        "invited_at": "2026-05-01T08:56:24Z",
        "accept_by": "2026-05-01T20:56:24Z",
        "at": "2026-05-01T17:01:24Z",
    }

    # When the batch arrives, twice
    run = invoke(stream_batch(reminder), **topic.ports())
    invoke(stream_batch(reminder), **topic.ports())

    # Then one message: which invitation, until when, how
    [published] = topic.sns.published
    assert (published.attributes["event"], published.attributes["status"]) == ("invitation.reminder", "HELD")
    assert published.message["invitation_arn"] == accepted["invitation_arn"]
    assert published.message["accept_by"] == "2026-05-01T20:56:24Z"
    assert published.message["how_to_accept"].startswith(f"pipeshare consumer approve {accepted['invitation_arn']}")
    assert "2026-05-01T20:56:24Z" in published.subject
    assert run.result == NO_FAILURE
