"""Trust policy: validation (fail closed) and the decision for one invitation. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from pipeshare.models.domain import (
    Action,
    Decision,
    Invitation,
    PendingResource,
    ShareStatus,
    TrustPolicy,
)
from pipeshare.models.errors import PolicyInvalidError
from pipeshare.models.types import fingerprint

# RAM resource type codes that can be shared (RAM user guide, "Shareable AWS resources"). Compared case-insensitively.
KNOWN_RESOURCE_TYPES = frozenset(
    t.lower()
    for t in (
        "acm-pca:CertificateAuthority",
        "appmesh:Mesh",
        "aws-network-firewall:FirewallPolicy",
        "aws-network-firewall:StatefulRuleGroup",
        "aws-network-firewall:StatelessRuleGroup",
        "codebuild:Project",
        "codebuild:ReportGroup",
        "datazone:Domain",
        "ec2:CapacityReservation",
        "ec2:DedicatedHost",
        "ec2:IpamPool",
        "ec2:IpamResourceDiscovery",
        "ec2:LocalGatewayRouteTable",
        "ec2:PlacementGroup",
        "ec2:PrefixList",
        "ec2:Subnet",
        "ec2:TrafficMirrorTarget",
        "ec2:TransitGateway",
        "ec2:TransitGatewayMulticastDomain",
        "ec2:VerifiedAccessGroup",
        "glue:Catalog",
        "glue:Database",
        "glue:Table",
        "imagebuilder:Component",
        "imagebuilder:ContainerRecipe",
        "imagebuilder:Image",
        "imagebuilder:ImageRecipe",
        "license-manager:LicenseConfiguration",
        "outposts:Outpost",
        "outposts:Site",
        "rds:Cluster",
        "resource-groups:Group",
        "route53resolver:FirewallRuleGroup",
        "route53resolver:ResolverQueryLogConfig",
        "route53resolver:ResolverRule",
        "s3-outposts:Outpost",
        "sagemaker:Pipeline",
        "ssm-contacts:Contact",
        "ssm-contacts:Rotation",
        "vpc-lattice:Service",
        "vpc-lattice:ServiceNetwork",
    )
)


def _semantic_errors(policy: TrustPolicy) -> list[str]:
    errors: list[str] = []
    seen: set[str] = set()
    for owner in policy.owners:
        if owner.account_id in seen:
            errors.append(f"owners: account {owner.account_id} is listed twice")
        seen.add(owner.account_id)
        errors.extend(
            f"owners[{owner.account_id}].allowed_resource_types: unknown resource type {rtype!r}"
            for rtype in owner.allowed_resource_types
            if rtype.lower() not in KNOWN_RESOURCE_TYPES
        )
    return errors


def parse_policy(document: Any, *, source: str) -> TrustPolicy:
    """Validate a policy document. Raises PolicyInvalidError (fail closed) with every problem found."""
    fp = fingerprint(document)
    if not isinstance(document, dict):
        raise PolicyInvalidError(source, ["the policy must be a JSON object"], fp)
    try:
        policy = TrustPolicy.model_validate(document)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
        raise PolicyInvalidError(source, errors, fp) from None
    errors = _semantic_errors(policy)
    if errors:
        raise PolicyInvalidError(source, errors, fp)
    return policy.model_copy(update={"source": source, "fingerprint": fp})


def policy_from_parameters(
    *, trusted_owner_ids: str, allowed_resource_types: str, untrusted_action: str, disallowed_resource_action: str
) -> TrustPolicy:
    """Build the simple-case policy from the template parameters (comma-separated strings)."""
    types = [t.strip() for t in allowed_resource_types.split(",") if t.strip()]
    document = {
        "version": 1,
        "untrusted_action": untrusted_action,
        "disallowed_resource_action": disallowed_resource_action,
        "owners": [
            {"account_id": a.strip(), "allowed_resource_types": types}
            for a in trusted_owner_ids.split(",")
            if a.strip()
        ],
    }
    return parse_policy(document, source="parameters")


def decide_sender(invitation: Invitation, policy: TrustPolicy) -> Decision | None:
    """The decision the sender alone settles (an untrusted owner account), or None when the content must be read."""
    return _untrusted(invitation, policy) if policy.owner(invitation.sender_account_id) is None else None


def _untrusted(invitation: Invitation, policy: TrustPolicy) -> Decision:
    return _refuse(
        policy.untrusted_action,
        "untrusted-owner",
        f"sender {invitation.sender_account_id} is not a trusted owner",
    )


def disallowed_types(owner_account_id: str, resource_types: Sequence[str], policy: TrustPolicy) -> list[str]:
    """The resource types (sorted, as given) outside what the policy allows from this owner (all, when untrusted)."""
    owner = policy.owner(owner_account_id)
    allowed = {t.lower() for t in owner.allowed_resource_types} if owner else set()
    return sorted({t for t in resource_types if t.lower() not in allowed})


def decide(invitation: Invitation, resources: Sequence[PendingResource], policy: TrustPolicy) -> Decision:
    """Decide what to do with a PENDING invitation."""
    owner = policy.owner(invitation.sender_account_id)
    if owner is None:
        return _untrusted(invitation, policy)
    if not resources:
        return Decision(
            action=Action.HOLD,
            status=ShareStatus.HELD,
            rule="no-resources",
            reason="the invitation lists no resources, so its content cannot be checked",
        )
    disallowed = disallowed_types(invitation.sender_account_id, [r.type for r in resources], policy)
    if disallowed:
        return _refuse(
            policy.disallowed_resource_action,
            "resource-type-not-allowed",
            f"resource type(s) {', '.join(disallowed)} not allowed from {invitation.sender_account_id} "
            f"(allowed: {', '.join(owner.allowed_resource_types)})",
        )
    return Decision(
        action=Action.ACCEPT,
        status=ShareStatus.ACCEPTED,
        rule="trusted-owner",
        reason=f"trusted owner {invitation.sender_account_id}; {len(resources)} resource(s) of allowed type(s)",
    )


def _refuse(action: Action, rule: str, reason: str) -> Decision:
    if action == Action.REJECT:
        return Decision(action=Action.REJECT, status=ShareStatus.REJECTED, rule=rule, reason=reason)
    return Decision(action=Action.HOLD, status=ShareStatus.HELD, rule=rule, reason=reason)
