"""Invitation floods and the daily audit of accepted shares, end to end on the local stack."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import (
    CONSUMER,
    OWNER,
    STRANGER,
    create_pipeline,
    create_subnet,
    notifications,
    share,
    state,
)

ACCEPTOR = "AcceptInvitationsFunction"
AUDIT = "AuditSharesFunctionDaily"
TRUSTING_OWNER = {"TrustedOwnerAccountIds": OWNER}


def _flood(stack: LocalStack, count: int, sender: str = STRANGER) -> None:
    pipeline = create_pipeline(stack, sender, "free-gpu")
    for n in range(count):
        share(stack, sender, f"flood-{n:04d}", [pipeline], [CONSUMER])


def _ops(stack: LocalStack, since: int, function: str = ACCEPTOR) -> Counter[str]:
    return Counter(op for _, _, op in stack.calls(CONSUMER, function=function)[since:])


def test_flood_sweep_lists_no_resources_and_digests_beyond_threshold(stack: LocalStack) -> None:
    # Given a consumer (threshold 5) and threshold + 3 invitations from an untrusted account, events delivered
    stack.deploy(CONSUMER, {**TRUSTING_OWNER, "HeldDigestThreshold": "5"})
    _flood(stack, 8)
    stack.deliver()
    assert all(state(stack, CONSUMER, f"flood-{n:04d}") is None for n in range(8))  # left to the sweep
    # When the sweep runs
    stack.run_schedule(CONSUMER)
    # Then every one is held, none of their resources was listed, and 5 single messages + 1 digest went out
    assert all(state(stack, CONSUMER, f"flood-{n:04d}")["status"] == "HELD" for n in range(8))
    assert _ops(stack, 0)["ListPendingInvitationResources"] == 0
    assert len(notifications(stack, CONSUMER, "invitation.held")) == 5
    [digest] = notifications(stack, CONSUMER, "invitation.held.digest")
    assert (digest["message"]["count"], digest["message"]["senders"]) == (3, {STRANGER: 3})
    assert digest["message"]["share_names"] == ["flood-0005", "flood-0006", "flood-0007"]
    assert "pipeshare-message-id" in digest["attributes"]


def test_digest_is_published_once_when_its_stream_record_comes_again(stack: LocalStack) -> None:
    # Given a sweep that wrote a digest, published
    stack.deploy(CONSUMER, {**TRUSTING_OWNER, "HeldDigestThreshold": "0"})
    _flood(stack, 2)
    stack.deliver()
    stack.run_schedule(CONSUMER)
    [digest] = [i for i in stack.table_items(CONSUMER) if i["pk"] == "DIGEST"]
    notify = stack.deployments[CONSUMER].functions["NotifyDecisionsFunction"]
    record = {
        "eventID": "again",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"pk": {"S": digest["pk"]}, "sk": {"S": digest["sk"]}},
            "NewImage": {k: _attr(v) for k, v in digest.items()},
            "StreamViewType": "NEW_IMAGE",
        },
    }
    # When the same outbox item's record is delivered again
    notify.invoke_once({"Records": [record]}, trigger="redelivery")
    # Then the digest was still published once
    assert len(notifications(stack, CONSUMER, "invitation.held.digest")) == 1


def _attr(value: object) -> dict[str, object]:
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer().serialize(value)  # type: ignore[no-any-return]


def test_second_sweep_does_not_reread_held_untrusted_invitations(stack: LocalStack) -> None:
    # Given untrusted invitations held by a sweep
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    _flood(stack, 4)
    stack.deliver()
    stack.run_schedule(CONSUMER)
    before = len(stack.calls(CONSUMER, function=ACCEPTOR))
    # When a sweep runs well past the re-check interval under the same policy
    stack.advance(timedelta(hours=2))
    # Then each sweep made one invitation listing and one batched state read, nothing per invitation
    ops = _ops(stack, before)
    assert set(ops) == {"GetResourceShareInvitations", "BatchGetItem"}
    assert ops["GetResourceShareInvitations"] == ops["BatchGetItem"] == 8  # 2 hours of 15-minute sweeps


def test_policy_change_rereads_held_untrusted_invitations(stack: LocalStack) -> None:
    # Given an SSM-policy consumer and held untrusted invitations
    stack.deploy(
        CONSUMER, {**TRUSTING_OWNER, "TrustPolicyParameterName": "/pipeshare/trust", "PolicyCacheSeconds": "0"}
    )
    ssm = stack.client(CONSUMER, "ssm")
    ssm.put_parameter(Name="/pipeshare/trust", Type="String", Value=f'{{"owners": [{{"account_id": "{OWNER}"}}]}}')
    _flood(stack, 3)
    stack.deliver()
    stack.run_schedule(CONSUMER)
    before = len(stack.calls(CONSUMER, function=ACCEPTOR))
    # When the policy changes (another, unrelated owner trusted) and the next sweep runs
    value = f'{{"owners": [{{"account_id": "{OWNER}"}}, {{"account_id": "555555555555"}}]}}'
    ssm.put_parameter(Name="/pipeshare/trust", Type="String", Value=value, Overwrite=True)
    stack.run_schedule(CONSUMER)
    # Then the three were re-evaluated (one record refresh each), still without a resource listing
    ops = _ops(stack, before)
    assert ops["UpdateItem"] == 3
    assert ops["ListPendingInvitationResources"] == 0


def test_flood_costs_a_fixed_number_of_calls_per_invitation(stack: LocalStack) -> None:
    # Given 250 invitations from untrusted accounts, their events delivered
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    _flood(stack, 250)
    events_before = len(stack.calls(CONSUMER, function=ACCEPTOR))
    stack.deliver()
    event_ops = _ops(stack, events_before)
    # When the sweep runs
    before = len(stack.calls(CONSUMER, function=ACCEPTOR))
    stack.run_schedule(CONSUMER)
    ops = _ops(stack, before)
    # Then each event cost one invitation read; the sweep one write per invitation, a digest, and batched reads
    assert event_ops == {"GetResourceShareInvitations": 250}
    assert ops["TransactWriteItems"] == 250
    assert ops["PutItem"] == 1
    assert ops["BatchGetItem"] == 3  # 100 keys per request
    assert ops["ListPendingInvitationResources"] == 0
    assert sum(ops.values()) <= 3 * 250


def test_audit_alerts_once_when_the_owner_adds_another_type(stack: LocalStack) -> None:
    # Given a trusted owner's pipeline share, accepted
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_arn = share(stack, OWNER, "churn-share", [create_pipeline(stack, OWNER, "churn")], [CONSUMER])
    stack.deliver()
    assert state(stack, CONSUMER, "churn-share")["status"] == "ACCEPTED"
    stack.run_schedule(CONSUMER, AUDIT)
    assert notifications(stack, CONSUMER, "share.disallowed-resource") == []
    # When the owner associates a subnet with the share, and the daily audit runs twice
    stack.client(OWNER, "ram").associate_resource_share(
        resourceShareArn=share_arn, resourceArns=[create_subnet(stack, OWNER)]
    )
    stack.deliver()
    stack.run_schedule(CONSUMER, AUDIT)
    stack.run_schedule(CONSUMER, AUDIT)
    # Then one alert names the share and the new type
    [alert] = notifications(stack, CONSUMER, "share.disallowed-resource")
    assert (alert["message"]["share_arn"], alert["message"]["new_types"]) == (share_arn, ["ec2:Subnet"])
    audit = [i for i in stack.table_items(CONSUMER) if i["pk"] == f"SHARE#{share_arn}" and i["sk"] == "AUDIT"]
    assert audit[0]["alerted_types"] == ["ec2:Subnet"]


def test_audit_lists_resources_with_its_own_role_only(stack: LocalStack) -> None:
    # Given an accepted share
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share(stack, OWNER, "churn-share", [create_pipeline(stack, OWNER, "churn")], [CONSUMER])
    stack.deliver()
    # When the audit runs
    [invocation] = [i for i in stack.run_schedule(CONSUMER, AUDIT) if i.function == "AuditSharesFunction"]
    # Then it succeeded under the template's IAM, with one listing and no write
    assert invocation.error is None
    assert invocation.result["resources"] == 1
    assert _ops(stack, 0, "AuditSharesFunction") == {"ListResources": 1}
