"""Input contracts: the EventBridge events pipeshare consumes. Events are triggers only; decisions come from APIs."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import ConfigDict, Field, StringConstraints

from pipeshare.models.base import Model
from pipeshare.models.domain import AccountId

_Arn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:", max_length=2048)]


class _Envelope(EventBridgeModel):
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
    resources: list[_Arn] = Field(default_factory=list, max_length=100)
    detail: RamStateChangeDetail

    def invitation_arns(self) -> list[str]:
        return [r for r in self.resources if ":resource-share-invitation/" in r]


class ScheduledEvent(_Envelope):
    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    resources: list[_Arn] = Field(default_factory=list, max_length=10)
    detail: dict[str, object]


class ScheduledTrigger(Model):
    """A schedule's event (the only input of a scheduled job)."""

    event: ScheduledEvent


class AcceptTrigger(Model):
    """What may trigger the acceptor: a RAM state change (targeted) or the schedule (full sweep)."""

    event: Annotated[RamStateChangeEvent | ScheduledEvent, Field(discriminator="source")]


class HistoryResource(Model):
    arn: str
    type: str


class DecisionHistoryItem(Model):
    """A HIST# item from the share table's stream (NEW_IMAGE): the outbox entry for one decision."""

    model_config = ConfigDict(extra="ignore")

    pk: str
    sk: Annotated[str, StringConstraints(pattern=r"^HIST#")]
    kind: Literal["invitation", "policy", "digest", "audit"]
    to_status: Literal["PENDING", "HELD", "ACCEPTED", "REJECTED", "EXPIRED", "POLICY_INVALID", "DISALLOWED_RESOURCE"]
    at: str
    invitation_arn: str | None = None
    share_arn: str | None = None
    share_name: str | None = None
    sender_account_id: str | None = None
    receiver_account_id: str | None = None
    region: str | None = None
    resources: list[HistoryResource] = Field(default_factory=list)
    decision: str | None = None
    rule: str | None = None
    reason: str | None = None
    invited_at: str | None = None
    policy_source: str | None = None
    fingerprint: str | None = None
    errors: list[str] = Field(default_factory=list)
    notice: Literal["digest"] | None = None  # an invitation hold announced in a digest (`digest`), not on its own
    digest: str | None = None
    # kind "digest": one sweep's untrusted-sender holds beyond the threshold
    count: int | None = None
    senders: dict[str, int] = Field(default_factory=dict)
    other_senders: int = 0
    share_names: list[str] = Field(default_factory=list)
    threshold: int | None = None
    # kind "audit": an accepted share that now carries disallowed resource types
    owner_account_id: str | None = None
    new_types: list[str] = Field(default_factory=list)
    disallowed_types: list[str] = Field(default_factory=list)
    trusted_owner: bool | None = None


class OwnerOutboxItem(Model):
    """A CHANGE# (inventory change) or ALERT# (execution alert) item from the owner table's stream (NEW_IMAGE)."""

    model_config = ConfigDict(extra="allow")

    pk: str
    sk: Annotated[str, StringConstraints(pattern=r"^(CHANGE|ALERT)#")]
    item_type: Literal["change", "alert"]
    at: str


class SpendChange(Model):
    """A consumer's month-to-date spend item from the owner table's stream, with the total before the change."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["consumer-total"]
    consumer_account: Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
    month: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}$")]
    total: Decimal = Field(ge=0)
    before: Decimal = Field(ge=0)
