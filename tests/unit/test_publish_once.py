"""Each outbox item is published once per successful attempt (pipeshare/adapters/publish_once.py), over moto's
DynamoDB: a redelivered item is not published again, a failed publish is retried, the message id is stable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeshare.adapters.publish_once import MESSAGE_ID_ATTRIBUTE, PUBLISHED_PK, PublishOnce, message_id
from tests.conftest import create_pk_sk_table

TABLE = "owner"


class Recorder:
    """A Notifier that records what it publishes and can be told to fail the next publishes."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.failures = 0

    def publish(self, *, subject: str, message: dict[str, Any], attributes: dict[str, str]) -> str:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("SNS unavailable")
        self.published.append({"subject": subject, "message": message, "attributes": attributes})
        return f"sns-{len(self.published)}"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_pk_sk_table(client, TABLE)
        yield client


def _once(notifier: Recorder, ddb: Any, context: Any) -> PublishOnce:
    once = PublishOnce(notifier, TABLE, ddb)
    once.register(context)  # an in-progress record expires with the invocation's remaining time
    return once


def _send(once: PublishOnce, sk: str = "ALERT#start#1") -> str:
    return once.publish(pk="EXECUTION#e", sk=sk, subject="s", message={"n": 1}, attributes={"kind": "alert"})


def test_a_redelivered_item_is_not_published_again_and_gets_the_recorded_id(ddb: Any, lambda_context: Any) -> None:
    notifier = Recorder()
    once = _once(notifier, ddb, lambda_context)
    first = _send(once)
    again = _send(_once(notifier, ddb, lambda_context))  # a new container, the same item
    assert (first, again) == ("sns-1", "sns-1")
    assert len(notifier.published) == 1
    # the record of it is in the table under its own partition, with an expiry for the table's TTL
    [record] = ddb.query(
        TableName=TABLE, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": PUBLISHED_PK}}
    )["Items"]
    assert record["sk"]["S"].startswith("publish#")
    assert record["status"]["S"] == "COMPLETED"
    assert int(record["expires_at"]["N"]) > 0


def test_every_message_carries_its_stable_id_and_distinct_items_are_published_each(
    ddb: Any, lambda_context: Any
) -> None:
    notifier = Recorder()
    once = _once(notifier, ddb, lambda_context)
    _send(once, "ALERT#start#1")
    _send(once, "ALERT#stop#1")
    ids = [p["attributes"][MESSAGE_ID_ATTRIBUTE] for p in notifier.published]
    assert ids == [message_id("EXECUTION#e", "ALERT#start#1"), message_id("EXECUTION#e", "ALERT#stop#1")]
    assert ids[0] != ids[1]
    assert notifier.published[0]["attributes"]["kind"] == "alert"


def test_a_failed_publish_leaves_no_record_and_the_retry_publishes(ddb: Any, lambda_context: Any) -> None:
    notifier = Recorder()
    notifier.failures = 1
    once = _once(notifier, ddb, lambda_context)
    with pytest.raises(RuntimeError):
        _send(once)
    assert _send(once) == "sns-1"
    assert len(notifier.published) == 1


class LostAnswer(Recorder):
    """SNS accepts the first message but its answer is lost (a timeout): the one duplicate the guarantee leaves."""

    def publish(self, *, subject: str, message: dict[str, Any], attributes: dict[str, str]) -> str:
        message_id = super().publish(subject=subject, message=message, attributes=attributes)
        if len(self.published) == 1:
            raise TimeoutError("read timeout")
        return message_id


def test_a_publish_whose_answer_is_lost_goes_out_again_with_the_same_message_id(ddb: Any, lambda_context: Any) -> None:
    notifier = LostAnswer()
    once = _once(notifier, ddb, lambda_context)
    with pytest.raises(TimeoutError):
        _send(once)
    _send(once)
    ids = [p["attributes"][MESSAGE_ID_ATTRIBUTE] for p in notifier.published]
    assert len(ids) == 2
    assert ids[0] == ids[1]  # subscribers drop the copy by this id
