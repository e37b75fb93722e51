"""Runtime-changeable owner configuration in SSM (Powertools Parameters, cached): budgets and price overrides."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from pipeshare.adapters.aws_errors import translated
from pipeshare.logic.budgets import parse_budget_policy
from pipeshare.logic.estimate import load_shipped_prices
from pipeshare.models.budgets import BudgetPolicy
from pipeshare.models.errors import PriceTableError, TransientError
from pipeshare.models.estimates import PriceTable
from pipeshare.observability import logger, metrics


def _read(name: str, max_age: int, *, fresh: bool = False) -> str | None:
    """The parameter's value; None when there is no such parameter."""
    try:
        return _get(name, max_age, fresh)
    except GetParameterError as exc:  # no AWS error under it
        raise TransientError(f"reading {name}: {exc}") from exc


@translated(returning={"ParameterNotFound": None}, unwrapping=(GetParameterError,))
def _get(name: str, max_age: int, fresh: bool) -> str:
    return str(parameters.get_parameter(name, max_age=max_age, force_fetch=fresh))


class SsmBudgetSource:
    """Implements ports.BudgetSource. No parameter name: no budgets. An invalid document raises (fail closed)."""

    def __init__(self, parameter_name: str, *, max_age: int) -> None:
        self._name = parameter_name
        self._max_age = max_age

    def load(self, *, fresh: bool = False) -> BudgetPolicy | None:
        """`fresh`: read SSM now, not the warm container's cached value (the policy just changed)."""
        if not self._name:
            return None
        text = _read(self._name, self._max_age, fresh=fresh)
        return None if text is None else parse_budget_policy(text, source=f"ssm:{self._name}")


def prices_with_override(parameter_name: str, *, max_age: int) -> PriceTable:
    """The shipped price table, with the SSM override document (same shape) merged over it when one is set.

    An invalid override (not JSON, or failing the price table model) breaks nothing: the shipped table is used, a
    structured error is logged and `PriceOverrideInvalid` is counted (an alarm watches it). A failed read (throttling,
    access denied) still raises: the invocation is retried rather than priced without the owner's override."""
    shipped = load_shipped_prices()
    if not parameter_name:
        return shipped
    text = _read(parameter_name, max_age)
    if text is None:
        return shipped
    try:
        return shipped.merge(json.loads(text, parse_float=Decimal))
    except ValueError as exc:  # json.JSONDecodeError and PriceTableError are ValueErrors
        _report_invalid_override(parameter_name, text, exc)
        return shipped


def _report_invalid_override(parameter_name: str, text: str, exc: ValueError) -> None:
    errors = exc.errors if isinstance(exc, PriceTableError) else [f"<root>: not valid JSON ({exc})"]
    metrics.add_metric(name="PriceOverrideInvalid", unit=MetricUnit.Count, value=1)
    logger.error(
        "price override invalid: the shipped prices (and the Price List) are used",
        extra={
            "parameter": parameter_name,
            "errors": errors[:20],
            "fingerprint": hashlib.sha256(text.encode()).hexdigest()[:16],
        },
    )
