"""Reminders: one message per HELD invitation that RAM still lists as PENDING, a configurable time before its invitation
window closes (RAM returns only invitationTimestamp), recorded once by a conditional write, never for an invitation
RAM shows answered, and no RAM call per invitation (the sweep's own listing says what RAM knows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from pipeshare.logic.accept import INVITATION_WINDOW, SweepOutcome, process_invitations
from pipeshare.logic.notify import SCHEMA, SUBJECT_MAX, build_notification
from pipeshare.logic.policy import policy_from_parameters
from pipeshare.models.domain import HeldReminder, RecordedState, ReminderDigest, ShareStatus, TrustPolicy
from pipeshare.models.errors import PolicyInvalidError, TransientError
from pipeshare.models.outbox import DecisionHistoryItem
from tests.fakes import (
    INVITED_AT,
    OWNER,
    STRANGER,
    FakeInvitationGateway,
    FakePolicySource,
    FakeShareRepository,
    raw_invitation,
    raw_resource,
)

pytestmark = pytest.mark.usefixtures("socket_disabled")

RETENTION = timedelta(days=400)
BEFORE = timedelta(hours=4)
ACCEPT_BY = INVITED_AT + INVITATION_WINDOW  # 2026-05-01T20:56:24Z
DUE = ACCEPT_BY - BEFORE  # the first moment a reminder is due
OTHER_STRANGER = "555555555555"


def policy(trusted: str = OWNER) -> TrustPolicy:
    return policy_from_parameters(
        trusted_owner_ids=trusted,
        allowed_resource_types="sagemaker:Pipeline",
        untrusted_action="hold",
        disallowed_resource_action="hold",
    )


class World:
    def __init__(self, *, threshold: int = 5, shares: FakeShareRepository | None = None) -> None:
        self.ram = FakeInvitationGateway()
        self.shares = shares or FakeShareRepository()
        self.policy = FakePolicySource(policy())
        self.threshold = threshold

    def invite(self, name: str, *, sender: str = STRANGER, resource_type: str = "sagemaker:Pipeline") -> str:
        resources = [raw_resource(name, owner=sender, resource_type=resource_type)]
        arn = self.ram.add_invitation(raw_invitation(name, sender=sender), resources)
        assert arn is not None
        return arn

    def sweep(
        self,
        at: timedelta,
        *,
        before: timedelta = BEFORE,
        window: timedelta = INVITATION_WINDOW,
        arns: list[str] | None = None,
    ) -> SweepOutcome:
        """A run `at` after the invitations were sent (a sweep unless `arns` names invitations, as an event does)."""
        return process_invitations(
            arns,
            ram=self.ram,
            shares=self.shares,
            policy_source=self.policy,
            now=INVITED_AT + at,
            history_retention=RETENTION,
            on_invalid=lambda reason, ref: None,
            held_digest_threshold=self.threshold,
            reminder_before=before,
            invitation_window=window,
        )

    def reminders(self) -> list[dict[str, Any]]:
        return [h for h in self.shares.history if h["kind"] == "reminder"]

    def messages(self, event: str | None = None) -> list[dict[str, Any]]:
        built = [build_notification(DecisionHistoryItem.model_validate(h)) for h in self.shares.history]
        return [n.message for n in built if n is not None and (event is None or n.message["event"] == event)]


def test_held_invitation_gets_one_reminder_when_its_window_is_within_reach() -> None:
    # Given an untrusted sender's invitation, held by the first sweep
    world = World()
    arn = world.invite("s")
    world.sweep(timedelta(minutes=5))
    # When sweeps run every 15 minutes until 15 minutes before the window closes
    outcomes = [world.sweep(timedelta(minutes=m)) for m in range(20, 12 * 60 - 14, 15)]
    # Then exactly one reminder was recorded, by the first sweep at or after the due time, with its message
    [reminder] = world.reminders()
    assert reminder["at"] == "2026-05-01T17:01:24Z"  # the first sweep (every 15 min from 08:56:24) after 16:56:24
    assert sum(o.reminded for o in outcomes) == 1
    assert world.shares.records[arn].reminded_at is not None
    [message] = world.messages("invitation.reminder")
    assert message["invitation_arn"] == arn
    assert message["accept_by"] == "2026-05-01T20:56:24Z"
    assert message["how_to_accept"] == f"pipeshare consumer approve {arn} --reason ..."


def test_no_reminder_before_the_window_is_within_reach() -> None:
    # Given a held invitation
    world = World()
    world.invite("s")
    world.sweep(timedelta(minutes=5))
    # When a sweep runs one second before the reminder is due
    outcome = world.sweep(INVITATION_WINDOW - BEFORE - timedelta(seconds=1))
    # Then no reminder
    assert world.reminders() == []
    assert outcome.reminded == 0


def test_the_same_sweep_again_records_nothing_more() -> None:
    # Given a sweep that recorded a reminder
    world = World()
    world.invite("s")
    world.sweep(timedelta(minutes=5))
    assert world.sweep(INVITATION_WINDOW - BEFORE).reminded == 1
    # When the same sweep is delivered again (same time), and once more later
    again = world.sweep(INVITATION_WINDOW - BEFORE)
    later = world.sweep(INVITATION_WINDOW - timedelta(minutes=30))
    # Then still one reminder and one message
    assert (again.reminded, later.reminded) == (0, 0)
    assert len(world.reminders()) == 1
    assert len(world.messages("invitation.reminder")) == 1


class _StaleReads(FakeShareRepository):
    """A repository whose batched reads miss `reminded_at`: what a concurrent sweep read before the other one wrote."""

    def recorded_states(self, invitation_arns: Sequence[str]) -> dict[str, RecordedState]:
        states = super().recorded_states(invitation_arns)
        return {arn: s.model_copy(update={"reminded_at": None}) for arn, s in states.items()}


def test_concurrent_sweeps_record_one_reminder() -> None:
    # Given two sweeps that both read the held record before either reminded it
    world = World(shares=_StaleReads())
    arn = world.invite("s")
    world.sweep(timedelta(minutes=5))
    first = world.sweep(INVITATION_WINDOW - BEFORE)
    # When the second one decides at a (slightly) different time
    second = world.sweep(INVITATION_WINDOW - BEFORE + timedelta(seconds=1))
    # Then its conditional write refused the second reminder
    assert (first.reminded, second.reminded) == (1, 0)
    assert [r["invitation_arn"] for r in world.reminders()] == [arn]


def test_no_reminder_for_an_invitation_ram_shows_accepted() -> None:
    # Given a held invitation that someone accepted in RAM (the record still says HELD)
    world = World()
    arn = world.invite("s")
    world.sweep(timedelta(minutes=5))
    world.ram.set_status(arn, "ACCEPTED")
    # When the sweep runs inside the reminder window
    outcome = world.sweep(INVITATION_WINDOW - BEFORE)
    # Then the acceptance is recorded and no reminder
    assert world.shares.records[arn].status is ShareStatus.ACCEPTED
    assert world.reminders() == []
    assert outcome.reminded == 0


@pytest.mark.parametrize("ram_status", ["REJECTED", "EXPIRED"])
def test_no_reminder_for_an_invitation_ram_shows_answered_or_expired(ram_status: str) -> None:
    # Given a held invitation RAM now shows rejected or expired
    world = World()
    arn = world.invite("s")
    world.sweep(timedelta(minutes=5))
    world.ram.set_status(arn, ram_status)
    # When the sweep runs inside the reminder window
    world.sweep(INVITATION_WINDOW - BEFORE)
    # Then no reminder
    assert world.shares.records[arn].status.value == ram_status
    assert world.reminders() == []


def test_no_reminder_for_a_held_invitation_this_sweep_accepts() -> None:
    # Given a held invitation from a sender the policy now trusts
    world = World()
    arn = world.invite("s")
    world.sweep(timedelta(minutes=5))
    world.policy.policy = policy(f"{OWNER},{STRANGER}")
    # When the sweep runs inside the reminder window
    world.sweep(INVITATION_WINDOW - BEFORE)
    # Then it was accepted, not reminded
    assert world.ram.status_of(arn) == "ACCEPTED"
    assert world.reminders() == []


def test_no_reminder_after_an_accept_following_the_reminder() -> None:
    # Given a reminded held invitation, then accepted in RAM
    world = World()
    arn = world.invite("s")
    world.sweep(timedelta(minutes=5))
    world.sweep(INVITATION_WINDOW - BEFORE)
    world.ram.set_status(arn, "ACCEPTED")
    # When later sweeps run
    world.sweep(INVITATION_WINDOW - timedelta(hours=1))
    world.sweep(INVITATION_WINDOW - timedelta(minutes=15))
    # Then the one reminder stays the only one
    assert len(world.reminders()) == 1


def test_no_reminder_for_an_invitation_only_pending_in_the_record() -> None:
    # Given a trusted owner's invitation left PENDING while the trust policy is invalid (waiting, not held)
    world = World()
    arn = world.invite("p", sender=OWNER)
    world.policy.error = PolicyInvalidError("ssm:/pipeshare/policy", ["version: Input should be 1"], "0123456789abcdef")
    world.sweep(timedelta(minutes=5))
    assert world.shares.records[arn].status is ShareStatus.PENDING
    # When the sweep runs inside the reminder window
    world.sweep(INVITATION_WINDOW - BEFORE)
    # Then no reminder: only holds are reminded
    assert world.reminders() == []


def test_a_hold_decided_inside_the_window_is_reminded_by_the_same_sweep() -> None:
    # Given an invitation first seen (events lost) after its reminder time
    world = World()
    arn = world.invite("s")
    # When the first sweep holds it
    outcome = world.sweep(INVITATION_WINDOW - timedelta(hours=1))
    # Then the hold and the reminder are both recorded
    assert world.shares.records[arn].status is ShareStatus.HELD
    assert outcome.reminded == 1
    assert {m["event"] for m in world.messages()} == {"invitation.held", "invitation.reminder"}


def test_no_reminder_once_the_window_has_passed() -> None:
    # Given a held invitation RAM still lists as PENDING just after its window (RAM has not expired it yet)
    world = World()
    world.invite("s")
    world.sweep(timedelta(minutes=5))
    # When the sweep runs at the end of the window
    world.sweep(INVITATION_WINDOW)
    # Then no reminder: there is nothing left to approve
    assert world.reminders() == []


def test_zero_turns_reminders_off() -> None:
    # Given a held invitation
    world = World()
    world.invite("s")
    world.sweep(timedelta(minutes=5))
    # When sweeps run through the window with reminders off
    for minutes in range(60, 12 * 60, 60):
        world.sweep(timedelta(minutes=minutes), before=timedelta(0))
    # Then none
    assert world.reminders() == []


def test_the_window_is_configurable() -> None:
    # Given a held invitation, under a 7-day invitation window
    world = World()
    world.invite("s")
    seven_days = timedelta(days=7)
    world.sweep(timedelta(minutes=5), window=seven_days)
    # When sweeps run at 8 h (would be due under 12 h) and 4 hours before 7 days
    world.sweep(timedelta(hours=8), window=seven_days)
    assert world.reminders() == []
    world.sweep(seven_days - BEFORE, window=seven_days)
    # Then the one reminder names the end of the 7-day window
    [reminder] = world.reminders()
    assert reminder["accept_by"] == "2026-05-08T08:56:24Z"


def test_an_event_triggered_run_reminds_nobody() -> None:
    # Given a held invitation inside its reminder window
    world = World()
    arn = world.invite("s")
    world.sweep(timedelta(minutes=5))
    # When a RAM event names it
    world.sweep(INVITATION_WINDOW - BEFORE, arns=[arn])
    # Then no reminder: the sweep (which reads every record) sends them
    assert world.reminders() == []


def test_reminders_cost_no_ram_call() -> None:
    # Given held invitations from a trusted owner (disallowed type) and from a stranger
    world = World()
    world.invite("p", sender=OWNER, resource_type="ec2:Subnet")
    world.invite("s")
    world.sweep(timedelta(minutes=5))
    calls = len(world.ram.calls)
    # When the sweep that reminds both runs (the trusted one is due a re-check too)
    outcome = world.sweep(INVITATION_WINDOW - BEFORE)
    # Then RAM saw the listing and the trusted one's re-check only: nothing for the reminders
    assert outcome.reminded == 2
    assert Counter(c.operation for c in world.ram.calls[calls:]) == {
        "get_invitations": 1,
        "list_pending_resources": 1,
    }


def test_reminders_beyond_the_threshold_go_out_in_one_digest() -> None:
    # Given 2000 held invitations from two strangers, all inside their reminder window together
    world = World(threshold=5)
    for n in range(1500):
        world.invite(f"a{n:04d}")
    for n in range(500):
        world.invite(f"b{n:04d}", sender=OTHER_STRANGER)
    world.sweep(timedelta(minutes=5))
    calls = len(world.ram.calls)
    # When the sweep that reminds them runs, and again 15 minutes later
    outcome = world.sweep(INVITATION_WINDOW - BEFORE)
    again = world.sweep(INVITATION_WINDOW - BEFORE + timedelta(minutes=15))
    # Then 5 single messages and one digest of the other 1995; RAM saw only the two listings
    assert (outcome.reminded, again.reminded) == (2000, 0)
    assert [c.operation for c in world.ram.calls[calls:]] == ["get_invitations", "get_invitations"]
    events = Counter(str(m["event"]) for m in world.messages() if str(m["event"]).startswith("invitation.reminder"))
    assert events == {"invitation.reminder": 5, "invitation.reminder.digest": 1}
    [digest] = world.messages("invitation.reminder.digest")
    assert digest["count"] == 1995
    assert digest["senders"] == {STRANGER: 1495, OTHER_STRANGER: 500}
    assert digest["accept_by"] == "2026-05-01T20:56:24Z"
    assert len(digest["share_names"]) == 10
    # and every invitation is marked reminded, the digested ones naming the digest (written before them)
    assert all(r.reminded_at is not None for r in world.shares.records.values())
    kinds = [(h["pk"] == "DIGEST", h.get("notice")) for h in world.reminders()]
    assert kinds.index((True, None)) < kinds.index((False, "digest"))


class _FailingOnce(FakeShareRepository):
    """A repository whose first reminder write fails transiently."""

    failed = False

    def record_reminder(self, reminder: HeldReminder, *, history_expires_at: int) -> bool:
        if not self.failed:
            self.failed = True
            raise TransientError("throttled")
        return super().record_reminder(reminder, history_expires_at=history_expires_at)


def test_a_failed_reminder_write_is_retried_by_the_next_sweep() -> None:
    # Given a held invitation and a share table that throttles the first reminder write
    world = World(shares=_FailingOnce())
    arn = world.invite("s")
    world.sweep(timedelta(minutes=5))
    # When the due sweep runs, then the next one
    first = world.sweep(INVITATION_WINDOW - BEFORE)
    second = world.sweep(INVITATION_WINDOW - BEFORE + timedelta(minutes=15))
    # Then the first counted a transient failure (the invocation is retried), the second reminded
    assert (first.transient_failures, first.reminded) == (1, 0)
    assert any("reminder" in p for p in first.problems)
    assert second.reminded == 1
    assert [r["invitation_arn"] for r in world.reminders()] == [arn]


# ------------------------------------------------------------------------------------------- the message


def reminder_item(**updates: Any) -> DecisionHistoryItem:
    arn = "arn:aws:ram:us-east-1:333333333333:resource-share-invitation/3b3bc051-fbf6-4336-8377-06c559dfee49"
    reminder = HeldReminder(
        invitation_arn=arn,
        share_arn="arn:aws:ram:us-east-1:333333333333:resource-share/8f1c0d8e-4c57-4d39-9a1c-2b3f58a0f0aa",
        share_name="free-gpu-share",
        sender_account_id=STRANGER,
        receiver_account_id="222222222222",
        region="us-east-1",
        invited_at=INVITED_AT,
        accept_by=ACCEPT_BY,
        at=DUE,
    )
    data = {
        "pk": f"INVITATION#{arn}",
        "sk": "HIST#2026-05-01T16:56:24Z#REMINDER",
        "kind": "reminder",
        "to_status": "HELD",
        **reminder.model_dump(mode="json", exclude_none=True),
        **updates,
    }
    return DecisionHistoryItem.model_validate(data)


def test_reminder_message_says_which_invitation_until_when_and_how() -> None:
    # Given a reminder outbox item
    item = reminder_item()
    # When it is turned into a notification
    notification = build_notification(item)
    # Then one message in the consumer schema, its subject naming the deadline, its attributes as the others'
    assert notification is not None
    assert notification.subject == (
        "pipeshare: REMINDER: HELD share expires 2026-05-01T20:56:24Z - 'free-gpu-share' from 333333333333"
    )
    assert len(notification.subject) <= SUBJECT_MAX
    assert notification.message == {
        "schema": SCHEMA,
        "event": "invitation.reminder",
        "status": "HELD",
        "invitation_arn": item.invitation_arn,
        "share_arn": item.share_arn,
        "share_name": "free-gpu-share",
        "sender_account_id": STRANGER,
        "receiver_account_id": "222222222222",
        "region": "us-east-1",
        "invited_at": "2026-05-01T08:56:24Z",
        "accept_by": "2026-05-01T20:56:24Z",
        "reminded_at": "2026-05-01T16:56:24Z",
        "how_to_accept": f"pipeshare consumer approve {item.invitation_arn} --reason ...",
        "effect": "nothing is changed: the invitation stays held and RAM expires it at accept_by unless it is "
        "approved before then",
    }
    assert notification.attributes == {
        "event": "invitation.reminder",
        "status": "HELD",
        "owner_account": STRANGER,
        "consumer_account": "222222222222",
    }


def test_reminder_subject_keeps_the_deadline_with_a_long_share_name() -> None:
    # Given a reminder for a share with a very long name
    notification = build_notification(reminder_item(share_name="x" * 500))
    # Then the subject fits SNS and still names the deadline
    assert notification is not None
    assert len(notification.subject) <= SUBJECT_MAX
    assert "2026-05-01T20:56:24Z" in notification.subject


def test_a_reminder_the_digest_announces_sends_nothing_on_its_own() -> None:
    # Given a reminder marked as announced in the sweep's digest
    item = reminder_item(notice="digest", digest="HIST#2026-05-01T16:56:24Z#REMINDER")
    # Then no message of its own
    assert build_notification(item) is None


def test_reminder_digest_message() -> None:
    # Given a sweep's reminder digest item
    digest = ReminderDigest(
        at=DUE,
        count=12,
        senders={STRANGER: 12},
        share_names=["a-share"],
        threshold=5,
        accept_by=ACCEPT_BY,
    )
    data = {
        "pk": "DIGEST",
        "sk": digest.key,
        "kind": "reminder",
        "to_status": "HELD",
        **digest.model_dump(mode="json", exclude_none=True),
    }
    # When it is turned into a notification
    notification = build_notification(DecisionHistoryItem.model_validate(data))
    # Then one digest message naming the count and the earliest deadline
    assert notification is not None
    assert notification.subject == "pipeshare: 12 more HELD invitations expire soon - first by 2026-05-01T20:56:24Z"
    assert notification.message["event"] == "invitation.reminder.digest"
    assert (notification.message["count"], notification.message["senders"]) == (12, {STRANGER: 12})
    assert notification.message["accept_by"] == "2026-05-01T20:56:24Z"
    assert notification.attributes == {"event": "invitation.reminder.digest", "status": "HELD"}
    assert digest.key == "HIST#2026-05-01T16:56:24Z#REMINDER"
