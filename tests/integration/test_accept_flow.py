"""The consumer side end to end on the local stack: template-built deployment, RAM emulation, real boto3 clients."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import (
    CONSUMER,
    CONSUMER_B,
    OWNER,
    STRANGER,
    acceptor_invocations,
    create_subnet,
    history,
    invitation_arn,
    notifications,
    ram_status,
    share,
    share_pipeline,
    state,
)

TRUSTING_OWNER = {"TrustedOwnerAccountIds": OWNER}

ANSWERS = ("AcceptResourceShareInvitation", "RejectResourceShareInvitation")


def test_trusted_pipeline_share_is_accepted_on_the_first_event(stack: LocalStack) -> None:
    # Given a consumer that trusts the owner
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    # When the owner shares a pipeline and RAM's event is delivered
    share_pipeline(stack, OWNER, "churn", [CONSUMER], permission="allow-execution")
    stack.deliver()
    # Then RAM shows it accepted and pipeshare recorded why, with the resource
    assert ram_status(stack, CONSUMER, "churn-share") == "ACCEPTED"
    record = state(stack, CONSUMER, "churn-share")
    assert record is not None
    assert (record["status"], record["rule"], record["decision"]) == ("ACCEPTED", "trusted-owner", "accept")
    assert record["resources"] == [
        {"arn": f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn", "type": "sagemaker:Pipeline"}
    ]
    assert record["sender_account_id"] == OWNER


def test_accepted_invitation_costs_four_aws_calls(stack: LocalStack) -> None:
    # Given a deployed consumer and a pipeline share waiting for delivery
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    before = len(stack.calls(CONSUMER))
    # When only the first (invitation) event reaches the acceptor
    stack.deliver()
    first = acceptor_invocations(stack, CONSUMER)[0]
    calls = stack.calls(CONSUMER)[before:]
    # Then the first invocation made exactly: invitation read, resources page, accept, state write
    assert first.result["accepted"] == 1
    acceptor_calls = [c[2] for c in calls if c[1] in ("ram", "dynamodb")][:4]
    assert acceptor_calls == [
        "GetResourceShareInvitations",
        "ListPendingInvitationResources",
        "AcceptResourceShareInvitation",
        "TransactWriteItems",
    ]
    # and the decision was announced with exactly one publish
    assert Counter(c[2] for c in calls if c[1] == "sns") == {"Publish": 1}


def test_the_accepted_event_of_an_invitation_already_accepted_costs_two_aws_calls(stack: LocalStack) -> None:
    # Given a consumer whose acceptor accepts a trusted pipeline share on RAM's first (invitation) event
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    # When every event is delivered: the invitation event, then RAM's "accepted" event for the same invitation
    stack.deliver()
    [accepted_event] = [
        d.event["id"]
        for d in stack.delivered
        if d.account == CONSUMER and d.event.get("detail", {}).get("status") == "accepted"
    ]
    # Then the acceptor ran twice: it accepted on the first event and, on the accepted event, saw the invitation and
    # found nothing left to do
    first, second = acceptor_invocations(stack, CONSUMER)
    assert first.result["accepted"] == 1
    assert second.event_id == accepted_event
    assert (second.result["seen"], second.result["accepted"], second.result["held"]) == (1, 0, 0)
    # and, in order, the first made its four calls, the second only the invitation read and the batched state read
    assert [c[2] for c in stack.calls(CONSUMER, function="AcceptInvitationsFunction")] == [
        "GetResourceShareInvitations",
        "ListPendingInvitationResources",
        "AcceptResourceShareInvitation",
        "TransactWriteItems",
        "GetResourceShareInvitations",
        "BatchGetItem",
    ]


def test_acceptance_is_notified_once_with_facts_and_reason(stack: LocalStack) -> None:
    # Given a consumer that trusts the owner
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    # When a pipeline is shared and accepted
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    # Then one message with a readable subject and a JSON body carrying the facts
    [note] = notifications(stack, CONSUMER)
    assert note["subject"] == f"pipeshare: accepted share 'churn-share' from {OWNER}"
    body = note["message"]
    assert body["event"] == "invitation.accepted"
    assert body["invitation_arn"] == invitation_arn(stack, CONSUMER, "churn-share")
    assert body["sender_account_id"] == OWNER
    assert body["receiver_account_id"] == CONSUMER
    assert body["reason"].startswith(f"trusted owner {OWNER}")
    assert note["attributes"]["status"] == "ACCEPTED"


def test_untrusted_sender_is_held_and_nothing_is_answered(stack: LocalStack) -> None:
    # Given a consumer with the default (hold) untrusted action
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    # When an untrusted account shares a pipeline (its event leaves it to the sweep) and the sweep runs
    share_pipeline(stack, STRANGER, "free-gpu", [CONSUMER])
    stack.deliver()
    assert state(stack, CONSUMER, "free-gpu-share") is None
    stack.run_schedule(CONSUMER)
    # Then the invitation stays pending in RAM, is recorded HELD, and the team is told
    assert ram_status(stack, CONSUMER, "free-gpu-share") == "PENDING"
    assert state(stack, CONSUMER, "free-gpu-share")["status"] == "HELD"
    assert state(stack, CONSUMER, "free-gpu-share")["rule"] == "untrusted-owner"
    assert [
        c for c in stack.calls(CONSUMER) if c[2] in ("AcceptResourceShareInvitation", "RejectResourceShareInvitation")
    ] == []
    assert len(notifications(stack, CONSUMER, "invitation.held")) == 1


def test_untrusted_sender_is_rejected_under_a_reject_policy(stack: LocalStack) -> None:
    # Given a consumer whose policy rejects untrusted senders
    stack.deploy(CONSUMER_B, {**TRUSTING_OWNER, "UntrustedAction": "reject"})
    # When an untrusted account shares a pipeline
    share_pipeline(stack, STRANGER, "free-gpu", [CONSUMER_B])
    stack.deliver()
    stack.run_schedule(CONSUMER_B)
    # Then RAM shows it rejected and the record says why
    assert ram_status(stack, CONSUMER_B, "free-gpu-share") == "REJECTED"
    record = state(stack, CONSUMER_B, "free-gpu-share")
    assert (record["status"], record["rule"]) == ("REJECTED", "untrusted-owner")
    assert len(notifications(stack, CONSUMER_B, "invitation.rejected")) == 1


def test_trusted_owner_sharing_a_non_pipeline_resource_is_held(stack: LocalStack) -> None:
    # Given a consumer trusting the owner for pipelines only
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    # When the owner shares a subnet
    share(stack, OWNER, "network", [create_subnet(stack, OWNER)], [CONSUMER])
    stack.deliver()
    # Then it is held, not accepted
    assert ram_status(stack, CONSUMER, "network") == "PENDING"
    record = state(stack, CONSUMER, "network")
    assert (record["status"], record["rule"]) == ("HELD", "resource-type-not-allowed")
    assert "ec2:Subnet" in record["reason"]


def test_lost_event_is_caught_by_the_sweep_within_one_period(stack: LocalStack) -> None:
    # Given a consumer with a 15-minute sweep
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    # When the invitation event is lost
    stack.drop_next_events(1)
    share_pipeline(stack, OWNER, "fraud", [CONSUMER])
    stack.deliver()
    assert state(stack, CONSUMER, "fraud-share") is None
    stack.advance(timedelta(minutes=15))
    # Then the scheduled sweep accepted it
    assert state(stack, CONSUMER, "fraud-share")["status"] == "ACCEPTED"
    assert any(i.trigger.endswith("Sweep") and i.result["accepted"] == 1 for i in acceptor_invocations(stack, CONSUMER))


def test_held_invitation_that_expires_is_recorded_expired(stack: LocalStack) -> None:
    # Given a held invitation
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, STRANGER, "free-gpu", [CONSUMER])
    stack.deliver()
    # When 12 hours pass (the invitation window) and the next sweep runs
    stack.advance(timedelta(hours=12, minutes=15))
    # Then the record is EXPIRED with its history (the hold, the one reminder before the window closed, the expiry),
    # and the team was told once of each
    record = state(stack, CONSUMER, "free-gpu-share")
    assert (record["status"], record["rule"]) == ("EXPIRED", "expired")
    steps = sorted(history(stack, CONSUMER, "free-gpu-share"), key=lambda h: h["at"])
    assert [(h["kind"], h["to_status"]) for h in steps] == [
        ("invitation", "HELD"),
        ("reminder", "HELD"),
        ("invitation", "EXPIRED"),
    ]
    assert len(notifications(stack, CONSUMER, "invitation.reminder")) == 1
    assert len(notifications(stack, CONSUMER, "invitation.expired")) == 1


def test_accept_on_an_invitation_that_expired_meanwhile_records_expired(stack: LocalStack) -> None:
    # Given a pipeline share whose events were lost, and the consumer's sweep far apart
    stack.deploy(CONSUMER, {**TRUSTING_OWNER, "SweepSchedule": "rate(1 day)"})
    stack.drop_next_events(1)
    share_pipeline(stack, OWNER, "late", [CONSUMER])
    stack.deliver()
    # When the first sweep runs after the invitation expired
    stack.advance(timedelta(days=1))
    # Then nothing was accepted and the record is EXPIRED
    assert ram_status(stack, CONSUMER, "late-share") == "EXPIRED"
    assert state(stack, CONSUMER, "late-share")["status"] == "EXPIRED"


def test_repeat_deliveries_change_nothing(stack: LocalStack) -> None:
    # Given an accepted share
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    before_record = state(stack, CONSUMER, "churn-share")
    events = [e.event for e in stack.delivered if e.account == CONSUMER]
    # When every event is delivered again, twice, and a sweep runs
    for _ in range(2):
        for event in events:
            stack.put_event(CONSUMER, event)
    stack.deliver()
    stack.run_schedule(CONSUMER)
    # Then the record, its history and the notifications are unchanged
    after_record = state(stack, CONSUMER, "churn-share")
    assert after_record["decided_at"] == before_record["decided_at"]
    assert len(history(stack, CONSUMER, "churn-share")) == 1
    assert len(notifications(stack, CONSUMER, "invitation.accepted")) == 1
    assert sum(1 for c in stack.calls(CONSUMER) if c[2] == "AcceptResourceShareInvitation") == 1


def test_accepted_record_never_regresses_when_an_old_event_arrives_late(stack: LocalStack) -> None:
    # Given a share accepted by the sweep (its event was lost) ...
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    stack.drop_next_events(1)
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    stack.run_schedule(CONSUMER)
    lost = next(e.event for e in stack.delivered if e.dropped)
    # When the lost "pending" event finally arrives (out of order)
    stack.put_event(CONSUMER, lost)
    stack.deliver()
    # Then the record stays ACCEPTED with one history entry
    assert state(stack, CONSUMER, "churn-share")["status"] == "ACCEPTED"
    assert len(history(stack, CONSUMER, "churn-share")) == 1


def test_answered_outside_pipeshare_is_recorded_by_the_sweep(stack: LocalStack) -> None:
    # Given a held invitation that a person then accepts in the console
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, STRANGER, "manual", [CONSUMER])
    stack.deliver()
    # (tooling credentials: a person with broader rights than the acceptor's role)
    stack.client(CONSUMER, "ram").accept_resource_share_invitation(
        resourceShareInvitationArn=invitation_arn(stack, CONSUMER, "manual-share")
    )
    # When the sweep runs
    stack.run_schedule(CONSUMER)
    # Then the durable record follows RAM: HELD -> ACCEPTED, decided elsewhere
    record = state(stack, CONSUMER, "manual-share")
    assert (record["status"], record["rule"], record["decision"]) == ("ACCEPTED", "answered-elsewhere", "observe")


def test_sweep_reads_every_page_including_empty_ones(stack: LocalStack) -> None:
    # Given 60 held invitations (more than one page) and RAM answering an empty first page with a nextToken
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    stack.drop_next_events(10_000)
    for n in range(60):
        share_pipeline(stack, STRANGER, f"p{n}", [CONSUMER])
    stack.deliver()
    stack.ram.inject_empty_pages(1)
    # When a trusted share arrives and the sweep runs
    share_pipeline(stack, OWNER, "last", [CONSUMER])
    [invocation] = [i for i in stack.run_schedule(CONSUMER) if i.function == "AcceptInvitationsFunction"]
    # Then all 61 were seen, the trusted one accepted and 60 held
    assert invocation.result["seen"] == 61
    assert (invocation.result["accepted"], invocation.result["held"]) == (1, 60)


def test_record_outlives_rams_purge_of_answered_invitations(stack: LocalStack) -> None:
    # Given an accepted share
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    # When the owner deletes the share (RAM no longer lists the invitation) and sweeps run
    share_arn = state(stack, CONSUMER, "churn-share")["share_arn"]
    stack.client(OWNER, "ram").delete_resource_share(resourceShareArn=share_arn)
    stack.advance(timedelta(hours=1))
    # Then pipeshare still holds the record
    assert state(stack, CONSUMER, "churn-share")["status"] == "ACCEPTED"


@pytest.mark.parametrize(
    "fixture",
    [
        "invalid_wrong_source",
        "invalid_missing_detail",
        "invalid_detail_not_object",
        "invalid_extra_field",
        "invalid_wrong_types",
    ],
)
def test_invalid_event_is_rejected_without_side_effects(stack: LocalStack, fixture: str) -> None:
    # Given a consumer with a pending trusted invitation whose events were lost
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    stack.drop_next_events(1)
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    before = len(stack.calls(CONSUMER))
    event = __import__("tests.conftest", fromlist=["load_event"]).load_event(fixture)
    # When the malformed event is invoked directly (as a misconfigured rule or a replay could)
    function = stack.deployments[CONSUMER].functions["AcceptInvitationsFunction"]
    attempts = function.invoke_async(event, trigger="test")
    # Then: one attempt (no retry storm), InvalidEvent metric, one error log line with the event id, no AWS call
    assert len(attempts) == 1
    assert attempts[0].result == {"status": "invalid"}
    assert attempts[0].metrics.get("InvalidEvent") == 1
    errors = [line for line in attempts[0].logs if line.get("level") == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["event_id"] == event["id"]
    assert errors[0]["reason"]
    assert stack.calls(CONSUMER)[before:] == []
    assert ram_status(stack, CONSUMER, "churn-share") == "PENDING"


def test_huge_event_is_rejected_without_side_effects(stack: LocalStack) -> None:
    # Given a RAM event padded over EventBridge's 256 KiB limit
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    event = __import__("tests.conftest", fromlist=["load_event"]).load_event(
        "ram_invitation_pending", detail={"event": "Resource Share Invitation", "pad": "x" * 300_000}
    )
    before = len(stack.calls(CONSUMER))
    # When it is invoked
    [attempt] = stack.deployments[CONSUMER].functions["AcceptInvitationsFunction"].invoke_async(event, trigger="t")
    # Then it is refused before any AWS call
    assert attempt.result == {"status": "invalid"}
    assert attempt.metrics["InvalidEvent"] == 1
    assert stack.calls(CONSUMER)[before:] == []


def test_unexpected_api_failure_is_retried_then_lands_in_the_dlq(stack: LocalStack) -> None:
    # Given a consumer whose share table has been deleted (every state write fails)
    deployment = stack.deploy(CONSUMER, TRUSTING_OWNER)
    stack.client(CONSUMER, "dynamodb").delete_table(TableName=deployment.refs["ShareTable"])
    # When a pipeline share arrives
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    # Then the invocation failed 3 times (1 + MaximumRetryAttempts) and the event is in the on-failure queue
    failed = [i for i in acceptor_invocations(stack, CONSUMER) if i.error]
    assert [i.attempt for i in failed][:3] == [1, 2, 3]
    assert "SweepIncompleteError" in failed[0].error
    dead = stack.queue_messages(CONSUMER, "AcceptInvitationsDlq")
    assert dead
    assert dead[0]["requestContext"]["condition"] == "RetriesExhausted"
    assert dead[0]["requestPayload"]["source"] == "aws.ram"


def test_sweep_skips_held_invitations_checked_recently_under_the_same_policy(stack: LocalStack) -> None:
    # Given 10 invitations held by a first sweep
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    for n in range(10):
        share_pipeline(stack, STRANGER, f"p{n}", [CONSUMER])
    stack.deliver()
    stack.run_schedule(CONSUMER)
    before = len(stack.calls(CONSUMER, functions_only=True))
    # When the scheduled sweep runs within the re-check interval
    stack.run_schedule(CONSUMER)
    # Then it cost one invitation read and one batched state read, whatever the number held
    sweep_calls = [c[2] for c in stack.calls(CONSUMER, functions_only=True)[before:]]
    assert sweep_calls == ["GetResourceShareInvitations", "BatchGetItem"]


def test_held_invitations_are_rechecked_hourly(stack: LocalStack) -> None:
    # Given an invitation held on its content (a trusted owner sharing a subnet)
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share(stack, OWNER, "p-share", [create_subnet(stack, OWNER)], [CONSUMER])
    stack.deliver()
    first_seen = state(stack, CONSUMER, "p-share")["last_seen_at"]
    # When a little over an hour of sweeps pass
    stack.advance(timedelta(minutes=75))
    # Then its pending resources were read again once and the record refreshed
    relisted = [c for c in stack.calls(CONSUMER, functions_only=True) if c[2] == "ListPendingInvitationResources"]
    assert len(relisted) == 2
    assert state(stack, CONSUMER, "p-share")["last_seen_at"] > first_seen
