"""parliament over every role policy of the template as `sam deploy` creates it.

The template goes through SAM's translator (pipeshare_local.iam.sam_translate: policy templates expanded, destination
permissions added), then each AWS::IAM::Role's inline policies are resolved for representative parameter sets and
analysed by parliament (with its community auditors). Any finding fails the test unless ALLOWED lists it, with the
reason; an ALLOWED entry that no longer matches anything fails too, so the list cannot rot.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import parliament
import pytest

from pipeshare_local.iam import sam_translate
from pipeshare_local.template import Resolver, load_template

ACCOUNT = "111111111111"
REGION = "us-east-1"
STACK = "pipeshare"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::StackName": STACK,
    "AWS::URLSuffix": "amazonaws.com",
}
EVERY_OPTION = {
    "TrustedOwnerAccountIds": "222222222222,333333333333",
    "TrustPolicyParameterName": "/pipeshare/trust-policy",
    "BudgetPolicyParameterName": "/pipeshare/budgets",
    "PriceOverrideParameterName": "/pipeshare/prices",
    "UsePriceListApi": "true",
    "OwnerEventBusArn": "arn:aws:events:us-east-1:444444444444:event-bus/pipeshare-owner",
    "ConsumerNoticeBusName": "pipeshare-notices",
    "ForwarderAccountIds": "222222222222,333333333333",
    "ForwarderOrganizationId": "o-abcdefghij",
    "SharedPipelineArns": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/churn-train",
    "ShareConsumerAccountIds": "222222222222",
    "SharePermission": "allow-execution",
    "NotificationEmail": "ops@example.com",
    "AlarmEmail": "ops@example.com",
    "OwnerNotificationEmail": "ops@example.com",
}
PARAMETER_SETS = {
    "consumer-defaults": {},
    "owner-defaults": {"Mode": "owner"},
    "both-every-option": {"Mode": "both", **EVERY_OPTION},
    "both-budget-policy-only": {"Mode": "both", "BudgetPolicyParameterName": "/pipeshare/budgets"},
    "owner-price-override-only": {"Mode": "owner", "PriceOverrideParameterName": "/pipeshare/prices"},
}

# AWS managed RAM permissions live in account "aws" (the database's own format is arn:${Partition}:ram::${Account}:
# permission/...), which parliament's account check rejects as INVALID_ARN; a statement with an "invalid" resource is
# then skipped by its RESOURCE_MISMATCH check altogether. The lint reads such ARNs with a placeholder account so
# that statement keeps being checked.
MANAGED_PERMISSION = re.compile(r"^(arn:[^:]+:ram::)aws(:permission/)")
PLACEHOLDER_ACCOUNT = "000000000000"


@dataclass(frozen=True)
class Finding:
    role: str
    policy: str
    issue: str
    detail: Any
    location: Any


@dataclass(frozen=True)
class Allowed:
    issue: str
    reason: str
    matches: Callable[[Finding], bool]


def _sam_generated(finding: Finding) -> bool:
    """A document SAM writes (policy template expansion, destination / event-source permissions), not template.yaml."""
    return SOURCE_POLICIES.get((finding.role, finding.policy)) is None


ALLOWED = (
    Allowed(
        "NO_VERSION",
        "SAM writes its policy-template expansions and destination/event-source SQS permissions without a Version "
        "(IAM then applies 2008-10-17, which only differs for policy variables: none are used); every document "
        "written in template.yaml has Version 2012-10-17",
        _sam_generated,
    ),
    Allowed(
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "budget enforcement takes the offending consumer off a share and gives it a read-only share of its own: "
        "each statement is limited to account principals, this account's pipelines and (for association) the "
        "pipeshare-read-only-* shares, per request context (template.yaml, aws-facts §10)",
        lambda f: (
            f.role == "WatchBudgetsFunctionRole"
            and set(f.location.get("actions", []))
            <= {"ram:createresourceshare", "ram:associateresourceshare", "ram:disassociateresourceshare"}
        ),
    ),
    Allowed(
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "accepting and rejecting RAM invitations is the acceptor's purpose; accept is conditioned on "
        "ram:ShareOwnerAccountId (the trusted owners) and enforced locally (tests/integration/test_iam_enforcement.py)",
        lambda f: (
            f.role == "AcceptInvitationsFunctionRole"
            and set(f.location.get("actions", []))
            <= {"ram:acceptresourceshareinvitation", "ram:rejectresourceshareinvitation"}
        ),
    ),
)


def _source_policies() -> dict[tuple[str, str], Any]:
    """(role, SAM policy name) -> the template.yaml Policies entry it comes from (None: SAM wrote it)."""
    out: dict[tuple[str, str], Any] = {}
    for name, spec in load_template()["Resources"].items():
        if spec["Type"] == "AWS::Serverless::Function":
            for i, entry in enumerate(spec["Properties"].get("Policies", [])):
                written = isinstance(entry, dict) and "Statement" in entry  # else a policy template SAM expands
                out[(f"{name}Role", f"{name}RolePolicy{i}")] = entry if written else None
        elif spec["Type"] == "AWS::IAM::Role":
            for entry in spec["Properties"].get("Policies", []):
                out[(name, entry["PolicyName"])] = entry["PolicyDocument"]
    return out


SOURCE_POLICIES = _source_policies()


def _attribute(translated: dict[str, Any], logical: str, attribute: str) -> str:
    """What a deployment's resources would answer to GetAtt (names as the local stack gives them)."""
    kind = translated["Resources"][logical]["Type"]
    name = f"{STACK}-{logical}"
    values = {
        "AWS::DynamoDB::Table": {
            "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
            "StreamArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}/stream/2026-05-01T08:00:00.000",
        },
        "AWS::SQS::Queue": {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}", "QueueName": name},
        "AWS::SNS::Topic": {"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}", "TopicName": name},
        "AWS::Events::EventBus": {"Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}", "Name": name},
        "AWS::Events::Rule": {"Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"},
        "AWS::KMS::Key": {"Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical}", "KeyId": logical},
        "AWS::Lambda::Function": {"Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"},
        "AWS::IAM::Role": {"Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}"},
        "AWS::RAM::ResourceShare": {"Arn": f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/{logical}"},
    }
    return values[kind][attribute]


@functools.cache
def _role_policies(parameter_set: str) -> dict[str, list[dict[str, Any]]]:
    """role -> its resolved inline policies ({PolicyName, PolicyDocument}) for one parameter set."""
    translated = sam_translate(load_template())
    resolver = Resolver(
        translated,
        parameters=PARAMETER_SETS[parameter_set],
        pseudo=PSEUDO,
        refs={name: f"{STACK}-{name}" for name in translated["Resources"]},
        attrs=lambda logical, attribute: _attribute(translated, logical, attribute),
    )
    return {
        name: resolver.resolve(spec["Properties"].get("Policies", []))
        for name, spec in translated["Resources"].items()
        if spec["Type"] == "AWS::IAM::Role" and resolver.enabled(spec)
    }


def _lint(role: str, policy_name: str, document: dict[str, Any]) -> list[Finding]:
    document = copy.deepcopy(document)
    for statement in document["Statement"]:
        for key in ("Resource", "NotResource"):
            if isinstance(statement.get(key), list):
                statement[key] = [
                    MANAGED_PERMISSION.sub(rf"\g<1>{PLACEHOLDER_ACCOUNT}\g<2>", r) for r in statement[key]
                ]
            elif isinstance(statement.get(key), str):
                statement[key] = MANAGED_PERMISSION.sub(rf"\g<1>{PLACEHOLDER_ACCOUNT}\g<2>", statement[key])
    analysed = parliament.analyze_policy_string(json.dumps(document), include_community_auditors=True)
    return [Finding(role, policy_name, f.issue, f.detail, f.location) for f in analysed.findings]


def _findings(parameter_set: str) -> list[Finding]:
    return [
        finding
        for role, policies in _role_policies(parameter_set).items()
        for policy in policies
        for finding in _lint(role, policy["PolicyName"], policy["PolicyDocument"])
    ]


def _allowed(finding: Finding) -> Allowed | None:
    return next((a for a in ALLOWED if a.issue == finding.issue and a.matches(finding)), None)


@pytest.mark.parametrize("parameter_set", sorted(PARAMETER_SETS))
def test_every_role_policy_passes_parliament(parameter_set: str) -> None:
    # Given every role SAM would create for this parameter set, its inline policies resolved
    roles = _role_policies(parameter_set)
    assert roles, "no AWS::IAM::Role in the translated template: the translation is broken"
    assert all(policies for policies in roles.values()), "a role without inline policies"

    # When parliament analyses each policy document
    findings = _findings(parameter_set)

    # Then every finding is one of the allowed ones (listed with its reason)
    unexpected = [f for f in findings if _allowed(f) is None]
    assert not unexpected, "\n".join(f"{f.role}/{f.policy}: {f.issue} {f.detail} {f.location}" for f in unexpected)


def test_every_allowed_finding_still_occurs() -> None:
    # Given the findings over every parameter set
    findings = [f for parameter_set in PARAMETER_SETS for f in _findings(parameter_set)]

    # Then each allowed entry still matches one (else it is stale and must go)
    stale = [a.issue for a in ALLOWED if not any(a.issue == f.issue and a.matches(f) for f in findings)]
    assert not stale, stale


def test_the_parameter_sets_cover_every_function_and_role() -> None:
    # Given the roles of every parameter set
    linted = {role for parameter_set in PARAMETER_SETS for role in _role_policies(parameter_set)}

    # Then every function's role and every template role was linted
    translated = sam_translate(load_template())
    every = {name for name, spec in translated["Resources"].items() if spec["Type"] == "AWS::IAM::Role"}
    assert linted == every, every - linted


def test_the_lint_fails_on_a_resource_mismatch() -> None:
    # Given the budget watcher's share-to-read-only statement as it was: the share only, no permission resource
    statement = {
        "Sid": "SwitchSharesToReadOnly",
        "Effect": "Allow",
        "Action": ["ram:AssociateResourceSharePermission"],
        "Resource": f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/*",
    }

    # When it is linted
    findings = _lint("WatchBudgetsFunctionRole", "probe", {"Version": "2012-10-17", "Statement": [statement]})

    # Then the missing permission resource is a RESOURCE_MISMATCH that no allowance covers
    mismatches = [f for f in findings if f.issue == "RESOURCE_MISMATCH"]
    assert mismatches, findings
    assert {"action": "ram:AssociateResourceSharePermission", "required_format": "arn:*:ram::*:permission/*"} in (
        mismatches[0].detail
    )
    assert _allowed(mismatches[0]) is None


def test_the_lint_reads_aws_managed_permission_arns() -> None:
    # Given a statement naming the share and the AWS managed read-only permission
    statement = {
        "Effect": "Allow",
        "Action": ["ram:AssociateResourceSharePermission"],
        "Resource": [
            f"arn:aws:ram:{REGION}:{ACCOUNT}:resource-share/*",
            "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline",
        ],
    }

    # When it is linted
    findings = _lint("WatchBudgetsFunctionRole", "probe", {"Version": "2012-10-17", "Statement": [statement]})

    # Then no INVALID_ARN hides the resource check: only the customer-managed alternative is reported
    assert [f.issue for f in findings] == ["RESOURCE_MISMATCH"]
    assert findings[0].detail == [
        {"action": "ram:AssociateResourceSharePermission", "required_format": "arn:*:ram:*:*:permission/*"}
    ]
