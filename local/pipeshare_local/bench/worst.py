"""Worst cases: the 1,000-invitation flood, the 200-step execution with every step event lost, and the cost of one
running-estimate tick."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from pipeshare_local.bench.cold import measure_peak_rss
from pipeshare_local.bench.harness import (
    ACCEPT,
    CONSUMER_PARAMETERS,
    ESTIMATE,
    MANY_STEPS_CACHE_HITS,
    STEP_CHANGE,
    UNTRUSTED_OWNER,
    BenchError,
    OperationNames,
    Owners,
    ProbeRun,
    _described,
    _event_label,
    _execution_of,
    _is_execution_end,
    _is_step_end,
    _token,
    define_steps,
    estimate_item,
    listed_steps,
    many_steps,
    probing,
    start_execution,
)
from pipeshare_local.runtime import LocalFunction
from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.stack import LocalStack

FLOOD_SIZES = (100, 1000)
FLOOD_CONSUMERS = {100: "101010101010", 1000: "121212121212"}
TICK_EXECUTIONS = 10  # running executions the measured tick finds
TICK_STEPS = (
    StepSpec(name="Train", type="Training", duration_seconds=3 * 3600, instance_type="ml.m5.4xlarge", instance_count=2),
)


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
        data = measure_peak_rss(
            stack, stack.deployments[consumer].functions[ACCEPT], acceptor.captured[0], names, overhead_runs=0
        )
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
        "step_end_invocations": len([r for r in runs if _is_step_end(r.event, execution)]),
    }


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
