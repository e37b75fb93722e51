"""Track the owner's pipeline executions: merge every observation, attribute starts/stops/retries, make alerts due.

Pure logic with ports as arguments. Merging is commutative and idempotent (logic/attribution.py), so duplicated and
reordered events give the same record; each (execution, action, attempt) alert is written once by a conditional
write. Inference from the grants waits for a settle period (SettleScheduler: an SQS delay queue), since CloudTrail
records reach EventBridge best effort and minutes late; a claim arriving even later corrects an alert once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from pipeshare.adapters.ports import (
    ExecutionRepository,
    GrantRepository,
    PipelineExecutionGateway,
    ProjectionSources,
    Settle,
    SpendLedger,
    TrailStatusGateway,
)
from pipeshare.logic.attribution import alert_message, alerts_due, infer, merge, observe_call, observe_status
from pipeshare.logic.spend import consumer_of, spend_holder
from pipeshare.models.errors import ConcurrentUpdateError
from pipeshare.models.executions import AlertKey, AttributionSource, ExecutionRecord, Observation
from pipeshare.models.messages import OwnerAlert
from pipeshare.models.owner import Grant, strongest
from pipeshare.models.owner_outcomes import TrackOutcome
from pipeshare.models.settle import SettleRequest
from pipeshare.models.types import PipelineAction, arn_account, candidate_of, pipeline_of, same_arn
from pipeshare.observability import logger

if TYPE_CHECKING:
    from pipeshare.models.owner_events import (
        PipelineApiCallEvent,
        PipelineExecutionStatusEvent,
        PipelineStepStatusEvent,
    )
    from pipeshare.models.projections import StartProjection

MAX_ATTEMPTS = 4


@dataclass
class _Grants:
    """The pipeline's grants, read at most once per invocation."""

    repository: GrantRepository
    pipeline_arn: str
    loaded: Mapping[str, Grant] | None = None

    def all(self) -> list[Grant]:
        if self.loaded is None:
            self.loaded = self.repository.grants(self.pipeline_arn)
        return list(self.loaded.values())

    def of(self, account: str | None) -> Grant | None:
        return strongest(g for g in self.all() if account is not None and candidate_of(g.consumer) == account)


def track_event(
    event: PipelineExecutionStatusEvent | PipelineStepStatusEvent | PipelineApiCallEvent,
    *,
    owner_account: str,
    executions: ExecutionRepository,
    grants: GrantRepository,
    sagemaker: PipelineExecutionGateway,
    alert_on_owner: bool,
    settle: Settle | None,
    spend: SpendLedger,
    now: datetime,
    projection: ProjectionSources | None = None,
) -> TrackOutcome:
    """Record one event. `settle` None: no inference (executions nobody claims stay `unknown`). When the consumer an
    execution is attributed to changes, the cost already counted moves to it (`spend`). `projection`: when a start
    alert becomes due for a consumer-attributed start, its worst and typical cost go in it (None: no projection)."""
    observation = _observation(event, owner_account, sagemaker)
    if isinstance(observation, TrackOutcome):
        return observation
    return _record(
        observation,
        executions=executions,
        grants=_Grants(grants, pipeline_of(observation.execution_arn)),
        owner_account=owner_account,
        alert_on_owner=alert_on_owner,
        settle=settle,
        spend=spend,
        now=now,
        projection=projection,
    )


def _observation(
    event: PipelineExecutionStatusEvent | PipelineStepStatusEvent | PipelineApiCallEvent,
    owner_account: str,
    sagemaker: PipelineExecutionGateway,
) -> Observation | TrackOutcome:
    """What the event observes, or why it is not recorded (ignored, or a claim SageMaker does not confirm)."""
    # the tracker's own event models, imported here: the settler shares this module and never builds them
    from pipeshare.models.owner_events import PipelineExecutionStatusEvent, PipelineStepStatusEvent

    if isinstance(event, PipelineStepStatusEvent):
        return TrackOutcome(status="ignored", reason="step status changes are not needed for attribution")
    if isinstance(event, PipelineExecutionStatusEvent):
        if event.owner_account() != owner_account:
            return TrackOutcome(
                status="ignored", reason=f"execution of account {event.owner_account()}, not this owner"
            )
        unknown = event.unknown_values()
        if unknown:
            logger.warning("status outside the API enum, kept as text", extra={"event_id": event.id, **unknown})
        return observe_status(event)
    call = observe_call(event, owner_account=owner_account)
    if call is None:
        return TrackOutcome(status="ignored", reason="a failed call, or a call on a pipeline this account does not own")
    if call.source in (AttributionSource.FORWARDED, AttributionSource.OWNER_COPY):
        # the event is a claim: trust it only for an execution that exists here, of the pipeline it names
        described = sagemaker.describe_execution(call.execution_arn)
        if described is None or not same_arn(str(described.get("PipelineArn", "")), pipeline_of(call.execution_arn)):
            return TrackOutcome(
                status="unverified",
                reason="the execution does not exist in this account",
                execution_arn=call.execution_arn,
            )
    return call


def settle_attribution(
    request: SettleRequest,
    *,
    owner_account: str,
    executions: ExecutionRepository,
    grants: GrantRepository,
    trail: TrailStatusGateway,
    alert_on_owner: bool,
    spend: SpendLedger,
    now: datetime,
    projection: ProjectionSources | None = None,
) -> TrackOutcome:
    """The settle period of one slot (a start, or one retry attempt) has passed: if nobody has claimed it, attribute
    it from the pipeline's grants. When no CloudTrail trail logs the owner's management events, the owner's own
    calls leave no record, so the owner is one of the candidates (never silently a consumer). `projection`: as for
    track_event (an inferred start alert carries the projection only when the caller passes its sources)."""
    record, version = executions.get(request.execution_arn)
    if record is None or arn_account(record.execution_arn) != owner_account:
        return TrackOutcome(
            status="ignored", reason="no record of this execution here", execution_arn=request.execution_arn
        )
    slot = (request.action, request.attempt)
    if slot not in record.open_slots():
        return TrackOutcome(
            status="duplicate",
            reason="already attributed",
            execution_arn=record.execution_arn,
            source=record.source,
            initiator_account=record.initiator_account,
        )
    pool = _Grants(grants, record.pipeline_arn)
    observation = infer(
        record.pipeline_arn,
        pool.all(),
        owner_account,
        execution_arn=record.execution_arn,
        at=now,
        action=request.action,
        attempt=request.attempt,
        owner_may_have=not trail.owner_calls_recorded(record.execution_arn.split(":")[3]),
    )
    return _record(
        observation,
        executions=executions,
        grants=pool,
        owner_account=owner_account,
        alert_on_owner=alert_on_owner,
        settle=None,
        spend=spend,
        now=now,
        known=(record, version),
        projection=projection,
    )


def _record(
    observation: Observation,
    *,
    executions: ExecutionRepository,
    grants: _Grants,
    owner_account: str,
    alert_on_owner: bool,
    settle: Settle | None,
    spend: SpendLedger,
    now: datetime,
    known: tuple[ExecutionRecord | None, int] | None = None,
    projection: ProjectionSources | None = None,
) -> TrackOutcome:
    """Merge, schedule what must settle, save with the alerts due (a due consumer start alert with its projection).
    `known`: the record as just read (saves a read; a conflicting save reads again)."""
    scheduled: set[tuple[PipelineAction, int]] = set()
    projected = _Projected(projection, owner_account, now)
    for _ in range(MAX_ATTEMPTS):
        before, version = known if known is not None else executions.get(observation.execution_arn)
        known = None
        after = merge(before, observation)
        if before is not None and after == before:
            return TrackOutcome(
                status="duplicate",
                reason="nothing new",
                execution_arn=after.execution_arn,
                source=after.source,
                initiator_account=after.initiator_account,
            )
        if settle is not None:
            _schedule_settles(settle, before, after, scheduled)
        holder = spend_holder(after, owner_account)
        if holder != spend_holder(before, owner_account):
            # before the save, like the settle request: a failed save retries and moves again (moving is idempotent)
            spend.move_spend(after.execution_arn, holder=holder, at=now)
        due = alerts_due(before, after, owner_account=owner_account, alert_on_owner=alert_on_owner)
        start, result = projected.for_alerts(after, due)
        alerts = [(key, _alert(before, after, key, grants, result if key == start else None)) for key in due]
        if executions.save(after, version=version, alerts=alerts, at=now, worst_case=_stored(result)):
            return _recorded(before, after, due, scheduled, result)
    raise ConcurrentUpdateError(f"{observation.execution_arn} changed {MAX_ATTEMPTS} times while being recorded")


def _schedule_settles(
    settle: Settle, before: ExecutionRecord | None, after: ExecutionRecord, scheduled: set[tuple[PipelineAction, int]]
) -> None:
    """Schedule the settle of each slot newly open. Before the record is saved: a failed save retries and schedules
    again (settling twice is harmless: the second finds the slot attributed)."""
    for action, attempt in sorted(after.open_slots() - (before.open_slots() if before else set()) - scheduled):
        settle.scheduler.schedule(
            SettleRequest(execution_arn=after.execution_arn, action=action, attempt=attempt),
            delay_seconds=settle.seconds,
        )
        scheduled.add((action, attempt))


def _recorded(
    before: ExecutionRecord | None,
    after: ExecutionRecord,
    due: Sequence[AlertKey],
    scheduled: set[tuple[PipelineAction, int]],
    result: StartProjection | None,
) -> TrackOutcome:
    return TrackOutcome(
        status="recorded",
        reason="",
        execution_arn=after.execution_arn,
        source=after.source,
        initiator_account=after.initiator_account,
        alerts=[key.slot + (" correction" if key.correction else "") for key in due],
        settling=[f"{action.value}#{attempt}" if attempt else action.value for action, attempt in sorted(scheduled)],
        projection=_status(result),
        attribution=_attribution_change(before, after),
    )


def _attribution_change(before: ExecutionRecord | None, after: ExecutionRecord) -> str | None:
    """The attribution change, as counted: "new" (the start attributed for the first time), "changed" (its source or
    initiator changed: a stronger record, or a correction), None (still unattributed, or as it was)."""
    if after.source == AttributionSource.UNKNOWN:
        return None
    if before is None or before.source == AttributionSource.UNKNOWN:
        return "new"
    if (before.source, before.initiator_account) != (after.source, after.initiator_account):
        return "changed"
    return None


def _alert(
    before: ExecutionRecord | None,
    record: ExecutionRecord,
    key: AlertKey,
    grants: _Grants,
    projection: StartProjection | None = None,
) -> OwnerAlert:
    entry = record.entry(key.action, key.attempt)
    corrects = before.entry(key.action, key.attempt) if key.correction and before is not None else None
    return alert_message(
        record,
        key.action,
        grants.of(entry.account if entry else None),
        attempt=key.attempt,
        corrects=corrects,
        projection=projection.block if projection is not None else None,
    )


# ------------------------------------------------------------------------------------------- the start projection


@dataclass
class _Projected:
    """The start projection of one invocation: computed at most once (a conflicting save retries without reading it
    again), only for the start alert of a start attributed to a consumer: not for the owner's own runs (alerted with
    AlertOnOwnerExecutions), not for stops, retries (a retry re-runs steps of the same definition: the start's
    projection covers it) or corrections."""

    sources: ProjectionSources | None
    owner_account: str
    now: datetime
    result: StartProjection | None = None

    def for_alerts(
        self, record: ExecutionRecord, due: list[AlertKey]
    ) -> tuple[AlertKey | None, StartProjection | None]:
        """(the due start alert to project, its projection), or (None, None)."""
        start = next((k for k in due if k.action == PipelineAction.START and not k.correction), None)
        entry = record.entry(PipelineAction.START)
        if start is None or entry is None or self.sources is None:
            return None, None
        if entry.source == AttributionSource.OWNER or entry.account == self.owner_account:
            return None, None
        if self.result is None:
            self.result = _project(record, self.sources, self.owner_account, self.now)
        return start, self.result


def _project(record: ExecutionRecord, sources: ProjectionSources, owner_account: str, now: datetime) -> StartProjection:
    from pipeshare.logic.projection import project_start, unavailable_projection  # loaded only when a start is due

    try:
        return project_start(
            record.execution_arn,
            record.pipeline_arn,
            consumer_of(record, owner_account),
            definitions=sources.definitions(),
            history=sources.history(),
            budgets=sources.budgets(),
            prices=sources.prices,
            price_lookup=sources.price_lookup,
            now=now,
        )
    except Exception as exc:  # the projection informs: it never loses or holds up the start alert
        logger.exception("start projection failed", extra={"execution_arn": record.execution_arn})
        return unavailable_projection(f"{type(exc).__name__}: {exc}"[:300])


def _stored(result: StartProjection | None) -> tuple[Decimal, bool] | None:
    """(worst case USD, complete) to keep on the execution record; None when the worst case could not be read."""
    if result is None or result.worst_case_usd is None:
        return None
    return result.worst_case_usd, bool(result.worst_case_complete)


def _status(result: StartProjection | None) -> str | None:
    if result is None:
        return None
    return f"unavailable: {'; '.join(result.unavailable)}" if result.unavailable else "computed"
