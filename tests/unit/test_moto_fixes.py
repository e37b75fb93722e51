"""The local stack's corrections to moto (pipeshare_local/moto_fixes.py), against AWS's documented behaviour.
TransactWriteItems: a cancelled transaction writes nothing and emits no stream record, and the table (so every
stream iterator already handed out) stays the same object. SNS Publish with MessageStructure json: validated before
any delivery, each protocol gets its own string key or the default, e-mail deliveries are recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from pipeshare_local import moto_fixes
from tests.conftest import create_pk_sk_table

TABLE = "t"


@pytest.fixture
def ddb() -> Iterator[Any]:
    moto_fixes.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_pk_sk_table(client, TABLE, stream=True)
        yield client


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "P"}, "sk": {"S": sk}}


def _records(client: Any, iterator: str) -> list[dict[str, Any]]:
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    return streams.get_records(ShardIterator=iterator)["Records"]  # type: ignore[no-any-return]


def _iterator(client: Any) -> str:
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    return streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]


def _table() -> Any:
    return dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(TABLE)


def test_a_condition_that_fails_cancels_before_anything_is_written(ddb: Any) -> None:
    # Given an existing item and a stream iterator taken before the transaction
    ddb.put_item(TableName=TABLE, Item={**_key("A"), "n": {"N": "1"}})
    iterator = _iterator(ddb)
    table = _table()
    # When a transaction writes B, then updates A under a condition that does not hold
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**_key("B"), "n": {"N": "2"}}}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": _key("A"),
                        "UpdateExpression": "SET n = :n",
                        "ConditionExpression": "n = :other",
                        "ExpressionAttributeValues": {":n": {"N": "3"}, ":other": {"N": "9"}},
                    }
                },
            ]
        )
    # Then it is cancelled naming the failed condition, B was never written, A is unchanged, the stream carries only
    # A's own put, and the table is the same object (the iterator sees a later write)
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert "Item" not in ddb.get_item(TableName=TABLE, Key=_key("B"))
    assert ddb.get_item(TableName=TABLE, Key=_key("A"))["Item"]["n"] == {"N": "1"}
    assert _table() is table
    ddb.put_item(TableName=TABLE, Item={**_key("C")})
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in _records(ddb, iterator)] == ["A", "C"]


def test_an_operation_refused_after_the_conditions_passed_is_undone_item_by_item(ddb: Any) -> None:
    # Given an existing item A and a stream iterator taken before the transaction
    ddb.put_item(TableName=TABLE, Item={**_key("A"), "n": {"N": "1"}})
    iterator = _iterator(ddb)
    table = _table()
    # When a transaction updates A, puts B, then makes an update moto refuses while writing (adding to a string)
    with pytest.raises(ClientError):
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": _key("A"),
                        "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "5"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": {**_key("B"), "s": {"S": "x"}}}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": _key("C"),
                        "UpdateExpression": "SET #a = :v",
                        "ExpressionAttributeValues": {":v": {"S": "x"}},
                    }
                },
            ]
        )
    # Then nothing of it remains: A as before, no B or C, no stream record of it, the same table object
    assert ddb.get_item(TableName=TABLE, Key=_key("A"))["Item"]["n"] == {"N": "1"}
    assert "Item" not in ddb.get_item(TableName=TABLE, Key=_key("B"))
    assert "Item" not in ddb.get_item(TableName=TABLE, Key=_key("C"))
    assert _table() is table
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in _records(ddb, iterator)] == ["A"]


def test_a_transaction_that_succeeds_writes_every_item_and_one_record_each(ddb: Any) -> None:
    iterator = _iterator(ddb)
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**_key("A"), "n": {"N": "1"}}}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": _key("B"),
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )
    assert ddb.get_item(TableName=TABLE, Key=_key("B"))["Item"]["n"] == {"N": "1"}
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in _records(ddb, iterator)] == ["A", "B"]


def test_an_update_that_creates_its_item_emits_one_insert_with_the_new_image(ddb: Any) -> None:
    iterator = _iterator(ddb)
    ddb.update_item(
        TableName=TABLE,
        Key=_key("A"),
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    ddb.update_item(
        TableName=TABLE,
        Key=_key("A"),
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    records = _records(ddb, iterator)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    assert records[0]["dynamodb"]["NewImage"]["n"] == {"N": "1"}
    assert records[1]["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert int(records[0]["dynamodb"]["SequenceNumber"]) < int(records[1]["dynamodb"]["SequenceNumber"])


# ------------------------------------------------------------------ SNS: MessageStructure json (aws-facts §15.1)


@pytest.fixture
def sns() -> Iterator[tuple[Any, str, Any, str]]:
    """A topic with an SQS subscription (its queue), an e-mail and an e-mail-json subscription."""
    moto_fixes.apply()
    moto_fixes.EMAIL_DELIVERIES.clear()
    with mock_aws():
        client, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        topic = client.create_topic(Name="t")["TopicArn"]
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        client.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        client.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.com")
        client.subscribe(TopicArn=topic, Protocol="email-json", Endpoint="robot@example.com")
        yield client, topic, sqs, queue


def _queued(sqs: Any, queue: str) -> list[str]:
    return [json.loads(m["Body"])["Message"] for m in sqs.receive_message(QueueUrl=queue).get("Messages", [])]


def test_each_protocol_gets_its_own_key_or_the_default(sns: tuple[Any, str, Any, str]) -> None:
    client, topic, sqs, queue = sns
    # When a message has a default and an email text
    client.publish(
        TopicArn=topic, Subject="s", Message=json.dumps({"default": "{}", "email": "text"}), MessageStructure="json"
    )
    # Then SQS and e-mail-json get the default, e-mail its text
    assert _queued(sqs, queue) == ["{}"]
    got = {d["protocol"]: (d["subject"], d["message"]) for d in moto_fixes.EMAIL_DELIVERIES}
    assert got == {"email": ("s", "text"), "email-json": ("s", "{}")}


def test_an_empty_string_is_delivered_and_a_non_string_value_ignored(sns: tuple[Any, str, Any, str]) -> None:
    client, topic, sqs, queue = sns
    # When the sqs key is the empty string, then an object
    client.publish(TopicArn=topic, Message=json.dumps({"default": "d", "sqs": ""}), MessageStructure="json")
    client.publish(TopicArn=topic, Message=json.dumps({"default": "d", "sqs": {"a": 1}}), MessageStructure="json")
    # Then the empty string, then the default
    assert sorted(_queued(sqs, queue) + _queued(sqs, queue)) == ["", "d"]


@pytest.mark.parametrize("message", ["not json", '["default"]', '{"email": "text"}', '{"default": 1}'])
def test_a_message_without_a_string_default_is_refused_before_any_delivery(
    sns: tuple[Any, str, Any, str], message: str
) -> None:
    client, topic, sqs, queue = sns
    # When / Then the publish fails, and no subscription got anything (no partial delivery)
    with pytest.raises(ClientError, match="InvalidParameter"):
        client.publish(TopicArn=topic, Message=message, MessageStructure="json")
    assert _queued(sqs, queue) == []
    assert moto_fixes.EMAIL_DELIVERIES == []


def test_a_topic_without_subscriptions_refuses_a_message_without_default() -> None:
    moto_fixes.apply()
    with mock_aws():
        client = boto3.client("sns", region_name="us-east-1")
        topic = client.create_topic(Name="empty")["TopicArn"]
        with pytest.raises(ClientError, match="InvalidParameter"):
            client.publish(TopicArn=topic, Message='{"email": "x"}', MessageStructure="json")
