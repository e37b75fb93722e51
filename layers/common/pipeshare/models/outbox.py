"""The outbox items the notifiers read from the table streams (NEW_IMAGE): a consumer's recorded decisions (HIST#)
and the owner's inventory changes and execution alerts (CHANGE#, ALERT#)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from pipeshare.models.base import Model


class HistoryResource(Model):
    arn: str
    type: str


class DecisionHistoryItem(Model):
    """A HIST# item from the share table's stream (NEW_IMAGE): the outbox entry for one decision."""

    model_config = ConfigDict(extra="ignore")

    pk: str
    sk: Annotated[str, StringConstraints(pattern=r"^HIST#")]
    kind: Literal["invitation", "policy", "digest", "audit", "reminder"]
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
    notice: Literal["digest"] | None = None  # a hold (or reminder) announced in a digest (`digest`), not on its own
    digest: str | None = None
    # kind "digest": one sweep's untrusted-sender holds beyond the threshold
    count: int | None = None
    senders: dict[str, int] = Field(default_factory=dict)
    other_senders: int = 0
    share_names: list[str] = Field(default_factory=list)
    threshold: int | None = None
    # kind "reminder": a held invitation close to the end of its window (`count` set: the sweep's reminder digest)
    accept_by: str | None = None
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
