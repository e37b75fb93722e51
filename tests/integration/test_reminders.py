"""Reminders for HELD invitations close to the end of their RAM window, end to end on the local stack (template-built
deployment, RAM emulation whose invitations expire after the window, the scenario clock, the notifier on the share
table's stream): one reminder per invitation, none after it is accepted, none twice, no RAM call of its own."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import (
    CONSUMER,
    OWNER,
    STRANGER,
    create_pipeline,
    history,
    invitation_arn,
    notifications,
    share,
    share_pipeline,
    state,
)

ACCEPTOR = "AcceptInvitationsFunction"
TRUSTING_OWNER = {"TrustedOwnerAccountIds": OWNER}
RAM_OPERATIONS = {
    "GetResourceShareInvitations",
    "ListPendingInvitationResources",
    "AcceptResourceShareInvitation",
    "RejectResourceShareInvitation",
}


def _invited_at(stack: LocalStack, share_name: str) -> datetime:
    invitations = stack.client(CONSUMER, "ram").get_resource_share_invitations()["resourceShareInvitations"]
    return next(i["invitationTimestamp"] for i in invitations if i["resourceShareName"] == share_name)


def _reminders(stack: LocalStack, share_name: str) -> list[dict[str, Any]]:
    return [h for h in history(stack, CONSUMER, share_name) if h["kind"] == "reminder"]


def _ops(stack: LocalStack, since: int) -> Counter[str]:
    return Counter(op for _, _, op in stack.calls(CONSUMER, function=ACCEPTOR)[since:])


def test_held_invitation_gets_one_reminder_when_its_window_is_within_reach(stack: LocalStack) -> None:
    # Given a consumer with the default reminder time (4 hours before the 12-hour window closes) and an untrusted
    # sender's invitation, held
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, STRANGER, "free-gpu", [CONSUMER])
    stack.deliver()
    stack.run_schedule(CONSUMER)
    assert state(stack, CONSUMER, "free-gpu-share")["status"] == "HELD"
    # When the 15-minute sweeps run for 7 h 50 min: no reminder yet
    stack.advance(timedelta(hours=7, minutes=50))
    assert _reminders(stack, "free-gpu-share") == []
    assert notifications(stack, CONSUMER, "invitation.reminder") == []
    # and on to 11 h 50 min
    stack.advance(timedelta(hours=4))
    # Then exactly one reminder, by the first sweep inside the last 4 hours, naming the end of the window
    [reminder] = _reminders(stack, "free-gpu-share")
    accept_by = _invited_at(stack, "free-gpu-share") + timedelta(hours=12)
    reminded_at = datetime.fromisoformat(reminder["at"])
    assert accept_by - timedelta(hours=4) <= reminded_at < accept_by - timedelta(hours=3, minutes=45)
    [message] = notifications(stack, CONSUMER, "invitation.reminder")
    arn = invitation_arn(stack, CONSUMER, "free-gpu-share")
    assert message["message"]["invitation_arn"] == arn
    assert datetime.fromisoformat(message["message"]["accept_by"]) == accept_by
    assert message["message"]["how_to_accept"] == f"pipeshare consumer approve {arn} --reason ..."
    assert message["attributes"]["event"] == "invitation.reminder"
    assert state(stack, CONSUMER, "free-gpu-share")["reminded_at"] == reminder["at"]


def test_no_reminder_for_an_invitation_accepted_before_the_window_is_within_reach(stack: LocalStack) -> None:
    # Given a held invitation that the consumer's team accepts in RAM after 6 hours
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, STRANGER, "free-gpu", [CONSUMER])
    stack.deliver()
    stack.advance(timedelta(hours=6))
    stack.client(CONSUMER, "ram").accept_resource_share_invitation(
        resourceShareInvitationArn=invitation_arn(stack, CONSUMER, "free-gpu-share")
    )
    # When the sweeps run past the end of the window
    stack.advance(timedelta(hours=6, minutes=30))
    # Then the acceptance was recorded and no reminder was ever recorded or sent
    assert state(stack, CONSUMER, "free-gpu-share")["status"] == "ACCEPTED"
    assert _reminders(stack, "free-gpu-share") == []
    assert notifications(stack, CONSUMER, "invitation.reminder") == []


def test_duplicate_sweeps_remind_once(stack: LocalStack) -> None:
    # Given a held invitation, reminded by the sweeps
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, STRANGER, "free-gpu", [CONSUMER])
    stack.deliver()
    stack.advance(timedelta(hours=8, minutes=15))
    assert len(_reminders(stack, "free-gpu-share")) == 1
    # When the schedule fires three more times at the same moment, and the sweeps go on
    for _ in range(3):
        stack.run_schedule(CONSUMER)
    stack.advance(timedelta(hours=3, minutes=30))
    # Then still one reminder item and one message
    assert len(_reminders(stack, "free-gpu-share")) == 1
    assert len(notifications(stack, CONSUMER, "invitation.reminder")) == 1


def test_reminders_off(stack: LocalStack) -> None:
    # Given a consumer with HeldReminderMinutes 0 and a held invitation
    stack.deploy(CONSUMER, {**TRUSTING_OWNER, "HeldReminderMinutes": "0"})
    share_pipeline(stack, STRANGER, "free-gpu", [CONSUMER])
    stack.deliver()
    # When the sweeps run to the end of the window
    stack.advance(timedelta(hours=12, minutes=15))
    # Then no reminder; the expiry is still recorded
    assert _reminders(stack, "free-gpu-share") == []
    assert state(stack, CONSUMER, "free-gpu-share")["status"] == "EXPIRED"


FLOOD = 1000


def test_a_flood_of_held_invitations_is_reminded_without_any_ram_call_of_its_own(stack: LocalStack) -> None:
    # Given FLOOD held invitations from an untrusted account, hourly sweeps, threshold 5
    stack.deploy(CONSUMER, {**TRUSTING_OWNER, "HeldDigestThreshold": "5", "SweepSchedule": "rate(1 hour)"})
    pipeline = create_pipeline(stack, STRANGER, "free-gpu")
    for n in range(FLOOD):
        share(stack, STRANGER, f"flood-{n:04d}", [pipeline], [CONSUMER])
    stack.deliver()
    stack.advance(timedelta(hours=5, minutes=30))
    # When two sweeps run before the reminders are due (6 h, 7 h) and two while they fall due (8 h, 9 h)
    before = len(stack.calls(CONSUMER, function=ACCEPTOR))
    stack.advance(timedelta(hours=2))
    middle = len(stack.calls(CONSUMER, function=ACCEPTOR))
    stack.advance(timedelta(hours=2))
    quiet, reminding = _ops(stack, before) - _ops(stack, middle), _ops(stack, middle)
    # Then the reminding sweeps made the same RAM calls as the quiet ones, plus one write per invitation and the digest
    assert {op: n for op, n in reminding.items() if op in RAM_OPERATIONS} == {
        op: n for op, n in quiet.items() if op in RAM_OPERATIONS
    }
    assert reminding["ListPendingInvitationResources"] == 0
    assert reminding - quiet == Counter({"TransactWriteItems": FLOOD, "PutItem": 1})
    # and 5 single reminders and one digest of the rest went out
    assert len(notifications(stack, CONSUMER, "invitation.reminder")) == 5
    [digest] = notifications(stack, CONSUMER, "invitation.reminder.digest")
    assert (digest["message"]["count"], digest["message"]["senders"]) == (FLOOD - 5, {STRANGER: FLOOD - 5})
    # and a later sweep reminds nobody again
    stack.advance(timedelta(hours=1))
    assert len([i for i in stack.table_items(CONSUMER) if i["sk"].endswith("#REMINDER")]) == FLOOD + 1
