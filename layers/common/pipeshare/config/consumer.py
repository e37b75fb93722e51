"""The consumer side's settings (pipeshare.config: the base and the loader)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeshare.config import Settings


class TrustPolicySettings(Settings):
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


class NotifyDecisionsSettings(Settings):
    consumer_topic_arn: str = Field(alias="CONSUMER_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    share_table_name: str = Field(alias="SHARE_TABLE_NAME", min_length=3)  # where each publish is recorded
    # `ChatNotifications`: "off", or the protocol key the chat notification goes under (aws-facts §13.3)
    chat_notifications: Literal["off", "https"] = Field(default="off", alias="CHAT_NOTIFICATIONS")

    @property
    def chat_key(self) -> str:
        return "" if self.chat_notifications == "off" else self.chat_notifications
