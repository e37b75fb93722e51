"""Per-function settings, read once from the environment (template.yaml sets every value). The base and the loader
are here; each side's settings models are in config/consumer.py and config/owner.py, so a function builds only its
side's models."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T", bound=BaseModel)


class Settings(BaseModel):
    # built on first use: a function validates its own settings model only (cold start)
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)


class ChatSettings(Settings):
    """`ChatNotifications` of a function that publishes: "off", or the protocol key the chat notification goes under
    (aws-facts §15.3)."""

    chat_notifications: Literal["off", "https"] = Field(default="off", alias="CHAT_NOTIFICATIONS")

    @property
    def chat_key(self) -> str:
        return "" if self.chat_notifications == "off" else self.chat_notifications


@lru_cache(maxsize=8)
def load_settings(model: type[T]) -> T:
    """Validate the environment against a settings model. A missing or bad value fails loudly."""
    return model.model_validate(dict(os.environ))
