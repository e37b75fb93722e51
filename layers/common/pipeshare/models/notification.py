"""What a notifier publishes: one SNS message (its own module: the notifiers load no message model of the others)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, Field

from pipeshare.models.base import Model


class Notification(Model):
    """One SNS message to publish."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    message: dict[str, Any]
    attributes: dict[str, str]
    # what the e-mail and chat renderings need beyond the body (logic/renderings.py); never published as such
    context: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    """One message as people read it (logic/renderings.py): what happened, the facts (label, value), what to do
    next, the command to run."""

    title: str
    facts: tuple[tuple[str, str], ...] = ()
    next_steps: tuple[str, ...] = ()
    command: str | None = None
    keywords: tuple[str, ...] = ()
