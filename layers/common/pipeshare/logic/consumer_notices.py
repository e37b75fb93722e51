"""The consumer is told too. Pure, no I/O.

Owner side: `stop_notice` / `share_notice` build the notice of one enforcement action (the budget watcher writes it
with the action's ledger item); `notice_bus_arn` names the consumer's notice bus by convention (the consumer's
account, the owner stack's region, the bus name both sides deploy with: ConsumerNoticeBusName).

Consumer side: `admit_notice` decides whether a delivered notice is relayed, from the consumer's own trust policy and
account (never from what the payload claims alone); `notice_message` is the message for the consumer's topic.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Literal

from pipeshare.models.consumer_notices import EnforcementNotice, NoticeSpend
from pipeshare.models.notification import Notification

if TYPE_CHECKING:  # annotations only: the consumer's relay builds none of the owner's budget models
    from pipeshare.models.budgets import Budget, ConsumerSpend, ShareRemoval, StopOrder
    from pipeshare.models.domain import TrustPolicy
    from pipeshare.models.notice_events import EnforcementNoticeEvent

SUBJECT_MAX = 100  # SNS
CENT = Decimal("0.01")
Done = Literal["done", "not-run"]


# ------------------------------------------------------------------------------------------------------ owner side


def notice_id(month: str, consumer: str, key: str) -> str:
    """The stable id of the notice of one ledger key (one action): the same on every retry of the watcher."""
    return hashlib.sha256(f"{month}\n{consumer}\n{key}".encode()).hexdigest()[:32]


def notice_bus_arn(*, partition: str, region: str, consumer: str, bus_name: str) -> str:
    """The consumer's notice bus: arn:<partition>:events:<owner's region>:<consumer>:event-bus/<bus name>."""
    return f"arn:{partition}:events:{region}:{consumer}:event-bus/{bus_name}"


def _cents(value: Decimal) -> Decimal:
    return max(value, Decimal(0)).quantize(CENT, rounding=ROUND_HALF_UP)


def _spend(spend: ConsumerSpend, budget: Budget, currency: str) -> NoticeSpend:
    counted = spend.enforced(budget)
    return NoticeSpend(
        currency=currency,  # type: ignore[arg-type]  # the policy's currency: USD (models/budgets.py)
        month_to_date=_cents(spend.total),
        counted=_cents(counted),
        counts=budget.enforced_on,
        monthly_limit=_cents(budget.monthly_limit),
        percent_used=budget.percent_used(counted),
    )


def stop_notice(
    order: StopOrder, spend: ConsumerSpend, budget: Budget, *, outcome: Done, at: datetime, currency: str = "USD"
) -> EnforcementNotice:
    """The notice of one stop of one execution attempt (or, in dry run, of the stop that would be made)."""
    run = order.run
    pipeline = run.pipeline_arn or run.execution_arn.split("/execution/")[0]
    return EnforcementNotice(
        notice_id=notice_id(spend.month, spend.consumer, order.key),
        owner_account_id=run.owner_account,
        consumer_account_id=spend.consumer,
        month=spend.month,
        action="stop_execution",
        outcome=outcome,
        dry_run=outcome == "not-run",
        reason=order.reason,
        pipeline_arns=(pipeline,),
        execution_arn=run.execution_arn,
        attempt=run.attempt,
        spend=_spend(spend, budget, currency),
        at=at.isoformat(),
    )


def share_notice(
    removal: ShareRemoval,
    spend: ConsumerSpend,
    budget: Budget,
    *,
    outcome: Done,
    at: datetime,
    key: str | None = None,
    read_only_share: str | None = None,
    currency: str = "USD",
) -> EnforcementNotice:
    """The notice of one removal of the consumer from one share (or, in dry run, of the removal that would be made);
    with the read-only share it was given the same pipelines through, when that was done. `key`: the last ledger key
    recorded with it (the removal's own, or its read-only grant's when that is recorded later): one notice per key."""
    return EnforcementNotice(
        notice_id=notice_id(spend.month, spend.consumer, key or removal.key),
        owner_account_id=removal.share_arn.split(":")[4],
        consumer_account_id=spend.consumer,
        month=spend.month,
        action="remove_from_share",
        outcome=outcome,
        dry_run=outcome == "not-run",
        reason="over-budget",
        pipeline_arns=tuple(sorted(removal.pipelines)),
        share_arn=removal.share_arn,
        share_name=removal.share_name,
        read_only_share_arn=read_only_share,
        spend=_spend(spend, budget, currency),
        at=at.isoformat(),
    )


# --------------------------------------------------------------------------------------------------- consumer side


def admit_notice(event: EnforcementNoticeEvent, policy: TrustPolicy, own_account: str) -> str | None:
    """None when the notice may be relayed, else why not. The sender is the event's `account` (set by EventBridge),
    which must be a trusted owner of the consumer's own trust policy; the notice must be about this account, from
    that owner (its pipelines, execution and share belong to the owner: models/consumer_notices.py)."""
    notice = event.detail
    if policy.owner(event.account) is None:
        return f"the sender {event.account} is not a trusted owner of this account's trust policy"
    if notice.owner_account_id != event.account:
        return f"the notice names owner {notice.owner_account_id}, but account {event.account} sent it"
    if notice.consumer_account_id != own_account:
        return f"the notice is about account {notice.consumer_account_id}, not this account ({own_account})"
    return None


def _name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _ascii(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def notice_message(notice: EnforcementNotice) -> Notification:
    """The consumer's message: a readable subject (ASCII, at most 100 characters) and the notice as the JSON body."""
    owner, spend = notice.owner_account_id, notice.spend
    figure = f"{spend.counted}/{spend.monthly_limit} {spend.currency}"
    if notice.action == "stop_execution":
        what = _name(notice.pipeline_arns[0])
        verb = "would stop your run of" if notice.dry_run else "stopped your run of"
    else:
        what = notice.share_name or _name(notice.share_arn or "")
        verb = "would remove you from share" if notice.dry_run else "removed you from share"
    dry = "DRY RUN: " if notice.dry_run else ""  # a dry run is titled so, first (as every dry-run message)
    head, tail = f"pipeshare: {dry}owner {owner} {verb} ", f" (budget {figure})"
    room = SUBJECT_MAX - len(head) - len(tail)
    what = _ascii(what)
    if len(what) > room:  # the name is shortened, never the account or the figures
        what = what[: max(room - 3, 1)] + "..."
    return Notification(
        subject=_ascii(head + what + tail)[:SUBJECT_MAX],
        message=notice.body(),
        attributes={  # the names every message kind uses (README "Messages emitted")
            "event": f"enforcement.{notice.action}",
            "action": notice.action,
            "outcome": notice.outcome,
            "dry_run": "true" if notice.dry_run else "false",
            "owner_account": owner,
            "consumer_account": notice.consumer_account_id,
            "month": notice.month,
        },
    )


def notice_texts(message: Notification, *, chat: str = "") -> dict[str, str]:
    """The per-protocol texts of the consumer's message (logic/renderings.py): its e-mail text, and with `chat` its
    chat notification (`MessageStructure=json`; the JSON body stays the default)."""
    from pipeshare.logic.renderings import protocol_texts  # here: the budget watcher builds notices, never texts

    return protocol_texts(message.subject, message.message, chat=chat)
