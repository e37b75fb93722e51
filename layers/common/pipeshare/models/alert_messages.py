"""The alert message (`pipeshare.owner.execution-alert/1`): who started, stopped or retried an owner's pipeline
execution."""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import (
    Field,
)

from pipeshare.models.messages import (
    MessageBody,
    PayerBilling,
    _Part,
)

ALERT_SCHEMA: Final = "pipeshare.owner.execution-alert/1"


class AlertExecution(_Part):
    status: str | None
    started_at: str | None
    ended_at: str | None


class GrantBlock(_Part):
    consumer: str
    share_arn: str
    share_name: str
    permission_arn: str | None
    permission_name: str | None
    association_status: str
    allow_execution: bool


class AttributionBlock(_Part):
    source: str
    rank: int
    evidence: str
    caveat: str | None


class Correction(_Part):
    source: str
    consumer_account: str | None
    candidates: tuple[str, ...]
    statement: str


class AlertMessage(MessageBody):
    """`pipeshare.owner.execution-alert/1`: who started, stopped or retried an owner's pipeline execution."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("corrects", "projection")

    schema_: Literal["pipeshare.owner.execution-alert/1"] = Field(default=ALERT_SCHEMA, alias="schema")
    event: str
    action: str
    attempt: int | None
    consumer_account: str | None
    principal: str | None
    principal_id: str | None
    candidates: tuple[str, ...]
    acted_at: str | None
    pipeline_name: str
    pipeline_arn: str
    execution_arn: str
    owner_account: str
    region: str
    execution: AlertExecution
    grant: GrantBlock | None
    attribution: AttributionBlock
    billing: PayerBilling
    corrects: Correction | None = None
    projection: dict[str, Any] | None = None
