"""Consumer commands: `invitations`, `approve`, `reject`, `policy check`. Reads and writes go through the product's
adapters (adapters/dynamodb_shares.py, adapters/ram_invitations.py) and decisions through its logic
(logic/policy.py), so a manual answer is recorded as the acceptor records its own: one STATE transition and one
history item (the outbox the notifier publishes from the table stream)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeshare.adapters.dynamodb_common import deserialize, item
from pipeshare.adapters.dynamodb_shares import DynamoDbShareRepository
from pipeshare.adapters.ram_invitations import RamInvitationGateway
from pipeshare.logic.accept import client_token
from pipeshare.logic.policy import decide, decide_sender, parse_policy, policy_from_parameters
from pipeshare.models.domain import (
    Action,
    Invitation,
    PendingResource,
    RamInvitationStatus,
    Resource,
    ShareRecord,
    ShareStatus,
    TrustPolicy,
)
from pipeshare.models.errors import (
    InvitationAlreadyAcceptedError,
    InvitationAlreadyRejectedError,
    InvitationExpiredError,
    InvitationNotFoundError,
    PolicyInvalidError,
)
from pipeshare_local.ops.output import Result, Section
from pipeshare_local.ops.target import EXIT_PROBLEMS, EXIT_REFUSED, CliError, Target, usage

SIDE = "consumer"
TABLE_OUTPUT = "ShareTableName"
MANUAL_APPROVAL = "manual-approval"
MANUAL_REJECTION = "manual-rejection"

_INVITATION_COLUMNS = [
    ("share_name", "Share"),
    ("sender_account_id", "Sender"),
    ("status", "Status"),
    ("rule", "Rule"),
    ("decided_at", "Decided"),
    ("resource_types", "Resources"),
    ("reason", "Reason"),
    ("invitation", "Invitation ID"),
]


def refused(message: str) -> CliError:
    return CliError(message, EXIT_REFUSED)


# ------------------------------------------------------------------------------------------------------ reading


def records(target: Target, status: str | None = None) -> list[ShareRecord]:
    """Every invitation on record (STATE items), or those in one status (the table's by_status index)."""
    table = target.output(TABLE_OUTPUT, SIDE)
    ddb = target.client("dynamodb")
    if status:
        pages = ddb.get_paginator("query").paginate(
            TableName=table,
            IndexName="by_status",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=item({":s": status}),
        )
    else:
        pages = ddb.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="item_type = :t AND sk = :state",
            ExpressionAttributeValues=item({":t": "invitation", ":state": "STATE"}),
        )
    found = []
    for page in pages:
        for raw in page.get("Items", []):
            data = deserialize(raw)
            if data.get("sk") != "STATE" or not str(data.get("pk", "")).startswith("INVITATION#"):
                continue
            data.setdefault("invitation_arn", str(data["pk"]).removeprefix("INVITATION#"))
            try:
                found.append(ShareRecord.model_validate(data))
            except ValidationError:
                continue  # not a complete record (never written by a transition): nothing to show
    return sorted(found, key=lambda r: (r.decided_at, r.invitation_arn))


def _row(record: ShareRecord) -> dict[str, Any]:
    return {
        "share_name": record.share_name,
        "sender_account_id": record.sender_account_id,
        "status": record.status.value,
        "rule": record.rule,
        "decided_at": record.decided_at,
        "resource_types": sorted({r.type for r in record.resources}),
        "reason": record.reason,
        "invitation": record.invitation_arn.rsplit("/", 1)[-1],
        "invitation_arn": record.invitation_arn,
    }


def invitations(target: Target, status: str | None) -> Result:
    if status and status not in ShareStatus.__members__:
        raise usage(f"--status must be one of {', '.join(ShareStatus)}")
    rows = [_row(r) for r in records(target, status)]
    title = f"Invitations on record{f' ({status})' if status else ''}"
    return Result([Section("invitations", title, _INVITATION_COLUMNS, rows)], code=0 if rows else EXIT_PROBLEMS)


# ------------------------------------------------------------------------------------------------ trust policy


def trust_policy(target: Target) -> TrustPolicy:
    """The trust policy in force: the SSM document the stack names (TrustPolicyParameterName), else its parameters.
    Raises PolicyInvalidError as the acceptor would (fail closed)."""
    parameters = target.parameters
    name = parameters.get("TrustPolicyParameterName", "")
    if name:
        source = f"ssm:{name}"
        ssm = target.client("ssm")
        try:
            raw = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            raise PolicyInvalidError(source, ["the parameter does not exist"], "") from None
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise PolicyInvalidError(source, [f"not valid JSON: {exc}"], "") from None
        return parse_policy(document, source=source)
    return policy_from_parameters(
        trusted_owner_ids=parameters.get("TrustedOwnerAccountIds", ""),
        allowed_resource_types=parameters.get("AllowedResourceTypes", ""),
        untrusted_action=parameters.get("UntrustedAction", "hold"),
        disallowed_resource_action=parameters.get("DisallowedResourceAction", "hold"),
    )


def allowed_types(policy: TrustPolicy, sender: str) -> list[str]:
    """The resource types a manual approval may accept from a sender: what the policy allows from it, or, for a
    sender the policy does not trust, what it allows from any owner (compared case-insensitively)."""
    owner = policy.owner(sender)
    owners = [owner] if owner else policy.owners
    return sorted({t for o in owners for t in o.allowed_resource_types})


# ------------------------------------------------------------------------------------------- approve and reject


def _pending(target: Target, invitation_arn: str, allowed: tuple[ShareStatus, ...]) -> tuple[ShareRecord, Invitation]:
    """The record (in one of the `allowed` statuses) and RAM's view of a pending invitation; refuses anything else."""
    invitation_arn = resolve_invitation(target, invitation_arn)
    shares = DynamoDbShareRepository(target.output(TABLE_OUTPUT, SIDE), target.client("dynamodb"))
    record = shares.get(invitation_arn)
    if record is None:
        raise CliError(f"{invitation_arn}: not on record in {target.label}", EXIT_PROBLEMS)
    if record.status not in allowed:
        raise refused(
            f"{record.share_name}: recorded as {record.status.value} (rule {record.rule}); only "
            f"{' or '.join(s.value for s in allowed)} can be answered by hand"
        )
    ram = RamInvitationGateway(target.client("ram"))
    try:
        listed = ram.get_invitations([invitation_arn])
    except InvitationNotFoundError:
        raise refused(f"{record.share_name}: RAM no longer has this invitation") from None
    if not listed:
        raise refused(f"{record.share_name}: RAM no longer has this invitation")
    invitation = Invitation.model_validate(listed[0])
    if invitation.status != RamInvitationStatus.PENDING:
        raise refused(f"{record.share_name}: RAM shows the invitation {invitation.status.value}: it cannot be answered")
    return record, invitation


def resolve_invitation(target: Target, invitation: str) -> str:
    """An invitation's ARN, given its ARN or its ID (the ARN's last part, as `invitations` lists it)."""
    if invitation.startswith("arn:"):
        return invitation
    matches = [r.invitation_arn for r in records(target) if r.invitation_arn.rsplit("/", 1)[-1] == invitation]
    if len(matches) != 1:
        raise CliError(f"{invitation}: no invitation on record with this ID", EXIT_PROBLEMS)
    return matches[0]


def _retention(target: Target) -> timedelta:
    return timedelta(days=int(target.parameters.get("HistoryRetentionDays") or 400))


def _record(target: Target, record: ShareRecord, **changes: Any) -> bool:
    shares = DynamoDbShareRepository(target.output(TABLE_OUTPUT, SIDE), target.client("dynamodb"))
    now = target.now()
    updated = record.model_copy(update={"decided_at": now, "last_seen_at": now, "notice": None, **changes})
    return shares.record_transition(updated, history_expires_at=int((now + _retention(target)).timestamp()))


def _answer_errors(action: str, share: str, exc: Exception) -> CliError:
    known: dict[type[Exception], str] = {
        InvitationExpiredError: "the invitation expired",
        InvitationAlreadyAcceptedError: "the invitation was already accepted",
        InvitationAlreadyRejectedError: "the invitation was already rejected",
        InvitationNotFoundError: "RAM no longer has this invitation",
    }
    what = known.get(type(exc), str(exc))
    return refused(f"{share}: RAM refused the {action}: {what}")


def approve(target: Target, invitation_arn: str, reason: str) -> Result:
    """Accept a held invitation by hand, within the trust policy's guardrails (resource types), and record it."""
    record, invitation = _pending(target, invitation_arn, (ShareStatus.HELD,))
    invitation_arn = record.invitation_arn
    try:
        policy = trust_policy(target)
    except PolicyInvalidError as exc:
        raise refused(f"the trust policy ({exc.source}) is invalid: nothing is accepted until it is fixed") from None
    ram = RamInvitationGateway(target.client("ram"))
    try:
        resources = [PendingResource.model_validate(r) for r in ram.list_pending_resources(invitation_arn)]
    except (InvitationExpiredError, InvitationAlreadyAcceptedError, InvitationAlreadyRejectedError) as exc:
        raise _answer_errors("listing of its resources", record.share_name, exc) from None
    if not resources:
        raise refused(f"{record.share_name}: the invitation lists no resources, so its content cannot be checked")
    allowed = allowed_types(policy, invitation.sender_account_id)
    disallowed = sorted({r.type for r in resources if r.type.lower() not in {t.lower() for t in allowed}})
    if disallowed:
        raise refused(
            f"{record.share_name}: resource type(s) {', '.join(disallowed)} not allowed by the trust policy "
            f"({policy.source}; allowed: {', '.join(sorted(allowed)) or 'none'})"
        )
    caller = target.client("sts").get_caller_identity()["Arn"]
    try:
        ram.accept(invitation_arn, client_token(invitation_arn, Action.ACCEPT))
    except (InvitationExpiredError, InvitationAlreadyRejectedError, InvitationNotFoundError) as exc:
        raise _answer_errors("accept", record.share_name, exc) from None
    except InvitationAlreadyAcceptedError:
        pass  # a retried approval: RAM has it accepted, the record follows
    changed = _record(
        target,
        record,
        status=ShareStatus.ACCEPTED,
        decision=Action.ACCEPT.value,
        rule=MANUAL_APPROVAL,
        reason=f"approved by {caller}: {reason}",
        resources=[Resource(arn=r.arn, type=r.type) for r in resources],
        policy_source=policy.source,
        policy_fingerprint=policy.fingerprint,
    )
    return _answered(record, "ACCEPTED", MANUAL_APPROVAL, caller, reason, changed)


def reject(target: Target, invitation_arn: str, reason: str) -> Result:
    """Reject a pending or held invitation by hand, and record it."""
    record, _ = _pending(target, invitation_arn, (ShareStatus.PENDING, ShareStatus.HELD))
    invitation_arn = record.invitation_arn
    caller = target.client("sts").get_caller_identity()["Arn"]
    ram = RamInvitationGateway(target.client("ram"))
    try:
        ram.reject(invitation_arn, client_token(invitation_arn, Action.REJECT))
    except (InvitationExpiredError, InvitationAlreadyAcceptedError, InvitationNotFoundError) as exc:
        raise _answer_errors("reject", record.share_name, exc) from None
    except InvitationAlreadyRejectedError:
        pass
    changed = _record(
        target,
        record,
        status=ShareStatus.REJECTED,
        decision=Action.REJECT.value,
        rule=MANUAL_REJECTION,
        reason=f"rejected by {caller}: {reason}",
    )
    return _answered(record, "REJECTED", MANUAL_REJECTION, caller, reason, changed)


def _answered(record: ShareRecord, status: str, rule: str, caller: str, reason: str, changed: bool) -> Result:
    row = {
        "share_name": record.share_name,
        "previous": record.status.value,
        "status": status,
        "rule": rule,
        "by": caller,
        "reason": reason,
        "recorded": changed,
        "invitation": record.invitation_arn.rsplit("/", 1)[-1],
        "invitation_arn": record.invitation_arn,
    }
    notes = [] if changed else ["the record had moved on meanwhile: RAM was answered, no transition was recorded"]
    notes.append(f"{record.share_name}: {record.status.value} -> {status} ({rule}) by {caller}: {reason}")
    columns = [(k, k.replace("_", " ").capitalize()) for k in row if k not in ("invitation_arn", "by", "reason")]
    return Result([Section("answer", f"{record.share_name}: {status}", columns, [row])], notes)


# ----------------------------------------------------------------------------------------------- policy check


def load_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise usage(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise usage(f"{path}: not valid JSON: {exc}") from None


def policy_check(target: Target, path: str) -> Result:
    """Validate a trust policy document, then show what it would decide for every invitation on record."""
    try:
        policy = parse_policy(load_json(path), source=f"file:{path}")
    except PolicyInvalidError as exc:
        rows = [{"problem": e} for e in exc.errors]
        section = Section("problems", f"{path}: invalid trust policy (fail closed)", [("problem", "Problem")], rows)
        return Result([section], code=EXIT_PROBLEMS, facts={"valid": False})
    rows = [_dry_run(record, policy) for record in records(target)]
    columns = [
        ("share_name", "Share"),
        ("sender_account_id", "Sender"),
        ("status", "Now"),
        ("rule", "Rule now"),
        ("would", "Would be"),
        ("would_rule", "Rule"),
        ("changes", "Changes"),
        ("would_reason", "Why"),
    ]
    changes = sum(1 for r in rows if r["changes"])
    notes = [f"{changes} of {len(rows)} invitation(s) on record would be decided differently (dry run: nothing done)"]
    section = Section("decisions", f"{path}: what it would decide", columns, rows)
    return Result([section], notes, facts={"valid": True, "fingerprint": policy.fingerprint})


def _dry_run(record: ShareRecord, policy: TrustPolicy) -> dict[str, Any]:
    row = {
        "share_name": record.share_name,
        "sender_account_id": record.sender_account_id,
        "status": record.status.value,
        "rule": record.rule,
        "invitation_arn": record.invitation_arn,
    }
    if record.status.terminal:
        return row | {
            "would": record.status.value,
            "would_rule": record.rule,
            "changes": False,
            "would_reason": "answered already: a policy no longer applies to it",
        }
    invitation = Invitation(
        arn=record.invitation_arn,
        share_name=record.share_name,
        share_arn=record.share_arn,
        sender_account_id=record.sender_account_id,
        receiver_account_id=record.receiver_account_id,
        invited_at=record.invited_at or record.first_seen_at,
        status=RamInvitationStatus.PENDING,
    )
    decision = decide_sender(invitation, policy)
    if decision is None and not record.resources:
        return row | {
            "would": "(reads the resources)",
            "would_rule": "",
            "changes": True,
            "would_reason": "trusted sender: the acceptor lists the invitation's resources, then decides",
        }
    if decision is None:
        resources = [PendingResource(arn=r.arn, type=r.type) for r in record.resources]
        decision = decide(invitation, resources, policy)
    changes = decision.status != record.status or decision.rule != record.rule
    return row | {
        "would": decision.status.value,
        "would_rule": decision.rule,
        "changes": changes,
        "would_reason": decision.reason,
    }
