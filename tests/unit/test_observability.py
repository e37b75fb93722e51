"""What a function loads at cold start: the X-Ray SDK only when TraceAwsCalls asks for it (the tracing seam,
pipeshare.observability); no model module of another function; none of Powertools' parser models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeshare.observability import TRACE_AWS_CALLS_VARIABLE, SegmentOnlyTracer, make_tracer, trace_aws_calls

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))

# imports a function's app module as Lambda does (its code directory first on sys.path, the layer on PYTHONPATH) and
# tells which tracer it got and whether any module of the X-Ray SDK was loaded
_PROBE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
importlib.import_module(sys.argv[2])
from pipeshare.observability import tracer
print(json.dumps({
    "tracer": f"{type(tracer).__module__}.{type(tracer).__qualname__}",
    "xray": sorted(m for m in sys.modules if m == "aws_xray_sdk" or m.startswith("aws_xray_sdk.")),
    "parser_models": sorted(m for m in sys.modules if m.startswith("aws_lambda_powertools.utilities.parser.models.")),
    "models": sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("pipeshare.models.")),
    "settings": sorted(m for m in sys.modules if m.startswith("pipeshare.config.")),
}))
"""


def _probe(code_dir: Path, module: str, trace: str | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != TRACE_AWS_CALLS_VARIABLE}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)])
    env["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon here: the SDK is loaded, nothing is sent
    if trace is not None:
        env[TRACE_AWS_CALLS_VARIABLE] = trace
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", _PROBE, str(code_dir), module],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("function", "trace"), [*((function, "false") for function in FUNCTIONS), ("accept_invitations", None)]
)
def test_a_function_imports_no_xray_sdk_unless_aws_calls_are_traced(function: str, trace: str | None) -> None:
    # Given a function's app module, imported in a fresh process with TraceAwsCalls "false" (the default) or unset
    # When it is imported as Lambda imports it
    outcome = _probe(ROOT / "functions" / function, "app", trace)

    # Then no module of the X-Ray SDK is loaded, and the handler's tracer is the SDK-free one
    assert outcome["xray"] == []
    assert outcome["tracer"] == "pipeshare.observability.SegmentOnlyTracer"


# model modules (pipeshare/models/) a function has no use for: building their classes would only slow its cold start
_OWNER_ONLY = {"owner_events", "executions", "budgets", "budget_events", "estimates", "owner", "settle"}
_CONSUMER_ONLY = {"domain"}
NOT_LOADED = {
    "accept_invitations": _OWNER_ONLY | {"outbox", "messages"},
    "audit_shares": _OWNER_ONLY | {"outbox", "messages"},
    "notify_decisions": _OWNER_ONLY | {"events", "messages", "outcomes"},
    "notify_owner": _CONSUMER_ONLY
    | {"events", "owner_events", "executions", "messages", "outcomes", "budgets", "notice_events"},
    "relay_notices": _OWNER_ONLY | {"outbox", "messages", "budget_messages", "consumer_outcomes", "owner_outcomes"},
    "owner_inventory": _CONSUMER_ONLY | {"outbox", "owner_events", "executions", "messages", "budgets", "estimates"},
    "track_executions": _CONSUMER_ONLY | {"outbox", "budgets", "budget_messages", "finish_messages", "estimates"},
    "settle_attribution": _CONSUMER_ONLY | {"outbox", "events", "owner_events", "budgets", "finish_messages"},
    "estimate_cost": _CONSUMER_ONLY | {"outbox", "alert_messages", "budget_events", "budget_messages", "settle"},
    "watch_budgets": _CONSUMER_ONLY
    | {"outbox", "owner_events", "executions", "owner", "alert_messages", "estimates", "notice_events"},
}


def test_every_function_has_its_list_of_model_modules_it_does_not_load() -> None:
    # Given the functions of the template and the model modules of the layer
    modules = {path.stem for path in (ROOT / "layers" / "common" / "pipeshare" / "models").glob("*.py")}

    # Then every function is listed, and every listed module exists
    assert set(NOT_LOADED) == set(FUNCTIONS)
    assert set().union(*NOT_LOADED.values()) <= modules


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_builds_only_the_models_it_uses(function: str) -> None:
    # Given a function's app module, imported in a fresh process as Lambda imports it
    outcome = _probe(ROOT / "functions" / function, "app", "false")

    # Then no other function's model module is loaded (their classes would be built at import, at every cold start)
    assert set(outcome["models"]) & NOT_LOADED[function] == set()
    # and the settings models of its own side only (pipeshare/config/consumer.py or owner.py)
    assert len(outcome["settings"]) == 1
    # and none of Powertools' parser models is: the event models derive from pipeshare's envelope (models/base.py), and
    # the batch utility, imported before pydantic, does not load its SQS, DynamoDB, Kinesis and Kafka record models
    # (pipeshare/streams.py)
    assert outcome["parser_models"] == []


def test_with_aws_calls_traced_the_powertools_tracer_is_used() -> None:
    # Given TraceAwsCalls "true"
    # When a function's app module is imported in a fresh process
    outcome = _probe(ROOT / "functions" / "accept_invitations", "app", "true")

    # Then its tracer is Powertools' Tracer, with the X-Ray SDK loaded
    assert outcome["tracer"] == "aws_lambda_powertools.tracing.tracer.Tracer"
    assert "aws_xray_sdk" in outcome["xray"]


def test_the_segment_only_tracer_hands_back_the_decorated_function() -> None:
    # Given the SDK-free tracer and a handler
    tracer = SegmentOnlyTracer()

    def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
        return {"seen": event}

    # When it is decorated as the handlers decorate theirs, with and without arguments
    decorated = [
        tracer.capture_lambda_handler(capture_response=False)(handler),
        tracer.capture_lambda_handler(handler),
        tracer.capture_method(capture_response=False, capture_error=False)(handler),
        tracer.capture_method(handler),
    ]

    # Then each decorator gives back the handler itself: nothing is added to an invocation
    assert all(function is handler for function in decorated)
    assert decorated[0]({"a": 1}, None) == {"seen": {"a": 1}}


@pytest.mark.parametrize(
    ("environ", "traced"),
    [({}, False), ({TRACE_AWS_CALLS_VARIABLE: "false"}, False), ({TRACE_AWS_CALLS_VARIABLE: "true"}, True)],
)
def test_the_variable_decides(environ: dict[str, str], traced: bool) -> None:
    assert trace_aws_calls(environ) is traced


def test_make_tracer_without_the_variable_loads_no_sdk() -> None:
    assert isinstance(make_tracer({}), SegmentOnlyTracer)


def test_the_template_passes_trace_aws_calls_to_every_function() -> None:
    # Given the template (read with the local stack's loader, which understands the short-form intrinsics)
    from pipeshare_local.template import load_template

    template = load_template(ROOT / "template.yaml")

    # Then TraceAwsCalls is off by default, true/false only, and reaches every function through Globals
    parameter = template["Parameters"]["TraceAwsCalls"]
    assert parameter["Default"] == "false"
    assert sorted(parameter["AllowedValues"]) == ["false", "true"]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables[TRACE_AWS_CALLS_VARIABLE] == {"Ref": "TraceAwsCalls"}
    assert template["Globals"]["Function"]["Tracing"] == "Active"  # segments are still drawn without the SDK
    functions = [
        spec
        for spec in template["Resources"].values()
        if isinstance(spec, dict) and spec.get("Type") == "AWS::Serverless::Function"
    ]
    overriding = [spec for spec in functions if TRACE_AWS_CALLS_VARIABLE in _variables(spec)]
    assert functions
    assert overriding == []


def _variables(spec: dict[str, Any]) -> dict[str, Any]:
    return spec.get("Properties", {}).get("Environment", {}).get("Variables", {})  # type: ignore[no-any-return]
