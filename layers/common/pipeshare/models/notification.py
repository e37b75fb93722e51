"""What a notifier publishes: one SNS message (its own module: the notifiers load no message model of the others)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from pipeshare.models.base import Model


class Notification(Model):
    """One SNS message to publish."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    message: dict[str, Any]
    attributes: dict[str, str]
