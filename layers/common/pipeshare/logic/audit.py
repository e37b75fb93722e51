"""The daily audit of accepted shares: accepting a share accepts whatever its owner associates with it later.

Lists what the shares other accounts share with this one carry now, and alerts once per share when a resource type
outside what the trust policy allows from its owner appears (again when a new disallowed type appears). Pure logic:
ports are arguments.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from pipeshare.adapters.ports import AuditRepository, PolicySource, SharedResourceGateway
from pipeshare.logic.policy import disallowed_types
from pipeshare.models.domain import AUDIT_SAMPLE_RESOURCES, AuditFinding, Resource, SharedResource, TrustPolicy
from pipeshare.models.errors import PolicyInvalidError


@dataclass
class AuditOutcome:
    """What one audit run did."""

    status: str = "ok"  # ok | policy-invalid
    resources: int = 0
    shares: int = 0
    alerted: list[str] = field(default_factory=list)  # share ARNs alerted on in this run
    already_alerted: int = 0  # shares carrying disallowed types already alerted on
    invalid_records: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "resources": self.resources,
            "shares": self.shares,
            "alerted": len(self.alerted),
            "already_alerted": self.already_alerted,
            "invalid_records": self.invalid_records,
            "problems": self.problems[:50],
        }


def audit_shares(
    *,
    ram: SharedResourceGateway,
    audits: AuditRepository,
    policy_source: PolicySource,
    now: datetime,
    history_retention: timedelta,
    on_invalid: Any,
) -> AuditOutcome:
    """Alert on accepted shares that now carry resource types the policy does not allow from their owner."""
    outcome = AuditOutcome()
    try:
        policy = policy_source.load()
    except PolicyInvalidError as exc:  # the acceptor announces an invalid policy; nothing can be judged against it
        outcome.status = "policy-invalid"
        outcome.problems.append(str(exc))
        return outcome
    by_share = _by_share(ram.list_shared_resources(), outcome, on_invalid)
    outcome.shares = len(by_share)
    findings = [f for f in (_finding(arn, rs, policy, now) for arn, rs in by_share.items()) if f is not None]
    known = audits.alerted_types([f.share_arn for f in findings]) if findings else {}
    expires_at = int((now + history_retention).timestamp())
    for finding in findings:
        before = known.get(finding.share_arn, [])
        new = [t for t in finding.disallowed_types if t.lower() not in {k.lower() for k in before}]
        if not new:
            outcome.already_alerted += 1
            continue
        finding = finding.model_copy(update={"new_types": new})
        if audits.record_audit_alert(finding, known=before, history_expires_at=expires_at):
            outcome.alerted.append(finding.share_arn)
    return outcome


def _by_share(raw: Sequence[Any], outcome: AuditOutcome, on_invalid: Any) -> dict[str, list[SharedResource]]:
    shares: dict[str, list[SharedResource]] = defaultdict(list)
    for record in raw:
        try:
            resource = SharedResource.model_validate(record)
        except ValidationError as exc:
            outcome.invalid_records += 1
            ref = record.get("arn") if isinstance(record, dict) else None
            on_invalid(f"ListResources returned an invalid record: {exc.error_count()} error(s)", ref)
            continue
        outcome.resources += 1
        shares[resource.share_arn].append(resource)
    return dict(shares)


def _finding(
    share_arn: str, resources: Sequence[SharedResource], policy: TrustPolicy, now: datetime
) -> AuditFinding | None:
    owner = resources[0].owner_account_id
    bad = disallowed_types(owner, [r.type for r in resources], policy)
    if not bad:
        return None
    lowered = {t.lower() for t in bad}
    return AuditFinding(
        share_arn=share_arn,
        owner_account_id=owner,
        new_types=bad,
        disallowed_types=bad,
        resources=[Resource(arn=r.arn, type=r.type) for r in resources if r.type.lower() in lowered][
            :AUDIT_SAMPLE_RESOURCES
        ],
        trusted_owner=policy.owner(owner) is not None,
        at=now,
    )
