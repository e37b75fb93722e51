"""functions/relay_notices: an owner's enforcement notice from the consumer's notice bus, relayed to the consumer topic
through PublishOnce (marks in memory) to a FakeNotifier, once per notice; refused (structured error, metric, nothing
published) unless a trusted owner of the trust policy sent it about this account."""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare.adapters.publish_once import PublishOnce
from pipeshare.models.domain import OwnerRule, TrustPolicy
from pipeshare.models.errors import PolicyInvalidError
from tests.conftest import load_event
from tests.fakes import CONSUMER, OWNER, FakeNotifier, FakePolicySource
from tests.unit.handlers.conftest import Invoker, Marks, assert_refused_without_side_effect, invalid_fixtures

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "relay_notices"
PARAMETERS = {"TrustedOwnerAccountIds": OWNER, "ConsumerNoticeBusName": "pipeshare-notices"}
STRANGER = "333333333333"


def notice_event(**changes: Any) -> dict[str, Any]:
    return {**load_event("eventbridge_enforcement_notice"), **changes}


class Consumer:
    def __init__(self, invoke: Invoker, *owners: str, policy_error: PolicyInvalidError | None = None) -> None:
        self.sns = FakeNotifier()
        self.once = PublishOnce(self.sns, invoke.environment["SHARE_TABLE_NAME"], client=Marks())
        policy = TrustPolicy(owners=[OwnerRule(account_id=o) for o in owners or (OWNER,)])
        self.policy = FakePolicySource(None if policy_error else policy, error=policy_error)

    def ports(self) -> dict[str, Any]:
        return {"get_policy_source": self.policy, "get_publish_once": self.once}


def test_a_trusted_owners_notice_is_published_once_even_when_delivered_twice(invoke: Invoker) -> None:
    # Given the consumer trusts the owner, and the owner's notice on its bus
    consumer = Consumer(invoke)

    # When EventBridge delivers it, then again (at least once)
    first = invoke(notice_event(), **consumer.ports())
    second = invoke(notice_event(id="another-delivery-id"), **consumer.ports())

    # Then one message went to the consumer topic: the readable subject and the notice as the body
    [published] = consumer.sns.published
    assert published.subject.startswith(f"pipeshare: owner {OWNER} stopped your run of churn-train")
    assert published.message == load_event("eventbridge_enforcement_notice")["detail"]
    assert published.attributes["owner_account"] == OWNER
    # and e-mail subscribers read it as text (MessageStructure json): who, what, the figure and the limit
    assert f"Owner account {OWNER} stopped your run of churn-train" in published.texts["email"]
    assert "0.08 of 0.05 USD" in published.texts["email"]
    assert (
        first.result
        == second.result
        == {
            "status": "relayed",
            "notice_id": "8d3f0b6c1a2e4f5a9b7c6d5e4f3a2b1c",
            "owner_account_id": OWNER,
            "message_id": "msg-1",
        }
    )
    assert first.built[-1] == (
        "get_publish_once",
        (invoke.environment["CONSUMER_TOPIC_ARN"], invoke.environment["SHARE_TABLE_NAME"]),
    )
    assert first.metrics["ConsumerNoticeRelayed"] == 1
    assert first.errors == []


@pytest.mark.parametrize(
    ("owners", "changes", "why"),
    [
        pytest.param((OWNER,), {"account": STRANGER}, "not a trusted owner", id="sender-not-trusted"),
        pytest.param((STRANGER,), {}, "not a trusted owner", id="owner-no-longer-trusted"),
        pytest.param((OWNER, STRANGER), {"account": STRANGER}, f"but account {STRANGER} sent it", id="sender-lies"),
    ],
)
def test_a_notice_not_sent_by_a_trusted_owner_is_refused(
    invoke: Invoker, owners: tuple[str, ...], changes: dict[str, Any], why: str
) -> None:
    # Given the consumer's trust policy
    consumer = Consumer(invoke, *owners)

    # When the notice arrives
    run = invoke(notice_event(**changes), **consumer.ports())

    # Then it is refused with a structured error and a metric, and nothing is published
    assert run.result["status"] == "refused"
    assert why in run.result["reason"]
    [error] = run.errors
    assert (error["message"], error["notice_id"]) == ("consumer notice refused", "8d3f0b6c1a2e4f5a9b7c6d5e4f3a2b1c")
    assert run.metrics["ConsumerNoticeRefused"] == 1
    assert consumer.sns.published == []
    assert run.calls_to("get_publish_once") == []


def test_a_notice_about_another_consumer_is_refused(invoke: Invoker) -> None:
    consumer = Consumer(invoke)
    detail = {**notice_event()["detail"], "consumer_account_id": STRANGER}
    run = invoke(notice_event(detail=detail), **consumer.ports())
    assert run.result["status"] == "refused"
    assert f"not this account ({CONSUMER})" in run.result["reason"]
    assert consumer.sns.published == []


def test_an_invalid_trust_policy_refuses_every_notice(invoke: Invoker) -> None:
    # Given the trust policy in SSM fails validation
    consumer = Consumer(invoke, policy_error=PolicyInvalidError("ssm:/p", ["owners: bad"], "f00d"))

    # When a notice arrives
    run = invoke(notice_event(), **consumer.ports())

    # Then it is refused (fail closed), nothing is published
    assert run.result["status"] == "refused"
    assert "invalid" in run.result["reason"]
    assert run.metrics["ConsumerNoticeRefused"] == 1
    assert consumer.sns.published == []


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param(notice_event(source="pipeshare.other"), "source", id="wrong-source"),
        pytest.param(
            notice_event(detail={**notice_event()["detail"], "action": "delete_everything"}), "action", id="bad-action"
        ),
        pytest.param(notice_event(detail={**notice_event()["detail"], "extra": 1}), "extra", id="extra-field"),
    ],
)
def test_an_invalid_notice_is_refused_without_side_effect(invoke: Invoker, event: dict[str, Any], reason: str) -> None:
    consumer = Consumer(invoke)
    run = invoke(event, **consumer.ports())
    assert_refused_without_side_effect(run, event_id=event["id"], answer={"status": "invalid"}, reason=reason)
    assert consumer.sns.published == []


@pytest.mark.parametrize("event", invalid_fixtures())
def test_every_invalid_fixture_is_refused(invoke: Invoker, event: Any) -> None:
    consumer = Consumer(invoke)
    run = invoke(event, **consumer.ports())
    assert run.result == {"status": "invalid"}
    assert run.metrics["InvalidEvent"] == 1
    assert run.calls == []
