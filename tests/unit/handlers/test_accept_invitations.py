"""functions/accept_invitations: a RAM invitation event or the sweep schedule, with RAM, the share table and the trust
policy in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeshare.logic.policy import policy_from_parameters
from pipeshare.models.domain import ShareStatus
from tests.conftest import load_event
from tests.fakes import (
    OWNER,
    STRANGER,
    FakeInvitationGateway,
    FakePolicySource,
    FakeShareRepository,
    raw_invitation,
    raw_resource,
)
from tests.unit.handlers.conftest import Invoker, assert_refused_without_side_effect, invalid_fixtures

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "accept_invitations"
PENDING = load_event("ram_invitation_pending")
INVITATION = PENDING["resources"][0]


class Consumer:
    """The consumer account's RAM, share table and trust policy (the fixture's sender trusted)."""

    def __init__(self, *, trusted: str = OWNER) -> None:
        self.ram = FakeInvitationGateway()
        self.shares = FakeShareRepository()
        self.policy = FakePolicySource(
            policy_from_parameters(
                trusted_owner_ids=trusted,
                allowed_resource_types="sagemaker:Pipeline",
                untrusted_action="hold",
                disallowed_resource_action="hold",
            )
        )

    def invite(self, arn: str = INVITATION, *, sender: str = OWNER) -> str:
        raw = raw_invitation("churn", sender=sender, resourceShareInvitationArn=arn)
        self.ram.add_invitation(raw, [raw_resource("churn-train", owner=sender)])
        return arn

    def ports(self) -> dict[str, Any]:
        return {"get_ram_gateway": self.ram, "get_share_repository": self.shares, "get_policy_source": self.policy}


def test_a_pending_invitation_from_a_trusted_owner_is_accepted_and_recorded(invoke: Invoker) -> None:
    # Given the invitation the fixture announces, from the trusted owner, pending in RAM
    consumer = Consumer()
    consumer.invite()

    # When the RAM event arrives
    run = invoke(PENDING, **consumer.ports())

    # Then it is accepted once in RAM, recorded ACCEPTED with its history item, and the response says so
    assert [(c.operation, c.invitation_arn) for c in consumer.ram.writes] == [("accept", INVITATION)]
    assert consumer.ram.status_of(INVITATION) == "ACCEPTED"
    record = consumer.shares.get(INVITATION)
    assert record is not None
    assert record.status is ShareStatus.ACCEPTED
    assert [h["to_status"] for h in consumer.shares.history_for(INVITATION)] == ["ACCEPTED"]
    assert run.result["status"] == "ok"
    assert run.result["seen"] == 1
    assert (run.result["accepted"], run.result["held"], run.result["rejected"]) == (1, 0, 0)
    assert run.result["failures"] == run.result["transient_failures"] == 0
    assert run.errors == []
    assert run.metrics["InvalidEvent"] == 0


def test_the_event_delivered_again_accepts_nothing_more(invoke: Invoker) -> None:
    # Given an invitation the first delivery accepted
    consumer = Consumer()
    consumer.invite()
    invoke(PENDING, **consumer.ports())

    # When EventBridge delivers the same event again
    run = invoke(PENDING, **consumer.ports())

    # Then RAM is answered once in all, one history item stays, and nothing new is counted as accepted
    assert len(consumer.ram.writes) == 1
    assert len(consumer.shares.history_for(INVITATION)) == 1
    assert run.result["status"] == "ok"
    assert run.result["accepted"] == 0
    assert run.errors == []


def test_the_sweep_holds_an_invitation_from_an_untrusted_sender_without_answering_it(invoke: Invoker) -> None:
    # Given a pending invitation from an account the policy does not trust
    consumer = Consumer()
    arn = consumer.invite(INVITATION.replace(OWNER, STRANGER), sender=STRANGER)

    # When the sweep schedule fires
    run = invoke(load_event("scheduled_sweep"), **consumer.ports())

    # Then it is held (recorded, not answered in RAM)
    assert consumer.ram.writes == []
    record = consumer.shares.get(arn)
    assert record is not None
    assert record.status is ShareStatus.HELD
    assert (run.result["status"], run.result["seen"], run.result["held"], run.result["accepted"]) == ("ok", 1, 1, 0)


@pytest.mark.parametrize("event", [*invalid_fixtures(), pytest.param(None, id="wrong-detail-type")])
def test_an_invalid_event_is_refused_once_without_any_port_call(invoke: Invoker, event: Any) -> None:
    # Given an event that is not a RAM state change nor the schedule (a fixture, or the RAM event with another type)
    event = event or load_event("ram_invitation_pending", detail_type="Resource Share Deleted")
    consumer = Consumer()
    consumer.invite()

    # When it is handed to the handler
    run = invoke(event, **consumer.ports())

    # Then one error line with its id and reason, one InvalidEvent metric, {"status": "invalid"}, nothing read or done
    assert_refused_without_side_effect(run, event_id=event["id"], answer={"status": "invalid"})
    assert consumer.ram.calls == []
    assert consumer.policy.loads == 0


def test_the_sweep_reminds_a_held_invitation_close_to_the_end_of_its_window(invoke: Invoker) -> None:
    # Given an invitation from an untrusted sender, held, sent 10 hours ago (the 12-hour window ends in 2 hours, inside
    # the template's default HeldReminderMinutes)
    consumer = Consumer()
    arn = INVITATION.replace(OWNER, STRANGER)
    sent = datetime.now(UTC) - timedelta(hours=10)
    consumer.ram.add_invitation(
        raw_invitation("churn", sender=STRANGER, resourceShareInvitationArn=arn, invitationTimestamp=sent),
        [raw_resource("churn-train", owner=STRANGER)],
    )

    # When the sweep schedule fires, twice
    first = invoke(load_event("scheduled_sweep"), **consumer.ports())
    second = invoke(load_event("scheduled_sweep"), **consumer.ports())

    # Then one reminder outbox item, naming the end of the window; nothing answered in RAM
    assert (first.result["reminded"], second.result["reminded"]) == (1, 0)
    [reminder] = [h for h in consumer.shares.history_for(arn) if h["kind"] == "reminder"]
    assert reminder["accept_by"] == (sent + timedelta(hours=12)).isoformat().replace("+00:00", "Z")
    assert consumer.ram.writes == []
    assert first.errors == []
