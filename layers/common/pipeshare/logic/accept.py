"""Accept, hold or reject pending RAM invitations, and record every decision. Pure logic: ports are arguments."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from pipeshare.adapters.ports import InvitationGateway, PolicySource, ShareRepository
from pipeshare.logic.policy import decide, decide_sender
from pipeshare.models.consumer_outcomes import InvitationOutcome, SweepOutcome
from pipeshare.models.domain import (
    DIGEST_SAMPLE_SHARES,
    DIGEST_TOP_SENDERS,
    Action,
    Decision,
    HeldDigest,
    HeldReminder,
    Invitation,
    PendingResource,
    RamInvitationStatus,
    RecordedState,
    ReminderDigest,
    Resource,
    ShareRecord,
    ShareStatus,
    TrustPolicy,
)
from pipeshare.models.errors import (
    AccessDeniedError,
    InvitationAlreadyAcceptedError,
    InvitationAlreadyRejectedError,
    InvitationExpiredError,
    InvitationNotFoundError,
    PipeshareError,
    PolicyInvalidError,
    TransientError,
)

_TOKEN_NAMESPACE = uuid.UUID("5f0c8a52-8a53-4f5e-9d38-6b2f1f3f0e61")
POLICY_REMINDER = timedelta(hours=24)
RECHECK_INTERVAL = timedelta(hours=1)  # a held invitation is re-read at least this often, and at every policy change
# RAM's window for accepting a sagemaker:Pipeline invitation (docs/aws-facts.md §2.3); RAM returns no expiry time, so
# the end of the window is reckoned from invitationTimestamp (the template's InvitationWindowHours)
INVITATION_WINDOW = timedelta(hours=12)


def client_token(invitation_arn: str, action: Action) -> str:
    """Deterministic RAM clientToken: a retried accept is the same request."""
    return str(uuid.uuid5(_TOKEN_NAMESPACE, f"{action.value}:{invitation_arn}"))


@dataclass
class _Context:
    ram: InvitationGateway
    shares: ShareRepository
    now: datetime
    history_expires_at: int
    policy: TrustPolicy | None
    policy_marker: str  # fingerprint of the policy in force ("invalid:<fp>" when failing closed)
    policy_source: str | None
    on_invalid: Any  # callable(reason, event_id) -> None
    recorded: dict[str, RecordedState] = field(default_factory=dict)
    digest: HeldDigest | None = None
    digested: set[str] = field(default_factory=set)  # invitation ARNs whose hold the digest announces
    invitations: list[InvitationOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # invalid_records, digested, left_to_sweep, reminded, *failures
    counts: Counter[str] = field(default_factory=Counter)

    def outcome(self, mode: str) -> SweepOutcome:
        """What the sweep did, so far."""
        return SweepOutcome(
            mode=mode,
            policy_source=self.policy_source,
            policy_valid=self.policy is not None,
            invitations=list(self.invitations),
            invalid_records=self.counts["invalid_records"],
            digested=self.counts["digested"],
            left_to_sweep=self.counts["left_to_sweep"],
            reminded=self.counts["reminded"],
            problems=list(self.problems),
            transient_failures=self.counts["transient_failures"],
            failures=self.counts["failures"],
        )


def process_invitations(
    invitation_arns: Sequence[str] | None,
    *,
    ram: InvitationGateway,
    shares: ShareRepository,
    policy_source: PolicySource,
    now: datetime,
    history_retention: timedelta,
    on_invalid: Any,
    held_digest_threshold: int = 5,
    reminder_before: timedelta = timedelta(0),
    invitation_window: timedelta = INVITATION_WINDOW,
) -> SweepOutcome:
    """Decide every PENDING invitation named (or all, when invitation_arns is None) and record what is seen.

    One bad invitation never stops the others: its problem is recorded in the outcome and the loop goes on.
    The sender is judged before any resource is read: an untrusted sender's invitation costs no RAM call beyond the
    listing (bar the reject, under a reject policy). An event-triggered run leaves such invitations to the sweep;
    the sweep announces the first `held_digest_threshold` new untrusted-sender holds one by one and the rest in one
    digest, and does not look at a held one again until the policy changes.
    A sweep also records one reminder (at most once per invitation) for each invitation recorded HELD that RAM's
    listing still shows PENDING and whose window (`invitation_window` from its invitationTimestamp) ends within
    `reminder_before` (0: no reminders); beyond `held_digest_threshold` of them, the rest go out in one digest.
    """
    sweep = not invitation_arns
    mode = "sweep" if sweep else "targeted"
    problems: list[str] = []
    policy, marker, source = _load_policy(
        policy_source, shares=shares, now=now, history_retention=history_retention, problems=problems
    )
    ctx = _Context(
        ram=ram,
        shares=shares,
        now=now,
        history_expires_at=int((now + history_retention).timestamp()),
        policy=policy,
        policy_marker=marker,
        policy_source=source,
        on_invalid=on_invalid,
        problems=problems,
    )
    try:
        raw_invitations = ram.get_invitations(list(invitation_arns) if invitation_arns else None)
    except InvitationNotFoundError as exc:
        ctx.problems.append(f"invitation not found: {exc}")
        return ctx.outcome(mode)
    invitations = _valid_invitations(raw_invitations, ctx)
    # what is recorded already (batched reads): a sweep reads every invitation's record; an event-triggered run only
    # those RAM shows answered, so the accept path stays at four calls
    to_read = [i.arn for i in invitations if sweep or i.status != RamInvitationStatus.PENDING]
    ctx.recorded = shares.recorded_states(to_read) if to_read else {}
    todo = _unsettled(invitations, ctx, sweep=sweep)
    if sweep:
        _plan_digest(todo, ctx, held_digest_threshold)
    for invitation in todo:
        _process_one(invitation, ctx)
    if sweep and reminder_before > timedelta(0):
        _remind(invitations, ctx, before=reminder_before, window=invitation_window, threshold=held_digest_threshold)
    return ctx.outcome(mode)


def _valid_invitations(raw_invitations: Iterable[Any], ctx: _Context) -> list[Invitation]:
    """The invitations RAM returned that validate; each invalid record is counted and reported (`on_invalid`)."""
    invitations: list[Invitation] = []
    for raw in raw_invitations:
        try:
            invitations.append(Invitation.model_validate(raw))
        except ValidationError as exc:
            ctx.counts["invalid_records"] += 1
            arn = raw.get("resourceShareInvitationArn") if isinstance(raw, dict) else None
            ctx.on_invalid(f"GetResourceShareInvitations returned an invalid record: {_brief(exc)}", arn)
    return invitations


def _unsettled(invitations: Iterable[Invitation], ctx: _Context, *, sweep: bool) -> list[Invitation]:
    """The invitations left to decide; each settled one goes into the outcome, unchanged (or left to the sweep)."""
    todo: list[Invitation] = []
    for invitation in invitations:
        reason = _settled(invitation, ctx, sweep=sweep)
        if reason is None:
            todo.append(invitation)
            continue
        state = ctx.recorded.get(invitation.arn)
        status = state.status.value if state else ShareStatus.PENDING.value
        rule = "unchanged"
        if state is None:
            rule = "left-to-sweep"
            ctx.counts["left_to_sweep"] += 1
        ctx.invitations.append(
            InvitationOutcome(invitation_arn=invitation.arn, status=status, rule=rule, reason=reason, changed=False)
        )
    return todo


def _new_untrusted_hold(invitation: Invitation, ctx: _Context) -> bool:
    """Whether deciding this invitation records a new hold on its sender alone (the notices a flood multiplies)."""
    if ctx.policy is None or invitation.status != RamInvitationStatus.PENDING:
        return False
    decision = decide_sender(invitation, ctx.policy)
    state = ctx.recorded.get(invitation.arn)
    return (
        decision is not None
        and decision.status == ShareStatus.HELD
        and (state is None or state.status.rank < ShareStatus.HELD.rank)
    )


def _plan_digest(todo: Sequence[Invitation], ctx: _Context, threshold: int) -> None:
    """Beyond `threshold` new untrusted-sender holds, write ONE digest (before the holds: a crash in between
    announces some twice on the retry, never none) and mark the rest to be announced by it."""
    beyond = [i for i in todo if _new_untrusted_hold(i, ctx)][threshold:]
    if not beyond:
        return
    senders = Counter(i.sender_account_id for i in beyond)
    top = dict(sorted(senders.items(), key=lambda kv: (-kv[1], kv[0]))[:DIGEST_TOP_SENDERS])
    digest = HeldDigest(
        at=ctx.now,
        count=len(beyond),
        senders=top,
        other_senders=len(senders) - len(top),
        share_names=[i.share_name for i in beyond[:DIGEST_SAMPLE_SHARES]],
        threshold=threshold,
        policy_source=ctx.policy.source if ctx.policy else None,
    )
    ctx.shares.record_digest(digest, history_expires_at=ctx.history_expires_at)
    ctx.digest = digest
    ctx.digested = {i.arn for i in beyond}
    ctx.counts["digested"] = len(beyond)


def _settled(invitation: Invitation, ctx: _Context, *, sweep: bool) -> str | None:
    """Why nothing needs doing for this invitation now, or None when it must be (re)evaluated."""
    state = ctx.recorded.get(invitation.arn)
    if (
        not sweep
        and state is None
        and invitation.status == RamInvitationStatus.PENDING
        and ctx.policy is not None
        and decide_sender(invitation, ctx.policy) is not None
    ):
        return "untrusted sender: left to the sweep, which announces floods in one digest"
    if state is None:
        return None
    if state.status.terminal:
        return "already recorded as answered"
    if _untrusted_unchanged(invitation, state, ctx):
        return "untrusted sender, decided under the same policy"
    fresh = state.last_seen_at is not None and ctx.now - state.last_seen_at < RECHECK_INTERVAL
    if (
        sweep
        and invitation.status == RamInvitationStatus.PENDING
        and state.policy_fingerprint == ctx.policy_marker
        and fresh
    ):
        return "evaluated recently under the same policy"
    return None


def _untrusted_unchanged(invitation: Invitation, state: RecordedState, ctx: _Context) -> bool:
    """A held invitation whose sender is untrusted under the policy it was last decided under: the decision rests on
    the sender and the policy alone, so it cannot have changed (RAM's own status comes with the listing)."""
    return (
        invitation.status == RamInvitationStatus.PENDING
        and state.status == ShareStatus.HELD
        and state.policy_fingerprint == ctx.policy_marker
        and ctx.policy is not None
        and ctx.policy.owner(invitation.sender_account_id) is None
    )


def _brief(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])


def _load_policy(
    source: PolicySource, *, shares: ShareRepository, now: datetime, history_retention: timedelta, problems: list[str]
) -> tuple[TrustPolicy | None, str, str]:
    """(the policy, or None when it is invalid; the fingerprint marking decisions made under it; its source)."""
    try:
        policy = source.load()
    except PolicyInvalidError as exc:
        problems.append(str(exc))
        shares.record_policy_invalid(
            source=exc.source,
            fingerprint=exc.fingerprint,
            errors=exc.errors,
            at=now,
            remind_after=now - POLICY_REMINDER,
            history_expires_at=int((now + history_retention).timestamp()),
        )
        return None, f"invalid:{exc.fingerprint}", exc.source
    return policy, policy.fingerprint, policy.source


def _process_one(invitation: Invitation, ctx: _Context) -> None:
    try:
        if invitation.status != RamInvitationStatus.PENDING:
            _observe(invitation, ctx)
        elif ctx.policy is None:
            _record(
                invitation,
                None,
                Decision(
                    action="wait",
                    status=ShareStatus.PENDING,
                    rule="policy-invalid",
                    reason="the trust policy is invalid: nothing is accepted until it is fixed",
                ),
                ctx,
            )
        else:
            _decide_pending(invitation, ctx.policy, ctx)
    except InvitationNotFoundError as exc:  # withdrawn or deleted meanwhile: nothing left to decide
        ctx.problems.append(f"{invitation.arn}: gone: {exc}")
    except TransientError as exc:
        ctx.counts["transient_failures"] += 1
        ctx.problems.append(f"{invitation.arn}: transient: {exc}")
    except PipeshareError as exc:  # unexpected API errors, IAM denials outside the accept guard, ...
        ctx.counts["failures"] += 1
        ctx.problems.append(f"{invitation.arn}: {type(exc).__name__}: {exc}")


_OBSERVED = {
    RamInvitationStatus.ACCEPTED: (ShareStatus.ACCEPTED, "answered-elsewhere", "RAM shows the invitation as accepted"),
    RamInvitationStatus.REJECTED: (ShareStatus.REJECTED, "answered-elsewhere", "RAM shows the invitation as rejected"),
    RamInvitationStatus.EXPIRED: (ShareStatus.EXPIRED, "expired", "the invitation expired before it was accepted"),
}


def _observe(invitation: Invitation, ctx: _Context) -> None:
    status, rule, reason = _OBSERVED[invitation.status]
    _record(invitation, None, Decision(action="observe", status=status, rule=rule, reason=reason), ctx)


def _decide_pending(invitation: Invitation, policy: TrustPolicy, ctx: _Context) -> None:
    by_sender = decide_sender(invitation, policy)
    if by_sender is not None:  # the sender settles it: the resources are not read
        if by_sender.action == Action.REJECT:
            by_sender = _answer(invitation, by_sender, ctx)
        _record(invitation, None, by_sender, ctx)
        return
    try:
        raw_resources = ctx.ram.list_pending_resources(invitation.arn)
    except (InvitationExpiredError, InvitationAlreadyRejectedError, InvitationAlreadyAcceptedError) as exc:
        _record(invitation, None, _answered(exc), ctx)
        return
    try:
        resources = [PendingResource.model_validate(r) for r in raw_resources]
    except ValidationError as exc:
        ctx.counts["invalid_records"] += 1
        ctx.on_invalid(f"ListPendingInvitationResources returned an invalid record: {_brief(exc)}", invitation.arn)
        decision = Decision(
            action=Action.HOLD,
            status=ShareStatus.HELD,
            rule="invalid-resource-data",
            reason="RAM returned resource data that failed validation; nothing was accepted",
        )
        _record(invitation, None, decision, ctx)
        return
    decision = decide(invitation, resources, policy)
    if decision.action in (Action.ACCEPT, Action.REJECT):
        decision = _answer(invitation, decision, ctx)
    _record(invitation, resources, decision, ctx)


def _answer(invitation: Invitation, decision: Decision, ctx: _Context) -> Decision:
    action = Action(decision.action)
    try:
        if action == Action.ACCEPT:
            ctx.ram.accept(invitation.arn, client_token(invitation.arn, action))
        else:
            ctx.ram.reject(invitation.arn, client_token(invitation.arn, action))
    except InvitationAlreadyAcceptedError as exc:
        return decision if action == Action.ACCEPT else _answered(exc)
    except (InvitationExpiredError, InvitationAlreadyRejectedError) as exc:
        if action == Action.REJECT and isinstance(exc, InvitationAlreadyRejectedError):
            return decision
        return _answered(exc)
    except AccessDeniedError as exc:
        return Decision(
            action=Action.HOLD,
            status=ShareStatus.HELD,
            rule="iam-guardrail",
            reason=f"the policy allows it but IAM denied the {action.value} "
            f"(owner not in the deploy-time TrustedOwnerAccountIds): {exc}",
        )
    return decision


def _answered(exc: Exception) -> Decision:
    if isinstance(exc, InvitationExpiredError):
        return Decision(
            action="observe",
            status=ShareStatus.EXPIRED,
            rule="expired",
            reason="the invitation expired before it was accepted",
        )
    if isinstance(exc, InvitationAlreadyRejectedError):
        return Decision(
            action="observe",
            status=ShareStatus.REJECTED,
            rule="answered-elsewhere",
            reason="RAM says the invitation was already rejected",
        )
    return Decision(
        action="observe",
        status=ShareStatus.ACCEPTED,
        rule="answered-elsewhere",
        reason="RAM says the invitation was already accepted",
    )


def _record(
    invitation: Invitation, resources: Sequence[PendingResource] | None, decision: Decision, ctx: _Context
) -> None:
    record = ShareRecord(
        invitation_arn=invitation.arn,
        share_arn=invitation.share_arn,
        share_name=invitation.share_name,
        sender_account_id=invitation.sender_account_id,
        receiver_account_id=invitation.receiver_account_id,
        region=invitation.region,
        resources=[Resource(arn=r.arn, type=r.type) for r in resources or []],
        status=decision.status,
        decision=str(decision.action),
        rule=decision.rule,
        reason=decision.reason,
        invited_at=invitation.invited_at,
        first_seen_at=ctx.now,
        decided_at=ctx.now,
        last_seen_at=ctx.now,
        policy_source=ctx.policy.source if ctx.policy else None,
        policy_fingerprint=ctx.policy_marker,
    )
    if invitation.arn in ctx.digested and decision.status == ShareStatus.HELD and ctx.digest is not None:
        record = record.model_copy(update={"notice": "digest", "digest": ctx.digest.key})
    known = ctx.recorded.get(invitation.arn)
    if known is not None and known.status == decision.status:
        changed = False  # no transition to attempt (it would fail its condition): refresh the record only
    else:
        changed = ctx.shares.record_transition(record, history_expires_at=ctx.history_expires_at)
    if not changed and not decision.status.terminal:
        ctx.shares.touch(
            invitation.arn,
            seen_at=ctx.now,
            reason=decision.reason,
            rule=decision.rule,
            policy_fingerprint=ctx.policy_marker,
        )
    ctx.invitations.append(
        InvitationOutcome(
            invitation_arn=invitation.arn,
            status=decision.status.value,
            rule=decision.rule,
            reason=decision.reason,
            changed=changed,
        )
    )


def _remind(
    invitations: Sequence[Invitation], ctx: _Context, *, before: timedelta, window: timedelta, threshold: int
) -> None:
    """Record one reminder for each held invitation close to the end of its window (counted as `reminded`).

    The facts come from this sweep's RAM listing (status PENDING, invitationTimestamp) and the records it read (or
    wrote): no call per invitation beyond the conditional write, which records each reminder once only."""
    status = {arn: state.status for arn, state in ctx.recorded.items()}
    status.update({o.invitation_arn: ShareStatus(o.status) for o in ctx.invitations})
    due: list[HeldReminder] = []
    for invitation in invitations:
        state = ctx.recorded.get(invitation.arn)
        accept_by = invitation.invited_at + window
        if (
            invitation.status == RamInvitationStatus.PENDING
            and status.get(invitation.arn) == ShareStatus.HELD
            and (state is None or state.reminded_at is None)
            and accept_by - before <= ctx.now < accept_by
        ):
            due.append(
                HeldReminder(
                    invitation_arn=invitation.arn,
                    share_arn=invitation.share_arn,
                    share_name=invitation.share_name,
                    sender_account_id=invitation.sender_account_id,
                    receiver_account_id=invitation.receiver_account_id,
                    region=invitation.region,
                    invited_at=invitation.invited_at,
                    accept_by=accept_by,
                    at=ctx.now,
                )
            )
    beyond = due[threshold:]
    if beyond:  # the digest first: a crash in between announces some twice on the retry, never none
        senders = Counter(r.sender_account_id for r in beyond)
        top = dict(sorted(senders.items(), key=lambda kv: (-kv[1], kv[0]))[:DIGEST_TOP_SENDERS])
        digest = ReminderDigest(
            at=ctx.now,
            count=len(beyond),
            senders=top,
            other_senders=len(senders) - len(top),
            share_names=[r.share_name for r in beyond[:DIGEST_SAMPLE_SHARES]],
            threshold=threshold,
            accept_by=min(r.accept_by for r in beyond),
        )
        ctx.shares.record_reminder_digest(digest, history_expires_at=ctx.history_expires_at)
        due[threshold:] = [r.model_copy(update={"notice": "digest", "digest": digest.key}) for r in beyond]
    for reminder in due:
        try:
            ctx.counts["reminded"] += ctx.shares.record_reminder(reminder, history_expires_at=ctx.history_expires_at)
        except TransientError as exc:
            ctx.counts["transient_failures"] += 1
            ctx.problems.append(f"{reminder.invitation_arn}: reminder: transient: {exc}")
        except PipeshareError as exc:
            ctx.counts["failures"] += 1
            ctx.problems.append(f"{reminder.invitation_arn}: reminder: {type(exc).__name__}: {exc}")
