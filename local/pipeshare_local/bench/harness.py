"""The bench's harness: accounts, probes standing in for deployed functions, and the owner-side set-ups (played
with the scenario player's own step functions, as `make demo` does)."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pipeshare_local.runtime import Invocation, LocalFunction
from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.scenario import STEP_KINDS, AccountSpec, Player, Scenario
from pipeshare_local.stack import LocalStack

ACCEPT = "AcceptInvitationsFunction"
NOTIFY = "NotifyDecisionsFunction"
AUDIT = "AuditSharesFunction"
TRACK = "TrackExecutionsFunction"
SETTLE = "SettleAttributionFunction"
NOTIFY_OWNER = "NotifyOwnerFunction"
INVENTORY = "OwnerInventoryFunction"
ESTIMATE = "EstimateCostFunction"
WATCH = "WatchBudgetsFunction"
RELAY = "RelayNoticesFunction"
CONSUMER_HANDLERS = (ACCEPT, NOTIFY, AUDIT, RELAY)
OWNER_HANDLERS = (TRACK, SETTLE, NOTIFY_OWNER, INVENTORY, ESTIMATE, WATCH)

OWNER = "111111111111"  # trusted owner
CONSUMER = "222222222222"
UNTRUSTED_OWNER = "333333333333"
TRACKED_OWNER = "555555555555"
STARTER = "666666666666"  # no forwarder: the owner learns of its starts from the status event only
FORWARDING_OWNER = "777777777777"
FORWARDER = "888888888888"  # forwards its CloudTrail records to the owner's bus (OwnerEventBusArn)
ACCOUNTS = {
    "owner": OWNER,
    "consumer": CONSUMER,
    "untrusted": UNTRUSTED_OWNER,
    "sweeper": "444444444444",
    "tracked_owner": TRACKED_OWNER,
    "starter": STARTER,
    "forwarding_owner": FORWARDING_OWNER,
    "forwarder": FORWARDER,
}
NOTICE_BUS = "pipeshare-notices"  # ConsumerNoticeBusName: the consumer's notice bus (and its relay) exist
CONSUMER_PARAMETERS = {"TrustedOwnerAccountIds": OWNER, "ConsumerNoticeBusName": NOTICE_BUS}
STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
STEP_CHANGE = "SageMaker Model Building Pipeline Execution Step Status Change"
ENDED = ("Succeeded", "Failed", "Stopped")  # terminal step and execution statuses (the estimator's rule patterns)
API_CALL = "AWS API Call via CloudTrail"
ALERT_SCHEMA = "pipeshare.owner.execution-alert"
STEPS_PAGE_SIZE = 100  # ListPipelineExecutionSteps MaxResults, as SageMakerCostGateway.list_steps reads them
MANY_STEPS = 200
MANY_STEPS_CACHE_HITS = (25, 75, 125, 175)  # indexes of the steps served from cache
TRACKING_STEPS = (StepSpec(name="Train", type="Training", duration_seconds=24 * 3600),)


class BenchError(Exception):
    """A measurement could not be taken (the harness, or the code it exercises, did not behave)."""


def _progress(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


class OperationNames:
    """Readable operation names. The endpoint sees X-Amz-Target names for JSON services, only the path for REST
    services (RAM): paths are mapped back through botocore's service model."""

    def __init__(self) -> None:
        self._paths: dict[str, dict[str, str]] = {}

    def label(self, service: str, operation: str) -> str:
        if operation.startswith("/"):
            operation = self._by_path(service).get(operation.rstrip("/").lower() or "/", operation)
        return f"{service}:{operation}"

    def _by_path(self, service: str) -> dict[str, str]:
        if service not in self._paths:
            import botocore.session
            from botocore.exceptions import UnknownServiceError

            try:
                model = botocore.session.get_session().get_service_model(service)
            except UnknownServiceError:
                self._paths[service] = {}
            else:
                uris = {name: model.operation_model(name).http.get("requestUri", "") for name in model.operation_names}
                self._paths[service] = {
                    uri.split("?", 1)[0].rstrip("/").lower() or "/": name
                    for name, uri in uris.items()
                    if "{" not in uri
                }
        return self._paths[service]

    def breakdown(self, calls: list[tuple[str, str, str]]) -> dict[str, int]:
        return dict(Counter(self.label(service, operation) for _, service, operation in calls))


@dataclass
class ProbeRun:
    """One invocation seen by a probe, with every call the endpoint received while it ran."""

    trigger: str
    event: dict[str, Any]
    account: str
    invocation: Invocation
    window: list[tuple[str, str, str]]
    seconds: float = 0.0  # wall time of the invocation (in-process, against the local endpoint)
    # HTTP round trips of the invocation's calls, seconds by operation: the local endpoint serves them in this process
    endpoint_seconds: dict[str, float] = field(default_factory=dict)
    started: float = 0.0  # time.perf_counter() when the invocation began

    @property
    def calls(self) -> list[tuple[str, str, str]]:
        """The calls made in the function's account (its clients carry the account's credentials)."""
        return [c for c in self.window if c[0] == self.account]

    @property
    def foreign_calls(self) -> int:
        return len(self.window) - len(self.calls)


@contextmanager
def timing_requests() -> Iterator[dict[str, float]]:
    """While active, the round-trip time of every HTTP request botocore sends from this thread, in seconds by
    operation (X-Amz-Target, or the path). The local endpoint serves them in this process: that time is the
    emulator's (moto's), not the handler's. Wraps botocore's Endpoint._send, restored on exit."""
    from botocore.endpoint import Endpoint

    spent: dict[str, float] = {}
    original = Endpoint._send
    thread = threading.get_ident()

    def timed(self: Any, request: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, request)
        finally:
            if threading.get_ident() == thread:
                target = request.headers.get("X-Amz-Target") or b""
                target = target.decode() if isinstance(target, bytes) else str(target)
                operation = target.rsplit(".", 1)[-1] or urlsplit(request.url).path or "/"
                spent[operation] = spent.get(operation, 0.0) + time.perf_counter() - started

    Endpoint._send = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        Endpoint._send = original  # type: ignore[method-assign]


class Probe:
    """Stands in for a LocalFunction on its rules, stream and SQS mappings: invokes it once per delivery (first
    attempts only: no retries, no OnFailure destination) and records the calls of each invocation; or, with
    capture_only, keeps the events without invoking (so a child process can handle them; a captured SQS batch is
    reported processed, so the mapping deletes its messages); with hold, keeps (without invoking) only the rule events
    hold(event) is true for."""

    def __init__(
        self,
        stack: LocalStack,
        function: LocalFunction,
        *,
        capture_only: bool = False,
        hold: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.function = function
        self._stack = stack
        self.capture_only = capture_only
        self.hold = hold
        self.runs: list[ProbeRun] = []
        self.captured: list[dict[str, Any]] = []
        self.captured_triggers: list[str] = []  # the rule that delivered each captured event

    def __getattr__(self, name: str) -> Any:  # arn, name, account... as the function has them
        return getattr(self.function, name)

    def invoke_once(self, event: dict[str, Any], *, trigger: str, attempt: int = 1) -> Invocation:
        if self.capture_only:  # a stream or queue mapping's batch: kept for a child process, reported processed
            self.captured.append(event)
            self.captured_triggers.append(trigger)
            return Invocation(
                function=self.function.logical_id,
                account=self.function.account,
                trigger=trigger,
                event_id=None,
                attempt=attempt,
                at=datetime.now(UTC).isoformat(),
                result={"batchItemFailures": []},
            )
        before = len(self._stack.calls())
        with timing_requests() as round_trips:
            started = time.perf_counter()
            invocation = self.function.invoke_once(event, trigger=trigger, attempt=attempt)
            seconds = time.perf_counter() - started
        window = self._stack.calls()[before:]
        self.runs.append(
            ProbeRun(trigger, event, self.function.account, invocation, window, seconds, round_trips, started)
        )
        return invocation

    def invoke_async(self, event: dict[str, Any], *, trigger: str) -> list[Invocation]:
        if self.capture_only or (self.hold is not None and self.hold(event)):
            self.captured.append(event)
            self.captured_triggers.append(trigger)
            return []
        return [self.invoke_once(event, trigger=trigger)]


@contextmanager
def probing(
    stack: LocalStack,
    account: str,
    logical: str,
    *,
    capture_only: bool = False,
    hold: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[Probe]:
    """Put a probe in place of a deployed function on every rule, stream and SQS mapping that targets it."""
    deployment = stack.deployments[account]
    function = deployment.functions[logical]
    probe = Probe(stack, function, capture_only=capture_only, hold=hold)
    targets: list[Any] = [r for r in deployment.rules if r.function is function]
    targets += [m for m in deployment.streams if m.function is function]
    targets += [m for m in deployment.queues if m.function is function]
    if not targets:
        raise BenchError(f"{logical} in {account} has no rule or stream mapping to probe")
    for target in targets:
        target.function = probe
    try:
        yield probe
    finally:
        for target in targets:
            target.function = function


class Owners:
    """Owner-side steps, played with the scenario player's own step functions (the same calls as `make demo`)."""

    def __init__(self, stack: LocalStack) -> None:
        scenario = Scenario(
            name="bench",
            accounts={alias: AccountSpec(id=account) for alias, account in ACCOUNTS.items()},
            steps=[],
        )
        self._player = Player(scenario, stack)

    def create_pipeline(self, owner: str, name: str) -> str:
        STEP_KINDS["create_pipeline"](self._player, {"account": owner, "name": name})
        return self._player.resource_arn(f"pipeline:{name}")

    def share_new_pipeline(self, owner: str, consumer: str, name: str) -> None:
        STEP_KINDS["create_pipeline"](self._player, {"account": owner, "name": name})
        STEP_KINDS["share"](
            self._player,
            {"account": owner, "name": f"{name}-share", "resources": [f"pipeline:{name}"], "principals": [consumer]},
        )


def _is_pending_invitation(event: dict[str, Any], account: str) -> bool:
    return (
        event.get("account") == account
        and event.get("detail-type") == "Resource Sharing State Change"
        and event.get("detail", {}).get("event") == "Resource Share Invitation"
        and event.get("detail", {}).get("status") == "pending"
    )


def _result_of(run: ProbeRun) -> dict[str, Any]:
    if run.invocation.error is not None:
        raise BenchError(f"{run.invocation.function} ({run.trigger}) failed: {run.invocation.error}")
    return run.invocation.result if isinstance(run.invocation.result, dict) else {}


def owner_bus_arn(stack: LocalStack, owner: str) -> str:
    """The owner stack's OwnerBus (Name ${AWS::StackName}-owner), as a consumer's OwnerEventBusArn names it."""
    return f"arn:aws:events:{stack.region}:{owner}:event-bus/pipeshare-owner"


def deploy_owner_pair(
    stack: LocalStack, owners: Owners, owner: str, consumer: str, *, forward: bool, extra: dict[str, str] | None = None
) -> str:
    """As tests/integration/test_owner_tracking.py: the consumer is deployed (trusting the owner; forwarding to the
    owner's bus when `forward`), then the owner (Mode=owner) shares a new pipeline allow-execution with it through
    the template's own share; the consumer accepts and the owner's inventory records the grant. Returns the ARN."""
    pipeline = owners.create_pipeline(owner, f"bench-tracked-{consumer}")
    parameters = {"TrustedOwnerAccountIds": owner}
    if forward:
        parameters["OwnerEventBusArn"] = owner_bus_arn(stack, owner)
    stack.deploy(consumer, parameters)
    deployment = stack.deploy(
        owner,
        {
            "Mode": "owner",
            "SharedPipelineArns": pipeline,
            "ShareConsumerAccountIds": consumer,
            "SharePermission": "allow-execution",
            "ForwarderAccountIds": consumer,
            **(extra or {}),
        },
    )
    if forward and deployment.attributes.get(("OwnerBus", "Arn")) != parameters["OwnerEventBusArn"]:
        raise BenchError(f"the owner bus is {deployment.attributes.get(('OwnerBus', 'Arn'))}, not {parameters}")
    stack.deliver()
    grants = [
        i
        for i in stack.table_items(owner, "OwnerTable")
        if i.get("sk", "").startswith("GRANT#") and i.get("consumer") == consumer and i.get("allow_execution")
    ]
    if len(grants) != 1:
        raise BenchError(f"expected one allow-execution grant of {consumer} in {owner}'s inventory, got {grants}")
    return pipeline


def _token(label: str) -> str:
    return f"bench-{label}".ljust(32, "0")[:128]


def start_execution(stack: LocalStack, consumer: str, pipeline: str, label: str) -> str:
    """The consumer starts the owner's pipeline by ARN (a new client token: a new execution)."""
    response = stack.client(consumer, "sagemaker").start_pipeline_execution(
        PipelineName=pipeline, ClientRequestToken=_token(label)
    )
    return str(response["PipelineExecutionArn"])


def owner_alerts(stack: LocalStack, owner: str, execution: str) -> list[dict[str, Any]]:
    """The execution alerts readable from the owner's OwnerTopic (its tap queue is drained)."""
    return [
        n
        for n in stack.read_notifications(owner)
        if n["topic"] == "OwnerTopic"
        and isinstance(n["message"], dict)
        and str(n["message"].get("schema", "")).startswith(ALERT_SCHEMA)
        and str(n["message"].get("execution_arn", "")).lower() == execution.lower()
    ]


def _is_status_event(event: dict[str, Any], execution: str) -> bool:
    detail = event.get("detail", {})
    return (
        event.get("detail-type") == STATUS_CHANGE
        and str(detail.get("pipelineExecutionArn", "")).lower() == execution.lower()
    )


def _is_start_status(event: dict[str, Any], execution: str) -> bool:
    """The status event of the execution's start (Executing)."""
    return _is_status_event(event, execution) and event["detail"].get("currentPipelineExecutionStatus") == "Executing"


def _event_label(event: dict[str, Any]) -> str:
    detail = event.get("detail", {})
    if event.get("detail-type") == STATUS_CHANGE:
        return f"status event ({detail.get('currentPipelineExecutionStatus')})"
    if event.get("detail-type") == API_CALL:
        return f"CloudTrail record ({detail.get('eventName')})"
    return str(event.get("detail-type"))


def settle_period(stack: LocalStack, owner: str) -> timedelta:
    """InferenceSettleMinutes as the owner's tracker was deployed with it: the template's default (the bench passes
    no value; a deployment that differs is an error of the measurement)."""
    default = float(stack.template["Parameters"]["InferenceSettleMinutes"]["Default"])
    deployed = float(stack.deployments[owner].functions[TRACK].environment["INFERENCE_SETTLE_MINUTES"])
    if deployed != default:
        raise BenchError(f"the tracker runs with InferenceSettleMinutes={deployed:g}, not the default {default:g}")
    return timedelta(minutes=deployed)


def _tracked(run: ProbeRun) -> list[dict[str, Any]]:
    """The outcomes a tracking invocation logged ('execution event tracked': one per event, or per SQS record of a
    settle batch), for a handler whose return value does not carry them (SettleAttributionFunction's batch
    response)."""
    if run.invocation.error is not None:
        raise BenchError(f"{run.invocation.function} ({run.trigger}) failed: {run.invocation.error}")
    failures = (run.invocation.result or {}).get("batchItemFailures") if isinstance(run.invocation.result, dict) else []
    if failures:
        raise BenchError(f"{run.invocation.function} ({run.trigger}) reported failed records: {failures}")
    keys = ("status", "reason", "execution_arn", "source", "initiator_account", "alerts", "settling")
    return [
        {k: log.get(k) for k in keys} for log in run.invocation.logs if log.get("message") == "execution event tracked"
    ]


def _settles_of(runs: list[ProbeRun], execution: str) -> list[tuple[ProbeRun, dict[str, Any]]]:
    """(settle invocation, its outcome for the execution) for every settle batch that carried the execution."""
    return [
        (run, outcome)
        for run in runs
        for outcome in _tracked(run)
        if str(outcome.get("execution_arn") or "").lower() == execution.lower()
    ]


def _execution_of(event: dict[str, Any]) -> str:
    return str(event.get("detail", {}).get("pipelineExecutionArn", "")).lower()


def _is_step_end(event: dict[str, Any], execution: str) -> bool:
    return (
        event.get("detail-type") == STEP_CHANGE
        and _execution_of(event) == execution.lower()
        and event.get("detail", {}).get("currentStepStatus") in ENDED
    )


def _is_execution_end(event: dict[str, Any], execution: str) -> bool:
    return _is_status_event(event, execution) and event["detail"].get("currentPipelineExecutionStatus") in ENDED


def define_steps(stack: LocalStack, owner: str, pipeline: str, steps: list[StepSpec] | tuple[StepSpec, ...]) -> None:
    """The steps of the pipeline's executions started from now on."""
    stack.sagemaker.define_steps(owner, stack.region, pipeline.rsplit("/", 1)[1], list(steps))


def many_steps(count: int = MANY_STEPS) -> list[StepSpec]:
    """Short steps (1 s; a cache hit takes none): Processing, Training, Condition in turn, a few served from cache."""
    specs = []
    for index in range(count):
        name = f"Step{index:03d}"
        if index in MANY_STEPS_CACHE_HITS:
            specs.append(StepSpec(name=name, type="Processing", duration_seconds=0, cache_hit=True))
        else:
            kind = ("Processing", "Training", "Condition")[index % 3]
            specs.append(StepSpec(name=name, type=kind, duration_seconds=1))
    return specs


def listed_steps(stack: LocalStack, owner: str, execution: str) -> tuple[list[dict[str, Any]], int]:
    """The execution's steps as the estimator lists them (every page of 100), read by the bench itself, outside any
    probe: the step pages and the jobs of the formula come from here, not from the calls being counted."""
    client = stack.client(owner, "sagemaker")
    steps: list[dict[str, Any]] = []
    pages = 0
    token = None
    while True:
        kwargs: dict[str, Any] = {"PipelineExecutionArn": execution, "MaxResults": STEPS_PAGE_SIZE}
        if token:
            kwargs["NextToken"] = token
        page = client.list_pipeline_execution_steps(**kwargs)
        pages += 1
        steps += page.get("PipelineExecutionSteps", [])
        token = page.get("NextToken")
        if not token:
            return steps, pages


def estimate_item(stack: LocalStack, owner: str, execution: str) -> dict[str, Any]:
    """The execution's ESTIMATE item in the owner table."""
    pk = f"EXECUTION#{execution.lower()}"
    items = stack.table_items(owner, "OwnerTable")
    return next((i for i in items if i.get("pk") == pk and i.get("sk") == "ESTIMATE"), {})


def _described(breakdown: dict[str, int]) -> int:
    return sum(n for op, n in breakdown.items() if op.startswith("sagemaker:Describe") and op.endswith("Job"))


def execution_record(stack: LocalStack, owner: str, execution: str) -> dict[str, Any]:
    """The execution's STATE item in the owner table."""
    pk = f"EXECUTION#{execution.lower()}"
    items = stack.table_items(owner, "OwnerTable")
    return next((i for i in items if i.get("pk") == pk and i.get("sk") == "STATE"), {})
