"""What each kind of subscriber gets on the local stack: the JSON message (SQS tap), the e-mail text (the e-mail
subscription of NotificationEmail / OwnerNotificationEmail), and with ChatNotifications=https the chat notification
under the https key. The local SNS delivers per protocol as AWS documents it (pipeshare_local/moto_fixes.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from moto.sns.models import sns_backends

from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import (
    CONSUMER,
    OWNER,
    STRANGER,
    create_pipeline,
    deploy_shared_pipeline,
    invitation_arn,
    notifications,
    share_pipeline,
)


def _published(account: str, topic_suffix: str) -> list[dict[str, Any]]:
    """The per-protocol messages as published to a topic (SNS keeps the raw message of each publish)."""
    backend = sns_backends[account]["us-east-1"]
    [topic] = [t for arn, t in backend.topics.items() if topic_suffix in arn]
    return [json.loads(message) for _, message, _, _, _ in topic.sent_notifications]


def test_a_held_invitation_reaches_email_as_text_and_sqs_as_json(stack: LocalStack) -> None:
    # Given a consumer with an e-mail subscription
    stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER, "NotificationEmail": "ml-team@example.com"})
    # When an untrusted account shares a pipeline and the sweep holds it
    share_pipeline(stack, STRANGER, "free-gpu", [CONSUMER])
    stack.deliver()
    stack.run_schedule(CONSUMER)

    # Then the machine subscriber (the SQS tap) gets the JSON message as before
    [held] = notifications(stack, CONSUMER, "invitation.held")
    assert held["message"]["sender_account_id"] == STRANGER
    assert held["attributes"]["owner_account"] == STRANGER
    # and the e-mail subscriber the text: who, until when, and the command to approve it
    [email] = [e for e in stack.read_emails(CONSUMER) if e["subject"] == held["subject"]]
    assert email["endpoint"] == "ml-team@example.com"
    text = email["message"]
    assert text.startswith(f"HELD: share 'free-gpu-share' from account {STRANGER} needs your review")
    assert re.search(r"Can be accepted until: +\d{4}-\d\d-\d\d \d\d:\d\d UTC \(12 hours after it was sent", text)
    assert f"pipeshare consumer approve {invitation_arn(stack, CONSUMER, 'free-gpu-share')} --reason" in text
    assert not text.lstrip().startswith("{")


def test_owner_messages_carry_a_chat_notification_under_https_when_asked(stack: LocalStack) -> None:
    # Given an owner deployed with chat notifications and an e-mail subscription, sharing allow-execution
    deploy_shared_pipeline(
        stack,
        create_pipeline(stack, OWNER, "churn-train"),
        ChatNotifications="https",
        OwnerNotificationEmail="ml-platform@example.com",
    )

    # Then the acceptance message went out with the JSON message for default and the machine protocols, the text
    # for e-mail, and the chat notification for https
    [accepted] = [m for m in _published(OWNER, "OwnerTopic") if '"inventory.accepted"' in m["default"]]
    body = json.loads(accepted["default"])
    assert body["event"] == "inventory.accepted"
    assert all(accepted[p] == accepted["default"] for p in ("sqs", "lambda", "http", "email-json", "firehose"))
    chat = json.loads(accepted["https"])
    assert (chat["version"], chat["source"]) == ("1.0", "custom")
    assert chat["content"]["title"] == f"Consumer {CONSUMER} now holds churn-train"
    assert accepted["email"].startswith(f"Consumer {CONSUMER} now holds churn-train")
    [email] = [e for e in stack.read_emails(OWNER) if "inventory.accepted" in e["message"]]
    assert email["message"] == accepted["email"]


def test_without_chat_notifications_https_gets_the_json_message(stack: LocalStack) -> None:
    # Given an owner with the default ChatNotifications (off)
    deploy_shared_pipeline(stack, create_pipeline(stack, OWNER, "churn-train"))

    # Then https subscribers get the JSON message like every machine protocol
    [accepted] = [m for m in _published(OWNER, "OwnerTopic") if '"inventory.accepted"' in m["default"]]
    assert accepted["https"] == accepted["default"]
    assert not accepted["email"].startswith("{")
