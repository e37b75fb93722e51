"""Powertools singletons shared by every handler, and the tracing seam.

`logger` and `metrics` are Powertools' Logger and Metrics. `tracer` is whatever `make_tracer()` returns: an object with
the two decorators the handlers use (`capture_lambda_handler`, `capture_method`, the `HandlerTracer` protocol below).

Lambda's active tracing (`Tracing: Active` in template.yaml Globals) draws each function's segments without any SDK
in the function. The AWS X-Ray SDK, which Powertools' Tracer wraps, is needed only for subsegments of the function's
own AWS calls; it is in maintenance mode (end of support 2027-02-25), costs ~300 ms of cold init and opens a UDP
socket when it is loaded. So it is loaded only when the template parameter TraceAwsCalls is "true" (the environment
variable PIPESHARE_TRACE_AWS_CALLS, set in Globals); otherwise the tracer's decorators return the function unchanged
and nothing of `aws_xray_sdk` is imported.

To trace with another provider (OpenTelemetry, for one), give `make_tracer()` a branch returning an object that meets
`HandlerTracer`; the handlers do not change.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast, overload

from aws_lambda_powertools import Logger, Metrics

TRACE_AWS_CALLS_VARIABLE = "PIPESHARE_TRACE_AWS_CALLS"

F = TypeVar("F", bound=Callable[..., Any])


class HandlerTracer(Protocol):
    """The part of Powertools' Tracer the handlers use (same names and keyword arguments): each decorator, with or
    without its keyword arguments, gives back a callable of the decorated function's type."""

    @overload
    def capture_lambda_handler(
        self, lambda_handler: F, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> F: ...

    @overload
    def capture_lambda_handler(
        self, lambda_handler: None = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[F], F]: ...

    @overload
    def capture_method(
        self, method: F, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> F: ...

    @overload
    def capture_method(
        self, method: None = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[F], F]: ...


class SegmentOnlyTracer:
    """No SDK: the decorators hand back the decorated function itself (Lambda's active tracing draws the segments)."""

    @overload
    def capture_lambda_handler(
        self, lambda_handler: F, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> F: ...

    @overload
    def capture_lambda_handler(
        self, lambda_handler: None = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[F], F]: ...

    def capture_lambda_handler(
        self, lambda_handler: Any = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Any:
        return lambda_handler if lambda_handler is not None else _unchanged

    @overload
    def capture_method(
        self, method: F, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> F: ...

    @overload
    def capture_method(
        self, method: None = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[F], F]: ...

    def capture_method(
        self, method: Any = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Any:
        return method if method is not None else _unchanged


def _unchanged(function: F) -> F:
    return function


def trace_aws_calls(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether the deployment asked for subsegments of the functions' AWS calls (TraceAwsCalls)."""
    return environ.get(TRACE_AWS_CALLS_VARIABLE, "false").strip().lower() == "true"


def make_tracer(environ: dict[str, str] | os._Environ[str] = os.environ) -> HandlerTracer:
    """The tracer of this process: Powertools' Tracer (and so the X-Ray SDK) only when TraceAwsCalls is on."""
    if trace_aws_calls(environ):
        from aws_lambda_powertools import Tracer  # loads aws_xray_sdk when constructed

        # Powertools types its handler decorator loosely (Callable[..., Any]); it wraps the handler with the same
        # call signature (functools.wraps), which is what HandlerTracer states
        return cast(HandlerTracer, Tracer())
    return SegmentOnlyTracer()


logger = Logger()
metrics = Metrics()
tracer: HandlerTracer = make_tracer()
