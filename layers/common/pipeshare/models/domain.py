"""Domain models: invitations as RAM describes them, the trust policy, decisions and recorded state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

AccountId = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
InvitationArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:ram:[a-z0-9-]+:[0-9]{12}:resource-share-invitation/[A-Za-z0-9-]+$")
]
ShareArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:ram:[a-z0-9-]+:[0-9]{12}:resource-share/[A-Za-z0-9-]+$")
]
ResourceType = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+:[A-Za-z0-9]+$", max_length=128)]

PIPELINE_RESOURCE_TYPE = "sagemaker:Pipeline"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class RamInvitationStatus(StrEnum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class Invitation(_Frozen):
    """A RAM resource share invitation, validated from GetResourceShareInvitations."""

    arn: InvitationArn = Field(alias="resourceShareInvitationArn")
    share_name: str = Field(alias="resourceShareName", min_length=1, max_length=512)
    share_arn: ShareArn = Field(alias="resourceShareArn")
    sender_account_id: AccountId = Field(alias="senderAccountId")
    receiver_account_id: AccountId | None = Field(default=None, alias="receiverAccountId")
    receiver_arn: str | None = Field(default=None, alias="receiverArn")
    invited_at: datetime = Field(alias="invitationTimestamp")
    status: RamInvitationStatus

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]


class PendingResource(_Frozen):
    """One resource carried by a pending invitation (ListPendingInvitationResources)."""

    arn: str = Field(min_length=20, max_length=2048)
    type: ResourceType
    status: str | None = None


class Action(StrEnum):
    ACCEPT = "accept"
    HOLD = "hold"
    REJECT = "reject"


class OwnerRule(_Frozen):
    """One trusted owner and the resource types accepted from it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: AccountId
    allowed_resource_types: list[ResourceType] = Field(default_factory=lambda: [PIPELINE_RESOURCE_TYPE], min_length=1)
    description: str | None = Field(default=None, max_length=256)


class TrustPolicy(_Frozen):
    """The consumer's trust policy (template parameters or a JSON document in SSM)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    untrusted_action: Literal[Action.HOLD, Action.REJECT] = Action.HOLD
    disallowed_resource_action: Literal[Action.HOLD, Action.REJECT] = Action.HOLD
    owners: list[OwnerRule] = Field(default_factory=list, max_length=500)
    source: str = Field(default="parameters", exclude=True)
    fingerprint: str = Field(default="", exclude=True)

    def owner(self, account_id: str) -> OwnerRule | None:
        return next((o for o in self.owners if o.account_id == account_id), None)


class ShareStatus(StrEnum):
    """Recorded status. PENDING < HELD < terminal; no transition goes backwards."""

    PENDING = "PENDING"
    HELD = "HELD"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def rank(self) -> int:
        return {"PENDING": 0, "HELD": 1}.get(self.value, 2)

    @property
    def terminal(self) -> bool:
        return self.rank == 2

    def predecessors(self) -> list[ShareStatus]:
        """Statuses a record may be in for a transition into this one."""
        return [s for s in ShareStatus if s.rank < self.rank]


class Decision(_Frozen):
    """What pipeshare decided (or observed) for one invitation, and why."""

    action: Action | Literal["observe", "wait"]
    status: ShareStatus
    reason: str
    rule: str  # machine-readable reason code, e.g. "trusted-owner", "untrusted-owner"


class Resource(_Frozen):
    arn: str
    type: str


class ShareRecord(_Frozen):
    """The recorded state of one invitation / share (the DynamoDB state item)."""

    invitation_arn: str
    share_arn: str
    share_name: str
    sender_account_id: str
    receiver_account_id: str | None = None
    region: str
    resources: list[Resource] = Field(default_factory=list)
    status: ShareStatus
    decision: str
    rule: str
    reason: str
    invited_at: datetime | None = None
    first_seen_at: datetime
    decided_at: datetime
    last_seen_at: datetime
    policy_source: str | None = None
    policy_fingerprint: str | None = None


class RecordedState(_Frozen):
    """What a sweep needs to know of a record to skip work: its status and when, under which policy, it was seen."""

    status: ShareStatus
    policy_fingerprint: str | None = None
    last_seen_at: datetime | None = None
