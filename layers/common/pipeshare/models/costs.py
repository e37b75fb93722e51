"""The cost state of one execution, as the cost repository reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipeshare.models.executions import ExecutionRecord
from pipeshare.models.owner import SpendHolder


@dataclass(frozen=True)
class CostState:
    record: ExecutionRecord | None
    counted: dict[str, Decimal]  # job arn (lower-case) -> cost counted
    estimate: dict[str, Any] | None
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # job arn (lower-case) -> its cost lines
    running: frozenset[str] = frozenset()  # jobs counted so far while running (lower-case): a later count replaces
    version: int = 0  # the estimate's version as read

    @property
    def ended_at(self) -> str | None:
        """The time of the last end finalised (ISO 8601), None when none was."""
        value = (self.estimate or {}).get("ended_at")
        return str(value) if value else None

    @property
    def total(self) -> Decimal:
        return Decimal(str((self.estimate or {}).get("total", 0)))

    @property
    def holder(self) -> SpendHolder | None:
        """Whose spend holds the counted total (None: no estimate yet), as `move_spend` reads it."""
        if self.estimate is None:
            return None
        return SpendHolder.from_key(
            str(self.estimate.get("spend_holder") or self.estimate.get("consumer_account") or "-")
        )
