"""Per-function settings, read once from the environment (template.yaml sets every value)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T", bound=BaseModel)


class _Settings(BaseModel):
    # built on first use: a function validates its own settings model only (cold start)
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)


class TrustPolicySettings(_Settings):
    """Where the trust policy comes from (template parameters, or an SSM parameter): the acceptor and the audit."""

    trusted_owner_account_ids: str = Field(alias="TRUSTED_OWNER_ACCOUNT_IDS")
    allowed_resource_types: str = Field(alias="ALLOWED_RESOURCE_TYPES", min_length=1)
    untrusted_action: str = Field(alias="UNTRUSTED_ACTION")
    disallowed_resource_action: str = Field(alias="DISALLOWED_RESOURCE_ACTION")
    trust_policy_parameter: str = Field(default="", alias="TRUST_POLICY_PARAMETER")
    policy_cache_seconds: int = Field(default=60, alias="POLICY_CACHE_SECONDS", ge=0, le=3600)


class AcceptInvitationsSettings(TrustPolicySettings):
    share_table_name: str = Field(alias="SHARE_TABLE_NAME", min_length=3)
    history_retention_days: int = Field(default=400, alias="HISTORY_RETENTION_DAYS", ge=1)
    held_digest_threshold: int = Field(default=5, alias="HELD_DIGEST_THRESHOLD", ge=0, le=1000)


class AuditSharesSettings(TrustPolicySettings):
    share_table_name: str = Field(alias="SHARE_TABLE_NAME", min_length=3)
    history_retention_days: int = Field(default=400, alias="HISTORY_RETENTION_DAYS", ge=1)


class NotifyDecisionsSettings(_Settings):
    consumer_topic_arn: str = Field(alias="CONSUMER_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    share_table_name: str = Field(alias="SHARE_TABLE_NAME", min_length=3)  # where each publish is recorded


class OwnerInventorySettings(_Settings):
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)
    history_retention_days: int = Field(default=400, alias="HISTORY_RETENTION_DAYS", ge=1)


class TrackExecutionsSettings(_Settings):
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


class SettleAttributionSettings(_Settings):
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)
    alert_on_owner_executions: bool = Field(default=False, alias="ALERT_ON_OWNER_EXECUTIONS")
    trail_cache_seconds: int = Field(default=900, alias="TRAIL_CACHE_SECONDS", ge=0, le=86400)


class EstimateCostSettings(_Settings):
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)
    budget_policy_parameter: str = Field(default="", alias="BUDGET_POLICY_PARAMETER")
    price_override_parameter: str = Field(default="", alias="PRICE_OVERRIDE_PARAMETER")
    parameter_cache_seconds: int = Field(default=60, alias="PARAMETER_CACHE_SECONDS", ge=0, le=3600)
    use_price_list_api: bool = Field(default=True, alias="USE_PRICE_LIST_API")
    # how long a Price List answer is reused (in-process and in the owner table): a choice, see adapters/price_list.py
    price_cache_seconds: int = Field(default=24 * 3600, alias="PRICE_CACHE_SECONDS", ge=0, le=7 * 24 * 3600)


class WatchBudgetsSettings(_Settings):
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)
    budget_policy_parameter: str = Field(default="", alias="BUDGET_POLICY_PARAMETER")
    parameter_cache_seconds: int = Field(default=60, alias="PARAMETER_CACHE_SECONDS", ge=0, le=3600)


class NotifyOwnerSettings(_Settings):
    owner_topic_arn: str = Field(alias="OWNER_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    owner_table_name: str = Field(alias="OWNER_TABLE_NAME", min_length=3)  # where each publish is recorded


@lru_cache(maxsize=8)
def load_settings(model: type[T]) -> T:
    """Validate the environment against a settings model. A missing or bad value fails loudly."""
    return model.model_validate(dict(os.environ))
