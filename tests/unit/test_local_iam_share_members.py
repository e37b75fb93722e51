"""The local IAM's mapping of Create/Associate/DisassociateResourceShare (pipeshare_local.iam): one request context
per principal (ram:Principal, no resource keys) and per resource (ram:ResourceArn, ram:RequestedResourceType, no
ram:Principal), the share's name from the RAM emulation, tags on create as a ram:TagResource authorization; and the
budget watcher's statements evaluated on them (aws-facts §10.3)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare_local.iam import LocalIam, NoLookups, Principal, Request, request_needs
from pipeshare_local.ram import resource_type_of

ACCOUNT, CONSUMER, REGION = "111111111111", "222222222222", "us-east-1"
ROLE = "WatchBudgetsFunctionRole"
PRINCIPAL = Principal(
    ACCOUNT,
    ROLE,
    f"arn:aws:iam::{ACCOUNT}:role/pipeshare-{ROLE}",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/pipeshare-{ROLE}/pipeshare-WatchBudgetsFunction",
    "WatchBudgetsFunction",
)
RUN_SHARE = f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/run-0001"
READ_SHARE = f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/read-0002"
PIPELINE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/churn-train"
SUBNET = f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-0123"
SHARES = {RUN_SHARE: ("pipeshare-pipelines", True), READ_SHARE: (f"pipeshare-read-only-{CONSUMER}", True)}
PIPELINES = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/*"
SHARE_ARNS = f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/*"
# The budget watcher's RAM statements, as template.yaml writes them (resolved for this account)
WATCHER = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "RemoveConsumerFromShares",
            "Effect": "Allow",
            "Action": ["ram:DisassociateResourceShare"],
            "Resource": SHARE_ARNS,
            "Condition": {"StringLike": {"ram:Principal": "????????????"}},
        },
        {
            "Sid": "CreateReadOnlyShareOfPipelines",
            "Effect": "Allow",
            "Action": ["ram:CreateResourceShare"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"ram:RequestedResourceType": "sagemaker:Pipeline"},
                "ArnLike": {"ram:ResourceArn": PIPELINES},
            },
        },
        {
            "Sid": "CreateReadOnlyShareForConsumer",
            "Effect": "Allow",
            "Action": ["ram:CreateResourceShare"],
            "Resource": "*",
            "Condition": {"StringLike": {"ram:Principal": "????????????"}},
        },
        {
            "Sid": "TagReadOnlyShareOnCreate",
            "Effect": "Allow",
            "Action": ["ram:TagResource"],
            "Resource": SHARE_ARNS,
            "Condition": {
                "StringEquals": {"aws:RequestTag/pipeshare:purpose": "budget-read-only"},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["pipeshare:purpose", "pipeshare:consumer"]},
            },
        },
        {
            "Sid": "AddPipelinesToReadOnlyShares",
            "Effect": "Allow",
            "Action": ["ram:AssociateResourceShare"],
            "Resource": SHARE_ARNS,
            "Condition": {
                "StringLike": {"ram:ResourceShareName": "pipeshare-read-only-*"},
                "StringEquals": {"ram:RequestedResourceType": "sagemaker:Pipeline"},
                "ArnLike": {"ram:ResourceArn": PIPELINES},
            },
        },
        {
            "Sid": "AddConsumerToReadOnlyShares",
            "Effect": "Allow",
            "Action": ["ram:AssociateResourceShare"],
            "Resource": SHARE_ARNS,
            "Condition": {
                "StringLike": {"ram:ResourceShareName": "pipeshare-read-only-*", "ram:Principal": "????????????"}
            },
        },
    ],
}
TAGS = [{"key": "pipeshare:purpose", "value": "budget-read-only"}, {"key": "pipeshare:consumer", "value": CONSUMER}]


class Shares(NoLookups):
    def share(self, arn: str) -> tuple[str, bool] | None:
        return SHARES.get(arn)


def request(operation: str, **params: Any) -> Request:
    return Request("ram", operation, params, ACCOUNT, REGION, "rest-json")


def allowed(operation: str, **params: Any) -> bool:
    iam = LocalIam(lookups=Shares())
    iam.set_policies(ACCOUNT, ROLE, [WATCHER])
    decision = iam.check_request(PRINCIPAL, request(operation, **params))
    assert decision.reason in ("allowed", "implicit-deny"), decision.message  # never "cannot evaluate"
    return decision.allowed


def test_each_principal_and_each_resource_is_its_own_context() -> None:
    # Given an association of one pipeline and one consumer to the read-only share
    needs = request_needs(
        request("AssociateResourceShare", resourceShareArn=READ_SHARE, principals=[CONSUMER], resourceArns=[PIPELINE]),
        Shares(),
    )

    # Then there are two authorizations on the share: the consumer's, and the pipeline's
    [by_principal, by_resource] = needs
    assert {t.arn for n in needs for t in n.targets} == {READ_SHARE}
    assert by_principal.context["ram:principal"] == (CONSUMER,)
    assert "ram:resourcearn" not in by_principal.context
    assert {"ram:requestedresourcetype", "ram:resourcearn"} <= by_principal.absent
    assert by_resource.context["ram:resourcearn"] == (PIPELINE,)
    assert by_resource.context["ram:requestedresourcetype"] == ("sagemaker:Pipeline",)
    assert "ram:principal" in by_resource.absent
    assert by_principal.context["ram:resourcesharename"] == (f"pipeshare-read-only-{CONSUMER}",)


def test_create_with_tags_also_needs_tag_resource() -> None:
    # Given a create with tags
    needs = request_needs(
        request("CreateResourceShare", name="x", principals=[CONSUMER], resourceArns=[PIPELINE], tags=TAGS), Shares()
    )

    # Then the create names no resource, and a TagResource on the share being created carries the tags
    assert [n.action for n in needs] == ["ram:CreateResourceShare", "ram:CreateResourceShare", "ram:TagResource"]
    assert all(not n.targets for n in needs[:2])
    assert needs[2].context["aws:tagkeys"] == ("pipeshare:purpose", "pipeshare:consumer")
    assert needs[2].context["aws:requesttag/pipeshare:purpose"] == ("budget-read-only",)


def test_resource_types_come_from_the_emulated_catalogue() -> None:
    # Given ARNs of a pipeline, a subnet and something not shareable / Then their RAM resource types
    assert (resource_type_of(PIPELINE), resource_type_of(SUBNET)) == ("sagemaker:Pipeline", "ec2:Subnet")
    assert resource_type_of("arn:aws:s3:::bucket") is None
    assert resource_type_of("not an arn") is None


@pytest.mark.parametrize(
    ("operation", "params", "expected"),
    [
        ("DisassociateResourceShare", {"resourceShareArn": RUN_SHARE, "principals": [CONSUMER]}, True),
        ("DisassociateResourceShare", {"resourceShareArn": RUN_SHARE, "resourceArns": [PIPELINE]}, False),
        (
            "DisassociateResourceShare",
            {"resourceShareArn": RUN_SHARE, "principals": [CONSUMER], "resourceArns": [PIPELINE]},
            False,
        ),
        (
            "CreateResourceShare",
            {"name": "x", "principals": [CONSUMER], "resourceArns": [PIPELINE], "tags": TAGS},
            True,
        ),
        ("CreateResourceShare", {"name": "x", "principals": [CONSUMER], "resourceArns": [SUBNET]}, False),
        (
            "CreateResourceShare",
            {"name": "x", "principals": [CONSUMER], "resourceArns": [PIPELINE.replace(ACCOUNT, CONSUMER)]},
            False,
        ),
        (
            "CreateResourceShare",
            {"name": "x", "principals": [f"arn:aws:organizations::{ACCOUNT}:ou/o-abcdefghij/ou-ab12-cdefghij"]},
            False,
        ),
        (
            "CreateResourceShare",
            {"name": "x", "principals": [CONSUMER], "tags": [{"key": "team", "value": "ml"}]},
            False,
        ),
        ("AssociateResourceShare", {"resourceShareArn": READ_SHARE, "principals": [CONSUMER]}, True),
        ("AssociateResourceShare", {"resourceShareArn": READ_SHARE, "resourceArns": [PIPELINE]}, True),
        ("AssociateResourceShare", {"resourceShareArn": RUN_SHARE, "principals": [CONSUMER]}, False),
        ("AssociateResourceShare", {"resourceShareArn": RUN_SHARE, "resourceArns": [PIPELINE]}, False),
    ],
)
def test_the_budget_watchers_statements_allow_only_the_offenders_changes(
    operation: str, params: dict[str, Any], expected: bool
) -> None:
    # Given the budget watcher's statements / When the request is authorized / Then as expected, never unevaluable
    assert allowed(operation, **params) is expected


def test_an_unknown_share_has_no_name_and_is_not_a_read_only_share() -> None:
    # Given a share the RAM emulation does not know
    unknown = f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/gone"

    # When a consumer is added to it
    iam = LocalIam(lookups=Shares())
    iam.set_policies(ACCOUNT, ROLE, [WATCHER])
    decision = iam.check_request(
        PRINCIPAL, request("AssociateResourceShare", resourceShareArn=unknown, principals=[CONSUMER])
    )

    # Then the name condition cannot be evaluated: denied (fail closed)
    assert (decision.allowed, decision.reason) == (False, "unsupported")
