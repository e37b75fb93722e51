"""Publish each outbox item once per successful attempt (Powertools idempotency over the function's own table).

DynamoDB streams deliver at least once: with ReportBatchItemFailures Lambda resumes a batch at the lowest failed
record, so records after it that were already published come again, and so does a batch whose invocation timed out
after publishing. Before publishing, an idempotency record keyed by the outbox item's table key is written in the same
table (pk `PUBLISHED`, sk `publish#<hash>`, conditionally: Powertools' DynamoDBPersistenceLayer); after the publish it
holds SNS's message id. A redelivered item finds the completed record and is not published again; a failed publish
removes the record so that the retry publishes. The one duplicate left is a crash between SNS accepting the message
and the record's completion: the in-progress record expires with the invocation and the retry publishes again. Every
message therefore carries `pipeshare-message-id`, stable per outbox item, for subscribers to drop such a copy.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

    from pipeshare.adapters.ports import Notifier

PUBLISHED_PK = "PUBLISHED"
MESSAGE_ID_ATTRIBUTE = "pipeshare-message-id"
# stream records are kept 24 hours: a redelivery comes within them; the record outlives them (table TTL `expires_at`)
RECORD_SECONDS = 2 * 24 * 3600


def message_id(pk: str, sk: str) -> str:
    """The stable id of the message of one outbox item (its table key), the same on every delivery."""
    return hashlib.sha256(f"{pk}\n{sk}".encode()).hexdigest()[:32]


class PublishOnce:
    """A Notifier for outbox items: publishes an item's message unless its publish is already on record."""

    def __init__(self, notifier: Notifier, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._notifier = notifier
        self._config = IdempotencyConfig(expires_after_seconds=RECORD_SECONDS, raise_on_no_idempotency_key=True)
        persistence = DynamoDBPersistenceLayer(
            table_name=table_name,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value=PUBLISHED_PK,
            expiry_attr="expires_at",
            boto3_client=client,
        )
        self._publish = idempotent_function(
            data_keyword_argument="outbox",
            persistence_store=persistence,
            config=self._config,
            key_prefix="publish",
        )(self._publish_now)

    def register(self, context: LambdaContext) -> None:
        """The invocation's context: an in-progress record expires with the invocation (see the module docstring)."""
        self._config.register_lambda_context(context)

    def publish(
        self, *, pk: str, sk: str, subject: str, message: dict[str, Any], attributes: dict[str, str]
    ) -> str:
        """Publish the message of the outbox item (pk, sk) once; returns its SNS message id (the recorded one when
        it was published before)."""
        stable = message_id(pk, sk)
        attributes = {**attributes, MESSAGE_ID_ATTRIBUTE: stable}
        # only `outbox` is the idempotency key; the message travels beside it
        return str(self._publish(outbox={"pk": pk, "sk": sk}, subject=subject, message=message, attributes=attributes))

    def for_item(self, pk: str, sk: str) -> _ItemNotifier:
        """A Notifier (ports.Notifier) that publishes the message of this one outbox item, once."""
        return _ItemNotifier(self, pk, sk)

    def _publish_now(
        self, *, outbox: dict[str, str], subject: str, message: dict[str, Any], attributes: dict[str, str]
    ) -> str:
        return self._notifier.publish(subject=subject, message=message, attributes=attributes)


class _ItemNotifier:
    """Implements ports.Notifier for one outbox item."""

    def __init__(self, once: PublishOnce, pk: str, sk: str) -> None:
        self._once, self._pk, self._sk = once, pk, sk

    def publish(self, *, subject: str, message: dict[str, Any], attributes: dict[str, str]) -> str:
        return self._once.publish(pk=self._pk, sk=self._sk, subject=subject, message=message, attributes=attributes)
