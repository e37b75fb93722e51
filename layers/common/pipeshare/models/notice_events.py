"""The consumer relay's input contract: an owner's enforcement notice as the consumer's notice bus delivers it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeshare.models.base import Model
from pipeshare.models.consumer_notices import EnforcementNotice
from pipeshare.models.events import _Envelope
from pipeshare.models.types import Arn


class EnforcementNoticeEvent(_Envelope):
    """The notice as the consumer's bus delivers it: `account` is the account that put it (EventBridge sets it; a
    PutEvents entry has no field for it)."""

    source: Literal["pipeshare.owner"]
    detail_type: Literal["Pipeshare Enforcement Notice"] = Field(alias="detail-type")
    resources: list[Arn] = Field(default_factory=list, max_length=100)
    detail: EnforcementNotice


class NoticeTrigger(Model):
    event: EnforcementNoticeEvent
