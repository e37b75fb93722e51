"""The deployer: the types moto's CloudFormation creates faithfully in one stack per deployment, the others by hand,
and the references between the two groups resolved (local/README.md, "moto's CloudFormation")."""

from __future__ import annotations

import json

from pipeshare_local.deployer import CLOUDFORMATION_TYPES, NOT_DEPLOYED
from pipeshare_local.stack import LocalStack

from .stackhelpers import CONSUMER, OWNER

OWNER_BUS_ARN = f"arn:aws:events:us-east-1:{OWNER}:event-bus/pipeshare-owner"


def _stack_resources(stack: LocalStack, account: str) -> dict[str, tuple[str, str]]:
    resources = stack.client(account, "cloudformation").describe_stack_resources(StackName="pipeshare")
    return {r["LogicalResourceId"]: (r["ResourceType"], r["PhysicalResourceId"]) for r in resources["StackResources"]}


def test_the_faithful_types_are_one_stack_and_the_others_are_made_by_hand(stack: LocalStack) -> None:
    deployment = stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER, "OwnerEventBusArn": OWNER_BUS_ARN})

    resources = _stack_resources(stack, CONSUMER)
    enabled = {
        logical: spec["Type"]
        for logical, spec in stack.template["Resources"].items()
        if not logical.startswith("Fn::") and spec["Type"] in CLOUDFORMATION_TYPES and logical in deployment.refs
    }
    assert {logical: kind for logical, (kind, _) in resources.items()} == enabled
    assert {"ConsumerTopic", "AlarmTopic", "RuleTargetDlq", "AcceptInvitationsLogGroup", "ForwarderRule"} <= set(
        enabled
    )
    assert resources["ConsumerTopic"][1] == deployment.refs["ConsumerTopic"]
    assert resources["AcceptInvitationsLogGroup"][1] == "/aws/lambda/pipeshare-AcceptInvitationsFunction"
    # the other types are not in the stack, and exist all the same
    assert not {"ShareTable", "AlarmTopicKey", "ForwarderRole"} & set(resources)
    stack.client(CONSUMER, "dynamodb").describe_table(TableName=deployment.refs["ShareTable"])
    stack.client(CONSUMER, "kms").describe_key(KeyId=deployment.refs["AlarmTopicKey"])
    role = stack.client(CONSUMER, "iam").get_role_policy(
        RoleName="pipeshare-ForwarderRole", PolicyName="put-on-owner-bus"
    )
    assert role["PolicyDocument"]["Statement"][0]["Resource"] == OWNER_BUS_ARN  # JSON, as CreateRole stores it


def test_the_stacks_resources_refer_to_the_hand_made_ones_as_the_template_says(stack: LocalStack) -> None:
    consumer = stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER, "OwnerEventBusArn": OWNER_BUS_ARN})
    owner = stack.deploy(OWNER, {"Mode": "owner"})

    sqs = stack.client(OWNER, "sqs")
    settle = sqs.get_queue_attributes(QueueUrl=owner.refs["SettleQueue"], AttributeNames=["All"])["Attributes"]
    assert settle["VisibilityTimeout"] == "360"
    assert json.loads(settle["RedrivePolicy"]) == {
        "deadLetterTargetArn": owner.attributes[("SettleDlq", "Arn")],
        "maxReceiveCount": 5,
    }
    assert owner.functions["TrackExecutionsFunction"].environment["SETTLE_QUEUE_URL"] == owner.refs["SettleQueue"]
    topic = stack.client(OWNER, "sns").get_topic_attributes(TopicArn=owner.refs["AlarmTopic"])["Attributes"]
    assert topic["KmsMasterKeyId"] == owner.refs["AlarmTopicKey"]  # the hand-made key's id
    groups = stack.client(OWNER, "logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/pipeshare-")["logGroups"]
    assert {g["logGroupName"]: g["retentionInDays"] for g in groups}[
        f"/aws/lambda/{owner.functions['TrackExecutionsFunction'].name}"
    ] == 30
    targets = stack.client(CONSUMER, "events").list_targets_by_rule(Rule="ForwarderRule")["Targets"]
    assert [(t["Arn"], t["RoleArn"], t["DeadLetterConfig"]["Arn"]) for t in targets] == [
        (OWNER_BUS_ARN, consumer.attributes[("ForwarderRole", "Arn")], consumer.attributes[("RuleTargetDlq", "Arn")])
    ]
    assert [(r.forward_to, r.dead_letter_arn) for r in consumer.rules if r.name == "ForwarderRule"] == [
        (OWNER_BUS_ARN, consumer.attributes[("RuleTargetDlq", "Arn")])
    ]


def test_the_dashboards_are_skipped_on_purpose_and_nothing_else_changes(stack: LocalStack) -> None:
    # Given both sides deployed (each has its dashboard in the template)
    consumer = stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER})
    owner = stack.deploy(OWNER, {"Mode": "owner"})

    # Then each dashboard is listed as not deployed, with the reason, and none exists in moto
    reason = NOT_DEPLOYED["AWS::CloudWatch::Dashboard"]
    assert f"ConsumerDashboard (AWS::CloudWatch::Dashboard): {reason}" in consumer.skipped
    assert f"OwnerDashboard (AWS::CloudWatch::Dashboard): {reason}" in owner.skipped
    assert not any("Dashboard" in entry for entry in consumer.skipped if "ConsumerDashboard" not in entry)
    for account in (CONSUMER, OWNER):
        assert stack.client(account, "cloudwatch").list_dashboards()["DashboardEntries"] == []
    # the queues the dashboards draw are there all the same
    assert {"RuleTargetDlq", "AcceptInvitationsDlq"} <= set(consumer.refs)
    assert {"SettleDlq", "OwnerRuleTargetDlq"} <= set(owner.refs)
