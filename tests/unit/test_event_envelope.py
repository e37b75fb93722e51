"""pipeshare's EventBridge envelope (models/base.py EventEnvelope) against Powertools' EventBridgeModel, which it
replaces as the base of every event model so that no function builds Powertools' model at import."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import ValidationError

from pipeshare.models.base import EventEnvelope
from tests.conftest import EVENTS


def _fields(model: Any) -> dict[str, tuple[str | None, bool, Any]]:
    return {name: (f.alias, f.is_required(), f.default) for name, f in model.model_fields.items()}


def _eventbridge_fixtures() -> list[str]:
    names = []
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if isinstance(event, dict) and "detail-type" in event and "version" in event:
            names.append(path.stem)
    return names


def test_the_envelope_declares_powertools_fields_with_the_same_aliases_and_defaults() -> None:
    # Given both envelope models
    # Then every field has the same name, alias, required-ness and default
    assert _fields(EventEnvelope) == _fields(EventBridgeModel)


@pytest.mark.parametrize("name", _eventbridge_fixtures())
def test_every_eventbridge_fixture_reads_the_same_through_both_envelopes(name: str) -> None:
    # Given an EventBridge event of events/ (the fixture source)
    event = json.loads((EVENTS / f"{name}.json").read_text())

    # When both envelopes read it
    try:
        expected = EventBridgeModel.model_validate(event).model_dump(by_alias=True)
    except ValidationError:
        expected = None
    try:
        got = EventEnvelope.model_validate(event).model_dump(by_alias=True)
    except ValidationError:
        got = None

    # Then they agree: the same values, or both refuse it
    assert got == expected


def test_an_empty_scheduler_detail_string_is_an_empty_object_as_powertools_reads_it() -> None:
    # Given an EventBridge Scheduler event with the detail "{}" as a string
    event = json.loads((EVENTS / f"{_eventbridge_fixtures()[0]}.json").read_text())
    event.update({"source": "aws.scheduler", "detail": "{}"})

    # Then both envelopes read an empty object
    assert EventEnvelope.model_validate(event).detail == EventBridgeModel.model_validate(event).detail == {}
