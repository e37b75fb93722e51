"""Parse an event against its contract, or reject it: one structured error line, an InvalidEvent metric, no raise."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ValidationError

from pipeshare.models.events import MAX_EVENT_BYTES
from pipeshare.observability import logger, metrics

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


def parse_or_reject(event: Any, model: type[M], *, wrap: str | None = None) -> M | None:
    """Validate an event. Returns None (after logging) when it is not valid. With wrap, validate {wrap: event}."""
    event_id = _event_id(event)
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
