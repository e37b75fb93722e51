"""Corrections to moto behaviour that the local stack depends on, applied once per process.

moto 5.2.5 TransactWriteItems runs every operation, then rolls a cancelled transaction back by swapping in deep
copies of the tables. Two effects differ from DynamoDB: stream records of the cancelled operations are emitted, and
stream iterators handed out earlier point at the swapped-out table, so they never see later records. DynamoDB emits
nothing for a cancelled transaction. The fix evaluates every condition first and cancels before anything is written.

The deep copies also make a transaction cost the size of its tables, once per operation (a 25-operation transaction
on a table of a few thousand items took seconds). Instead of copying tables, the fix keeps a copy of each item the
transaction touches and the length of each table's stream, and restores exactly those if an operation fails after
the conditions passed (a validation error): the table objects, and so the stream iterators, stay the same.
The local stack serialises DynamoDB requests (stack.py), so no other request runs between the check and the writes.

An UpdateItem that creates its item is written by moto in two steps (the key alone, then the update), each with its
stream record: two INSERT records, the first without the updated attributes. DynamoDB writes one INSERT record with
the new item. The fix merges the two into the first (its event id and sequence number, the final image).

SNS `Publish` with `MessageStructure=json` (aws-facts §15.1, from the Publish API reference): the message must be a
JSON object with a string `default`, checked at publish ("Failure to parse or validate any key or value in the message
will cause the Publish call to return an error (no partial delivery)"); a protocol's key, when its value is a string
(the empty string included), is what that protocol gets; "Non-string values will cause the key to be ignored". moto
5.2.5 checks per subscription while fanning out (a message without `default` is accepted when no subscription needs
it, an invalid one fails after some subscribers got it), falls back to `default` for an empty string, and delivers a
non-string value. The fix validates the whole message before any delivery and picks a protocol's value as documented.
moto also drops e-mail deliveries without a trace: the fix records what an `email` / `email-json` subscription would
get (EMAIL_DELIVERIES; LocalStack.read_emails), so the local stack shows what people read.

Speed only (no behaviour the product or the emulation observes): moto generates a 2048-bit RSA key for every KMS key
(symmetric ones included, for asymmetric signing nobody here does) and for every SNS subscription (to sign HTTP
deliveries, which the local stack does not make), about 50-100 ms each, several per deployment; one key per key
spec is generated once per process and shared. moto's server also lists its package directory on every request to
tell a service name from a host; the list is read once.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_applied = False
EMAIL_PROTOCOLS = ("email", "email-json")
EMAIL_DELIVERIES: list[dict[str, Any]] = []  # what e-mail subscriptions got: account, topic_arn, endpoint, ...


def _key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return op["Key"]  # type: ignore[no-any-return]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _precheck(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    errors: list[tuple[str | None, str | None, Any]] = []
    for item in transact_items:
        op_type, op = next(iter(item.items()))
        condition = op.get("ConditionExpression")
        if condition is None or op["TableName"] not in backend.tables:
            errors.append((None, None, None))
            continue
        current = backend.get_item(op["TableName"], _key(backend, op_type, op))
        check = get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        )
        if check.expr(current):
            errors.append((None, None, None))
        else:
            old = (
                current.to_json()["Attributes"]
                if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                else None
            )
            errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)


class _NoTableCopies:
    """Stands for the `copy` module inside moto.dynamodb.models: deep copies as usual, except of a whole Table (the
    transaction's rollback copy), which is returned as is; `_Touched` restores what a failed transaction wrote."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


class _Touched:
    """The items a transaction may write (copied before) and the length of their tables' streams."""

    def __init__(self, backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        self._items: list[tuple[Table, Any, Any, Any]] = []
        self._streams: dict[int, tuple[Any, int]] = {}
        for entry in transact_items:
            op_type, op = next(iter(entry.items()))
            if op.get("TableName") not in backend.tables:
                continue
            table = backend.get_table(op["TableName"])
            try:
                key = _key(backend, op_type, op)
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            except (KeyError, TypeError, AttributeError):
                continue  # moto refuses the operation before writing anything
            current = table.get_item(hash_value, range_value)
            self._items.append((table, hash_value, range_value, copy.deepcopy(current)))
            if table.stream_shard is not None:
                self._streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))

    def restore(self) -> None:
        for table, hash_value, range_value, before in reversed(self._items):
            if range_value is None:
                if before is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = before
            elif before is None:
                table.items.get(hash_value, {}).pop(range_value, None)
            else:
                table.items[hash_value][range_value] = before
        for shard, length in self._streams.values():
            del shard.items[length:]


def apply() -> None:
    global _applied
    if _applied:
        return
    original = DynamoDBBackend.transact_write_items
    dynamodb_models.copy = _NoTableCopies  # type: ignore[attr-defined]

    @functools.wraps(original)
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        _precheck(self, transact_items)
        touched = _Touched(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            touched.restore()
            raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    original_update = DynamoDBBackend.update_item

    @functools.wraps(original_update)
    def update_item(self: DynamoDBBackend, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        table = self.get_table(table_name)
        shard = table.stream_shard
        length = len(shard.items) if shard is not None else 0
        result = original_update(self, table_name, key, *args, **kwargs)
        if shard is not None and len(shard.items) == length + 2:
            first, second = shard.items[length], shard.items[length + 1]
            if first.record["eventName"] == second.record["eventName"] == "INSERT":
                merged = dict(second.record["dynamodb"], SequenceNumber=first.record["dynamodb"]["SequenceNumber"])
                first.record["dynamodb"] = merged
                del shard.items[length + 1 :]
        return result

    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
    _share_generated_keys()
    _sns_message_structure()
    _applied = True


def check_message_structure(message: str) -> dict[str, Any]:
    """The per-protocol message of a `MessageStructure=json` publish, validated as SNS does before any delivery."""
    from moto.sns.exceptions import InvalidParameterValue

    try:
        structured = json.loads(message)
    except ValueError:
        raise InvalidParameterValue(
            "Invalid parameter: Message Structure - JSON message body failed to parse"
        ) from None
    if not isinstance(structured, dict) or not isinstance(structured.get("default"), str):
        raise InvalidParameterValue("Invalid parameter: Message Structure - No default entry in JSON message body")
    return structured


def protocol_message(structured: dict[str, Any], protocol: str) -> str:
    """What a subscription of `protocol` gets: its own key when a string ("" included), else `default`."""
    value = structured.get(protocol)
    return value if isinstance(value, str) else str(structured["default"])


def _sns_message_structure() -> None:
    import moto.sns.models as sns_models

    original_publish = sns_models.SNSBackend.publish

    @functools.wraps(original_publish)
    def publish(self: Any, message: str, *args: Any, **kwargs: Any) -> str:
        if kwargs.get("message_structure") == "json":
            check_message_structure(message)  # before any subscription gets anything
        return original_publish(self, message, *args, **kwargs)  # type: ignore[no-any-return]

    def parse_message_structure(self: Any, message: str, protocol: str) -> str:
        return protocol_message(check_message_structure(message), self.protocol)

    original_deliver = sns_models.Subscription.publish

    @functools.wraps(original_deliver)
    def deliver(self: Any, message: str, message_id: str, subject: str | None = None, **kwargs: Any) -> None:
        if self.protocol not in EMAIL_PROTOCOLS:
            original_deliver(self, message, message_id, subject=subject, **kwargs)
            return
        attributes = kwargs.get("message_attributes")
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(attributes, message):
            return
        if kwargs.get("message_structure") == "json":
            message = protocol_message(check_message_structure(message), self.protocol)
        EMAIL_DELIVERIES.append(
            {
                "account": self.account_id,
                "topic_arn": self.topic.arn,
                "protocol": self.protocol,
                "endpoint": self.endpoint,
                "subject": subject,
                "message": message,
                "message_id": message_id,
            }
        )

    sns_models.SNSBackend.publish = publish  # type: ignore[method-assign]
    sns_models.Subscription._parse_message_structure = parse_message_structure  # type: ignore[method-assign]
    sns_models.Subscription.publish = deliver  # type: ignore[method-assign]


def _share_generated_keys() -> None:
    import moto.backends
    import moto.kms.models
    import moto.sns.models

    moto.kms.models.generate_private_key = functools.cache(moto.kms.models.generate_private_key)  # type: ignore[assignment]
    subscription_key = functools.cache(moto.sns.models.Subscription.private_key.__wrapped__)  # type: ignore[attr-defined]
    moto.sns.models.Subscription.private_key = lambda _self: subscription_key(None)  # type: ignore[method-assign]
    modules = list(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: iter(modules)  # type: ignore[assignment]
