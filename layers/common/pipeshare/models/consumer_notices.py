"""The consumer is told too: one enforcement notice per budget enforcement action, from the owner to the consumer.

The owner's budget watcher writes a notice (`EnforcementNotice`) in the same transaction as the action's ledger item
(a `NOTICE#<ledger key>` outbox item: `ConsumerNoticeItem`); the owner notifier puts it, once, on the consumer's notice
bus as a custom event (`EnforcementNoticeEvent`: source `pipeshare.owner`, detail-type `Pipeshare Enforcement
Notice`); the consumer's relay validates the event and publishes it, once per `notice_id`, to its own topic.

This module imports no other function's models: the owner notifier and the consumer relay both build it. The event
envelope the relay receives is models/notice_events.py (the owner notifier builds no event model).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from pipeshare.models.base import Model
from pipeshare.models.types import AccountId, ExecutionArn, Month, PipelineArn

NOTICE_SCHEMA: Final = "pipeshare.consumer.enforcement-notice/1"
NOTICE_SOURCE = "pipeshare.owner"  # a custom event's source may be anything not starting with "aws." (aws-facts §14)
NOTICE_DETAIL_TYPE = "Pipeshare Enforcement Notice"

NoticeId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Amount = Annotated[Decimal, Field(ge=0, allow_inf_nan=False, max_digits=20, decimal_places=2)]
ShareArn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:ram:[a-z0-9-]+:[0-9]{12}:resource-share/[\w-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class NoticeSpend(Model):
    """The month's figure and the limit, rounded to the cent, in the budget's currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: Literal["USD"] = "USD"
    month_to_date: Amount  # every estimated spend of the month attributed to the consumer
    counted: Amount  # what enforcement counts (confirmed only, unless the owner's budget counts inferred runs)
    counts: Literal["confirmed", "total"]
    monthly_limit: Amount
    percent_used: Annotated[Decimal, Field(ge=0, allow_inf_nan=False, max_digits=12, decimal_places=1)]


class EnforcementNotice(Model):
    """What the owner's budget enforcement did (or, in dry run, would have done) to the consumer: one per action."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["pipeshare.consumer.enforcement-notice/1"] = Field(default=NOTICE_SCHEMA, alias="schema")
    notice_id: NoticeId  # stable per action: the consumer publishes each id once
    owner_account_id: AccountId
    consumer_account_id: AccountId
    month: Month
    action: Literal["stop_execution", "remove_from_share"]
    outcome: Literal["done", "not-run"]  # not-run: the owner's budget is in dry run, nothing was done
    dry_run: bool
    reason: Literal["over-budget", "worst-case", "unpriced"]
    pipeline_arns: tuple[PipelineArn, ...] = Field(min_length=1, max_length=100)
    execution_arn: ExecutionArn | None = None  # stop_execution
    attempt: Annotated[int, Field(ge=1)] | None = None
    share_arn: ShareArn | None = None  # remove_from_share
    share_name: Name | None = None
    read_only_share_arn: ShareArn | None = None  # remove_from_share with downgrade_to_read_only, once granted
    spend: NoticeSpend
    at: Annotated[str, StringConstraints(min_length=1, max_length=64)]

    @model_validator(mode="after")
    def _consistent(self) -> EnforcementNotice:
        if self.action == "stop_execution" and self.execution_arn is None:
            raise ValueError("a stop_execution notice names its execution_arn")
        if self.action == "remove_from_share" and self.share_arn is None:
            raise ValueError("a remove_from_share notice names its share_arn")
        if self.dry_run != (self.outcome == "not-run"):
            raise ValueError("outcome is not-run exactly when dry_run is true")
        owners = {arn.split(":")[4] for arn in (*self.pipeline_arns, self.execution_arn, self.share_arn) if arn}
        if owners != {self.owner_account_id}:
            raise ValueError("the pipelines, execution and share must all belong to owner_account_id")
        return self

    def body(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


class ConsumerNoticeItem(Model):
    """A NOTICE# outbox item from the owner table's stream (NEW_IMAGE)."""

    model_config = ConfigDict(extra="ignore")

    pk: Annotated[str, StringConstraints(pattern=r"^BUDGET#", max_length=2048)]
    sk: Annotated[str, StringConstraints(pattern=r"^NOTICE#", max_length=2048)]
    item_type: Literal["consumer-notice"]
    notice: EnforcementNotice


class NoticeOutcome(Model):
    """What the relay did with one notice: published it to the consumer topic (once per notice_id: a redelivery gets
    the recorded message id), or refused it (nothing published)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["relayed", "refused"]
    notice_id: str | None = None
    owner_account_id: str | None = None
    message_id: str | None = None
    reason: str | None = None

    def response(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)
