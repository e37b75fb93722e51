"""Parse an event against its contract, or reject it: one structured error line, an InvalidEvent metric, no raise."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ValidationError

from pipeshare.models.base import MAX_EVENT_BYTES
from pipeshare.observability import logger, metrics

if TYPE_CHECKING:  # not imported at run time: the rule targets never load the batch utilities
    from aws_lambda_powertools.utilities.batch import EventType
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

M = TypeVar("M", bound=BaseModel)


def _event_id(event: Any) -> str | None:
    if isinstance(event, dict):
        value = event.get("id")
        return value if isinstance(value, str) else None
    return None


def reject_input(reason: str, *, event_id: str | None, kind: str = "event") -> None:
    """Record one invalid input: a single error log line and one InvalidEvent metric."""
    logger.error("invalid input", extra={"event_id": event_id, "input_kind": kind, "reason": reason[:2000]})
    metrics.add_metric(name="InvalidEvent", unit=MetricUnit.Count, value=1)


def parse_or_reject(event: Any, model: type[M], *, wrap: str | None = None, event_id: str | None = None) -> M | None:
    """Validate an event. Returns None (after logging) when it is not valid. With wrap, validate {wrap: event}.
    `event_id`: the id to log when the event carries none itself (a stream record's eventID for its image)."""
    own = _event_id(event)
    event_id = event_id if own is None else own
    try:
        size = len(json.dumps(event, default=str, ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        reject_input(f"event is not JSON-serialisable: {exc}", event_id=event_id)
        return None
    if size > MAX_EVENT_BYTES:
        reject_input(f"event is {size} bytes, over the {MAX_EVENT_BYTES}-byte EventBridge limit", event_id=event_id)
        return None
    try:
        return model.model_validate({wrap: event} if wrap else event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1 if wrap else 0 :]) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        reject_input(problems, event_id=event_id)
        return None


def parse_json_or_reject(body: str, model: type[M], *, event_id: str | None) -> M | None:
    """Validate a JSON text (an SQS message body). Returns None (after logging) when it is not valid."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:10]
        )
        reject_input(problems, event_id=event_id, kind="message")
        return None


def _item_identifier(record: Any, source: EventType) -> Any:
    """What Lambda needs to retry one record (batchItemFailures' itemIdentifier): the SQS messageId, the DynamoDB
    stream record's SequenceNumber."""
    if not isinstance(record, dict):
        return None
    if source.value == "SQS":
        return record.get("messageId")
    stream = record.get("dynamodb")
    return stream.get("SequenceNumber") if isinstance(stream, dict) else None


def batch_or_reject(event: Any, source: EventType) -> bool:
    """Whether `event` is a batch as Lambda's SQS or DynamoDB stream event source mapping delivers it: an object whose
    Records is a non-empty list of objects, each with its item identifier (text). When it is not, it is rejected (one
    error line, one InvalidEvent metric) and the handler answers with no item failure: a record without its
    identifier cannot be reported for a retry, and nothing in such a batch can be retried into shape."""
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records and all(isinstance(_item_identifier(r, source), str) for r in records):
        return True
    reason = f"not a {source.value} batch: Records must be a non-empty list of records, each with its identifier"
    reject_input(reason, event_id=_event_id(event), kind="batch")
    return False


def record_id(record: Mapping[str, Any]) -> str | None:
    """A stream record's eventID or a queue message's messageId (None when it has no text id)."""
    value = record.get("eventID", record.get("messageId"))
    return value if isinstance(value, str) else None


# what TypeDeserializer raises for a value that is not DynamoDB JSON ({} , {"X": ..}, {"N": "x"}, {"SS": [[]]}, ...)
_NOT_DYNAMODB_JSON = (AttributeError, IndexError, KeyError, TypeError, ValueError, ArithmeticError)


def stream_image_or_reject(record: DynamoDBRecord, *, old: bool = False) -> dict[str, Any] | None:
    """A DynamoDB stream record's new (`old`: old) image as a dict, {} when it has none; None, after one error line and
    one InvalidEvent metric, when the record or its image is not DynamoDB JSON (a retry cannot change it). For the old
    image nothing is logged: it only tells what changed."""
    try:
        stream = record.dynamodb
        image = (stream.old_image if old else stream.new_image) if stream else None
        if image is not None and not isinstance(image, dict):
            raise TypeError(f"the image is a {type(image).__name__}")
    except _NOT_DYNAMODB_JSON as exc:
        if not old:
            reject_input(f"the stream record's image is not DynamoDB JSON: {exc!r}", event_id=record_id(record))
        return None
    return image or {}
