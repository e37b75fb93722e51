"""Input contracts: the EventBridge events pipeshare consumes. Events are triggers only; decisions come from APIs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from pipeshare.models.base import EventEnvelope, Model
from pipeshare.models.types import AccountId, Arn


class _Envelope(EventEnvelope):
    """The standard envelope, strict: unknown top-level keys are refused (the envelope is fixed by EventBridge)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", defer_build=True)

    version: Literal["0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    account: AccountId
    region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")]


class RamStateChangeDetail(Model):
    """Only `event` and `status` are documented; any other key is tolerated (the full shape is unverified)."""

    model_config = ConfigDict(extra="allow")

    event: Annotated[str, StringConstraints(max_length=256)] | None = None
    status: Annotated[str, StringConstraints(max_length=64)] | None = None


class RamStateChangeEvent(_Envelope):
    source: Literal["aws.ram"]
    detail_type: Literal["Resource Sharing State Change"] = Field(alias="detail-type")
    resources: list[Arn] = Field(default_factory=list, max_length=100)
    detail: RamStateChangeDetail

    def invitation_arns(self) -> list[str]:
        return [r for r in self.resources if ":resource-share-invitation/" in r]


class ScheduledEvent(_Envelope):
    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    resources: list[Arn] = Field(default_factory=list, max_length=10)
    detail: dict[str, object]


class ScheduledTrigger(Model):
    """A schedule's event (the only input of a scheduled job)."""

    event: ScheduledEvent


class AcceptTrigger(Model):
    """What may trigger the acceptor: a RAM state change (targeted) or the schedule (full sweep)."""

    event: Annotated[RamStateChangeEvent | ScheduledEvent, Field(discriminator="source")]
