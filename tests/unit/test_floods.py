"""Invitation floods: the sender is judged before any resource is read, held untrusted invitations are not re-read
under the same policy, and holds beyond the per-sweep threshold are announced in one digest."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from pipeshare.logic.accept import SweepOutcome, process_invitations
from pipeshare.logic.notify import build_notification
from pipeshare.logic.policy import policy_from_parameters
from pipeshare.models.domain import TrustPolicy
from pipeshare.models.outbox import DecisionHistoryItem
from tests.fakes import (
    OWNER,
    STRANGER,
    FakeInvitationGateway,
    FakePolicySource,
    FakeShareRepository,
    raw_invitation,
    raw_resource,
)

pytestmark = pytest.mark.usefixtures("socket_disabled")

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
RETENTION = timedelta(days=400)
OTHER_STRANGER = "555555555555"


def policy(trusted: str = OWNER, *, untrusted: str = "hold") -> TrustPolicy:
    return policy_from_parameters(
        trusted_owner_ids=trusted,
        allowed_resource_types="sagemaker:Pipeline",
        untrusted_action=untrusted,
        disallowed_resource_action="hold",
    )


class World:
    def __init__(self, trust: TrustPolicy | None = None, *, threshold: int = 5) -> None:
        self.ram = FakeInvitationGateway()
        self.shares = FakeShareRepository()
        self.policy = FakePolicySource(trust or policy())
        self.threshold = threshold

    def invite(self, name: str, *, sender: str = STRANGER) -> str:
        arn = self.ram.add_invitation(raw_invitation(name, sender=sender), [raw_resource(name, owner=sender)])
        assert arn is not None
        return arn

    def run(self, arns: list[str] | None = None, *, now: datetime = NOW) -> SweepOutcome:
        return process_invitations(
            arns,
            ram=self.ram,
            shares=self.shares,
            policy_source=self.policy,
            now=now,
            history_retention=RETENTION,
            on_invalid=lambda reason, ref: None,
            held_digest_threshold=self.threshold,
        )

    def messages(self) -> list[dict[str, object]]:
        built = [build_notification(DecisionHistoryItem.model_validate(h)) for h in self.shares.history]
        return [n.message for n in built if n is not None]


def test_untrusted_sender_is_held_without_listing_its_resources() -> None:
    # Given pending invitations from an untrusted sender
    world = World()
    arns = [world.invite(f"s{n}") for n in range(3)]
    # When a sweep decides them
    world.run()
    # Then each is held and no resource list was read
    assert all(world.shares.records[a].rule == "untrusted-owner" for a in arns)
    assert world.ram.calls_to("list_pending_resources") == []


def test_untrusted_sender_under_reject_policy_is_rejected_without_listing_resources() -> None:
    # Given an untrusted sender under a reject policy
    world = World(policy(untrusted="reject"))
    arn = world.invite("s")
    # When a sweep decides it
    world.run()
    # Then one reject and no resource list
    assert [c.operation for c in world.ram.calls] == ["get_invitations", "reject"]
    assert world.ram.status_of(arn) == "REJECTED"


def test_trusted_sender_still_has_its_resources_read() -> None:
    # Given an invitation from the trusted owner
    world = World()
    arn = world.invite("p", sender=OWNER)
    # When a sweep decides it
    world.run()
    # Then its resources were read before it was accepted
    assert [c.invitation_arn for c in world.ram.calls_to("list_pending_resources")] == [arn]
    assert world.ram.status_of(arn) == "ACCEPTED"


def test_event_triggered_run_leaves_untrusted_sender_to_the_sweep() -> None:
    # Given an untrusted sender's invitation named by a RAM event
    world = World()
    arn = world.invite("s")
    # When the event-triggered run processes it
    outcome = world.run([arn])
    # Then nothing is recorded or read beyond the invitation, and the outcome says so
    assert world.shares.records == {}
    assert [c.operation for c in world.ram.calls] == ["get_invitations"]
    assert outcome.log_fields()["left_to_sweep"] == 1
    assert outcome.invitations[0].rule == "left-to-sweep"


def test_second_sweep_does_not_reread_or_touch_held_untrusted_invitations() -> None:
    # Given untrusted invitations held by a sweep
    world = World()
    for n in range(4):
        world.invite(f"s{n}")
    world.run()
    calls, touches = len(world.ram.calls), len(world.shares.touches)
    # When sweeps run again hours later under the same policy
    world.run(now=NOW + timedelta(hours=3))
    world.run(now=NOW + timedelta(hours=30))
    # Then only the invitation listings were made, and no record was touched
    assert [c.operation for c in world.ram.calls[calls:]] == ["get_invitations", "get_invitations"]
    assert len(world.shares.touches) == touches


def test_policy_change_rereads_held_untrusted_invitations_once() -> None:
    # Given a held invitation from an untrusted sender
    world = World()
    arn = world.invite("s")
    world.run()
    # When the policy changes (another owner trusted), and two sweeps run
    world.policy.policy = policy(f"{OWNER},{OTHER_STRANGER}")
    world.run(now=NOW + timedelta(minutes=15))
    world.run(now=NOW + timedelta(minutes=30))
    # Then the first sweep re-evaluated it (recorded under the new fingerprint), the second did not
    assert world.shares.touches == [arn]
    assert world.shares.records[arn].policy_fingerprint == world.policy.policy.fingerprint
    assert world.ram.calls_to("list_pending_resources") == []


def test_policy_trusting_the_sender_accepts_its_held_invitation() -> None:
    # Given a held invitation from a then-untrusted sender
    world = World()
    arn = world.invite("s")
    world.run()
    # When the policy starts trusting that sender
    world.policy.policy = policy(f"{OWNER},{STRANGER}")
    world.run(now=NOW + timedelta(minutes=15))
    # Then its resources are read and it is accepted
    assert world.ram.status_of(arn) == "ACCEPTED"
    assert len(world.ram.calls_to("list_pending_resources")) == 1


def test_holds_beyond_threshold_are_announced_in_one_digest() -> None:
    # Given threshold + 3 untrusted invitations from two senders
    world = World(threshold=5)
    for n in range(6):
        world.invite(f"a{n}")
    for n in range(2):
        world.invite(f"b{n}", sender=OTHER_STRANGER)
    # When one sweep decides them
    outcome = world.run()
    # Then threshold single messages and one digest of the other 3
    events = Counter(str(m["event"]) for m in world.messages())
    assert events == {"invitation.held": 5, "invitation.held.digest": 1}
    [digest] = [m for m in world.messages() if m["event"] == "invitation.held.digest"]
    assert digest["count"] == 3
    assert digest["senders"] == {OTHER_STRANGER: 2, STRANGER: 1}
    assert digest["share_names"] == ["a5-share", "b0-share", "b1-share"]
    assert outcome.log_fields()["held"] == 8
    assert outcome.log_fields()["digested"] == 3


def test_digest_is_written_before_the_holds_it_announces() -> None:
    # Given threshold + 1 untrusted invitations
    world = World(threshold=2)
    for n in range(3):
        world.invite(f"s{n}")
    # When one sweep decides them
    world.run()
    # Then the digest item precedes the hold it announces, which names it
    kinds = [(h["kind"], h.get("notice")) for h in world.shares.history]
    assert kinds.index(("digest", None)) < kinds.index(("invitation", "digest"))
    digested = [h for h in world.shares.history if h.get("notice") == "digest"]
    assert [h["digest"] for h in digested] == [h["sk"] for h in world.shares.history if h["kind"] == "digest"]


def test_no_digest_at_or_below_threshold() -> None:
    # Given exactly threshold untrusted invitations
    world = World(threshold=3)
    for n in range(3):
        world.invite(f"s{n}")
    # When one sweep decides them
    world.run()
    # Then three single messages and no digest
    assert Counter(str(m["event"]) for m in world.messages()) == {"invitation.held": 3}


def test_threshold_counts_only_new_holds_of_the_sweep() -> None:
    # Given 3 held invitations, then 3 new ones, threshold 3
    world = World(threshold=3)
    for n in range(3):
        world.invite(f"old{n}")
    world.run()
    for n in range(3):
        world.invite(f"new{n}")
    # When the next sweep runs
    world.run(now=NOW + timedelta(minutes=15))
    # Then the 3 new ones were announced singly: no digest in either sweep
    assert Counter(str(m["event"]) for m in world.messages()) == {"invitation.held": 6}


def test_digest_subject_is_readable() -> None:
    # Given a sweep digest of 3 holds
    world = World(threshold=0)
    for n in range(3):
        world.invite(f"s{n}")
    world.run()
    [item] = [h for h in world.shares.history if h["kind"] == "digest"]
    # When its notification is built
    notification = build_notification(DecisionHistoryItem.model_validate(item))
    # Then
    assert notification is not None
    assert notification.subject == "pipeshare: 3 more invitations HELD from untrusted senders - digest"
    assert notification.attributes == {"event": "invitation.held.digest", "status": "HELD"}


def test_calls_per_invitation_are_flat_for_a_flood() -> None:
    # Given 300 untrusted invitations
    world = World()
    for n in range(300):
        world.invite(f"s{n:03d}")
    # When one sweep decides them, then a second one runs
    world.run()
    first = len(world.ram.calls) + len(world.shares.transition_attempts) + len(world.shares.status_queries)
    world.run(now=NOW + timedelta(hours=2))
    # Then the first sweep made one listing, one state read and one write per invitation, the second only reads
    assert len(world.ram.calls_to("list_pending_resources")) == 0
    assert first == 1 + 1 + 300
    assert len(world.shares.transition_attempts) == 300
    assert len(world.ram.calls) == 2
