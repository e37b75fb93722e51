"""Factories for the adapters, cached per warm container. Nothing here runs at import time.

Adapters are imported inside the factories so that each function loads only what it uses (cold start).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from pipeshare.config import AcceptInvitationsSettings, load_settings

if TYPE_CHECKING:
    from pipeshare.adapters.dynamodb_executions import DynamoDbExecutionRepository
    from pipeshare.adapters.dynamodb_owner import DynamoDbGrantRepository
    from pipeshare.adapters.dynamodb_shares import DynamoDbShareRepository
    from pipeshare.adapters.ports import PolicySource
    from pipeshare.adapters.ram_invitations import RamInvitationGateway
    from pipeshare.adapters.ram_owner import RamOwnerGateway
    from pipeshare.adapters.sagemaker_executions import SageMakerExecutionGateway
    from pipeshare.adapters.sns_notifier import SnsNotifier


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


def get_policy_source(settings: AcceptInvitationsSettings) -> PolicySource:
    from pipeshare.adapters.policy_source import ParametersPolicySource, SsmPolicySource

    if settings.trust_policy_parameter:
        return SsmPolicySource(settings.trust_policy_parameter, max_age=settings.policy_cache_seconds)
    return ParametersPolicySource(settings)


def reset() -> None:
    """Forget cached clients, parameters and settings (a new container; the local stack plays several accounts)."""
    for factory in (
        get_ram_gateway,
        get_share_repository,
        get_notifier,
        get_owner_gateway,
        get_grant_repository,
        get_execution_repository,
        get_execution_gateway,
    ):
        factory.cache_clear()
    load_settings.cache_clear()
    import sys

    if "aws_lambda_powertools.utilities.parameters" in sys.modules:
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
