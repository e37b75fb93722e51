"""Owner-team messages: inventory changes (who gained what). Execution alerts come from logic/attribution.py."""

from __future__ import annotations

from typing import Any

from pipeshare.adapters.ports import Notifier
from pipeshare.logic.notify import fit_subject, publish
from pipeshare.logic.renderings import common_attributes
from pipeshare.models.notification import Notification
from pipeshare.models.owner import Grant

SCHEMA = "pipeshare.owner.inventory-change/1"

_HEADLINES = {  # (head, tail) around the pipeline name, which is shortened first (the account never is)
    "accepted": ("consumer {consumer} now holds ", "{cost}"),
    "gained-allow-execution": ("consumer {consumer} can now RUN ", " (owner pays)"),
    "lost-allow-execution": ("consumer {consumer} is now read-only on ", " (was allow-execution)"),
    "revoked": ("consumer {consumer} no longer holds ", ""),
}
# "again" only when the grant was read-only before it gained allow-execution (Grant.read_only_before, recorded by the
# inventory): a consumer shared allow-execution from the start was never read-only
_READ_ONLY_AGAIN = ("consumer {consumer} is read-only again on ", "")


def inventory_change_notification(item: dict[str, Any]) -> Notification | None:
    """The message for a CHANGE# outbox item, or None when the change is not notable (invited, updated)."""
    kind = str(item.get("kind"))
    if not item.get("notable") or kind not in _HEADLINES:
        return None
    grant = Grant.model_validate(item.get("after") or item.get("before"))
    holding = Grant.model_validate(item["holding"]) if item.get("holding") else None
    pipeline = grant.pipeline_arn.rsplit("/", 1)[-1]
    before = Grant.model_validate(item["before"]) if item.get("before") else None
    again = kind == "lost-allow-execution" and before is not None and before.read_only_before
    head, tail = _READ_ONLY_AGAIN if again else _HEADLINES[kind]
    tail = tail.format(cost=" with allow-execution (owner pays)" if grant.cost_bearing else " read-only")
    weaker = kind in ("revoked", "lost-allow-execution") or not grant.cost_bearing  # than it was, or than another
    if weaker and holding is not None and holding.key != grant.key:
        # the consumer holds the pipeline through another share too: that is what it can do now (names in the body)
        tail += " via one share; " + ("can still RUN it" if holding.cost_bearing else "still reads it")
    return Notification(
        subject=fit_subject(head.format(consumer=grant.consumer), pipeline, tail),
        message={
            "schema": SCHEMA,
            "event": f"inventory.{kind}",
            "consumer_account_id": grant.consumer,
            "pipeline_arn": grant.pipeline_arn,
            "share_arn": grant.share_arn,
            "share_name": grant.share_name,
            "association_status": grant.association_status,
            "permission_arn": grant.permission_arn,
            "allow_execution": grant.allow_execution,
            "cost_bearing": grant.cost_bearing,
            # the consumer's hold on the pipeline after the change, through any share (allow-execution wins)
            "consumer_holds": None
            if holding is None
            else {
                "share_arn": holding.share_arn,
                "share_name": holding.share_name,
                "permission_arn": holding.permission_arn,
                "allow_execution": holding.allow_execution,
                "cost_bearing": holding.cost_bearing,
            },
            "cost_statement": (
                "With this permission the consumer can start, stop and retry executions; everything they run is "
                "consumed by, and billed to, the owner account."
                if grant.allow_execution
                else "Read-only: the consumer can see the pipeline and its executions but cannot run it."
            ),
            "at": item.get("at"),
        },
        attributes={
            "event": f"inventory.{kind}",
            "consumer_account": grant.consumer,
            "owner_account": grant.pipeline_arn.split(":")[4],
            "pipeline_name": pipeline,
        },
        context={"read_only_before": bool(again)},
    )


def owner_notification(item: dict[str, Any]) -> Notification | None:
    """The message for an owner outbox item (an inventory change or an execution alert; attributes under the common
    names, whenever the alert was composed)."""
    if item.get("item_type") == "change":
        return inventory_change_notification(item)
    if item.get("item_type") == "alert":  # composed when the alert became due (logic/attribution.py)
        return Notification(
            subject=str(item["subject"]),
            message=dict(item["message"]),
            attributes=common_attributes(item["attributes"]),
        )
    return None


def publish_owner_notification(notification: Notification, *, notifier: Notifier, chat: str = "") -> str:
    """Publish an owner message: JSON by default, its e-mail text to e-mail subscriptions, and the chat notification
    with `chat` (logic/notify.py `publish`)."""
    return publish(notification, notifier=notifier, chat=chat)
