"""`make bench`: AWS calls, start-to-alert latency, cost-estimate calls, cold init ratio and peak RSS of the handlers.

Prints a markdown table (metric | handler | value | target | ok) and writes reports/bench.json.

Consumer side (consumers 222222222222 and 444444444444 deployed; the owners only share, through RAM):
1. AWS calls (deterministic), counted at the local stack's endpoint (`LocalStack.calls`). The real delivery path
   runs (RAM emits the event, the template's rule pattern matches it, stream records pass the template's filter), but
   the function on the rule / stream mapping is swapped for a probe that slices the endpoint's call log around each
   invocation, so the stack's own calls (stream polling, SQS taps) are never counted:
   - per accepted invitation: the acceptor's first invocation, on the pending-invitation event (target <= 4);
   - per notification: every NotifyDecisionsFunction invocation of the run, over the decisions it published (1);
   - per scheduled sweep with N = 1, 10, 50 invitations already HELD (untrusted owner), in a second consumer.
   - an invitation flood: FLOOD_SIZES pending invitations from an untrusted account (their events lost, so the
     sweep finds every one undecided), each size in a consumer of its own; one scheduled sweep per size runs in a
     fresh process (bench_child.py, the real handler against the running stack): its AWS calls per invitation
     (target <= FLOOD_CALLS_TARGET), its wall time (process start and imports included) against the function's
     Timeout in template.yaml, and its peak RSS, 1,000 next to 100 (flat: the ratio is reported).

Owner side (the stack is reset, then deployed as tests/integration/test_owner_tracking.py does: a consumer trusting
the owner, then the owner, Mode=owner, sharing a new pipeline allow-execution with that one consumer; the consumer
accepts and the owner's inventory records the grant; a second owner/consumer pair likewise, the consumer forwarding its
CloudTrail records to the owner's bus (OwnerEventBusArn). Both pipelines' executions run a one-day step, so none ends
while its start is tracked and settled; InferenceSettleMinutes is the template's default, 10):
2. AWS calls per consumer-start alert, with the same probes (the SettleAttributionFunction probe stands on its SQS
   mapping and sees the batches): the consumer (no forwarder) starts the owner's pipeline by ARN. Counted: the
   TrackExecutionsFunction invocation on the status event (it records the start `unknown` and sends a settle request
   to SettleQueue, no alert due; target <= 3); then, after stack.advance(settle period) on the scenario clock, the
   SettleAttributionFunction invocation that infers the start from the grants and makes its alert due (target <= 7,
   the trail check - DescribeTrails, GetTrailStatus, GetEventSelectors - included: its answer is cached 15 minutes
   per warm container, and the local stack starts a fresh container when another function ran in between: the row
   says which it was); then every NotifyOwnerFunction invocation over the alerts it published (1, sns:Publish).
   Informational, with the forwarding pair: the tracker invocation on the forwarded StartPipelineExecution record
   (DescribePipelineExecution verification; it makes the alert due at once, and projects the start: the execution's
   definition, the pipeline's finished runs, the Price List lookup's rates), as the local stack delivers it (after
   the status event, one bus hop later, with CloudTrail delay 0: the status event sends a settle request, which finds
   the start claimed once the period has passed) and delivered first (the two events captured, then invoked in that
   order, as EventBridge may deliver them; the status event then sends no settle request).
3. Start-to-alert latency on the local stack, a new client token (a new execution) each run, median of >= 5 runs
   (--latency-runs, default 7), no waiting on real time beyond the local processing:
   - the real-time path, the consumer WITH the forwarder (the alert is due on the forwarded record): wall time from
     just before the StartPipelineExecution call until the alert is readable from the owner's OwnerTopic
     (stack.deliver() then read_notifications, repeated), the real functions in place;
   - the inferred path, the consumer without the forwarder: the scenario-time delay (the settle period, measured on
     the stack's clock from the start call to the settle invocation), and the wall time from the start of the
     SettleAttributionFunction invocation, once stack.advance reaches the settle request's due time, until the alert
     is readable (the settle function probed only to time it).

Owner side, cost estimates (EstimateCostFunction, on the first owner's pipeline, after the measurements above):
4. AWS calls per finalised estimate: the pipeline runs the steps of tests/integration/test_owner_costs.py
   (stack.sagemaker.define_steps: processing x2 instances, spot training, condition, cache hit); the consumer starts
   it by ARN, the owner starts it too; stack.advance runs the steps to the end. The estimator is probed (first
   attempts only): the invocation on the terminal Execution Status Change is counted, by operation, next to the
   issue's target `1 + step pages + jobs`, whose pages (ListPipelineExecutionSteps, pages of 100) and jobs (distinct
   jobs of the steps not served from cache, as the estimator describes them) come from the bench's own listing of
   the execution's steps, outside the probe. ok only when measured <= 1 + pages + jobs.
5. AWS calls per step-end update (running estimate): the first step-ended invocation of the consumer execution that
   counted a job (expected dynamodb:Query, one sagemaker:Describe*Job, dynamodb:TransactWriteItems).
6. One estimate of an execution of 200 short steps (1 s; Processing, Training, Condition in turn; 4 served from
   cache) in one invocation: the consumer starts it, one stack.advance runs every step; the finalising invocation is
   reported: no error and the ESTIMATE item final, its wall time (in-process, against the local endpoint), its calls
   next to 1 + pages (2) + jobs, the estimate total. The step-ended events are held back by default (the finalising
   invocation counts every job itself: the most work it can get, as when step events are lost); with
   --deliver-step-ends they reach the estimator first (each counts its job; minutes more on the local stack, where
   moto deep-copies the table for each item of each TransactWriteItems).

Both sides:
7. Cold init ratio: fresh processes (bench_child.py): import the handler module as Lambda does + build its adapters'
   boto3 clients, versus `import boto3` + the baseline's clients; medians of >= 7 runs each (after one warm-up run).
   AcceptInvitationsFunction: RAM gateway + share repository vs ram, dynamodb; NotifyDecisionsFunction: notifier vs
   sns; TrackExecutionsFunction: execution repository + grant repository + execution gateway + settle scheduler +
   cost repository vs dynamodb, sagemaker, sqs; SettleAttributionFunction: execution repository + grant repository +
   trail status + cost repository vs dynamodb, cloudtrail;
   OwnerInventoryFunction: owner RAM gateway + grant repository vs ram, dynamodb; EstimateCostFunction: cost
   repository + cost gateway (get_cost_repository(table), get_cost_gateway()) vs dynamodb, sagemaker.
8. Peak RSS: a fresh process imports the handler and runs ONE real invocation against the running local stack (the
   tracker on a real status event of a new consumer start, captured from the stack; the settler on the SQS batch
   carrying that start's settle request, captured once the settle period has passed; the inventory on the scheduled
   event of its Reconcile rule; the estimator on the terminal status event of a new consumer execution of the
   test's steps, its step-ended events captured too, so that invocation describes and counts every job).

Timing and memory are informational: the exit status is non-zero only when a measurement could not be taken.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeshare_local.runtime import Invocation, LocalFunction
from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.scenario import STEP_KINDS, AccountSpec, Player, Scenario
from pipeshare_local.stack import LocalStack
from pipeshare_local.template import ROOT

ACCEPT = "AcceptInvitationsFunction"
NOTIFY = "NotifyDecisionsFunction"
TRACK = "TrackExecutionsFunction"
SETTLE = "SettleAttributionFunction"
NOTIFY_OWNER = "NotifyOwnerFunction"
INVENTORY = "OwnerInventoryFunction"
ESTIMATE = "EstimateCostFunction"
WATCH = "WatchBudgetsFunction"
CONSUMER_HANDLERS = (ACCEPT, NOTIFY)
OWNER_HANDLERS = (TRACK, SETTLE, INVENTORY, ESTIMATE)
# consumer side (no owner stack deployed)
OWNER = "111111111111"  # trusted owner
CONSUMER = "222222222222"
UNTRUSTED_OWNER = "333333333333"
SWEEP_CONSUMER = "444444444444"  # a second consumer, so the sweep sees only the held invitations
# owner side (the stack is reset first): two owner/consumer pairs, one allow-execution consumer per pipeline (with
# two, a start inferred from the status event is ambiguous)
TRACKED_OWNER = "555555555555"
STARTER = "666666666666"  # no forwarder: the owner learns of its starts from the status event only
FORWARDING_OWNER = "777777777777"
FORWARDER = "888888888888"  # forwards its CloudTrail records to the owner's bus (OwnerEventBusArn)
ACCOUNTS = {
    "owner": OWNER,
    "consumer": CONSUMER,
    "untrusted": UNTRUSTED_OWNER,
    "sweeper": SWEEP_CONSUMER,
    "tracked_owner": TRACKED_OWNER,
    "starter": STARTER,
    "forwarding_owner": FORWARDING_OWNER,
    "forwarder": FORWARDER,
}
CONSUMER_PARAMETERS = {"TrustedOwnerAccountIds": OWNER}
SWEEP_SIZES = (1, 10, 50)
FLOOD_SIZES = (100, 1000)
FLOOD_CONSUMERS = {100: "101010101010", 1000: "121212121212"}
FLOOD_CALLS_TARGET = 3  # AWS calls per invitation of a flood sweep (target)
STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
STEP_CHANGE = "SageMaker Model Building Pipeline Execution Step Status Change"
ENDED = ("Succeeded", "Failed", "Stopped")  # terminal step and execution statuses (the estimator's rule patterns)
API_CALL = "AWS API Call via CloudTrail"
ALERT_SCHEMA = "pipeshare.owner.execution-alert"

CALLS_TARGET = 4
# per notification: the item's mark read (GetItem), the publish, the mark written (PutItem)
PUBLISH_ONCE_CALLS = {"dynamodb:GetItem": 1, "sns:Publish": 1, "dynamodb:PutItem": 1}
NOTIFY_CALLS_TARGET = 3
TRACK_CALLS_TARGET = 3  # the status event of an unclaimed start: GetItem, SendMessage (settle), TransactWriteItems
# the settle: GetItem, Query, DescribeTrails, GetTrailStatus, GetEventSelectors, GetItem, TWI; + one TWI that moves the
# spend the running tick has counted already to the consumer (a run whose step is still running at the settle)
SETTLE_CALLS_TARGET = 8
TRAIL_CALLS = ("cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors")
TRAIL_CACHE_NOTE = "trail check cached 15 min per warm container"
OWNER_NOTIFY_CALLS_TARGET = 3  # as NOTIFY_CALLS_TARGET
ESTIMATE_CALLS_TARGET = "1 + step pages + jobs"  # per finalised estimate (the issue's target)
# dynamodb:Query, one sagemaker:Describe*Job, dynamodb:BatchGetItem (cached Price List answers), TransactWriteItems
STEP_END_CALLS_EXPECTED = 4
STEPS_PAGE_SIZE = 100  # ListPipelineExecutionSteps MaxResults, as SageMakerCostGateway.list_steps reads them
# the steps of tests/integration/test_owner_costs.py: processing x2 instances, spot training, condition, cache hit
COST_STEPS = (
    StepSpec(
        name="Preprocess", type="Processing", duration_seconds=300, instance_type="ml.m5.xlarge", instance_count=2
    ),
    StepSpec(name="Train", type="Training", duration_seconds=600, instance_type="ml.m5.xlarge", spot=True),
    StepSpec(name="CheckAccuracy", type="Condition", duration_seconds=1),
    StepSpec(name="Features", type="Processing", cache_hit=True),
)
COST_RUN = timedelta(minutes=20)  # scenario time until a COST_STEPS execution has ended
MANY_STEPS = 200
MANY_STEPS_CACHE_HITS = (25, 75, 125, 175)  # indexes of the steps served from cache
LATENCY_TARGET_S = 2.0
LATENCY_TIMEOUT_S = 30.0  # one run gives up (an error) when the alert is not readable by then
SETTLE_LEAD = timedelta(seconds=5)  # the inferred path: the last scenario seconds before the settle is due, timed
SETTLE_OVERRUN = timedelta(minutes=1)  # scenario time past the settle period before a run gives up (an error)
# the tracked pipeline's executions run for a day: none ends (no estimate, no spend to move) while starts settle
TRACKING_STEPS = (StepSpec(name="Train", type="Training", duration_seconds=24 * 3600),)
INIT_RATIO_TARGET = 1.25
RSS_TARGET_MB = 100.0
WARMUP_RUNS = 1  # per variant, discarded (bytecode and page caches)
CHILD_TIMEOUT = 120

CHILD = Path(__file__).with_name("bench_child.py")
LAYER = ROOT / "layers" / "common"
DEFAULT_OUT = ROOT / "reports" / "bench.json"
# handler -> (boto3 services of the baseline, the handler's adapters built by bench_child.py)
INIT_CLIENTS = {
    ACCEPT: (("ram", "dynamodb"), ("ram", "shares")),
    NOTIFY: (("sns",), ("notifier",)),
    TRACK: (
        ("dynamodb", "sagemaker", "sqs"),
        ("executions", "grants", "execution_gateway", "settle_scheduler", "costs"),
    ),
    SETTLE: (("dynamodb", "cloudtrail"), ("executions", "grants", "trail", "costs")),
    INVENTORY: (("ram", "dynamodb"), ("owner_ram", "grants")),
    ESTIMATE: (("dynamodb", "sagemaker"), ("costs", "cost_gateway")),
}


class BenchError(Exception):
    """A measurement could not be taken (the harness, or the code it exercises, did not behave)."""


def _progress(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------- call accounting
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


# ---------------------------------------------------------------------------------------------- 1. AWS calls
def measure_accept_calls(stack: LocalStack, owners: Owners, names: OperationNames) -> dict[str, Any]:
    """The trusted owner shares a pipeline; the RAM event is delivered; the acceptor's first invocation is counted."""
    owners.share_new_pipeline("owner", "consumer", "bench-accepted")
    with probing(stack, CONSUMER, ACCEPT) as acceptor:
        stack.deliver()
    if not acceptor.runs:
        raise BenchError("the pending-invitation event did not reach AcceptInvitationsFunction")
    first, *later = acceptor.runs
    if not _is_pending_invitation(first.event, CONSUMER):
        raise BenchError(f"the acceptor's first invocation was not the pending-invitation event: {first.event}")
    result = _result_of(first)
    if result.get("accepted") != 1:
        raise BenchError(f"the invitation from the trusted owner was not accepted: {result}")
    echoes = [
        {
            "trigger": run.trigger,
            "event_status": run.event.get("detail", {}).get("status"),
            "calls": len(run.calls),
            "by_operation": names.breakdown(run.calls),
            "result": run.invocation.result,
            "error": run.invocation.error,
        }
        for run in later
    ]
    return {
        "calls": len(first.calls),
        "by_operation": names.breakdown(first.calls),
        "sequence": [names.label(s, o) for _, s, o in first.calls],
        "calls_from_other_accounts": first.foreign_calls,
        "result": result,
        "later_invocations": echoes,
    }


def measure_sweep_calls(stack: LocalStack, owners: Owners, names: OperationNames) -> list[dict[str, Any]]:
    """N invitations from an untrusted owner, held on their events; then one scheduled sweep is counted."""
    shared = 0
    sweeps = []
    for size in SWEEP_SIZES:
        while shared < size:
            shared += 1
            owners.share_new_pipeline("untrusted", "sweeper", f"bench-held-{shared:03d}")
        stack.deliver()  # events leave untrusted senders to the sweep
        stack.run_schedule(SWEEP_CONSUMER)  # the sweep holds each new one (and the notifier publishes HELD)
        held = [i for i in stack.table_items(SWEEP_CONSUMER) if i.get("sk") == "STATE" and i.get("status") == "HELD"]
        if len(held) != size:
            raise BenchError(f"expected {size} HELD invitations before the sweep, found {len(held)}")
        with probing(stack, SWEEP_CONSUMER, ACCEPT) as acceptor:
            stack.run_schedule(SWEEP_CONSUMER)
        runs = [r for r in acceptor.runs if r.trigger.startswith("schedule:")]
        if len(runs) != 1:
            raise BenchError(f"expected one scheduled sweep invocation, got {len(runs)}")
        result = _result_of(runs[0])
        if result.get("seen") != size:
            raise BenchError(f"the sweep saw {result.get('seen')} invitations, expected {size}: {result}")
        sweeps.append(
            {
                "held_invitations": size,
                "calls": len(runs[0].calls),
                "by_operation": names.breakdown(runs[0].calls),
                "calls_from_other_accounts": runs[0].foreign_calls,
                "result": result,
            }
        )
    return sweeps


def _function_timeout(function: LocalFunction) -> float:
    from pipeshare_local.template import load_template

    template = load_template()
    props = template["Resources"][function.logical_id]["Properties"]
    return float(props.get("Timeout") or template["Globals"]["Function"]["Timeout"])


def measure_flood(stack: LocalStack, owners: Owners, names: OperationNames) -> dict[str, Any]:
    """FLOOD_SIZES untrusted invitations per consumer, events lost; one sweep each in a fresh process."""
    for consumer in FLOOD_CONSUMERS.values():
        stack.deploy(consumer, CONSUMER_PARAMETERS)
    pipeline = owners.create_pipeline("untrusted", "bench-flood")
    ram = stack.client(UNTRUSTED_OWNER, "ram")
    for n in range(max(FLOOD_SIZES)):
        principals = [c for size, c in FLOOD_CONSUMERS.items() if n < size]
        stack.drop_next_events(1 + len(principals))  # an invitation event per principal and one to the owner
        ram.create_resource_share(name=f"bench-flood-{n:04d}", resourceArns=[pipeline], principals=principals)
    stack.deliver()
    function = stack.deployments[FLOOD_CONSUMERS[max(FLOOD_SIZES)]].functions[ACCEPT]
    timeout = _function_timeout(function)
    runs: dict[str, Any] = {"timeout_seconds": timeout}
    for size, consumer in FLOOD_CONSUMERS.items():
        with probing(stack, consumer, ACCEPT, capture_only=True) as acceptor:
            stack.run_schedule(consumer)
        if len(acceptor.captured) != 1:
            raise BenchError(f"expected one captured sweep event for {consumer}, got {len(acceptor.captured)}")
        started = time.perf_counter()
        data = measure_peak_rss(stack, stack.deployments[consumer].functions[ACCEPT], acceptor.captured[0], names)
        seconds = time.perf_counter() - started
        result = data.get("result") or {}
        if data.get("error") or result.get("held") != size:
            raise BenchError(f"the flood sweep of {size} did not hold them all: {data.get('error') or result}")
        calls = sum(data["endpoint_calls"].values())
        runs[str(size)] = {
            "invitations": size,
            "calls": calls,
            "calls_per_invitation": calls / size,
            "by_operation": data["endpoint_calls"],
            "wall_seconds": seconds,
            "peak_rss_mb": data["peak_rss_mb"],
            "rss_after_import_mb": data.get("rss_after_import_mb"),
            "result": result,
        }
        stack.deliver()  # publish what the sweep recorded (not measured)
    small, large = str(min(FLOOD_SIZES)), str(max(FLOOD_SIZES))
    runs["rss_ratio_large_to_small"] = runs[large]["peak_rss_mb"] / runs[small]["peak_rss_mb"]
    return runs


def summarize_notify_calls(
    runs: list[ProbeRun], names: OperationNames, *, function: str = NOTIFY, metric: str = "DecisionNotified"
) -> dict[str, Any]:
    errors = [r.invocation.error for r in runs if r.invocation.error]
    notified = int(sum(r.invocation.metrics.get(metric, 0) for r in runs))
    calls = [c for r in runs for c in r.calls]
    if not notified:
        raise BenchError(f"{function} published nothing ({len(runs)} invocations, errors: {errors})")
    return {
        "invocations": len(runs),
        "records": sum(len(r.event.get("Records", [])) for r in runs),
        "notifications": notified,
        "calls": len(calls),
        "calls_per_notification": len(calls) / notified,
        "by_operation": names.breakdown(calls),
        "errors": errors,
    }


# ---------------------------------------------------------------------------------------------- owner side
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


def _is_start_record(event: dict[str, Any]) -> bool:
    return event.get("detail-type") == API_CALL and event.get("detail", {}).get("eventName") == "StartPipelineExecution"


def _event_label(event: dict[str, Any]) -> str:
    detail = event.get("detail", {})
    if event.get("detail-type") == STATUS_CHANGE:
        return f"status event ({detail.get('currentPipelineExecutionStatus')})"
    if event.get("detail-type") == API_CALL:
        return f"CloudTrail record ({detail.get('eventName')})"
    return str(event.get("detail-type"))


def _track_summary(run: ProbeRun, names: OperationNames) -> dict[str, Any]:
    result = _result_of(run)
    return {
        "trigger": run.trigger,
        "event": _event_label(run.event),
        "calls": len(run.calls),
        "by_operation": names.breakdown(run.calls),
        "sequence": [names.label(s, o) for _, s, o in run.calls],
        "calls_from_other_accounts": run.foreign_calls,
        "result": result,
    }


def _concerning(runs: list[ProbeRun], execution: str) -> list[ProbeRun]:
    for run in runs:
        _result_of(run)  # a failed invocation is an error of the measurement
    return [r for r in runs if str(_result_of(r).get("execution_arn") or "").lower() == execution.lower()]


def _alerting(run: ProbeRun) -> bool:
    return "start" in (_result_of(run).get("alerts") or [])


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


def _settle_summary(run: ProbeRun, outcome: dict[str, Any], names: OperationNames) -> dict[str, Any]:
    breakdown = names.breakdown(run.calls)
    return {
        "trigger": run.trigger,
        "records": len(run.event.get("Records", [])),
        "calls": len(run.calls),
        "by_operation": breakdown,
        "sequence": [names.label(s, o) for _, s, o in run.calls],
        "calls_from_other_accounts": run.foreign_calls,
        "trail_checked": any(op in breakdown for op in TRAIL_CALLS),  # False: the warm container's cached answer
        "wall_ms": run.seconds * 1000,
        "outcome": outcome,
    }


def _settles_of(runs: list[ProbeRun], execution: str) -> list[tuple[ProbeRun, dict[str, Any]]]:
    """(settle invocation, its outcome for the execution) for every settle batch that carried the execution."""
    return [
        (run, outcome)
        for run in runs
        for outcome in _tracked(run)
        if str(outcome.get("execution_arn") or "").lower() == execution.lower()
    ]


def measure_inferred_start_calls(
    stack: LocalStack, owner: str, consumer: str, pipeline: str, settle: timedelta, names: OperationNames
) -> dict[str, Any]:
    """The consumer (no forwarder) starts the pipeline; the owner learns of it from the status event only. Counted:
    the tracker invocation on the status event (it records the start `unknown` and sends the settle request, no alert
    due), then, after stack.advance(settle period) on the scenario clock, the SettleAttributionFunction invocation
    (an SQS batch) that infers the start from the grants and makes its alert due, then every NotifyOwnerFunction
    invocation over the alerts it published."""
    with (
        probing(stack, owner, TRACK) as tracker,
        probing(stack, owner, SETTLE) as settler,
        probing(stack, owner, NOTIFY_OWNER) as notifier,
    ):
        execution = start_execution(stack, consumer, pipeline, "calls-inferred")
        stack.deliver()
        early = owner_alerts(stack, owner, execution)
        stack.advance(settle)
    if early:
        raise BenchError(f"an alert was published before the settle period had passed: {early[0]['message']}")
    runs = _concerning(tracker.runs, execution)
    status = [r for r in runs if _is_start_status(r.event, execution)]
    if len(status) != 1:
        raise BenchError(f"expected one status event for the start, got {[_event_label(r.event) for r in runs]}")
    result = _result_of(status[0])
    if result.get("source") != "unknown" or result.get("alerts") or result.get("settling") != ["start"]:
        raise BenchError(f"the status event did not record the start unclaimed and schedule its settle: {result}")
    settles = _settles_of(settler.runs, execution)
    alerting = [(r, o) for r, o in settles if "start" in (o.get("alerts") or [])]
    if len(alerting) != 1:
        raise BenchError(f"expected one settle invocation making the start alert due, got {len(alerting)}: {settles}")
    run, outcome = alerting[0]
    if (outcome.get("source"), outcome.get("initiator_account")) != ("inferred", consumer):
        raise BenchError(f"the settled start was not inferred to be {consumer}'s: {outcome}")
    if len(_tracked(run)) != 1:
        raise BenchError(f"the settle batch carried {len(_tracked(run))} records: its calls are not one start's")
    alerts = owner_alerts(stack, owner, execution)
    if len(alerts) != 1:
        raise BenchError(f"expected one start alert on the owner's OwnerTopic, got {len(alerts)}")
    return {
        "execution_arn": execution,
        "settle_minutes": settle.total_seconds() / 60,
        "track": _track_summary(status[0], names),
        "other_tracker_invocations": [_track_summary(r, names) for r in runs if r is not status[0]],
        "settle": _settle_summary(run, outcome, names),
        "other_settle_invocations": [_settle_summary(r, o, names) for r, o in settles if r is not run],
        "notify": summarize_notify_calls(notifier.runs, names, function=NOTIFY_OWNER, metric="OwnerNotified"),
        "alert_attribution": alerts[0]["message"].get("attribution", {}).get("source"),
    }


def measure_forwarded_start_calls(
    stack: LocalStack, owner: str, consumer: str, pipeline: str, settle: timedelta, names: OperationNames
) -> dict[str, Any]:
    """A consumer with the forwarder starts the pipeline; the tracker invocation on the forwarded CloudTrail record
    (DescribePipelineExecution verification; it makes the start alert due at once) is counted, in both orders:
    - as the local stack delivers (CloudTrail delay 0; the forwarded record takes one more hop, the consumer's bus to
      the owner's): the owner's status event first (the start is recorded unclaimed, a settle request is sent), then
      the forwarded record (it claims the start: the alert); after the settle period the settle finds it claimed;
    - forwarded record first (EventBridge does not order the two): the same two events, captured, then invoked in
      that order; the status event then finds the start claimed (no settle request)."""
    with (
        probing(stack, owner, TRACK) as tracker,
        probing(stack, owner, SETTLE) as settler,
        probing(stack, owner, NOTIFY_OWNER) as notifier,
    ):
        execution = start_execution(stack, consumer, pipeline, "calls-forwarded")
        stack.deliver()
        notify_calls = len([c for r in notifier.runs for c in r.calls])
        stack.advance(settle)  # the settle request of the status event, if it sent one, comes due
    runs = _concerning(tracker.runs, execution)
    forwarded = [r for r in runs if _is_start_record(r.event) and r.trigger.endswith("Forwarded")]
    status = [r for r in runs if _is_start_status(r.event, execution)]
    if len(forwarded) != 1 or len(status) != 1:
        raise BenchError(f"expected one status event and one forwarded record, got {[r.trigger for r in runs]}")
    if [r for r in runs if _alerting(r)] != forwarded or _result_of(forwarded[0]).get("source") != "forwarded":
        raise BenchError(f"the forwarded record did not make a forwarded start alert due: {_result_of(forwarded[0])}")
    alerts = owner_alerts(stack, owner, execution)
    if len(alerts) != 1:
        raise BenchError(f"expected one start alert on the owner's OwnerTopic, got {len(alerts)}")
    settles = _settles_of(settler.runs, execution)
    if any(o.get("alerts") for _, o in settles):
        raise BenchError(f"the settle of a claimed start made an alert due: {settles}")
    as_delivered = {
        "execution_arn": execution,
        "order": [_event_label(r.event) for r in runs if r in (*forwarded, *status)],
        "forwarded": _track_summary(forwarded[0], names),
        "status": _track_summary(status[0], names),
        "settles": [_settle_summary(r, o, names) for r, o in settles],
        "notify_calls": notify_calls,
        "alert_attribution": alerts[0]["message"].get("attribution", {}).get("source"),
    }
    with probing(stack, owner, TRACK, capture_only=True) as capture:
        execution = start_execution(stack, consumer, pipeline, "calls-forwarded-first")
        stack.deliver()
    captured = list(zip(capture.captured_triggers, capture.captured, strict=True))
    records = [(t, e) for t, e in captured if _is_start_record(e) and t.endswith("Forwarded")]
    statuses = [(t, e) for t, e in captured if _is_start_status(e, execution)]
    if len(records) != 1 or len(statuses) != 1:
        raise BenchError(f"expected one status event and one forwarded record, got {[t for t, _ in captured]}")
    with probing(stack, owner, TRACK) as tracker, probing(stack, owner, NOTIFY_OWNER) as notifier:
        for trigger, event in (records[0], statuses[0]):
            tracker.invoke_once(event, trigger=trigger)
        stack.deliver()
    first, then = tracker.runs
    if not _alerting(first) or _result_of(first).get("source") != "forwarded":
        raise BenchError(f"the forwarded record, first, did not make a forwarded start alert due: {first.invocation}")
    if _alerting(then) or _result_of(then).get("settling"):
        raise BenchError(f"the status event, after the forwarded record, alerted or sent a settle: {_result_of(then)}")
    alerts = owner_alerts(stack, owner, execution)
    if len(alerts) != 1:
        raise BenchError(f"expected one start alert on the owner's OwnerTopic, got {len(alerts)}")
    return {
        "as_delivered": as_delivered,
        "forwarded_first": {
            "execution_arn": execution,
            "forwarded": _track_summary(first, names),
            "status": _track_summary(then, names),
            "notify_calls": len([c for r in notifier.runs for c in r.calls]),
            "alert_attribution": alerts[0]["message"].get("attribution", {}).get("source"),
        },
    }


def measure_start_to_alert(stack: LocalStack, owner: str, consumer: str, pipeline: str, runs: int) -> dict[str, Any]:
    """The real-time path: a consumer WITH the forwarder; the alert is due on the forwarded record. Wall time from
    just before the consumer's StartPipelineExecution call to the moment the alert is readable from the owner's
    topic: deliver (rules -> TrackExecutionsFunction on the status event and on the forwarded record -> table stream
    -> NotifyOwnerFunction -> SNS -> tap queue), read, repeat until the alert is there. The real functions run (no
    probes); no scenario time passes but what the wall clock ticks."""
    samples = []
    for index in range(runs):
        before = len(stack.calls(owner, functions_only=True))
        started = time.perf_counter()
        execution = start_execution(stack, consumer, pipeline, f"latency-{index}")
        start_call = time.perf_counter() - started
        delivering = reading = 0.0
        rounds = 0
        while True:
            mark = time.perf_counter()
            stack.deliver()
            delivering += time.perf_counter() - mark
            mark = time.perf_counter()
            alerts = owner_alerts(stack, owner, execution)
            reading += time.perf_counter() - mark
            rounds += 1
            if alerts:
                break
            if time.perf_counter() - started > LATENCY_TIMEOUT_S:
                raise BenchError(f"run {index}: no alert readable {LATENCY_TIMEOUT_S:g} s after the start call")
        elapsed = time.perf_counter() - started
        attribution = alerts[0]["message"].get("attribution", {}).get("source")
        if attribution != "forwarded":
            raise BenchError(f"run {index}: the alert was not made due by the forwarded record: {attribution}")
        calls = stack.calls(owner, functions_only=True)[before:]
        samples.append(
            {
                "seconds": elapsed,
                "start_call_s": start_call,
                "deliver_s": delivering,
                "read_s": reading,
                "deliver_rounds": rounds,
                "owner_function_calls": [op for _, _, op in calls],
                "attribution": attribution,
            }
        )
    totals = [s["seconds"] for s in samples]
    return {
        "path": "forwarded",
        "runs": runs,
        "median_s": statistics.median(totals),
        "min_s": min(totals),
        "max_s": max(totals),
        "start_call_median_s": statistics.median(s["start_call_s"] for s in samples),
        "deliver_median_s": statistics.median(s["deliver_s"] for s in samples),
        "read_median_s": statistics.median(s["read_s"] for s in samples),
        "samples": samples,
    }


def measure_inferred_start_to_alert(
    stack: LocalStack, owner: str, consumer: str, pipeline: str, settle: timedelta, runs: int
) -> dict[str, Any]:
    """The inferred path: a consumer without the forwarder; the alert waits for the settle period, scenario time on
    the stack's clock (no real waiting). Per run: the start call and stack.deliver() (the tracker records the start
    and sends the settle request; wall time reported); stack.advance(settle period - SETTLE_LEAD), not timed
    (whatever else falls due on the way); then stack.advance(SETTLE_LEAD) over the settle request's due time
    (SettleAttributionFunction -> table stream -> NotifyOwnerFunction -> SNS -> tap queue) and read_notifications,
    until the alert is readable. Reported: the scenario delay, start call to the settle invocation (the stack's
    clock); the wall time from the settle invocation's start to the alert readable (the settle function is probed
    only to time its invocation: it runs as delivered); the wall time of the whole window, which also carries
    whatever else fell due in those last seconds (scheduled sweeps, the inventory)."""
    samples = []
    for index in range(runs):
        clock_start = stack.clock.now()
        started = time.perf_counter()
        execution = start_execution(stack, consumer, pipeline, f"latency-inferred-{index}")
        stack.deliver()
        tracked = time.perf_counter() - started
        stack.advance(settle - SETTLE_LEAD)
        if owner_alerts(stack, owner, execution):
            raise BenchError(f"run {index}: the alert was readable before the timed window (settle period not kept)")
        with probing(stack, owner, SETTLE) as settler:
            window = time.perf_counter()
            invocations = stack.advance(SETTLE_LEAD)
            alerts = owner_alerts(stack, owner, execution)
            overrun = timedelta(0)
            while not alerts:
                if overrun >= SETTLE_OVERRUN:
                    raise BenchError(f"run {index}: no alert readable {settle + overrun} of scenario time after start")
                invocations += stack.advance(timedelta(seconds=1))
                overrun += timedelta(seconds=1)
                alerts = owner_alerts(stack, owner, execution)
            readable = time.perf_counter()
        attribution = alerts[0]["message"].get("attribution", {}).get("source")
        if attribution != "inferred":
            raise BenchError(f"run {index}: the alert was not inferred: {attribution}")
        settled = [r for r, o in _settles_of(settler.runs, execution) if "start" in (o.get("alerts") or [])]
        if len(settled) != 1:
            raise BenchError(f"run {index}: expected one {SETTLE} invocation making the alert due, got {len(settled)}")
        settled_at = datetime.fromisoformat(settled[0].invocation.at)
        samples.append(
            {
                "seconds": readable - settled[0].started,
                "settle_invocation_s": settled[0].seconds,
                "window_s": readable - window,
                "track_s": tracked,
                "settle_at_scenario_s": (settled_at - clock_start).total_seconds(),
                "alert_readable_scenario_s": (stack.clock.now() - clock_start).total_seconds(),
                "overrun_s": overrun.total_seconds(),
                "window_invocations": [i.function for i in invocations],
                "attribution": attribution,
            }
        )
    totals = [s["seconds"] for s in samples]
    return {
        "path": "inferred",
        "runs": runs,
        "settle_minutes": settle.total_seconds() / 60,
        "median_s": statistics.median(totals),
        "min_s": min(totals),
        "max_s": max(totals),
        "settle_invocation_median_s": statistics.median(s["settle_invocation_s"] for s in samples),
        "window_median_s": statistics.median(s["window_s"] for s in samples),
        "track_median_s": statistics.median(s["track_s"] for s in samples),
        "settle_at_scenario_median_s": statistics.median(s["settle_at_scenario_s"] for s in samples),
        "samples": samples,
    }


def rss_track_event(stack: LocalStack, owner: str, consumer: str, pipeline: str) -> dict[str, Any]:
    """A real status event of a new consumer-started execution, captured on its way to the tracker."""
    with probing(stack, owner, TRACK, capture_only=True) as tracker:
        execution = start_execution(stack, consumer, pipeline, "rss")
        stack.deliver()
    events = [e for e in tracker.captured if _is_start_status(e, execution)]
    if len(events) != 1:
        raise BenchError(f"expected one status event for the RSS run, got {len(events)}")
    return events[0]


def _settle_targets(batch: dict[str, Any]) -> list[str]:
    targets = []
    for record in batch.get("Records", []):
        try:
            targets.append(str(json.loads(record.get("body", "")).get("execution_arn", "")).lower())
        except (ValueError, AttributeError):
            targets.append("")
    return targets


def rss_settle_event(stack: LocalStack, owner: str, execution: str, settle: timedelta) -> dict[str, Any]:
    """The SQS batch that carries the settle request of `execution` (sent by the tracker's RSS invocation), captured
    once the settle period has passed on the scenario clock (the mapping deletes the captured messages)."""
    with probing(stack, owner, SETTLE, capture_only=True) as settler:
        stack.advance(settle)
    batches = [b for b in settler.captured if execution.lower() in _settle_targets(b)]
    if len(batches) != 1 or _settle_targets(batches[0]) != [execution.lower()]:
        raise BenchError(f"expected one settle batch of one record for the RSS run, got {len(batches)}")
    return batches[0]


def execution_record(stack: LocalStack, owner: str, execution: str) -> dict[str, Any]:
    """The execution's STATE item in the owner table."""
    pk = f"EXECUTION#{execution.lower()}"
    items = stack.table_items(owner, "OwnerTable")
    return next((i for i in items if i.get("pk") == pk and i.get("sk") == "STATE"), {})


def rss_inventory_event(stack: LocalStack, owner: str) -> dict[str, Any]:
    """The scheduled event of the inventory's Reconcile rule, as the stack fires it, captured."""
    with probing(stack, owner, INVENTORY, capture_only=True) as inventory:
        stack.run_schedule(owner, rule_suffix="Reconcile")
    events = [e for e in inventory.captured if e.get("detail-type") == "Scheduled Event"]
    if len(events) != 1:
        raise BenchError(f"expected one scheduled event for the inventory RSS run, got {len(events)}")
    return events[0]


# ---------------------------------------------------------------------------------------------- owner side: costs
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


def start_owner_execution(stack: LocalStack, owner: str, pipeline: str, label: str) -> str:
    """The owner starts its own pipeline (by name): estimated, not counted as consumer spend."""
    response = stack.client(owner, "sagemaker").start_pipeline_execution(
        PipelineName=pipeline.rsplit("/", 1)[1], ClientRequestToken=_token(label)
    )
    return str(response["PipelineExecutionArn"])


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


def _finalising_summary(
    stack: LocalStack, run: ProbeRun, owner: str, execution: str, names: OperationNames
) -> dict[str, Any]:
    """The calls of the invocation on the terminal status event, next to 1 + step pages + jobs for the execution."""
    from pipeshare.logic.estimate import jobs_to_describe

    steps, pages = listed_steps(stack, owner, execution)
    jobs = len(jobs_to_describe(steps))  # distinct jobs of the steps not served from cache
    breakdown = names.breakdown(run.calls)
    formula = 1 + pages + jobs
    item = estimate_item(stack, owner, execution)
    result = run.invocation.result if isinstance(run.invocation.result, dict) else {}
    return {
        "execution_arn": execution,
        "trigger": run.trigger,
        "event": _event_label(run.event),
        "steps": len(steps),
        "step_pages": pages,
        "jobs": jobs,
        "calls": len(run.calls),
        "formula": formula,
        "within_formula": len(run.calls) <= formula,
        "over_formula": len(run.calls) - formula,
        "pages_read": breakdown.get("sagemaker:ListPipelineExecutionSteps", 0),
        "jobs_described": _described(breakdown),
        "by_operation": breakdown,
        "sequence": [names.label(s, o) for _, s, o in run.calls],
        "calls_from_other_accounts": run.foreign_calls,
        "wall_ms": run.seconds * 1000,
        "endpoint_ms": sum(run.endpoint_seconds.values()) * 1000,
        "endpoint_ms_by_operation": {op: t * 1000 for op, t in run.endpoint_seconds.items()},
        "result": result,
        "error": run.invocation.error,
        "estimate_final": item.get("final") is True,
        "estimate_total": None if item.get("total") is None else str(item["total"]),
        "estimate_complete": item.get("complete"),
    }


def _step_end_summary(runs: list[ProbeRun], names: OperationNames) -> dict[str, Any]:
    """The step-ended invocations of one execution: the calls of each one that counted a job."""
    errors = [r.invocation.error for r in runs if r.invocation.error]
    ok = [r for r in runs if r.invocation.error is None]
    counted = [r for r in ok if _result_of(r).get("status") == "counted"]
    summary: dict[str, Any] = {
        "invocations": len(runs),
        "counted": len(counted),
        "errors": errors,
        "calls_per_counted_invocation": dict(Counter(len(r.calls) for r in counted)),
        "not_counted": [
            {
                "step": r.event["detail"].get("stepName"),
                "status": _result_of(r).get("status"),
                "reason": _result_of(r).get("reason"),
                "calls": len(r.calls),
            }
            for r in ok
            if r not in counted
        ],
    }
    if counted:
        first = counted[0]
        breakdown = names.breakdown(first.calls)
        summary.update(
            {
                "step": first.event["detail"].get("stepName"),
                "calls": len(first.calls),
                "by_operation": breakdown,
                "sequence": [names.label(s, o) for _, s, o in first.calls],
                "max_calls": max(len(r.calls) for r in counted),
                "expected": len(first.calls) == STEP_END_CALLS_EXPECTED
                and breakdown.get("dynamodb:Query") == 1
                and _described(breakdown) == 1
                and breakdown.get("dynamodb:TransactWriteItems") == 1,
                "median_wall_ms": statistics.median(r.seconds for r in counted) * 1000,
            }
        )
    return summary


def measure_estimate_calls(
    stack: LocalStack, owner: str, consumer: str, pipeline: str, names: OperationNames
) -> dict[str, Any]:
    """The pipeline runs the steps of tests/integration/test_owner_costs.py; the consumer starts it by ARN and the
    owner starts it too; time advances until both end. EstimateCostFunction is probed: per execution, the invocation
    on the terminal status event (finalised) and the step-ended invocations (running estimate)."""
    define_steps(stack, owner, pipeline, COST_STEPS)
    with probing(stack, owner, ESTIMATE) as estimator:
        executions = {
            "consumer": start_execution(stack, consumer, pipeline, "cost-consumer"),
            "owner": start_owner_execution(stack, owner, pipeline, "cost-owner"),
        }
        stack.advance(COST_RUN)
    measured: dict[str, Any] = {}
    for label, execution in executions.items():
        runs = [r for r in estimator.runs if _execution_of(r.event) == execution.lower()]
        ends = [r for r in runs if _is_execution_end(r.event, execution)]
        if len(ends) != 1:
            raise BenchError(f"expected one terminal status event for the {label} execution, got {len(ends)}")
        result = _result_of(ends[0])
        if result.get("status") != "finalised":
            raise BenchError(f"the {label} execution's estimate was not finalised: {result}")
        if result.get("consumer") != (consumer if label == "consumer" else None):
            raise BenchError(f"the {label} execution was attributed to {result.get('consumer')}: {result}")
        final = _finalising_summary(stack, ends[0], owner, execution, names)
        if not final["estimate_final"]:
            raise BenchError(f"the {label} execution's ESTIMATE item is not final after the terminal event")
        step_end = _step_end_summary([r for r in runs if _is_step_end(r.event, execution)], names)
        if not step_end["counted"]:
            raise BenchError(f"no step-ended invocation counted a job of the {label} execution: {step_end}")
        measured[label] = {"finalised": final, "step_end": step_end}
    return measured


def measure_many_steps(
    stack: LocalStack, owner: str, consumer: str, pipeline: str, names: OperationNames, *, deliver_step_ends: bool
) -> dict[str, Any]:
    """A consumer execution of MANY_STEPS short steps runs to its end (one stack.advance past the sum of the steps);
    the finalising invocation (terminal status event, probed, first attempt only: no retry) is reported: error,
    estimate final, wall time, calls next to 1 + pages + jobs, the estimate total.

    By default the step-ended events are held back (captured, not handled): the finalising invocation then counts
    every job itself (the most work one invocation can get: as when the step events were lost), and the bench stays
    fast. With deliver_step_ends they reach the estimator as delivered (each step-end update counts its job first);
    on the local stack that costs minutes (moto deep-copies the table for every item of every TransactWriteItems)."""
    steps = many_steps()
    define_steps(stack, owner, pipeline, steps)
    run_for = timedelta(seconds=sum(s.duration_seconds for s in steps) + 120)
    hold = None if deliver_step_ends else (lambda event: event.get("detail-type") == STEP_CHANGE)
    with probing(stack, owner, ESTIMATE, hold=hold) as estimator:
        execution = start_execution(stack, consumer, pipeline, "cost-many-steps")
        started = time.perf_counter()
        stack.advance(run_for)
        advance_s = time.perf_counter() - started
    runs = [r for r in estimator.runs if _execution_of(r.event) == execution.lower()]
    ends = [r for r in runs if _is_execution_end(r.event, execution)]
    if not ends:
        raise BenchError(f"the {len(steps)}-step execution did not end within {run_for}")
    final = _finalising_summary(stack, ends[0], owner, execution, names)
    if final["steps"] != len(steps):
        raise BenchError(f"ListPipelineExecutionSteps listed {final['steps']} steps, not {len(steps)}")
    final["finalising_invocations"] = len(ends)
    final["one_invocation"] = (
        len(ends) == 1
        and final["error"] is None
        and final["result"].get("status") == "finalised"
        and final["estimate_final"]
    )
    held = [e for e in estimator.captured if _is_step_end(e, execution)]
    return {
        "steps_defined": len(steps),
        "cache_hits": len(MANY_STEPS_CACHE_HITS),
        "step_ends": "delivered" if deliver_step_ends else "held back",
        "step_end_events_held": len(held),
        "scenario_time_s": run_for.total_seconds(),
        "advance_wall_s": advance_s,
        "finalised": final,
        "step_end": _step_end_summary([r for r in runs if _is_step_end(r.event, execution)], names),
    }


TICK_EXECUTIONS = 10  # running executions the measured tick finds
TICK_STEPS = (
    StepSpec(name="Train", type="Training", duration_seconds=3 * 3600, instance_type="ml.m5.4xlarge", instance_count=2),
)


def _stop_running(stack: LocalStack, owner: str, pipeline: str) -> None:
    """Stop (as the owner) what earlier measurements left running on the pipeline, and let the stops settle."""
    sagemaker = stack.client(owner, "sagemaker")
    pages = sagemaker.get_paginator("list_pipeline_executions").paginate(PipelineName=pipeline)
    running = [
        e["PipelineExecutionArn"]
        for page in pages
        for e in page["PipelineExecutionSummaries"]
        if e["PipelineExecutionStatus"] == "Executing"
    ]
    for execution in running:
        sagemaker.stop_pipeline_execution(
            PipelineExecutionArn=execution, ClientRequestToken=_token(f"leftover-{execution[-12:]}")
        )
    if running:
        stack.advance(timedelta(minutes=5))


def measure_running_tick(
    stack: LocalStack, owner: str, consumer: str, pipeline: str, names: OperationNames
) -> dict[str, Any]:
    """TICK_EXECUTIONS consumer executions of a three-hour single training step run; after 20 minutes (so each job
    already carries a running mark), the next running-estimate tick of EstimateCostFunction is probed: its calls next
    to the bound 3 (running executions, pending finish alerts, the cached Price List answers) + executions x (list +
    state) + running jobs (Describe) + executions (one transaction each)."""
    _stop_running(stack, owner, pipeline)  # the tick is to find exactly the executions started here
    define_steps(stack, owner, pipeline, TICK_STEPS)
    executions = [start_execution(stack, consumer, pipeline, f"tick-{n}") for n in range(TICK_EXECUTIONS)]
    stack.advance(timedelta(minutes=20))
    with probing(stack, owner, ESTIMATE) as estimator:
        stack.advance(timedelta(minutes=6))
    ticks = [r for r in estimator.runs if r.event.get("detail-type") == "Scheduled Event"]
    if not ticks:
        raise BenchError("no running-estimate tick ran in 6 minutes")
    run = ticks[-1]
    result = run.invocation.result if isinstance(run.invocation.result, dict) else {}
    if result.get("executions") != TICK_EXECUTIONS or result.get("jobs_counted") != TICK_EXECUTIONS:
        raise BenchError(f"the tick did not count the {TICK_EXECUTIONS} running jobs: {result}")
    breakdown = names.breakdown(run.calls)
    bound = 3 + TICK_EXECUTIONS * 2 + TICK_EXECUTIONS + TICK_EXECUTIONS
    for execution in executions:  # leave nothing running for the measurements after this one
        stack.client(consumer, "sagemaker").stop_pipeline_execution(
            PipelineExecutionArn=execution, ClientRequestToken=_token(f"stop-{execution[-12:]}")
        )
    stack.advance(timedelta(minutes=5))
    return {
        "executions": TICK_EXECUTIONS,
        "running_jobs": TICK_EXECUTIONS,
        "calls": len(run.calls),
        "bound": bound,
        "within_bound": len(run.calls) <= bound,
        "describes": _described(breakdown),
        "transactions": breakdown.get("dynamodb:TransactWriteItems", 0),
        "by_operation": breakdown,
        "wall_ms": run.seconds * 1000,
        "result": result,
    }


BUDGET_PARAMETER = "/pipeshare/budgets"
STOP_CALL = "sagemaker:StopPipelineExecution"


def deploy_budget_pair(stack: LocalStack, owner: str, consumer: str) -> str:
    """deploy_owner_pair with the forwarder and a budget policy (PolicyCacheSeconds 0): the consumer's budget is
    USD 0.01, its runs stopped while over it. Returns the pipeline ARN."""
    extra = {"BudgetPolicyParameterName": BUDGET_PARAMETER, "PolicyCacheSeconds": "0"}
    pipeline = deploy_owner_pair(stack, Owners(stack), owner, consumer, forward=True, extra=extra)
    policy = {"version": 1, "consumers": {consumer: {"monthly_limit": "0.01", "enforce": {"stop_executions": True}}}}
    stack.client(owner, "ssm").put_parameter(
        Name=BUDGET_PARAMETER, Value=json.dumps(policy), Type="String", Overwrite=True
    )
    stack.deliver()
    return pipeline


def _stop_runs(watcher: Probe, names: OperationNames) -> list[ProbeRun]:
    """The watcher's invocations that called StopPipelineExecution (one run is going at a time)."""
    return [run for run in watcher.runs if names.breakdown(run.calls).get(STOP_CALL)]


def measure_enforcement_stops(
    stack: LocalStack, owner: str, consumer: str, pipeline: str, names: OperationNames
) -> dict[str, Any]:
    """The consumer (forwarded: its spend is confirmed) runs a three-hour step over its USD 0.01 budget: the running
    tick counts it, the spend change reaches WatchBudgetsFunction, which alerts and stops the run (the stop at the
    crossing). Then the consumer starts again: the new run is stopped when the watcher sees it running (a later start,
    still over budget). Each stopping invocation's calls are reported."""
    define_steps(stack, owner, pipeline, TICK_STEPS)
    measured: dict[str, Any] = {}
    for label, wait in (("crossing", timedelta(minutes=15)), ("later_start", timedelta(minutes=10))):
        with probing(stack, owner, WATCH) as watcher:
            execution = start_execution(stack, consumer, pipeline, f"budget-{label}")
            stack.advance(wait)
        stops = _stop_runs(watcher, names)
        if len(stops) != 1:
            raise BenchError(f"expected one watcher invocation stopping the {label} run, got {len(stops)}")
        status = stack.client(owner, "sagemaker").describe_pipeline_execution(PipelineExecutionArn=execution)
        if status["PipelineExecutionStatus"] not in ("Stopping", "Stopped"):
            raise BenchError(f"the {label} run is {status['PipelineExecutionStatus']}, not stopped")
        run = stops[0]
        breakdown = names.breakdown(run.calls)
        measured[label] = {
            "calls": len(run.calls),
            "sequence": [names.label(s, o) for _, s, o in run.calls],
            "by_operation": breakdown,
            "stops": breakdown.get(STOP_CALL, 0),
            "watcher_invocations": len(watcher.runs),
            "wall_ms": run.seconds * 1000,
        }
    return measured


def rss_estimate_event(stack: LocalStack, owner: str, consumer: str, pipeline: str) -> dict[str, Any]:
    """The terminal status event of a new consumer execution (COST_STEPS), captured: its step-ended events are not
    handled either, so the child's invocation describes and counts every job when it finalises."""
    define_steps(stack, owner, pipeline, COST_STEPS)
    with probing(stack, owner, ESTIMATE, capture_only=True) as estimator:
        execution = start_execution(stack, consumer, pipeline, "rss-cost")
        stack.advance(COST_RUN)
    events = [e for e in estimator.captured if _is_execution_end(e, execution)]
    if len(events) != 1:
        raise BenchError(f"expected one terminal status event for the estimator RSS run, got {len(events)}")
    return events[0]


# ---------------------------------------------------------------------------------------------- child processes
def lambda_environment(stack: LocalStack, function: LocalFunction) -> dict[str, str]:
    """What the local runtime gives a function (template variables, account credentials + endpoint, Lambda's
    variables), on top of this process's environment without its AWS_/POWERTOOLS_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(function.environment)
    env.update(stack.function_credentials(function.account, function.logical_id))  # its own role
    env.update(
        {
            "AWS_REGION": function.region,
            "AWS_DEFAULT_REGION": function.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "POWERTOOLS_TRACE_DISABLED": "true",  # as the local runtime: no X-Ray daemon
            "POWERTOOLS_DEV": "false",
            # a Lambda sandbox has no shared config files and needs no instance metadata
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": str(LAYER),  # the layer, as /opt/python; not local/ (no moto, no pipeshare_local)
        }
    )
    return env


def run_child(mode: str, args: list[str], env: dict[str, str], *, event: Any = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pipeshare-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        argv = [sys.executable, str(CHILD), mode, str(result_path), *args]
        if event is not None:
            event_path = Path(tmp) / "event.json"
            event_path.write_text(json.dumps(event))
            argv.append(str(event_path))
        try:
            proc = subprocess.run(  # noqa: S603 - our own script, with this interpreter
                argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"bench_child {mode} timed out after {CHILD_TIMEOUT}s") from exc
        if proc.returncode != 0 or not result_path.exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-8:]
            raise BenchError(f"bench_child {mode} exited {proc.returncode}: " + " | ".join(tail))
        data: dict[str, Any] = json.loads(result_path.read_text())
    if data.get("moto_imported"):
        raise BenchError(f"bench_child {mode} imported moto")
    return data


def _code_dir(function: LocalFunction) -> str:
    return str((ROOT / function.code_uri).resolve())


def measure_cold_init(function: LocalFunction, env: dict[str, str], runs: int) -> dict[str, Any]:
    services, adapters = INIT_CLIENTS[function.logical_id]
    module = function.handler.rsplit(".", 1)[0]
    handler_args = [_code_dir(function), module, ",".join(adapters)]
    baseline: list[float] = []
    handler: list[float] = []
    rss: dict[str, list[float]] = {"baseline": [], "handler": []}
    for index in range(WARMUP_RUNS + runs):
        pair = [("baseline", [",".join(services)], baseline), ("handler", handler_args, handler)]
        for mode, args, samples in pair if index % 2 == 0 else reversed(pair):  # alternate who goes first
            data = run_child(mode, args, env)
            if index >= WARMUP_RUNS:
                samples.append(data["seconds"])
                rss[mode].append(data["peak_rss_mb"])
    baseline_median = statistics.median(baseline)
    handler_median = statistics.median(handler)
    return {
        "runs": runs,
        "warmup_runs": WARMUP_RUNS,
        "baseline_clients": list(services),
        "handler_adapters": list(adapters),
        "baseline_median_ms": baseline_median * 1000,
        "handler_median_ms": handler_median * 1000,
        "ratio": handler_median / baseline_median,
        "baseline_ms": [s * 1000 for s in baseline],
        "handler_ms": [s * 1000 for s in handler],
        "baseline_peak_rss_mb_median": statistics.median(rss["baseline"]),
        "handler_peak_rss_mb_median": statistics.median(rss["handler"]),
    }


def measure_peak_rss(
    stack: LocalStack, function: LocalFunction, event: dict[str, Any], names: OperationNames
) -> dict[str, Any]:
    """One real invocation in a fresh process; the endpoint's call log is sliced around it as a cross-check."""
    env = lambda_environment(stack, function)
    before = len(stack.calls())
    data = run_child("invoke", [_code_dir(function), function.handler, function.arn], env, event=event)
    window = stack.calls()[before:]
    data["endpoint_calls"] = names.breakdown([c for c in window if c[0] == function.account])
    return data


def rss_accept_event(stack: LocalStack, owners: Owners) -> dict[str, Any]:
    """A fresh pending invitation from the trusted owner; its event is captured, not handled in-process."""
    owners.share_new_pipeline("owner", "consumer", "bench-rss")
    with probing(stack, CONSUMER, ACCEPT, capture_only=True) as acceptor:
        stack.deliver()
    events = [e for e in acceptor.captured if _is_pending_invitation(e, CONSUMER)]
    if len(events) != 1:
        raise BenchError(f"expected one pending-invitation event for the RSS run, got {len(events)}")
    return events[0]


# ---------------------------------------------------------------------------------------------- report
def _load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import boto3
    import botocore

    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "bytecode_cache_writes": not os.environ.get("PYTHONDONTWRITEBYTECODE"),
    }


@dataclass
class Table:
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, metric: str, handler: str, value: str, target: str, ok: str) -> None:
        self.rows.append({"metric": metric, "handler": handler, "value": value, "target": target, "ok": ok})

    def markdown(self) -> str:
        columns = ["metric", "handler", "value", "target", "ok"]
        widths = {c: max(len(c), *(len(r[c]) for r in self.rows)) for c in columns}
        lines = [
            "| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |",
            "|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|",
        ]
        lines += ["| " + " | ".join(r[c].ljust(widths[c]) for c in columns) + " |" for r in self.rows]
        return "\n".join(lines)


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _info(ok: bool) -> str:
    return f"{'yes' if ok else 'no'} (info)"


def _ops(breakdown: dict[str, int]) -> str:
    return ", ".join(f"{op} x{n}" for op, n in sorted(breakdown.items()))


def build_table(results: dict[str, Any], errors: dict[str, str], runs: int) -> Table:
    table = Table()
    accept = results.get("accept_calls")
    if accept:
        table.add(
            "AWS calls per accepted invitation",
            ACCEPT,
            str(accept["calls"]),
            f"<= {CALLS_TARGET}",
            _yes(accept["calls"] <= CALLS_TARGET),
        )
        for echo in accept["later_invocations"]:
            table.add(
                f"AWS calls, re-invoked by RAM's '{echo['event_status']}' event",
                ACCEPT,
                str(echo["calls"]),
                "-",
                "info",
            )
    for sweep in results.get("sweep_calls", []):
        table.add(
            f"AWS calls per scheduled sweep, N={sweep['held_invitations']} held",
            ACCEPT,
            str(sweep["calls"]),
            "-",
            "info",
        )
    flood = results.get("flood")
    if flood:
        for size in FLOOD_SIZES:
            run = flood[str(size)]
            per = run["calls_per_invitation"]
            table.add(
                f"AWS calls per invitation, flood sweep of {size}",
                ACCEPT,
                f"{per:.3f} ({run['calls']})",
                f"<= {FLOOD_CALLS_TARGET}",
                _yes(per <= FLOOD_CALLS_TARGET),
            )
            table.add(
                f"Flood sweep of {size}: wall time (fresh process)",
                ACCEPT,
                f"{run['wall_seconds']:.1f} s",
                f"< {flood['timeout_seconds']:.0f} s (Timeout)",
                _yes(run["wall_seconds"] < flood["timeout_seconds"]),
            )
            table.add(f"Flood sweep of {size}: peak RSS", ACCEPT, f"{run['peak_rss_mb']:.1f} MB", "-", "info")
        table.add(
            "Flood sweep peak RSS, 1000 / 100",
            ACCEPT,
            f"{flood['rss_ratio_large_to_small']:.2f}",
            "flat",
            "info",
        )
    notify = results.get("notify_calls")
    if notify:
        per = notify["calls_per_notification"]
        only_publish = set(notify["by_operation"]) == set(PUBLISH_ONCE_CALLS)
        table.add(
            f"AWS calls per notification ({notify['notifications']} published)",
            NOTIFY,
            f"{per:g}",
            f"{NOTIFY_CALLS_TARGET} (GetItem, sns:Publish, PutItem: published once)",
            _yes(per == NOTIFY_CALLS_TARGET and only_publish),
        )
    _owner_rows(table, results)
    _cost_rows(table, results)
    _enforcement_rows(table, results)
    for handler in (*CONSUMER_HANDLERS, *OWNER_HANDLERS):
        init = results.get("cold_init", {}).get(handler)
        if init:
            table.add(
                f"cold init ratio, median of {runs} (handler / boto3 baseline)",
                handler,
                f"{init['ratio']:.2f} ({init['handler_median_ms']:.0f} ms / {init['baseline_median_ms']:.0f} ms)",
                f"<= {INIT_RATIO_TARGET}",
                _info(init["ratio"] <= INIT_RATIO_TARGET),
            )
    for handler in (*CONSUMER_HANDLERS, *OWNER_HANDLERS):
        rss = results.get("peak_rss", {}).get(handler)
        if rss:
            ok = rss["peak_rss_mb"] <= RSS_TARGET_MB and rss["error"] is None
            table.add(
                "peak RSS, one real invocation",
                handler,
                f"{rss['peak_rss_mb']:.1f} MB",
                f"<= {RSS_TARGET_MB:g} MB",
                _yes(ok),
            )
    for name, message in errors.items():
        table.add(name, "-", f"ERROR: {message[:160]}", "-", "ERROR")
    return table


def _owner_rows(table: Table, results: dict[str, Any]) -> None:
    inferred = results.get("inferred_start_calls")
    if inferred:
        track, settle, notify = inferred["track"], inferred["settle"], inferred["notify"]
        minutes = f"{inferred['settle_minutes']:g} min"
        table.add(
            "AWS calls per consumer start seen by the status event only: tracking (records it unclaimed, sends the "
            "settle request; no alert due)",
            TRACK,
            str(track["calls"]),
            f"<= {TRACK_CALLS_TARGET}",
            _yes(track["calls"] <= TRACK_CALLS_TARGET),
        )
        trail = "trail check included: a fresh container" if settle["trail_checked"] else "trail check cached"
        table.add(
            f"AWS calls per settle making the inferred start alert due (SQS batch of 1, after {minutes} of scenario "
            f"time; {trail})",
            SETTLE,
            str(settle["calls"]),
            f"<= {SETTLE_CALLS_TARGET} ({TRAIL_CACHE_NOTE}: then {SETTLE_CALLS_TARGET - len(TRAIL_CALLS)})",
            _yes(settle["calls"] <= SETTLE_CALLS_TARGET),
        )
        per = notify["calls_per_notification"]
        only_publish = set(notify["by_operation"]) == set(PUBLISH_ONCE_CALLS)
        table.add(
            f"AWS calls per owner alert published ({notify['notifications']} published)",
            NOTIFY_OWNER,
            f"{per:g}",
            f"{OWNER_NOTIFY_CALLS_TARGET} (GetItem, sns:Publish, PutItem: published once)",
            _yes(per == OWNER_NOTIFY_CALLS_TARGET and only_publish),
        )
        total = track["calls"] + settle["calls"] + per
        target = TRACK_CALLS_TARGET + SETTLE_CALLS_TARGET + OWNER_NOTIFY_CALLS_TARGET
        table.add(
            "AWS calls per inferred consumer-start alert, tracking + settle + publish",
            f"{TRACK} + {SETTLE} + {NOTIFY_OWNER}",
            f"{total:g}",
            f"<= {target}",
            _yes(total <= target),
        )
    forwarded = results.get("forwarded_calls")
    if forwarded:
        delivered, first = forwarded["as_delivered"], forwarded["forwarded_first"]
        settled = delivered["settles"]
        table.add(
            "AWS calls per forwarded start record, after the status event (local order; the record alerts, the "
            "status event sent a settle request)",
            TRACK,
            f"{delivered['forwarded']['calls']} (status event {delivered['status']['calls']})",
            "-",
            "info",
        )
        table.add(
            "AWS calls per forwarded start record, before the status event (the record alerts; the status event "
            "sends no settle request)",
            TRACK,
            f"{first['forwarded']['calls']} (status event {first['status']['calls']})",
            "-",
            "info",
        )
        if settled:
            table.add(
                "AWS calls per settle of a start claimed within the settle period (no alert)",
                SETTLE,
                ", ".join(str(s["calls"]) for s in settled),
                "-",
                "info",
            )
    latency = results.get("start_to_alert")
    if latency:
        table.add(
            f"consumer with the forwarder: StartPipelineExecution -> owner alert readable (SNS), wall, median of "
            f"{latency['runs']}",
            f"{TRACK} -> {NOTIFY_OWNER}",
            f"{latency['median_s']:.2f} s (min {latency['min_s']:.2f}, max {latency['max_s']:.2f})",
            f"<= {LATENCY_TARGET_S:g} s",
            _info(latency["median_s"] <= LATENCY_TARGET_S),
        )
    late = results.get("inferred_start_to_alert")
    if late:
        table.add(
            "consumer without the forwarder: start -> inferred alert, scenario time (the settle period; measured "
            "start call -> settle invocation, median)",
            f"{TRACK} -> SettleQueue -> {SETTLE}",
            f"{late['settle_minutes']:g} min ({late['settle_at_scenario_median_s']:.1f} s)",
            "InferenceSettleMinutes (default)",
            "info",
        )
        table.add(
            f"consumer without the forwarder: settle invocation start (settle due) -> alert readable (SNS), wall, "
            f"median of {late['runs']}",
            f"{SETTLE} -> {NOTIFY_OWNER}",
            f"{late['median_s']:.2f} s (min {late['min_s']:.2f}, max {late['max_s']:.2f})",
            "-",
            "info",
        )


def _formula_row(table: Table, metric: str, final: dict[str, Any]) -> None:
    table.add(
        f"{metric} ({final['steps']} steps: {final['step_pages']} page(s), {final['jobs']} jobs)",
        ESTIMATE,
        str(final["calls"]),
        f"<= 1 + pages + jobs = {final['formula']}",
        _yes(final["within_formula"]),
    )


def _enforcement_rows(table: Table, results: dict[str, Any]) -> None:
    stops = results.get("enforcement_stops") or {}
    for label, text in (
        ("crossing", "AWS calls per enforcement stop, at the crossing (spend change: alert + stop)"),
        ("later_start", "AWS calls per enforcement stop, a later start while over budget (execution seen running)"),
    ):
        stop = stops.get(label)
        if stop:
            table.add(
                text,
                WATCH,
                f"{stop['calls']} ({', '.join(f'{k} {v}' for k, v in sorted(stop['by_operation'].items()))})",
                "1 StopPipelineExecution",
                _yes(stop["stops"] == 1),
            )


def _cost_rows(table: Table, results: dict[str, Any]) -> None:
    tick = results.get("running_tick")
    if tick:
        table.add(
            f"AWS calls per running-estimate tick ({tick['executions']} running executions, one job each)",
            ESTIMATE,
            f"{tick['calls']} ({tick['describes']} Describe, {tick['transactions']} transactions; "
            f"{tick['wall_ms']:.0f} ms)",
            f"<= 3 + 2/execution + 1/job + 1/execution = {tick['bound']}",
            _yes(tick["within_bound"]),
        )
    estimate = results.get("estimate_calls")
    if estimate:
        _formula_row(table, "AWS calls per finalised estimate, consumer execution", estimate["consumer"]["finalised"])
        _formula_row(table, "AWS calls per finalised estimate, owner's own execution", estimate["owner"]["finalised"])
        step_end = estimate["consumer"]["step_end"]
        spread = step_end["calls_per_counted_invocation"]
        value = str(step_end["calls"])
        if len(spread) > 1:
            value += f" (first; {min(spread)}-{max(spread)} over {step_end['counted']})"
        table.add(
            "AWS calls per step-end update (running estimate, one job)",
            ESTIMATE,
            value,
            f"{STEP_END_CALLS_EXPECTED} expected (Query, Describe*Job, BatchGetItem prices, TransactWriteItems)",
            _info(step_end["expected"] and len(spread) == 1),
        )
    many = results.get("many_steps_estimate")
    if many:
        final = many["finalised"]
        label = f"{many['steps_defined']}-step execution (step ends {many['step_ends']})"
        outcome = "yes" if final["one_invocation"] else "no"
        if final["error"]:
            outcome += f" (error: {final['error'][:60]})"
        else:
            outcome += f" ({final['finalising_invocations']} invocation(s), final={final['estimate_final']})"
        table.add(
            f"{label}: estimate finalised in one invocation",
            ESTIMATE,
            outcome,
            "one invocation, no error, final",
            _yes(final["one_invocation"]),
        )
        table.add(
            f"{label}: finalising invocation duration (wall)",
            ESTIMATE,
            f"{final['wall_ms']:.0f} ms (local endpoint {final['endpoint_ms']:.0f} ms)",
            "- (Timeout 300 s)",
            "info",
        )
        _formula_row(table, f"{label}: AWS calls of the finalising invocation", final)
        complete = "complete" if final["estimate_complete"] else "incomplete"
        table.add(
            f"{label}: estimate total",
            ESTIMATE,
            f"${final['estimate_total']} ({complete})",
            "-",
            "info",
        )


def _owner_details(results: dict[str, Any]) -> list[str]:
    lines = []
    inferred = results.get("inferred_start_calls")
    if inferred:
        track, settle, notify = inferred["track"], inferred["settle"], inferred["notify"]
        outcome = settle["outcome"]
        lines += [
            f"- {TRACK}, consumer start seen by the status event only: {' -> '.join(track['sequence'])} "
            f"({track['result'].get('source')}, settling {', '.join(track['result'].get('settling') or [])}, "
            "no alert)",
            f"- {SETTLE}, {inferred['settle_minutes']:g} min later (SQS batch of {settle['records']}): "
            f"{' -> '.join(settle['sequence'])} ({outcome.get('source')} {outcome.get('initiator_account')}, alert "
            f"{', '.join(outcome.get('alerts') or [])}; trail check {'made' if settle['trail_checked'] else 'cached'}; "
            f"{settle['wall_ms']:.0f} ms wall)",
            f"- {NOTIFY_OWNER}: {_ops(notify['by_operation'])} for {notify['notifications']} alert "
            f"({notify['records']} stream records, {notify['invocations']} invocations; alert attribution "
            f"{inferred['alert_attribution']})",
        ]
    forwarded = results.get("forwarded_calls")
    if forwarded:
        delivered, first = forwarded["as_delivered"], forwarded["forwarded_first"]

        def told(summary: dict[str, Any]) -> str:
            result = summary["result"]
            alerts = ", ".join(result.get("alerts") or []) or "no alert"
            settling = f", settle request for {', '.join(result['settling'])}" if result.get("settling") else ""
            return f"{' -> '.join(summary['sequence']) or 'no call'} ({result.get('source')}, {alerts}{settling})"

        lines += [
            f"- {TRACK}, consumer with the forwarder, local delivery order {' then '.join(delivered['order'])}: "
            f"status event {told(delivered['status'])}; forwarded record {told(delivered['forwarded'])}; "
            f"alert attribution {delivered['alert_attribution']}",
            f"- {TRACK}, forwarded record delivered first: {told(first['forwarded'])}; then the status event "
            f"{told(first['status'])}; alert attribution {first['alert_attribution']}",
        ]
        lines += [
            f"- {SETTLE}, settle request of the start claimed by the forwarded record: {' -> '.join(s['sequence'])} "
            f"({s['outcome'].get('status')}, no alert)"
            for s in delivered["settles"]
        ]
    latency = results.get("start_to_alert")
    if latency:
        per_run = Counter(len(s["owner_function_calls"]) for s in latency["samples"])
        lines += [
            f"- forwarded start -> alert, medians: StartPipelineExecution call "
            f"{latency['start_call_median_s'] * 1000:.0f} ms, stack.deliver() {latency['deliver_median_s'] * 1000:.0f}"
            f" ms, read_notifications {latency['read_median_s'] * 1000:.0f} ms; runs (s): "
            + ", ".join(f"{s['seconds']:.2f}" for s in latency["samples"]),
            "- forwarded start -> alert, owner function calls per run: "
            + ", ".join(f"{calls} calls x{n}" for calls, n in sorted(per_run.items()))
            + f" ({' -> '.join(latency['samples'][0]['owner_function_calls'])})",
        ]
    late = results.get("inferred_start_to_alert")
    if late:
        windows = Counter(" + ".join(sorted(s["window_invocations"])) for s in late["samples"])
        lines += [
            f"- inferred start -> alert: start call + deliver (tracking) median {late['track_median_s'] * 1000:.0f} "
            f"ms wall; settle invocation {late['settle_at_scenario_median_s']:.1f} s of scenario time after the "
            f"start call (median); settle invocation {late['settle_invocation_median_s'] * 1000:.0f} ms wall "
            f"(median); settle start -> alert readable, runs (s): "
            + ", ".join(f"{s['seconds']:.2f}" for s in late["samples"]),
            f"- inferred start -> alert, the last {SETTLE_LEAD.total_seconds():g} s of scenario time to the alert "
            f"readable (wall, with whatever else fell due): median {late['window_median_s']:.2f} s; invocations: "
            + "; ".join(f"{names} x{n}" for names, n in windows.items()),
        ]
    return lines


def _finalised_line(label: str, final: dict[str, Any]) -> str:
    extra = final["over_formula"]
    versus = f"{extra} over" if extra > 0 else f"{-extra} under" if extra < 0 else "equal to"
    return (
        f"- {ESTIMATE}, finalised estimate, {label}: {_ops(final['by_operation'])} = {final['calls']} calls, "
        f"{versus} 1 + {final['step_pages']} page(s) + {final['jobs']} jobs = {final['formula']} "
        f"({final['pages_read']} pages read, {final['jobs_described']} jobs described; total "
        f"${final['estimate_total']}; {final['wall_ms']:.0f} ms wall, of which {_endpoint_ms(final)})"
    )


def _endpoint_ms(final: dict[str, Any]) -> str:
    """Where the local endpoint's time went (moto and the emulators, serving the calls in this process)."""
    spent = sorted(final["endpoint_ms_by_operation"].items(), key=lambda item: -item[1])
    return f"{final['endpoint_ms']:.0f} ms at the local endpoint: " + ", ".join(f"{op} {ms:.0f}" for op, ms in spent)


def _cost_details(results: dict[str, Any]) -> list[str]:
    lines = []
    estimate = results.get("estimate_calls")
    if estimate:
        for label in ("consumer", "owner"):
            final = estimate[label]["finalised"]
            lines.append(_finalised_line(f"{label} execution", final) + f": {' -> '.join(final['sequence'])}")
        step_end = estimate["consumer"]["step_end"]
        skipped = ", ".join(f"{n['step']} {n['status']} ({n['calls']} calls)" for n in step_end["not_counted"])
        lines.append(
            f"- {ESTIMATE}, step-end update ({step_end['step']}): {' -> '.join(step_end['sequence'])}; "
            f"{step_end['counted']} of {step_end['invocations']} step-ended invocations counted a job"
            + (f"; not counted: {skipped}" if skipped else "")
        )
    many = results.get("many_steps_estimate")
    if many:
        final, step_end = many["finalised"], many["step_end"]
        lines.append(
            _finalised_line(f"{many['steps_defined']}-step consumer execution, step ends {many['step_ends']}", final)
        )
        if many["step_end_events_held"]:
            handled = f"{many['step_end_events_held']} step-ended events held back (not handled)"
        else:
            spread = ", ".join(
                f"{calls} calls x{n}" for calls, n in sorted(step_end["calls_per_counted_invocation"].items())
            )
            handled = (
                f"{step_end['invocations']} step-ended invocations, {step_end['counted']} counted a job ({spread}; "
                f"median {step_end.get('median_wall_ms', 0):.0f} ms), {len(step_end['errors'])} errors"
            )
        lines.append(
            f"- {ESTIMATE}, {many['steps_defined']}-step execution ({many['cache_hits']} cache hits): {handled}; "
            f"{many['scenario_time_s']:.0f} s of scenario time advanced in {many['advance_wall_s']:.1f} s wall"
        )
    return lines


def details(results: dict[str, Any]) -> list[str]:
    lines = []
    accept = results.get("accept_calls")
    if accept:
        lines.append(f"- {ACCEPT}, accepted invitation: {' -> '.join(accept['sequence'])}")
        lines += [
            f"- {ACCEPT}, re-invoked by RAM's '{e['event_status']}' event: {_ops(e['by_operation'])}"
            for e in accept["later_invocations"]
        ]
    sweeps = results.get("sweep_calls", [])
    lines += [f"- {ACCEPT}, sweep with N={s['held_invitations']} held: {_ops(s['by_operation'])}" for s in sweeps]
    if len(sweeps) >= 2:
        first, last = sweeps[0], sweeps[-1]
        per = (last["calls"] - first["calls"]) / (last["held_invitations"] - first["held_invitations"])
        fixed = first["calls"] - per * first["held_invitations"]
        lines.append(f"- {ACCEPT}, sweep scaling: {fixed:g} + {per:g} calls per held invitation, every sweep")
    notify = results.get("notify_calls")
    if notify:
        lines.append(
            f"- {NOTIFY}: {_ops(notify['by_operation'])} for {notify['notifications']} notifications "
            f"({notify['records']} stream records, {notify['invocations']} invocations)"
        )
    lines += _owner_details(results)
    lines += _cost_details(results)
    for handler, rss in results.get("peak_rss", {}).items():
        lines.append(
            f"- {handler}, RSS child: {_ops(Counter(rss['client_calls']))} (client side); "
            f"{_ops(rss['endpoint_calls'])} (endpoint)" + (f"; error: {rss['error']}" if rss["error"] else "")
        )
    return lines


# ---------------------------------------------------------------------------------------------- main
class Bench:
    def __init__(self, runs: int, latency_runs: int = 7, *, deliver_step_ends: bool = False) -> None:
        self.runs = runs
        self.latency_runs = latency_runs
        self.deliver_step_ends = deliver_step_ends
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.names = OperationNames()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        _progress(name)
        try:
            yield
        except BenchError as exc:
            self.errors[name] = str(exc)
            _progress(f"{name}: ERROR {exc}")

    def run(self) -> None:
        environments: dict[str, dict[str, str]] = {}
        functions: dict[str, LocalFunction] = {}
        with LocalStack() as stack:
            self.consumer_side(stack, functions, environments)
            stack.deliver()  # settle what the RSS invocations caused (not measured)
            stack.reset()  # the owner side starts from nothing: only its own accounts are deployed
            self.owner_side(stack, functions, environments)
            stack.reset()  # budgets: an owner with a budget policy, and a forwarding consumer
            self.budget_side(stack)
        cold: dict[str, Any] = {"load_average_before": _load_average()}
        for handler in (*CONSUMER_HANDLERS, *OWNER_HANDLERS):  # no network needed: the stack is down
            if handler not in functions:
                continue
            with self.step(f"cold init ({handler}, {WARMUP_RUNS}+{self.runs} runs per variant)"):
                cold[handler] = measure_cold_init(functions[handler], environments[handler], self.runs)
        cold["load_average_after"] = _load_average()
        self.results["cold_init"] = cold

    def consumer_side(
        self, stack: LocalStack, functions: dict[str, LocalFunction], environments: dict[str, dict[str, str]]
    ) -> None:
        owners = Owners(stack)
        consumer = stack.deploy(CONSUMER, CONSUMER_PARAMETERS)
        stack.deploy(SWEEP_CONSUMER, CONSUMER_PARAMETERS)
        for handler in CONSUMER_HANDLERS:
            functions[handler] = consumer.functions[handler]
            environments[handler] = lambda_environment(stack, functions[handler])
        with probing(stack, CONSUMER, NOTIFY) as notify_a, probing(stack, SWEEP_CONSUMER, NOTIFY) as notify_b:
            with self.step("AWS calls per accepted invitation"):
                self.results["accept_calls"] = measure_accept_calls(stack, owners, self.names)
            with self.step("AWS calls per scheduled sweep"):
                self.results["sweep_calls"] = measure_sweep_calls(stack, owners, self.names)
        with self.step("AWS calls per notification"):
            self.results["notify_calls"] = summarize_notify_calls([*notify_a.runs, *notify_b.runs], self.names)
        with self.step(f"invitation flood: one sweep over {' and '.join(map(str, FLOOD_SIZES))} untrusted invitations"):
            self.results["flood"] = measure_flood(stack, owners, self.names)
        peak: dict[str, Any] = self.results.setdefault("peak_rss", {})
        with self.step(f"peak RSS ({ACCEPT})"):
            event = rss_accept_event(stack, owners)
            peak[ACCEPT] = measure_peak_rss(stack, functions[ACCEPT], event, self.names)
            if (peak[ACCEPT]["result"] or {}).get("accepted") != 1:
                raise BenchError(f"the RSS invocation did not accept its invitation: {peak[ACCEPT]['result']}")
        with self.step(f"peak RSS ({NOTIFY})"):
            if not notify_a.runs:
                raise BenchError("no stream batch was captured for NotifyDecisionsFunction")
            peak[NOTIFY] = measure_peak_rss(stack, functions[NOTIFY], notify_a.runs[0].event, self.names)

    def owner_side(
        self, stack: LocalStack, functions: dict[str, LocalFunction], environments: dict[str, dict[str, str]]
    ) -> None:
        owners = Owners(stack)
        pipeline = forwarding = ""
        settle = timedelta(0)
        with self.step("owner side: deploy an owner and a consumer without the forwarder"):
            pipeline = deploy_owner_pair(stack, owners, TRACKED_OWNER, STARTER, forward=False)
            define_steps(stack, TRACKED_OWNER, pipeline, TRACKING_STEPS)
            settle = settle_period(stack, TRACKED_OWNER)
        if not pipeline or not settle:
            return
        owner = stack.deployments[TRACKED_OWNER]
        for handler in OWNER_HANDLERS:
            functions[handler] = owner.functions[handler]
            environments[handler] = lambda_environment(stack, functions[handler])
        with self.step("owner side: deploy a second owner and a consumer with the forwarder"):
            forwarding = deploy_owner_pair(stack, owners, FORWARDING_OWNER, FORWARDER, forward=True)
            define_steps(stack, FORWARDING_OWNER, forwarding, TRACKING_STEPS)
        with self.step("AWS calls per consumer-start alert (status event only: track, settle, publish)"):
            self.results["inferred_start_calls"] = measure_inferred_start_calls(
                stack, TRACKED_OWNER, STARTER, pipeline, settle, self.names
            )
        if forwarding:
            with self.step("AWS calls per forwarded start record (consumer with the forwarder)"):
                self.results["forwarded_calls"] = measure_forwarded_start_calls(
                    stack, FORWARDING_OWNER, FORWARDER, forwarding, settle, self.names
                )
        with self.step(f"latency, inferred start: settle period + processing ({self.latency_runs} runs)"):
            self.results["inferred_start_to_alert"] = measure_inferred_start_to_alert(
                stack, TRACKED_OWNER, STARTER, pipeline, settle, self.latency_runs
            )
        if forwarding:
            with self.step(f"latency, forwarded start -> owner alert ({self.latency_runs} runs)"):
                self.results["start_to_alert"] = measure_start_to_alert(
                    stack, FORWARDING_OWNER, FORWARDER, forwarding, self.latency_runs
                )
        peak: dict[str, Any] = self.results.setdefault("peak_rss", {})
        rss_execution = ""
        with self.step(f"peak RSS ({TRACK})"):
            event = rss_track_event(stack, TRACKED_OWNER, STARTER, pipeline)
            peak[TRACK] = measure_peak_rss(stack, functions[TRACK], event, self.names)
            result = peak[TRACK]["result"] or {}
            outcome = tuple(result.get(k) for k in ("status", "source", "alerts", "settling"))
            if outcome != ("recorded", "unknown", [], ["start"]):
                raise BenchError(f"the RSS invocation did not record the start unclaimed and schedule it: {result}")
            rss_execution = str(result.get("execution_arn") or "")
        if rss_execution:
            with self.step(f"peak RSS ({SETTLE})"):
                event = rss_settle_event(stack, TRACKED_OWNER, rss_execution, settle)
                peak[SETTLE] = measure_peak_rss(stack, functions[SETTLE], event, self.names)
                result = peak[SETTLE]["result"] or {}
                record = execution_record(stack, TRACKED_OWNER, rss_execution)
                stack.deliver()  # publish what the settle made due
                if result.get("batchItemFailures") != [] or record.get("attribution_source") != "inferred":
                    raise BenchError(f"the settle RSS invocation did not infer the start: {result}, {record}")
                if len(owner_alerts(stack, TRACKED_OWNER, rss_execution)) != 1:
                    raise BenchError("the settle RSS invocation's start alert was not published once")
        with self.step(f"peak RSS ({INVENTORY})"):
            event = rss_inventory_event(stack, TRACKED_OWNER)
            peak[INVENTORY] = measure_peak_rss(stack, functions[INVENTORY], event, self.names)
            if (peak[INVENTORY]["result"] or {}).get("status") != "ok":
                raise BenchError(f"the inventory RSS invocation did not reconcile: {peak[INVENTORY]['result']}")
        stack.deliver()  # publish what the RSS invocations caused (not measured)
        self.owner_costs(stack, pipeline)

    def owner_costs(self, stack: LocalStack, pipeline: str) -> None:
        """EstimateCostFunction, on the tracked owner's pipeline (its consumer starts it by ARN)."""
        with self.step("AWS calls per finalised estimate and per step-end update"):
            self.results["estimate_calls"] = measure_estimate_calls(stack, TRACKED_OWNER, STARTER, pipeline, self.names)
        peak: dict[str, Any] = self.results.setdefault("peak_rss", {})
        with self.step(f"peak RSS ({ESTIMATE})"):
            event = rss_estimate_event(stack, TRACKED_OWNER, STARTER, pipeline)
            function = stack.deployments[TRACKED_OWNER].functions[ESTIMATE]
            peak[ESTIMATE] = measure_peak_rss(stack, function, event, self.names)
            if (peak[ESTIMATE]["result"] or {}).get("status") != "finalised":
                raise BenchError(f"the estimator RSS invocation did not finalise: {peak[ESTIMATE]['result']}")
        with self.step(f"one running-estimate tick over {TICK_EXECUTIONS} running executions"):
            self.results["running_tick"] = measure_running_tick(stack, TRACKED_OWNER, STARTER, pipeline, self.names)
        with self.step(f"one estimate of a {MANY_STEPS}-step execution"):
            self.results["many_steps_estimate"] = measure_many_steps(
                stack, TRACKED_OWNER, STARTER, pipeline, self.names, deliver_step_ends=self.deliver_step_ends
            )
        stack.deliver()  # publish what the estimates caused (not measured)

    def budget_side(self, stack: LocalStack) -> None:
        pipeline = ""
        with self.step("budgets: deploy an owner with a budget policy and a forwarding consumer"):
            pipeline = deploy_budget_pair(stack, FORWARDING_OWNER, FORWARDER)
        if not pipeline:
            return
        with self.step("AWS calls per enforcement stop (at the crossing; a later start)"):
            self.results["enforcement_stops"] = measure_enforcement_stops(
                stack, FORWARDING_OWNER, FORWARDER, pipeline, self.names
            )
        stack.deliver()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeshare_local.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed cold-init runs per variant (>= 7; default 7)")
    parser.add_argument(
        "--latency-runs",
        type=int,
        default=7,
        help="consumer start -> owner alert runs, per path (forwarded, inferred; >= 5; default 7)",
    )
    parser.add_argument(
        "--deliver-step-ends",
        action="store_true",
        help=f"the {MANY_STEPS}-step execution's step-ended events reach the estimator too (default: held back, "
        "the finalising invocation counts every job; delivering them adds minutes on the local stack)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.runs < 7:
        parser.error("--runs must be >= 7")
    if args.latency_runs < 5:
        parser.error("--latency-runs must be >= 5")
    started = time.perf_counter()
    bench = Bench(args.runs, args.latency_runs, deliver_step_ends=args.deliver_step_ends)
    bench.run()
    elapsed = time.perf_counter() - started
    table = build_table(bench.results, bench.errors, args.runs)
    host = machine()
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_seconds": round(elapsed, 1),
        "machine": host,
        "targets": {
            "calls_per_accepted_invitation": CALLS_TARGET,
            "calls_per_notification": NOTIFY_CALLS_TARGET,
            "calls_per_invitation_of_a_flood_sweep": FLOOD_CALLS_TARGET,
            "tracker_calls_per_unclaimed_start_status_event": TRACK_CALLS_TARGET,
            "settler_calls_per_inferred_start_alert": SETTLE_CALLS_TARGET,
            "estimator_calls_per_finalised_estimate": ESTIMATE_CALLS_TARGET,
            "estimator_calls_per_step_end_update_expected": STEP_END_CALLS_EXPECTED,
            "calls_per_owner_alert_publish": OWNER_NOTIFY_CALLS_TARGET,
            "forwarded_consumer_start_to_owner_alert_seconds": LATENCY_TARGET_S,
            "cold_init_ratio": INIT_RATIO_TARGET,
            "peak_rss_mb": RSS_TARGET_MB,
        },
        "table": table.rows,
        "results": bench.results,
        "errors": bench.errors,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    out = sys.stdout.write
    out(
        f"\n## pipeshare bench\n\nmachine: {host['python']}, {host['platform']}, {host['cores']} cores "
        f"({host['usable_cores']} usable), {host['cpu']}; boto3 {host['boto3']}\n\n"
    )
    cold = bench.results.get("cold_init", {})
    load = (
        f"load average {cold.get('load_average_before')} -> {cold.get('load_average_after')} during the cold init runs"
    )
    out(f"{load} (1 min; other processes on the machine make timings noisy)\n\n")
    out(table.markdown() + "\n\nAWS calls by operation (counted at the local endpoint):\n\n")
    out("\n".join(details(bench.results)) + "\n")
    out(f"\ntimings and memory are informational; report: {args.out} ({elapsed:.0f} s)\n")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
