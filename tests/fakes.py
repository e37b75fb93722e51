"""In-memory implementations of the ports in `pipeshare.adapters.ports`, for unit tests.

- FakeInvitationGateway behaves like RAM as the receiving account sees it (raw camelCase records, the errors RAM
  raises for answered / expired / unknown invitations, clientToken replay), lets a test script errors per operation
  and per invitation, and records every call.
- FakeShareRepository follows the transition rules of `DynamoDbShareRepository`: forward-only transitions
  (`ShareStatus.predecessors()`), one history item per successful transition, `touch` only on existing records,
  `record_policy_invalid` true only for a new fingerprint or after the reminder cut-off.
- FakePolicySource and FakeNotifier are the trivial ports.

Every Fake* class declares the ports it implements with `@implements(ports.X, ...)`; tests/unit/test_layering.py
checks each against them (every method, with its parameter names, kinds, defaults and annotations).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from pipeshare.adapters import ports
from pipeshare.models.budgets import BudgetPolicy, ConsumerSpend, LineSpend, MonthSpend, RunView
from pipeshare.models.consumer_notices import EnforcementNotice
from pipeshare.models.costs import CostState
from pipeshare.models.domain import (
    AuditFinding,
    HeldDigest,
    HeldReminder,
    RecordedState,
    ReminderDigest,
    ShareRecord,
    ShareStatus,
    TrustPolicy,
)
from pipeshare.models.errors import (
    ExecutionNotFoundError,
    InvitationAlreadyAcceptedError,
    InvitationAlreadyRejectedError,
    InvitationExpiredError,
    InvitationNotFoundError,
    PipeshareError,
)
from pipeshare.models.estimates import PriceTable
from pipeshare.models.executions import AlertKey, ExecutionRecord
from pipeshare.models.messages import OwnerAlert
from pipeshare.models.owner import (
    ALLOW_EXECUTION,
    READ_ONLY,
    CountedJob,
    Finalisation,
    Grant,
    GrantChange,
    PendingFinish,
    SpendHolder,
)
from pipeshare.models.projections import FinishedRun
from pipeshare.models.settle import SettleRequest

T = TypeVar("T")

REGION = "us-east-1"
OWNER = "111111111111"
CONSUMER = "222222222222"
STRANGER = "333333333333"
INVITED_AT = datetime(2026, 5, 1, 8, 56, 24, tzinfo=UTC)


def implements(*protocols: type) -> Callable[[type[T]], type[T]]:
    """Declare the ports (Protocols of pipeshare.adapters.ports) a fake implements: tests/unit/test_layering.py checks
    every Fake* class here against them, method by method, signature by signature."""

    def declare(cls: type[T]) -> type[T]:
        cls.__ports__ = protocols  # type: ignore[attr-defined]
        return cls

    return declare


def ports_of(fake: type) -> tuple[type, ...]:
    """The ports a fake declared with @implements (none: an empty tuple)."""
    return tuple(vars(fake).get("__ports__", ()))


# ---------------------------------------------------------------------------------------------------- raw RAM records


def invitation_arn(name: str, *, sender: str = OWNER, region: str = REGION) -> str:
    return f"arn:aws:ram:{region}:{sender}:resource-share-invitation/inv-{name}"


def share_arn(name: str, *, sender: str = OWNER, region: str = REGION) -> str:
    return f"arn:aws:ram:{region}:{sender}:resource-share/share-{name}"


def raw_invitation(
    name: str,
    *,
    sender: str = OWNER,
    receiver: str = CONSUMER,
    status: str = "PENDING",
    region: str = REGION,
    **overrides: Any,
) -> dict[str, Any]:
    """One ResourceShareInvitation as botocore returns it from GetResourceShareInvitations."""
    raw: dict[str, Any] = {
        "resourceShareInvitationArn": invitation_arn(name, sender=sender, region=region),
        "resourceShareName": f"{name}-share",
        "resourceShareArn": share_arn(name, sender=sender, region=region),
        "senderAccountId": sender,
        "receiverAccountId": receiver,
        "invitationTimestamp": INVITED_AT,
        "status": status,
    }
    raw.update(overrides)
    return raw


def raw_resource(
    name: str,
    *,
    owner: str = OWNER,
    resource_type: str = "sagemaker:Pipeline",
    region: str = REGION,
    **overrides: Any,
) -> dict[str, Any]:
    """One Resource as botocore returns it from ListPendingInvitationResources."""
    service = resource_type.split(":", 1)[0].lower()
    kind = resource_type.split(":", 1)[-1].lower()
    raw: dict[str, Any] = {
        "arn": f"arn:aws:{service}:{region}:{owner}:{kind}/{name}",
        "type": resource_type,
        "resourceShareArn": share_arn(name, sender=owner, region=region),
        "status": "AVAILABLE",
        "creationTime": INVITED_AT,
        "lastUpdatedTime": INVITED_AT,
        "resourceRegionScope": "REGIONAL",
    }
    raw.update(overrides)
    return raw


# ------------------------------------------------------------------------------------------------------- RAM gateway


@dataclass(frozen=True)
class GatewayCall:
    """One call made to the fake gateway."""

    operation: str  # get_invitations | list_pending_resources | accept | reject
    invitation_arn: str | None = None
    client_token: str | None = None
    arns: tuple[str, ...] | None = None  # get_invitations only; None means "all"


@dataclass
class _ScriptedError:
    operation: str
    error: PipeshareError
    invitation_arn: str | None
    remaining: int | None  # None: every matching call


_ANSWERED_ERRORS: dict[str, type[PipeshareError]] = {
    "ACCEPTED": InvitationAlreadyAcceptedError,
    "REJECTED": InvitationAlreadyRejectedError,
    "EXPIRED": InvitationExpiredError,
}


@implements(ports.InvitationGateway)
class FakeInvitationGateway:
    """Implements ports.InvitationGateway in memory.

    Like RAM: answering a non-PENDING invitation raises the matching error, ListPendingInvitationResources refuses
    REJECTED / EXPIRED invitations, an unknown ARN raises InvitationNotFoundError, a successful accept / reject moves
    the invitation to ACCEPTED / REJECTED, and a replayed clientToken returns the first (successful) answer.
    """

    def __init__(self) -> None:
        self._invitations: list[dict[str, Any]] = []
        self._resources: dict[str, list[dict[str, Any]]] = {}
        self._errors: list[_ScriptedError] = []
        self._answered_tokens: set[tuple[str, str, str]] = set()
        self.calls: list[GatewayCall] = []

    # ---- scripting

    def add_invitation(self, raw: dict[str, Any], resources: Sequence[dict[str, Any]] = ()) -> str | None:
        """Add a raw invitation record (valid or not) and the raw resources it carries. Returns its ARN, if any."""
        self._invitations.append(copy.deepcopy(raw))
        arn = raw.get("resourceShareInvitationArn") if isinstance(raw, dict) else None
        if isinstance(arn, str):
            self._resources[arn] = [copy.deepcopy(r) for r in resources]
        return arn

    def set_status(self, arn: str, status: str) -> None:
        """What happens in RAM outside pipeshare: expiry, an answer given elsewhere, or a stale read."""
        self._find(arn)["status"] = status

    def status_of(self, arn: str) -> str:
        return str(self._find(arn)["status"])

    def fail(self, operation: str, error: PipeshareError, *, arn: str | None = None, times: int | None = None) -> None:
        """Raise `error` from `operation` (for one invitation ARN, or any call), `times` times or every time."""
        if operation not in ("get_invitations", "list_pending_resources", "accept", "reject"):
            raise ValueError(f"unknown operation {operation}")
        self._errors.append(_ScriptedError(operation, error, arn, times))

    def calls_to(self, operation: str) -> list[GatewayCall]:
        return [c for c in self.calls if c.operation == operation]

    @property
    def writes(self) -> list[GatewayCall]:
        """Every accept / reject call (the only RAM writes)."""
        return [c for c in self.calls if c.operation in ("accept", "reject")]

    # ---- ports.InvitationGateway

    def get_invitations(self, arns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        self.calls.append(GatewayCall("get_invitations", arns=None if arns is None else tuple(arns)))
        self._raise_scripted("get_invitations", None)
        if not arns:
            return copy.deepcopy(self._invitations)
        for arn in arns:
            self._find(arn)  # RAM refuses the whole call when one ARN is unknown
        return [copy.deepcopy(i) for i in self._invitations if i.get("resourceShareInvitationArn") in arns]

    def list_pending_resources(self, invitation_arn: str) -> list[dict[str, Any]]:
        self.calls.append(GatewayCall("list_pending_resources", invitation_arn=invitation_arn))
        self._raise_scripted("list_pending_resources", invitation_arn)
        status = self._find(invitation_arn).get("status")
        if status in ("REJECTED", "EXPIRED"):
            raise _ANSWERED_ERRORS[status](f"{invitation_arn} is {status}")
        return copy.deepcopy(self._resources.get(invitation_arn, []))

    def accept(self, invitation_arn: str, client_token: str) -> None:
        self._answer("accept", invitation_arn, client_token, "ACCEPTED")

    def reject(self, invitation_arn: str, client_token: str) -> None:
        self._answer("reject", invitation_arn, client_token, "REJECTED")

    # ---- internals

    def _answer(self, operation: str, arn: str, token: str, new_status: str) -> None:
        self.calls.append(GatewayCall(operation, invitation_arn=arn, client_token=token))
        self._raise_scripted(operation, arn)
        invitation = self._find(arn)
        if (operation, arn, token) in self._answered_tokens:
            return  # clientToken replay: the same request, the same (successful) answer
        status = invitation.get("status")
        if status in _ANSWERED_ERRORS:
            raise _ANSWERED_ERRORS[status](f"{arn} is {status}")
        invitation["status"] = new_status
        self._answered_tokens.add((operation, arn, token))

    def _raise_scripted(self, operation: str, arn: str | None) -> None:
        for scripted in self._errors:
            if scripted.operation != operation or scripted.remaining == 0:
                continue
            if scripted.invitation_arn is not None and scripted.invitation_arn != arn:
                continue
            if scripted.remaining is not None:
                scripted.remaining -= 1
            raise scripted.error

    def _find(self, arn: str) -> dict[str, Any]:
        for invitation in self._invitations:
            if isinstance(invitation, dict) and invitation.get("resourceShareInvitationArn") == arn:
                return invitation
        raise InvitationNotFoundError(f"ResourceShareInvitation {arn} could not be found.")


# --------------------------------------------------------------------------------------------------- share repository


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass
class PolicyInvalidCall:
    source: str
    fingerprint: str
    errors: list[str]
    at: datetime
    remind_after: datetime
    history_expires_at: int
    notified: bool


@implements(ports.ShareRepository)
@dataclass
class FakeShareRepository:
    """Implements ports.ShareRepository in memory, with the transition rules of the DynamoDB adapter."""

    records: dict[str, ShareRecord] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # HIST# items, as the adapter writes them
    last_checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # touch(): last_check_reason / _rule
    touches: list[str] = field(default_factory=list)
    status_queries: list[list[str]] = field(default_factory=list)
    transition_attempts: list[ShareRecord] = field(default_factory=list)
    policy_state: dict[str, Any] | None = None
    policy_invalid_calls: list[PolicyInvalidCall] = field(default_factory=list)

    def seed(self, record: ShareRecord) -> None:
        """Put a record in place without history (state written by an earlier invocation)."""
        self.records[record.invitation_arn] = record

    def history_for(self, invitation_arn: str) -> list[dict[str, Any]]:
        return [h for h in self.history if h.get("invitation_arn") == invitation_arn]

    # ---- ports.ShareRepository

    def record_transition(self, record: ShareRecord, *, history_expires_at: int) -> bool:
        self.transition_attempts.append(record)
        arn = record.invitation_arn
        existing = self.records.get(arn)
        if existing is not None and existing.status not in record.status.predecessors():
            return False  # not a forward transition: the conditional update fails
        pk = f"INVITATION#{arn}"
        sk = f"HIST#{_iso(record.decided_at)}#{record.status.value}"
        if any(h["pk"] == pk and h["sk"] == sk for h in self.history):
            return False  # the history put is conditional too: the transaction is cancelled
        data = record.model_dump()
        if existing is not None:
            old = existing.model_dump()
            for key, value in data.items():
                if value is None or (key == "resources" and not value):
                    data[key] = old[key]  # the adapter only SETs present values
            data["first_seen_at"] = old["first_seen_at"]  # if_not_exists(first_seen_at, :first)
        data["last_seen_at"] = record.decided_at
        self.records[arn] = ShareRecord.model_validate(data)
        snapshot = record.model_dump(mode="json", exclude={"status", "first_seen_at", "last_seen_at", "decided_at"})
        item = {
            "pk": pk,
            "sk": sk,
            "item_type": "history",
            "kind": "invitation",
            "to_status": record.status.value,
            "at": _iso(record.decided_at),
            "expires_at": history_expires_at,
            **snapshot,
        }
        self.history.append({k: v for k, v in item.items() if v is not None})
        return True

    def touch(self, invitation_arn: str, *, seen_at: datetime, reason: str, rule: str, policy_fingerprint: str) -> None:
        self.touches.append(invitation_arn)
        existing = self.records.get(invitation_arn)
        if existing is None:
            return  # attribute_exists(pk) fails: nothing is created
        self.records[invitation_arn] = existing.model_copy(
            update={"last_seen_at": seen_at, "policy_fingerprint": policy_fingerprint}
        )
        self.last_checks[invitation_arn] = {"last_seen_at": seen_at, "reason": reason, "rule": rule}

    def get(self, invitation_arn: str) -> ShareRecord | None:
        return self.records.get(invitation_arn)

    def recorded_states(self, invitation_arns: Sequence[str]) -> dict[str, RecordedState]:
        arns = list(dict.fromkeys(invitation_arns))
        self.status_queries.append(arns)
        return {
            a: RecordedState(
                status=self.records[a].status,
                policy_fingerprint=self.records[a].policy_fingerprint,
                last_seen_at=self.records[a].last_seen_at,
                reminded_at=self.records[a].reminded_at,
            )
            for a in arns
            if a in self.records
        }

    def record_policy_invalid(
        self,
        *,
        source: str,
        fingerprint: str,
        errors: list[str],
        at: datetime,
        remind_after: datetime,
        history_expires_at: int,
    ) -> bool:
        state = self.policy_state
        news = state is None or state["fingerprint"] != fingerprint or state["notified_at"] < remind_after
        sk = f"HIST#{_iso(at)}#INVALID"
        if news and any(h["pk"] == "POLICY" and h["sk"] == sk for h in self.history):
            news = False
        self.policy_invalid_calls.append(
            PolicyInvalidCall(source, fingerprint, list(errors), at, remind_after, history_expires_at, news)
        )
        if not news:
            return False
        self.policy_state = {"fingerprint": fingerprint, "notified_at": at, "source": source, "errors": errors[:50]}
        self.history.append(
            {
                "pk": "POLICY",
                "sk": sk,
                "item_type": "history",
                "kind": "policy",
                "to_status": "POLICY_INVALID",
                "at": _iso(at),
                "policy_source": source,
                "fingerprint": fingerprint,
                "errors": errors[:50],
                "expires_at": history_expires_at,
            }
        )
        return True

    # ---- held digests (ports.ShareRepository.record_digest)

    def record_digest(self, digest: HeldDigest, *, history_expires_at: int) -> bool:
        sk = digest.key
        if any(h["pk"] == "DIGEST" and h["sk"] == sk for h in self.history):
            return False  # attribute_not_exists(pk)
        self.history.append(
            {
                "pk": "DIGEST",
                "sk": sk,
                "item_type": "history",
                "kind": "digest",
                "to_status": "HELD",
                "at": _iso(digest.at),
                "expires_at": history_expires_at,
                **digest.model_dump(mode="json", exclude={"at"}, exclude_none=True),
            }
        )
        return True

    # ---- reminders (ports.ShareRepository.record_reminder / record_reminder_digest)

    def record_reminder(self, reminder: HeldReminder, *, history_expires_at: int) -> bool:
        arn = reminder.invitation_arn
        existing = self.records.get(arn)
        if existing is None or existing.status != ShareStatus.HELD or existing.reminded_at is not None:
            return False  # #status = HELD AND attribute_not_exists(reminded_at)
        self.records[arn] = existing.model_copy(update={"reminded_at": reminder.at})
        self.history.append(
            {
                "pk": f"INVITATION#{arn}",
                "sk": f"HIST#{_iso(reminder.at)}#REMINDER",
                "item_type": "history",
                "kind": "reminder",
                "to_status": "HELD",
                "expires_at": history_expires_at,
                **reminder.model_dump(mode="json", exclude_none=True),
            }
        )
        return True

    def record_reminder_digest(self, digest: ReminderDigest, *, history_expires_at: int) -> bool:
        if any(h["pk"] == "DIGEST" and h["sk"] == digest.key for h in self.history):
            return False  # attribute_not_exists(pk)
        self.history.append(
            {
                "pk": "DIGEST",
                "sk": digest.key,
                "item_type": "history",
                "kind": "reminder",
                "to_status": "HELD",
                "expires_at": history_expires_at,
                **digest.model_dump(mode="json", exclude_none=True),
            }
        )
        return True


@implements(ports.SharedResourceGateway)
class FakeSharedResources:
    """Implements ports.SharedResourceGateway: ListResources (OTHER-ACCOUNTS) records, every call recorded."""

    def __init__(self, resources: Sequence[dict[str, Any]] = ()) -> None:
        self.resources = [copy.deepcopy(r) for r in resources]
        self.calls = 0

    def list_shared_resources(self) -> list[dict[str, Any]]:
        self.calls += 1
        return copy.deepcopy(self.resources)


@implements(ports.AuditRepository)
@dataclass
class FakeAuditRepository:
    """Implements ports.AuditRepository with the adapter's guard: an alert is recorded only when the types known
    before are still those on record (the set only grows)."""

    alerted: dict[str, list[str]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # the outbox items, as the adapter writes them

    def alerted_types(self, share_arns: Sequence[str]) -> dict[str, list[str]]:
        return {a: sorted(self.alerted[a]) for a in share_arns if a in self.alerted}

    def record_audit_alert(self, finding: AuditFinding, *, known: Sequence[str], history_expires_at: int) -> bool:
        if sorted(set(self.alerted.get(finding.share_arn, []))) != sorted(set(known)):
            return False
        self.alerted[finding.share_arn] = sorted({*known, *finding.disallowed_types})
        self.alerts.append(
            {
                "pk": f"SHARE#{finding.share_arn}",
                "sk": f"HIST#{_iso(finding.at)}#AUDIT",
                "item_type": "history",
                "kind": "audit",
                "to_status": "DISALLOWED_RESOURCE",
                "at": _iso(finding.at),
                "expires_at": history_expires_at,
                **finding.model_dump(mode="json", exclude={"at"}),
            }
        )
        return True


# -------------------------------------------------------------------------------------------- policy and notifier


@implements(ports.PolicySource)
class FakePolicySource:
    """Implements ports.PolicySource: returns `policy`, or raises `error` (e.g. PolicyInvalidError)."""

    def __init__(self, policy: TrustPolicy | None = None, *, error: PipeshareError | None = None) -> None:
        if policy is None and error is None:
            raise ValueError("give a policy or an error")
        self.policy = policy
        self.error = error
        self.loads = 0

    def load(self) -> TrustPolicy:
        self.loads += 1
        if self.error is not None:
            raise self.error
        assert self.policy is not None
        return self.policy


@dataclass
class Published:
    subject: str
    message: dict[str, Any]
    attributes: dict[str, str]
    message_id: str
    texts: dict[str, str] = field(default_factory=dict)  # per-protocol texts (MessageStructure json)


@implements(ports.Notifier)
class FakeNotifier:
    """Implements ports.Notifier: keeps every published message; ids are msg-1, msg-2, ... With `error`, every publish
    raises it instead (a consumer's notice bus refusing a notice: NoticeUndeliverableError)."""

    def __init__(self, *, error: PipeshareError | None = None) -> None:
        self.published: list[Published] = []
        self.error = error

    def publish(
        self,
        *,
        subject: str,
        message: dict[str, Any],
        attributes: dict[str, str],
        texts: Mapping[str, str] | None = None,
    ) -> str:
        if self.error is not None:
            raise self.error
        message_id = f"msg-{len(self.published) + 1}"
        self.published.append(
            Published(subject, copy.deepcopy(message), dict(attributes), message_id, dict(texts or {}))
        )
        return message_id


# ---------------------------------------------------------------------------------------------- cost estimates (owner)


@dataclass
class CommitCall:
    """One call to FakeCostRepository.commit; `written`: whether the transaction went through."""

    execution_arn: str
    holder: SpendHolder
    pipeline_arn: str
    month: str
    jobs: list[CountedJob]
    estimate: dict[str, Any]
    version: int
    finalise: Finalisation | None
    finish_alert: OwnerAlert | None
    pending_finish: bool
    at: datetime
    written: bool

    @property
    def consumer(self) -> str | None:
        return self.holder.account

    @property
    def final(self) -> bool:
        return self.finalise is not None


@implements(ports.CostRepository, ports.SpendLedger)
class FakeCostRepository:
    """Implements ports.CostRepository and ports.SpendLedger in memory, like `DynamoDbCostRepository`.

    A commit is one transaction conditioned on the estimate's version as read (another writer since: False, nothing
    written). A new job is written once (a job already counted cancels the transaction); a job counted with a running
    mark is replaced only by a count that read that mark (`previous`). The jobs' deltas are ADDed to the estimate's
    total and to the month's spend: `PIPELINE#`, and the holder's lines (`CONSUMER#` with `confirmed_total` when
    confirmed, `CONSUMER#...#PIPELINE#`; `UNATTRIBUTED#PIPELINE#`), ARNs lower-case in the keys. A finalisation
    writes the finish alert or a pending mark (each once per attempt), and a RUNS# item. `conflict(times)` makes the
    next commits lose to another writer; `interleave(fn)` runs `fn` (another writer) just before the next commit.
    """

    def __init__(self) -> None:
        self.records: dict[str, ExecutionRecord] = {}
        self.jobs: dict[str, dict[str, CountedJob]] = {}  # execution key -> job arn (lower-case) -> job
        self.estimates: dict[str, dict[str, Any]] = {}
        self.finish_alerts: dict[tuple[str, int], OwnerAlert] = {}
        self.pending: dict[tuple[str, int], PendingFinish] = {}
        self.runs: list[dict[str, Any]] = []
        self.spend: dict[tuple[str, str], Decimal] = {}  # (month, sk) -> total
        self.confirmed: dict[tuple[str, str], Decimal] = {}  # (month, CONSUMER#c) -> confirmed_total
        self.open: list[str] = []
        self.commits: list[CommitCall] = []
        self.state_reads: list[str] = []
        self.calls: list[str] = []  # every port call, in order
        self.moves: list[SpendHolder] = []  # the holder of each move_spend call, in order
        self._conflicts = 0
        self._interleaved: list[Callable[[], Any]] = []

    # ---- scripting and inspection

    def seed_record(self, record: ExecutionRecord) -> None:
        self.records[record.key] = record

    def seed_spend(self, month: str, consumer: str, amount: Decimal) -> None:
        """Month-to-date spend counted by earlier executions."""
        self.spend[(month, f"CONSUMER#{consumer}")] = amount

    def conflict(self, times: int = 1) -> None:
        """The next `times` commits find that another writer changed the execution first: they write nothing."""
        self._conflicts += times

    def interleave(self, writer: Callable[[], Any]) -> None:
        """Run `writer` (another invocation) between the next commit's state read and its transaction."""
        self._interleaved.append(writer)

    def counted(self, execution_arn: str) -> dict[str, CountedJob]:
        return dict(self.jobs.get(execution_arn.lower(), {}))

    def estimate_of(self, execution_arn: str) -> dict[str, Any] | None:
        return self.estimates.get(execution_arn.lower())

    def finish_alert(self, execution_arn: str, attempt: int = 1) -> OwnerAlert | None:
        return self.finish_alerts.get((execution_arn.lower(), attempt))

    def pipeline_spend(self, month: str, pipeline_arn: str) -> Decimal:
        return self.spend.get((month, f"PIPELINE#{pipeline_arn.lower()}"), Decimal(0))

    def unattributed_spend(self, month: str, pipeline_arn: str) -> Decimal:
        return self.spend.get((month, f"UNATTRIBUTED#PIPELINE#{pipeline_arn.lower()}"), Decimal(0))

    def consumer_pipeline_spend(self, month: str, consumer: str, pipeline_arn: str) -> Decimal:
        return self.spend.get((month, f"CONSUMER#{consumer}#PIPELINE#{pipeline_arn.lower()}"), Decimal(0))

    def confirmed_spend(self, month: str, consumer: str) -> Decimal:
        return self.confirmed.get((month, f"CONSUMER#{consumer}"), Decimal(0))

    # ---- ports.CostRepository

    def state(self, execution_arn: str) -> CostState:
        key = execution_arn.lower()
        self.state_reads.append(key)
        self.calls.append("state")
        estimate = self.estimates.get(key)
        jobs = self.jobs.get(key, {})
        return CostState(
            self.records.get(key),
            {arn: job.cost for arn, job in jobs.items()},
            copy.deepcopy(estimate) if estimate is not None else None,
            {arn: copy.deepcopy(job.detail) for arn, job in jobs.items()},
            frozenset(arn for arn, job in jobs.items() if not job.final),
            int((estimate or {}).get("version", 0)),
        )

    def commit(
        self,
        execution_arn: str,
        *,
        holder: SpendHolder,
        pipeline_arn: str,
        month: str,
        jobs: list[CountedJob],
        estimate: dict[str, Any],
        version: int,
        finalise: Finalisation | None = None,
        finish_alert: OwnerAlert | None = None,
        pending_finish: bool = False,
        at: datetime,
    ) -> bool:
        self.calls.append("commit")
        while self._interleaved:
            self._interleaved.pop(0)()
        key = execution_arn.lower()
        counted = self.jobs.setdefault(key, {})
        lost = self._conflicts > 0
        self._conflicts -= 1 if lost else 0
        previous = self.estimates.get(key, {})

        def refused(job: CountedJob) -> bool:
            mine = counted.get(job.job_arn.lower())
            if job.previous is None:
                return mine is not None
            return mine is None or mine.final or mine.cost != job.previous

        attempt = finalise.attempt if finalise else 0
        written = not (
            lost
            or int(previous.get("version", 0)) != version
            or any(refused(job) for job in jobs)
            or len({job.job_arn.lower() for job in jobs}) != len(jobs)
            or (finish_alert is not None and (key, attempt) in self.finish_alerts)
            or (finalise is not None and finish_alert is None and pending_finish and (key, attempt) in self.pending)
        )
        self.commits.append(
            CommitCall(
                execution_arn,
                holder,
                pipeline_arn,
                month,
                list(jobs),
                copy.deepcopy(estimate),
                version,
                finalise,
                finish_alert,
                pending_finish,
                at,
                written,
            )
        )
        if not written:
            return False
        for job in jobs:
            counted[job.job_arn.lower()] = job
        added = sum((job.delta for job in jobs), Decimal(0))
        updated = {
            **previous,
            "item_type": "estimate",
            "breakdown": copy.deepcopy(estimate.get("steps", [])),
            "complete": bool(estimate.get("complete", False)),
            "updated_at": _iso(at),
            "pipeline_arn": pipeline_arn,
            "consumer_account": holder.account or "-",
            "spend_holder": holder.key,
            "month": previous.get("month", month),
            "final": finalise is not None,
            "unpriced": list(estimate.get("unpriced", [])),
            "unpriced_instance_hours": dict(estimate.get("unpriced_instance_hours", {})),
            "total": previous.get("total", Decimal(0)) + added,
            "version": version + 1,
        }
        if finalise is not None:
            updated |= {
                "ended_at": _iso(finalise.ended_at),
                "attempt": finalise.attempt,
                "status": finalise.status,
                "finalised_total": Decimal(str(estimate.get("total", 0))),
            }
            self.runs.append(
                {
                    "pipeline_arn": pipeline_arn,
                    "execution_arn": execution_arn,
                    "attempt": finalise.attempt,
                    "ended_at": _iso(finalise.ended_at),
                    "total": Decimal(str(estimate.get("total", 0))),
                    "complete": bool(estimate.get("complete", False)),
                }
            )
            if finish_alert is not None:
                self.finish_alerts[(key, finalise.attempt)] = finish_alert
            elif pending_finish:  # put once, like the finish alert (attribute_not_exists)
                self.pending[(key, finalise.attempt)] = PendingFinish(
                    execution_arn, finalise.attempt, _iso(finalise.ended_at), finalise.status
                )
        self.estimates[key] = updated
        self._add(holder, pipeline_arn, month, added)
        return True

    def _add(
        self, holder: SpendHolder, pipeline_arn: str, month: str, amount: Decimal, *, pipeline: bool = True
    ) -> None:
        if not amount:
            return
        sks = [f"PIPELINE#{pipeline_arn.lower()}"] if pipeline else []
        if holder.kind == "consumer":
            sks += [f"CONSUMER#{holder.account}", f"CONSUMER#{holder.account}#PIPELINE#{pipeline_arn.lower()}"]
            if holder.confirmed:
                sk = (month, f"CONSUMER#{holder.account}")
                self.confirmed[sk] = self.confirmed.get(sk, Decimal(0)) + amount
        elif holder.kind == "unattributed":
            sks.append(f"UNATTRIBUTED#PIPELINE#{pipeline_arn.lower()}")
        for sk in sks:
            self.spend[(month, sk)] = self.spend.get((month, sk), Decimal(0)) + amount

    def month_spend(self, month: str, consumer: str) -> Decimal:
        self.calls.append("month_spend")
        return self.spend.get((month, f"CONSUMER#{consumer}"), Decimal(0))

    def open_executions(self) -> list[str]:
        self.calls.append("open_executions")
        return list(self.open)

    def pending_finishes(self) -> list[PendingFinish]:
        self.calls.append("pending_finishes")
        return list(self.pending.values())

    def resolve_pending(self, pending: PendingFinish, alert: OwnerAlert | None, *, at: datetime) -> bool:
        self.calls.append("resolve_pending")
        key = (pending.execution_arn.lower(), pending.attempt)
        if key not in self.pending or (alert is not None and key in self.finish_alerts):
            return False
        del self.pending[key]
        if alert is not None:
            self.finish_alerts[key] = alert
        return True

    # ---- ports.SpendLedger

    def move_spend(self, execution_arn: str, *, holder: SpendHolder, at: datetime) -> Decimal | None:
        self.calls.append("move_spend")
        self.moves.append(holder)
        estimate = self.estimates.get(execution_arn.lower())
        if estimate is None:
            return None
        held = SpendHolder.from_key(str(estimate.get("spend_holder") or estimate.get("consumer_account") or "-"))
        if held == holder:
            return None
        total, month, pipeline = estimate["total"], estimate["month"], estimate["pipeline_arn"]
        self._add(held, pipeline, month, -total, pipeline=False)
        self._add(holder, pipeline, month, total, pipeline=False)
        estimate |= {
            "spend_holder": holder.key,
            "consumer_account": holder.account or "-",
            "version": int(estimate.get("version", 0)) + 1,
        }
        return Decimal(total)


_DESCRIBE_OPERATIONS = {
    "training": "DescribeTrainingJob",
    "processing": "DescribeProcessingJob",
    "transform": "DescribeTransformJob",
    "tuning": "DescribeHyperParameterTuningJob",
}


@implements(ports.CostDataGateway)
class FakeCostDataGateway:
    """Implements ports.CostDataGateway: scripted steps, jobs and executions.

    `api_calls` lists the SageMaker calls each port call stands for: one `ListPipelineExecutionSteps` per page of
    `page_size` steps (at least one), one `Describe*Job` per job. A job described with another kind than the one it
    was added with is unknown (None), as SageMaker answers ResourceNotFound. `delete(execution)` stands for a deleted
    execution (or pipeline): SageMaker answers ResourceNotFound, so `describe_execution` returns None and `list_steps`
    raises ExecutionNotFoundError, as the adapter does.
    """

    def __init__(self, *, page_size: int = 100) -> None:
        self.page_size = page_size
        self.steps: dict[str, list[dict[str, Any]]] = {}
        self.job_responses: dict[str, tuple[str, dict[str, Any]]] = {}
        self.executions: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.api_calls: list[tuple[str, str]] = []

    def add_steps(self, execution_arn: str, steps: Sequence[dict[str, Any]]) -> None:
        self.steps[execution_arn.lower()] = [copy.deepcopy(s) for s in steps]

    def add_job(self, kind: str, job_arn: str, response: dict[str, Any]) -> None:
        self.job_responses[job_arn.lower()] = (kind, copy.deepcopy(response))

    def add_execution(self, execution_arn: str, response: dict[str, Any]) -> None:
        self.executions[execution_arn.lower()] = copy.deepcopy(response)

    def delete(self, execution_arn: str) -> None:
        """The execution, or its pipeline, was deleted: SageMaker no longer knows it."""
        self.deleted.add(execution_arn.lower())

    def calls_to(self, operation: str) -> list[str]:
        return [target for op, target in self.api_calls if op == operation]

    @property
    def describes(self) -> list[tuple[str, str]]:
        return [(op, target) for op, target in self.api_calls if op.startswith("Describe") and op.endswith("Job")]

    # ---- ports.CostDataGateway

    def describe_execution(self, execution_arn: str) -> dict[str, Any] | None:
        self.api_calls.append(("DescribePipelineExecution", execution_arn))
        found = None if execution_arn.lower() in self.deleted else self.executions.get(execution_arn.lower())
        return copy.deepcopy(found) if found is not None else None

    def list_steps(self, execution_arn: str) -> tuple[list[dict[str, Any]], int]:
        if execution_arn.lower() in self.deleted:
            self.api_calls.append(("ListPipelineExecutionSteps", execution_arn))
            raise ExecutionNotFoundError(f"ResourceNotFound: Pipeline execution '{execution_arn}' does not exist.")
        steps = self.steps.get(execution_arn.lower(), [])
        pages = max(1, -(-len(steps) // self.page_size))
        self.api_calls.extend(("ListPipelineExecutionSteps", execution_arn) for _ in range(pages))
        return copy.deepcopy(steps), pages

    def describe_job(self, kind: str, job_arn: str) -> dict[str, Any] | None:
        self.api_calls.append((_DESCRIBE_OPERATIONS[kind], job_arn))
        found = self.job_responses.get(job_arn.lower())
        return copy.deepcopy(found[1]) if found is not None and found[0] == kind else None


@implements(ports.PriceLookup)
class FakePriceLookup:
    """Implements ports.PriceLookup: `rates` ((component, instance type) -> USD per hour) stand for the live rates;
    `fill` returns `prices.merge(...)` with those of the wanted pairs it knows, and records every request."""

    def __init__(self, rates: dict[tuple[str, str], str] | None = None) -> None:
        self.rates = dict(rates or {})
        self.requests: list[tuple[str, list[tuple[str, str]]]] = []

    def fill(self, prices: PriceTable, region: str, wanted: list[tuple[str, str]]) -> PriceTable:
        self.requests.append((region, list(wanted)))
        found: dict[str, dict[str, str]] = {}
        for component, instance_type in wanted:
            if (component, instance_type) in self.rates:
                found.setdefault(component, {})[instance_type] = self.rates[(component, instance_type)]
        return prices.merge({"source": "fake price list", "regions": {region: found}}) if found else prices


# --------------------------------------------------------------------------------------------------- budgets (owner)


@implements(ports.BudgetSource)
class FakeBudgetSource:
    """Implements ports.BudgetSource: returns `policy` (None: no budget policy), or raises `error`; counts loads and
    the fresh ones (a policy-change evaluation reads past the cache)."""

    def __init__(self, policy: BudgetPolicy | None = None, *, error: PipeshareError | None = None) -> None:
        self.policy = policy
        self.error = error
        self.loads = 0
        self.fresh_loads = 0

    def load(self, *, fresh: bool = False) -> BudgetPolicy | None:
        self.loads += 1
        self.fresh_loads += int(fresh)
        if self.error is not None:
            raise self.error
        return self.policy


@dataclass
class LedgerWrite:
    """One transaction of FakeBudgetLedger.record: its keys, its message (None: none) and whether it was written."""

    month: str
    subject: str
    keys: list[str]
    alert: OwnerAlert | None
    facts: dict[str, Any]
    written: bool


@implements(ports.BudgetLedger)
class FakeBudgetLedger:
    """Implements ports.BudgetLedger like `DynamoDbBudgetLedger`: `record` writes every key and the one message in a
    single transaction, only if none of the keys exists (else nothing: False). `alerts` lists the messages written,
    in order; `writes` every attempt; `interleave(fn)` runs `fn` (another writer) just before the next record."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], set[str]] = {}  # (month, subject) -> keys
        self.alerts: list[tuple[str, str, str, OwnerAlert]] = []  # (month, subject, last key, message)
        self.notices: list[tuple[str, str, str, EnforcementNotice]] = []  # (month, subject, last key, notice)
        self.writes: list[LedgerWrite] = []
        self.reads: list[tuple[str, str]] = []
        self._interleave: list[Callable[[], Any]] = []

    def interleave(self, writer: Callable[[], Any]) -> None:
        self._interleave.append(writer)

    def seed(self, month: str, subject: str, *keys: str) -> None:
        self.keys.setdefault((month, subject), set()).update(keys)

    def recorded(self, month: str, subject: str) -> set[str]:
        self.reads.append((month, subject))
        return set(self.keys.get((month, subject), set()))

    def record(
        self,
        month: str,
        subject: str,
        keys: Sequence[str],
        alert: OwnerAlert | None,
        *,
        at: datetime,
        facts: Mapping[str, Any] | None = None,
        notice: EnforcementNotice | None = None,
    ) -> bool:
        if not keys:
            raise ValueError("record needs at least one ledger key")
        while self._interleave:
            self._interleave.pop(0)()
        existing = self.keys.setdefault((month, subject), set())
        written = not (set(keys) & existing)
        self.writes.append(LedgerWrite(month, subject, list(keys), alert, dict(facts or {}), written))
        if written:
            existing.update(keys)
            if alert is not None:
                self.alerts.append((month, subject, keys[-1], alert))
            if notice is not None:
                self.notices.append((month, subject, keys[-1], notice))
        return written

    def messages(self, schema: str = "") -> list[OwnerAlert]:
        return [a for *_, a in self.alerts if str(a.message.get("schema", "")).startswith(schema)]


@implements(ports.RunningExecutions)
class FakeRunningExecutions:
    """Implements ports.RunningExecutions: each consumer's running executions (RunViews) and the executions' state
    by ARN (case-insensitive); records every query."""

    def __init__(self, running: dict[str, list[RunView]] | None = None) -> None:
        self.running = {consumer: list(runs) for consumer, runs in (running or {}).items()}
        self.states: dict[str, RunView] = {}
        self.queries: list[str] = []
        self.lookups: list[str] = []

    def add(self, run: RunView, *, running: bool = True) -> None:
        self.states[run.execution_arn.lower()] = run
        if running and run.initiator_account:
            self.running.setdefault(run.initiator_account, []).append(run)

    def running_for(self, consumer: str) -> list[RunView]:
        self.queries.append(consumer)
        return list(self.running.get(consumer, []))

    def execution(self, execution_arn: str) -> RunView | None:
        self.lookups.append(execution_arn)
        return self.states.get(execution_arn.lower())


@implements(ports.SpendSource)
class FakeSpendSource:
    """Implements ports.SpendSource: the month's spend items in memory; counts each read."""

    def __init__(self) -> None:
        self.consumers: dict[tuple[str, str], ConsumerSpend] = {}
        self.pipelines: dict[tuple[str, str], dict[str, Decimal]] = {}
        self.lines: dict[tuple[str, str], LineSpend] = {}
        self.reads: list[tuple[str, ...]] = []

    def set(self, spend: ConsumerSpend, pipelines: Mapping[str, Decimal] | None = None) -> None:
        self.consumers[(spend.month, spend.consumer)] = spend
        if pipelines is not None:
            self.pipelines[(spend.month, spend.consumer)] = dict(pipelines)

    def set_line(self, line: LineSpend) -> None:
        self.lines[(line.month, line.pipeline_arn.lower())] = line

    def month_spend_items(self, month: str) -> MonthSpend:
        self.reads.append(("month", month))
        return MonthSpend(
            month=month,
            consumers=tuple(s for (m, _), s in sorted(self.consumers.items()) if m == month),
            consumer_pipelines={c: dict(p) for (m, c), p in self.pipelines.items() if m == month},
            unattributed=tuple(line for (m, _), line in sorted(self.lines.items()) if m == month),
        )

    def consumer_spend(self, month: str, consumer: str) -> ConsumerSpend:
        self.reads.append(("consumer", month, consumer))
        return self.consumers.get((month, consumer), ConsumerSpend(consumer=consumer, month=month))

    def consumer_pipelines(self, month: str, consumer: str) -> dict[str, Decimal]:
        self.reads.append(("pipelines", month, consumer))
        return dict(self.pipelines.get((month, consumer), {}))


@implements(ports.OwnerShareGateway)
class FakeOwnerShareGateway:
    """Implements ports.OwnerShareGateway: the owner's shares as RAM lists them (raw camelCase records).

    `share(name, pipelines, principals, permission)` creates or replaces a share; `disassociate(name, principal)`
    marks the principal DISASSOCIATED (RAM keeps listing a removed association for a while), `forget(name, principal)`
    drops it (purged), `delete(name)` removes the share (an inactive share is not listed)."""

    PERMISSIONS = {
        "read-only": f"arn:aws:ram::aws:permission/{READ_ONLY}",
        "allow-execution": f"arn:aws:ram::aws:permission/{ALLOW_EXECUTION}",
    }

    def __init__(self, owner: str = OWNER, region: str = REGION) -> None:
        self.owner, self.region = owner, region
        self.shares: dict[str, dict[str, Any]] = {}  # share ARN -> share record, pipelines, principals, permission

    def arn(self, name: str) -> str:
        return share_arn(name, sender=self.owner, region=self.region)

    def share(self, name: str, pipelines: Sequence[str], principals: Sequence[str], permission: str) -> str:
        arn = self.arn(name)
        self.shares[arn] = {
            "share": {"resourceShareArn": arn, "name": name, "owningAccountId": self.owner, "status": "ACTIVE"},
            "pipelines": [{"arn": p, "type": "sagemaker:Pipeline", "resourceShareArn": arn} for p in pipelines],
            "principals": {
                p: {"associatedEntity": p, "associationType": "PRINCIPAL", "status": "ASSOCIATED", "external": True}
                for p in principals
            },
            "permission": permission,
        }
        return arn

    def disassociate(self, name: str, principal: str) -> None:
        self.shares[self.arn(name)]["principals"][principal]["status"] = "DISASSOCIATED"

    def forget(self, name: str, principal: str) -> None:
        del self.shares[self.arn(name)]["principals"][principal]

    def delete(self, name: str) -> None:
        del self.shares[self.arn(name)]

    # ---- ports.OwnerShareGateway

    def owned_shares(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(s["share"]) for s in self.shares.values()]

    def share_pipelines(self, share_arn: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.shares[share_arn]["pipelines"])

    def share_principals(self, share_arn: str) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.shares[share_arn]["principals"].values()))

    def share_permissions(self, share_arn: str) -> list[dict[str, Any]]:
        permission = self.shares[share_arn]["permission"]
        arn = self.PERMISSIONS[permission]
        return [
            {"arn": arn, "name": arn.rsplit("/", 1)[-1], "resourceType": "sagemaker:Pipeline", "status": "ATTACHABLE"}
        ]


@implements(ports.GrantRepository)
class FakeGrantRepository:
    """Implements ports.GrantRepository like `DynamoDbGrantRepository`: grants by `Grant.key` (pipeline x consumer x
    share, lower-case), so a consumer holding a pipeline through two shares has two; `grants(pipeline)` matches the
    pipeline ARN in any case. `apply` is guarded like the adapter's transaction: a new grant only where there is none,
    a changed or revoked one only while the stored grant still has the change's `before` fingerprint, and each change
    (time, key, kind) once; a revocation deletes the grant. `applied` lists the changes recorded."""

    def __init__(self, grants: Sequence[Grant] = ()) -> None:
        self.stored: dict[str, Grant] = {g.key: g for g in grants}
        self.applied: list[GrantChange] = []
        self.refused: list[GrantChange] = []

    def grants(self, pipeline_arn: str | None = None) -> dict[str, Grant]:
        wanted = None if pipeline_arn is None else pipeline_arn.lower()
        return {k: g for k, g in self.stored.items() if wanted is None or g.pipeline_arn.lower() == wanted}

    def apply(self, change: GrantChange, *, history_expires_at: int) -> bool:
        key = change.grant.key
        stored = self.stored.get(key)
        if change.before is None:
            guard = stored is None
        else:
            guard = stored is not None and stored.fingerprint == change.before.fingerprint
        outbox = (change.at, key, change.kind)
        if not guard or any((c.at, c.grant.key, c.kind) == outbox for c in self.applied):
            self.refused.append(change)
            return False
        self.applied.append(change)
        if change.after is None or change.kind == "revoked":
            self.stored.pop(key, None)
        else:
            self.stored[key] = change.after
        return True


@implements(ports.EnforcementGateway)
class FakeEnforcementGateway:
    """Implements ports.EnforcementGateway: records each call; an execution stops once (then False: it had ended), a
    principal leaves a share once (then False: not on it; `shares` says who is on which), a read-only grant returns
    one share per principal; `fail` scripts a PipeshareError per operation (and target), every time."""

    OPERATIONS = ("stop_execution", "remove_principal", "grant_read_only")

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.stopped: list[str] = []
        self.ended: set[str] = set()
        self.removed: list[tuple[str, str, str]] = []  # (share, principal, month)
        self.off_shares: set[tuple[str, str]] = set()  # (share, principal) not (any longer) on the share
        self.read_only: dict[str, set[str]] = {}  # principal -> pipelines granted read-only
        self._errors: list[tuple[str, str | None, PipeshareError]] = []

    def fail(self, operation: str, error: PipeshareError, *, target: str | None = None) -> None:
        if operation not in self.OPERATIONS:
            raise ValueError(f"unknown operation {operation}")
        self._errors.append((operation, target, error))

    def heal(self) -> None:
        """The scripted failures stop."""
        self._errors.clear()

    def _raise_scripted(self, operation: str, target: str) -> None:
        for op, wanted, error in self._errors:
            if op == operation and wanted in (None, target):
                raise error

    def stop_execution(self, execution_arn: str) -> bool:
        self.calls.append(("stop_execution", execution_arn))
        self._raise_scripted("stop_execution", execution_arn)
        if execution_arn.lower() in self.ended:
            return False
        self.ended.add(execution_arn.lower())
        self.stopped.append(execution_arn)
        return True

    def remove_principal(self, share_arn: str, principal: str, *, month: str) -> bool:
        self.calls.append(("remove_principal", share_arn, principal, month))
        self._raise_scripted("remove_principal", share_arn)
        if (share_arn, principal) in self.off_shares:
            return False
        self.off_shares.add((share_arn, principal))
        self.removed.append((share_arn, principal, month))
        return True

    def grant_read_only(self, principal: str, pipeline_arns: Sequence[str], *, month: str) -> str:
        self.calls.append(("grant_read_only", principal, ",".join(pipeline_arns), month))
        self._raise_scripted("grant_read_only", principal)
        self.read_only.setdefault(principal, set()).update(pipeline_arns)
        return f"arn:aws:ram:{REGION}:{OWNER}:resource-share/read-only-{principal.rsplit(':', 1)[-1][-12:]}"


# ---------------------------------------------------------------------------------------- execution tracking (owner)


@implements(ports.ExecutionRepository)
class FakeExecutionRepository:
    """Implements ports.ExecutionRepository like `DynamoDbExecutionRepository`: a save writes only while the record is
    at the version read (else False: another writer was first), and each alert item (execution, ALERT#...) once: a
    save carrying an alert already written is refused whole, as the transaction is. `alerts` holds the outbox items
    written, in order; `saves` every attempt."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[ExecutionRecord, int]] = {}
        self.alerts: dict[tuple[str, str], OwnerAlert] = {}  # (execution key, ALERT#...) -> message
        self.worst_cases: dict[str, tuple[Decimal, bool]] = {}
        self.saves: list[tuple[str, int, bool]] = []  # (execution key, version, written)

    def get(self, execution_arn: str) -> tuple[ExecutionRecord | None, int]:
        return self.records.get(execution_arn.lower(), (None, 0))

    def save(
        self,
        record: ExecutionRecord,
        *,
        version: int,
        alerts: list[tuple[AlertKey, OwnerAlert]],
        at: datetime,
        worst_case: tuple[Decimal, bool] | None = None,
    ) -> bool:
        keys = [(record.key, key.item_key) for key, _ in alerts]
        written = self.records.get(record.key, (None, 0))[1] == version and not any(k in self.alerts for k in keys)
        self.saves.append((record.key, version, written))
        if not written:
            return False
        self.records[record.key] = (record, version + 1)
        self.alerts.update({k: alert for k, (_, alert) in zip(keys, alerts, strict=True)})
        if worst_case is not None:
            self.worst_cases[record.key] = worst_case
        return True

    def alert_items(self) -> list[str]:
        """The alert items' sort keys, in the order they were written."""
        return [item_key for _, item_key in self.alerts]

    def seed(self, record: ExecutionRecord) -> None:
        """Put a record in place (written by an earlier invocation), at version 1, without alerts."""
        self.records[record.key] = (record, 1)

    def record(self, execution_arn: str) -> ExecutionRecord | None:
        """The record as stored (None: none)."""
        return self.records.get(execution_arn.lower(), (None, 0))[0]


@implements(ports.PipelineExecutionGateway)
class FakeExecutionGateway:
    """Implements ports.PipelineExecutionGateway: DescribePipelineExecution answers by ARN (case-insensitive), None for
    an execution SageMaker does not know; records every call."""

    def __init__(self, executions: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.executions = {arn.lower(): copy.deepcopy(r) for arn, r in (executions or {}).items()}
        self.calls: list[str] = []

    def describe_execution(self, execution_arn: str) -> dict[str, Any] | None:
        self.calls.append(execution_arn)
        found = self.executions.get(execution_arn.lower())
        return copy.deepcopy(found) if found is not None else None


@implements(ports.PipelineDefinitionGateway)
class FakeDefinitionGateway:
    """Implements ports.PipelineDefinitionGateway: each execution's pipeline definition (JSON text) and parameters;
    an unknown execution raises ExecutionNotFoundError as the adapter does."""

    def __init__(self) -> None:
        self.definitions: dict[str, str] = {}
        self.parameters: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []

    def add(self, execution_arn: str, definition: str, parameters: Mapping[str, str] | None = None) -> None:
        self.definitions[execution_arn.lower()] = definition
        self.parameters[execution_arn.lower()] = dict(parameters or {})

    def definition_for_execution(self, execution_arn: str) -> str:
        self.calls.append(("definition", execution_arn))
        if execution_arn.lower() not in self.definitions:
            raise ExecutionNotFoundError(f"ResourceNotFound: Pipeline execution '{execution_arn}' does not exist.")
        return self.definitions[execution_arn.lower()]

    def parameters_for_execution(self, execution_arn: str) -> dict[str, str]:
        self.calls.append(("parameters", execution_arn))
        return dict(self.parameters.get(execution_arn.lower(), {}))


@implements(ports.RunHistory)
class FakeRunHistory:
    """Implements ports.RunHistory: each pipeline's finished runs (newest first) and each consumer's month spend."""

    def __init__(self) -> None:
        self.runs: dict[str, list[FinishedRun]] = {}
        self.spend: dict[tuple[str, str], Decimal] = {}
        self.calls: list[tuple[str, ...]] = []

    def recent_runs(self, pipeline_arn: str, limit: int) -> list[FinishedRun]:
        self.calls.append(("recent_runs", pipeline_arn))
        return list(self.runs.get(pipeline_arn.lower(), []))[:limit]

    def month_spend(self, month: str, consumer: str) -> Decimal:
        self.calls.append(("month_spend", month, consumer))
        return self.spend.get((month, consumer), Decimal(0))


@implements(ports.SettleScheduler)
class FakeSettleScheduler:
    """Implements ports.SettleScheduler: keeps each request scheduled, with its delay."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[SettleRequest, int]] = []

    def schedule(self, request: SettleRequest, *, delay_seconds: int) -> None:
        self.scheduled.append((request, delay_seconds))


@implements(ports.TrailStatusGateway)
class FakeTrailStatus:
    """Implements ports.TrailStatusGateway: whether the owner's own calls are recorded (`recorded`); regions asked."""

    def __init__(self, *, recorded: bool = True) -> None:
        self.recorded = recorded
        self.regions: list[str] = []

    def owner_calls_recorded(self, region: str) -> bool:
        self.regions.append(region)
        return self.recorded


@implements(ports.BudgetLedger, ports.SpendSource, ports.RunningExecutions)
class FakeOwnerTable(FakeBudgetLedger, FakeSpendSource, FakeRunningExecutions):
    """The owner table as the budget watcher reads and writes it: its ledger, spend items and running executions
    (one get_budget_ledger port), each as its fake above."""

    def __init__(self) -> None:
        FakeBudgetLedger.__init__(self)
        FakeSpendSource.__init__(self)
        FakeRunningExecutions.__init__(self)
