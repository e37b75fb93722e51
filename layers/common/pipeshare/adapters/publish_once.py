"""Publish each outbox item once per successful attempt: a mark written after the publish, read before it.

DynamoDB streams deliver at least once: with ReportBatchItemFailures Lambda resumes a batch at the lowest failed
record, so records after it that were already published come again, and so does a batch whose invocation timed out
after publishing. Per item, in the function's own table (pk `PUBLISHED`, sk `publish#<hash of the item's key>`, TTL
`expires_at`), three calls:

1. GetItem (strongly consistent) of the item's mark: present, the item was published: its recorded SNS message id is
   returned and nothing is sent;
2. otherwise Publish, with the attribute `pipeshare-message-id` (stable per item);
3. then PutItem of the mark (`attribute_not_exists`), holding SNS's message id.

A failed publish writes no mark, so the retry publishes. A lost answer to any of the three is harmless: GetItem is a
read; the retry of a PutItem that was applied finds the mark (ConditionalCheckFailed: done); a Publish whose answer
was lost is the duplicate below. The one duplicate left is SNS accepting the message without the mark following (a
crash or timeout in between, a lost answer to Publish, the mark's write failing after botocore's retries): the
retry publishes again, with the same `pipeshare-message-id`, for subscribers to drop. A mark write that still fails
after botocore's retries is logged and does not fail the record: failing it would make the stream retry publish the
message again for certain, keeping it costs a second message only if the record is redelivered.

Why not Powertools idempotency (used here before): it writes an INPROGRESS record before the publish to lock out a
concurrent execution, and cannot tell that lock from its own write retried. When the answer to that PutItem is lost
(applied, then a connection error), botocore's retry meets the record it just wrote and fails
(IdempotencyAlreadyInProgressError), and so does every stream retry until the in-progress expiry (the invocation's
remaining time): the retries run out and the item is never published. Bounding that window more tightly races the
stream's retry timing, and Powertools has no attempt token for the in-progress write. The lock guards against nothing
here: a shard's records are processed in order by one invocation at a time, and an outbox item is inserted once, so
the same item is never handled by two invocations at once. Without it, a publish needs no in-progress state, no
completion update and no delete on failure. Keys and attributes (`status` COMPLETED, `data` the JSON of the message
id, `expires_at`) are those Powertools wrote, so marks already in a table keep counting.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit

from pipeshare.adapters.aws_errors import CONDITION_FAILED, translated
from pipeshare.models.errors import PipeshareError
from pipeshare.observability import logger, metrics

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from pipeshare.adapters.ports import Notifier

PUBLISHED_PK = "PUBLISHED"
MESSAGE_ID_ATTRIBUTE = "pipeshare-message-id"
COMPLETED = "COMPLETED"
# stream records are kept 24 hours: a redelivery comes within them; the mark outlives them (table TTL `expires_at`)
RECORD_SECONDS = 2 * 24 * 3600


def message_id(pk: str, sk: str) -> str:
    """The stable id of the message of one outbox item (its table key), the same on every delivery."""
    return hashlib.sha256(f"{pk}\n{sk}".encode()).hexdigest()[:32]


def mark_sk(pk: str, sk: str) -> str:
    """The sort key of an item's mark: `publish#` and the MD5 of its key as JSON (Powertools idempotency's key)."""
    canonical = json.dumps({"pk": pk, "sk": sk}, sort_keys=True)
    return "publish#" + hashlib.md5(canonical.encode(), usedforsecurity=False).hexdigest()


class PublishOnce:
    """A Notifier for outbox items: publishes an item's message unless its mark says it was published."""

    def __init__(self, notifier: Notifier, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._notifier = notifier
        self._table = table_name
        self._ddb = client or boto3.client("dynamodb")

    def publish(
        self,
        *,
        pk: str,
        sk: str,
        subject: str,
        message: dict[str, Any],
        attributes: dict[str, str],
        texts: Mapping[str, str] | None = None,
    ) -> str:
        """Publish the message of the outbox item (pk, sk) once; returns its SNS message id (the recorded one when
        it was published before)."""
        key = {"pk": {"S": PUBLISHED_PK}, "sk": {"S": mark_sk(pk, sk)}}
        recorded = self._recorded(key)
        if recorded is not None:
            return recorded
        attributes = {**attributes, MESSAGE_ID_ATTRIBUTE: message_id(pk, sk)}
        sent = self._notifier.publish(subject=subject, message=message, attributes=attributes, texts=texts)
        self._mark(key, sent)
        return sent

    def for_item(self, pk: str, sk: str) -> _ItemNotifier:
        """A Notifier (ports.Notifier) that publishes the message of this one outbox item, once."""
        return _ItemNotifier(self, pk, sk)

    def _recorded(self, key: dict[str, Any]) -> str | None:
        """The SNS message id of the item's unexpired mark, or None."""
        with translated():
            found = self._ddb.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        if not found or found.get("status", {}).get("S") != COMPLETED:
            return None  # no mark (a Powertools INPROGRESS record is no mark: its publish may not have happened)
        if int(found.get("expires_at", {}).get("N", "0")) <= time.time():
            return None  # expired, not yet deleted by TTL
        return str(json.loads(found.get("data", {}).get("S", '""')))

    def _mark(self, key: dict[str, Any], sent: str) -> None:
        item = {
            **key,
            "status": {"S": COMPLETED},
            "data": {"S": json.dumps(sent)},
            "expires_at": {"N": str(int(time.time()) + RECORD_SECONDS)},
        }
        try:
            self._put_mark(item)
        except PipeshareError as exc:  # still failing after botocore's retries
            _mark_failed(key, sent, exc.__cause__ or exc)  # the botocore error, as it was logged before

    @translated(returning={CONDITION_FAILED: None})  # marked already: this write's own retry after a lost answer
    def _put_mark(self, item: dict[str, Any]) -> None:
        self._ddb.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")


def _mark_failed(key: dict[str, Any], sent: str, exc: BaseException) -> None:
    logger.error(
        "published, but the mark was not written: a redelivery of this record publishes again",
        extra={"mark": key["sk"]["S"], "sns_message_id": sent, "error": str(exc)[:500]},
    )
    metrics.add_metric(name="PublishMarkFailed", unit=MetricUnit.Count, value=1)  # the possible duplicate, counted


class _ItemNotifier:
    """Implements ports.Notifier for one outbox item."""

    def __init__(self, once: PublishOnce, pk: str, sk: str) -> None:
        self._once, self._pk, self._sk = once, pk, sk

    def publish(
        self,
        *,
        subject: str,
        message: dict[str, Any],
        attributes: dict[str, str],
        texts: Mapping[str, str] | None = None,
    ) -> str:
        return self._once.publish(
            pk=self._pk, sk=self._sk, subject=subject, message=message, attributes=attributes, texts=texts
        )
