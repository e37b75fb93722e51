"""Turn a recorded decision (a history item) into one readable notification. Pure logic."""

from __future__ import annotations

from pipeshare.adapters.ports import Notifier
from pipeshare.logic.renderings import common_attributes, protocol_texts  # loaded by the two notifiers only
from pipeshare.models.notification import Notification
from pipeshare.models.outbox import DecisionHistoryItem

SCHEMA = "pipeshare.consumer.decision/1"
SUBJECT_MAX = 100  # SNS limit

_HEADLINES = {  # (head, tail) around the share name, which is shortened first
    "ACCEPTED": ("accepted share ", " from {sender}"),
    "HELD": ("HELD share ", " from {sender} - review needed"),
    "REJECTED": ("rejected share ", " from {sender}"),
    "EXPIRED": ("invitation to share ", " from {sender} expired"),
}


def _ascii(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def _subject(text: str) -> str:
    text = _ascii(f"pipeshare: {text}")
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 3] + "..."


def fit_subject(head: str, name: str, tail: str = "") -> str:
    """`pipeshare: <head><name><tail>` in ASCII, at most SUBJECT_MAX characters: the name is shortened ("...") so
    that head and tail, where account IDs go, are never cut."""
    head, name, tail = _ascii(f"pipeshare: {head}"), _ascii(name), _ascii(tail)
    room = SUBJECT_MAX - len(head) - len(tail)
    if len(name) > room:
        name = name[: max(room - 3, 0)] + "..." if room >= 3 else ""
    return _subject((head + name + tail).removeprefix("pipeshare: "))


def _digest(item: DecisionHistoryItem) -> Notification:
    count = item.count or 0
    return Notification(
        subject=_subject(f"{count} more invitations HELD from untrusted senders - digest"),
        message={
            "schema": SCHEMA,
            "event": "invitation.held.digest",
            "status": "HELD",
            "rule": "untrusted-owner",
            "count": count,
            "threshold": item.threshold,
            "senders": item.senders,
            "other_senders": item.other_senders,
            "share_names": item.share_names,
            "decided_at": item.at,
            "policy_source": item.policy_source,
            "note": f"the first {item.threshold} holds of this sweep were announced one by one; the records of "
            "these are in the share table (status HELD, rule untrusted-owner); nothing was accepted",
        },
        attributes={"event": "invitation.held.digest", "status": "HELD"},
    )


def _audit(item: DecisionHistoryItem) -> Notification:
    types = ", ".join(item.new_types)
    share = item.share_arn or "?"
    return Notification(
        subject=fit_subject(f"accepted share from {item.owner_account_id} now carries ", types, " - review needed"),
        message={
            "schema": SCHEMA,
            "event": "share.disallowed-resource",
            "share_arn": share,
            "owner_account_id": item.owner_account_id,
            "trusted_owner": item.trusted_owner,
            "new_types": item.new_types,
            "disallowed_types": item.disallowed_types,
            "resources": [r.model_dump() for r in item.resources],
            "detected_at": item.at,
            "policy_source": item.policy_source,
            "effect": "nothing is changed: the share stays accepted; review it with its owner, or allow the type in "
            "the trust policy if it is expected",
        },
        attributes={
            "event": "share.disallowed-resource",
            "status": "DISALLOWED_RESOURCE",
            "owner_account": item.owner_account_id or "",
        },
    )


def _reminder(item: DecisionHistoryItem) -> Notification:
    """A held invitation close to the end of its RAM window (kind "reminder"); with `count`, the sweep's digest."""
    if item.count is not None:
        return Notification(
            subject=_subject(f"{item.count} more HELD invitations expire soon - first by {item.accept_by}"),
            message={
                "schema": SCHEMA,
                "event": "invitation.reminder.digest",
                "status": "HELD",
                "count": item.count,
                "threshold": item.threshold,
                "senders": item.senders,
                "other_senders": item.other_senders,
                "share_names": item.share_names,
                "accept_by": item.accept_by,
                "reminded_at": item.at,
                "note": f"the first {item.threshold} reminders of this sweep were sent one by one; these invitations "
                "are HELD in the share table with reminded_at set; each expires unless approved before its window "
                "ends: pipeshare consumer approve INVITATION --reason ...",
            },
            attributes={"event": "invitation.reminder.digest", "status": "HELD"},
        )
    return Notification(
        subject=fit_subject(
            f"REMINDER: HELD share expires {item.accept_by} - ",
            repr(item.share_name or "?"),
            f" from {item.sender_account_id}",
        ),
        message={
            "schema": SCHEMA,
            "event": "invitation.reminder",
            "status": "HELD",
            "invitation_arn": item.invitation_arn,
            "share_arn": item.share_arn,
            "share_name": item.share_name,
            "sender_account_id": item.sender_account_id,
            "receiver_account_id": item.receiver_account_id,
            "region": item.region,
            "invited_at": item.invited_at,
            "accept_by": item.accept_by,
            "reminded_at": item.at,
            "how_to_accept": f"pipeshare consumer approve {item.invitation_arn} --reason ...",
            "effect": "nothing is changed: the invitation stays held and RAM expires it at accept_by unless it is "
            "approved before then",
        },
        attributes={
            "event": "invitation.reminder",
            "status": "HELD",
            "owner_account": item.sender_account_id or "",
            "consumer_account": item.receiver_account_id or "",
        },
    )


def build_notification(item: DecisionHistoryItem) -> Notification | None:
    """None when the item calls for no message (PENDING: waiting is not a decision; a hold or reminder the sweep's
    digest announces)."""
    if item.kind == "digest":
        return _digest(item)
    if item.kind == "audit":
        return _audit(item)
    if item.notice == "digest":
        return None
    if item.kind == "reminder":
        return _reminder(item)
    if item.kind == "policy":
        return Notification(
            subject=_subject("trust policy INVALID - no invitation will be accepted"),
            message={
                "schema": SCHEMA,
                "event": "policy.invalid",
                "policy_source": item.policy_source,
                "fingerprint": item.fingerprint,
                "errors": item.errors,
                "detected_at": item.at,
                "effect": "pipeshare fails closed: pending invitations stay pending until the policy is fixed",
            },
            attributes={"event": "policy.invalid", "status": "POLICY_INVALID"},
        )
    if item.to_status not in _HEADLINES:
        return None
    head, tail = _HEADLINES[item.to_status]
    event = f"invitation.{item.to_status.lower()}"
    attributes = {"event": event, "status": item.to_status, "owner_account": item.sender_account_id or ""}
    if item.receiver_account_id:
        attributes["consumer_account"] = item.receiver_account_id
    return Notification(
        subject=fit_subject(head, repr(item.share_name or "?"), tail.format(sender=item.sender_account_id)),
        message={
            "schema": SCHEMA,
            "event": event,
            "status": item.to_status,
            "decision": item.decision,
            "rule": item.rule,
            "reason": item.reason,
            "invitation_arn": item.invitation_arn,
            "share_arn": item.share_arn,
            "share_name": item.share_name,
            "sender_account_id": item.sender_account_id,
            "receiver_account_id": item.receiver_account_id,
            "region": item.region,
            "resources": [r.model_dump() for r in item.resources],
            "invited_at": item.invited_at,
            "decided_at": item.at,
            "policy_source": item.policy_source,
        },
        attributes=attributes,
    )


def publish(notification: Notification, *, notifier: Notifier, chat: str = "") -> str:
    """Publish a notification: its JSON body by default, its e-mail text for e-mail subscriptions, and with `chat`
    (a key of renderings.CHAT_KEYS) its chat notification under that key."""
    texts = protocol_texts(notification.subject, notification.message, notification.context, chat=chat)
    return notifier.publish(
        subject=notification.subject,
        message=notification.message,
        attributes=common_attributes(notification.attributes),
        texts=texts,
    )


def notify_decision(item: DecisionHistoryItem, *, notifier: Notifier, chat: str = "") -> str | None:
    """Publish the notification for one decision; returns the message id, or None when nothing is sent."""
    notification = build_notification(item)
    if notification is None:
        return None
    return publish(notification, notifier=notifier, chat=chat)
