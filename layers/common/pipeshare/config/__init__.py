"""Per-function settings, read once from the environment (template.yaml sets every value). The base and the loader
are here; each side's settings models are in config/consumer.py and config/owner.py, so a function builds only its
side's models."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T", bound=BaseModel)


class Settings(BaseModel):
    # built on first use: a function validates its own settings model only (cold start)
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)


@lru_cache(maxsize=8)
def load_settings(model: type[T]) -> T:
    """Validate the environment against a settings model. A missing or bad value fails loudly."""
    return model.model_validate(dict(os.environ))
