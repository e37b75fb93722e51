"""Owner-side domain models: who holds which pipeline, with which permission."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import ConfigDict

from pipeshare.models.base import Model

ALLOW_EXECUTION = "AWSRAMPermissionSageMakerPipelineAllowExecution"
READ_ONLY = "AWSRAMDefaultPermissionSageMakerPipeline"


class Grant(Model):
    """One consumer's hold on one pipeline through one share (the inventory's unit)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pipeline_arn: str
    consumer: str  # a 12-digit account ID, or an organization / OU ARN as RAM lists the principal
    share_arn: str
    share_name: str
    association_status: str  # ASSOCIATING | ASSOCIATED | FAILED | DISASSOCIATING | DISASSOCIATED | ...
    permission_arn: str | None = None
    permission_name: str | None = None
    external: bool | None = None
    # recorded by the inventory: the grant was read-only (ASSOCIATED without allow-execution) at some time before
    # (so a consumer losing allow-execution is "read-only again"); False for grants recorded before this was kept
    read_only_before: bool = False

    @property
    def allow_execution(self) -> bool:
        return (self.permission_name or "") == ALLOW_EXECUTION or (self.permission_arn or "").endswith(ALLOW_EXECUTION)

    @property
    def active(self) -> bool:
        return self.association_status == "ASSOCIATED"

    @property
    def cost_bearing(self) -> bool:
        """The consumer can start work that the owner account pays for."""
        return self.active and self.allow_execution

    @property
    def key(self) -> str:
        """The grant's identity: pipeline x consumer x share, lower-case (ARNs compare case-insensitively)."""
        return f"{self.holding_key}#{self.share_arn.lower()}"

    @property
    def holding_key(self) -> str:
        """The consumer's hold on the pipeline, whatever the share: pipeline x consumer, lower-case."""
        return f"{self.pipeline_arn.lower()}#{self.consumer.lower()}"

    @property
    def fingerprint(self) -> str:
        text = f"{self.share_arn}|{self.association_status}|{self.permission_arn}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def strongest(grants: Iterable[Grant]) -> Grant | None:
    """The grant that says most about what a consumer can do on a pipeline when it holds it through several shares:
    cost-bearing first (allow-execution wins), then active, then allow-execution; ties go to the smallest share ARN."""
    return min(
        grants,
        key=lambda g: (not g.cost_bearing, not g.active, not g.allow_execution, g.share_arn.lower()),
        default=None,
    )


ChangeKind = Literal["accepted", "gained-allow-execution", "lost-allow-execution", "invited", "revoked", "updated"]


class GrantChange(Model):
    """A change of the inventory; the notable ones are announced once."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    before: Grant | None
    after: Grant | None
    at: datetime
    # the consumer's strongest grant on the pipeline after the change, through any share (None: it holds none)
    holding: Grant | None = None

    @property
    def grant(self) -> Grant:
        grant = self.after or self.before
        assert grant is not None  # noqa: S101 - a change always has one side
        return grant

    @property
    def notable(self) -> bool:
        return self.kind in ("accepted", "gained-allow-execution", "lost-allow-execution", "revoked")


@dataclass(frozen=True)
class CountedJob:
    """A job's estimated cost counted into its execution's estimate and the month's spend.

    `final`: the job has ended and `cost` is its cost; otherwise `cost` is its cost so far (a running estimate) and
    a later count replaces it. `previous`: what was counted for it before (None: not counted yet); the estimate and
    the spend move by `cost - previous`, exactly once (the write is conditioned on `previous`).
    """

    job_arn: str
    step: str
    kind: str
    cost: Decimal
    detail: dict[str, Any]
    final: bool = True
    previous: Decimal | None = None
    attempt: int = 1

    @property
    def delta(self) -> Decimal:
        return self.cost - (self.previous or Decimal(0))


SpendHolderKind = Literal["consumer", "owner", "unattributed"]


@dataclass(frozen=True)
class SpendHolder:
    """Whose month-to-date spend an execution's estimated cost counts toward.

    - `consumer` (`account`): the consumer's spend (`total`); `confirmed` when the attribution is forwarded or the
      owner's CloudTrail copy (also `confirmed_total`), not when it was inferred;
    - `owner`: the owner's own run, counted on the pipeline only;
    - `unattributed`: nobody is known yet, or several consumers could have started it (ambiguous): counted on the
      pipeline and on its unattributed line.
    """

    kind: SpendHolderKind
    account: str | None = None
    confirmed: bool = False

    @property
    def key(self) -> str:
        """Stored on the estimate (`spend_holder`): consumer:<account>:confirmed|inferred, owner, unattributed."""
        if self.kind == "consumer":
            return f"consumer:{self.account}:{'confirmed' if self.confirmed else 'inferred'}"
        return self.kind

    @classmethod
    def from_key(cls, key: str) -> SpendHolder:
        parts = key.split(":")
        if parts[0] == "consumer" and len(parts) == 3 and parts[1].isdigit() and len(parts[1]) == 12:
            return cls("consumer", parts[1], parts[2] == "confirmed")
        if key in ("owner", "unattributed"):
            return cls(key)  # type: ignore[arg-type]
        if key.isdigit() and len(key) == 12:  # an estimate written before spend holders: its consumer_account
            return cls("consumer", key, False)
        return cls("owner")  # "-" on an estimate written before spend holders: counted on the pipeline only


UNATTRIBUTED = SpendHolder("unattributed")
OWNER_HOLDER = SpendHolder("owner")


@dataclass(frozen=True)
class Finalisation:
    """An execution end being finalised: the terminal status event's time, the attempt it ends, its status."""

    ended_at: datetime
    attempt: int
    status: str


@dataclass(frozen=True)
class PendingFinish:
    execution_arn: str
    attempt: int
    ended_at: str
    status: str


class GrantView(Protocol):
    """What attribution reads of a grant: `Grant` (the inventory item) fits it."""

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
