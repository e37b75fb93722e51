"""The local endpoint is as safe under concurrent requests as the DynamoDB it stands for.

DynamoDB applies each write and each transaction atomically and in isolation: an optimistic read-modify-write guarded
by a version condition never loses an update, and no request fails because another one ran at the same time. moto
keeps its tables in plain dictionaries shared by the server's request threads; without serialisation a transaction can
pass its condition check while another one writes, and its deep copy of a table can fail half-way ("dictionary changed
size during iteration"). The test hammers one item from many threads and fails on either effect.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from pipeshare_local.stack import LocalStack

OWNER = "111111111111"
WRITERS = 8
INCREMENTS = 25  # per writer


def _client(stack: LocalStack) -> Any:
    creds = stack.credentials(OWNER, "tooling")
    return boto3.client(
        "dynamodb",
        endpoint_url=stack.endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
        config=Config(retries={"total_max_attempts": 1}),  # a server error must surface, not be retried away
    )


def _table(stack: LocalStack) -> str:
    deployment = stack.deploy(OWNER, {"Mode": "owner"})
    return deployment.refs["OwnerTable"]


def _increment(client: Any, table: str, key: dict[str, Any]) -> int:
    """Optimistic increment: read n and version, write n + 1 conditioned on the version read. Returns the conflicts."""
    conflicts = 0
    while True:
        item = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        n, version = int(item["n"]["N"]), int(item["version"]["N"])
        # a transaction with a second item, so that moto's transaction path (and its copy of the table) is taken
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": table,
                            "Key": key,
                            "UpdateExpression": "SET n = :n, version = :next",
                            "ConditionExpression": "version = :read",
                            "ExpressionAttributeValues": {
                                ":n": {"N": str(n + 1)},
                                ":next": {"N": str(version + 1)},
                                ":read": {"N": str(version)},
                            },
                        }
                    },
                    {
                        "Update": {
                            "TableName": table,
                            "Key": {"pk": {"S": "STRESS"}, "sk": {"S": f"LOG#{version + 1}"}},
                            "UpdateExpression": "SET n = :n",
                            "ExpressionAttributeValues": {":n": {"N": str(n + 1)}},
                        }
                    },
                ]
            )
            return conflicts
        except client.exceptions.TransactionCanceledException:
            conflicts += 1


def test_optimistic_increments_from_many_threads_lose_nothing_and_never_fail(stack: LocalStack) -> None:
    # Given one counter item
    table = _table(stack)
    key = {"pk": {"S": "STRESS"}, "sk": {"S": "COUNTER"}}
    setup = _client(stack)
    setup.put_item(TableName=table, Item={**key, "n": {"N": "0"}, "version": {"N": "0"}})
    clients = [_client(stack) for _ in range(WRITERS)]

    # When 8 writers each increment it 25 times at once (read, then a version-conditioned transaction)
    def writer(n: int) -> int:
        return sum(_increment(clients[n], table, key) for _ in range(INCREMENTS))

    with ThreadPoolExecutor(WRITERS) as pool:
        conflicts = list(pool.map(writer, range(WRITERS)))  # re-raises any writer's error

    # Then every increment is there exactly once, each version was written once, and only conditions refused work
    item = setup.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert (int(item["n"]["N"]), int(item["version"]["N"])) == (WRITERS * INCREMENTS, WRITERS * INCREMENTS)
    logs = setup.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :log)",
        ExpressionAttributeValues={":pk": {"S": "STRESS"}, ":log": {"S": "LOG#"}},
    )["Items"]
    assert sorted(int(i["n"]["N"]) for i in logs) == list(range(1, WRITERS * INCREMENTS + 1))
    assert all(c >= 0 for c in conflicts)
