"""Track the owner's pipeline executions: merge every observation, attribute starts/stops/retries, make alerts due.

Pure logic with ports as arguments. Merging is commutative and idempotent (logic/attribution.py), so duplicated and
reordered events give the same record; each (execution, action) alert is written once by a conditional write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pipeshare.adapters.ports import ExecutionRepository, GrantRepository, PipelineExecutionGateway
from pipeshare.logic.attribution import (
    AlertKey,
    AttributionSource,
    ExecutionRecord,
    Observation,
    OwnerAlert,
    alert_message,
    alerts_due,
    candidate_of,
    infer,
    merge,
    observe_call,
    observe_status,
)
from pipeshare.models.errors import PipeshareError
from pipeshare.models.owner import Grant
from pipeshare.models.owner_events import (
    PipelineAction,
    PipelineApiCallEvent,
    PipelineExecutionStatusEvent,
    PipelineStepStatusEvent,
    pipeline_of,
    same_arn,
)

MAX_ATTEMPTS = 4


class ConcurrentUpdateError(PipeshareError):
    """The execution record kept changing under us: the invocation fails and Lambda retries it."""


@dataclass
class TrackOutcome:
    status: str  # recorded | duplicate | ignored | unverified
    reason: str = ""
    execution_arn: str | None = None
    source: str | None = None
    initiator_account: str | None = None
    alerts: list[str] = field(default_factory=list)


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
        matching = [g for g in self.all() if account is not None and candidate_of(g.consumer) == account]
        return next((g for g in matching if g.allow_execution), matching[0] if matching else None)


def track_event(
    event: PipelineExecutionStatusEvent | PipelineStepStatusEvent | PipelineApiCallEvent,
    *,
    owner_account: str,
    executions: ExecutionRepository,
    grants: GrantRepository,
    sagemaker: PipelineExecutionGateway,
    alert_on_owner: bool,
    infer_starts: bool,
    now: datetime,
) -> TrackOutcome:
    if isinstance(event, PipelineStepStatusEvent):
        return TrackOutcome("ignored", "step status changes are not needed for attribution")
    if isinstance(event, PipelineExecutionStatusEvent):
        if event.owner_account() != owner_account:
            return TrackOutcome("ignored", f"execution of account {event.owner_account()}, not this owner")
        observation: Observation = observe_status(event)
    else:
        call = observe_call(event, owner_account=owner_account)
        if call is None:
            return TrackOutcome("ignored", "a failed call, or a call on a pipeline this account does not own")
        if call.source in (AttributionSource.FORWARDED, AttributionSource.OWNER_COPY):
            # the event is a claim: trust it only for an execution that exists here, of the pipeline it names
            described = sagemaker.describe_execution(call.execution_arn)
            if described is None or not same_arn(
                str(described.get("PipelineArn", "")), pipeline_of(call.execution_arn)
            ):
                return TrackOutcome("unverified", "the execution does not exist in this account", call.execution_arn)
        observation = call
    return _record(
        observation,
        executions=executions,
        grants=_Grants(grants, pipeline_of(observation.execution_arn)),
        owner_account=owner_account,
        alert_on_owner=alert_on_owner,
        infer_starts=infer_starts and isinstance(event, PipelineExecutionStatusEvent),
        now=now,
    )


def _record(
    observation: Observation,
    *,
    executions: ExecutionRepository,
    grants: _Grants,
    owner_account: str,
    alert_on_owner: bool,
    infer_starts: bool,
    now: datetime,
) -> TrackOutcome:
    for _ in range(MAX_ATTEMPTS):
        before, version = executions.get(observation.execution_arn)
        after = merge(before, observation)
        start = after.actions.get(PipelineAction.START)
        if infer_starts and (start is None or start.source == AttributionSource.UNKNOWN):
            after = merge(
                after,
                infer(after.pipeline_arn, grants.all(), owner_account, execution_arn=after.execution_arn, at=now),
            )
        if before is not None and after == before:
            return TrackOutcome("duplicate", "nothing new", after.execution_arn, after.source, after.initiator_account)
        due = alerts_due(before, after, owner_account=owner_account, alert_on_owner=alert_on_owner)
        alerts = [(key, _alert(after, key, grants)) for key in due]
        if executions.save(after, version=version, alerts=alerts, at=now):
            return TrackOutcome(
                "recorded",
                "",
                after.execution_arn,
                after.source,
                after.initiator_account,
                [f"{key.action.value}" for key in due],
            )
    raise ConcurrentUpdateError(f"{observation.execution_arn} changed {MAX_ATTEMPTS} times while being recorded")


def _alert(record: ExecutionRecord, key: AlertKey, grants: _Grants) -> OwnerAlert:
    entry = record.actions[key.action]
    return alert_message(record, key.action, grants.of(entry.account))
