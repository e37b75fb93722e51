"""functions/notify_owner: the owner table's stream (ALERT# and CHANGE# outbox items), published once each through
PublishOnce (marks in memory) to a FakeNotifier."""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare.adapters.publish_once import PublishOnce
from pipeshare.models.errors import NoticeUndeliverableError
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
        return {"get_publish_once": self.once, "get_notice_publisher": self.once}


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


# ------------------------------------------------------------------------------------------- the consumer's notice


def notice_item() -> dict[str, Any]:
    """A NOTICE# outbox item as adapters/dynamodb_budgets.py writes it (the notice of events/ fixture's detail)."""
    key = f"STOP#{EXECUTION.lower()}#1"
    return {
        "pk": f"BUDGET#2026-05#{CONSUMER}",
        "sk": f"NOTICE#{key}",
        "item_type": "consumer-notice",
        "at": "2026-05-01T08:12:00Z",
        "notice": load_event("eventbridge_enforcement_notice")["detail"],
    }


class Buses:
    """The consumers' notice buses: a FakeNotifier behind the real PublishOnce (marks in memory), per bus ARN."""

    def __init__(self, invoke: Invoker, *, refuse: bool = False) -> None:
        refused = NoticeUndeliverableError(
            f"arn:aws:events:us-east-1:{CONSUMER}:event-bus/x", "AccessDeniedException", "no"
        )
        self.bus = FakeNotifier(error=refused if refuse else None)
        self.once = PublishOnce(self.bus, invoke.environment["OWNER_TABLE_NAME"], client=Marks())
        self.sns = FakeNotifier()

    def ports(self) -> dict[str, Any]:
        return {"get_publish_once": PublishOnce(self.sns, "t", client=Marks()), "get_notice_publisher": self.once}


@pytest.fixture
def notices_on(invoke: Invoker, monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner stack deployed with ConsumerNoticeBusName=pipeshare-notices (the variable the template sets)."""
    from pipeshare.config import load_settings

    monkeypatch.setenv("CONSUMER_NOTICE_BUS_NAME", "pipeshare-notices")
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # Lambda sets it
    load_settings.cache_clear()


@pytest.mark.usefixtures("notices_on")
def test_a_notice_goes_once_to_the_consumers_bus_by_convention(invoke: Invoker) -> None:
    # Given the owner stack names the consumers' notice bus, and the stream record of a notice outbox item
    buses = Buses(invoke)
    batch = stream_batch(notice_item())

    # When the batch arrives, and again (the stream delivers at least once)
    run = invoke(batch, **buses.ports())
    invoke(batch, **buses.ports())

    # Then the notice went once, to arn:aws:events:<owner's Region>:<consumer>:event-bus/<name>, as it was written
    [sent] = buses.bus.published
    assert sent.message == notice_item()["notice"]
    bus = f"arn:aws:events:us-east-1:{CONSUMER}:event-bus/pipeshare-notices"
    assert run.built == [("get_notice_publisher", (bus, invoke.environment["OWNER_TABLE_NAME"]))]
    assert buses.sns.published == []  # the owner team's topic gets nothing for it
    assert run.metrics["ConsumerNoticeSent"] == 1
    assert run.result == NO_FAILURE


def test_without_a_bus_name_the_consumer_is_not_told(invoke: Invoker) -> None:
    # Given the owner stack names no notice bus (the default)
    buses = Buses(invoke)

    # When a notice outbox item arrives
    run = invoke(stream_batch(notice_item()), **buses.ports())

    # Then nothing is put anywhere, and the record is done
    assert (buses.bus.published, run.built) == ([], [])
    assert run.metrics["ConsumerNoticeOff"] == 1
    assert run.result == NO_FAILURE


@pytest.mark.usefixtures("notices_on")
def test_a_notice_the_consumers_bus_refuses_is_reported_not_retried(invoke: Invoker) -> None:
    # Given a consumer whose bus does not admit this owner (or does not exist)
    buses = Buses(invoke, refuse=True)

    # When the notice's record arrives
    run = invoke(stream_batch(notice_item()), **buses.ports())

    # Then one structured error and one metric say so, and the record is not failed (a retry cannot change it)
    [error] = run.errors
    assert error["message"] == "consumer notice undeliverable"
    assert "AccessDeniedException" in error["detail"]
    assert run.metrics["ConsumerNoticeUndeliverable"] == 1
    assert run.result == NO_FAILURE


def test_an_invalid_notice_item_is_refused_without_side_effect(invoke: Invoker) -> None:
    # Given a notice item whose notice names a pipeline of another account
    item = notice_item()
    item["notice"] = {**item["notice"], "owner_account_id": CONSUMER}
    buses = Buses(invoke)

    # When it arrives
    run = invoke(stream_batch(item), **buses.ports())

    # Then it is refused (one InvalidEvent, its record's eventID), nothing is put
    assert run.metrics["InvalidEvent"] == 1
    assert buses.bus.published == []
    assert run.result == NO_FAILURE
