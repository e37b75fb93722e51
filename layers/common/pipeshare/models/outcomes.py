"""What one handler invocation did: one frozen model per outcome. A handler returns `outcome.response()`; reporting.py
logs `outcome.log_fields()`. The response keys are a contract (the integration tests and the local stack read them).
Here: the base and the outcomes every handler may give; each side's own outcomes are in consumer_outcomes.py and
owner_outcomes.py, so a function builds only its side's models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict

from pipeshare.models.base import Model


class Outcome(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def response(self) -> dict[str, Any]:
        """The handler's return value."""
        return self.model_dump()

    def log_fields(self) -> dict[str, Any]:
        """The fields logged with the outcome."""
        return self.model_dump()


class Rejected(Outcome):
    """The input failed validation (logged and counted where it was parsed); a retry cannot fix it."""

    status: Literal["invalid"] = "invalid"


class Ignored(Outcome):
    """A valid input that is not this handler's to act on."""

    status: Literal["ignored"] = "ignored"
    reason: str | None = None

    def response(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
