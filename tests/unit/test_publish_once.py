"""Each outbox item is published once per successful attempt (pipeshare/adapters/publish_once.py), over moto's
DynamoDB: a redelivered item is not published again, a failed publish is retried, the message id is stable, a lost
answer to the mark's write does not lose or repeat the message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError
from moto import mock_aws
from moto.core.models import botocore_stubber

from pipeshare.adapters import publish_once
from pipeshare.adapters.publish_once import MESSAGE_ID_ATTRIBUTE, PUBLISHED_PK, PublishOnce, mark_sk, message_id
from tests.conftest import create_pk_sk_table

TABLE = "owner"


class Recorder:
    """A Notifier that records what it publishes and can be told to fail the next publishes."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.failures = 0

    def publish(self, *, subject: str, message: dict[str, Any], attributes: dict[str, str], texts: Any = None) -> str:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("SNS unavailable")
        self.published.append({"subject": subject, "message": message, "attributes": attributes, "texts": texts})
        return f"sns-{len(self.published)}"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_pk_sk_table(client, TABLE)
        yield client


def _once(notifier: Recorder, ddb: Any) -> PublishOnce:
    return PublishOnce(notifier, TABLE, ddb)


def _send(once: PublishOnce, sk: str = "ALERT#start#1") -> str:
    return once.publish(pk="EXECUTION#e", sk=sk, subject="s", message={"n": 1}, attributes={"kind": "alert"})


def test_a_redelivered_item_is_not_published_again_and_gets_the_recorded_id(ddb: Any) -> None:
    notifier = Recorder()
    once = _once(notifier, ddb)
    first = _send(once)
    again = _send(_once(notifier, ddb))  # a new container, the same item
    assert (first, again) == ("sns-1", "sns-1")
    assert len(notifier.published) == 1
    # the record of it is in the table under its own partition, with an expiry for the table's TTL
    [record] = ddb.query(
        TableName=TABLE, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": PUBLISHED_PK}}
    )["Items"]
    assert record["sk"]["S"].startswith("publish#")
    assert record["status"]["S"] == "COMPLETED"
    assert record["data"]["S"] == '"sns-1"'
    assert int(record["expires_at"]["N"]) > 0


def test_every_message_carries_its_stable_id_and_distinct_items_are_published_each(ddb: Any) -> None:
    notifier = Recorder()
    once = _once(notifier, ddb)
    _send(once, "ALERT#start#1")
    _send(once, "ALERT#stop#1")
    ids = [p["attributes"][MESSAGE_ID_ATTRIBUTE] for p in notifier.published]
    assert ids == [message_id("EXECUTION#e", "ALERT#start#1"), message_id("EXECUTION#e", "ALERT#stop#1")]
    assert ids[0] != ids[1]
    assert notifier.published[0]["attributes"]["kind"] == "alert"


def test_a_failed_publish_leaves_no_record_and_the_retry_publishes(ddb: Any) -> None:
    notifier = Recorder()
    notifier.failures = 1
    once = _once(notifier, ddb)
    with pytest.raises(RuntimeError):
        _send(once)
    assert _send(once) == "sns-1"
    assert len(notifier.published) == 1


class LostAnswer(Recorder):
    """SNS accepts the first message but its answer is lost (a timeout): the one duplicate the guarantee leaves."""

    def publish(self, *, subject: str, message: dict[str, Any], attributes: dict[str, str], texts: Any = None) -> str:
        message_id = super().publish(subject=subject, message=message, attributes=attributes)
        if len(self.published) == 1:
            raise TimeoutError("read timeout")
        return message_id


def test_a_publish_whose_answer_is_lost_goes_out_again_with_the_same_message_id(ddb: Any) -> None:
    notifier = LostAnswer()
    once = _once(notifier, ddb)
    with pytest.raises(TimeoutError):
        _send(once)
    _send(once)
    ids = [p["attributes"][MESSAGE_ID_ATTRIBUTE] for p in notifier.published]
    assert len(ids) == 2
    assert ids[0] == ids[1]  # subscribers drop the copy by this id


class Calls:
    """The DynamoDB / SNS requests of one client, as botocore sends them (retries included)."""

    def __init__(self, client: Any) -> None:
        self.sent: list[str] = []
        client.meta.events.register_first("before-send.dynamodb.*", self._record)

    def _record(self, request: Any, **_kwargs: Any) -> None:
        self.sent.append(request.headers["X-Amz-Target"].decode().split(".")[-1])


def lose_first_answer(client: Any, operation: str) -> list[str]:
    """The first `operation` request is applied by (moto's) DynamoDB, then its answer is lost: botocore sees the
    connection closed and retries the same request, as it does against AWS."""
    lost: list[str] = []

    def apply_then_close(event_name: str, request: Any, **_kwargs: Any) -> None:
        if not lost:
            botocore_stubber(event_name=event_name, request=request)  # applied...
            lost.append(operation)
            raise ConnectionClosedError(endpoint_url=request.url)  # ...and no answer

    client.meta.events.register_first(f"before-send.dynamodb.{operation}", apply_then_close)
    return lost


def test_a_lost_answer_to_the_marks_write_publishes_once_and_a_redelivery_not_again(ddb: Any) -> None:
    # Given a mark write whose first answer is lost (applied; botocore retries it)
    calls = Calls(ddb)
    lost = lose_first_answer(ddb, "PutItem")
    notifier = Recorder()
    # When the item is published, then redelivered
    first = _send(_once(notifier, ddb))
    again = _send(_once(notifier, ddb))
    # Then botocore's retry of the mark found it written (done), the message went out once, with its id
    assert lost == ["PutItem"]
    assert calls.sent == ["GetItem", "PutItem", "PutItem", "GetItem"]
    assert (first, again) == ("sns-1", "sns-1")
    assert len(notifier.published) == 1
    [item] = ddb.scan(TableName=TABLE)["Items"]
    assert item["sk"]["S"] == mark_sk("EXECUTION#e", "ALERT#start#1")


def test_a_lost_answer_to_the_marks_read_is_retried_and_publishes_once(ddb: Any) -> None:
    lose_first_answer(ddb, "GetItem")
    notifier = Recorder()
    assert _send(_once(notifier, ddb)) == _send(_once(notifier, ddb)) == "sns-1"
    assert len(notifier.published) == 1


def test_a_notification_costs_three_calls(ddb: Any) -> None:
    calls = Calls(ddb)

    class InOrder(Recorder):
        def publish(
            self, *, subject: str, message: dict[str, Any], attributes: dict[str, str], texts: Any = None
        ) -> str:
            calls.sent.append("Publish")
            return super().publish(subject=subject, message=message, attributes=attributes)

    _send(_once(InOrder(), ddb))
    assert calls.sent == ["GetItem", "Publish", "PutItem"]


class FailingPuts:
    """A DynamoDB client whose PutItem fails for good (after botocore's retries)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get_item(self, **kwargs: Any) -> Any:
        return self._client.get_item(**kwargs)

    def put_item(self, **_kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "PutItem")


def test_a_mark_that_cannot_be_written_is_logged_and_does_not_fail_the_published_message(
    ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors: list[tuple[str, dict[str, Any]]] = []

    class Logger:
        def error(self, text: str, *, extra: dict[str, Any]) -> None:
            errors.append((text, extra))

    counted: list[tuple[str, float]] = []

    class Metrics:
        def add_metric(self, *, name: str, unit: Any, value: float) -> None:
            counted.append((name, value))

    monkeypatch.setattr(publish_once, "logger", Logger())
    monkeypatch.setattr(publish_once, "metrics", Metrics())
    notifier = Recorder()
    # the record succeeds: failing it would make the stream's retry publish the message again for certain
    assert _send(PublishOnce(notifier, TABLE, FailingPuts(ddb))) == "sns-1"  # type: ignore[arg-type]
    assert len(notifier.published) == 1
    [(text, extra)] = errors
    assert "mark was not written" in text
    assert extra["mark"] == mark_sk("EXECUTION#e", "ALERT#start#1")
    assert extra["sns_message_id"] == "sns-1"
    assert counted == [("PublishMarkFailed", 1)]  # the possible duplicate is counted, for an alarm
    assert ddb.scan(TableName=TABLE)["Items"] == []


def test_a_publish_recorded_by_powertools_idempotency_still_counts(ddb: Any, lambda_context: Any) -> None:
    # Given an item published by the earlier release (Powertools idempotency, the same table key and attributes)
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    persistence = DynamoDBPersistenceLayer(
        table_name=TABLE,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=PUBLISHED_PK,
        expiry_attr="expires_at",
        boto3_client=ddb,
    )

    config = IdempotencyConfig()
    config.register_lambda_context(lambda_context)

    @idempotent_function(
        data_keyword_argument="outbox", persistence_store=persistence, config=config, key_prefix="publish"
    )
    def published(*, outbox: dict[str, str]) -> str:
        return "sns-earlier"

    published(outbox={"pk": "EXECUTION#e", "sk": "ALERT#start#1"})
    notifier = Recorder()
    # When it is redelivered to this release, Then it is not published again
    assert _send(_once(notifier, ddb)) == "sns-earlier"
    assert notifier.published == []


def test_an_in_progress_record_left_by_powertools_is_no_mark(ddb: Any) -> None:
    # (its publish may not have happened: the record was left by a crash before or after it)
    key = {"pk": {"S": PUBLISHED_PK}, "sk": {"S": mark_sk("EXECUTION#e", "ALERT#start#1")}}
    ddb.put_item(TableName=TABLE, Item={**key, "status": {"S": "INPROGRESS"}, "expires_at": {"N": "9999999999"}})
    notifier = Recorder()
    assert _send(_once(notifier, ddb)) == "sns-1"
    assert len(notifier.published) == 1
