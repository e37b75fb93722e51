"""The base every pydantic model of pipeshare derives from.

`defer_build`: a model's validator and serializer are built when it is first used, not when its module is imported,
so a function does not pay at cold start for the models of the other functions that share this layer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

DEFERRED = ConfigDict(defer_build=True)
MAX_EVENT_BYTES = 256 * 1024  # EventBridge's maximum event size


class Model(BaseModel):
    model_config = DEFERRED
