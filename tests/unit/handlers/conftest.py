"""Each handler (functions/<name>/app.py) called directly: `lambda_handler(event, context)` with an events/ fixture, a
Lambda context stub, the environment its function has in template.yaml, and every `get_*` factory the handler module
imported replaced (monkeypatch on the module) by one returning an in-memory fake (tests/fakes.py).

A test module names its handler (`HANDLER = "<folder under functions/>"`, optionally `PARAMETERS`: template parameter
values) and calls the `invoke` fixture with the event and the fakes, by factory name:

    run = invoke(load_event("ram_invitation_pending"), get_ram_gateway=ram, get_share_repository=shares, ...)

Every port is wrapped so that each method call is recorded (`run.calls`: (factory, method)), then delegated to the
fake. `run.logs` holds the Powertools log lines and `run.metrics` the metrics of the EMF blobs the invocation printed
(`@metrics.log_metrics` flushes them to stdout). A factory the handler imported and the test did not give fails the
test: no real adapter (boto3 client) is ever built, and a new port cannot go unnoticed. No socket is opened.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

import pytest

from pipeshare import dependencies
from pipeshare.observability import logger
from pipeshare_local.template import Resolver, load_template
from tests.fakes import CONSUMER, OWNER, REGION
from tests.fuzz_strategies import FUNCTIONS

STACK = "pipeshare"


# ------------------------------------------------------------------------------------- environment from template.yaml


@cache
def _template() -> Any:
    """template.yaml, read once (its Fn::ForEach loops expanded for the defaults: slow enough to do only once)."""
    return load_template()


def _ref(logical_id: str, spec: Mapping[str, Any], account: str) -> str:
    """What `Ref` returns for a resource, as CloudFormation documents it: a topic's ARN, a queue's URL, else a name."""
    name = f"{STACK}-{logical_id}"
    kind = spec.get("Type", "")
    if kind == "AWS::SNS::Topic":
        return f"arn:aws:sns:{REGION}:{account}:{name}"
    if kind == "AWS::SQS::Queue":
        return f"https://sqs.{REGION}.amazonaws.com/{account}/{name}"
    return name


def _attribute(logical_id: str, attribute: str) -> str:
    return f"arn:aws:local:{REGION}:000000000000:{STACK}-{logical_id}/{attribute}"


@cache
def _environment(handler: str, parameters: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The function's environment (Globals and its own Variables) resolved as CloudFormation would, for the
    template's parameter defaults overridden by `parameters`."""
    template = _template()
    spec = template["Resources"][FUNCTIONS[handler]["logical_id"]]
    account = account_of(handler)
    resolver = Resolver(
        template,
        parameters=dict(parameters),
        pseudo={
            "AWS::AccountId": account,
            "AWS::Region": REGION,
            "AWS::StackName": STACK,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
        refs={name: _ref(name, resource, account) for name, resource in template["Resources"].items()},
        attrs=_attribute,
    )
    variables = {
        **resolver.resolve(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})),
        **resolver.resolve(spec["Properties"].get("Environment", {}).get("Variables", {})),
    }
    return {key: str(value) for key, value in variables.items()}


@cache
def _every_function_variable() -> frozenset[str]:
    """Every variable any function of the template sets (cleared before a handler runs, so none leaks in)."""
    names: set[str] = set()
    for spec in _template()["Resources"].values():
        if spec["Type"] == "AWS::Serverless::Function":
            names |= set(spec["Properties"].get("Environment", {}).get("Variables", {}))
    return frozenset(names)


def account_of(handler: str) -> str:
    """The account the function runs in: the owner's for an IsOwner function, else the consumer's."""
    spec = _template()["Resources"][FUNCTIONS[handler]["logical_id"]]
    return OWNER if spec.get("Condition") == "IsOwner" else CONSUMER


# -------------------------------------------------------------------------------------------------- recording ports


class Recorded:
    """A port whose every method call is recorded as (factory, method), then delegated to the fake."""

    def __init__(self, factory: str, fake: Any, calls: list[tuple[str, str]]) -> None:
        self._factory, self._fake, self._calls = factory, fake, calls

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._fake, attribute)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((self._factory, attribute))
            return value(*args, **kwargs)

        return call


@dataclass
class Run:
    """One invocation: what the handler returned, its log lines, its metrics (summed over the EMF blobs), the port
    calls it made, and the factories it called (with their arguments)."""

    result: Any = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: Counter[str] = field(default_factory=Counter)
    calls: list[tuple[str, str]] = field(default_factory=list)
    built: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [line for line in self.logs if line.get("level") == "ERROR"]

    def calls_to(self, factory: str) -> list[str]:
        return [method for name, method in self.calls if name == factory]


@contextlib.contextmanager
def _captured() -> Iterator[io.StringIO]:
    """Powertools log lines and EMF blobs (both on stdout) of one invocation: the logger's handler keeps the stream it
    was built with, so it is pointed at the buffer too."""
    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def _parse(text: str, run: Run) -> None:
    for line in text.split("\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if "_aws" not in entry:
            run.logs.append(entry)
            continue
        for directive in entry["_aws"].get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                values = entry.get(metric["Name"], [])
                run.metrics[metric["Name"]] += sum(values) if isinstance(values, list) else values


def factories_of(module: ModuleType) -> set[str]:
    """The `get_*` factories a handler module imported from pipeshare.dependencies."""
    return {name for name in vars(module) if name.startswith("get_") and hasattr(dependencies, name)}


class Invoker:
    """Calls one handler's lambda_handler with its template environment and the given fakes."""

    def __init__(self, handler: str, parameters: Mapping[str, str], context: Any, patch: pytest.MonkeyPatch) -> None:
        self.handler = handler
        self.module = importlib.import_module(f"functions.{handler}.app")
        self.context = context
        self.environment = _environment(handler, tuple(sorted(parameters.items())))
        self._patch = patch

    def __call__(self, event: Any, **fakes: Any) -> Run:
        missing = factories_of(self.module) - set(fakes)
        assert not missing, f"{self.handler} imports {sorted(missing)}: give a fake for each"
        unknown = set(fakes) - factories_of(self.module)
        assert not unknown, f"{self.handler} does not import {sorted(unknown)}"
        run = Run()
        for name, fake in fakes.items():
            self._patch.setattr(self.module, name, self._factory(name, fake, run))
        with _captured() as out:
            run.result = self.module.lambda_handler(event, self.context)
        _parse(out.getvalue(), run)
        return run

    @staticmethod
    def _factory(name: str, fake: Any, run: Run) -> Callable[..., Any]:
        def build(*args: Any, **kwargs: Any) -> Any:
            run.built.append((name, (*args, *kwargs.values())))
            return fake.value if isinstance(fake, PlainValue) else Recorded(name, fake, run.calls)

        return build


@dataclass(frozen=True)
class PlainValue:
    """A factory's result that is a value, not a port (get_prices' price table): returned as it is."""

    value: Any


@pytest.fixture
def invoke(request: pytest.FixtureRequest, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoker]:
    """`invoke(event, **fakes) -> Run` for the test module's HANDLER, in the environment template.yaml gives its
    function (PARAMETERS: template parameter values), in its account (the owner's or the consumer's)."""
    handler: str = request.module.HANDLER
    parameters: Mapping[str, str] = getattr(request.module, "PARAMETERS", {})
    account = account_of(handler)
    lambda_context.function_name = f"{STACK}-{FUNCTIONS[handler]['logical_id']}"
    lambda_context.invoked_function_arn = f"arn:aws:lambda:{REGION}:{account}:function:{lambda_context.function_name}"
    invoker = Invoker(handler, parameters, lambda_context, monkeypatch)
    for name in _every_function_variable():
        monkeypatch.delenv(name, raising=False)
    for name, value in invoker.environment.items():
        monkeypatch.setenv(name, value)
    dependencies.reset()  # settings are read (and cached) per environment
    yield invoker
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


class Marks:
    """The publish marks of a function's table as PublishOnce (adapters/publish_once.py) reads and writes them:
    DynamoDB's GetItem and conditional PutItem, in memory. With it the real PublishOnce runs around a FakeNotifier."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], dict[str, Any]] = {}

    def get_item(self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False) -> dict[str, Any]:
        found = self.items.get((TableName, Key["pk"]["S"], Key["sk"]["S"]))
        return {"Item": copy.deepcopy(found)} if found is not None else {}

    def put_item(self, *, TableName: str, Item: dict[str, Any], ConditionExpression: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        key = (TableName, Item["pk"]["S"], Item["sk"]["S"])
        if key in self.items:
            raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "PutItem")
        self.items[key] = copy.deepcopy(Item)
        return {}
