"""pipeshare.logic.accept.process_invitations, driven through the in-memory ports in tests/fakes.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeshare.logic.accept import POLICY_REMINDER, RECHECK_INTERVAL, SweepOutcome, client_token, process_invitations
from pipeshare.logic.policy import policy_from_parameters
from pipeshare.models.domain import Action, ShareStatus, TrustPolicy
from pipeshare.models.errors import (
    AccessDeniedError,
    InvitationAlreadyAcceptedError,
    InvitationAlreadyRejectedError,
    InvitationExpiredError,
    InvitationNotFoundError,
    PolicyInvalidError,
    TransientError,
    UnexpectedApiError,
)
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


def trust_policy(
    trusted: str = OWNER, *, untrusted: str = "hold", disallowed: str = "hold", types: str = "sagemaker:Pipeline"
) -> TrustPolicy:
    return policy_from_parameters(
        trusted_owner_ids=trusted,
        allowed_resource_types=types,
        untrusted_action=untrusted,
        disallowed_resource_action=disallowed,
    )


class World:
    """The fakes plus a runner; `invalid` collects every on_invalid(reason, ref) call."""

    def __init__(self, policy: TrustPolicy | None = None) -> None:
        self.ram = FakeInvitationGateway()
        self.shares = FakeShareRepository()
        self.policy = FakePolicySource(policy or trust_policy())
        self.invalid: list[tuple[str, str | None]] = []

    def invite(self, name: str, *, sender: str = OWNER, status: str = "PENDING", types: Sequence[str] = ()) -> str:
        types = types or ["sagemaker:Pipeline"]
        resources = [raw_resource(f"{name}-{i}", owner=sender, resource_type=t) for i, t in enumerate(types)]
        arn = self.ram.add_invitation(raw_invitation(name, sender=sender, status=status), resources)
        assert arn is not None
        return arn

    def run(self, arns: Sequence[str] | None = None, *, now: datetime = NOW) -> SweepOutcome:
        return process_invitations(
            arns,
            ram=self.ram,
            shares=self.shares,
            policy_source=self.policy,
            now=now,
            history_retention=RETENTION,
            on_invalid=lambda reason, ref: self.invalid.append((reason, ref)),
        )

    def status(self, arn: str) -> ShareStatus | None:
        record = self.shares.get(arn)
        return None if record is None else record.status

    def rule(self, arn: str) -> str | None:
        record = self.shares.get(arn)
        return None if record is None else record.rule


@pytest.fixture
def world() -> World:
    return World()


def invalid_policy_error() -> PolicyInvalidError:
    return PolicyInvalidError("ssm:/pipeshare/policy", ["version: Input should be 1"], "0123456789abcdef")


# ------------------------------------------------------------------------------------------------------------ accept


def test_process_invitations_accepts_trusted_owner_once_with_deterministic_token(world: World) -> None:
    # Given a pending pipeline share from the trusted owner
    arn = world.invite("churn")

    # When it is processed
    world.run([arn])

    # Then RAM is asked to accept it exactly once, with the deterministic token
    assert [(c.invitation_arn, c.client_token) for c in world.ram.writes] == [(arn, client_token(arn, Action.ACCEPT))]


def test_process_invitations_records_accepted_with_trusted_owner_rule(world: World) -> None:
    # Given a pending pipeline share from the trusted owner
    arn = world.invite("churn")

    # When it is processed
    outcome = world.run([arn])

    # Then it is recorded ACCEPTED (rule trusted-owner) with its resources, one history item, and counted
    record = world.shares.get(arn)
    assert record is not None
    assert (record.status, record.rule, record.decision) == (ShareStatus.ACCEPTED, "trusted-owner", "accept")
    assert [r.type for r in record.resources] == ["sagemaker:Pipeline"]
    assert (record.sender_account_id, record.region, record.policy_source) == (OWNER, "us-east-1", "parameters")
    assert [h["to_status"] for h in world.shares.history_for(arn)] == ["ACCEPTED"]
    assert outcome.log_fields()["accepted"] == 1


def test_client_token_is_deterministic_and_differs_per_action_and_invitation() -> None:
    # Given two invitations
    first, second = "arn:aws:ram:us-east-1:111111111111:resource-share-invitation/a", "arn:aws:ram:x/b"

    # When / Then the token depends only on (action, invitation)
    assert client_token(first, Action.ACCEPT) == client_token(first, Action.ACCEPT)
    assert client_token(first, Action.ACCEPT) != client_token(first, Action.REJECT)
    assert client_token(first, Action.ACCEPT) != client_token(second, Action.ACCEPT)


# -------------------------------------------------------------------------------------------------------- hold, reject


def test_process_invitations_hold_makes_no_ram_write(world: World) -> None:
    # Given a pending share from an untrusted account, under the default hold policy
    arn = world.invite("gpu", sender=STRANGER)

    # When a sweep processes it (an event-triggered run leaves untrusted senders to the sweep)
    outcome = world.run(None)

    # Then nothing is written to RAM and it is recorded HELD
    assert world.ram.writes == []
    assert (world.status(arn), world.rule(arn)) == (ShareStatus.HELD, "untrusted-owner")
    assert outcome.log_fields()["held"] == 1


def test_process_invitations_reject_calls_reject_with_its_token() -> None:
    # Given an untrusted sender under a reject policy
    world = World(trust_policy(untrusted="reject"))
    arn = world.invite("gpu", sender=STRANGER)

    # When a sweep processes it
    world.run(None)

    # Then RAM is asked to reject it once, and it is recorded REJECTED
    assert [(c.operation, c.client_token) for c in world.ram.writes] == [("reject", client_token(arn, Action.REJECT))]
    assert (world.status(arn), world.rule(arn)) == (ShareStatus.REJECTED, "untrusted-owner")


def test_process_invitations_disallowed_type_from_trusted_owner_is_held(world: World) -> None:
    # Given a trusted owner sharing a pipeline and a subnet together
    arn = world.invite("mixed", types=["sagemaker:Pipeline", "ec2:Subnet"])

    # When it is processed
    world.run([arn])

    # Then nothing is accepted
    assert world.ram.writes == []
    assert (world.status(arn), world.rule(arn)) == (ShareStatus.HELD, "resource-type-not-allowed")


# ----------------------------------------------------------------------------------------------- targeted and sweep


def test_process_invitations_targeted_passes_the_arns_to_get_invitations(world: World) -> None:
    # Given two pending invitations, one named by the event
    arn = world.invite("churn")
    other = world.invite("fraud")

    # When only the named one is processed
    outcome = world.run([arn])

    # Then only it is read and decided
    assert [c.arns for c in world.ram.calls_to("get_invitations")] == [(arn,)]
    assert outcome.mode == "targeted"
    assert world.status(arn) == ShareStatus.ACCEPTED
    assert world.status(other) is None


def test_process_invitations_sweep_reads_every_invitation(world: World) -> None:
    # Given two pending invitations
    arns = [world.invite("churn"), world.invite("fraud")]

    # When a sweep runs
    outcome = world.run(None)

    # Then all invitations are read (no arns) and decided
    assert [c.arns for c in world.ram.calls_to("get_invitations")] == [None]
    assert outcome.mode == "sweep"
    assert [world.status(a) for a in arns] == [ShareStatus.ACCEPTED, ShareStatus.ACCEPTED]


def test_process_invitations_sweep_skips_invitations_recorded_terminal(world: World) -> None:
    # Given an invitation accepted by an earlier run (RAM now shows it ACCEPTED)
    arn = world.invite("churn")
    world.run([arn])
    history_before = list(world.shares.history)
    attempts_before = len(world.shares.transition_attempts)

    # When a sweep runs
    outcome = world.run(None)

    # Then the recorded status is read in one batch and the invitation is skipped: no RAM call, no write
    assert world.shares.status_queries == [[arn]]
    assert [c.operation for c in world.ram.calls[-1:]] == ["get_invitations"]
    assert len(world.shares.transition_attempts) == attempts_before
    assert world.shares.history == history_before
    assert [(i.status, i.rule, i.changed) for i in outcome.invitations] == [("ACCEPTED", "unchanged", False)]


def test_process_invitations_sweep_does_not_skip_a_recorded_hold_that_ram_shows_expired(world: World) -> None:
    # Given an invitation held earlier, which has since expired in RAM
    arn = world.invite("gpu", sender=STRANGER)
    world.run(None)
    world.ram.set_status(arn, "EXPIRED")

    # When a sweep runs
    world.run(None, now=NOW + timedelta(hours=12))

    # Then the hold moves on to EXPIRED
    assert (world.status(arn), world.rule(arn)) == (ShareStatus.EXPIRED, "expired")


# ------------------------------------------------------------------------------------------- RAM errors on accept


@pytest.mark.parametrize(
    ("error", "status", "rule"),
    [
        (InvitationAlreadyAcceptedError("already accepted"), ShareStatus.ACCEPTED, "trusted-owner"),
        (InvitationExpiredError("expired"), ShareStatus.EXPIRED, "expired"),
        (InvitationAlreadyRejectedError("already rejected"), ShareStatus.REJECTED, "answered-elsewhere"),
        (AccessDeniedError("AccessDeniedException: not allowed"), ShareStatus.HELD, "iam-guardrail"),
    ],
    ids=["already-accepted", "expired", "already-rejected", "access-denied"],
)
def test_process_invitations_accept_error_is_recorded_as_ram_answered(
    world: World, error: Exception, status: ShareStatus, rule: str
) -> None:
    # Given a trusted invitation whose accept fails with a RAM error
    arn = world.invite("churn")
    world.ram.fail("accept", error, arn=arn)

    # When it is processed
    outcome = world.run([arn])

    # Then the record reflects what RAM said, and the invocation itself has nothing to retry
    assert (world.status(arn), world.rule(arn)) == (status, rule)
    assert (outcome.failures, outcome.transient_failures) == (0, 0)


def test_process_invitations_access_denied_reason_names_the_guardrail(world: World) -> None:
    # Given IAM denies the accept (owner missing from the deploy-time list)
    arn = world.invite("churn")
    world.ram.fail("accept", AccessDeniedError("AccessDeniedException: denied"), arn=arn)

    # When it is processed
    world.run([arn])

    # Then the hold says why
    record = world.shares.get(arn)
    assert record is not None
    assert "IAM denied the accept" in record.reason
    assert "TrustedOwnerAccountIds" in record.reason


@pytest.mark.parametrize(
    ("error", "status", "rule"),
    [
        (InvitationAlreadyRejectedError("already rejected"), ShareStatus.REJECTED, "untrusted-owner"),
        (InvitationAlreadyAcceptedError("already accepted"), ShareStatus.ACCEPTED, "answered-elsewhere"),
        (InvitationExpiredError("expired"), ShareStatus.EXPIRED, "expired"),
    ],
    ids=["already-rejected", "already-accepted", "expired"],
)
def test_process_invitations_reject_error_is_recorded_as_ram_answered(
    error: Exception, status: ShareStatus, rule: str
) -> None:
    # Given an untrusted invitation under a reject policy, whose reject fails with a RAM error
    world = World(trust_policy(untrusted="reject"))
    arn = world.invite("gpu", sender=STRANGER)
    world.ram.fail("reject", error, arn=arn)

    # When a sweep processes it
    world.run(None)

    # Then
    assert (world.status(arn), world.rule(arn)) == (status, rule)


@pytest.mark.parametrize(
    ("error", "status", "rule"),
    [
        (InvitationExpiredError("expired"), ShareStatus.EXPIRED, "expired"),
        (InvitationAlreadyRejectedError("already rejected"), ShareStatus.REJECTED, "answered-elsewhere"),
        (InvitationAlreadyAcceptedError("already accepted"), ShareStatus.ACCEPTED, "answered-elsewhere"),
    ],
    ids=["expired", "already-rejected", "already-accepted"],
)
def test_process_invitations_answered_while_listing_resources_is_recorded_without_write(
    world: World, error: Exception, status: ShareStatus, rule: str
) -> None:
    # Given RAM answers "already answered" when the resources are listed
    arn = world.invite("churn")
    world.ram.fail("list_pending_resources", error, arn=arn)

    # When it is processed
    world.run([arn])

    # Then the answer is recorded and nothing is written to RAM
    assert (world.status(arn), world.rule(arn)) == (status, rule)
    assert world.ram.writes == []


# ------------------------------------------------------------------------------------------ invitations not PENDING


@pytest.mark.parametrize(
    ("ram_status", "status", "rule"),
    [
        ("ACCEPTED", ShareStatus.ACCEPTED, "answered-elsewhere"),
        ("REJECTED", ShareStatus.REJECTED, "answered-elsewhere"),
        ("EXPIRED", ShareStatus.EXPIRED, "expired"),
    ],
)
@pytest.mark.parametrize("mode", ["targeted", "sweep"])
def test_process_invitations_answered_invitation_is_recorded_without_ram_call(
    world: World, ram_status: str, status: ShareStatus, rule: str, mode: str
) -> None:
    # Given an invitation RAM already shows as answered, never seen before
    arn = world.invite("churn", status=ram_status)

    # When it is processed
    world.run([arn] if mode == "targeted" else None)

    # Then it is recorded as observed, with no RAM call besides the read
    assert (world.status(arn), world.rule(arn)) == (status, rule)
    assert [c.operation for c in world.ram.calls] == ["get_invitations"]
    record = world.shares.get(arn)
    assert record is not None
    assert record.decision == "observe"


# --------------------------------------------------------------------------------------------------- invalid records


def _bad_arn(raw: dict[str, Any]) -> None:
    raw["resourceShareInvitationArn"] = "arn:aws:ram:us-east-1:111111111111:invitation/bad"


def _no_sender(raw: dict[str, Any]) -> None:
    del raw["senderAccountId"]


def _short_sender(raw: dict[str, Any]) -> None:
    raw["senderAccountId"] = "1111"


def _unknown_status(raw: dict[str, Any]) -> None:
    raw["status"] = "UNKNOWN"


@pytest.mark.parametrize("spoil", [_bad_arn, _no_sender, _short_sender, _unknown_status], ids=lambda f: f.__name__)
def test_process_invitations_invalid_invitation_is_reported_with_its_arn(world: World, spoil: Any) -> None:
    # Given one invalid raw invitation
    raw = raw_invitation("broken")
    spoil(raw)
    world.ram.add_invitation(raw, [raw_resource("broken")])

    # When a sweep runs
    outcome = world.run(None)

    # Then on_invalid gets the record's arn, it is counted, and nothing is accepted or recorded
    assert [ref for _, ref in world.invalid] == [raw["resourceShareInvitationArn"]]
    assert "GetResourceShareInvitations returned an invalid record" in world.invalid[0][0]
    assert outcome.invalid_records == 1
    assert world.ram.writes == []
    assert world.shares.records == {}


def test_process_invitations_invalid_invitation_does_not_stop_the_others(world: World) -> None:
    # Given two invalid raw invitations listed between valid ones
    first = world.invite("churn")
    world.ram.add_invitation({"resourceShareInvitationArn": "arn:aws:ram:bad", "status": "PENDING"})
    world.ram.add_invitation(raw_invitation("nosender", senderAccountId="x"))
    last = world.invite("fraud")

    # When a sweep runs
    outcome = world.run(None)

    # Then both valid invitations are accepted and both invalid ones counted
    assert [c.invitation_arn for c in world.ram.calls_to("accept")] == [first, last]
    assert outcome.invalid_records == 2


def test_process_invitations_invalid_record_without_arn_is_reported_with_none(world: World) -> None:
    # Given a raw record with no ARN at all
    world.ram.add_invitation({"status": "PENDING"})

    # When a sweep runs
    outcome = world.run(None)

    # Then it is reported without a reference
    assert [ref for _, ref in world.invalid] == [None]
    assert outcome.invalid_records == 1


@pytest.mark.parametrize(
    "bad_resource",
    [
        {"arn": "short", "type": "sagemaker:Pipeline"},
        {"arn": f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/x", "type": "sagemaker pipeline"},
        {"arn": f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/x"},
    ],
    ids=["short-arn", "bad-type", "missing-type"],
)
def test_process_invitations_invalid_resource_data_is_held(world: World, bad_resource: dict[str, Any]) -> None:
    # Given a trusted invitation whose resource list has one invalid entry next to a valid pipeline
    arn = world.ram.add_invitation(raw_invitation("churn"), [raw_resource("ok"), bad_resource])
    assert arn is not None

    # When it is processed
    outcome = world.run([arn])

    # Then it is held, nothing is accepted, and the invalid data is reported against the invitation
    assert (world.status(arn), world.rule(arn)) == (ShareStatus.HELD, "invalid-resource-data")
    assert world.ram.writes == []
    assert [ref for _, ref in world.invalid] == [arn]
    assert outcome.invalid_records == 1


# ---------------------------------------------------------------------------------------------------- API failures


@pytest.mark.parametrize("operation", ["list_pending_resources", "accept"])
def test_process_invitations_transient_error_is_counted_and_the_others_go_on(world: World, operation: str) -> None:
    # Given three trusted invitations, the middle one failing with a throttle
    first, middle, last = world.invite("a"), world.invite("b"), world.invite("c")
    world.ram.fail(operation, TransientError("ThrottlingException: slow down"), arn=middle)

    # When a sweep runs
    outcome = world.run(None)

    # Then the failure is counted, the others are accepted, the failed one is left unrecorded for the retry
    assert outcome.transient_failures == 1
    assert outcome.failures == 0
    assert [world.status(a) for a in (first, middle, last)] == [ShareStatus.ACCEPTED, None, ShareStatus.ACCEPTED]
    assert any(middle in p and "transient" in p for p in outcome.problems)


@pytest.mark.parametrize("operation", ["list_pending_resources", "accept"])
def test_process_invitations_unexpected_error_is_counted_and_the_others_go_on(world: World, operation: str) -> None:
    # Given three trusted invitations, the middle one failing with an unexpected API error
    first, middle, last = world.invite("a"), world.invite("b"), world.invite("c")
    world.ram.fail(operation, UnexpectedApiError("MalformedArnException", "bad arn"), arn=middle)

    # When a sweep runs
    outcome = world.run(None)

    # Then
    assert outcome.failures == 1
    assert outcome.transient_failures == 0
    assert [world.status(a) for a in (first, middle, last)] == [ShareStatus.ACCEPTED, None, ShareStatus.ACCEPTED]
    assert any(middle in p and "MalformedArnException" in p for p in outcome.problems)


def test_process_invitations_unknown_invitation_in_targeted_mode_is_a_problem_only(world: World) -> None:
    # Given an event naming an invitation RAM does not know
    known = world.invite("churn")
    unknown = "arn:aws:ram:us-east-1:111111111111:resource-share-invitation/gone"

    # When it is processed
    outcome = world.run([unknown, known])

    # Then a problem is recorded and nothing else happens
    assert len(outcome.problems) == 1
    assert outcome.problems[0].startswith("invitation not found")
    assert [c.operation for c in world.ram.calls] == ["get_invitations"]
    assert world.shares.records == {}
    assert outcome.invitations == []
    assert (outcome.failures, outcome.transient_failures) == (0, 0)


def test_process_invitations_invitation_gone_while_listing_resources_is_a_problem(world: World) -> None:
    # Given an invitation purged between the read and the resource listing
    gone, other = world.invite("gone"), world.invite("other")
    world.ram.fail("list_pending_resources", InvitationNotFoundError("not found"), arn=gone)

    # When a sweep runs
    outcome = world.run(None)

    # Then it is a problem, unrecorded, and the other invitation is still accepted
    assert any(gone in p for p in outcome.problems)
    assert world.status(gone) is None
    assert world.status(other) == ShareStatus.ACCEPTED


def test_process_invitations_invitation_gone_at_accept_does_not_stop_the_others(world: World) -> None:
    # Given an invitation purged between the read and the accept, listed before another trusted invitation
    gone, other = world.invite("gone"), world.invite("other")
    world.ram.fail("accept", InvitationNotFoundError("ResourceShareInvitationArnNotFoundException: gone"), arn=gone)

    # When a sweep runs
    outcome = world.run(None)

    # Then the other invitation is still accepted and the missing one is reported
    assert world.status(other) == ShareStatus.ACCEPTED
    assert any(gone in p for p in outcome.problems)


# ---------------------------------------------------------------------------------------------------- invalid policy


@pytest.fixture
def broken_policy_world() -> World:
    world = World()
    world.policy = FakePolicySource(error=invalid_policy_error())
    return world


def test_process_invitations_invalid_policy_accepts_and_rejects_nothing(broken_policy_world: World) -> None:
    # Given an invalid policy and pending invitations from trusted and untrusted senders
    world = broken_policy_world
    world.invite("churn")
    world.invite("gpu", sender=STRANGER)

    # When a sweep runs
    world.run(None)

    # Then RAM is only read
    assert world.ram.writes == []
    assert world.ram.calls_to("list_pending_resources") == []


def test_process_invitations_invalid_policy_records_pending_invitations_as_waiting(broken_policy_world: World) -> None:
    # Given an invalid policy and a pending invitation
    world = broken_policy_world
    arn = world.invite("churn")

    # When a sweep runs
    outcome = world.run(None)

    # Then it is recorded PENDING with rule policy-invalid
    assert (world.status(arn), world.rule(arn)) == (ShareStatus.PENDING, "policy-invalid")
    assert [(i.status, i.rule, i.changed) for i in outcome.invitations] == [("PENDING", "policy-invalid", True)]


def test_process_invitations_invalid_policy_is_recorded_once(broken_policy_world: World) -> None:
    # Given an invalid policy
    world = broken_policy_world
    world.invite("churn")

    # When a sweep runs
    world.run(None)

    # Then the repository hears about it once, with the error's details and a 24 h reminder cut-off
    calls = world.shares.policy_invalid_calls
    assert len(calls) == 1
    assert (calls[0].source, calls[0].fingerprint, calls[0].errors) == (
        "ssm:/pipeshare/policy",
        "0123456789abcdef",
        ["version: Input should be 1"],
    )
    assert (calls[0].at, calls[0].remind_after) == (NOW, NOW - POLICY_REMINDER)
    assert calls[0].history_expires_at == int((NOW + RETENTION).timestamp())


def test_process_invitations_invalid_policy_is_reported_in_the_outcome(broken_policy_world: World) -> None:
    # Given an invalid policy
    # When a sweep runs
    outcome = broken_policy_world.run(None)

    # Then
    assert outcome.policy_valid is False
    assert outcome.policy_source == "ssm:/pipeshare/policy"
    assert any("invalid" in p for p in outcome.problems)


def test_process_invitations_invalid_policy_still_records_answered_invitations(broken_policy_world: World) -> None:
    # Given an invalid policy and an invitation that expired in RAM
    world = broken_policy_world
    arn = world.invite("old", status="EXPIRED")

    # When a sweep runs
    world.run(None)

    # Then the expiry is still recorded (it needs no policy)
    assert (world.status(arn), world.rule(arn)) == (ShareStatus.EXPIRED, "expired")


def test_process_invitations_pending_under_invalid_policy_is_accepted_once_fixed(broken_policy_world: World) -> None:
    # Given an invitation left PENDING while the policy was invalid
    world = broken_policy_world
    arn = world.invite("churn")
    world.run(None)

    # When the policy is fixed and a sweep runs
    world.policy.error = None
    world.policy.policy = trust_policy()
    world.run(None, now=NOW + timedelta(minutes=15))

    # Then it is accepted
    assert world.status(arn) == ShareStatus.ACCEPTED
    assert [h["to_status"] for h in world.shares.history_for(arn)] == ["PENDING", "ACCEPTED"]


# ------------------------------------------------------------------------------------------ repeats and transitions


def test_process_invitations_repeat_targeted_delivery_changes_nothing(world: World) -> None:
    # Given a trusted invitation accepted on a first delivery
    arn = world.invite("churn")
    world.run([arn])

    # When the same event is delivered again
    outcome = world.run([arn], now=NOW + timedelta(seconds=5))

    # Then there is no second accept and no second transition
    assert len(world.ram.calls_to("accept")) == 1
    assert len(world.shares.history_for(arn)) == 1
    assert [i.changed for i in outcome.invitations] == [False]


def test_process_invitations_repeat_sweep_does_not_accept_again(world: World) -> None:
    # Given a trusted invitation accepted by a sweep
    arn = world.invite("churn")
    world.run(None)

    # When the next sweep runs
    outcome = world.run(None, now=NOW + timedelta(minutes=15))

    # Then there is no second accept and no second transition
    assert len(world.ram.calls_to("accept")) == 1
    assert len(world.shares.history_for(arn)) == 1
    assert outcome.log_fields()["accepted"] == 0


def test_process_invitations_sweep_repeats_accept_with_same_token_while_ram_lists_pending(world: World) -> None:
    # Given an accepted invitation that RAM still lists as PENDING (a stale read)
    arn = world.invite("churn")
    world.run(None)
    world.ram.set_status(arn, "PENDING")

    # When the next sweep runs
    outcome = world.run(None, now=NOW + timedelta(minutes=15))

    # Then a repeated accept is the same idempotent request, and the record does not move
    tokens = [c.client_token for c in world.ram.calls_to("accept")]
    assert tokens == [client_token(arn, Action.ACCEPT)] * len(tokens)
    assert len(world.shares.history_for(arn)) == 1
    assert [i.changed for i in outcome.invitations] == [False]


def test_process_invitations_repeat_hold_touches_the_record_without_transition(world: World) -> None:
    # Given an invitation held on its content (a trusted owner, a type not allowed from it)
    arn = world.invite("net", types=["ec2:Subnet"])
    world.run(None)

    # When a sweep after the re-check interval holds it again
    later = NOW + RECHECK_INTERVAL + timedelta(minutes=1)
    world.run(None, now=later)

    # Then no new history, but the record is marked as seen again
    assert len(world.shares.history_for(arn)) == 1
    assert world.shares.last_checks[arn]["rule"] == "resource-type-not-allowed"
    record = world.shares.get(arn)
    assert record is not None
    assert (record.last_seen_at, record.decided_at) == (later, NOW)


def test_process_invitations_sweep_skips_a_held_invitation_checked_recently_under_the_same_policy(
    world: World,
) -> None:
    # Given a held invitation
    arn = world.invite("gpu", sender=STRANGER)
    world.run(None)
    listed = len(world.ram.calls_to("list_pending_resources"))

    # When the next sweep runs 15 minutes later under the same policy
    outcome = world.run(None, now=NOW + timedelta(minutes=15))

    # Then it is neither re-read from RAM nor rewritten
    assert len(world.ram.calls_to("list_pending_resources")) == listed
    assert arn not in world.shares.touches
    assert [(i.status, i.rule, i.changed) for i in outcome.invitations] == [("HELD", "unchanged", False)]


def test_process_invitations_held_invitation_is_accepted_when_the_policy_trusts_the_owner(world: World) -> None:
    # Given an invitation held because its sender was not trusted
    arn = world.invite("gpu", sender=STRANGER)
    world.run(None)
    assert world.status(arn) == ShareStatus.HELD

    # When the policy starts trusting the sender and a sweep runs
    world.policy.policy = trust_policy(f"{OWNER},{STRANGER}")
    world.run(None, now=NOW + timedelta(minutes=15))

    # Then it is accepted: HELD -> ACCEPTED
    assert [c.invitation_arn for c in world.ram.calls_to("accept")] == [arn]
    assert (world.status(arn), world.rule(arn)) == (ShareStatus.ACCEPTED, "trusted-owner")
    assert [h["to_status"] for h in world.shares.history_for(arn)] == ["HELD", "ACCEPTED"]


def test_process_invitations_recorded_accepted_never_regresses(world: World) -> None:
    # Given an accepted invitation, still listed PENDING by RAM, and a policy that no longer trusts its owner
    arn = world.invite("churn")
    world.run(None)
    world.ram.set_status(arn, "PENDING")
    world.policy.policy = trust_policy("")

    # When the next sweep decides HOLD for it
    outcome = world.run(None, now=NOW + timedelta(minutes=15))

    # Then the record stays ACCEPTED, with its original decision and a single history item
    record = world.shares.get(arn)
    assert record is not None
    assert (record.status, record.rule) == (ShareStatus.ACCEPTED, "trusted-owner")
    assert len(world.shares.history_for(arn)) == 1
    assert [i.changed for i in outcome.invitations] == [False]


def test_process_invitations_recorded_accepted_ignores_a_later_ram_status(world: World) -> None:
    # Given an accepted invitation that a later targeted event reports as EXPIRED
    arn = world.invite("churn")
    world.run([arn])
    world.ram.set_status(arn, "EXPIRED")

    # When it is processed again
    world.run([arn], now=NOW + timedelta(hours=12))

    # Then it stays ACCEPTED
    assert world.status(arn) == ShareStatus.ACCEPTED
    assert len(world.shares.history_for(arn)) == 1


# --------------------------------------------------------------------------------------------- the fakes themselves


FORWARD = {
    ("PENDING", "HELD"),
    ("PENDING", "ACCEPTED"),
    ("PENDING", "REJECTED"),
    ("PENDING", "EXPIRED"),
    ("HELD", "ACCEPTED"),
    ("HELD", "REJECTED"),
    ("HELD", "EXPIRED"),
}


@pytest.mark.parametrize("current", list(ShareStatus))
@pytest.mark.parametrize("target", list(ShareStatus))
def test_fake_share_repository_moves_only_forward(world: World, current: ShareStatus, target: ShareStatus) -> None:
    # Given a record in `current` (written by an earlier run)
    arn = world.invite("churn")
    world.run([arn])
    record = world.shares.get(arn)
    assert record is not None
    world.shares.seed(record.model_copy(update={"status": current}))
    history_before = len(world.shares.history)

    # When a transition to `target` is attempted
    moved = world.shares.record_transition(
        record.model_copy(update={"status": target, "decided_at": NOW + timedelta(minutes=1)}), history_expires_at=1
    )

    # Then it moves (with one history item) exactly for the forward pairs
    assert moved is ((current.value, target.value) in FORWARD)
    assert world.status(arn) == (target if moved else current)
    assert len(world.shares.history) == history_before + (1 if moved else 0)


def test_fake_gateway_replays_a_client_token_like_ram(world: World) -> None:
    # Given an invitation accepted once
    arn = world.invite("churn")
    world.ram.accept(arn, "token-1")

    # When the same request is repeated, and a different one is made
    world.ram.accept(arn, "token-1")

    # Then the replay succeeds, while a new token sees the invitation already accepted
    with pytest.raises(InvitationAlreadyAcceptedError):
        world.ram.accept(arn, "token-2")
    assert world.ram.status_of(arn) == "ACCEPTED"
