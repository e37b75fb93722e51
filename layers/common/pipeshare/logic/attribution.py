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
from typing import TYPE_CHECKING, Any, Literal

from pipeshare.models.alert_messages import (
    ALERT_SCHEMA,
    AlertExecution,
    AlertMessage,
    AttributionBlock,
    Correction,
    GrantBlock,
)
from pipeshare.models.executions import (
    ActionEntry,
    ActionObservation,
    AlertKey,
    AttributionSource,
    ExecutionRecord,
    InferenceObservation,
    Observation,
    StatusObservation,
    Transition,
    _progress,
)
from pipeshare.models.messages import OwnerAlert, PayerBilling
from pipeshare.models.owner import GrantView
from pipeshare.models.types import PipelineAction, arn_account, candidate_of, is_account, pipeline_of, same_arn

if TYPE_CHECKING:
    from pipeshare.models.owner_events import PipelineApiCallEvent, PipelineExecutionStatusEvent

SCHEMA = ALERT_SCHEMA
CallSource = Literal[AttributionSource.OWNER, AttributionSource.FORWARDED, AttributionSource.OWNER_COPY]
InferenceSource = Literal[AttributionSource.INFERRED, AttributionSource.AMBIGUOUS, AttributionSource.UNKNOWN]
SUBJECT_MAX = 100  # SNS limit


CONSUMER_SOURCES = frozenset(
    {
        AttributionSource.FORWARDED,
        AttributionSource.OWNER_COPY,
        AttributionSource.INFERRED,
        AttributionSource.AMBIGUOUS,
    }
)
MAX_TRANSITIONS = 200  # status changes kept per execution (a few per attempt)
MAX_RETRY_CLAIMS = 50


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
            transitions=(Transition(at=obs.time, status=obs.status, previous=obs.previous),),
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
    if obs.action == PipelineAction.RETRY:
        if isinstance(obs, ActionObservation):
            return ExecutionRecord(execution_arn=obs.execution_arn, retry_claims=(entry,))
        return ExecutionRecord(execution_arn=obs.execution_arn, retry_inferences={obs.attempt: entry})
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
        ((r.status_at, _progress(r.status), r.status) for r in (a, b) if r.status and r.status_at),
        default=None,
    )
    actions: dict[PipelineAction, ActionEntry] = {}
    for entry in [*a.actions.values(), *b.actions.values()]:
        kept = actions.get(entry.action)
        actions[entry.action] = entry if kept is None or entry.order() < kept.order() else kept
    inferences: dict[int, ActionEntry] = {}
    for attempt, entry in [*a.retry_inferences.items(), *b.retry_inferences.items()]:
        kept = inferences.get(attempt)
        inferences[attempt] = entry if kept is None or entry.order() < kept.order() else kept
    transitions = sorted(set(a.transitions) | set(b.transitions), key=lambda t: t.order())[:MAX_TRANSITIONS]
    claims = sorted(set(a.retry_claims) | set(b.retry_claims), key=lambda e: (e.at, e.order()))[:MAX_RETRY_CLAIMS]
    return ExecutionRecord(
        execution_arn=min(a.execution_arn, b.execution_arn),
        status=current[2] if current else None,
        status_at=current[0] if current else None,
        status_history=dict(sorted(history.items(), key=lambda item: (item[1], item[0]))),
        started_at=_earliest([a.started_at, b.started_at]),
        actions=dict(sorted(actions.items())),
        transitions=tuple(transitions),
        retry_claims=tuple(claims),
        retry_inferences=dict(sorted(inferences.items())),
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
        previous=detail.previous_status,
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
    source: CallSource | None
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


def infer(
    pipeline_arn: str,
    grants: Iterable[GrantView],
    owner_account: str,
    *,
    execution_arn: str,
    at: datetime,
    action: PipelineAction = PipelineAction.START,
    attempt: int = 0,
    owner_may_have: bool = False,
) -> InferenceObservation:
    """Who could have acted: the principals ASSOCIATED with allow-execution on this pipeline.

    One account: `inferred`; several, or an organization / OU: `ambiguous` (candidates sorted); none: `unknown`.
    An IAM role/user principal counts as its account. Grants on other pipelines are ignored. The owner is a candidate
    only when `owner_may_have` (its own calls would leave no CloudTrail record: no trail logs them); then the owner
    alone is `inferred` to the owner, and the owner with consumers is `ambiguous`.
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
            | ({owner_account} if owner_may_have else set())
        )
    )
    source: InferenceSource = (
        AttributionSource.UNKNOWN
        if not candidates
        else AttributionSource.INFERRED
        if len(candidates) == 1 and is_account(candidates[0])
        else AttributionSource.AMBIGUOUS
    )
    return InferenceObservation(
        execution_arn=execution_arn, action=action, attempt=attempt, source=source, candidates=candidates, time=at
    )


# ---------------------------------------------------------------------------------------------------------- alerts


def _slots(record: ExecutionRecord) -> dict[tuple[PipelineAction, int], ActionEntry]:
    found = {(action, 0): entry for action, entry in record.actions.items()}
    found.update({(PipelineAction.RETRY, n): e for n, e in record.retries().items() if e is not None})
    return found


def _worth_alerting(entry: ActionEntry, *, owner_account: str, alert_on_owner: bool) -> bool:
    by_owner = entry.source == AttributionSource.OWNER or entry.account == owner_account
    return (alert_on_owner if by_owner else entry.source in CONSUMER_SOURCES) and entry.source.rank > 0


def _who(entry: ActionEntry) -> tuple[str, ...]:
    return (entry.account,) if entry.account else entry.candidates


def _due(
    record: ExecutionRecord | None, *, owner_account: str, alert_on_owner: bool
) -> dict[tuple[PipelineAction, int], ActionEntry]:
    if record is None:
        return {}
    return {
        slot: entry
        for slot, entry in _slots(record).items()
        if _worth_alerting(entry, owner_account=owner_account, alert_on_owner=alert_on_owner)
    }


def alerts_due(
    before: ExecutionRecord | None, after: ExecutionRecord, *, owner_account: str, alert_on_owner: bool
) -> list[AlertKey]:
    """The alerts this merge makes due. Sorted. Exactly-once is the conditional write's job, keyed by AlertKey.

    - an alert for each (action, attempt) attributed to a consumer (or to the owner, when alert_on_owner) now and
      not before;
    - a correction for each slot alerted before whose actor has changed (e.g. an inferred consumer, then the owner's
      own CloudTrail record): no wrong attribution stands uncorrected.
    """
    if before is not None and before.key != after.key:
        raise ValueError("before and after are records of different executions")
    now = _due(after, owner_account=owner_account, alert_on_owner=alert_on_owner)
    earlier = _due(before, owner_account=owner_account, alert_on_owner=alert_on_owner)
    keys = [AlertKey(after.key, action, attempt) for action, attempt in now.keys() - earlier.keys()]
    current = _slots(after)
    for slot, old in earlier.items():
        new = current.get(slot)
        if new is not None and new.source.rank > old.source.rank and _who(new) != _who(old):
            keys.append(AlertKey(after.key, slot[0], slot[1], f"{new.source.value}-{'-'.join(_who(new))}"))
    return sorted(keys)


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


OWNER_UNSEEN = (
    " The owner account is among them: no CloudTrail trail logs its management events in this region, so its own"
    " runs cannot be told apart from a consumer's."
)


def _caveat(entry: ActionEntry, owner: str) -> str | None:
    if entry.source == AttributionSource.INFERRED:
        return (
            f"Inferred, not observed: account {entry.account} is the only consumer allowed to run this pipeline, so "
            "it most likely made the call. Confirm in that account's CloudTrail before acting on it."
        )
    if entry.source == AttributionSource.AMBIGUOUS:
        groups = any(not is_account(c) for c in entry.candidates)
        return (
            f"Not known which account made the call: any of {', '.join(entry.candidates)} may run this pipeline"
            + (" (an organization or OU stands for every account in it)" if groups else "")
            + ". Check their CloudTrail records to find out."
            + (OWNER_UNSEEN if owner in entry.candidates else "")
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


def alert_message(
    record: ExecutionRecord,
    action: PipelineAction,
    grant: GrantView | None,
    *,
    attempt: int = 0,
    corrects: ActionEntry | None = None,
    projection: dict[str, Any] | None = None,
) -> OwnerAlert:
    """The SNS message for one due alert: a readable ASCII subject (<= 100 chars), a JSON body, filter attributes.

    `grant` is the permission grant that allowed the call (None when none is on record). It must belong to the
    attributed consumer (or to one of the candidates when ambiguous). Raises ValueError otherwise, or when the record
    has no entry for `action` (and `attempt`, for a retry). `corrects`: the attribution an earlier alert gave, which
    this message corrects (event `execution.attribution-corrected`). `projection`: the start projection block
    (logic/projection.py), put in the body as `projection`; its `summary` ends the subject when it fits whole.
    """
    entry = _alerted_entry(record, action, attempt, grant)
    owner = record.owner_account
    by_owner = entry.source == AttributionSource.OWNER or entry.account == owner
    event = "execution.attribution-corrected" if corrects is not None else f"execution.{action.value}"
    message = _alert_body(
        record,
        entry,
        (action, attempt, event),
        grant,
        consumer=None if by_owner else entry.account,
        corrects=None if corrects is None else _correction(corrects, entry, action, owner),
        projection=projection,
    )
    attributes = {"event": event, "action": action.value, "source": entry.source.value, "owner_account": owner}
    if message.consumer_account:
        attributes["consumer_account"] = message.consumer_account
    suffix = (f" (attempt {attempt})" if attempt else "") + ("" if by_owner else " (owner pays)")
    actor = _actor(entry, owner)
    actor = f"correction: {actor}" if corrects is not None else actor
    subject = _subject(actor, _VERBS[action], record.pipeline_name, suffix)
    if projection is not None:
        subject = _with_summary(subject, projection.get("summary"))
    return OwnerAlert(subject=subject, message=message.body(), attributes=attributes)


def _alerted_entry(
    record: ExecutionRecord, action: PipelineAction, attempt: int, grant: GrantView | None
) -> ActionEntry:
    """The record's entry for the action alerted, checked against the grant said to allow it (ValueError)."""
    entry = record.entry(action, attempt)
    if entry is None:
        raise ValueError(f"the record of {record.execution_arn} has no {action.value!r} action")
    allowed = set(entry.candidates) | ({entry.account} if entry.account else set())
    if grant is not None and candidate_of(grant.consumer) not in allowed:
        raise ValueError(f"the grant of {grant.consumer} does not belong to the attributed consumer")
    if grant is not None and not same_arn(grant.pipeline_arn, record.pipeline_arn):
        raise ValueError(f"the grant is on {grant.pipeline_arn}, not on {record.pipeline_arn}")
    return entry


def _alert_body(
    record: ExecutionRecord,
    entry: ActionEntry,
    what: tuple[PipelineAction, int, str],
    grant: GrantView | None,
    *,
    consumer: str | None,
    corrects: Correction | None,
    projection: dict[str, Any] | None,
) -> AlertMessage:
    """The body. `what`: the action, its attempt (0: not a retry) and the event name."""
    action, attempt, event = what
    owner = record.owner_account
    return AlertMessage(
        event=event,
        action=action.value,
        attempt=attempt or None,
        consumer_account=consumer,
        principal=entry.principal,
        principal_id=entry.principal_id,
        candidates=entry.candidates,
        acted_at=_iso(entry.at),
        pipeline_name=record.pipeline_name,
        pipeline_arn=record.pipeline_arn,
        execution_arn=record.execution_arn,
        owner_account=owner,
        region=record.execution_arn.split(":")[3],
        execution=AlertExecution(
            status=record.status, started_at=_iso(record.started_at), ended_at=_iso(record.ended_at)
        ),
        grant=None if grant is None else _grant_block(grant),
        attribution=AttributionBlock(
            source=entry.source.value,
            rank=entry.source.rank,
            evidence=_EVIDENCE[entry.source],
            caveat=_caveat(entry, owner),
        ),
        billing=PayerBilling(payer_account=owner, statement=_PAYS.format(owner=owner)),
        corrects=corrects,
        projection=projection,
    )


_PAYS = (
    "The owner account {owner} pays for everything this execution runs: its jobs run in and are billed to the "
    "account that owns the pipeline, whichever account started, stopped or retried it."
)


def _grant_block(grant: GrantView) -> GrantBlock:
    return GrantBlock(
        consumer=grant.consumer,
        share_arn=grant.share_arn,
        share_name=grant.share_name,
        permission_arn=grant.permission_arn,
        permission_name=grant.permission_name,
        association_status=grant.association_status,
        allow_execution=grant.allow_execution,
    )


def _correction(corrects: ActionEntry, entry: ActionEntry, action: PipelineAction, owner: str) -> Correction:
    return Correction(
        source=corrects.source.value,
        consumer_account=corrects.account,
        candidates=corrects.candidates,
        statement=f"An earlier alert attributed this {action.value} to {_actor(corrects, owner)}; "
        f"stronger evidence shows {_actor(entry, owner)}.",
    )


def _with_summary(subject: str, summary: Any) -> str:
    """The subject with ` - <summary>` when both fit whole in SUBJECT_MAX, else with its first clause (`worst case
    USD 9.00` of `worst case USD 9.00 > budget left`) when that fits; a subject whose pipeline name had to be
    shortened is already SUBJECT_MAX long: it gets none. Account IDs are never cut."""
    if not isinstance(summary, str) or not summary:
        return subject
    for phrase in (summary, summary.split(" > ", 1)[0]):
        longer = f"{subject} - {_ascii(phrase)}"
        if len(longer) <= SUBJECT_MAX:
            return longer
    return subject
