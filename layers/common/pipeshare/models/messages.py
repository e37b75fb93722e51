"""The SNS messages pipeshare publishes (subject, JSON message and message attributes) and the parts several
message kinds share. Each kind has its own module (alert_messages, finish_messages, budget_messages), so a function
builds only the models of the messages it sends."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import (
    ConfigDict,
)

from pipeshare.models.base import Model


def cents(value: Decimal) -> str:
    """An amount rounded for people: to the cent, plain notation."""
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


class OwnerAlert(NamedTuple):
    """One SNS message as published: subject, JSON message and message attributes."""

    subject: str
    message: dict[str, Any]
    attributes: dict[str, str]


# ------------------------------------------------------------------------------------------- message bodies (JSON)


class MessageBody(Model):
    """A JSON message body: `body()` is its `model_dump(mode="json")`, field order as declared, None values kept
    except for the fields in OMIT_WHEN_NONE (absent from the body when None). Amounts are strings already rounded."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    def body(self) -> dict[str, Any]:
        absent = {name for name in self.OMIT_WHEN_NONE if getattr(self, name) is None}
        return self.model_dump(mode="json", by_alias=True, exclude=absent)


class _Part(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BudgetEnforceBlock(_Part):
    at_percent: int | None
    stop_executions: bool
    remove_from_share: bool
    downgrade_to_read_only: bool
    stop_when_worst_case_exceeds_remaining: bool
    switch_to_read_only: bool  # deprecated alias, as written
    dry_run: bool


class BudgetBlock(_Part):
    """A budget as messages show it."""

    currency: str
    monthly_limit: str
    percent_used: str
    thresholds: tuple[int, ...]
    enforce: BudgetEnforceBlock
    count_inferred: bool
    unpriced: str


class SpendBlock(_Part):
    """All a consumer's spend, the part attributed by evidence, and what enforcement counts (`enforced_on`)."""

    currency: str
    total: str
    confirmed: str
    inferred: str
    enforced_on: str
    enforced_percent: str
    remaining: str


class EstimateBilling(_Part):
    estimate: Literal[True] = True
    statement: str


class PayerBilling(_Part):
    payer_account: str
    statement: str


class EstimatePayerBilling(_Part):
    estimate: Literal[True] = True
    payer_account: str
    statement: str
