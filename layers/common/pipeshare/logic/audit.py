"""The daily audit of accepted shares: accepting a share accepts whatever its owner associates with it later.

Lists what the shares other accounts share with this one carry now, and alerts once per share when a resource type
outside what the trust policy allows from its owner appears (again when a new disallowed type appears). Pure logic:
ports are arguments.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from pipeshare.adapters.ports import AuditRepository, PolicySource, SharedResourceGateway
from pipeshare.logic.policy import disallowed_types
from pipeshare.models.consumer_outcomes import AuditOutcome
from pipeshare.models.domain import AUDIT_SAMPLE_RESOURCES, AuditFinding, Resource, SharedResource, TrustPolicy
from pipeshare.models.errors import PolicyInvalidError


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
    try:
        policy = policy_source.load()
    except PolicyInvalidError as exc:  # the acceptor announces an invalid policy; nothing can be judged against it
        return AuditOutcome(status="policy-invalid", problems=[str(exc)])
    by_share, invalid = _by_share(ram.list_shared_resources(), on_invalid)
    findings = [f for f in (_finding(arn, rs, policy, now) for arn, rs in by_share.items()) if f is not None]
    known = audits.alerted_types([f.share_arn for f in findings]) if findings else {}
    expires_at = int((now + history_retention).timestamp())
    alerted: list[str] = []
    already_alerted = 0
    for finding in findings:
        before = known.get(finding.share_arn, [])
        new = [t for t in finding.disallowed_types if t.lower() not in {k.lower() for k in before}]
        if not new:
            already_alerted += 1
            continue
        finding = finding.model_copy(update={"new_types": new})
        if audits.record_audit_alert(finding, known=before, history_expires_at=expires_at):
            alerted.append(finding.share_arn)
    return AuditOutcome(
        resources=sum(len(resources) for resources in by_share.values()),
        shares=len(by_share),
        alerted=list(alerted),
        already_alerted=already_alerted,
        invalid_records=invalid,
    )


def _by_share(raw: Sequence[Any], on_invalid: Any) -> tuple[dict[str, list[SharedResource]], int]:
    """The valid resources by share, and how many records were invalid."""
    shares: dict[str, list[SharedResource]] = defaultdict(list)
    invalid = 0
    for record in raw:
        try:
            resource = SharedResource.model_validate(record)
        except ValidationError as exc:
            invalid += 1
            ref = record.get("arn") if isinstance(record, dict) else None
            on_invalid(f"ListResources returned an invalid record: {exc.error_count()} error(s)", ref)
            continue
        shares[resource.share_arn].append(resource)
    return dict(shares), invalid


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
