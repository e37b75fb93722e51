"""The settle request: the SQS message that ends one slot's settle period (SettleAttributionFunction's input)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from pipeshare.models.base import Model
from pipeshare.models.types import ExecutionArn, PipelineAction


class SettleRequest(Model):
    """The delayed message that ends one slot's settle period (SettleAttributionFunction's input contract): the
    start of an execution, or one retry attempt (>= 2)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    execution_arn: ExecutionArn
    action: Literal[PipelineAction.START, PipelineAction.RETRY]
    attempt: int = Field(default=0, ge=0, le=10_000)

    @model_validator(mode="after")
    def _attempt_fits_the_action(self) -> SettleRequest:
        if (self.action == PipelineAction.RETRY) != (self.attempt >= 2):
            raise ValueError("a retry names its attempt (>= 2); a start has none")
        return self
