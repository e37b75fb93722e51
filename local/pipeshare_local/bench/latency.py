"""Start-to-alert latency on the local stack (wall time; the settle period on the scenario clock)."""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta
from typing import Any

from pipeshare_local.bench.harness import (
    SETTLE,
    BenchError,
    _settles_of,
    owner_alerts,
    probing,
    start_execution,
)
from pipeshare_local.stack import LocalStack

LATENCY_TARGET_S = 2.0  # forwarded start -> owner alert readable
LATENCY_TIMEOUT_S = 30.0  # one run gives up (an error) when the alert is not readable by then
SETTLE_LEAD = timedelta(seconds=5)  # the inferred path: the last scenario seconds before the settle is due, timed
SETTLE_OVERRUN = timedelta(minutes=1)  # scenario time past the settle period before a run gives up (an error)


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
