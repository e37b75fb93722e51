"""Worst-case projections of a run and the finished runs they are drawn from."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from pydantic import ConfigDict, computed_field

from pipeshare.models.base import Model
from pipeshare.models.estimates import ZERO


class _Frozen(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UnboundedStep(_Frozen):
    """A step the worst case cannot bound, and why."""

    step: str
    reason: str


class StepWorstCase(_Frozen):
    """The most one step may cost: every attempt at its limits."""

    step: str
    type: str
    usd: Decimal
    attempts: int
    detail: str


class Projection(_Frozen):
    """The worst case of an execution. `total` sums the bounded steps: when `complete` is False it is a lower bound
    of the worst case (the unbounded steps may cost anything)."""

    region: str
    currency: Literal["USD"] = "USD"
    price_source: str
    prices_as_of: date
    steps: tuple[StepWorstCase, ...] = ()
    unbounded: tuple[UnboundedStep, ...] = ()
    notes: tuple[str, ...] = ()
    rates_used: tuple[tuple[str, str], ...] = ()  # (component, instance type) of every rate looked up
    missing_rates: tuple[tuple[str, str], ...] = ()  # those the table has no rate for

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Decimal:
        return sum((s.usd for s in self.steps), ZERO)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def complete(self) -> bool:
        return not self.unbounded


class FinishedRun(NamedTuple):
    """A finished run of the pipeline as the cost code recorded it (RUNS# item): its final total, and whether every
    step of it was priced."""

    total: Decimal
    complete: bool


class StartProjection(NamedTuple):
    """The projection of a start: the alert's block, and what is stored on the execution record."""

    block: dict[str, Any]
    worst_case_usd: Decimal | None  # the bounded part, exact to STORED (a lower bound when not complete)
    worst_case_complete: bool | None
    unavailable: tuple[str, ...]  # what could not be read, and why
