"""A local Lambda runtime: runs a template function's handler in-process, in one account's identity.

What it emulates from Lambda: the function's environment (from the template), a context object, asynchronous retries
(EventInvokeConfig MaximumRetryAttempts) and the OnFailure destination (a real SQS send), and stream batches with
ReportBatchItemFailures. It captures each invocation's log lines and EMF metrics.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeshare_local.template import ROOT

LAYER_PATHS = [ROOT / "layers" / "common"]
_modules: dict[Path, ModuleType] = {}


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    timeout_ms: int = 120_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


@dataclass
class Invocation:
    function: str
    account: str
    trigger: str
    event_id: str | None
    attempt: int
    at: str
    result: Any = None
    error: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    # what the invocation changed: its successful calls other than reads, "service:Operation" -> count (DynamoDB
    # writes: items written); filled when the function has a change watcher (the local stack's)
    changes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "account": self.account,
            "trigger": self.trigger,
            "event_id": self.event_id,
            "attempt": self.attempt,
            "at": self.at,
            "result": self.result,
            "error": self.error,
            "metrics": self.metrics,
            "changes": self.changes,
        }


def load_handler(code_uri: str, handler: str) -> Callable[..., Any]:
    """Import functions/<x>/app.py as Lambda would (module `app`, layer on sys.path), once per process."""
    module_name, func_name = handler.rsplit(".", 1)
    path = (ROOT / code_uri / f"{module_name}.py").resolve()
    for layer in LAYER_PATHS:
        if str(layer) not in sys.path:
            sys.path.insert(0, str(layer))
    if path not in _modules:
        spec = importlib.util.spec_from_file_location(f"pipeshare_fn_{path.parent.name}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load handler {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[path] = module
    return getattr(_modules[path], func_name)  # type: ignore[no-any-return]


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: v for k, v in saved.items() if not k.startswith(("AWS_", "POWERTOOLS_"))})
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def capture_output() -> Iterator[io.StringIO]:
    """Capture Powertools log lines and EMF blobs (both go to stdout) for one invocation: the logger's handler keeps
    the stream it was built with, so it is pointed at the buffer too."""
    from pipeshare.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def read_output(text: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """An invocation's captured output: its log lines, and its metrics summed over the EMF blobs."""
    logs: list[dict[str, Any]] = []
    metrics: dict[str, float] = {}
    for line in text.split("\n"):  # not splitlines(): a log line may hold U+0085 or U+2028
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if "_aws" not in entry:
            logs.append(entry)
            continue
        for directive in entry["_aws"].get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                name = metric["Name"]
                values = entry.get(name, [])
                total = sum(values) if isinstance(values, list) else float(values)
                metrics[name] = metrics.get(name, 0.0) + total
    return logs, metrics


def _parse_output(text: str, invocation: Invocation) -> None:
    logs, metrics = read_output(text)
    invocation.logs.extend(logs)
    for name, total in metrics.items():
        invocation.metrics[name] = invocation.metrics.get(name, 0.0) + total


class LocalFunction:
    """One AWS::Serverless::Function of one local deployment."""

    def __init__(
        self,
        *,
        logical_id: str,
        name: str,
        account: str,
        region: str,
        code_uri: str,
        handler: str,
        environment: dict[str, str],
        identity: Callable[[], dict[str, str]],
        max_retries: int,
        on_failure: Callable[[dict[str, Any]], None] | None,
        before_invoke: Callable[[LocalFunction], None],
        watch_changes: Callable[[LocalFunction], Callable[[], dict[str, int]]] | None = None,
    ) -> None:
        self.logical_id = logical_id
        self.name = name
        self.account = account
        self.region = region
        self.code_uri = code_uri
        self.handler = handler
        self.environment = environment
        self._identity = identity
        self.max_retries = max_retries
        self._on_failure = on_failure
        self._before_invoke = before_invoke
        self._watch_changes = watch_changes
        self.invocations: list[Invocation] = []

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"

    def _env(self) -> dict[str, str]:
        return {
            **self.environment,
            **self._identity(),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
            "POWERTOOLS_DEV": "false",
        }

    def invoke_once(self, event: dict[str, Any], *, trigger: str, attempt: int = 1) -> Invocation:
        invocation = Invocation(
            function=self.logical_id,
            account=self.account,
            trigger=trigger,
            event_id=event.get("id") if isinstance(event, dict) else None,
            attempt=attempt,
            at=datetime.now(UTC).isoformat(),
        )
        context = LambdaContext(function_name=self.name, invoked_function_arn=self.arn)
        with _environment(self._env()):
            handler = load_handler(self.code_uri, self.handler)
            self._before_invoke(self)
            changes = self._watch_changes(self) if self._watch_changes is not None else None
            with capture_output() as out:
                try:
                    invocation.result = handler(event, context)
                except Exception as exc:
                    invocation.error = f"{type(exc).__name__}: {exc}"
                    invocation.logs.append({"level": "ERROR", "traceback": traceback.format_exc(limit=5)})
            _parse_output(out.getvalue(), invocation)
            if changes is not None:
                invocation.changes = changes()
        self.invocations.append(invocation)
        return invocation

    def invoke_async(self, event: dict[str, Any], *, trigger: str) -> list[Invocation]:
        """Asynchronous invoke: retried MaximumRetryAttempts times, then sent to the OnFailure destination."""
        attempts: list[Invocation] = []
        for attempt in range(1, self.max_retries + 2):
            invocation = self.invoke_once(event, trigger=trigger, attempt=attempt)
            attempts.append(invocation)
            if invocation.error is None:
                return attempts
        if self._on_failure is not None:
            self._on_failure(
                {
                    "version": "1.0",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "requestContext": {
                        "requestId": str(uuid.uuid4()),
                        "functionArn": f"{self.arn}:$LATEST",
                        "condition": "RetriesExhausted",
                        "approximateInvokeCount": len(attempts),
                    },
                    "requestPayload": event,
                    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                    "responsePayload": {"errorMessage": attempts[-1].error},
                }
            )
        return attempts
