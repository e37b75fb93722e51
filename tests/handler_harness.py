"""Calling a handler (functions/<name>/app.py) in-process, as Lambda would, with in-memory ports: shared by the
handler tests (tests/unit/handlers/conftest.py) and the handler fuzz (tests/unit/test_fuzz_handlers.py).

- `environment(handler, parameters)`: the function's environment as template.yaml gives it (Globals and its own
  Variables, resolved as CloudFormation would for the parameter defaults overridden by `parameters`): the one source
  of truth, never a hand-written copy. `prepare(...)` puts it in place (every other function variable cleared) and
  points the Lambda context at the function, in its account (the owner's for an IsOwner function).
- `call(...)`: every `get_*` factory the handler module imported replaced by one returning the given fake wrapped in
  `Recorded` (each method call recorded as (factory, method) in `Run.calls`), the Powertools log lines and EMF
  metrics it printed captured (`Run.logs`, `Run.metrics`). A factory the handler imported and the caller did not give
  fails: no real adapter (boto3 client) is ever built.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

import pytest

from pipeshare import dependencies
from pipeshare_local.runtime import capture_output, read_output
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


def environment(handler: str, parameters: Mapping[str, str] | None = None) -> dict[str, str]:
    """The function's environment (Globals and its own Variables) resolved as CloudFormation would, for the
    template's parameter defaults overridden by `parameters` (template parameter name -> value)."""
    return dict(_environment(handler, tuple(sorted((parameters or {}).items()))))


@cache
def every_function_variable() -> frozenset[str]:
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


def prepare(
    handler: str, parameters: Mapping[str, str] | None, context: Any, patch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Put the function's template environment in place (every other function variable cleared, the cached settings
    dropped) and point `context` at the function in its account. Returns the environment."""
    variables = environment(handler, parameters)
    for name in every_function_variable():
        patch.delenv(name, raising=False)
    for name, value in variables.items():
        patch.setenv(name, value)
    dependencies.reset()  # settings are read (and cached) per environment
    context.function_name = f"{STACK}-{FUNCTIONS[handler]['logical_id']}"
    context.invoked_function_arn = f"arn:aws:lambda:{REGION}:{account_of(handler)}:function:{context.function_name}"
    return variables


# -------------------------------------------------------------------------------------------------- recording ports


class Recorded:
    """A port whose every method call is recorded as (name, method), then delegated to the fake."""

    def __init__(self, name: str, fake: Any, calls: list[tuple[str, str]]) -> None:
        self._name, self._fake, self._calls = name, fake, calls

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._fake, attribute)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((self._name, attribute))
            return value(*args, **kwargs)

        return call


@dataclass(frozen=True)
class PlainValue:
    """A factory's result that is a value, not a port (get_prices' price table): returned as it is."""

    value: Any


@dataclass
class Run:
    """One invocation: what the handler returned (or raised, when the caller catches it), its log lines, its metrics
    (summed over the EMF blobs), the port calls it made, and the factories it called (with their arguments)."""

    result: Any = None
    error: BaseException | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: Counter[str] = field(default_factory=Counter)
    calls: list[tuple[str, str]] = field(default_factory=list)
    built: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [line for line in self.logs if line.get("level") == "ERROR"]

    def calls_to(self, factory: str) -> list[str]:
        return [method for name, method in self.calls if name == factory]


captured = capture_output  # the local runtime's: one way to read an invocation's output


def parse(text: str, run: Run) -> None:
    """The log lines and the EMF metrics of an invocation's output into `run`."""
    logs, metrics = read_output(text)
    run.logs.extend(logs)
    run.metrics.update(metrics)


def factories_of(module: ModuleType) -> set[str]:
    """The `get_*` factories a handler module imported from pipeshare.dependencies."""
    return {name for name in vars(module) if name.startswith("get_") and hasattr(dependencies, name)}


def _factory(name: str, fake: Any, run: Run) -> Callable[..., Any]:
    def build(*args: Any, **kwargs: Any) -> Any:
        run.built.append((name, (*args, *kwargs.values())))
        return fake.value if isinstance(fake, PlainValue) else Recorded(name, fake, run.calls)

    return build


def call(
    module: ModuleType,
    event: Any,
    context: Any,
    fakes: Mapping[str, Any],
    patch: pytest.MonkeyPatch,
    *,
    run: Run | None = None,
    catch: bool = False,
) -> Run:
    """`module.lambda_handler(event, context)` with each factory of `fakes` (by name) returning its fake, recorded.
    Every factory the module imported must be given, and only those. `catch`: keep what it raises in `Run.error`."""
    missing = factories_of(module) - set(fakes)
    assert not missing, f"{module.__name__} imports {sorted(missing)}: give a fake for each"
    unknown = set(fakes) - factories_of(module)
    assert not unknown, f"{module.__name__} does not import {sorted(unknown)}"
    run = run if run is not None else Run()
    for name, fake in fakes.items():
        patch.setattr(module, name, _factory(name, fake, run))
    with captured() as out:
        try:
            run.result = module.lambda_handler(event, context)
        except Exception as exc:
            if not catch:
                raise
            run.error = exc
    parse(out.getvalue(), run)
    return run


# ------------------------------------------------------------------------------------------------ publish marks


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
