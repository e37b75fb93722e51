"""What one owner-side handler invocation did (models/outcomes.py: the base)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field

from pipeshare.models.outcomes import Outcome

# --------------------------------------------------------------------------------------------- owner: inventory


class InventoryOutcome(Outcome):
    shares: int = 0
    grants: int = 0
    cost_bearing: int = 0  # cost-bearing grants (a consumer holding a pipeline through two such shares counts twice)
    cost_bearing_holdings: int = 0  # consumers x pipelines they can run at the owner's cost, through any share
    changes: list[str] = Field(default_factory=list)

    def log_fields(self) -> dict[str, Any]:
        return {**self.model_dump(), "changes": list(self.changes)}

    def response(self) -> dict[str, Any]:
        return {"status": "ok", **self.log_fields()}


# ---------------------------------------------------------------------------------------------- owner: tracking


class TrackOutcome(Outcome):
    status: str  # recorded | duplicate | ignored | unverified
    reason: str = ""
    execution_arn: str | None = None
    source: str | None = None
    initiator_account: str | None = None
    alerts: list[str] = Field(default_factory=list)
    settling: list[str] = Field(default_factory=list)  # slots whose attribution waits for the settle period
    projection: str | None = None  # the start alert's projection: "computed", or "unavailable: <why>"
    attribution: str | None = None  # "new" (the start first attributed) | "changed" (source or initiator) | None

    @property
    def projection_unavailable(self) -> bool:
        return bool(self.projection and self.projection.startswith("unavailable"))

    def log_fields(self) -> dict[str, Any]:
        return {**self.model_dump(), "alerts": list(self.alerts), "settling": list(self.settling)}

    def response(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "execution_arn": self.execution_arn,
            "source": self.source,
            "initiator_account": self.initiator_account,
            "alerts": list(self.alerts),
            "settling": list(self.settling),
            "projection": self.projection,
            "reason": self.reason,
        }


# -------------------------------------------------------------------------------------------------- owner: cost


class CostOutcome(Outcome):
    status: str  # counted | duplicate | running | ignored | finalised | gone
    execution_arn: str | None = None
    added: Decimal = Decimal(0)
    total: Decimal | None = None
    consumer: str | None = None
    reason: str = ""
    alerts: list[str] = Field(default_factory=list)
    attempt: int | None = None
    unpriced: list[str] = Field(default_factory=list)
    budget_policy_invalid: bool = False

    def response(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "execution_arn": self.execution_arn,
            "added": str(self.added),
            "total": None if self.total is None else str(self.total),
            "consumer": self.consumer,
            "alerts": list(self.alerts),
            "attempt": self.attempt,
            "unpriced": list(self.unpriced),
            "reason": self.reason,
        }

    def log_fields(self) -> dict[str, Any]:
        return {name: str(list(value) if isinstance(value, tuple) else value) for name, value in self._fields().items()}

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}


class TickOutcome(Outcome):
    """One running-estimate tick: executions looked at, jobs whose count moved, the amount added, finish alerts
    released from waiting for an attribution."""

    status: str = "ticked"
    executions: int = 0
    jobs_counted: int = 0
    added: Decimal = Decimal(0)
    finish_alerts: int = 0
    pending_dropped: int = 0
    conflicts: int = 0
    errors: list[str] = Field(default_factory=list)

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}

    def response(self) -> dict[str, Any]:
        return {**self._fields(), "added": str(self.added), "errors": list(self.errors)}

    def log_fields(self) -> dict[str, Any]:
        return {name: str(list(value) if isinstance(value, tuple) else value) for name, value in self._fields().items()}


# ------------------------------------------------------------------------------------------------ owner: budgets


class BudgetOutcome(Outcome):
    status: str  # no-budget | below | alerted | enforced | nothing-new | ignored | policy-invalid | evaluated
    subject: str  # a consumer account, an unattributed line, an execution ARN, or "month" (the whole month)
    month: str
    thresholds: list[str] = Field(default_factory=list)  # "<subject>:<threshold>" alerted by this call
    actions: dict[str, str] = Field(default_factory=dict)  # ledger key -> done | not-run | skipped | failed: ...
    evaluated: int = 0  # consumers and lines looked at
    # consumer -> (month-to-date estimated spend, monthly limit) in the policy's currency, for each consumer with a
    # budget evaluated for the current month (the dashboard's spend against budget)
    spend: dict[str, tuple[Decimal, Decimal]] = Field(default_factory=dict)
    reason: str = ""

    @property
    def failures(self) -> list[str]:
        return [key for key, result in self.actions.items() if result.startswith("failed")]

    def settle(self) -> BudgetOutcome:
        """The final outcome: its status from what was done."""
        if self.status in ("policy-invalid", "no-budget", "ignored"):
            return self
        if any(result in ("done", "not-run") for result in self.actions.values()):
            return self.model_copy(update={"status": "enforced"})
        if self.thresholds:
            return self.model_copy(update={"status": "alerted"})
        return self

    def response(self) -> dict[str, Any]:
        return {"status": self.status, "evaluated": self.evaluated, "thresholds": self.thresholds}

    def log_fields(self) -> dict[str, Any]:
        return {**self._fields(), "failures": self.failures}

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}
