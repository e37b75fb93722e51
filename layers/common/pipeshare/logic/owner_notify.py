"""Owner-team messages: inventory changes (who gained what). Execution alerts come from logic/attribution.py."""

from __future__ import annotations

from typing import Any

from pipeshare.logic.notify import _subject
from pipeshare.models.notification import Notification
from pipeshare.models.owner import Grant

SCHEMA = "pipeshare.owner.inventory-change/1"

_HEADLINES = {
    "accepted": "consumer {consumer} now holds {pipeline}{cost}",
    "gained-allow-execution": "consumer {consumer} can now RUN {pipeline} (owner pays)",
    "lost-allow-execution": "consumer {consumer} is read-only again on {pipeline}",
    "revoked": "consumer {consumer} no longer holds {pipeline}",
}


def inventory_change_notification(item: dict[str, Any]) -> Notification | None:
    """The message for a CHANGE# outbox item, or None when the change is not notable (invited, updated)."""
    kind = str(item.get("kind"))
    if not item.get("notable") or kind not in _HEADLINES:
        return None
    grant = Grant.model_validate(item.get("after") or item.get("before"))
    holding = Grant.model_validate(item["holding"]) if item.get("holding") else None
    pipeline = grant.pipeline_arn.rsplit("/", 1)[-1]
    subject = _HEADLINES[kind].format(
        consumer=grant.consumer,
        pipeline=pipeline,
        cost=" with allow-execution (owner pays)" if grant.cost_bearing else " read-only",
    )
    weaker = kind in ("revoked", "lost-allow-execution") or not grant.cost_bearing  # than it was, or than another
    if weaker and holding is not None and holding.key != grant.key:
        # the consumer holds the pipeline through another share too: that is what it can do now (names in the body)
        subject += " via one share; " + ("can still RUN it" if holding.cost_bearing else "still reads it")
    return Notification(
        subject=_subject(subject),
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
        attributes={"event": f"inventory.{kind}", "consumer_account_id": grant.consumer},
    )


def owner_notification(item: dict[str, Any]) -> Notification | None:
    """The message for an owner outbox item (an inventory change or an execution alert)."""
    if item.get("item_type") == "change":
        return inventory_change_notification(item)
    if item.get("item_type") == "alert":  # composed when the alert became due (logic/attribution.py)
        return Notification(
            subject=str(item["subject"]), message=dict(item["message"]), attributes=dict(item["attributes"])
        )
    return None
