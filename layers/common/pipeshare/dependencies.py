"""Factories for the adapters, cached per warm container. Nothing here runs at import time.

Adapters are imported inside the factories so that each function loads only what it uses (cold start).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from pipeshare.config import load_settings

if TYPE_CHECKING:
    from pipeshare.adapters.cloudtrail_status import CloudTrailStatusGateway
    from pipeshare.adapters.dynamodb_budgets import DynamoDbBudgetLedger
    from pipeshare.adapters.dynamodb_costs import DynamoDbCostRepository
    from pipeshare.adapters.dynamodb_executions import DynamoDbExecutionRepository
    from pipeshare.adapters.dynamodb_owner import DynamoDbGrantRepository
    from pipeshare.adapters.dynamodb_projection import DynamoDbRunHistory
    from pipeshare.adapters.dynamodb_shares import DynamoDbShareRepository
    from pipeshare.adapters.enforcement import AwsEnforcementGateway
    from pipeshare.adapters.owner_parameters import SsmBudgetSource
    from pipeshare.adapters.ports import PolicySource
    from pipeshare.adapters.price_list import PriceListLookup
    from pipeshare.adapters.publish_once import PublishOnce
    from pipeshare.adapters.ram_invitations import RamInvitationGateway
    from pipeshare.adapters.ram_owner import RamOwnerGateway
    from pipeshare.adapters.sagemaker_definitions import SageMakerDefinitionGateway
    from pipeshare.adapters.sagemaker_executions import SageMakerCostGateway, SageMakerExecutionGateway
    from pipeshare.adapters.settle_queue import SqsSettleScheduler
    from pipeshare.adapters.sns_notifier import SnsNotifier
    from pipeshare.config.consumer import TrustPolicySettings
    from pipeshare.models.estimates import PriceTable


@lru_cache(maxsize=1)
def get_ram_gateway() -> RamInvitationGateway:
    from pipeshare.adapters.ram_invitations import RamInvitationGateway

    return RamInvitationGateway()


@lru_cache(maxsize=4)
def get_share_repository(table_name: str) -> DynamoDbShareRepository:
    from pipeshare.adapters.dynamodb_shares import DynamoDbShareRepository

    return DynamoDbShareRepository(table_name)


@lru_cache(maxsize=4)
def get_notifier(topic_arn: str) -> SnsNotifier:
    from pipeshare.adapters.sns_notifier import SnsNotifier

    return SnsNotifier(topic_arn)


@lru_cache(maxsize=4)
def get_publish_once(topic_arn: str, table_name: str) -> PublishOnce:
    from pipeshare.adapters.publish_once import PublishOnce

    return PublishOnce(get_notifier(topic_arn), table_name)


@lru_cache(maxsize=16)
def get_notice_publisher(bus_arn: str, table_name: str) -> PublishOnce:
    """Put notices on one consumer's notice bus, once per outbox item (marks in the owner table)."""
    from pipeshare.adapters.eventbridge_notices import EventBridgeNoticeSender
    from pipeshare.adapters.publish_once import PublishOnce

    return PublishOnce(EventBridgeNoticeSender(bus_arn), table_name)


@lru_cache(maxsize=1)
def get_owner_gateway() -> RamOwnerGateway:
    from pipeshare.adapters.ram_owner import RamOwnerGateway

    return RamOwnerGateway()


@lru_cache(maxsize=4)
def get_grant_repository(table_name: str) -> DynamoDbGrantRepository:
    from pipeshare.adapters.dynamodb_owner import DynamoDbGrantRepository

    return DynamoDbGrantRepository(table_name)


@lru_cache(maxsize=4)
def get_execution_repository(table_name: str) -> DynamoDbExecutionRepository:
    from pipeshare.adapters.dynamodb_executions import DynamoDbExecutionRepository

    return DynamoDbExecutionRepository(table_name)


@lru_cache(maxsize=1)
def get_execution_gateway() -> SageMakerExecutionGateway:
    from pipeshare.adapters.sagemaker_executions import SageMakerExecutionGateway

    return SageMakerExecutionGateway()


@lru_cache(maxsize=2)
def get_settle_scheduler(queue_url: str) -> SqsSettleScheduler:
    from pipeshare.adapters.settle_queue import SqsSettleScheduler

    return SqsSettleScheduler(queue_url)


@lru_cache(maxsize=2)
def get_trail_status(max_age: int) -> CloudTrailStatusGateway:
    from pipeshare.adapters.cloudtrail_status import CloudTrailStatusGateway

    return CloudTrailStatusGateway(max_age=max_age)


@lru_cache(maxsize=4)
def get_cost_repository(table_name: str) -> DynamoDbCostRepository:
    from pipeshare.adapters.dynamodb_costs import DynamoDbCostRepository

    return DynamoDbCostRepository(table_name)


@lru_cache(maxsize=1)
def get_cost_gateway() -> SageMakerCostGateway:
    from pipeshare.adapters.sagemaker_executions import SageMakerCostGateway

    return SageMakerCostGateway()


def get_budget_source(parameter_name: str, max_age: int) -> SsmBudgetSource:
    from pipeshare.adapters.owner_parameters import SsmBudgetSource

    return SsmBudgetSource(parameter_name, max_age=max_age)


def get_prices(override_parameter: str, max_age: int) -> PriceTable:
    """The shipped table with the SSM override merged over it; an invalid override is reported, never raised."""
    from pipeshare.adapters.owner_parameters import prices_with_override

    return prices_with_override(override_parameter, max_age=max_age)


@lru_cache(maxsize=4)
def get_budget_ledger(table_name: str) -> DynamoDbBudgetLedger:
    from pipeshare.adapters.dynamodb_budgets import DynamoDbBudgetLedger

    return DynamoDbBudgetLedger(table_name)


@lru_cache(maxsize=1)
def get_enforcer() -> AwsEnforcementGateway:
    from pipeshare.adapters.enforcement import AwsEnforcementGateway

    return AwsEnforcementGateway()


@lru_cache(maxsize=4)
def get_price_lookup(table_name: str | None = None, cache_seconds: int | None = None) -> PriceListLookup:
    """The Price List lookup, its answers cached in-process and in the owner table (EstimateCostSettings by default:
    OWNER_TABLE_NAME, PRICE_CACHE_SECONDS)."""
    from pipeshare.adapters.price_cache import DynamoDbPriceCache
    from pipeshare.adapters.price_list import PriceListLookup
    from pipeshare.config.owner import EstimateCostSettings

    if table_name is None or cache_seconds is None:
        settings = load_settings(EstimateCostSettings)
        table_name = settings.owner_table_name if table_name is None else table_name
        cache_seconds = settings.price_cache_seconds if cache_seconds is None else cache_seconds
    return PriceListLookup(cache=DynamoDbPriceCache(table_name), ttl_seconds=cache_seconds)


@lru_cache(maxsize=1)
def get_definition_gateway() -> SageMakerDefinitionGateway:
    """What an execution runs (the start projection); its client is built on first use."""
    from pipeshare.adapters.sagemaker_definitions import SageMakerDefinitionGateway

    return SageMakerDefinitionGateway()


@lru_cache(maxsize=4)
def get_run_history(table_name: str) -> DynamoDbRunHistory:
    """A pipeline's finished runs and a consumer's month-to-date spend (the start projection); client on first use."""
    from pipeshare.adapters.dynamodb_projection import DynamoDbRunHistory

    return DynamoDbRunHistory(table_name)


def get_policy_source(settings: TrustPolicySettings) -> PolicySource:
    from pipeshare.adapters.policy_source import ParametersPolicySource, SsmPolicySource

    if settings.trust_policy_parameter:
        return SsmPolicySource(settings.trust_policy_parameter, max_age=settings.policy_cache_seconds)
    return ParametersPolicySource(settings)


def reset() -> None:
    """Forget cached clients, parameters and settings (a new container; the local stack plays several accounts)."""
    for factory in list(globals().values()):
        if callable(factory) and hasattr(factory, "cache_clear"):  # every cached factory of this module
            factory.cache_clear()
    load_settings.cache_clear()
    import sys

    if "aws_lambda_powertools.utilities.parameters" in sys.modules:
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
