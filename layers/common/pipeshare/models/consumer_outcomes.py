"""What one consumer-side handler invocation did (models/outcomes.py: the base)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pipeshare.models.outcomes import Outcome

# ------------------------------------------------------------------------------------------ consumer: invitations


class InvitationOutcome(Outcome):
    invitation_arn: str
    status: str
    rule: str
    reason: str
    changed: bool


class SweepOutcome(Outcome):
    """What one invocation did. `problems` are per-invitation failures that did not stop the sweep."""

    mode: str
    policy_source: str | None = None
    policy_valid: bool = True
    invitations: list[InvitationOutcome] = Field(default_factory=list)
    invalid_records: int = 0
    digested: int = 0  # untrusted-sender holds announced in the sweep's digest, not one by one
    left_to_sweep: int = 0  # untrusted senders' invitations an event-triggered run leaves to the sweep
    reminded: int = 0  # held invitations reminded of the end of their window (once each) by this sweep
    problems: list[str] = Field(default_factory=list)
    transient_failures: int = 0
    failures: int = 0  # unexpected API errors: the sweep goes on, then the invocation fails (retry, then DLQ)

    def count(self, status: str) -> int:
        """Invitations this invocation moved to `status`."""
        return sum(1 for i in self.invitations if i.status == status and i.changed)

    def current(self, status: str) -> int:
        """Invitations seen in `status` after this invocation, moved now or before (all of them in a sweep)."""
        return sum(1 for i in self.invitations if i.status == status)

    def log_fields(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "policy_source": self.policy_source,
            "policy_valid": self.policy_valid,
            "seen": len(self.invitations),
            "accepted": self.count("ACCEPTED"),
            "held": self.count("HELD"),
            "rejected": self.count("REJECTED"),
            "expired": self.count("EXPIRED"),
            "invalid_records": self.invalid_records,
            "digested": self.digested,
            "left_to_sweep": self.left_to_sweep,
            "reminded": self.reminded,
            "problems": list(self.problems),
            "transient_failures": self.transient_failures,
            "failures": self.failures,
        }

    def response(self) -> dict[str, Any]:
        return {"status": "ok", **self.log_fields()}


class AuditOutcome(Outcome):
    """What one audit run did."""

    status: str = "ok"  # ok | policy-invalid
    resources: int = 0
    shares: int = 0
    alerted: list[str] = Field(default_factory=list)  # share ARNs alerted on in this run
    already_alerted: int = 0  # shares carrying disallowed types already alerted on
    invalid_records: int = 0
    problems: list[str] = Field(default_factory=list)

    def response(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "resources": self.resources,
            "shares": self.shares,
            "alerted": len(self.alerted),
            "already_alerted": self.already_alerted,
            "invalid_records": self.invalid_records,
            "problems": list(self.problems[:50]),
        }

    def log_fields(self) -> dict[str, Any]:
        return {**self.response(), "alerted_shares": list(self.alerted[:50])}
