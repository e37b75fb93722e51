"""IAM on the local stack: every call a function makes is authorized against the role SAM would deploy for it.

The template's own policies let every flow through (tests/integration at large run with enforcement on); a copy of
the template with one statement removed (LocalStack(template=...)) makes the matching call fail with AccessDenied, in
the service's own error shape. Calls signed with a function's credentials (stack.function_credentials) are that
function's calls: the tests below make some directly, to pin down exactly which statement allows what.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeshare_local.stack import LocalStack
from pipeshare_local.template import load_template
from tests.conftest import load_event
from tests.integration.stackhelpers import (
    CONSUMER,
    OWNER,
    STRANGER,
    invitation_arn,
    notifications,
    ram_status,
    share_pipeline,
    state,
)

TRUSTING_OWNER = {"TrustedOwnerAccountIds": OWNER}
OWNER_BUS_ARN = f"arn:aws:events:us-east-1:{OWNER}:event-bus/pipeshare-owner"


def function_client(stack: LocalStack, account: str, function: str, service: str) -> Any:
    """A client signing as the function (its role's credentials), as the function's own code would."""
    return stack.function_client(account, function, service)


def edited(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    template = copy.deepcopy(load_template())
    edit(template)
    return template


def without_statement(function: str, sid: str) -> dict[str, Any]:
    """The template with one statement (by Sid) removed from a function's inline policies."""

    def edit(template: dict[str, Any]) -> None:
        removed = 0
        for entry in template["Resources"][function]["Properties"]["Policies"]:
            if isinstance(entry, dict) and "Statement" in entry:
                kept = [s for s in entry["Statement"] if not (isinstance(s, dict) and s.get("Sid") == sid)]
                removed += len(entry["Statement"]) - len(kept)
                entry["Statement"] = kept
        assert removed == 1, f"{function} has no statement {sid}"

    return edited(edit)


def without_policy_template(function: str, name: str) -> dict[str, Any]:
    """The template without one SAM policy template (e.g. SNSPublishMessagePolicy) of a function."""

    def edit(template: dict[str, Any]) -> None:
        policies = template["Resources"][function]["Properties"]["Policies"]
        kept = [p for p in policies if not (isinstance(p, dict) and name in p)]
        assert len(kept) == len(policies) - 1, f"{function} has no {name}"
        template["Resources"][function]["Properties"]["Policies"] = kept

    return edited(edit)


@pytest.fixture
def stack_with() -> Iterator[Callable[[dict[str, Any]], LocalStack]]:
    """LocalStack(template=...) for a modified template (one at a time; moto's backends are process-wide)."""
    started: list[LocalStack] = []

    def start(template: dict[str, Any]) -> LocalStack:
        stack = LocalStack(template=template)
        stack.start()
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


def denied(stack: LocalStack, action: str) -> list[Any]:
    return [d for d in stack.iam.denials if d.action == action]


# ------------------------------------------------------------------------------------------------ the template as is


def test_the_consumer_flow_runs_on_the_templates_own_policies(stack: LocalStack) -> None:
    # Given a consumer trusting the owner
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    # When the owner shares a pipeline
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    # Then the acceptor accepted and the notifier published, every call authorized by the functions' roles
    assert state(stack, CONSUMER, "churn-share")["status"] == "ACCEPTED"
    assert len(notifications(stack, CONSUMER, "invitation.accepted")) == 1
    assert stack.iam.denials == []
    operations = {c[2] for c in stack.calls(CONSUMER, functions_only=True)}
    assert {"GetResourceShareInvitations", "AcceptResourceShareInvitation", "TransactWriteItems", "Publish"} <= (
        operations
    )


def test_each_function_signs_with_its_own_role(stack: LocalStack) -> None:
    # Given a consumer deployment
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    # When the functions' credentials are issued
    acceptor = stack.function_credentials(CONSUMER, "AcceptInvitationsFunction")["AWS_ACCESS_KEY_ID"]
    notifier = stack.function_credentials(CONSUMER, "NotifyDecisionsFunction")["AWS_ACCESS_KEY_ID"]
    # Then each key is bound to the role SAM generates for that function
    assert acceptor != notifier
    principal = stack.iam.principal(acceptor)
    assert principal is not None
    assert principal.role_arn == f"arn:aws:iam::{CONSUMER}:role/pipeshare-AcceptInvitationsFunctionRole"
    assert principal.session_arn == (
        f"arn:aws:sts::{CONSUMER}:assumed-role/pipeshare-AcceptInvitationsFunctionRole/pipeshare-AcceptInvitationsFunction"
    )
    # and the acceptor may not publish to the consumer topic (only the notifier's role may)
    topic = stack.deployments[CONSUMER].refs["ConsumerTopic"]
    with pytest.raises(ClientError) as refused:
        function_client(stack, CONSUMER, "AcceptInvitationsFunction", "sns").publish(TopicArn=topic, Message="x")
    assert refused.value.response["Error"]["Code"] == "AuthorizationError"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    function_client(stack, CONSUMER, "NotifyDecisionsFunction", "sns").publish(TopicArn=topic, Message="x")


def test_tooling_calls_are_not_restricted(stack: LocalStack) -> None:
    # Given a consumer deployment and its table
    deployment = stack.deploy(CONSUMER, TRUSTING_OWNER)
    table = deployment.refs["ShareTable"]
    # When the acceptor and the stack's tooling both call an operation no role allows (and the evaluator has no
    # parameter mapping for: dynamodb:CreateBackup)
    with pytest.raises(ClientError) as refused:
        function_client(stack, CONSUMER, "AcceptInvitationsFunction", "dynamodb").create_backup(
            TableName=table, BackupName="backup-1"
        )
    stack.client(CONSUMER, "dynamodb").create_backup(TableName=table, BackupName="backup-1")
    # Then only the function is refused: an AccessDeniedException (json protocol, 400) saying why
    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "no request-parameter mapping for dynamodb:CreateBackup" in error["Message"]
    assert [d.function for d in denied(stack, "dynamodb:CreateBackup")] == ["AcceptInvitationsFunction"]


# ------------------------------------------------------------------------------------------------ one statement less


def test_without_the_accept_statement_the_acceptor_is_denied_and_holds(
    stack: LocalStack, stack_with: Callable[[dict[str, Any]], LocalStack]
) -> None:
    # Given the template as is: the trusted owner's share is accepted (the same story, below, without the statement)
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    assert state(stack, CONSUMER, "churn-share")["status"] == "ACCEPTED"
    # Given the acceptor without its AcceptFromTrustedOwnersOnly statement
    modified = stack_with(without_statement("AcceptInvitationsFunction", "AcceptFromTrustedOwnersOnly"))
    modified.deploy(CONSUMER, TRUSTING_OWNER)
    # When the trusted owner shares a pipeline
    share_pipeline(modified, OWNER, "churn", [CONSUMER])
    modified.deliver()
    # Then IAM denies the accept (403 AccessDeniedException from RAM): the invitation stays pending, recorded HELD
    [denial, *_] = denied(modified, "ram:AcceptResourceShareInvitation")
    assert denial.function == "AcceptInvitationsFunction"
    assert denial.reason == "implicit-deny"
    assert ram_status(modified, CONSUMER, "churn-share") == "PENDING"
    record = state(modified, CONSUMER, "churn-share")
    assert (record["status"], record["rule"]) == ("HELD", "iam-guardrail")
    assert "AccessDeniedException" in record["reason"]


def test_without_the_publish_policy_template_the_notifier_is_denied(
    stack_with: Callable[[dict[str, Any]], LocalStack],
) -> None:
    # Given the notifier without SNSPublishMessagePolicy
    modified = stack_with(without_policy_template("NotifyDecisionsFunction", "SNSPublishMessagePolicy"))
    modified.deploy(CONSUMER, TRUSTING_OWNER)
    # When a decision is recorded
    share_pipeline(modified, OWNER, "churn", [CONSUMER])
    modified.deliver()
    # Then the publish is refused (SNS AuthorizationError), nothing is published, the batch ends in the DLQ
    assert state(modified, CONSUMER, "churn-share")["status"] == "ACCEPTED"
    assert denied(modified, "sns:Publish")
    errors = [i.error or "" for i in modified.invocations(CONSUMER) if i.function == "NotifyDecisionsFunction"]
    assert errors
    assert all("AuthorizationError" in error for error in errors)
    assert notifications(modified, CONSUMER) == []
    assert len(modified.queue_messages(CONSUMER, "NotifyDecisionsDlq")) == 1


def test_without_the_key_statement_publishing_to_the_encrypted_topic_is_denied(
    stack_with: Callable[[dict[str, Any]], LocalStack],
) -> None:
    # Given the notifier without UseSnsManagedKey (its topic is encrypted with alias/aws/sns)
    modified = stack_with(without_statement("NotifyDecisionsFunction", "UseSnsManagedKey"))
    modified.deploy(CONSUMER, TRUSTING_OWNER)
    topic = modified.deployments[CONSUMER].refs["ConsumerTopic"]
    # When the notifier publishes
    with pytest.raises(ClientError) as refused:
        function_client(modified, CONSUMER, "NotifyDecisionsFunction", "sns").publish(TopicArn=topic, Message="x")
    # Then SNS's call to KMS on its behalf is refused: kms:GenerateDataKey on the account's AWS managed SNS key
    assert refused.value.response["Error"]["Code"] == "AuthorizationError"
    [denial] = denied(modified, "kms:GenerateDataKey")
    assert denial.resource.startswith(f"arn:aws:kms:us-east-1:{CONSUMER}:key/")
    assert "kms:GenerateDataKey" in refused.value.response["Error"]["Message"]


# ------------------------------------------------------------------------------------------------ resources, conditions


def test_accept_is_denied_for_an_owner_the_condition_does_not_name(stack: LocalStack) -> None:
    # Given a consumer trusting the owner only, and invitations from the owner and from a stranger
    stack.deploy(CONSUMER, TRUSTING_OWNER)
    stack.drop_next_events(10)  # the acceptor does not run: its role is exercised directly
    share_pipeline(stack, OWNER, "trusted", [CONSUMER])
    share_pipeline(stack, STRANGER, "sneaky", [CONSUMER])
    stack.deliver()
    ram = function_client(stack, CONSUMER, "AcceptInvitationsFunction", "ram")
    # When the acceptor's role accepts each, and rejects the stranger's
    with pytest.raises(ClientError) as refused:
        ram.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn(stack, CONSUMER, "sneaky-share"))
    ram.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn(stack, CONSUMER, "trusted-share"))
    ram.reject_resource_share_invitation(resourceShareInvitationArn=invitation_arn(stack, CONSUMER, "sneaky-share"))
    # Then ram:ShareOwnerAccountId denies only the stranger's accept; rejecting is not conditioned
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "ram:AcceptResourceShareInvitation" in refused.value.response["Error"]["Message"]
    assert ram_status(stack, CONSUMER, "trusted-share") == "ACCEPTED"
    assert ram_status(stack, CONSUMER, "sneaky-share") == "REJECTED"


def test_with_no_trusted_owner_the_acceptor_may_accept_nothing(stack: LocalStack) -> None:
    # Given the default (empty) TrustedOwnerAccountIds
    stack.deploy(CONSUMER)
    stack.drop_next_events(10)
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    # When the acceptor's role accepts the owner's invitation
    ram = function_client(stack, CONSUMER, "AcceptInvitationsFunction", "ram")
    with pytest.raises(ClientError) as refused:
        ram.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn(stack, CONSUMER, "churn-share"))
    # Then it is denied
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert ram_status(stack, CONSUMER, "churn-share") == "PENDING"


def test_a_query_on_the_index_needs_the_index_resource(stack: LocalStack) -> None:
    # Given the owner table, and the budget watcher (allowed on the by_initiator index) and the inventory (table only)
    deployment = stack.deploy(OWNER, {"Mode": "owner"})
    query = {
        "TableName": deployment.refs["OwnerTable"],
        "IndexName": "by_initiator",
        "KeyConditionExpression": "initiator_account = :a",
        "ExpressionAttributeValues": {":a": {"S": CONSUMER}},
    }
    # When each queries the index
    function_client(stack, OWNER, "WatchBudgetsFunction", "dynamodb").query(**query)
    with pytest.raises(ClientError) as refused:
        function_client(stack, OWNER, "OwnerInventoryFunction", "dynamodb").query(**query)
    # Then only the one whose policy names the index is allowed
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    [denial] = denied(stack, "dynamodb:Query")
    assert denial.resource.endswith("/index/by_initiator")


# ------------------------------------------------------------------------------------------------ on a function's part


def test_on_failure_destination_needs_the_functions_send_permission(
    stack_with: Callable[[dict[str, Any]], LocalStack],
) -> None:
    # Given an acceptor running as a hand-written role (so SAM adds no destination permission) that may read
    # invitations and nothing else
    def own_role(template: dict[str, Any]) -> None:
        acceptor = template["Resources"]["AcceptInvitationsFunction"]
        acceptor["Properties"]["Role"] = {"Fn::GetAtt": ["AcceptorRole", "Arn"]}
        acceptor["Properties"].pop("Policies")
        template["Resources"]["AcceptorRole"] = {
            "Type": "AWS::IAM::Role",
            "Condition": "IsConsumer",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "read-invitations",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {"Effect": "Allow", "Action": "ram:GetResourceShareInvitations", "Resource": "*"}
                            ],
                        },
                    }
                ],
            },
        }

    modified = stack_with(edited(own_role))
    modified.deploy(CONSUMER, TRUSTING_OWNER)
    # When an invitation arrives: the acceptor fails (ListPendingInvitationResources denied) through its retries
    share_pipeline(modified, OWNER, "churn", [CONSUMER])
    modified.deliver()
    attempts = [i for i in modified.invocations(CONSUMER) if i.function == "AcceptInvitationsFunction"]
    assert len(attempts) == 3
    assert all(i.error for i in attempts)
    # Then Lambda's OnFailure record is refused too: sqs:SendMessage by that role, so the DLQ stays empty
    [denial] = denied(modified, "sqs:SendMessage")
    assert denial.function == "AcceptInvitationsFunction"
    assert denial.resource.endswith(":pipeshare-AcceptInvitationsDlq")
    assert modified.queue_messages(CONSUMER, "AcceptInvitationsDlq") == []


def _forwarding_pair(stack: LocalStack) -> None:
    stack.deploy(OWNER, {"Mode": "owner", "ForwarderAccountIds": CONSUMER})
    stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER, "OwnerEventBusArn": OWNER_BUS_ARN})


def _forwarded(stack: LocalStack) -> Any:
    record = load_event("cloudtrail_start_pipeline_execution_consumer")
    stack.put_event(CONSUMER, record)
    stack.deliver()
    return next(d for d in stack.delivered if d.account == CONSUMER and d.event["id"] == record["id"])


def test_the_forwarder_rule_delivers_with_its_roles_put_events(
    stack: LocalStack, stack_with: Callable[[dict[str, Any]], LocalStack]
) -> None:
    # Given a forwarding consumer and the owner admitting it (the template as is)
    _forwarding_pair(stack)
    # When the consumer's CloudTrail record reaches its bus, then it is forwarded to the owner bus
    delivered = _forwarded(stack)
    assert delivered.matched == ["ForwarderRule"]
    assert delivered.refused is None
    assert any(d.account == OWNER and d.bus == "pipeshare-owner" for d in stack.delivered)

    # Given the ForwarderRole allowed to put events on another bus only
    def elsewhere(template: dict[str, Any]) -> None:
        [policy] = template["Resources"]["ForwarderRole"]["Properties"]["Policies"]
        policy["PolicyDocument"]["Statement"][0]["Resource"] = f"arn:aws:events:us-east-1:{OWNER}:event-bus/elsewhere"

    modified = stack_with(edited(elsewhere))
    _forwarding_pair(modified)
    # When the record arrives
    refused = _forwarded(modified)
    # Then EventBridge cannot deliver with the role: refused, sent to the rule's DLQ, the owner bus gets nothing
    assert refused.refused is not None
    assert "events:PutEvents" in refused.refused
    assert [d.resource for d in denied(modified, "events:PutEvents")] == [OWNER_BUS_ARN]
    assert not any(d.account == OWNER and d.bus == "pipeshare-owner" for d in modified.delivered)
    assert len(modified.queue_messages(CONSUMER, "RuleTargetDlq")) == 1
