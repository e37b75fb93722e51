"""pipeshare.logic.notify: one readable notification per recorded decision."""

from __future__ import annotations

import json
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from pipeshare.logic.notify import SCHEMA, SUBJECT_MAX, build_notification, notify_decision
from pipeshare.models.outbox import DecisionHistoryItem
from tests.conftest import load_event
from tests.fakes import FakeNotifier

pytestmark = pytest.mark.usefixtures("socket_disabled")

INVITATION_ARN = "arn:aws:ram:us-east-1:111111111111:resource-share-invitation/3b3bc051-fbf6-4336-8377-06c559dfee49"


def history_item(**updates: Any) -> DecisionHistoryItem:
    """The ACCEPTED history item of events/ddb_stream_decision_accepted.json, with fields replaced."""
    image = load_event("ddb_stream_decision_accepted")["Records"][0]["dynamodb"]["NewImage"]
    data = {key: TypeDeserializer().deserialize(value) for key, value in image.items()}
    data.update(updates)
    return DecisionHistoryItem.model_validate(data)


def policy_item() -> DecisionHistoryItem:
    return DecisionHistoryItem.model_validate(
        {
            "pk": "POLICY",
            "sk": "HIST#2026-05-01T09:00:00Z#INVALID",
            "kind": "policy",
            "to_status": "POLICY_INVALID",
            "at": "2026-05-01T09:00:00Z",
            "policy_source": "ssm:/pipeshare/policy",
            "fingerprint": "0123456789abcdef",
            "errors": ["version: Input should be 1"],
        }
    )


STATUS_CASES = [
    ("ACCEPTED", "accept", "trusted-owner", "pipeshare: accepted share 'churn-pipeline-share' from 111111111111"),
    (
        "HELD",
        "hold",
        "untrusted-owner",
        "pipeshare: HELD share 'churn-pipeline-share' from 111111111111 - review needed",
    ),
    ("REJECTED", "reject", "untrusted-owner", "pipeshare: rejected share 'churn-pipeline-share' from 111111111111"),
    (
        "EXPIRED",
        "observe",
        "expired",
        "pipeshare: invitation to share 'churn-pipeline-share' from 111111111111 expired",
    ),
]


# -------------------------------------------------------------------------------------------- build_notification


@pytest.mark.parametrize(("status", "decision", "rule", "subject"), STATUS_CASES)
def test_build_notification_subject_names_status_share_and_sender(
    status: str, decision: str, rule: str, subject: str
) -> None:
    # Given a recorded decision
    item = history_item(to_status=status, decision=decision, rule=rule)

    # When
    notification = build_notification(item)

    # Then
    assert notification is not None
    assert notification.subject == subject


@pytest.mark.parametrize(("status", "decision", "rule", "subject"), STATUS_CASES)
def test_build_notification_body_carries_the_decision(status: str, decision: str, rule: str, subject: str) -> None:
    # Given a recorded decision
    item = history_item(to_status=status, decision=decision, rule=rule, reason=f"because {status}")

    # When
    notification = build_notification(item)

    # Then the JSON body has every field, from the item
    assert notification is not None
    assert notification.message == {
        "schema": SCHEMA,
        "event": f"invitation.{status.lower()}",
        "status": status,
        "decision": decision,
        "rule": rule,
        "reason": f"because {status}",
        "invitation_arn": INVITATION_ARN,
        "share_arn": "arn:aws:ram:us-east-1:111111111111:resource-share/c4506c70-df75-4e6c-ac30-42ca03295a37",
        "share_name": "churn-pipeline-share",
        "sender_account_id": "111111111111",
        "receiver_account_id": "222222222222",
        "region": "us-east-1",
        "resources": [
            {"arn": "arn:aws:sagemaker:us-east-1:111111111111:pipeline/churn-train", "type": "sagemaker:Pipeline"}
        ],
        "invited_at": "2026-05-01T08:56:24.977000Z",
        "decided_at": "2026-05-01T08:56:26Z",
        "policy_source": "parameters",
    }
    assert json.loads(json.dumps(notification.message)) == notification.message


@pytest.mark.parametrize(("status", "decision", "rule", "subject"), STATUS_CASES)
def test_build_notification_attributes_allow_filtering(status: str, decision: str, rule: str, subject: str) -> None:
    # Given a recorded decision
    item = history_item(to_status=status, decision=decision, rule=rule)

    # When
    notification = build_notification(item)

    # Then subscribers can filter on event, status, the sender (the share's owner) and the receiving account, under
    # the attribute names every message kind uses
    assert notification is not None
    assert notification.attributes == {
        "event": f"invitation.{status.lower()}",
        "status": status,
        "owner_account": "111111111111",
        "consumer_account": "222222222222",
    }


def test_build_notification_pending_sends_nothing() -> None:
    # Given a PENDING history item (waiting for a valid policy is not a decision)
    item = history_item(to_status="PENDING", decision="wait", rule="policy-invalid")

    # When / Then
    assert build_notification(item) is None


def test_build_notification_policy_invalid_message() -> None:
    # Given the history item of an invalid policy
    # When
    notification = build_notification(policy_item())

    # Then
    assert notification is not None
    assert notification.subject == "pipeshare: trust policy INVALID - no invitation will be accepted"
    assert notification.attributes == {"event": "policy.invalid", "status": "POLICY_INVALID"}
    message = notification.message
    assert (message["schema"], message["event"]) == (SCHEMA, "policy.invalid")
    assert (message["policy_source"], message["fingerprint"]) == ("ssm:/pipeshare/policy", "0123456789abcdef")
    assert message["errors"] == ["version: Input should be 1"]
    assert message["detected_at"] == "2026-05-01T09:00:00Z"
    assert "fails closed" in message["effect"]


@pytest.mark.parametrize(
    "share_name",
    [
        "x" * 512,
        "pipeline-é-ü-数据-🚀" * 20,
        "line\nbreak\ttab\rreturn\x00nul\x7fdel",
        "数据" * 256,
    ],
    ids=["long-ascii", "long-non-ascii", "control-characters", "all-non-ascii"],
)
@pytest.mark.parametrize("status", ["ACCEPTED", "HELD", "REJECTED", "EXPIRED"])
def test_build_notification_subject_is_short_printable_ascii(share_name: str, status: str) -> None:
    # Given a share with a long, non-ASCII or control-character name
    item = history_item(to_status=status, share_name=share_name)

    # When
    notification = build_notification(item)

    # Then the subject fits SNS: printable ASCII only, at most 100 characters
    assert notification is not None
    subject = notification.subject
    assert len(subject) <= SUBJECT_MAX == 100
    assert all(32 <= ord(ch) < 127 for ch in subject), subject
    assert subject.startswith("pipeshare: ")


def test_build_notification_long_subject_is_truncated_with_ellipsis() -> None:
    # Given a share name long enough to overflow the subject
    item = history_item(to_status="HELD", share_name="n" * 300)

    # When
    notification = build_notification(item)

    # Then the name is shortened (marked as cut) to fit exactly, and the sender's account ID is whole
    assert notification is not None
    assert len(notification.subject) == SUBJECT_MAX
    assert notification.subject.endswith("... from 111111111111 - review needed")


def test_build_notification_keeps_the_full_share_name_in_the_body() -> None:
    # Given a long non-ASCII share name
    name = "données-" * 40

    # When
    notification = build_notification(history_item(share_name=name))

    # Then only the subject is shortened: the body keeps the name as recorded
    assert notification is not None
    assert notification.message["share_name"] == name


# ------------------------------------------------------------------------------------------------- notify_decision


def test_notify_decision_publishes_once_and_returns_the_message_id() -> None:
    # Given a notifier and an ACCEPTED decision
    notifier = FakeNotifier()
    item = history_item()

    # When
    message_id = notify_decision(item, notifier=notifier)

    # Then exactly one message is published, the one build_notification describes
    expected = build_notification(item)
    assert expected is not None
    assert len(notifier.published) == 1
    published = notifier.published[0]
    assert (published.subject, published.message, published.attributes) == (
        expected.subject,
        expected.message,
        expected.attributes,
    )
    assert message_id == published.message_id == "msg-1"


def test_notify_decision_pending_publishes_nothing() -> None:
    # Given a notifier and a PENDING item
    notifier = FakeNotifier()

    # When
    message_id = notify_decision(history_item(to_status="PENDING"), notifier=notifier)

    # Then
    assert message_id is None
    assert notifier.published == []


def test_notify_decision_publishes_policy_invalid() -> None:
    # Given a notifier and an invalid-policy item
    notifier = FakeNotifier()

    # When
    message_id = notify_decision(policy_item(), notifier=notifier)

    # Then
    assert message_id == "msg-1"
    assert [p.attributes["event"] for p in notifier.published] == ["policy.invalid"]
