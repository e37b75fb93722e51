"""Share state in DynamoDB: one STATE item per invitation plus append-only HIST# items (the notification outbox).

Keys: pk = "INVITATION#<invitation arn>", sk = "STATE" | "HIST#<iso time>#<status>"; pk = "POLICY" for the policy;
pk = "DIGEST", sk = "HIST#<sweep time>#HELD" for a sweep's digest of untrusted-sender holds; pk = "SHARE#<share arn>",
sk = "AUDIT" | "HIST#<iso time>#AUDIT" for the daily audit of accepted shares (the types alerted on, and each alert).
A held invitation's reminder is "HIST#<sweep time>#REMINDER" under its own pk (STATE gets `reminded_at`, in the same
transaction); pk = "DIGEST", sk = "HIST#<sweep time>#REMINDER" for a sweep's digest of reminders.
Transitions are conditional writes in one transaction with their history item, so a repeat delivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import CONDITION_FAILED, translated
from pipeshare.adapters.dynamodb_common import deserialize, transact
from pipeshare.adapters.dynamodb_common import iso as _iso
from pipeshare.adapters.dynamodb_common import item as _item
from pipeshare.models.domain import (
    AuditFinding,
    HeldDigest,
    HeldReminder,
    RecordedState,
    ReminderDigest,
    ShareRecord,
    ShareStatus,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STATE = "STATE"
POLICY_PK = "POLICY"
DIGEST_PK = "DIGEST"
AUDIT_SK = "AUDIT"


def share_pk(share_arn: str) -> str:
    return f"SHARE#{share_arn}"


def invitation_pk(invitation_arn: str) -> str:
    return f"INVITATION#{invitation_arn}"


class DynamoDbShareRepository:
    """Implements ports.ShareRepository."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._ddb = client or boto3.client("dynamodb")

    def record_transition(self, record: ShareRecord, *, history_expires_at: int) -> bool:
        """Move the STATE item to the record's status (from none yet, or from a predecessor) and write its history
        item (the outbox), in one transaction. False when a condition refused it (the status had moved on)."""
        pk = invitation_pk(record.invitation_arn)
        snapshot = record.model_dump(mode="json", exclude={"status", "first_seen_at", "last_seen_at"})
        state = {"TableName": self._table, "Key": _item({"pk": pk, "sk": STATE}), **_transition(record, snapshot)}
        history = _history(record, snapshot, pk, history_expires_at)
        return transact(
            self._ddb,
            [
                {"Update": state},
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _item(history),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ],
        )

    @translated(returning={CONDITION_FAILED: None})  # no STATE item (never recorded): nothing to touch
    def touch(self, invitation_arn: str, *, seen_at: datetime, reason: str, rule: str, policy_fingerprint: str) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=_item({"pk": invitation_pk(invitation_arn), "sk": STATE}),
            UpdateExpression="SET last_seen_at = :seen, last_check_reason = :reason, last_check_rule = :rule, "
            "policy_fingerprint = :fp",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=_item(
                {":seen": _iso(seen_at), ":reason": reason, ":rule": rule, ":fp": policy_fingerprint}
            ),
        )

    def get(self, invitation_arn: str) -> ShareRecord | None:
        with translated():
            response = self._ddb.get_item(
                TableName=self._table,
                Key=_item({"pk": invitation_pk(invitation_arn), "sk": STATE}),
                ConsistentRead=True,
            )
        if "Item" not in response:
            return None
        data = deserialize(response["Item"])
        data["invitation_arn"] = invitation_arn
        data["status"] = ShareStatus(data["status"])
        return ShareRecord.model_validate(data)

    def recorded_states(self, invitation_arns: Sequence[str]) -> dict[str, RecordedState]:
        found: dict[str, RecordedState] = {}
        arns = list(dict.fromkeys(invitation_arns))
        for start in range(0, len(arns), 100):
            keys = [_item({"pk": invitation_pk(a), "sk": STATE}) for a in arns[start : start + 100]]
            request: dict[str, Any] = {
                self._table: {
                    "Keys": keys,
                    "ProjectionExpression": "pk, #s, policy_fingerprint, last_seen_at, reminded_at",
                    "ExpressionAttributeNames": {"#s": "status"},
                }
            }
            with translated():
                while request:
                    response = self._ddb.batch_get_item(RequestItems=request)
                    for item in response.get("Responses", {}).get(self._table, []):
                        data = deserialize(item)
                        found[data.pop("pk").removeprefix("INVITATION#")] = RecordedState.model_validate(data)
                    request = response.get("UnprocessedKeys") or {}
        return found

    def record_policy_invalid(
        self,
        *,
        source: str,
        fingerprint: str,
        errors: list[str],
        at: datetime,
        remind_after: datetime,
        history_expires_at: int,
    ) -> bool:
        values = {
            ":fp": fingerprint,
            ":at": _iso(at),
            ":remind": _iso(remind_after),
            ":source": source,
            ":errors": errors[:50],
            ":type": "policy",
        }
        return transact(
            self._ddb,
            [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _item({"pk": POLICY_PK, "sk": STATE}),
                        "UpdateExpression": "SET #fp = :fp, notified_at = :at, policy_source = :source, "
                        "#errors = :errors, item_type = :type",
                        "ExpressionAttributeNames": {"#fp": "fingerprint", "#errors": "errors"},
                        "ConditionExpression": "attribute_not_exists(pk) OR #fp <> :fp OR notified_at < :remind",
                        "ExpressionAttributeValues": _item(values),
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _item(
                            {
                                "pk": POLICY_PK,
                                "sk": f"HIST#{_iso(at)}#INVALID",
                                "item_type": "history",
                                "kind": "policy",
                                "to_status": "POLICY_INVALID",
                                "at": _iso(at),
                                "policy_source": source,
                                "fingerprint": fingerprint,
                                "errors": errors[:50],
                                "expires_at": history_expires_at,
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ],
        )

    @translated(returning={CONDITION_FAILED: False})
    def record_digest(self, digest: HeldDigest, *, history_expires_at: int) -> bool:
        """Write the sweep's digest (an outbox item the notifier publishes once). False when it exists already."""
        item = {
            "pk": DIGEST_PK,
            "sk": digest.key,
            "item_type": "history",
            "kind": "digest",
            "to_status": ShareStatus.HELD.value,
            "at": _iso(digest.at),
            "expires_at": history_expires_at,
            **digest.model_dump(mode="json", exclude={"at"}, exclude_none=True),
        }
        self._ddb.put_item(TableName=self._table, Item=_item(item), ConditionExpression="attribute_not_exists(pk)")
        return True

    def record_reminder(self, reminder: HeldReminder, *, history_expires_at: int) -> bool:
        """Mark the STATE item reminded (only while HELD and never reminded) and write the reminder's history item
        (the outbox), in one transaction: a repeated or concurrent sweep records nothing. True when written."""
        pk = invitation_pk(reminder.invitation_arn)
        at = _iso(reminder.at)
        history = {
            "pk": pk,
            "sk": f"HIST#{at}#REMINDER",
            "item_type": "history",
            "kind": "reminder",
            "to_status": ShareStatus.HELD.value,
            "expires_at": history_expires_at,
            **reminder.model_dump(mode="json", exclude_none=True),
        }
        return transact(
            self._ddb,
            [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _item({"pk": pk, "sk": STATE}),
                        "UpdateExpression": "SET reminded_at = :at",
                        "ConditionExpression": "#s = :held AND attribute_not_exists(reminded_at)",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": _item({":at": at, ":held": ShareStatus.HELD.value}),
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _item(history),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ],
        )

    @translated(returning={CONDITION_FAILED: False})
    def record_reminder_digest(self, digest: ReminderDigest, *, history_expires_at: int) -> bool:
        """Write the sweep's digest of reminders (an outbox item the notifier publishes once). False when it exists."""
        item = {
            "pk": DIGEST_PK,
            "sk": digest.key,
            "item_type": "history",
            "kind": "reminder",
            "to_status": ShareStatus.HELD.value,
            "expires_at": history_expires_at,
            **digest.model_dump(mode="json", exclude_none=True),
        }
        self._ddb.put_item(TableName=self._table, Item=_item(item), ConditionExpression="attribute_not_exists(pk)")
        return True

    def alerted_types(self, share_arns: Sequence[str]) -> dict[str, list[str]]:
        """The disallowed resource types each share was already alerted on (shares never alerted on are absent)."""
        found: dict[str, list[str]] = {}
        arns = list(dict.fromkeys(share_arns))
        for start in range(0, len(arns), 100):
            keys = [_item({"pk": share_pk(a), "sk": AUDIT_SK}) for a in arns[start : start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ProjectionExpression": "pk, alerted_types"}}
            with translated():
                while request:
                    response = self._ddb.batch_get_item(RequestItems=request)
                    for raw in response.get("Responses", {}).get(self._table, []):
                        data = deserialize(raw)
                        found[data["pk"].removeprefix("SHARE#")] = sorted(data.get("alerted_types") or [])
                    request = response.get("UnprocessedKeys") or {}
        return found

    def record_audit_alert(self, finding: AuditFinding, *, known: Sequence[str], history_expires_at: int) -> bool:
        """Record the types alerted on and the alert (outbox) in one transaction, guarded by the types known before
        (`known`, as read): a concurrent or repeated run records nothing. True when this call recorded it."""
        pk = share_pk(finding.share_arn)
        alerted = sorted({*known, *finding.disallowed_types})
        values: dict[str, Any] = {":types": alerted, ":at": _iso(finding.at), ":type": "share-audit"}
        condition = "attribute_not_exists(pk)"
        if known:  # the set only grows (a union), so its size tells whether another run recorded more since
            values[":n"] = len(set(known))
            condition = "size(alerted_types) = :n"
        history = {
            "pk": pk,
            "sk": f"HIST#{_iso(finding.at)}#AUDIT",
            "item_type": "history",
            "kind": "audit",
            "to_status": "DISALLOWED_RESOURCE",
            "at": _iso(finding.at),
            "expires_at": history_expires_at,
            **finding.model_dump(mode="json", exclude={"at"}),
        }
        return transact(
            self._ddb,
            [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _item({"pk": pk, "sk": AUDIT_SK}),
                        "UpdateExpression": "SET alerted_types = :types, last_alert_at = :at, item_type = :type",
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": _item(values),
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _item(history),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ],
        )


# the record's attributes copied onto the STATE item when they have a value
_SNAPSHOT_KEYS = (
    "invitation_arn",
    "share_arn",
    "share_name",
    "sender_account_id",
    "receiver_account_id",
    "region",
    "decision",
    "rule",
    "reason",
    "invited_at",
    "policy_source",
    "policy_fingerprint",
)


def _transition(record: ShareRecord, snapshot: dict[str, Any]) -> dict[str, Any]:
    """The Update of the STATE item for a transition: its expressions and their attributes."""
    names, values, sets = _state_attributes(record, snapshot)
    condition, predecessors = _transition_guard(record.status)
    return {
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": _item(values | predecessors),
    }


def _state_attributes(
    record: ShareRecord, snapshot: dict[str, Any]
) -> tuple[dict[str, str], dict[str, Any], list[str]]:
    """The attribute names, values and SET clauses of the STATE item: the status, the times (first_seen_at only
    when it has none yet) and every snapshot attribute with a value."""
    names = {"#status": "status"}
    values: dict[str, Any] = {
        ":status": record.status.value,
        ":now": _iso(record.decided_at),
        ":first": _iso(record.first_seen_at),
        ":type": "invitation",
    }
    sets = [
        "#status = :status",
        "decided_at = :now",
        "last_seen_at = :now",
        "first_seen_at = if_not_exists(first_seen_at, :first)",
        "item_type = :type",
    ]
    for key in _SNAPSHOT_KEYS:
        if snapshot.get(key) is not None:
            names[f"#{key}"] = key  # several of these are DynamoDB reserved words (region, rule, ...)
            values[f":{key}"] = snapshot[key]
            sets.append(f"#{key} = :{key}")
    if record.resources:
        names["#resources"] = "resources"
        values[":resources"] = snapshot["resources"]
        sets.append("#resources = :resources")
    return names, values, sets


def _transition_guard(status: ShareStatus) -> tuple[str, dict[str, str]]:
    """The condition of a transition into `status`: no STATE item yet, or one in a predecessor status (with the
    placeholders of those statuses)."""
    predecessors = {f":p{i}": p.value for i, p in enumerate(status.predecessors())}
    condition = "attribute_not_exists(pk)"
    if predecessors:
        condition += f" OR #status IN ({', '.join(predecessors)})"
    return condition, predecessors


def _history(record: ShareRecord, snapshot: dict[str, Any], pk: str, expires_at: int) -> dict[str, Any]:
    """The transition's history item: the outbox item the notifier publishes."""
    return {
        "pk": pk,
        "sk": f"HIST#{_iso(record.decided_at)}#{record.status.value}",
        "item_type": "history",
        "kind": "invitation",
        "to_status": record.status.value,
        "at": _iso(record.decided_at),
        "expires_at": expires_at,
        **{k: v for k, v in snapshot.items() if k not in ("decided_at",)},
    }
