"""Fresh processes (child.py): cold init ratio, peak RSS of one real invocation, warm per-event overhead; and the
captures of the real events those invocations handle."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipeshare_local.bench.harness import (
    ACCEPT,
    AUDIT,
    CONSUMER,
    ESTIMATE,
    INVENTORY,
    NOTIFY,
    NOTIFY_OWNER,
    RELAY,
    SETTLE,
    TRACK,
    WATCH,
    BenchError,
    OperationNames,
    Owners,
    _is_execution_end,
    _is_pending_invitation,
    _is_start_status,
    define_steps,
    probing,
    start_execution,
)
from pipeshare_local.runtime import LocalFunction
from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.stack import LocalStack
from pipeshare_local.template import ROOT

INIT_RATIO_TARGET = 1.5  # every function (issue 10)
INIT_RATIO_AIM = 1.25
RSS_TARGET_MB = 90.0  # every function, one real invocation
WARMUP_RUNS = 1  # per variant, discarded (bytecode and page caches)
OVERHEAD_RUNS = 30  # warm invocations timed per function (after child.WARMUP_INVOCATIONS)
CHILD_TIMEOUT = 180
CHILD = Path(__file__).with_name("child.py")
LAYER = ROOT / "layers" / "common"
# handler -> (boto3 services of the baseline, the handler's adapters built by child.py): the clients its common
# invocation builds (a client an adapter builds on first use counts only where nearly every invocation needs it)
INIT_CLIENTS = {
    ACCEPT: (("ram", "dynamodb"), ("ram", "shares")),
    NOTIFY: (("sns", "dynamodb"), ("publish_once_consumer",)),
    AUDIT: (("ram", "dynamodb"), ("ram", "shares")),
    RELAY: (("sns", "dynamodb"), ("publish_once_consumer",)),  # the trust policy from the template's parameters
    TRACK: (  # a status event (most of its invocations) describes nothing: the SageMaker client is built on first use
        ("dynamodb", "sqs"),
        ("executions", "grants", "execution_gateway", "settle_scheduler", "costs"),
    ),
    SETTLE: (("dynamodb", "cloudtrail"), ("executions", "grants", "trail", "costs")),
    NOTIFY_OWNER: (("sns", "dynamodb"), ("publish_once_owner",)),
    INVENTORY: (("ram", "dynamodb"), ("owner_ram", "grants")),
    ESTIMATE: (("dynamodb", "sagemaker"), ("costs", "cost_gateway")),
    WATCH: (("dynamodb",), ("budget_ledger", "grants", "enforcer")),  # enforcement clients: only when it acts
}
COST_STEPS = (
    StepSpec(
        name="Preprocess", type="Processing", duration_seconds=300, instance_type="ml.m5.xlarge", instance_count=2
    ),
    StepSpec(name="Train", type="Training", duration_seconds=600, instance_type="ml.m5.xlarge", spot=True),
    StepSpec(name="CheckAccuracy", type="Condition", duration_seconds=1),
    StepSpec(name="Features", type="Processing", cache_hit=True),
)
COST_RUN = timedelta(minutes=20)  # scenario time until a COST_STEPS execution has ended


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


def run_child(
    mode: str, args: list[str], env: dict[str, str], *, event: Any = None, extra: list[str] | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pipeshare-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        argv = [sys.executable, str(CHILD), mode, str(result_path), *args]
        if event is not None:
            event_path = Path(tmp) / "event.json"
            event_path.write_text(json.dumps(event))
            argv.append(str(event_path))
        argv += extra or []
        try:
            proc = subprocess.run(  # noqa: S603 - our own script, with this interpreter
                argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"child.py {mode} timed out after {CHILD_TIMEOUT}s") from exc
        if proc.returncode != 0 or not result_path.exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-8:]
            raise BenchError(f"child.py {mode} exited {proc.returncode}: " + " | ".join(tail))
        data: dict[str, Any] = json.loads(result_path.read_text())
    if data.get("moto_imported"):
        raise BenchError(f"child.py {mode} imported moto")
    return data


def _code_dir(function: LocalFunction) -> str:
    return str((ROOT / function.code_uri).resolve())


def measure_cold_init(function: LocalFunction, env: dict[str, str], runs: int) -> dict[str, Any]:
    """The handler's init against the baseline in fresh processes, alternating who goes first; medians of `runs`.
    The ratio is taken on CPU time (the target is judged on it): an import of page-cached files is CPU-bound, and CPU
    time leaves out the time other processes of this shared machine held the core. The wall ratio is kept beside it."""
    services, adapters = INIT_CLIENTS[function.logical_id]
    module = function.handler.rsplit(".", 1)[0]
    handler_args = [_code_dir(function), module, ",".join(adapters)]
    samples: dict[str, dict[str, list[float]]] = {
        mode: {"seconds": [], "cpu_seconds": [], "peak_rss_mb": []} for mode in ("baseline", "handler")
    }
    for index in range(WARMUP_RUNS + runs):
        pair = [("baseline", [",".join(services)]), ("handler", handler_args)]
        for mode, args in pair if index % 2 == 0 else reversed(pair):  # alternate who goes first
            data = run_child(mode, args, env)
            if index >= WARMUP_RUNS:
                for key, values in samples[mode].items():
                    values.append(data[key])
    median = {mode: {key: statistics.median(v) for key, v in values.items()} for mode, values in samples.items()}
    # the floor: the baseline plus the libraries the handler loaded (pydantic, Powertools), no pipeshare code
    libraries = run_child("handler", handler_args, env)["libraries"]
    floor = [run_child("floor", [",".join(services), ",".join(libraries)], env) for _ in range(runs)]
    floor_cpu = statistics.median(f["cpu_seconds"] for f in floor)
    baseline, handler = median["baseline"], median["handler"]
    return {
        "floor_median_ms": floor_cpu * 1000,
        "floor_ratio": floor_cpu / baseline["cpu_seconds"],
        "floor_libraries": len(libraries),
        "runs": runs,
        "warmup_runs": WARMUP_RUNS,
        "baseline_clients": list(services),
        "handler_adapters": list(adapters),
        "baseline_median_ms": baseline["cpu_seconds"] * 1000,
        "handler_median_ms": handler["cpu_seconds"] * 1000,
        "ratio": handler["cpu_seconds"] / baseline["cpu_seconds"],
        "wall_ratio": handler["seconds"] / baseline["seconds"],
        "baseline_wall_median_ms": baseline["seconds"] * 1000,
        "handler_wall_median_ms": handler["seconds"] * 1000,
        "baseline_ms": [s * 1000 for s in samples["baseline"]["cpu_seconds"]],
        "handler_ms": [s * 1000 for s in samples["handler"]["cpu_seconds"]],
        "baseline_peak_rss_mb_median": baseline["peak_rss_mb"],
        "handler_peak_rss_mb_median": handler["peak_rss_mb"],
    }


def measure_peak_rss(
    stack: LocalStack,
    function: LocalFunction,
    event: dict[str, Any],
    names: OperationNames,
    *,
    overhead_runs: int = OVERHEAD_RUNS,
) -> dict[str, Any]:
    """One real invocation in a fresh process (its peak RSS); the endpoint's call log is sliced around it as a
    cross-check. Then, in the same process, the warm per-event overhead (child.py: the handler on instant answers
    versus the same boto3 calls made bare), unless overhead_runs is 0."""
    env = lambda_environment(stack, function)
    before = len(stack.calls())
    args = [_code_dir(function), function.handler, function.arn]
    data = run_child("invoke", args, env, event=event, extra=[str(overhead_runs)])
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


def rss_inventory_event(stack: LocalStack, owner: str) -> dict[str, Any]:
    """The scheduled event of the inventory's Reconcile rule, as the stack fires it, captured."""
    with probing(stack, owner, INVENTORY, capture_only=True) as inventory:
        stack.run_schedule(owner, rule_suffix="Reconcile")
    events = [e for e in inventory.captured if e.get("detail-type") == "Scheduled Event"]
    if len(events) != 1:
        raise BenchError(f"expected one scheduled event for the inventory RSS run, got {len(events)}")
    return events[0]


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


def rss_relay_event() -> dict[str, Any]:
    """The enforcement notice of events/ (the fixture source: from the bench's trusted owner to its consumer), with
    fresh ids: the relay publishes it (once)."""
    event: dict[str, Any] = json.loads((ROOT / "events" / "eventbridge_enforcement_notice.json").read_text())
    event["id"] = f"bench-{uuid.uuid4()}"
    event["detail"]["notice_id"] = uuid.uuid4().hex
    return event


def rss_audit_event(stack: LocalStack) -> dict[str, Any]:
    """The scheduled event of the audit's Daily rule, as the stack fires it, captured."""
    with probing(stack, CONSUMER, AUDIT, capture_only=True) as audit:
        stack.run_schedule(CONSUMER, rule_suffix="Daily")
    events = [e for e in audit.captured if e.get("detail-type") == "Scheduled Event"]
    if len(events) != 1:
        raise BenchError(f"expected one scheduled event for the audit RSS run, got {len(events)}")
    return events[0]
