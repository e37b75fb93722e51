"""The owner side's settings (pipeshare.config: the base and the loader)."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from pipeshare.config import ChatSettings, Settings


class OwnerInventorySettings(Settings):
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)
    history_retention_days: int = Field(default=400, alias="HISTORY_RETENTION_DAYS", ge=1)


class TrackExecutionsSettings(Settings):
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)
    alert_on_owner_executions: bool = Field(default=False, alias="ALERT_ON_OWNER_EXECUTIONS")
    infer_consumer_starts: bool = Field(default=True, alias="INFER_CONSUMER_STARTS")
    settle_queue_url: str = Field(alias="SETTLE_QUEUE_URL", pattern=r"^https?://")
    inference_settle_minutes: int = Field(alias="INFERENCE_SETTLE_MINUTES", ge=0, le=15)
    # the start projection (logic/projection.py): the same budget policy and prices as EstimateCostFunction
    budget_policy_parameter: str = Field(default="", alias="BUDGET_POLICY_PARAMETER")
    price_override_parameter: str = Field(default="", alias="PRICE_OVERRIDE_PARAMETER")
    parameter_cache_seconds: int = Field(default=60, alias="PARAMETER_CACHE_SECONDS", ge=0, le=3600)
    use_price_list_api: bool = Field(default=False, alias="USE_PRICE_LIST_API")
    price_cache_seconds: int = Field(default=24 * 3600, alias="PRICE_CACHE_SECONDS", ge=0, le=7 * 24 * 3600)


class SettleAttributionSettings(Settings):
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)
    alert_on_owner_executions: bool = Field(default=False, alias="ALERT_ON_OWNER_EXECUTIONS")
    trail_cache_seconds: int = Field(default=900, alias="TRAIL_CACHE_SECONDS", ge=0, le=86400)


class EstimateCostSettings(Settings):
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)
    budget_policy_parameter: str = Field(default="", alias="BUDGET_POLICY_PARAMETER")
    price_override_parameter: str = Field(default="", alias="PRICE_OVERRIDE_PARAMETER")
    parameter_cache_seconds: int = Field(default=60, alias="PARAMETER_CACHE_SECONDS", ge=0, le=3600)
    use_price_list_api: bool = Field(default=True, alias="USE_PRICE_LIST_API")
    # how long a Price List answer is reused (in-process and in the owner table): a choice, see adapters/price_list.py
    price_cache_seconds: int = Field(default=24 * 3600, alias="PRICE_CACHE_SECONDS", ge=0, le=7 * 24 * 3600)


class WatchBudgetsSettings(Settings):
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)
    budget_policy_parameter: str = Field(default="", alias="BUDGET_POLICY_PARAMETER")
    parameter_cache_seconds: int = Field(default=60, alias="PARAMETER_CACHE_SECONDS", ge=0, le=3600)


class NotifyOwnerSettings(ChatSettings):
    owner_topic_arn: str = Field(alias="OWNER_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)  # where each publish is recorded
    # the consumers' notice bus name (ConsumerNoticeBusName); empty: consumers are not told
    consumer_notice_bus_name: str = Field(
        default="", alias="CONSUMER_NOTICE_BUS_NAME", pattern=r"^$|^[A-Za-z0-9._-]{1,256}$"
    )
    region: str = Field(default="", alias="AWS_REGION")  # Lambda sets it: the consumers' buses are in this Region

    @model_validator(mode="after")
    def _region_for_notices(self) -> NotifyOwnerSettings:
        if self.consumer_notice_bus_name and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", self.region):
            raise ValueError(f"CONSUMER_NOTICE_BUS_NAME needs the function's AWS_REGION, not {self.region!r}")
        return self

    @property
    def partition(self) -> str:
        return self.owner_topic_arn.split(":")[1]
