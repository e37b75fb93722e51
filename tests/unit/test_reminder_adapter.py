"""The share table's reminder writes (adapters/dynamodb_shares.py) on moto: the STATE item is marked reminded and the
reminder's outbox item written in one transaction, only while HELD and once; the batched read returns the mark; the
items are the ones the in-memory fake writes (tests/fakes.py), so the logic tests stand for the adapter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from moto import mock_aws

from pipeshare.adapters.dynamodb_shares import DynamoDbShareRepository
from pipeshare.models.domain import HeldReminder, ReminderDigest, ShareRecord, ShareStatus
from pipeshare.models.outbox import DecisionHistoryItem
from tests.conftest import create_pk_sk_table
from tests.fakes import FakeShareRepository

TABLE = "shares"
ARN = "arn:aws:ram:us-east-1:333333333333:resource-share-invitation/3b3bc051-fbf6-4336-8377-06c559dfee49"
SHARE = "arn:aws:ram:us-east-1:333333333333:resource-share/8f1c0d8e-4c57-4d39-9a1c-2b3f58a0f0aa"
INVITED = datetime(2026, 5, 1, 8, 56, 24, tzinfo=UTC)
AT = datetime(2026, 5, 1, 17, 1, 24, tzinfo=UTC)
EXPIRES = 1_900_000_000


def record(status: ShareStatus, at: datetime = INVITED) -> ShareRecord:
    return ShareRecord(
        invitation_arn=ARN,
        share_arn=SHARE,
        share_name="free-gpu-share",
        sender_account_id="333333333333",
        receiver_account_id="222222222222",
        region="us-east-1",
        status=status,
        decision="hold" if status is ShareStatus.HELD else "observe",
        rule="untrusted-owner",
        reason="r",
        invited_at=INVITED,
        first_seen_at=at,
        decided_at=at,
        last_seen_at=at,
    )


def reminder(at: datetime = AT) -> HeldReminder:
    return HeldReminder(
        invitation_arn=ARN,
        share_arn=SHARE,
        share_name="free-gpu-share",
        sender_account_id="333333333333",
        receiver_account_id="222222222222",
        region="us-east-1",
        invited_at=INVITED,
        accept_by=INVITED + timedelta(hours=12),
        at=at,
    )


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_pk_sk_table(client, TABLE)
        yield client


def items(ddb: Any, sk_suffix: str) -> list[dict[str, Any]]:
    de = TypeDeserializer()
    raw = ddb.scan(TableName=TABLE)["Items"]
    found = [{k: de.deserialize(v) for k, v in i.items()} for i in raw]
    return [i for i in found if i["sk"].endswith(sk_suffix)]


def test_a_held_record_is_reminded_once(ddb: Any) -> None:
    # Given a HELD record
    repo = DynamoDbShareRepository(TABLE, ddb)
    repo.record_transition(record(ShareStatus.HELD), history_expires_at=EXPIRES)
    # When a reminder is recorded, then again (a repeated sweep) and by another sweep a second later
    first = repo.record_reminder(reminder(), history_expires_at=EXPIRES)
    again = repo.record_reminder(reminder(), history_expires_at=EXPIRES)
    other = repo.record_reminder(reminder(AT + timedelta(seconds=1)), history_expires_at=EXPIRES)
    # Then one outbox item, and the batched read shows the mark
    assert (first, again, other) == (True, False, False)
    [item] = items(ddb, "#REMINDER")
    assert (item["kind"], item["to_status"], item["accept_by"]) == ("reminder", "HELD", "2026-05-01T20:56:24Z")
    assert DecisionHistoryItem.model_validate(item).kind == "reminder"
    assert repo.recorded_states([ARN])[ARN].reminded_at == AT


@pytest.mark.parametrize("status", [ShareStatus.PENDING, ShareStatus.ACCEPTED, ShareStatus.EXPIRED])
def test_a_record_that_is_not_held_is_not_reminded(ddb: Any, status: ShareStatus) -> None:
    # Given a record that is not HELD
    repo = DynamoDbShareRepository(TABLE, ddb)
    repo.record_transition(record(status), history_expires_at=EXPIRES)
    # When a reminder is attempted
    written = repo.record_reminder(reminder(), history_expires_at=EXPIRES)
    # Then the condition refused it: no item, no mark
    assert written is False
    assert items(ddb, "#REMINDER") == []
    assert repo.recorded_states([ARN])[ARN].reminded_at is None


def test_no_record_no_reminder(ddb: Any) -> None:
    repo = DynamoDbShareRepository(TABLE, ddb)
    assert repo.record_reminder(reminder(), history_expires_at=EXPIRES) is False
    assert ddb.scan(TableName=TABLE)["Items"] == []


def test_the_mark_survives_the_transition_to_accepted(ddb: Any) -> None:
    # Given a reminded HELD record
    repo = DynamoDbShareRepository(TABLE, ddb)
    repo.record_transition(record(ShareStatus.HELD), history_expires_at=EXPIRES)
    repo.record_reminder(reminder(), history_expires_at=EXPIRES)
    # When it is accepted
    assert repo.record_transition(record(ShareStatus.ACCEPTED, AT + timedelta(hours=1)), history_expires_at=EXPIRES)
    # Then the record still says when it was reminded
    state = repo.recorded_states([ARN])[ARN]
    assert (state.status, state.reminded_at) == (ShareStatus.ACCEPTED, AT)


def test_the_reminder_digest_is_written_once(ddb: Any) -> None:
    repo = DynamoDbShareRepository(TABLE, ddb)
    digest = ReminderDigest(
        at=AT, count=3, senders={"333333333333": 3}, share_names=["a"], threshold=5, accept_by=INVITED
    )
    assert repo.record_reminder_digest(digest, history_expires_at=EXPIRES) is True
    assert repo.record_reminder_digest(digest, history_expires_at=EXPIRES) is False
    [item] = [i for i in items(ddb, "#REMINDER") if i["pk"] == "DIGEST"]
    assert (item["sk"], item["count"], item["kind"]) == (digest.key, 3, "reminder")


def test_the_fake_writes_the_items_the_adapter_writes(ddb: Any) -> None:
    # Given the same HELD record in the adapter and in the fake
    repo, fake = DynamoDbShareRepository(TABLE, ddb), FakeShareRepository()
    repo.record_transition(record(ShareStatus.HELD), history_expires_at=EXPIRES)
    fake.record_transition(record(ShareStatus.HELD), history_expires_at=EXPIRES)
    digest = ReminderDigest(
        at=AT, count=3, senders={"333333333333": 3}, share_names=["a"], threshold=5, accept_by=INVITED
    )
    # When both record a reminder and a digest
    for target in (repo, fake):
        target.record_reminder(reminder(), history_expires_at=EXPIRES)
        target.record_reminder_digest(digest, history_expires_at=EXPIRES)
    # Then the outbox items are the same
    ours = sorted(items(ddb, "#REMINDER"), key=lambda i: i["pk"])
    theirs = sorted((h for h in fake.history if h["kind"] == "reminder"), key=lambda i: i["pk"])
    assert [
        {k: (int(v) if k in ("count", "expires_at", "threshold", "other_senders") else v) for k, v in i.items()}
        for i in ours
    ] == theirs
