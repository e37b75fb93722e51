"""Input contracts of the budget watcher: the SSM "Parameter Store Change" event and the schedule (EventBridge), and
the owner-table stream images it reads (spend totals, execution states, estimates with unpriced instance types).

Stream images come from pipeshare's own writers, so they are parsed for what the watcher reads and nothing more
(`extra="ignore"`); an image that fails its model is refused (InvalidEvent), never acted on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from pipeshare.models.base import Model
from pipeshare.models.budgets import ConsumerSpend, LineSpend, RunView
from pipeshare.models.events import ScheduledEvent, _Envelope
from pipeshare.models.types import AccountId, Arn, Text

_Month = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]


# --------------------------------------------------------------------------------------------------- EventBridge


class ParameterStoreChangeDetail(Model):
    """The documented keys (operation, name, type, description); others tolerated. `name` is the parameter's full
    name, with its leading slash for a hierarchical one (the documented event patterns match it so)."""

    model_config = ConfigDict(extra="allow")

    operation: Annotated[str, StringConstraints(min_length=1, max_length=64)]  # Create | Update | Delete | Label...
    name: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    type: Annotated[str, StringConstraints(max_length=64)] | None = None
    description: Text | None = None


class ParameterStoreChangeEvent(_Envelope):
    source: Literal["aws.ssm"]
    detail_type: Literal["Parameter Store Change"] = Field(alias="detail-type")
    resources: list[Arn] = Field(default_factory=list, max_length=10)
    detail: ParameterStoreChangeDetail


class BudgetTrigger(Model):
    """What may trigger a whole-month evaluation: the budget policy changed (SSM), or the daily schedule."""

    event: Annotated[ParameterStoreChangeEvent | ScheduledEvent, Field(discriminator="source")]


# ------------------------------------------------------------------------------------------------ stream images


class _Image(Model):
    model_config = ConfigDict(extra="ignore")

    pk: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    sk: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class ConsumerTotalImage(_Image):
    """SPEND#<month> / CONSUMER#<account> (kind consumer-total). `confirmed_total` absent: nothing confirmed."""

    kind: Literal["consumer-total"]
    consumer_account: AccountId
    month: _Month
    total: Decimal = Field(ge=0, allow_inf_nan=False)
    confirmed_total: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)

    def spend(self) -> ConsumerSpend:
        return ConsumerSpend(
            consumer=self.consumer_account, month=self.month, total=self.total, confirmed_total=self.confirmed_total
        )


class UnattributedTotalImage(_Image):
    """SPEND#<month> / UNATTRIBUTED#PIPELINE#<arn> (kind unattributed-pipeline-total)."""

    kind: Literal["unattributed-pipeline-total"]
    sk: Annotated[str, StringConstraints(pattern=r"^UNATTRIBUTED#PIPELINE#", max_length=2048)]
    pk: Annotated[str, StringConstraints(pattern=r"^SPEND#[0-9]{4}-(0[1-9]|1[0-2])$")]
    pipeline_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:sagemaker:", max_length=2048)]
    total: Decimal = Field(ge=0, allow_inf_nan=False)

    def line(self) -> LineSpend:
        return LineSpend(pipeline_arn=self.pipeline_arn, month=self.pk.removeprefix("SPEND#"), total=self.total)


class ExecutionStateImage(_Image):
    """EXECUTION#<arn> / STATE (item_type execution): the flat attributes the tracker writes."""

    item_type: Literal["execution"]
    sk: Literal["STATE"]
    execution_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:sagemaker:", max_length=2048)]
    pipeline_arn: Text = ""
    status: Text | None = None
    open_status: Text | None = None
    attempt: Annotated[int, Field(ge=1)] = 1
    initiator_account: Text | None = None
    attribution_source: Text | None = None
    worst_case_usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    worst_case_complete: bool | None = None

    def run(self) -> RunView:
        return RunView.model_validate(self.model_dump(exclude={"pk", "sk", "item_type", "status"}))


class EstimateImage(_Image):
    """EXECUTION#<arn> / ESTIMATE (item_type estimate): whose spend holds it, and what nobody could price."""

    item_type: Literal["estimate"]
    sk: Literal["ESTIMATE"]
    pk: Annotated[str, StringConstraints(pattern=r"^EXECUTION#arn:aws[a-z-]*:sagemaker:", max_length=2048)]
    consumer_account: Text = "-"
    unpriced: list[Annotated[str, StringConstraints(max_length=128)]] = Field(default_factory=list, max_length=500)

    @property
    def execution_key(self) -> str:
        """The execution ARN as the key holds it (lower-case)."""
        return self.pk.removeprefix("EXECUTION#")


StreamImage = ConsumerTotalImage | UnattributedTotalImage | ExecutionStateImage | EstimateImage


def image_model(image: dict[str, object]) -> type[StreamImage] | None:
    """Which contract a stream image is meant to follow (by its `kind` / `item_type`); None: not the watcher's."""
    kind, item_type = image.get("kind"), image.get("item_type")
    if kind == "consumer-total":
        return ConsumerTotalImage
    if kind == "unattributed-pipeline-total":
        return UnattributedTotalImage
    if item_type == "execution":
        return ExecutionStateImage
    if item_type == "estimate":
        return EstimateImage
    return None
