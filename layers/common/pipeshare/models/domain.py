"""Domain models: invitations as RAM describes them, the trust policy, decisions and recorded state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from pipeshare.models.base import Model
from pipeshare.models.types import AccountId

InvitationArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:ram:[a-z0-9-]+:[0-9]{12}:resource-share-invitation/[A-Za-z0-9-]+$")
]
ShareArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:ram:[a-z0-9-]+:[0-9]{12}:resource-share/[A-Za-z0-9-]+$")
]
ResourceType = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+:[A-Za-z0-9]+$", max_length=128)]

PIPELINE_RESOURCE_TYPE = "sagemaker:Pipeline"


class _Frozen(Model):
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
    # "digest": the decision is announced in the sweep's digest message (`digest` names it), not on its own
    notice: Literal["digest"] | None = None
    digest: str | None = None
    reminded_at: datetime | None = None  # when the one reminder before the invitation window closes was recorded


DIGEST_SAMPLE_SHARES = 10  # share names a digest names, in the order RAM listed them
DIGEST_TOP_SENDERS = 20  # senders a digest names with their counts (most invitations first); the rest are counted


class HeldDigest(_Frozen):
    """One sweep's untrusted-sender holds beyond the per-sweep threshold, announced in one message."""

    at: datetime
    count: int = Field(ge=1)
    senders: dict[str, int]  # the DIGEST_TOP_SENDERS senders with the most invitations in the digest
    other_senders: int = Field(default=0, ge=0)  # senders beyond those
    share_names: list[str]  # the first DIGEST_SAMPLE_SHARES share names
    threshold: int = Field(ge=0)
    policy_source: str | None = None

    @property
    def key(self) -> str:
        """The digest's sort key (its outbox item): one per sweep."""
        return f"HIST#{self.at.isoformat().replace('+00:00', 'Z')}#HELD"


class HeldReminder(_Frozen):
    """One reminder that a HELD invitation RAM still lists as PENDING is close to the end of its window."""

    invitation_arn: str
    share_arn: str
    share_name: str
    sender_account_id: str
    receiver_account_id: str | None = None
    region: str
    invited_at: datetime
    accept_by: datetime  # invited_at + the invitation window (RAM returns no expiry time)
    at: datetime
    # "digest": announced in the sweep's reminder digest (`digest` names it), not on its own
    notice: Literal["digest"] | None = None
    digest: str | None = None


class ReminderDigest(_Frozen):
    """One sweep's reminders beyond the per-sweep threshold, announced in one message."""

    at: datetime
    count: int = Field(ge=1)
    senders: dict[str, int]  # the DIGEST_TOP_SENDERS senders with the most reminders in the digest
    other_senders: int = Field(default=0, ge=0)
    share_names: list[str]  # the first DIGEST_SAMPLE_SHARES share names
    threshold: int = Field(ge=0)
    accept_by: datetime  # the earliest end of window among them

    @property
    def key(self) -> str:
        """The digest's sort key (its outbox item, pk DIGEST): one per sweep."""
        return f"HIST#{self.at.isoformat().replace('+00:00', 'Z')}#REMINDER"


class SharedResource(_Frozen):
    """A resource another account shares with this one (ListResources, resourceOwner OTHER-ACCOUNTS)."""

    arn: str = Field(min_length=20, max_length=2048)
    type: ResourceType
    share_arn: ShareArn = Field(alias="resourceShareArn")

    @property
    def owner_account_id(self) -> str:
        return self.share_arn.split(":")[4]


class AuditFinding(_Frozen):
    """An accepted share that now carries resource types outside what the policy allows from its owner."""

    share_arn: str
    owner_account_id: str
    new_types: list[str]  # disallowed types not alerted on before: the reason for this alert
    disallowed_types: list[str]  # every disallowed type the share carries now
    resources: list[Resource]  # the share's resources of disallowed types (at most AUDIT_SAMPLE_RESOURCES)
    trusted_owner: bool
    at: datetime


AUDIT_SAMPLE_RESOURCES = 20


class RecordedState(_Frozen):
    """What a sweep needs to know of a record to skip work: its status and when, under which policy, it was seen."""

    status: ShareStatus
    policy_fingerprint: str | None = None
    last_seen_at: datetime | None = None
    reminded_at: datetime | None = None
