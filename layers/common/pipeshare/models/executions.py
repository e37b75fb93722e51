"""One execution's attribution: the observations, their merged record, the alert keys and alerts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, computed_field, model_validator

from pipeshare.models.base import Model
from pipeshare.models.types import (
    RETRYABLE_STATUSES,
    TERMINAL_STATUSES,
    AccountId,
    Candidate,
    ExecutionArn,
    ExecutionStatus,
    PipelineAction,
    PipelineArn,
    arn_account,
    is_account,
    pipeline_of,
    same_arn,
)


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


_PROGRESS = {"Executing": 0, "Stopping": 1}  # terminal statuses: 2, statuses outside the API enum: 0


# A RetryPipelineExecution call precedes the Executing status it causes; CloudTrail's eventTime and the status
# event's time come from different clocks, so a call up to this long after the status still counts for it.
RETRY_CLAIM_SKEW_SECONDS = 120


def _progress(status: str) -> int:
    return 2 if status in TERMINAL_STATUSES else _PROGRESS.get(status, 0)


_Principal = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


_EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Frozen(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StatusObservation(_Frozen):
    """From a status event: the execution reached `status` at `time` (for a terminal status, its end time)."""

    kind: Literal["status"] = "status"
    execution_arn: ExecutionArn
    pipeline_arn: PipelineArn
    status: ExecutionStatus
    previous: ExecutionStatus | None = None  # previousPipelineExecutionStatus, when the event has one
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
    attempt: int = Field(default=0, ge=0)  # the retry attempt (>= 2) an inferred retry is for; 0 otherwise
    source: Literal[AttributionSource.INFERRED, AttributionSource.AMBIGUOUS, AttributionSource.UNKNOWN]
    candidates: tuple[Candidate, ...] = ()
    time: AwareDatetime

    @model_validator(mode="after")
    def _candidates_fit_the_source(self) -> InferenceObservation:
        if (self.action == PipelineAction.RETRY) != (self.attempt >= 2):
            raise ValueError("an inferred retry names its attempt (>= 2); other actions have none")
        if list(self.candidates) != sorted(set(self.candidates)):
            raise ValueError("candidates must be sorted and unique")
        count = len(self.candidates)
        single_account = count == 1 and is_account(self.candidates[0])
        expected = {
            AttributionSource.INFERRED: single_account,
            AttributionSource.AMBIGUOUS: count >= 1 and not single_account,
            AttributionSource.UNKNOWN: count == 0,
        }
        if not expected[self.source]:
            raise ValueError(f"{count} candidate(s) do not fit source {self.source.value!r}")
        return self


Observation = Annotated[StatusObservation | ActionObservation | InferenceObservation, Field(discriminator="kind")]


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


def _best(entries: Iterable[ActionEntry]) -> ActionEntry | None:
    return min(entries, key=lambda e: e.order(), default=None)


class Transition(_Frozen):
    """One status change as a status event reported it."""

    at: AwareDatetime
    status: ExecutionStatus
    previous: ExecutionStatus | None = None

    def order(self) -> tuple[Any, ...]:
        return (self.at, _progress(self.status), self.status, *_absent_last(self.previous))


class Attempt(NamedTuple):
    """A retry seen in the status events: attempt `number` (>= 2) began running at `at`; `since` is when the
    attempt before it began (claims made in between are for this one)."""

    number: int
    at: datetime
    since: datetime | None


class ExecutionRecord(Model):
    """What is known of one execution. Build it with `merge`; store it under `key`."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # ignore: a stored dump carries the computed fields

    execution_arn: ExecutionArn
    status: ExecutionStatus | None = None
    status_at: AwareDatetime | None = None
    status_history: dict[ExecutionStatus, AwareDatetime] = Field(default_factory=dict)
    started_at: AwareDatetime | None = None
    # start and stop: the strongest attribution of each; retries are per attempt (below)
    actions: dict[PipelineAction, ActionEntry] = Field(default_factory=dict)
    transitions: tuple[Transition, ...] = ()  # every status change seen, in time order
    retry_claims: tuple[ActionEntry, ...] = ()  # every RetryPipelineExecution call seen (CloudTrail)
    retry_inferences: dict[int, ActionEntry] = Field(default_factory=dict)  # attempt -> inferred retrier

    @model_validator(mode="after")
    def _consistent(self) -> ExecutionRecord:
        if (self.status is None) != (self.status_at is None):
            raise ValueError("status and status_at go together")
        if any(kind != entry.action for kind, entry in self.actions.items()):
            raise ValueError("each actions entry must be keyed by its own action")
        if PipelineAction.RETRY in self.actions:
            raise ValueError("retries are kept per attempt (retry_claims, retry_inferences)")
        if any(e.action != PipelineAction.RETRY for e in (*self.retry_claims, *self.retry_inferences.values())):
            raise ValueError("retry_claims and retry_inferences hold retries only")
        return self

    def attempts(self) -> list[Attempt]:
        """The retries the status events show: an Executing status after a terminal one (or reported as coming from
        Failed/Stopped) starts attempt 2, 3, ... Repeated copies of one status change count once."""
        found: list[Attempt] = []
        number, since, ended = 1, None, False  # since: when the current attempt began running
        for change in self.transitions:
            if change.status in TERMINAL_STATUSES:
                ended = True
            elif change.status == "Executing":
                if ended or (change.previous in RETRYABLE_STATUSES and change.at != since):
                    number += 1
                    found.append(Attempt(number, change.at, since))
                    since = change.at
                elif since is None:
                    since = change.at
                ended = False
        return found

    def retries(self) -> dict[int, ActionEntry | None]:
        """Attempt -> who retried it: the strongest CloudTrail call made for it, or the inference made once the
        settle period passed; None while neither is known."""
        attempts = self.attempts()
        claims: dict[int, list[ActionEntry]] = {a.number: [] for a in attempts}
        skew = timedelta(seconds=RETRY_CLAIM_SKEW_SECONDS)
        for claim in self.retry_claims:
            for attempt in attempts:
                if (attempt.since is None or claim.at > attempt.since) and claim.at <= attempt.at + skew:
                    claims[attempt.number].append(claim)
                    break
        for number, inferred in self.retry_inferences.items():
            claims.get(number, []).append(inferred)
        return {number: _best(entries) for number, entries in claims.items()}

    def open_slots(self) -> set[tuple[Literal[PipelineAction.START, PipelineAction.RETRY], int]]:
        """(action, attempt) slots seen in the status events that nobody is known to have acted on yet."""
        slots: set[tuple[Literal[PipelineAction.START, PipelineAction.RETRY], int]] = set()
        start = self.actions.get(PipelineAction.START)
        if self.status is not None and (start is None or start.source == AttributionSource.UNKNOWN):
            slots.add((PipelineAction.START, 0))
        for number, entry in self.retries().items():
            if entry is None or entry.source == AttributionSource.UNKNOWN:
                slots.add((PipelineAction.RETRY, number))
        return slots

    def entry(self, action: PipelineAction, attempt: int = 0) -> ActionEntry | None:
        """The attribution of one slot (a retry: of one attempt)."""
        if action == PipelineAction.RETRY:
            return self.retries().get(attempt)
        return self.actions.get(action)

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


class AlertKey(NamedTuple):
    """One alert: `execution_arn` is the record's canonical `key` (lower-case), the conditional write's key.

    `attempt` names the retry attempt (0 for start and stop); `correction` is empty for the alert itself, or names
    the attribution a correction moves to (one correction per attribution an alerted slot moves to)."""

    execution_arn: str
    action: PipelineAction
    attempt: int = 0
    correction: str = ""

    @property
    def slot(self) -> str:
        return f"{self.action.value}#{self.attempt}" if self.attempt else self.action.value

    @property
    def item_key(self) -> str:
        """The alert item's sort key (ALERT#start, ALERT#retry#2, ALERT#start#correction-...)."""
        return f"ALERT#{self.slot}" + (f"#correction-{self.correction}" if self.correction else "")
