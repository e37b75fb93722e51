"""Consumer side: relay an owner's budget enforcement notice (delivered on the consumer's notice bus) to the consumer
topic, once per notice. Only a notice sent by a trusted owner of this account's trust policy, about this account, is
published; anything else is refused with a structured error and a metric, and nothing is published."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.config import load_settings
from pipeshare.config.consumer import RelayNoticesSettings
from pipeshare.dependencies import get_policy_source, get_publish_once
from pipeshare.logic.consumer_notices import admit_notice, notice_message, notice_texts
from pipeshare.models.consumer_notices import NoticeOutcome
from pipeshare.models.errors import PolicyInvalidError
from pipeshare.models.notice_events import NoticeTrigger
from pipeshare.models.outcomes import Rejected
from pipeshare.observability import logger, metrics, tracer
from pipeshare.reporting import report_notice_relay
from pipeshare.validation import parse_or_reject


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(RelayNoticesSettings)
    trigger = parse_or_reject(event, NoticeTrigger, wrap="event")
    if trigger is None:
        return Rejected().response()
    delivered, notice = trigger.event, trigger.event.detail
    try:
        policy = get_policy_source(settings).load()
    except PolicyInvalidError as exc:  # fail closed: no owner is trusted while the policy is invalid
        reason = str(exc)
    else:
        own_account = context.invoked_function_arn.split(":")[4]
        reason = admit_notice(delivered, policy, own_account) or ""
    if reason:
        report_notice_relay(notice.notice_id, delivered.account, status="refused", detail=reason)
        return NoticeOutcome(
            status="refused", notice_id=notice.notice_id, owner_account_id=delivered.account, reason=reason
        ).response()
    message = notice_message(notice)
    once = get_publish_once(settings.consumer_topic_arn, settings.share_table_name)
    message_id = once.publish(
        pk=f"NOTICE#{delivered.account}",
        sk=notice.notice_id,
        subject=message.subject,
        message=message.message,
        attributes=message.attributes,
        texts=notice_texts(message, chat=settings.chat_key),
    )
    report_notice_relay(notice.notice_id, delivered.account, status="relayed", detail=message_id)
    return NoticeOutcome(
        status="relayed", notice_id=notice.notice_id, owner_account_id=delivered.account, message_id=message_id
    ).response()
