"""The SNS messages pipeshare publishes: subject, JSON message and message attributes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, field_validator, model_validator

from pipeshare.models.base import Model
from pipeshare.models.budgets import Money, Month, _Frozen
from pipeshare.models.domain import AccountId
from pipeshare.models.executions import Candidate
from pipeshare.models.owner_events import TERMINAL_STATUSES


class Notification(Model):
    """One SNS message to publish."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    message: dict[str, Any]
    attributes: dict[str, str]


class _StepCost(Model):
    """One line of an estimate breakdown (the shape `logic/estimate.py` supplies, as a dict)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    step: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: str | None = None
    state: str | None = None
    cost: Money | None = None  # None: the step could not be estimated
    issues: tuple[str, ...] = ()


class _FinishFields(_Frozen):
    execution_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:sagemaker:.+/execution/.+$")]
    consumer: AccountId | None
    candidates: tuple[Candidate, ...] = ()  # accounts, or organization / OU ARNs (a share to an organization)
    status: str
    started_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    month: Month
    attempt: Annotated[int, Field(ge=1, le=1000)] = 1

    @field_validator("status")
    @classmethod
    def _terminal(cls, value: str) -> str:
        if value not in TERMINAL_STATUSES:
            raise ValueError(f"the execution has not ended (status {value!r})")
        return value

    @model_validator(mode="after")
    def _someone(self) -> _FinishFields:
        if self.consumer is None and not self.candidates:
            raise ValueError("a finish message names the consumer, or the candidates of an ambiguous run")
        return self
