"""The embedded local stack: moto (server mode, several accounts) + the emulations, one loopback endpoint; it runs
what the deployer (pipeshare_local.deployer) created from template.yaml.

At the endpoint (`_app`): each call is counted, authorized against the signing function's role (pipeshare_local.iam),
faulted by the fault plan (pipeshare_local.faults), then dispatched to the RAM, SageMaker or Pricing emulation, to
SSM (with its change events), DynamoDB (serialized; TransactWriteItems' client token), Lambda Invoke or moto.
Running a deployment: events are delivered in due-time order to the rules' patterns (moto's own EventBridge matcher;
moto cannot invoke Lambda targets) and dispatched to the functions (pipeshare_local.runtime) or forwarded to another
account's bus under its policy; schedules fire on the scenario clock; SQS and DynamoDB-stream event source mappings
are polled; on-failure destinations and dead-letter queues are fed; functions sign with their own role's credentials
(moto STS) in one container per function; state is read back through the APIs (tables, tap queues of topics).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import io
import itertools
import json
import logging
import os
import re
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import boto3
import botocore.exceptions
import botocore.session
import time_machine
from aws_lambda_powertools.utilities.parameters import constants as parameter_constants
from botocore.config import Config
from moto.iam.models import get_account_id_from
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler

from pipeshare_local import moto_fixes, ssm_events
from pipeshare_local.deployer import (  # noqa: F401 - Rule, schedule_period: importable from here as before
    Deployer,
    Deployment,
    QueueMapping,
    Rule,
    StreamMapping,
    schedule_period,
)
from pipeshare_local.faults import CallSite, FaultInjector
from pipeshare_local.iam import (
    LocalIam,
    Need,
    Principal,
    StackLookups,
    Target,
    denial_response,
    read_request,
)
from pipeshare_local.pricing import PricingEmulator
from pipeshare_local.ram import RamEmulator
from pipeshare_local.runtime import Invocation, LocalFunction
from pipeshare_local.sagemaker import API_CALL_VIA_CLOUDTRAIL, SageMakerPipelineEmulator, moto_pipeline_exists
from pipeshare_local.settings import EmulationSettings
from pipeshare_local.template import load_template
from pipeshare_local.wire import CREDENTIAL_RE, ServiceError, error_response, fingerprint, finish, serve, service_model

DEFAULT_START = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
_CREDENTIALS_ROLE = "pipeshare-local"
_DYNAMODB_TARGETS = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")  # X-Amz-Target of DynamoDB and its streams
_LAMBDA_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
# operations that change nothing (every other successful call of a function is a change: pipeshare_local.scenario
# lists the invocations that made one); KMS data-key calls and STS change nothing the scenario reports either
_READ_PREFIXES = (
    "Get",
    "List",
    "Describe",
    "Query",
    "Scan",
    "BatchGet",
    "TransactGet",
    "Receive",
    "Search",
    "Select",
    "Lookup",
    "Head",
    "Check",
    "Estimate",
    "Simulate",
    "Validate",
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "Assume",
)
_TOKEN_WINDOW = timedelta(minutes=10)  # DynamoDB: a TransactWriteItems client token is valid for 10 minutes


class Clock:
    """Scenario time: real time flows, and can jump forward (time-machine patches the whole process). With
    `ticks=False` it stands still between jumps: two runs of one scenario then see the same instants (the fault
    suite compares a faulted run's final state, durations and costs included, with the fault-free run's)."""

    def __init__(self, start: datetime, *, ticks: bool = True) -> None:
        self._traveller = time_machine.travel(start, tick=ticks)
        self._coordinates: Any = None

    def start(self) -> None:
        self._coordinates = self._traveller.start()

    def stop(self) -> None:
        self._traveller.stop()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def advance(self, delta: timedelta) -> None:
        self._coordinates.shift(delta)


class _ScenarioSleep:
    """botocore.endpoint's `time` while a stack runs: a retry's backoff passes on the scenario clock (the time a
    function waits between attempts is spent, without waiting for it in real time), or passes no time at all when the
    stack's `retry_backoff_passes_time` is off (a comparison of a faulted run with a fault-free one at the same
    instants: tests/integration/test_faults.py)."""

    def __init__(self, clock: Clock, real: Any, passes_time: Callable[[], bool]) -> None:
        self._clock = clock
        self._real = real
        self._passes_time = passes_time

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self._passes_time():
            self._clock.advance(timedelta(seconds=seconds))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@dataclass
class DeliveredEvent:
    account: str
    event: dict[str, Any]
    dropped: bool
    matched: list[str]
    bus: str = "default"
    refused: str | None = None  # why a forwarding target refused it
    at: datetime | None = None  # scenario time of delivery


class LocalStack:
    """Start with `with LocalStack() as stack:`; deploy accounts; play events; read state back through the APIs."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        start: datetime = DEFAULT_START,
        settings: EmulationSettings | None = None,
        invitation_ttl: timedelta | None = None,
        template: dict[str, Any] | None = None,
        clock_ticks: bool = True,
    ) -> None:
        """settings: the emulation settings (pipeshare_local.settings; copied, then shared with the emulators and
        read at every use: change them through stack.settings; reset() restores these). invitation_ttl, when given,
        replaces settings.ram.invitation_ttl_hours."""
        self.region = region
        self.clock = Clock(start, ticks=clock_ticks)
        self.template = template if template is not None else load_template()  # template: a (test's) override
        self.deployments: dict[str, Deployment] = {}
        self._credentials: dict[tuple[str, str], dict[str, str]] = {}
        self.settings = settings.model_copy(deep=True) if settings is not None else EmulationSettings()
        if invitation_ttl is not None:
            self.settings.ram.invitation_ttl_hours = invitation_ttl.total_seconds() / 3600
        # pending events, a heap: (due, sequence, receiving account, bus, event); delivered in due-time order, and
        # in the order they were emitted for equal due times
        self._pending: list[tuple[datetime, int, str, str, dict[str, Any]]] = []
        self._sequence = itertools.count()
        self.bus_admits: dict[tuple[str, str], set[str]] = {}  # (account, bus) -> accounts its policy admits
        self.bus_statements: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (account, bus) -> policy statements
        self._trails: dict[str, bool] = {}  # account -> whether its CloudTrail trail logs (mirrors the settings)
        self._drop_next: int = 0
        self.delivered: list[DeliveredEvent] = []
        self.untrailed: list[dict[str, Any]] = []  # CloudTrail records not sent: their account has no trail
        self.notifications: list[dict[str, Any]] = []
        # (account, service, operation, caller, access key) for every call at the endpoint; caller is "functions" or
        # "tooling"; the access key tells which function signed it
        self.aws_calls: list[tuple[str, str, str, str, str]] = []
        # per call of aws_calls (by index): the HTTP status answered, and the items a DynamoDB write names
        self._call_status: dict[int, int] = {}
        self._call_items: dict[int, int] = {}
        self._key_purpose: dict[str, str] = {}
        self._lock = threading.Lock()
        self.ram = RamEmulator(
            account_for_access_key=get_account_id_from,
            clock=self.clock.now,
            emit=self._service_event,
            settings=self.settings,
            resource_exists=self._resource_exists,
        )
        self.sagemaker = SageMakerPipelineEmulator(
            account_for_access_key=get_account_id_from,
            clock=self.clock.now,
            emit=self._service_event,
            settings=self.settings,
            ram=self.ram,
            pipeline_exists=moto_pipeline_exists,
        )
        self.pricing = PricingEmulator(  # pricing:GetProducts, from pipeshare_local/data/pricing-products.json
            account_for_access_key=get_account_id_from,
            clock=self.clock.now,
            emit=self._service_event,
            settings=self.settings,
        )
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._dynamodb_lock = threading.Lock()
        self._shutdown: Callable[[], None] | None = None
        self.endpoint = ""
        self._active_identity: tuple[str, str] | None = None
        self._sessions: dict[str, boto3.Session] = {}
        self._warm: dict[tuple[str, str], dict[str, Any]] = {}
        self._tool_session = boto3.Session()
        self._clients: dict[tuple[str, str], Any] = {}
        # the fault plan (settings.faults) at the endpoint; faults.injected records every fault injected
        self.faults = FaultInjector(lambda: self.settings, self.clock.now)
        self._invoke_queue: list[tuple[LocalFunction, dict[str, Any]]] = []  # Lambda Invoke (Event), run at deliver
        self._transaction_tokens: dict[tuple[str, str, str], tuple[datetime, str, list[bytes], Any]] = {}
        self._botocore_time: Any = None
        self.retry_backoff_passes_time = True  # botocore's retry backoff advances the scenario clock
        self.deployer = Deployer(self)  # template.yaml -> an account's resources (pipeshare_local.deployer)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto_fixes.apply()
        self.clock.start()
        WSGIRequestHandler.protocol_version = "HTTP/1.1"  # keep-alive, as AWS endpoints do
        self.endpoint, self._shutdown = serve(self._app)
        import botocore.endpoint

        self._botocore_time = botocore.endpoint.time
        botocore.endpoint.time = _ScenarioSleep(  # type: ignore[assignment]
            self.clock, self._botocore_time, lambda: self.retry_backoff_passes_time
        )
        # moto's backends are process-wide: a new stack starts from nothing (one stack in use at a time)
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).read()  # noqa: S310
        self.client("111111111111", "sts").get_caller_identity()  # warm moto's lazy backends

    def stop(self) -> None:
        if self._shutdown is not None:
            self._shutdown()
            self._shutdown = None
        if self._botocore_time is not None:
            import botocore.endpoint

            botocore.endpoint.time = self._botocore_time
            self._botocore_time = None
        self.clock.stop()

    def reset(self) -> None:
        """Forget every account, deployment and event (moto's reset endpoint and the emulation's own reset)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).read()  # noqa: S310 - loopback
        self.ram.reset()
        self.sagemaker.reset()
        self.pricing.reset()
        moto_fixes.EMAIL_DELIVERIES.clear()
        self.deployments.clear()
        self._credentials.clear()
        self._clients.clear()
        self._sessions.clear()
        self._key_purpose.clear()
        self._warm.clear()
        self._pending.clear()
        self.untrailed.clear()
        self.bus_admits.clear()
        self.bus_statements.clear()
        self._trails.clear()
        self._drop_next = 0
        self.delivered.clear()
        self.notifications.clear()
        self.faults.reset()
        self._invoke_queue.clear()
        self._transaction_tokens.clear()
        with self._lock:
            self.aws_calls.clear()
            self._call_status.clear()
            self._call_items.clear()
        self._active_identity = None
        self.client("111111111111", "sts").get_caller_identity()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/moto-api/reset":
            self.iam.forget()  # a new world: every credential is gone
        index = self._count_call(environ)
        if index is not None:
            start_response = self._status_recorder(index, start_response)
        denied = self._authorize_call(environ)
        if denied is not None:
            return finish(start_response, denied, str(uuid.uuid4()))
        faulted = self._fault_for(environ)
        if faulted is not None:
            fault, site = faulted
            return self.faults.answer(fault, site, environ, start_response, self._dispatch)
        return self._dispatch(environ, start_response)

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """A call that has passed IAM (and the fault plan) to the service that serves it."""
        if self.ram.is_ram_request(environ):
            return self.ram(environ, start_response)
        if self.sagemaker.handles(environ):
            return self.sagemaker(environ, start_response)
        if self.pricing.handles(environ):
            return self.pricing(environ, start_response)
        if ssm_events.watched_operation(environ):
            return self._parameter_change(environ, start_response)
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(_DYNAMODB_TARGETS):
            # DynamoDB applies each request atomically and in isolation; moto's tables are plain dictionaries shared
            # by the server's request threads (a transaction's condition check, its writes and its rollback copy are
            # not atomic). One DynamoDB request at a time restores what DynamoDB guarantees.
            with self._dynamodb_lock:
                if environ.get("HTTP_X_AMZ_TARGET", "") == "DynamoDB_20120810.TransactWriteItems":
                    return self._transact_write(environ, start_response)
                return [b"".join(self._moto(environ, start_response))]
        if environ.get("HTTP_X_AMZ_TARGET", "") == "AWSEvents.PutEvents":
            return self._put_events(environ, start_response)
        invoked = _LAMBDA_INVOKE.match(environ.get("PATH_INFO", ""))
        if invoked is not None and environ.get("REQUEST_METHOD") == "POST":
            return self._lambda_invoke(environ, start_response, urllib.parse.unquote(invoked["name"]))
        return self._moto(environ, start_response)

    def _fault_for(self, environ: dict[str, Any]) -> tuple[Any, CallSite] | None:
        """The fault of the plan that applies to a function's call (tooling calls are never faulted)."""
        if not self.settings.faults:
            return None
        match = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        principal = self.iam.principal(match["akid"]) if match else None
        if match is None or principal is None:
            return None
        request = read_request(environ, service=match["service"], account=principal.account, region=match["region"])
        site = CallSite(principal.function, match["service"], request.operation)
        fault = self.faults.choose(principal.account, site)
        return None if fault is None else (fault, site)

    def _transact_write(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """TransactWriteItems with its ClientRequestToken honoured, as DynamoDB documents (moto ignores it): a repeat
        of a successful call with the same token within 10 minutes succeeds without changing anything; the same
        token with other parameters is IdempotentParameterMismatchException. botocore fills the token itself and
        sends the same one on every retry of a call."""
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        params = json.loads(body or b"{}")
        token = params.pop("ClientRequestToken", None)
        match = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not token or match is None:
            return [b"".join(self._moto(environ, start_response))]
        key, now, request = (
            (get_account_id_from(match["akid"]), match["region"], token),
            self.clock.now(),
            fingerprint(params),
        )
        stored = self._transaction_tokens.get(key)
        if stored is not None and now - stored[0] <= _TOKEN_WINDOW:
            if stored[1] != request:
                error = ServiceError(
                    "IdempotentParameterMismatchException",
                    "The request uses the same client token as a previous, but non-identical request.",
                    400,
                )
                return finish(start_response, error_response(service_model("dynamodb"), error), str(uuid.uuid4()))
            start_response(*stored[3])
            return stored[2]
        status: list[Any] = []

        def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append((code, headers))
            return start_response(code, headers, exc_info)

        answer = [b"".join(self._moto(environ, capture))]
        if status and status[0][0].startswith("200"):
            self._transaction_tokens[key] = (now, request, answer, status[0])
        return answer

    def _lambda_invoke(self, environ: dict[str, Any], start_response: Callable[..., Any], name: str) -> list[bytes]:
        """Lambda Invoke of a deployed function: InvocationType Event (queued: the function runs with Lambda's
        asynchronous retries and on-failure destination at the next delivery) or DryRun. The caller's account is
        the function's unless FunctionName is an ARN; a qualifier other than $LATEST is not deployed here."""
        model = service_model("lambda")
        match = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        caller = get_account_id_from(match["akid"]) if match else ""
        qualifier = parse_qs(environ.get("QUERY_STRING", "")).get("Qualifier", ["$LATEST"])[0]
        if name.startswith("arn:"):
            parts = name.split(":")
            account, name = parts[4], parts[6]
            qualifier = parts[7] if len(parts) > 7 else qualifier
        else:
            account, _, name = name.rpartition(":function:") if ":function:" in name else (caller, "", name)
            name, _, named_qualifier = name.partition(":")
            qualifier = named_qualifier or qualifier
        deployment = self.deployments.get(account)
        function = next((f for f in (deployment.functions.values() if deployment else []) if f.name == name), None)
        if function is None or qualifier != "$LATEST":
            arn = f"arn:aws:lambda:{self.region}:{account}:function:{name}"
            error = ServiceError("ResourceNotFoundException", f"Function not found: {arn}:{qualifier}", 404)
            return finish(start_response, error_response(model, error), str(uuid.uuid4()))
        kind = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            error = ServiceError("InvalidRequestContentException", "Could not parse request body into json", 400)
            return finish(start_response, error_response(model, error), str(uuid.uuid4()))
        if kind == "DryRun":
            return finish(start_response, (204, [], b""), str(uuid.uuid4()))
        if kind != "Event":
            error = ServiceError(
                "InvalidParameterValueException", "the local stack invokes functions asynchronously only (Event)", 400
            )
            return finish(start_response, error_response(model, error), str(uuid.uuid4()))
        with self._lock:
            self._invoke_queue.append((function, payload))
        return finish(start_response, (202, [("Content-Type", "application/json")], b""), str(uuid.uuid4()))

    def _put_events(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """EventBridge PutEvents (IAM checked already, for a function's call): each entry becomes an event on its bus
        (EventBusName: a name in the caller's account, or a bus ARN in any account), delivered to that bus's rules
        like any other. `account` is the caller's: an entry has no field for it. An entry for another account's bus is
        refused (AccessDeniedException, per entry) unless the bus's policy admits the caller for the entry's source
        and detail-type, as the forwarding rules are checked (`_bus_policy_allows`)."""
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        params = json.loads(body or b"{}")
        match = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        sender = get_account_id_from(match["akid"]) if match else ""
        region = match["region"] if match else self.region
        results = [self._put_entry(sender, region, entry) for entry in params.get("Entries") or []]
        failed = sum(1 for result in results if "ErrorCode" in result)
        answer = json.dumps({"FailedEntryCount": failed, "Entries": results}).encode()
        return finish(
            start_response, (200, [("Content-Type", "application/x-amz-json-1.1")], answer), str(uuid.uuid4())
        )

    def _put_entry(self, sender: str, region: str, entry: dict[str, Any]) -> dict[str, str]:
        from pipeshare_local.iam import event_bus_arn

        bus_arn = event_bus_arn(entry.get("EventBusName"), account=sender, region=region)
        owner, bus = bus_arn.split(":")[4], bus_arn.rsplit("/", 1)[1]
        if not all(entry.get(k) for k in ("Source", "DetailType", "Detail")):
            return {"ErrorCode": "InvalidArgument", "ErrorMessage": "Source, DetailType and Detail are required"}
        try:
            detail = json.loads(entry["Detail"])
        except ValueError:
            return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is not valid JSON"}
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": sender,
            "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": list(entry.get("Resources") or []),
            "detail": detail,
        }
        admitted = owner == sender or (
            sender in self.bus_admits.get((owner, bus), set())
            and self._bus_policy_allows(owner, bus, bus_arn, sender, event)
        )
        if not admitted:
            message = f"event bus {bus_arn} does not admit account {sender} for this event"
            return {"ErrorCode": "AccessDeniedException", "ErrorMessage": message}
        self._emit(event, bus=bus, account=owner)
        return {"EventId": event["id"]}

    def _parameter_change(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """SSM PutParameter / DeleteParameter through moto, then the "Parameter Store Change" event AWS documents for
        a successful change, on the account's default bus at once (pipeshare_local/ssm_events.py)."""
        from moto.ssm.models import ssm_backends

        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        match, name = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", "")), ssm_events.parameter_name(body)
        if match is None or name is None:
            return self._moto(environ, start_response)
        account, region = get_account_id_from(match["akid"]), match["region"]
        delete = ssm_events.watched_operation(environ) == "delete"
        backend = ssm_backends[account][region]
        before = backend.get_parameter(name)
        status: list[str] = []

        def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        answer = b"".join(self._moto(environ, capture))
        parameter = before if delete else backend.get_parameter(name)
        if status and status[0].startswith("200") and parameter is not None:
            operation = "Delete" if delete else ("Create" if parameter.version == 1 else "Update")
            event = ssm_events.change_event(
                account=account, region=region, operation=operation, name=name, parameter=parameter, at=self.clock.now()
            )
            self._emit(event)
        return [answer]

    def _count_call(self, environ: dict[str, Any]) -> int | None:
        """Count each AWS call at the endpoint as (account, service, operation): JSON target, query Action or path.
        Returns its index in aws_calls (None: an unsigned request); a DynamoDB write's item count is kept too."""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        match = re.search(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/", auth)
        if not match:
            return None
        operation = environ.get("HTTP_X_AMZ_TARGET", "").split(".")[-1]
        items = None
        if not operation and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            operation = parse_qs(body.decode()).get("Action", [""])[0]
        elif operation in _DYNAMODB_WRITES and environ.get("HTTP_X_AMZ_TARGET", "").startswith(_DYNAMODB_TARGETS[0]):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            items = _written_items(operation, body)
        operation = operation or _rest_operation(match.group(2), environ.get("PATH_INFO", ""))
        key = match.group(1)
        with self._lock:
            self.aws_calls.append(
                (get_account_id_from(key), match.group(2), operation, self._key_purpose.get(key, "tooling"), key)
            )
            index = len(self.aws_calls) - 1
            if items is not None:
                self._call_items[index] = items
        return index

    def _status_recorder(self, index: int, start_response: Callable[..., Any]) -> Callable[..., Any]:
        """start_response, recording the HTTP status the call is answered with (a lost answer records none)."""

        def recording(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            with contextlib.suppress(ValueError, IndexError):
                self._call_status[index] = int(status.split(" ", 1)[0])
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        return recording

    def watch_changes(self, function: LocalFunction) -> Callable[[], dict[str, int]]:
        """Called as one of a function's invocations starts; the returned callable, called as it ends, answers what
        the invocation changed: its successful calls other than reads, as "service:Operation" -> count (DynamoDB
        writes: the items written; invocations run one at a time, so the calls signed by the function in between
        are the invocation's)."""
        with self._lock:
            mark = len(self.aws_calls)

        def changes() -> dict[str, int]:
            with self._lock:
                calls = list(enumerate(self.aws_calls[mark:], start=mark))
            found: dict[str, int] = {}
            for index, (account, service, operation, caller, key) in calls:
                if caller != "functions" or account != function.account or operation.startswith(_READ_PREFIXES):
                    continue
                status = self._call_status.get(index)
                if status is None or not 200 <= status < 300 or self._signer(key) != function.logical_id:
                    continue
                name = f"{service}:{operation}"
                found[name] = found.get(name, 0) + self._call_items.get(index, 1)
            return {name: count for name, count in found.items() if count}

        return changes

    @functools.cached_property
    def iam(self) -> LocalIam:
        """IAM as SAM would deploy the roles: function identities, their roles' policies, refusals (iam.denials)."""
        return LocalIam(lookups=StackLookups(self.ram.invitation_owner, self.ram.share_facts))

    def _authorize_call(self, environ: dict[str, Any]) -> Any:
        """A function's call is authorized by its role's policies (iam.py); the denial in the service's protocol, or
        None. Tooling calls (set-up, scenario steps, reading state back) are not restricted."""
        match = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        principal = self.iam.principal(match["akid"]) if match else None
        if match is None or principal is None:
            return None
        request = read_request(environ, service=match["service"], account=principal.account, region=match["region"])
        decision = self.iam.check_request(principal, request)
        return None if decision.allowed else denial_response(request, decision.message)

    # ------------------------------------------------------------------ identities and clients
    def credentials(
        self, account: str, purpose: str = "functions", *, role: str = _CREDENTIALS_ROLE, session: str | None = None
    ) -> dict[str, str]:
        """Credentials bound to an account (moto STS assume-role of `role`), as Lambda's environment would carry them.

        Functions and the stack's own tooling (setup, reading state back) get different keys: calls can be told apart.
        """
        cached = (account, purpose if role == _CREDENTIALS_ROLE else f"{purpose}:{role}")
        if cached not in self._credentials:
            sts = self._tool_session.client(
                "sts",
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id="bootstrap",
                aws_secret_access_key="bootstrap",  # noqa: S106 - moto accepts any key; local only
            )
            creds = sts.assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName=session or f"pipeshare-{purpose}"
            )["Credentials"]
            self._key_purpose[creds["AccessKeyId"]] = purpose
            self._credentials[cached] = {
                "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                "AWS_SESSION_TOKEN": creds["SessionToken"],
                "AWS_ENDPOINT_URL": self.endpoint,
            }
        return self._credentials[cached]

    def function_credentials(self, account: str, logical: str) -> dict[str, str]:
        """A function's own credentials: moto STS assume-role of the role SAM creates for it (<stack>-<Function>Role,
        session = the function's name), so the endpoint knows which function, and so which policies, signed a call."""
        principal = self._function_principal(account, logical)
        role_name = principal.role_arn.rsplit("/", 1)[1]
        creds = self.credentials(account, "functions", role=role_name, session=principal.session_arn.rsplit("/", 1)[1])
        self.iam.bind(creds["AWS_ACCESS_KEY_ID"], principal)
        return creds

    def _function_principal(self, account: str, logical: str) -> Principal:
        stack_name = self.deployments[account].stack_name if account in self.deployments else "pipeshare"
        role = self.iam.function_roles.get((account, logical), f"{logical}Role")
        role_name = f"{stack_name}-{role}"[:64]
        session = f"{stack_name}-{logical}"[:64]
        return Principal(
            account,
            role,
            f"arn:aws:iam::{account}:role/{role_name}",
            f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}",
            logical,
        )

    def client(self, account: str, service: str) -> Any:
        """A boto3 client bound to an account (cached; the stack's own session, apart from the functions')."""
        key = (account, service)
        if key not in self._clients:
            self._clients[key] = self._new_client(account, service)
        return self._clients[key]

    def _new_client(self, account: str, service: str) -> Any:
        return self._client_with(self.credentials(account, "tooling"), service, self._tool_session)

    def function_client(self, account: str, function: str, service: str) -> Any:
        """A client signing as a function (its role's credentials), as the function's own code would (not cached)."""
        return self._client_with(self.function_credentials(account, function), service, boto3.session.Session())

    def _client_with(self, creds: dict[str, str], service: str, session: boto3.Session) -> Any:
        return session.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=creds["AWS_SESSION_TOKEN"],
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    def calls(
        self, account: str | None = None, *, functions_only: bool = False, function: str | None = None
    ) -> list[tuple[str, str, str]]:
        """(account, service, operation) of the calls received, in order; optionally only the functions' calls, or
        only the calls one function (its logical ID) signed."""
        with self._lock:
            return [
                c[:3]
                for c in self.aws_calls
                if (account is None or c[0] == account)
                and (not (functions_only or function) or c[3] == "functions")
                and (function is None or self._signer(c[4]) == function)
            ]

    def _signer(self, access_key: str) -> str | None:
        principal = self.iam.principal(access_key)
        return principal.function if principal else None

    # ------------------------------------------------------------------ deploy from template.yaml
    def deploy(
        self, account: str, parameters: dict[str, Any] | None = None, *, stack_name: str = "pipeshare"
    ) -> Deployment:
        """Deploy template.yaml into an account (pipeshare_local.deployer); the stack then runs what was created."""
        deployment = self.deployer.deploy(account, parameters, stack_name=stack_name)
        self.deployments[account] = deployment
        return deployment

    # ------------------------------------------------------------------ running functions
    def enter_function(self, function: LocalFunction) -> None:
        """_switch_container, with one boto3 session per function credential (a session caches the credentials it
        resolved; each function signs with its own role's)."""
        previous = self._active_identity
        self._switch_container(function)
        if self._active_identity != previous and self._active_identity is not None:
            # a container never sees another's Powertools providers: their clients sign with that function's keys
            parameter_constants.DEFAULT_PROVIDERS.clear()
            parameter_constants.DEFAULT_PROVIDERS.update(self._warm.get(self._active_identity, {}))
        key = os.environ.get("AWS_ACCESS_KEY_ID", "")
        if key not in self.iam.sessions:
            self.iam.sessions[key] = _container_session()
        boto3.DEFAULT_SESSION = self.iam.sessions[key]

    def _switch_container(self, function: LocalFunction) -> None:
        """One process plays many accounts: a new identity is a new container (fresh clients and caches)."""
        identity = (function.account, function.logical_id)
        if identity != self._active_identity:
            from pipeshare import dependencies

            if self._active_identity is not None:  # keep the warm container's Powertools parameter cache
                self._warm[self._active_identity] = dict(parameter_constants.DEFAULT_PROVIDERS)
            dependencies.reset()
            parameter_constants.DEFAULT_PROVIDERS.update(self._warm.get(identity, {}))
            # boto3's default session caches the credentials it resolved: one session per account, as containers
            # of different accounts never share one (a session per account also keeps its loaded service models)
            if function.account not in self._sessions:
                self._sessions[function.account] = boto3.Session()
            boto3.DEFAULT_SESSION = self._sessions[function.account]
            self._active_identity = identity

    def send_to_queue(self, account: str, queue_arn: str, body: dict[str, Any]) -> None:
        function_arn = str((body.get("requestContext") or {}).get("functionArn", "")).removesuffix(":$LATEST")
        if function_arn and not self._function_may_send(account, function_arn, queue_arn):
            return  # Lambda sends a destination record with the function's role: refused (see iam.denials)
        sqs = self.client(account, "sqs")
        url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body, default=str))

    def _function_may_send(self, account: str, function_arn: str, queue_arn: str) -> bool:
        """OnFailure destinations (async and stream): sqs:SendMessage by the function's role."""
        functions = self.deployments[account].functions.values() if account in self.deployments else []
        function = next((f for f in functions if f.arn == function_arn), None)
        if function is None:
            return True
        principal = self._function_principal(account, function.logical_id)
        need = Need("sqs:SendMessage", (Target(("queue",), arn=queue_arn),))
        return self.iam.check(principal, [need], region=self.region, operation="SendMessage").allowed

    def _target_role_refusal(self, account: str, rule: Rule, event: dict[str, Any]) -> str | None:
        """A rule target delivering with a role (the template's ForwarderRole): events:PutEvents on the target bus."""
        role = self.iam.rule_roles.get((account, rule.name, rule.forward_to or ""))
        if role is None:
            return None
        name = f"{self.deployments[account].stack_name}-{role}"[:64]
        principal = Principal(
            account, role, f"arn:aws:iam::{account}:role/{name}", f"arn:aws:sts::{account}:assumed-role/{name}/events"
        )
        context = {
            "events:source": (str(event.get("source", "")),),
            "events:detail-type": (str(event.get("detail-type", "")),),
            "events:eventbusinvocation": ("true",),
        }
        need = Need("events:PutEvents", (Target(("event-bus",), arn=rule.forward_to or ""),), context)
        decision = self.iam.check(principal, [need], region=self.region, operation="PutEvents")
        return None if decision.allowed else f"{decision.message} (AccessDeniedException)"

    def _resource_exists(self, account: str, region: str, arn: str) -> bool:
        if ":sagemaker:" in arn and ":pipeline/" in arn:
            sagemaker = self.client(account, "sagemaker")
            try:
                sagemaker.describe_pipeline(PipelineName=arn.rsplit("/", 1)[1])
            except sagemaker.exceptions.ResourceNotFound:
                return False
            except Exception:
                return False
        return True

    # ------------------------------------------------------------------ events
    def _emit(
        self, event: dict[str, Any], *, bus: str = "default", account: str | None = None, due: datetime | None = None
    ) -> None:
        """An event reaches a bus: the default bus of its own account unless told otherwise; at `due` (default now)."""
        with self._lock:
            entry = (due or self.clock.now(), next(self._sequence), account or event["account"], bus, event)
            heapq.heappush(self._pending, entry)

    def _service_event(self, event: dict[str, Any]) -> None:
        """An event sent by an emulated service (RAM, SageMaker). Service events go at once. A CloudTrail record
        ("AWS API Call via CloudTrail") reaches its account's default bus settings.cloudtrail.delay_minutes later,
        and only when that account has a trail (owner_trail / consumer_trail / trails): AWS delivers these records
        best effort, with no latency or ordering promise, and only with a trail logging management events."""
        if event.get("detail-type") != API_CALL_VIA_CLOUDTRAIL:
            self._emit(event)
            return
        cloudtrail = self.settings.cloudtrail
        recipient = event["account"]
        if not cloudtrail.has_trail(recipient, owns_resource=_called_resource_account(event) == recipient):
            with self._lock:
                self.untrailed.append(event)
            return
        self._emit(event, due=self.clock.now() + cloudtrail.delay)

    def put_event(self, account: str, event: dict[str, Any], *, bus: str = "default") -> None:
        """Deliver an event as-is (e.g. from an events/ JSON file) to an account's bus (default: its default bus), at
        once; delivering one twice plays EventBridge's at-least-once delivery."""
        self._emit(event, account=account, bus=bus)

    def pending_events(self) -> list[tuple[datetime, str, dict[str, Any]]]:
        """(due, receiving account, event) of every event not delivered yet, in delivery order."""
        with self._lock:
            return [(due, account, event) for due, _, account, _, event in sorted(self._pending, key=lambda e: e[:2])]

    def drop_next_events(self, count: int = 1) -> None:
        """RAM events are best effort: the next `count` events are lost."""
        self._drop_next += count

    def deliver(self) -> list[Invocation]:
        """Deliver pending events to matching rules (moto's matcher, the template's patterns), then pump streams.

        A rule whose target is another account's event bus forwards the event there when that bus's policy admits
        the sending account; otherwise the event goes to the rule's dead-letter queue, as EventBridge does.
        """
        invocations: list[Invocation] = []
        self._sync_trails()
        self.sagemaker.tick()
        with self._lock:
            invoked, self._invoke_queue = self._invoke_queue, []
        for function, payload in invoked:  # Lambda Invoke (Event) calls received since the last delivery
            invocations += function.invoke_async(payload, trigger="invoke")
        while True:
            with self._lock:
                now = self.clock.now()
                if not self._pending or self._pending[0][0] > now:
                    break  # what is not due yet stays pending (delayed CloudTrail records)
                _, _, account, bus, event = heapq.heappop(self._pending)
            if self._drop_next:
                self._drop_next -= 1
                self.delivered.append(DeliveredEvent(account, event, dropped=True, matched=[], bus=bus, at=now))
                continue
            deployment = self.deployments.get(account)
            matched = [
                r
                for r in (deployment.rules if deployment else [])
                if r.bus == bus and r.pattern and r.pattern.matches_event(event)
            ]
            delivered = DeliveredEvent(
                account, event, dropped=False, matched=[r.name for r in matched], bus=bus, at=now
            )
            self.delivered.append(delivered)
            for rule in matched:
                if rule.forward_to:
                    delivered.refused = self._forward(account, rule, event)
                elif rule.function is not None:
                    invocations += rule.function.invoke_async(event, trigger=f"rule:{rule.name}")
        for _ in range(10):  # stream- and queue-triggered functions may write what triggers others (bounded)
            pumped = self.pump_streams() + self.pump_queues()
            if not pumped:
                break
            invocations += pumped
        return invocations

    def _forward(self, account: str, rule: Rule, event: dict[str, Any]) -> str | None:
        target = rule.forward_to or ""
        target_account, target_bus = target.split(":")[4], target.rsplit("/", 1)[1]
        refused = self._target_role_refusal(account, rule, event)  # the rule's role, then the bus policy
        admitted = account == target_account or (
            account in self.bus_admits.get((target_account, target_bus), set())
            and self._bus_policy_allows(target_account, target_bus, target, account, event)
        )
        if refused is None and admitted:
            self._emit(event, bus=target_bus, account=target_account)
            return None
        reason = refused or f"event bus {target} does not admit account {account} (AccessDeniedException)"
        if rule.dead_letter_arn:
            self.send_to_queue(account, rule.dead_letter_arn, {"event": event, "error": reason, "rule": rule.name})
        return reason

    def _bus_policy_allows(self, owner: str, bus: str, bus_arn: str, sender: str, event: dict[str, Any]) -> bool:
        """The bus policy's statements (principal admitted already) evaluated as EventBridge does for PutEvents from
        another account: Action, Resource and Condition with the keys events:source, events:detail-type and
        aws:PrincipalAccount; a condition it cannot evaluate refuses (fail closed)."""
        from pipeshare_local.iam import Context, evaluate

        context = Context(
            values={
                "events:source": (str(event.get("source", "")),),
                "events:detail-type": (str(event.get("detail-type", "")),),
                "aws:principalaccount": (sender,),
            }
        )
        verdict = evaluate(
            [{"Statement": self.bus_statements.get((owner, bus), [])}], "events:PutEvents", bus_arn, context
        )
        return verdict.effect == "Allow"

    def run_schedule(self, account: str, rule_suffix: str = "Sweep") -> list[Invocation]:
        """Fire an account's scheduled rule now (the sweep)."""
        deployment = self.deployments[account]
        invocations: list[Invocation] = []
        for rule in deployment.rules:
            if rule.schedule and rule.name.endswith(rule_suffix):
                invocations += rule.function.invoke_async(
                    self._scheduled_event(account, rule), trigger=f"schedule:{rule.name}"
                )
        return invocations + self.deliver()

    def _scheduled_event(self, account: str, rule: Rule) -> dict[str, Any]:
        import uuid

        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [f"arn:aws:events:{self.region}:{account}:rule/{rule.name}"],
            "detail": {},
        }

    def advance(self, delta: timedelta) -> list[Invocation]:
        """Move scenario time forward in time order through every moment something happens: a delayed event falls
        due, an execution changes (a step starts or ends), a schedule period is crossed (the scheduled function
        runs). Events are delivered at each of them; at equal times, events before executions before schedules."""
        target = self.clock.now() + delta
        invocations: list[Invocation] = []
        while (stop := self._next_stop(target)) is not None:
            at, scheduled = stop
            now = self.clock.now()
            if at > now:
                self.clock.advance(at - now)
            if scheduled is not None:
                account, rule = scheduled
                self.sagemaker.tick()  # executions as of the fire time, before the scheduled function runs
                rule.next_fire = at + rule.schedule  # type: ignore[operator]
                invocations += rule.function.invoke_async(
                    self._scheduled_event(account, rule), trigger=f"schedule:{rule.name}"
                )
            invocations += self.deliver()
        now = self.clock.now()
        if target > now:
            self.clock.advance(target - now)
        return invocations + self.deliver()

    def _next_stop(self, target: datetime) -> tuple[datetime, tuple[str, Rule] | None] | None:
        """The next moment up to target at which advance() stops: (time, (account, rule) when a schedule fires)."""
        stops: list[tuple[datetime, int, tuple[str, Rule] | None]] = []
        with self._lock:
            if self._pending and self._pending[0][0] <= target:
                stops.append((self._pending[0][0], 0, None))
        change = self.sagemaker.next_change()
        if change is not None and self.clock.now() < change <= target:
            stops.append((change, 1, None))
        message = self._next_queue_message()
        if message is not None and message <= target:
            stops.append((message, 1, None))
        stops += [
            (r.next_fire, 2, (account, r))
            for account, d in self.deployments.items()
            for r in d.rules
            if r.schedule and r.next_fire and r.next_fire <= target
        ]
        if not stops:
            return None
        at, _, scheduled = min(stops, key=lambda stop: (stop[0], stop[1]))
        return at, scheduled

    # ------------------------------------------------------------------ queues (SQS event source mappings)
    def pump_queues(self) -> list[Invocation]:
        """Poll every SQS event source mapping once: the messages available now (moto honours DelaySeconds and
        visibility timeouts on the scenario clock), in batches; processed messages are deleted, failed ones (the
        whole batch on an error, else the reported batchItemFailures) come back after the visibility timeout and
        reach the queue's dead-letter queue after maxReceiveCount receives, as with Lambda."""
        invocations: list[Invocation] = []
        for deployment in self.deployments.values():
            for mapping in deployment.queues:
                invocations += self._pump_queue(deployment, mapping)
        return invocations

    def _pump_queue(self, d: Deployment, mapping: QueueMapping) -> list[Invocation]:
        sqs = self.client(d.account, "sqs")
        if not mapping.queue_url:
            mapping.queue_url = sqs.get_queue_url(QueueName=mapping.queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        url = mapping.queue_url
        invocations: list[Invocation] = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(10, mapping.batch_size), AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return invocations
            records = [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": mapping.queue_arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
            invocation = mapping.function.invoke_once({"Records": records}, trigger="sqs")
            invocations.append(invocation)
            if invocation.error is not None:
                failed = {r["messageId"] for r in records}
            elif mapping.report_failures:
                failed = {f["itemIdentifier"] for f in (invocation.result or {}).get("batchItemFailures", [])}
            else:
                failed = set()
            for record in records:
                if record["messageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
            if failed:
                return invocations  # the failed messages come back after their visibility timeout

    def _sync_trails(self) -> None:
        """Mirror the cloudtrail settings into each deployed account's CloudTrail (moto): an account that has a trail
        by the settings has a multi-region trail logging management events, one that has none has no logging trail,
        so what pipeshare reads of CloudTrail (DescribeTrails, GetTrailStatus) agrees with what is delivered."""
        for account, d in self.deployments.items():
            wanted = self.settings.cloudtrail.has_trail(account, owns_resource=d.conditions.get("IsOwner", False))
            if self._trails.get(account) == wanted:
                continue
            cloudtrail = self.client(account, "cloudtrail")
            name = "management-events"
            if wanted and account not in self._trails:
                bucket = f"pipeshare-local-trail-{account}"
                self.client(account, "s3").create_bucket(Bucket=bucket)
                cloudtrail.create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=True)
                cloudtrail.put_event_selectors(
                    TrailName=name, EventSelectors=[{"ReadWriteType": "All", "IncludeManagementEvents": True}]
                )
            if wanted:
                cloudtrail.start_logging(Name=name)
            elif account in self._trails:
                cloudtrail.stop_logging(Name=name)
            self._trails[account] = wanted

    def _next_queue_message(self) -> datetime | None:
        """When the next message of a mapped queue becomes available (delay or visibility timeout ending)."""
        from moto.sqs.models import sqs_backends

        now_ms = self.clock.now().timestamp() * 1000
        times = []
        for d in self.deployments.values():
            for mapping in d.queues:
                queue = sqs_backends[d.account][self.region].queues.get(mapping.queue_arn.rsplit(":", 1)[1])
                for message in queue._messages if queue is not None else []:  # the poller looks at the service side
                    available = max(message.delayed_until, message.visible_at)
                    if available > now_ms:
                        times.append(available)
        return datetime.fromtimestamp(min(times) / 1000, UTC) if times else None

    # ------------------------------------------------------------------ streams
    def pump_streams(self) -> list[Invocation]:
        invocations: list[Invocation] = []
        for deployment in self.deployments.values():
            for mapping in deployment.streams:
                invocations += self._pump(deployment, mapping)
        return invocations

    def _pump(self, d: Deployment, mapping: StreamMapping) -> list[Invocation]:
        streams = self.client(d.account, "dynamodbstreams")
        if not mapping.iterators:
            try:
                shards = streams.describe_stream(StreamArn=mapping.stream_arn)["StreamDescription"]["Shards"]
            except streams.exceptions.ResourceNotFoundException:
                return []  # the table is gone: Lambda disables such a mapping
            mapping.iterators = {shard["ShardId"]: "" for shard in shards}
        records: list[dict[str, Any]] = []
        for shard_id in list(mapping.iterators):
            iterator = (
                mapping.iterators.get(shard_id)
                or streams.get_shard_iterator(
                    StreamArn=mapping.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            while iterator:
                page = streams.get_records(ShardIterator=iterator, Limit=1000)
                mapping.iterators[shard_id] = page.get("NextShardIterator") or iterator
                if not page["Records"]:
                    break
                records += page["Records"]
                iterator = page.get("NextShardIterator")
        invocations: list[Invocation] = []
        selected = [self._stream_record(r, mapping) for r in records]
        selected = [r for r in selected if not mapping.filters or any(f.matches_event(r) for f in mapping.filters)]
        for start in range(0, len(selected), mapping.batch_size):
            invocations += self._invoke_batch(d, mapping, selected[start : start + mapping.batch_size])
        return invocations

    @staticmethod
    def _stream_record(record: dict[str, Any], mapping: StreamMapping) -> dict[str, Any]:
        record = json.loads(json.dumps(record, default=lambda v: v.timestamp() if isinstance(v, datetime) else str(v)))
        record["eventSourceARN"] = mapping.stream_arn
        return record

    def _invoke_batch(self, d: Deployment, mapping: StreamMapping, batch: list[dict[str, Any]]) -> list[Invocation]:
        invocations: list[Invocation] = []
        attempt = 0
        while batch:
            attempt += 1
            invocation = mapping.function.invoke_once({"Records": batch}, trigger="stream", attempt=attempt)
            invocations.append(invocation)
            if invocation.error is None:
                failures = {f["itemIdentifier"] for f in (invocation.result or {}).get("batchItemFailures", [])}
                if not failures:
                    return invocations
                first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failures)
                batch = batch[first:]
            if mapping.max_retries >= 0 and attempt > mapping.max_retries:
                if mapping.on_failure_arn:
                    self.send_to_queue(
                        d.account,
                        mapping.on_failure_arn,
                        {
                            "requestContext": {
                                "condition": "RetryAttemptsExhausted",
                                "functionArn": mapping.function.arn,
                                "approximateInvokeCount": attempt,
                            },
                            "DDBStreamBatchInfo": {
                                "streamArn": mapping.stream_arn,
                                "batchSize": len(batch),
                                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                            },
                        },
                    )
                return invocations
        return invocations

    # ------------------------------------------------------------------ reading state back
    def read_notifications(self, account: str) -> list[dict[str, Any]]:
        """Drain the tap queues of an account's topics; returns (and keeps) every message published so far."""
        deployment = self.deployments[account]
        sqs = self.client(account, "sqs")
        for logical, url in deployment.taps.items():
            while True:
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    envelope = json.loads(message["Body"])
                    try:
                        body: Any = json.loads(envelope["Message"])
                    except ValueError:
                        body = envelope["Message"]
                    self.notifications.append(
                        {
                            "account": account,
                            "topic": logical,
                            "subject": envelope.get("Subject"),
                            "message": body,
                            "attributes": {k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()},
                            "at": envelope.get("Timestamp"),
                        }
                    )
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [n for n in self.notifications if n["account"] == account]

    def read_emails(self, account: str) -> list[dict[str, Any]]:
        """What the e-mail subscriptions of an account's topics got (moto delivers none: moto_fixes records them)."""
        return [dict(d) for d in moto_fixes.EMAIL_DELIVERIES if d["account"] == account]

    def table_items(self, account: str, logical: str = "ShareTable") -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        ddb = self.client(account, "dynamodb")
        items: list[dict[str, Any]] = []
        for page in ddb.get_paginator("scan").paginate(TableName=self.deployments[account].refs[logical]):
            items += [{k: _plain(deserializer.deserialize(v)) for k, v in item.items()} for item in page["Items"]]
        return sorted(items, key=lambda i: (i.get("pk", ""), i.get("sk", "")))

    def queue_messages(self, account: str, logical: str) -> list[dict[str, Any]]:
        sqs = self.client(account, "sqs")
        url = self.deployments[account].refs[logical]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def invocations(self, account: str | None = None) -> list[Invocation]:
        return [
            i
            for d in self.deployments.values()
            if account is None or d.account == account
            for f in d.functions.values()
            for i in f.invocations
        ]


def _container_session() -> boto3.Session:
    """The boto3 session of one function's containers (one per function credential).

    A warm Lambda container keeps the clients its module built; the local stack plays many accounts in one process
    and rebuilds a function's adapters whenever it switches to another function (dependencies.reset()). The
    clients come back warm: each is made once per (service, region, endpoint, config) of this credential, as a
    warm container would hold it. Client state is only connections and retry quotas; nothing product-visible.
    """
    session = boto3.Session()
    make_client = session.client
    clients: dict[tuple[Any, ...], Any] = {}

    def client(service_name: str, region_name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if args:
            return make_client(service_name, region_name, *args, **kwargs)
        plain = (str, int, float, bool, type(None))
        key = (service_name, region_name, *sorted((k, v if isinstance(v, plain) else id(v)) for k, v in kwargs.items()))
        if key not in clients:  # the arguments are kept with the client, so an id in the key stays theirs
            clients[key] = (make_client(service_name, region_name, **kwargs), kwargs)
        return clients[key][0]

    session.client = client  # type: ignore[method-assign]
    return session


@functools.cache
def _rest_paths(service: str) -> dict[str, str]:
    """requestUri -> operation name for a REST service (RAM), from botocore's service model."""
    try:
        model = botocore.session.get_session().get_service_model(service)
    except botocore.exceptions.UnknownServiceError:
        return {}
    uris = {name: model.operation_model(name).http.get("requestUri", "") for name in model.operation_names}
    return {uri.split("?", 1)[0].rstrip("/").lower(): name for name, uri in uris.items() if "{" not in uri}


def _rest_operation(service: str, path: str) -> str:
    return _rest_paths(service).get(path.rstrip("/").lower(), path)


_ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")


def _called_resource_account(event: dict[str, Any]) -> str:
    """The account owning the resource a CloudTrail record's call named: the account of the first ARN among its
    requestParameters (pipelineName by ARN, pipelineExecutionArn, ...), else the caller's own account (a resource
    named by name is the caller's)."""
    detail = event.get("detail") or {}
    for value in (detail.get("requestParameters") or {}).values():
        match = _ARN_ACCOUNT.match(value) if isinstance(value, str) else None
        if match:
            return match.group(1)
    return str((detail.get("userIdentity") or {}).get("accountId") or event.get("account", ""))


def _written_items(operation: str, body: bytes) -> int:
    """The items a DynamoDB write names: one, a transaction's writes (not its condition checks), a batch's requests."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return 1
    if operation == "TransactWriteItems":
        return sum(1 for entry in request.get("TransactItems") or [] if "ConditionCheck" not in entry)
    if operation == "BatchWriteItem":
        return sum(len(requests) for requests in (request.get("RequestItems") or {}).values())
    return 1


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value
