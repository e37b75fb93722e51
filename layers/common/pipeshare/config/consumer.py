"""The consumer side's settings (pipeshare.config: the base and the loader)."""

from __future__ import annotations

from pydantic import Field

from pipeshare.config import ChatSettings, Settings


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
    held_reminder_minutes: int = Field(default=240, alias="HELD_REMINDER_MINUTES", ge=0, le=10080)
    invitation_window_hours: int = Field(default=12, alias="INVITATION_WINDOW_HOURS", ge=1, le=168)


class AuditSharesSettings(TrustPolicySettings):
    share_table_name: str = Field(alias="SHARE_TABLE_NAME", min_length=3)
    history_retention_days: int = Field(default=400, alias="HISTORY_RETENTION_DAYS", ge=1)


class NotifyDecisionsSettings(ChatSettings):
    consumer_topic_arn: str = Field(alias="CONSUMER_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    share_table_name: str = Field(alias="SHARE_TABLE_NAME", min_length=3)  # where each publish is recorded


class RelayNoticesSettings(TrustPolicySettings, ChatSettings):
    """The relay of owners' enforcement notices: who is trusted (the trust policy), where notices go and are marked."""

    consumer_topic_arn: str = Field(alias="CONSUMER_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    share_table_name: str = Field(alias="SHARE_TABLE_NAME", min_length=3)  # where each publish is recorded
