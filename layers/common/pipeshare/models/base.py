"""The base every pydantic model of pipeshare derives from.

`defer_build`: a model's validator and serializer are built when it is first used, not when its module is imported,
so a function does not pay at cold start for the models of the other functions that share this layer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

DEFERRED = ConfigDict(defer_build=True)
MAX_EVENT_BYTES = 256 * 1024  # EventBridge's maximum event size


class Model(BaseModel):
    model_config = DEFERRED


class EventEnvelope(Model):
    """The EventBridge envelope: field for field Powertools' `EventBridgeModel` (its parser utility; compared by
    tests/unit/test_event_envelope.py), and deferred like every model here. Powertools' model is not subclassed: it
    builds its validator when its module is imported, and its parser package loads pydantic's network types with it.
    That cost every function about 30 ms of cold start (make bench), for a class none of them validates with."""

    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any] | BaseModel
    replay_name: str | None = Field(default=None, alias="replay-name")

    @field_validator("detail", mode="before")
    @classmethod
    def _scheduler_detail(cls, value: Any, info: ValidationInfo) -> Any:
        # EventBridge Scheduler sends an empty detail as the string "{}" (as Powertools' model reads it)
        return {} if info.data.get("source") == "aws.scheduler" and value == "{}" else value
