"""The owner's share inventory: grants built from the RAM API, and what changed since the last look. Pure logic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pipeshare.adapters.ports import GrantRepository, OwnerShareGateway
from pipeshare.models.owner import Grant, GrantChange, strongest
from pipeshare.models.owner_outcomes import InventoryOutcome

PIPELINE_TYPE = "sagemaker:pipeline"


def build_grants(
    share: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]],
    principals: Sequence[Mapping[str, Any]],
    permissions: Sequence[Mapping[str, Any]],
) -> list[Grant]:
    """Grants of one share: every pipeline it holds x every principal associated with it."""
    pipelines = sorted({r["arn"] for r in resources if str(r.get("type", "")).lower() == PIPELINE_TYPE})
    permission = next((p for p in permissions if str(p.get("resourceType", "")).lower() == PIPELINE_TYPE), None) or (
        permissions[0] if permissions else None
    )
    return [
        Grant(
            pipeline_arn=pipeline,
            consumer=str(principal["associatedEntity"]),
            share_arn=str(share["resourceShareArn"]),
            share_name=str(share.get("name", "")),
            association_status=str(principal.get("status", "UNKNOWN")),
            permission_arn=permission.get("arn") if permission else None,
            permission_name=permission.get("name") if permission else None,
            external=principal.get("external"),
        )
        for pipeline in pipelines
        for principal in principals
    ]


_LEAVING = ("DISASSOCIATED", "DISASSOCIATING", "FAILED")  # association statuses of a grant on its way out


def _kind(before: Grant | None, after: Grant | None) -> str:
    if after is None or (after.association_status in _LEAVING and before):
        return "revoked"
    if before is None:
        return "accepted" if after.active else "invited"
    if after.active and not before.active:
        return "accepted"
    if after.active and after.allow_execution and not before.allow_execution:
        return "gained-allow-execution"
    if after.active and before.allow_execution and not after.allow_execution:
        return "lost-allow-execution"
    return "updated"


def _was_read_only(grant: Grant) -> bool:
    """The grant has been read-only (held without allow-execution) at some time, up to and including now."""
    return grant.read_only_before or (grant.active and not grant.allow_execution)


def holdings(grants: Iterable[Grant]) -> dict[str, Grant]:
    """Each consumer's hold on each pipeline (`Grant.holding_key`): its strongest active grant, through any share
    (allow-execution wins). A consumer holding a pipeline through no ASSOCIATED share has no entry."""
    by_holder: dict[str, list[Grant]] = {}
    for grant in grants:
        if grant.active:
            by_holder.setdefault(grant.holding_key, []).append(grant)
    return {key: held for key, group in by_holder.items() if (held := strongest(group)) is not None}


def diff(stored: Mapping[str, Grant], current: Iterable[Grant], *, at: datetime) -> list[GrantChange]:
    """Changes that turn the stored inventory into the current one (a grant gone from RAM is revoked).

    Grants are keyed pipeline x consumer x share (`Grant.key`): a consumer holding a pipeline through two shares has
    two grants, each created, changed and revoked on its own. Each change carries the consumer's hold on the pipeline
    after it (`holding`, through any share), so revoking one share does not read as losing the pipeline."""
    now = {g.key: g for g in current}
    held = holdings(now.values())
    changes: list[GrantChange] = []
    for key in sorted(set(stored) | set(now)):
        before, after = stored.get(key), now.get(key)
        if before is not None and after is not None and before.fingerprint == after.fingerprint:
            continue
        if before is None and after is not None and after.association_status in _LEAVING:
            continue  # never held, or already recorded as revoked (and deleted): nothing to record
        grant = after or before
        assert grant is not None  # noqa: S101 - the key came from one side
        if after is not None and before is not None:
            after = after.model_copy(update={"read_only_before": _was_read_only(before)})
        changes.append(
            GrantChange(
                kind=_kind(before, after),  # type: ignore[arg-type]
                before=before,
                after=after,
                at=at,
                holding=held.get(grant.holding_key),
            )
        )
    return changes


def reconcile_inventory(
    *, ram: OwnerShareGateway, grants: GrantRepository, now: datetime, history_retention: timedelta
) -> InventoryOutcome:
    """Read the owner's shares holding pipelines from RAM, compare with the inventory, record each change once."""
    shares = 0
    current: list[Grant] = []
    for share in ram.owned_shares():
        arn = str(share["resourceShareArn"])
        pipelines = ram.share_pipelines(arn)
        if not pipelines:
            continue
        shares += 1
        current += build_grants(share, pipelines, ram.share_principals(arn), ram.share_permissions(arn))
    expires = int((now + history_retention).timestamp())
    changes = [
        f"{change.kind}: {change.grant.consumer} on {change.grant.pipeline_arn} through {change.grant.share_arn}"
        for change in diff(grants.grants(), current, at=now)
        if grants.apply(change, history_expires_at=expires)
    ]
    return InventoryOutcome(
        shares=shares,
        grants=len(current),
        cost_bearing=sum(1 for g in current if g.cost_bearing),
        cost_bearing_holdings=sum(1 for g in holdings(current).values() if g.cost_bearing),
        changes=list(changes),
    )
