"""Who acted on an owner's pipeline execution: observations, their merge, grant inference, alerts. Pure, no I/O.

Observations come from three places (docs/owner-design.md):
- status events (`observe_status`): what the execution did, never who started it;
- CloudTrail Start/Stop/Retry calls (`observe_call`): who acted, source `owner`, `forwarded` or `cloudtrail-owner-copy`;
- the pipeline's grants (`infer`): who could have acted, source `inferred`, `ambiguous` or `unknown`.

`merge` folds them into one `ExecutionRecord`. It is a join: commutative, associative and idempotent, so any order
of the same observations, with duplicates, gives an equal record. Every field is combined by min/max over a total
order or by union:
- per action kind (start/stop/retry) one entry: the highest rank wins (owner 4 > forwarded = owner-copy 3 >
  inferred 2 > ambiguous 1 > unknown 0); between equal ranks the smaller (account, principal) wins, a missing value
  sorting after any present one (so an ARN-bearing record beats one without); then forwarded before owner-copy, then
  the candidates, the earliest time and the event id;
- status history: status -> earliest time seen; current status: the latest observation (ties: Executing < Stopping <
  terminal, then by name); `started_at`: earliest Executing time, reported execution start or start call;
  `ended_at`: the current status's time when that status is terminal;
- the execution ARN: compared case-insensitively (`key`, lower-case, is the storage and alert key); the form kept is
  the smallest string, which keeps upper-case letters when any copy has them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, computed_field, model_validator

from pipeshare.models.domain import AccountId
from pipeshare.models.owner_events import (
    TERMINAL_STATUSES,
    ExecutionArn,
    ExecutionStatus,
    PipelineAction,
    PipelineApiCallEvent,
    PipelineArn,
    PipelineExecutionStatusEvent,
    arn_account,
    pipeline_of,
    same_arn,
)

SCHEMA = "pipeshare.owner.execution-alert/1"
SUBJECT_MAX = 100  # SNS limit


class AttributionSource(StrEnum):
    """Where an attribution comes from. Declaration order is also the preference between equal ranks."""

    OWNER = "owner"
    FORWARDED = "forwarded"
    OWNER_COPY = "cloudtrail-owner-copy"
    INFERRED = "inferred"
    AMBIGUOUS = "ambiguous"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    AttributionSource.OWNER: 4,
    AttributionSource.FORWARDED: 3,
    AttributionSource.OWNER_COPY: 3,
    AttributionSource.INFERRED: 2,
    AttributionSource.AMBIGUOUS: 1,
    AttributionSource.UNKNOWN: 0,
}
_PREFERENCE = {source: index for index, source in enumerate(AttributionSource)}
CONSUMER_SOURCES = frozenset(
    {
        AttributionSource.FORWARDED,
        AttributionSource.OWNER_COPY,
        AttributionSource.INFERRED,
        AttributionSource.AMBIGUOUS,
    }
)
_PROGRESS = {"Executing": 0, "Stopping": 1}  # terminal statuses: 2

_Principal = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
# A candidate is an account ID, or the ARN of a group principal (organization / OU: any account in it may have acted).
Candidate = Annotated[str, StringConstraints(pattern=r"^([0-9]{12}|arn:aws[a-z-]*:.+)$", max_length=2048)]
_EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------------------------------- observations


class StatusObservation(_Frozen):
    """From a status event: the execution reached `status` at `time` (for a terminal status, its end time)."""

    kind: Literal["status"] = "status"
    execution_arn: ExecutionArn
    pipeline_arn: PipelineArn
    status: ExecutionStatus
    time: AwareDatetime
    started_at: AwareDatetime | None = None  # executionStartTime, when the event reports it

    @model_validator(mode="after")
    def _execution_under_pipeline(self) -> StatusObservation:
        if not same_arn(pipeline_of(self.execution_arn), self.pipeline_arn):
            raise ValueError("execution_arn is not an execution of pipeline_arn")
        return self


class ActionObservation(_Frozen):
    """From a CloudTrail Start/Stop/Retry call: `account` (and `principal`, when known) did `action` at `time`."""

    kind: Literal["action"] = "action"
    execution_arn: ExecutionArn
    action: PipelineAction
    source: Literal[AttributionSource.OWNER, AttributionSource.FORWARDED, AttributionSource.OWNER_COPY]
    account: AccountId
    principal: _Principal | None = None  # the caller's ARN (absent from an owner copy's AWSAccount identity)
    principal_id: _Principal | None = None
    time: AwareDatetime
    event_id: _EventId | None = None


class InferenceObservation(_Frozen):
    """From the pipeline's grants: who could have done `action`.

    `inferred`: exactly one candidate, an account; `ambiguous`: several, or an organization / OU; `unknown`: none.
    """

    kind: Literal["inference"] = "inference"
    execution_arn: ExecutionArn
    action: PipelineAction = PipelineAction.START
    source: Literal[AttributionSource.INFERRED, AttributionSource.AMBIGUOUS, AttributionSource.UNKNOWN]
    candidates: tuple[Candidate, ...] = ()
    time: AwareDatetime

    @model_validator(mode="after")
    def _candidates_fit_the_source(self) -> InferenceObservation:
        if list(self.candidates) != sorted(set(self.candidates)):
            raise ValueError("candidates must be sorted and unique")
        count = len(self.candidates)
        single_account = count == 1 and _is_account(self.candidates[0])
        expected = {
            AttributionSource.INFERRED: single_account,
            AttributionSource.AMBIGUOUS: count >= 1 and not single_account,
            AttributionSource.UNKNOWN: count == 0,
        }
        if not expected[self.source]:
            raise ValueError(f"{count} candidate(s) do not fit source {self.source.value!r}")
        return self


Observation = Annotated[StatusObservation | ActionObservation | InferenceObservation, Field(discriminator="kind")]


# ---------------------------------------------------------------------------------------------------------- record


class ActionEntry(_Frozen):
    """The strongest attribution known for one action kind on one execution."""

    action: PipelineAction
    source: AttributionSource
    account: AccountId | None = None
    principal: _Principal | None = None
    principal_id: _Principal | None = None
    candidates: tuple[Candidate, ...] = ()
    at: AwareDatetime
    event_id: _EventId | None = None

    def order(self) -> tuple[Any, ...]:
        """A total order over every field: the smallest entry is the one kept."""
        return (
            -self.source.rank,
            *_absent_last(self.account),
            *_absent_last(self.principal),
            *_absent_last(self.principal_id),
            _PREFERENCE[self.source],
            self.candidates,
            self.at,
            *_absent_last(self.event_id),
            self.action.value,
        )


def _absent_last(value: str | None) -> tuple[bool, str]:
    return (value is None, value or "")


class ExecutionRecord(BaseModel):
    """What is known of one execution. Build it with `merge`; store it under `key`."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # ignore: a stored dump carries the computed fields

    execution_arn: ExecutionArn
    status: ExecutionStatus | None = None
    status_at: AwareDatetime | None = None
    status_history: dict[ExecutionStatus, AwareDatetime] = Field(default_factory=dict)
    started_at: AwareDatetime | None = None
    actions: dict[PipelineAction, ActionEntry] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ExecutionRecord:
        if (self.status is None) != (self.status_at is None):
            raise ValueError("status and status_at go together")
        if any(kind != entry.action for kind, entry in self.actions.items()):
            raise ValueError("each actions entry must be keyed by its own action")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def key(self) -> str:
        """The canonical (lower-case) execution ARN: the storage key and the alert key."""
        return self.execution_arn.lower()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pipeline_arn(self) -> str:
        return pipeline_of(self.execution_arn)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def owner_account(self) -> str:
        return arn_account(self.execution_arn)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ended_at(self) -> datetime | None:
        return self.status_at if self.status in TERMINAL_STATUSES else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def source(self) -> AttributionSource:
        """The attribution source of the start (`unknown` while no start is attributed)."""
        start = self.actions.get(PipelineAction.START)
        return start.source if start else AttributionSource.UNKNOWN

    @computed_field  # type: ignore[prop-decorator]
    @property
    def initiator_account(self) -> str | None:
        start = self.actions.get(PipelineAction.START)
        return start.account if start else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def initiator_principal(self) -> str | None:
        start = self.actions.get(PipelineAction.START)
        return (start.principal or start.principal_id) if start else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def candidates(self) -> tuple[str, ...]:
        start = self.actions.get(PipelineAction.START)
        return start.candidates if start else ()

    @property
    def pipeline_name(self) -> str:
        return self.pipeline_arn.rsplit("/", 1)[-1]


# ----------------------------------------------------------------------------------------------------------- merge


def merge(record: ExecutionRecord | None, obs: Observation) -> ExecutionRecord:
    """Fold one observation into the record of its execution (None: no record yet). Raises ValueError on a mismatch."""
    unit = _record_of(obs)
    return unit if record is None else _join(record, unit)


def _record_of(obs: Observation) -> ExecutionRecord:
    if isinstance(obs, StatusObservation):
        starts = [obs.started_at, obs.time if obs.status == "Executing" else None]
        return ExecutionRecord(
            execution_arn=obs.execution_arn,
            status=obs.status,
            status_at=obs.time,
            status_history={obs.status: obs.time},
            started_at=_earliest(starts),
        )
    if isinstance(obs, ActionObservation):
        entry = ActionEntry(
            action=obs.action,
            source=obs.source,
            account=obs.account,
            principal=obs.principal,
            principal_id=obs.principal_id,
            at=obs.time,
            event_id=obs.event_id,
        )
    else:
        entry = ActionEntry(
            action=obs.action,
            source=obs.source,
            account=obs.candidates[0] if obs.source == AttributionSource.INFERRED else None,
            candidates=obs.candidates,
            at=obs.time,
        )
    return ExecutionRecord(
        execution_arn=obs.execution_arn,
        started_at=obs.time if obs.action == PipelineAction.START else None,
        actions={entry.action: entry},
    )


def _join(a: ExecutionRecord, b: ExecutionRecord) -> ExecutionRecord:
    if a.key != b.key:
        raise ValueError(f"cannot merge observations of {b.execution_arn} into the record of {a.execution_arn}")
    history: dict[str, datetime] = {}
    for status, at in [*a.status_history.items(), *b.status_history.items()]:
        history[status] = min(at, history.get(status, at))
    current = max(
        ((r.status_at, _PROGRESS.get(r.status, 2), r.status) for r in (a, b) if r.status and r.status_at),
        default=None,
    )
    actions: dict[PipelineAction, ActionEntry] = {}
    for entry in [*a.actions.values(), *b.actions.values()]:
        kept = actions.get(entry.action)
        actions[entry.action] = entry if kept is None or entry.order() < kept.order() else kept
    return ExecutionRecord(
        execution_arn=min(a.execution_arn, b.execution_arn),
        status=current[2] if current else None,
        status_at=current[0] if current else None,
        status_history=dict(sorted(history.items(), key=lambda item: (item[1], item[0]))),
        started_at=_earliest([a.started_at, b.started_at]),
        actions=dict(sorted(actions.items())),
    )


def _earliest(times: Iterable[datetime | None]) -> datetime | None:
    return min((t for t in times if t is not None), default=None)


# ------------------------------------------------------------------------------------------ events -> observations


def observe_status(event: PipelineExecutionStatusEvent) -> StatusObservation:
    """A status event as an observation. A terminal status is timed at executionEndTime when the event has it."""
    detail = event.detail
    end = detail.execution_end_time if event.terminal else None
    return StatusObservation(
        execution_arn=detail.pipeline_execution_arn,
        pipeline_arn=detail.pipeline_arn,
        status=detail.current_status,
        time=end or event.time,
        started_at=detail.execution_start_time,
    )


def observe_call(event: PipelineApiCallEvent, *, owner_account: str) -> ActionObservation | None:
    """Classify a CloudTrail Start/Stop/Retry record seen by the owner. None when it attributes nothing:

    a failed or refused call, a pipeline the owner does not own, or a delivery that fits no known route.
    - caller == owner, delivered to the owner: `owner`;
    - caller != owner, delivered to and recorded for the owner: `cloudtrail-owner-copy` ([U] for SageMaker);
    - caller != owner, the caller's own record (delivered to and recorded for the caller): `forwarded`. The caller
      of this function must have verified the execution in the owner account (DescribePipelineExecution) first.
    """
    execution = event.execution_arn()
    if not event.succeeded or execution is None or arn_account(execution) != owner_account:
        return None
    caller, recipient, delivered = event.caller_account(), event.detail.recipient_account_id, event.account
    if caller == owner_account:
        source = AttributionSource.OWNER if recipient == delivered == owner_account else None
    elif recipient == delivered == owner_account:
        source = AttributionSource.OWNER_COPY
    elif recipient == delivered == caller:
        source = AttributionSource.FORWARDED
    else:
        source = None
    if source is None:
        return None
    return ActionObservation(
        execution_arn=execution,
        action=event.action,
        source=source,
        account=caller,
        principal=event.principal_arn(),
        principal_id=event.principal_id(),
        time=event.detail.event_time,
        event_id=event.detail.event_id,
    )


# ---------------------------------------------------------------------------------------------------------- grants


class GrantView(Protocol):
    """What attribution reads of a grant: `pipeshare.models.owner.Grant` (the inventory item) fits it."""

    @property
    def pipeline_arn(self) -> str: ...
    @property
    def consumer(self) -> str: ...  # an account ID, an IAM role/user ARN, or an organization / OU ARN
    @property
    def share_arn(self) -> str: ...
    @property
    def share_name(self) -> str: ...
    @property
    def association_status(self) -> str: ...
    @property
    def permission_arn(self) -> str | None: ...
    @property
    def permission_name(self) -> str | None: ...
    @property
    def allow_execution(self) -> bool: ...


def _is_account(value: str) -> bool:
    return len(value) == 12 and value.isdigit()


def candidate_of(consumer: str) -> str:
    """The candidate a grant's principal stands for: its account (account ID, IAM role/user ARN) or itself (org/OU)."""
    if _is_account(consumer):
        return consumer
    parts = consumer.split(":", 5)
    if len(parts) == 6 and parts[2] == "iam" and _is_account(parts[4]):
        return parts[4]
    return consumer


def infer(
    pipeline_arn: str,
    grants: Iterable[GrantView],
    owner_account: str,
    *,
    execution_arn: str,
    at: datetime,
    action: PipelineAction = PipelineAction.START,
) -> InferenceObservation:
    """Who could have acted: the principals ASSOCIATED with allow-execution on this pipeline (never the owner).

    One account: `inferred`; several, or an organization / OU: `ambiguous` (candidates sorted); none: `unknown`.
    An IAM role/user principal counts as its account. Grants on other pipelines are ignored.
    """
    if not same_arn(pipeline_of(execution_arn), pipeline_arn):
        raise ValueError(f"{execution_arn} is not an execution of {pipeline_arn}")
    candidates = tuple(
        sorted(
            {
                candidate_of(g.consumer)
                for g in grants
                if g.allow_execution
                and g.association_status.upper() == "ASSOCIATED"
                and same_arn(g.pipeline_arn, pipeline_arn)
                and candidate_of(g.consumer) != owner_account
            }
        )
    )
    source = (
        AttributionSource.UNKNOWN
        if not candidates
        else AttributionSource.INFERRED
        if len(candidates) == 1 and _is_account(candidates[0])
        else AttributionSource.AMBIGUOUS
    )
    return InferenceObservation(
        execution_arn=execution_arn, action=action, source=source, candidates=candidates, time=at
    )


# ---------------------------------------------------------------------------------------------------------- alerts


class AlertKey(NamedTuple):
    """One alert: `execution_arn` is the record's canonical `key` (lower-case), the conditional write's key."""

    execution_arn: str
    action: PipelineAction


def _due(record: ExecutionRecord | None, *, owner_account: str, alert_on_owner: bool) -> set[AlertKey]:
    if record is None:
        return set()
    due: set[AlertKey] = set()
    for action, entry in record.actions.items():
        by_owner = entry.source == AttributionSource.OWNER or entry.account == owner_account
        if (alert_on_owner if by_owner else entry.source in CONSUMER_SOURCES) and entry.source.rank > 0:
            due.add(AlertKey(record.key, action))
    return due


def alerts_due(
    before: ExecutionRecord | None, after: ExecutionRecord, *, owner_account: str, alert_on_owner: bool
) -> list[AlertKey]:
    """The (execution, action) alerts this merge makes due: attributed to a consumer (or to the owner, when
    alert_on_owner) now, and not before. Sorted. Exactly-once is the conditional write's job, keyed by AlertKey."""
    if before is not None and before.key != after.key:
        raise ValueError("before and after are records of different executions")
    now = _due(after, owner_account=owner_account, alert_on_owner=alert_on_owner)
    earlier = _due(before, owner_account=owner_account, alert_on_owner=alert_on_owner)
    return sorted(now - earlier)


class OwnerAlert(NamedTuple):
    subject: str
    message: dict[str, Any]
    attributes: dict[str, str]


_VERBS = {PipelineAction.START: "started", PipelineAction.STOP: "stopped", PipelineAction.RETRY: "retried"}

_EVIDENCE = {
    AttributionSource.OWNER: "the owner account's CloudTrail record of the call",
    AttributionSource.FORWARDED: (
        "the consumer account's own CloudTrail record of the call, forwarded to the owner and checked against the "
        "execution in the owner account"
    ),
    AttributionSource.OWNER_COPY: "the owner account's copy of the consumer's cross-account CloudTrail record",
    AttributionSource.INFERRED: "the pipeline's grants: no CloudTrail record of the call was received",
    AttributionSource.AMBIGUOUS: "the pipeline's grants: no CloudTrail record of the call was received",
    AttributionSource.UNKNOWN: "nothing: no CloudTrail record and no allow-execution grant explain the call",
}


def _caveat(entry: ActionEntry) -> str | None:
    if entry.source == AttributionSource.INFERRED:
        return (
            f"Inferred, not observed: account {entry.account} is the only consumer allowed to run this pipeline, so "
            "it most likely made the call. Confirm in that account's CloudTrail before acting on it."
        )
    if entry.source == AttributionSource.AMBIGUOUS:
        groups = any(not _is_account(c) for c in entry.candidates)
        return (
            f"Not known which consumer made the call: any of {', '.join(entry.candidates)} may run this pipeline"
            + (" (an organization or OU stands for every account in it)" if groups else "")
            + ". Check their CloudTrail records to find out."
        )
    if entry.source == AttributionSource.UNKNOWN:
        return "The caller is unknown."
    return None


def _actor(entry: ActionEntry, owner_account: str) -> str:
    if entry.source == AttributionSource.OWNER or entry.account == owner_account:
        return f"owner {owner_account}"
    if entry.source == AttributionSource.INFERRED:
        return f"consumer {entry.account} (inferred)"
    if entry.source == AttributionSource.AMBIGUOUS:
        count = len(entry.candidates)
        return f"one of {count} consumers (ambiguous)" if count > 1 else "a consumer (ambiguous)"
    if entry.source == AttributionSource.UNKNOWN:
        return "an unknown caller"
    return f"consumer {entry.account}"


def _ascii(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def _subject(actor: str, verb: str, pipeline: str, suffix: str) -> str:
    head = _ascii(f"pipeshare: {actor} {verb} ")
    room = SUBJECT_MAX - len(head) - len(suffix)
    name = _ascii(pipeline)
    if len(name) > room:
        name = name[: max(room - 3, 0)] + "..."
    return (head + name + suffix)[:SUBJECT_MAX]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def alert_message(record: ExecutionRecord, action: PipelineAction, grant: GrantView | None) -> OwnerAlert:
    """The SNS message for one due alert: a readable ASCII subject (<= 100 chars), a JSON body, filter attributes.

    `grant` is the permission grant that allowed the call (None when none is on record). It must belong to the
    attributed consumer (or to one of the candidates when ambiguous). Raises ValueError otherwise, or when the record
    has no entry for `action`.
    """
    entry = record.actions.get(action)
    if entry is None:
        raise ValueError(f"the record of {record.execution_arn} has no {action.value!r} action")
    owner = record.owner_account
    allowed = set(entry.candidates) | ({entry.account} if entry.account else set())
    if grant is not None and candidate_of(grant.consumer) not in allowed:
        raise ValueError(f"the grant of {grant.consumer} does not belong to the attributed consumer")
    if grant is not None and not same_arn(grant.pipeline_arn, record.pipeline_arn):
        raise ValueError(f"the grant is on {grant.pipeline_arn}, not on {record.pipeline_arn}")
    by_owner = entry.source == AttributionSource.OWNER or entry.account == owner
    consumer = None if by_owner else entry.account
    event = f"execution.{action.value}"
    pays = (
        f"The owner account {owner} pays for everything this execution runs: its jobs run in and are billed to the "
        "account that owns the pipeline, whichever account started, stopped or retried it."
    )
    message: dict[str, Any] = {
        "schema": SCHEMA,
        "event": event,
        "action": action.value,
        "consumer_account": consumer,
        "principal": entry.principal,
        "principal_id": entry.principal_id,
        "candidates": list(entry.candidates),
        "acted_at": _iso(entry.at),
        "pipeline_name": record.pipeline_name,
        "pipeline_arn": record.pipeline_arn,
        "execution_arn": record.execution_arn,
        "owner_account": owner,
        "region": record.execution_arn.split(":")[3],
        "execution": {
            "status": record.status,
            "started_at": _iso(record.started_at),
            "ended_at": _iso(record.ended_at),
        },
        "grant": None
        if grant is None
        else {
            "consumer": grant.consumer,
            "share_arn": grant.share_arn,
            "share_name": grant.share_name,
            "permission_arn": grant.permission_arn,
            "permission_name": grant.permission_name,
            "association_status": grant.association_status,
            "allow_execution": grant.allow_execution,
        },
        "attribution": {
            "source": entry.source.value,
            "rank": entry.source.rank,
            "evidence": _EVIDENCE[entry.source],
            "caveat": _caveat(entry),
        },
        "billing": {"payer_account": owner, "statement": pays},
    }
    attributes = {"event": event, "action": action.value, "source": entry.source.value, "owner_account": owner}
    if consumer:
        attributes["consumer_account"] = consumer
    subject = _subject(_actor(entry, owner), _VERBS[action], record.pipeline_name, "" if by_owner else " (owner pays)")
    return OwnerAlert(subject=subject, message=message, attributes=attributes)
