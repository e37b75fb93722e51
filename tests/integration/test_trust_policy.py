"""Trust policy from SSM (Powertools Parameters): per-owner types, changes without redeploy, failing closed."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import (
    CONSUMER,
    OWNER,
    STRANGER,
    acceptor_invocations,
    create_subnet,
    notifications,
    ram_status,
    share,
    share_pipeline,
    state,
)

PARAMETER = "/pipeshare/trust-policy"

ANSWERS = ("AcceptResourceShareInvitation", "RejectResourceShareInvitation")


def _deploy_with_policy(stack: LocalStack, policy: Any, **parameters: str) -> None:
    value = policy if isinstance(policy, str) else json.dumps(policy)
    stack.client(CONSUMER, "ssm").put_parameter(Name=PARAMETER, Value=value, Type="String", Overwrite=True)
    stack.deploy(
        CONSUMER,
        {
            "TrustedOwnerAccountIds": f"{OWNER},{STRANGER}",
            "TrustPolicyParameterName": PARAMETER,
            "PolicyCacheSeconds": "0",
            **parameters,
        },
    )


def _set_policy(stack: LocalStack, policy: Any) -> None:
    value = policy if isinstance(policy, str) else json.dumps(policy)
    stack.client(CONSUMER, "ssm").put_parameter(Name=PARAMETER, Value=value, Type="String", Overwrite=True)


def test_ssm_policy_allows_resource_types_per_owner(stack: LocalStack) -> None:
    # Given a policy trusting the owner for pipelines and the other account for subnets only
    _deploy_with_policy(
        stack,
        {
            "version": 1,
            "owners": [
                {"account_id": OWNER, "allowed_resource_types": ["sagemaker:Pipeline"]},
                {"account_id": STRANGER, "allowed_resource_types": ["ec2:Subnet"]},
            ],
        },
    )
    # When each shares both kinds
    share(stack, STRANGER, "net-from-b", [create_subnet(stack, STRANGER)], [CONSUMER])
    share_pipeline(stack, STRANGER, "pipe-from-b", [CONSUMER])
    share_pipeline(stack, OWNER, "pipe-from-a", [CONSUMER])
    stack.deliver()
    # Then each owner gets exactly what the policy allows it
    assert state(stack, CONSUMER, "net-from-b")["status"] == "ACCEPTED"
    assert state(stack, CONSUMER, "pipe-from-b-share")["status"] == "HELD"
    assert state(stack, CONSUMER, "pipe-from-a-share")["status"] == "ACCEPTED"
    assert state(stack, CONSUMER, "pipe-from-a-share")["policy_source"] == f"ssm:{PARAMETER}"


def test_policy_change_applies_without_redeploy(stack: LocalStack) -> None:
    # Given a held invitation from an account the policy does not trust yet
    _deploy_with_policy(stack, {"version": 1, "owners": [{"account_id": OWNER}]})
    share_pipeline(stack, STRANGER, "partner", [CONSUMER])
    stack.deliver()
    stack.run_schedule(CONSUMER)
    assert state(stack, CONSUMER, "partner-share")["status"] == "HELD"
    # When the team trusts it in SSM (no redeploy) and the next sweep runs
    _set_policy(stack, {"version": 1, "owners": [{"account_id": OWNER}, {"account_id": STRANGER}]})
    stack.advance(timedelta(minutes=15))
    # Then it is accepted: HELD -> ACCEPTED
    assert ram_status(stack, CONSUMER, "partner-share") == "ACCEPTED"
    assert state(stack, CONSUMER, "partner-share")["status"] == "ACCEPTED"


def test_policy_is_cached_for_the_configured_time(stack: LocalStack) -> None:
    # Given a warm acceptor with a 1-hour policy cache and a held invitation
    _deploy_with_policy(stack, {"version": 1, "owners": [{"account_id": OWNER}]}, PolicyCacheSeconds="3600")
    share_pipeline(stack, STRANGER, "partner", [CONSUMER])
    stack.deliver()
    # When the policy changes, a sweep runs within the hour, then another after it
    _set_policy(stack, {"version": 1, "owners": [{"account_id": OWNER}, {"account_id": STRANGER}]})
    stack.run_schedule(CONSUMER)
    within = state(stack, CONSUMER, "partner-share")["status"]
    stack.advance(timedelta(minutes=75))  # sweeps at 15-minute marks; the first one past the hour re-reads
    # Then the cached policy applied first, the new one after expiry
    assert within == "HELD"
    assert state(stack, CONSUMER, "partner-share")["status"] == "ACCEPTED"


def _assert_fails_closed(stack: LocalStack) -> None:
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    stack.run_schedule(CONSUMER)
    assert ram_status(stack, CONSUMER, "churn-share") == "PENDING"
    record = state(stack, CONSUMER, "churn-share")
    assert (record["status"], record["rule"]) == ("PENDING", "policy-invalid")
    assert not [
        c for c in stack.calls(CONSUMER) if c[2] in ("AcceptResourceShareInvitation", "RejectResourceShareInvitation")
    ]
    assert all(i.metrics.get("PolicyInvalid") == 1 for i in acceptor_invocations(stack, CONSUMER))
    [note] = notifications(stack, CONSUMER, "policy.invalid")
    assert note["subject"] == "pipeshare: trust policy INVALID - no invitation will be accepted"
    assert note["message"]["errors"]


def test_invalid_json_policy_fails_closed_and_is_notified_once(stack: LocalStack) -> None:
    _deploy_with_policy(stack, "{not json")
    _assert_fails_closed(stack)


def test_policy_with_bad_account_id_fails_closed(stack: LocalStack) -> None:
    _deploy_with_policy(stack, {"version": 1, "owners": [{"account_id": "11111111111"}]})
    _assert_fails_closed(stack)


def test_policy_with_unknown_action_fails_closed(stack: LocalStack) -> None:
    _deploy_with_policy(stack, {"version": 1, "untrusted_action": "accept", "owners": [{"account_id": OWNER}]})
    _assert_fails_closed(stack)


def test_policy_with_unknown_resource_type_fails_closed(stack: LocalStack) -> None:
    _deploy_with_policy(
        stack, {"version": 1, "owners": [{"account_id": OWNER, "allowed_resource_types": ["sagemaker:Pipelines"]}]}
    )
    _assert_fails_closed(stack)


def test_missing_policy_parameter_fails_closed(stack: LocalStack) -> None:
    # Given a deployment naming a parameter that does not exist
    stack.deploy(
        CONSUMER,
        {"TrustedOwnerAccountIds": OWNER, "TrustPolicyParameterName": "/pipeshare/missing", "PolicyCacheSeconds": "0"},
    )
    _assert_fails_closed(stack)


def test_fixed_policy_releases_waiting_invitations(stack: LocalStack) -> None:
    # Given an invalid policy and a waiting trusted invitation
    _deploy_with_policy(stack, "{not json")
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    # When the policy is fixed and the next sweep runs
    _set_policy(stack, {"version": 1, "owners": [{"account_id": OWNER}]})
    stack.advance(timedelta(minutes=15))
    # Then PENDING -> ACCEPTED
    assert state(stack, CONSUMER, "churn-share")["status"] == "ACCEPTED"


def test_iam_guardrail_holds_owner_trusted_only_at_run_time(stack: LocalStack) -> None:
    # Given a deploy-time guardrail trusting only the owner, and an SSM policy that also trusts another account
    stack.client(CONSUMER, "ssm").put_parameter(
        Name=PARAMETER,
        Value=json.dumps({"version": 1, "owners": [{"account_id": OWNER}, {"account_id": STRANGER}]}),
        Type="String",
    )
    stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER, "TrustPolicyParameterName": PARAMETER})
    # When that other account shares a pipeline
    share_pipeline(stack, STRANGER, "sneaky", [CONSUMER])
    stack.deliver()
    # Then IAM (ram:ShareOwnerAccountId condition from the template) denied the accept: held, with the reason
    assert ram_status(stack, CONSUMER, "sneaky-share") == "PENDING"
    record = state(stack, CONSUMER, "sneaky-share")
    assert (record["status"], record["rule"]) == ("HELD", "iam-guardrail")
    assert "AccessDenied" in record["reason"]
