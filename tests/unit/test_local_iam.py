"""The local IAM evaluator (pipeshare_local.iam): requests -> (action, resources, context) from the IAM definition
database, policy evaluation, fail-closed cases, and denials in each protocol's shape as botocore parses them."""

from __future__ import annotations

import io
import json
from typing import Any

import botocore.parsers
import botocore.session
import pytest
from botocore.compat import HTTPHeaders

from pipeshare_local.iam import (
    REQUEST_RESOURCES,
    Context,
    Decision,
    LocalIam,
    NoLookups,
    Principal,
    Request,
    denial_response,
    evaluate,
    iam_definitions,
    read_request,
)

ACCOUNT = "111111111111"
OWNER = "222222222222"
REGION = "us-east-1"
ROLE = "FnRole"
PRINCIPAL = Principal(
    ACCOUNT,
    ROLE,
    f"arn:aws:iam::{ACCOUNT}:role/pipeshare-{ROLE}",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/pipeshare-{ROLE}/pipeshare-Fn",
    "Fn",
)
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/pipeshare-OwnerTable"
SHARE = f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/0f1e2d3c-aaaa-bbbb-cccc-000000000001"
READ_ONLY = "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"
ALLOW_EXECUTION = "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution"
INVITATION = f"arn:aws:ram:{REGION}:{OWNER}:resource-share-invitation/0f1e2d3c-aaaa-bbbb-cccc-000000000002"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:pipeshare-OwnerTopic"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"


class Lookups(NoLookups):
    def __init__(self, invitations: dict[str, tuple[str, str]] | None = None, keys: dict[str, str] | None = None):
        self._invitations = invitations or {}
        self._keys = keys or {}

    def invitation(self, arn: str) -> tuple[str, str] | None:
        return self._invitations.get(arn)

    def topic_key(self, topic_arn: str) -> str | None:
        return self._keys.get(topic_arn)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def decide(
    policies: list[dict[str, Any]] | str,
    service: str,
    operation: str,
    params: dict[str, Any],
    lookups: NoLookups | None = None,
) -> Decision:
    iam = LocalIam(lookups=lookups or NoLookups())
    iam.set_policies(ACCOUNT, ROLE, policies)
    return iam.check_request(PRINCIPAL, Request(service, operation, params, ACCOUNT, REGION, "json"))


def get_item(table: str = "pipeshare-OwnerTable") -> dict[str, Any]:
    return {"TableName": table, "Key": {"pk": {"S": "x"}}}


# ------------------------------------------------------------------------------------------------ evaluation


def test_allow_matches_action_case_insensitively_and_resource_exactly() -> None:
    # Given a policy allowing GetItem on the table, with the action spelled in another case
    policies = [policy(allow("DynamoDB:getitem", TABLE))]

    # When the function reads an item of that table, then of another table
    allowed = decide(policies, "dynamodb", "GetItem", get_item())
    other = decide(policies, "dynamodb", "GetItem", get_item("pipeshare-ShareTable"))

    # Then the first is allowed, the second implicitly denied with AWS's wording
    assert allowed.allowed
    assert (other.allowed, other.reason) == (False, "implicit-deny")
    assert other.message == (
        f"User: {PRINCIPAL.session_arn} is not authorized to perform: dynamodb:GetItem on resource: "
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/pipeshare-ShareTable because no identity-based policy allows "
        "the dynamodb:GetItem action"
    )


def test_explicit_deny_beats_allow() -> None:
    # Given an allow on every DynamoDB action and a deny of DeleteItem
    policies = [
        policy(allow("dynamodb:*", "*")),
        policy({"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": TABLE}),
    ]

    # When the function deletes an item
    decision = decide(policies, "dynamodb", "DeleteItem", get_item())

    # Then it is denied explicitly
    assert (decision.allowed, decision.reason) == (False, "explicit-deny")
    assert decision.message.endswith("with an explicit deny in an identity-based policy")
    assert decide(policies, "dynamodb", "PutItem", get_item()).allowed


@pytest.mark.parametrize(
    ("pattern", "allowed"),
    [
        (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/pipeshare-*", True),
        (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/pipeshare-?wnerTable", True),
        (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/pipeshare-?Table", False),
        (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/PIPESHARE-OwnerTable", False),  # resources are case-sensitive
        (f"arn:aws:dynamodb:*:{ACCOUNT}:table/*", True),
    ],
)
def test_resource_wildcards(pattern: str, allowed: bool) -> None:
    assert decide([policy(allow("dynamodb:GetItem", pattern))], "dynamodb", "GetItem", get_item()).allowed is allowed


def test_action_wildcards() -> None:
    policies = [policy(allow("dynamodb:*Item", TABLE))]
    assert decide(policies, "dynamodb", "PutItem", get_item()).allowed
    assert not decide(policies, "dynamodb", "Query", get_item()).allowed


def test_not_action_allows_everything_else() -> None:
    # Given "everything but SNS" on every resource
    policies = [policy({"Effect": "Allow", "NotAction": ["sns:*"], "Resource": "*"})]

    # Then a DynamoDB read is allowed and a publish is not
    assert decide(policies, "dynamodb", "GetItem", get_item()).allowed
    assert not decide(policies, "sns", "Publish", {"TopicArn": TOPIC}).allowed


def test_not_resource_allows_every_other_resource() -> None:
    policies = [policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "NotResource": TABLE})]
    assert not decide(policies, "dynamodb", "GetItem", get_item()).allowed
    assert decide(policies, "dynamodb", "GetItem", get_item("pipeshare-ShareTable")).allowed


def test_deny_with_not_resource_protects_everything_but_the_listed() -> None:
    policies = [
        policy(allow("dynamodb:PutItem", "*")),
        policy({"Effect": "Deny", "Action": "dynamodb:PutItem", "NotResource": TABLE}),
    ]
    assert decide(policies, "dynamodb", "PutItem", get_item()).allowed
    assert decide(policies, "dynamodb", "PutItem", get_item("other")).reason == "explicit-deny"


def test_action_without_resource_types_needs_resource_star() -> None:
    # Given GetResourceShareInvitations, which supports no resource type
    request = ("ram", "GetResourceShareInvitations", {})

    # Then only Resource "*" grants it
    assert decide([policy(allow("ram:GetResourceShareInvitations", "*"))], *request).allowed
    assert not decide([policy(allow("ram:GetResourceShareInvitations", "arn:aws:ram:*:*:*"))], *request).allowed


# ------------------------------------------------------------------------------------------------ conditions


def ctx(**values: tuple[str, ...]) -> Context:
    return Context({k.replace("__", ":").lower(): v for k, v in values.items()})


def verdict(condition: dict[str, Any], context: Context) -> str:
    return evaluate([policy(allow("svc:Act", "*", Condition=condition))], "svc:Act", "*", context).effect


@pytest.mark.parametrize(
    ("condition", "values", "expected"),
    [
        ({"StringEquals": {"ram:ShareOwnerAccountId": [OWNER, "333333333333"]}}, (OWNER,), "Allow"),
        ({"StringEquals": {"ram:ShareOwnerAccountId": ["333333333333"]}}, (OWNER,), "None"),
        ({"StringEquals": {"ram:ShareOwnerAccountId": [""]}}, (OWNER,), "None"),  # the template's empty default
        ({"StringNotEquals": {"ram:ShareOwnerAccountId": "333333333333"}}, (OWNER,), "Allow"),
        ({"StringNotEquals": {"ram:ShareOwnerAccountId": OWNER}}, (OWNER,), "None"),
        ({"StringLike": {"ram:ShareOwnerAccountId": "2222*"}}, (OWNER,), "Allow"),
        ({"StringLike": {"ram:ShareOwnerAccountId": "3333*"}}, (OWNER,), "None"),
        ({"StringEqualsIgnoreCase": {"ram:ShareOwnerAccountId": "222222222222"}}, (OWNER,), "Allow"),
    ],
)
def test_string_operators(condition: dict[str, Any], values: tuple[str, ...], expected: str) -> None:
    assert verdict(condition, ctx(ram__ShareOwnerAccountId=values)) == expected


@pytest.mark.parametrize(
    ("operator", "pattern", "expected"),
    [
        ("ArnEquals", TOPIC, "Allow"),
        ("ArnLike", f"arn:aws:sns:*:{ACCOUNT}:pipeshare-*", "Allow"),
        ("ArnLike", f"arn:aws:sns:*:{OWNER}:*", "None"),
        ("ArnLike", "arn:aws:sns:*", "None"),  # fewer than six parts never matches
        ("ArnNotLike", f"arn:aws:sns:*:{OWNER}:*", "Allow"),
    ],
)
def test_arn_operators(operator: str, pattern: str, expected: str) -> None:
    assert verdict({operator: {"aws:SourceArn": pattern}}, ctx(aws__SourceArn=(TOPIC,))) == expected


def test_bool_operator() -> None:
    assert verdict({"Bool": {"aws:ViaAWSService": True}}, ctx(aws__ViaAWSService=("true",))) == "Allow"
    assert verdict({"Bool": {"aws:ViaAWSService": "false"}}, ctx(aws__ViaAWSService=("true",))) == "None"


def test_absent_keys_and_if_exists() -> None:
    # Given a key that does not apply to the request (so it is absent, as IAM puts it)
    absent = Context({})

    # Then positive operators are false, negated ones true, IfExists true, Null true
    assert verdict({"StringEquals": {"ram:ResourceShareName": "x"}}, absent) == "None"
    assert verdict({"StringNotEquals": {"ram:ResourceShareName": "x"}}, absent) == "Allow"
    assert verdict({"StringEqualsIfExists": {"ram:ResourceShareName": "x"}}, absent) == "Allow"
    assert verdict({"Null": {"ram:ResourceShareName": "true"}}, absent) == "Allow"
    assert verdict({"Null": {"ram:ResourceShareName": "false"}}, absent) == "None"
    # and IfExists still compares a present value
    present = ctx(ram__ResourceShareName=("y",))
    assert verdict({"StringEqualsIfExists": {"ram:ResourceShareName": "x"}}, present) == "None"


def test_set_operators_on_multi_valued_keys() -> None:
    tags = ctx(aws__TagKeys=("team", "cost-center"))
    assert verdict({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}, tags) == "Allow"
    assert verdict({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}, tags) == "None"
    assert verdict({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "cost-center", "x"]}}, tags) == "Allow"
    assert verdict({"ForAllValues:StringEquals": {"ram:Other": ["team"]}}, Context({})) == "Allow"  # vacuous
    assert verdict({"ForAnyValue:StringEquals": {"ram:Other": ["team"]}}, Context({})) == "None"
    assert verdict({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["team"]}}, tags) == "Allow"


def test_conditions_are_anded_across_keys_and_operators() -> None:
    context = ctx(ram__ShareOwnerAccountId=(OWNER,), ram__ResourceShareName=("churn",))
    both = {"StringEquals": {"ram:ShareOwnerAccountId": OWNER, "ram:ResourceShareName": "churn"}}
    one_wrong = {"StringEquals": {"ram:ShareOwnerAccountId": OWNER}, "StringLike": {"ram:ResourceShareName": "x*"}}
    assert verdict(both, context) == "Allow"
    assert verdict(one_wrong, context) == "None"


@pytest.mark.parametrize(
    "operator", ["NumericLessThan", "DateGreaterThan", "StringEqualsSometimes", "Foo:StringEquals"]
)
def test_an_operator_it_does_not_know_fails_closed(operator: str) -> None:
    # Given an allow conditioned with an operator the evaluator does not implement
    policies = [policy(allow("dynamodb:GetItem", TABLE, Condition={operator: {"dynamodb:Select": "1"}}))]

    # When the call is authorized
    decision = decide(policies, "dynamodb", "GetItem", get_item())

    # Then it is denied, and the message names the operator
    assert (decision.allowed, decision.reason) == (False, "unsupported")
    assert f"condition operator {operator}" in decision.message
    assert "fail closed" in decision.message


def test_a_condition_key_that_applies_but_is_not_supplied_fails_closed() -> None:
    # Given an allow conditioned on the parameter's tags (the database lists aws:ResourceTag/${TagKey} for it)
    statement = allow(
        "ssm:GetParameter",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/pipeshare/*",
        Condition={"StringEquals": {"aws:ResourceTag/team": "ml"}},
    )

    # When the function reads the parameter
    decision = decide([policy(statement)], "ssm", "GetParameter", {"Name": "/pipeshare/budgets"})

    # Then it is denied: the local stack cannot know the tags
    assert (decision.allowed, decision.reason) == (False, "unsupported")
    assert "aws:ResourceTag/team" in decision.message


# ------------------------------------------------------------------------------------------------ request mapping


def test_an_action_the_database_does_not_know_is_denied() -> None:
    decision = decide([policy(allow("*", "*"))], "dynamodb", "PutItemEverywhere", {"TableName": "t"})
    assert (decision.allowed, decision.reason) == (False, "unsupported")
    assert "not in the IAM definition database" in decision.message


def test_an_operation_with_resource_types_but_no_parameter_mapping_is_denied() -> None:
    # Given dynamodb:CreateBackup, which the database lists with resource type table (no mapping here)
    assert ("dynamodb", "CreateBackup") not in REQUEST_RESOURCES
    assert iam_definitions().action("dynamodb:CreateBackup").required == {"table"}

    # When a function calls it under an allow-everything policy
    decision = decide([policy(allow("*", "*"))], "dynamodb", "CreateBackup", {"TableName": "t", "BackupName": "b"})

    # Then it is denied (never a silent allow) and the message says what is missing
    assert (decision.allowed, decision.reason) == (False, "unsupported")
    assert "no request-parameter mapping for dynamodb:CreateBackup" in decision.message


def test_every_mapped_operation_is_an_action_of_the_database() -> None:
    # authorized through their items' actions, or (SQS batches) through the single-message action
    per_item = {"TransactWriteItems", "TransactGetItems", "SendMessageBatch", "DeleteMessageBatch"}
    unknown = [
        f"{service}:{op}"
        for service, op in REQUEST_RESOURCES
        if op not in per_item and iam_definitions().action(f"{service}:{op}") is None
    ]
    assert not unknown
    assert iam_definitions().action("dynamodb:TransactWriteItems") is None


def associate(permission: str = READ_ONLY) -> tuple[str, str, dict[str, Any]]:
    return "ram", "AssociateResourceSharePermission", {"resourceShareArn": SHARE, "permissionArn": permission}


def test_every_required_resource_of_an_action_must_be_allowed() -> None:
    # Given AssociateResourceSharePermission: the database requires the share and the permission
    share_only = allow("ram:AssociateResourceSharePermission", f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/*")
    share_and_read_only = allow(
        "ram:AssociateResourceSharePermission", [f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/*", READ_ONLY]
    )

    # When the budget watcher switches a share to read-only
    without = decide([policy(share_only)], *associate())
    with_permission = decide([policy(share_and_read_only)], *associate())

    # Then a policy naming only the share is denied on the permission; naming both allows it
    assert (without.allowed, without.resource) == (False, READ_ONLY)
    assert with_permission.allowed
    # and the read-only permission is the only one it may attach
    assert decide([policy(share_and_read_only)], *associate(ALLOW_EXECUTION)).resource == ALLOW_EXECUTION


def test_ram_permission_arn_is_in_the_context_of_associate() -> None:
    statement = allow(
        "ram:AssociateResourceSharePermission",
        [f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/*", "arn:aws:ram::aws:permission/*"],
        Condition={"ArnEquals": {"ram:PermissionArn": READ_ONLY}},
    )
    assert decide([policy(statement)], *associate()).allowed
    assert not decide([policy(statement)], *associate(ALLOW_EXECUTION)).allowed


def test_transact_write_items_needs_each_items_action_on_its_table() -> None:
    # Given a transaction with a Put and a ConditionCheck on the owner table
    items = [
        {"Put": {"TableName": "pipeshare-OwnerTable", "Item": {"pk": {"S": "a"}}}},
        {
            "ConditionCheck": {
                "TableName": "pipeshare-OwnerTable",
                "Key": {"pk": {"S": "b"}},
                "ConditionExpression": "x",
            }
        },
    ]

    # When the role allows PutItem only, then PutItem and ConditionCheckItem
    put_only = decide(
        [policy(allow("dynamodb:PutItem", TABLE))], "dynamodb", "TransactWriteItems", {"TransactItems": items}
    )
    both = decide(
        [policy(allow(["dynamodb:PutItem", "dynamodb:ConditionCheckItem"], TABLE))],
        "dynamodb",
        "TransactWriteItems",
        {"TransactItems": items},
    )

    # Then the first is denied on the condition check's action, the second allowed
    assert (put_only.allowed, put_only.action, put_only.resource) == (False, "dynamodb:ConditionCheckItem", TABLE)
    assert both.allowed


def test_batch_get_item_needs_the_batch_action_on_every_table() -> None:
    request = {"RequestItems": {"pipeshare-OwnerTable": {"Keys": []}, "pipeshare-ShareTable": {"Keys": []}}}
    one_table = decide([policy(allow("dynamodb:BatchGetItem", TABLE))], "dynamodb", "BatchGetItem", request)
    assert (one_table.allowed, one_table.resource) == (False, TABLE.replace("OwnerTable", "ShareTable"))
    assert decide(
        [policy(allow("dynamodb:BatchGetItem", TABLE.replace("OwnerTable", "*")))], "dynamodb", "BatchGetItem", request
    ).allowed


def test_query_on_an_index_is_authorized_on_the_index() -> None:
    request = {"TableName": "pipeshare-OwnerTable", "IndexName": "by_initiator", "KeyConditionExpression": "x"}
    assert not decide([policy(allow("dynamodb:Query", TABLE))], "dynamodb", "Query", request).allowed
    index = decide([policy(allow("dynamodb:Query", f"{TABLE}/index/by_initiator"))], "dynamodb", "Query", request)
    assert index.allowed


def test_ssm_parameter_names_become_parameter_arns() -> None:
    arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/pipeshare/budgets"
    assert decide(
        [policy(allow("ssm:GetParameter", arn))], "ssm", "GetParameter", {"Name": "/pipeshare/budgets"}
    ).allowed
    assert decide([policy(allow("ssm:GetParameter", arn))], "ssm", "GetParameter", {"Name": arn}).allowed
    assert not decide([policy(allow("ssm:GetParameter", arn))], "ssm", "GetParameter", {"Name": "/pipeshare/x"}).allowed


def test_sqs_queue_urls_become_queue_arns_of_the_urls_account() -> None:
    url = f"http://127.0.0.1:4566/{OWNER}/pipeshare-SettleQueue"
    mine = f"arn:aws:sqs:{REGION}:{ACCOUNT}:pipeshare-SettleQueue"
    theirs = f"arn:aws:sqs:{REGION}:{OWNER}:pipeshare-SettleQueue"
    assert not decide([policy(allow("sqs:SendMessage", mine))], "sqs", "SendMessage", {"QueueUrl": url}).allowed
    assert decide([policy(allow("sqs:SendMessage", theirs))], "sqs", "SendMessage", {"QueueUrl": url}).allowed


def test_pipeline_execution_arns_are_pipeline_executions() -> None:
    execution = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/churn-train/execution/abc123"
    request = ("sagemaker", "StopPipelineExecution", {"PipelineExecutionArn": execution, "ClientRequestToken": "t"})
    assert decide(
        [policy(allow("sagemaker:StopPipelineExecution", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/*"))], *request
    ).allowed
    assert not decide(
        [policy(allow("sagemaker:StopPipelineExecution", f"arn:aws:sagemaker:{REGION}:{OWNER}:pipeline/*"))], *request
    ).allowed


def test_accept_is_conditioned_on_the_invitations_owner() -> None:
    # Given the acceptor's statement (the template's condition) and two invitations, from a trusted and another owner
    statement = allow(
        "ram:AcceptResourceShareInvitation",
        "arn:aws:ram:*:*:resource-share-invitation/*",
        Condition={"StringEquals": {"ram:ShareOwnerAccountId": [OWNER]}},
    )
    stranger = INVITATION.replace(OWNER, "333333333333")
    lookups = Lookups(invitations={INVITATION: (OWNER, "churn"), stranger: ("333333333333", "other")})

    def accept(arn: str) -> Decision:
        return decide(
            [policy(statement)], "ram", "AcceptResourceShareInvitation", {"resourceShareInvitationArn": arn}, lookups
        )

    # Then the trusted owner's is allowed, the other's denied, and an unknown invitation (no owner) denied
    assert accept(INVITATION).allowed
    assert (accept(stranger).allowed, accept(stranger).resource) == (False, stranger)
    assert not accept(INVITATION.replace("0002", "0003")).allowed


def test_publishing_to_an_encrypted_topic_needs_the_key_via_sns() -> None:
    # Given a topic encrypted with a key, and the notifier's statements
    publish = allow("sns:Publish", TOPIC)
    via_sns = allow(
        ["kms:GenerateDataKey", "kms:Decrypt"],
        f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*",
        Condition={"StringEquals": {"kms:ViaService": f"sns.{REGION}.amazonaws.com"}},
    )
    via_s3 = {**via_sns, "Condition": {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}}
    lookups = Lookups(keys={TOPIC: KEY})

    def publish_with(*statements: dict[str, Any]) -> Decision:
        return decide([policy(*statements)], "sns", "Publish", {"TopicArn": TOPIC, "Message": "m"}, lookups)

    # Then publish alone is denied on the key, the key through SNS allows it, the key through S3 does not
    assert (publish_with(publish).action, publish_with(publish).resource) == ("kms:GenerateDataKey", KEY)
    assert publish_with(publish, via_sns).allowed
    assert not publish_with(publish, via_s3).allowed
    # and an unencrypted topic needs no key
    assert decide([policy(publish)], "sns", "Publish", {"TopicArn": TOPIC}).allowed


def test_a_role_whose_policies_could_not_be_resolved_is_denied_everything() -> None:
    decision = decide("the policies of FnRole could not be resolved: Ref X", "dynamodb", "GetItem", get_item())
    assert (decision.allowed, decision.reason) == (False, "unsupported")
    assert "could not be resolved" in decision.message


def test_denials_are_recorded() -> None:
    iam = LocalIam()
    iam.set_policies(ACCOUNT, ROLE, [policy(allow("dynamodb:GetItem", TABLE))])
    iam.check_request(PRINCIPAL, Request("dynamodb", "PutItem", get_item(), ACCOUNT, REGION, "json"))
    [denial] = iam.denials
    assert (denial.function, denial.operation, denial.action, denial.resource) == (
        "Fn",
        "PutItem",
        "dynamodb:PutItem",
        TABLE,
    )


# ------------------------------------------------------------------------------------------------ the wire


def environ(body: bytes, **headers: str) -> dict[str, Any]:
    return {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "REQUEST_METHOD": "POST", **headers}


def test_read_request_per_protocol() -> None:
    json_call = environ(
        json.dumps(get_item()).encode(),
        HTTP_X_AMZ_TARGET="DynamoDB_20120810.GetItem",
        CONTENT_TYPE="application/x-amz-json-1.0",
    )
    query_call = environ(
        b"Action=Publish&Version=2010-03-31&TopicArn=" + TOPIC.encode() + b"&Message=hi",
        CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8",
    )
    rest_call = environ(
        json.dumps({"resourceShareInvitationArn": INVITATION}).encode(), PATH_INFO="/acceptresourceshareinvitation"
    )

    dynamodb = read_request(json_call, service="dynamodb", account=ACCOUNT, region=REGION)
    sns = read_request(query_call, service="sns", account=ACCOUNT, region=REGION)
    ram = read_request(rest_call, service="ram", account=ACCOUNT, region=REGION)

    assert (dynamodb.operation, dynamodb.params["TableName"], dynamodb.protocol) == (
        "GetItem",
        "pipeshare-OwnerTable",
        "json",
    )
    assert (sns.operation, sns.params["TopicArn"], sns.protocol) == ("Publish", TOPIC, "query")
    assert (ram.operation, ram.params["resourceShareInvitationArn"], ram.protocol) == (
        "AcceptResourceShareInvitation",
        INVITATION,
        "rest-json",
    )
    # the body is still there for the service that answers
    assert json_call["wsgi.input"].read() == json.dumps(get_item()).encode()


@pytest.mark.parametrize(
    ("service", "operation", "protocol", "content_type", "status", "code"),
    [
        ("dynamodb", "GetItem", "json", "application/x-amz-json-1.0", 400, "AccessDeniedException"),
        ("sagemaker", "StopPipelineExecution", "json", "application/x-amz-json-1.1", 400, "AccessDeniedException"),
        ("sns", "Publish", "query", "application/x-www-form-urlencoded", 403, "AuthorizationError"),
        ("ram", "AssociateResourceSharePermission", "rest-json", "application/json", 403, "AccessDeniedException"),
    ],
)
def test_denials_parse_as_the_services_errors(
    service: str, operation: str, protocol: str, content_type: str, status: int, code: str
) -> None:
    # Given a denial in the request's protocol
    message = "User: x is not authorized to perform: y on resource: z"
    got_status, headers, body = denial_response(
        Request(service, operation, {}, ACCOUNT, REGION, protocol, content_type), message
    )

    # When botocore's parser for that protocol reads it
    model = botocore.session.get_session().get_service_model(service)
    parser = botocore.parsers.create_parser(model.metadata["protocol"])
    parsed = parser.parse(
        {"status_code": got_status, "headers": HTTPHeaders.from_pairs(headers), "body": body},
        model.operation_model(operation).output_shape,
    )

    # Then it is the service's access-denied error with the message
    assert got_status == status
    assert (parsed["Error"]["Code"], parsed["Error"]["Message"]) == (code, message)


def test_put_events_is_authorized_on_each_entrys_bus_with_its_source_and_detail_type() -> None:
    # Given a role that may put only the notice source on one bus of any account
    bus = f"arn:aws:events:{REGION}:*:event-bus/pipeshare-notices"
    condition = {"StringEquals": {"events:source": "pipeshare.owner"}}
    policies = [policy(allow("events:PutEvents", bus, Condition=condition))]
    theirs = f"arn:aws:events:{REGION}:{OWNER}:event-bus/pipeshare-notices"

    def entry(bus_name: str | None, source: str = "pipeshare.owner") -> dict[str, Any]:
        found = {"Source": source, "DetailType": "Pipeshare Enforcement Notice", "Detail": "{}"}
        return found if bus_name is None else {**found, "EventBusName": bus_name}

    # Then another account's bus by ARN, or its own by name, is allowed; another bus, the default bus (no name) or
    # another source is not, nor a request with one refused entry among allowed ones
    assert decide(policies, "events", "PutEvents", {"Entries": [entry(theirs)]}).allowed
    assert decide(policies, "events", "PutEvents", {"Entries": [entry("pipeshare-notices")]}).allowed
    assert not decide(policies, "events", "PutEvents", {"Entries": [entry(theirs.replace("notices", "x"))]}).allowed
    assert not decide(policies, "events", "PutEvents", {"Entries": [entry(None)]}).allowed
    assert not decide(policies, "events", "PutEvents", {"Entries": [entry(theirs, "other")]}).allowed
    assert not decide(policies, "events", "PutEvents", {"Entries": [entry(theirs), entry("default")]}).allowed
