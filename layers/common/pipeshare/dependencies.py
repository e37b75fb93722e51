"""Factories for the adapters, cached per warm container. Nothing here runs at import time."""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools.utilities import parameters

from pipeshare.adapters.dynamodb_shares import DynamoDbShareRepository
from pipeshare.adapters.policy_source import ParametersPolicySource, SsmPolicySource
from pipeshare.adapters.ports import PolicySource
from pipeshare.adapters.ram_invitations import RamInvitationGateway
from pipeshare.adapters.sns_notifier import SnsNotifier
from pipeshare.config import AcceptInvitationsSettings, load_settings


@lru_cache(maxsize=1)
def get_ram_gateway() -> RamInvitationGateway:
    return RamInvitationGateway()


@lru_cache(maxsize=4)
def get_share_repository(table_name: str) -> DynamoDbShareRepository:
    return DynamoDbShareRepository(table_name)


@lru_cache(maxsize=4)
def get_notifier(topic_arn: str) -> SnsNotifier:
    return SnsNotifier(topic_arn)


def get_policy_source(settings: AcceptInvitationsSettings) -> PolicySource:
    if settings.trust_policy_parameter:
        return SsmPolicySource(settings.trust_policy_parameter, max_age=settings.policy_cache_seconds)
    return ParametersPolicySource(settings)


def reset() -> None:
    """Forget cached clients and parameters (a new container; used when one process plays several accounts)."""
    for factory in (get_ram_gateway, get_share_repository, get_notifier):
        factory.cache_clear()
    parameters.clear_caches()
    load_settings.cache_clear()
