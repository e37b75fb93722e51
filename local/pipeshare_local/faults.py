"""Transient faults at the local stack's endpoint: the fault plan (settings.faults) applied to the functions' calls.

A fault answers a call the way the service itself answers when it throttles or fails, in the service's protocol and
with its own error code, so botocore's retry handler and pipeshare's adapters see what they would see from AWS:

* ``Throttling``: the service's throttling error. The code is the one its model (botocore's copy) defines for it,
  else the common error AWS documents for every query / JSON API (``ThrottlingException``, HTTP 400); DynamoDB's item
  operations answer ``ProvisionedThroughputExceededException`` (400), SNS ``Throttled`` (its ThrottledException, 429),
  SQS ``RequestThrottled`` (400), RAM ``ThrottlingException`` (429).
* ``InternalError``: the service's internal error: the modelled one (DynamoDB / SSM ``InternalServerError``, SNS
  ``InternalError``, RAM ``ServerInternalException``, Price List ``InternalErrorException``, EventBridge
  ``InternalException``, Lambda ``ServiceException``), else the common ``InternalFailure`` (500).
* ``timeout``: the request IS applied, then the connection is closed without an answer: botocore sees a connection
  error and retries the same request, which is how a non-idempotent write gets applied twice.

Every injected fault is recorded (``FaultInjector.injected``) with its call site (function, service, operation).
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from xml.sax.saxutils import escape

from pipeshare_local import wire
from pipeshare_local.settings import EmulationSettings, Fault

__all__ = ["CallSite", "FaultInjector", "InjectedFault", "error_for"]

# DynamoDB operations on items answer ProvisionedThroughputExceededException when throttled; the other (control
# plane) operations ThrottlingException (DynamoDB API reference, "Common errors" and each operation's errors).
_DYNAMODB_ITEM_OPERATIONS = frozenset(
    {
        "BatchGetItem",
        "BatchWriteItem",
        "DeleteItem",
        "GetItem",
        "PutItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "TransactWriteItems",
        "UpdateItem",
    }
)
# modelled throttling shapes by preference; the first one a service's model defines is its answer
_THROTTLING_SHAPES = ("ThrottledException", "RequestThrottled", "ThrottlingException", "TooManyRequestsException")
_INTERNAL_SHAPES = (
    "InternalServerError",
    "InternalErrorException",
    "ServerInternalException",
    "InternalServerException",
    "InternalException",
    "InternalFailure",
    "ServiceException",
)


@dataclass(frozen=True)
class CallSite:
    """Where a call comes from and what it does: the signing function's logical ID, the service, the operation."""

    function: str | None
    service: str
    operation: str


@dataclass(frozen=True)
class InjectedFault:
    account: str
    site: CallSite
    kind: str
    fault: int  # index in the plan
    at: str  # scenario time


@dataclass(frozen=True)
class ErrorAnswer:
    code: str  # on the wire
    status: int
    sender: bool


@cache
def error_for(service: str, operation: str, kind: str) -> ErrorAnswer:
    """The error a service answers for a throttled (kind Throttling) or failed (InternalError) call."""
    model = wire.service_model(service)
    shapes = set(model.shape_names)
    if kind == "Throttling":
        if service == "dynamodb" and operation in _DYNAMODB_ITEM_OPERATIONS:
            return ErrorAnswer("ProvisionedThroughputExceededException", 400, True)
        candidates, fallback = (
            _THROTTLING_SHAPES,
            ErrorAnswer("Throttling" if model.metadata["protocol"] == "query" else "ThrottlingException", 400, True),
        )
    else:
        candidates, fallback = _INTERNAL_SHAPES, ErrorAnswer("InternalFailure", 500, False)
    name = next((c for c in candidates if c in shapes), None)
    if name is None:
        return fallback
    error = model.shape_for(name).metadata.get("error") or {}
    default_status = 400 if kind == "Throttling" else 500
    return ErrorAnswer(
        str(error.get("code", name)), int(error.get("httpStatusCode", default_status)), kind == "Throttling"
    )


def _model_name(service: str, environ: dict[str, Any]) -> str:
    """botocore's service name for a signing name (DynamoDB Streams signs as dynamodb)."""
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDBStreams_"):
        return "dynamodbstreams"
    return service


def error_response(service: str, operation: str, kind: str, environ: dict[str, Any]) -> wire.Response:
    """The service's answer for the fault, in its protocol (query XML, json, rest-json)."""
    name = _model_name(service, environ)
    model = wire.service_model(name)
    answer = error_for(name, operation, kind)
    message = "Rate exceeded" if kind == "Throttling" else "We encountered an internal error. Please try again."
    protocol = model.metadata["protocol"]
    if protocol == "query":
        namespace, side = model.metadata.get("xmlNamespace", ""), "Sender" if answer.sender else "Receiver"
        body = (
            f'<ErrorResponse xmlns="{escape(namespace)}"><Error><Type>{side}</Type>'
            f"<Code>{answer.code}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        return answer.status, [("Content-Type", "text/xml")], body.encode()
    status, headers, body = wire.error_response(model, wire.ServiceError(answer.code, message, answer.status))
    if model.metadata.get("awsQueryCompatible") is not None:  # SQS: the query-compatible code header
        headers.append(("x-amzn-query-error", f"{answer.code};{'Sender' if answer.sender else 'Receiver'}"))
    return status, headers, body


class LostResponseError(ConnectionAbortedError):
    """Raised after the connection of a timed-out request is closed: the server sends nothing."""


class FaultInjector:
    """Decides which function calls fail (settings.faults, read at every call) and answers them."""

    def __init__(self, settings: Callable[[], EmulationSettings], clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[int, str], int] = {}  # (index, fault json) -> matching calls so far
        self._random: dict[tuple[int, str], random.Random] = {}
        self.injected: list[InjectedFault] = []

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
            self._random.clear()
            self.injected.clear()

    def choose(self, account: str, site: CallSite) -> Fault | None:
        """The fault that applies to this call, if any (counts the call against every matching fault)."""
        plan = self._settings().faults
        if not plan:
            return None
        chosen: Fault | None = None
        with self._lock:
            for index, fault in enumerate(plan):
                if not _matches(fault, account, site):
                    continue
                key = (index, fault.model_dump_json())
                seen = self._seen[key] = self._seen.get(key, 0) + 1
                if fault.count is not None:
                    hit = seen <= fault.count
                else:
                    hit = self._random.setdefault(key, random.Random(fault.seed)).random() < (fault.rate or 0)  # noqa: S311 - reproducible test faults
                if hit and chosen is None:
                    chosen = fault
                    self.injected.append(
                        InjectedFault(account, site, fault.error, index, self._clock().strftime("%Y-%m-%dT%H:%M:%S"))
                    )
        return chosen

    def answer(
        self,
        fault: Fault,
        site: CallSite,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        apply: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]],
    ) -> Iterable[bytes]:
        """Answer a faulted call: the service's error, or (timeout) apply it and close the connection."""
        if fault.error != "timeout":
            response = error_response(site.service, site.operation, fault.error, environ)
            return wire.finish(start_response, response, str(uuid.uuid4()))
        answer = apply(environ, lambda *_args, **_kwargs: lambda _data: None)
        try:
            for _chunk in answer:
                pass
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        connection = environ.get("werkzeug.socket")
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        raise LostResponseError("fault plan: the answer is lost (timeout)")


def _matches(fault: Fault, account: str, site: CallSite) -> bool:
    return (
        fault.service == site.service
        and fault.operation == site.operation
        and (fault.account is None or fault.account == account)
        and (fault.function is None or fault.function == site.function)
    )
