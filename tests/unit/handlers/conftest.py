"""Each handler (functions/<name>/app.py) called directly: `lambda_handler(event, context)` with an events/ fixture, a
Lambda context stub, the environment its function has in template.yaml, and every `get_*` factory the handler module
imported replaced (monkeypatch on the module) by one returning an in-memory fake (tests/fakes.py).

A test module names its handler (`HANDLER = "<folder under functions/>"`, optionally `PARAMETERS`: template parameter
values) and calls the `invoke` fixture with the event and the fakes, by factory name:

    run = invoke(load_event("ram_invitation_pending"), get_ram_gateway=ram, get_share_repository=shares, ...)

Every port is wrapped so that each method call is recorded (`run.calls`: (factory, method)), then delegated to the
fake. `run.logs` holds the Powertools log lines and `run.metrics` the metrics of the EMF blobs the invocation printed
(`@metrics.log_metrics` flushes them to stdout). A factory the handler imported and the test did not give fails the
test: no real adapter (boto3 client) is ever built, and a new port cannot go unnoticed. No socket is opened. The
machinery (environment, recording, capture) is tests/handler_harness.py, shared with the handler fuzz.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from pipeshare import dependencies
from tests.handler_harness import Marks, PlainValue, Run, call, prepare

__all__ = ["Invoker", "Marks", "PlainValue", "Run", "assert_refused_without_side_effect", "invalid_fixtures"]


class Invoker:
    """Calls one handler's lambda_handler (tests/handler_harness.call) with the given fakes; `environment` is the one
    template.yaml gives its function (already in place)."""

    def __init__(self, handler: str, environment: Mapping[str, str], context: Any, patch: pytest.MonkeyPatch) -> None:
        self.handler = handler
        self.module = importlib.import_module(f"functions.{handler}.app")
        self.context = context
        self.environment = dict(environment)
        self._patch = patch

    def __call__(self, event: Any, **fakes: Any) -> Run:
        return call(self.module, event, self.context, fakes, self._patch)


@pytest.fixture
def invoke(request: pytest.FixtureRequest, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoker]:
    """`invoke(event, **fakes) -> Run` for the test module's HANDLER, in the environment template.yaml gives its
    function (PARAMETERS: template parameter values), in its account (the owner's or the consumer's)."""
    handler: str = request.module.HANDLER
    parameters: Mapping[str, str] = getattr(request.module, "PARAMETERS", {})
    environment = prepare(handler, parameters, lambda_context, monkeypatch)
    yield Invoker(handler, environment, lambda_context, monkeypatch)
    dependencies.reset()


# ----------------------------------------------------------------------------------------------- shared assertions


def assert_refused_without_side_effect(run: Run, *, event_id: str | None, answer: Any, reason: str = "") -> None:
    """One structured error line (`invalid input`, the event id, a non-empty reason containing `reason`), one
    InvalidEvent metric, the documented answer, and no port call at all."""
    assert run.result == answer
    assert len(run.errors) == 1, run.logs
    line = run.errors[0]
    assert line["message"] == "invalid input"
    assert line.get("event_id") == event_id  # Powertools leaves out a key whose value is None
    assert isinstance(line["reason"], str)
    assert line["reason"].strip()
    assert reason in line["reason"], line["reason"]
    assert run.metrics["InvalidEvent"] == 1, run.metrics
    assert run.calls == []


def invalid_fixtures() -> list[Any]:
    """The events/ fixtures every rule target must refuse (events/sources.json: expect "invalid"), as pytest params."""
    from tests.conftest import load_event, load_fixture_index

    return [
        pytest.param(load_event(entry["file"].removesuffix(".json")), id=entry["file"].removesuffix(".json"))
        for entry in load_fixture_index()
        if entry["expect"] == "invalid"
    ]


# ------------------------------------------------------------------------------------------- stream batches, publish


def stream_batch(*images: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB stream batch as Lambda delivers it: the record of events/ddb_stream_decision_accepted.json, once per
    image (none given: the fixture as it is), each with that NEW_IMAGE, its keys, its own eventID and SequenceNumber."""
    from boto3.dynamodb.types import TypeSerializer

    from tests.conftest import load_event

    fixture = load_event("ddb_stream_decision_accepted")
    if not images:
        return fixture
    [template] = fixture["Records"]
    serialise = TypeSerializer().serialize
    records = []
    for index, image in enumerate(images):
        record = copy.deepcopy(template)
        new_image = {key: serialise(value) for key, value in image.items()}
        record["eventID"] = f"{template['eventID'][:-2]}{index:02d}"
        record["dynamodb"]["NewImage"] = new_image
        record["dynamodb"]["Keys"] = {key: new_image[key] for key in ("pk", "sk")}
        record["dynamodb"]["SequenceNumber"] = str(int(template["dynamodb"]["SequenceNumber"]) + index)
        records.append(record)
    return {"Records": records}
