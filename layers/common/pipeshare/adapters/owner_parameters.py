"""Runtime-changeable owner configuration in SSM (Powertools Parameters, cached): budgets and price overrides."""

from __future__ import annotations

import json
from decimal import Decimal

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from pipeshare.adapters.aws_errors import translate
from pipeshare.logic.budgets import BudgetPolicy, parse_budget_policy
from pipeshare.logic.estimate import PriceTable, load_shipped_prices
from pipeshare.models.errors import TransientError


def _read(name: str, max_age: int) -> str | None:
    try:
        return str(parameters.get_parameter(name, max_age=max_age))
    except GetParameterError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        if isinstance(cause, ClientError | BotoCoreError):
            raise translate(cause) from exc
        raise TransientError(f"reading {name}: {exc}") from exc


class SsmBudgetSource:
    """Implements ports.BudgetSource. No parameter name: no budgets. An invalid document raises (fail closed)."""

    def __init__(self, parameter_name: str, *, max_age: int) -> None:
        self._name = parameter_name
        self._max_age = max_age

    def load(self) -> BudgetPolicy | None:
        if not self._name:
            return None
        text = _read(self._name, self._max_age)
        return None if text is None else parse_budget_policy(text, source=f"ssm:{self._name}")


def prices_with_override(parameter_name: str, *, max_age: int) -> PriceTable:
    """The shipped price table, with the SSM override document (same shape) merged over it when one is set."""
    shipped = load_shipped_prices()
    if not parameter_name:
        return shipped
    text = _read(parameter_name, max_age)
    return shipped if text is None else shipped.merge(json.loads(text, parse_float=Decimal))
