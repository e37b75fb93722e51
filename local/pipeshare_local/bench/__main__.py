"""`make bench` (python -m pipeshare_local.bench): what the tests cannot assert, each figure next to its target.

- start-to-alert latency (latency.py): the forwarded path (wall, target <= 2 s) and the inferred one (the settle period
  on the scenario clock, then wall);
- cold init ratio of every function (cold.py, fresh processes of child.py: the handler module imported as Lambda does
  + its adapters' boto3 clients, versus `import boto3` + the same services' clients; target <= 1.5, aim 1.25);
- peak RSS of every function exercised on a real event (one real invocation in a fresh process; target <= 90 MB);
- warm per-event overhead ratio (same process, after that invocation: the handler invoked warm on that invocation's
  answers replayed instantly - no network - versus the same boto3 calls made bare; informational);
- worst cases (worst.py): one sweep over 100 and 1,000 untrusted invitations whose events were lost (wall time against
  the function's Timeout), the 200-step execution with every step event lost (final in one invocation), and the
  running-estimate tick over 10 running executions (informational).

AWS call counts per decision, notification, alert, estimate and stop are asserted by the integration tests, not here.
`--readme` prints the README's benchmark table from the last report instead of running the bench.
Exit status: 1 when a stated target is missed or a measurement could not be taken; informational rows never fail.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeshare_local.bench import cold, latency, worst
from pipeshare_local.bench.harness import (
    ACCEPT,
    AUDIT,
    CONSUMER,
    CONSUMER_HANDLERS,
    CONSUMER_PARAMETERS,
    ESTIMATE,
    FORWARDER,
    FORWARDING_OWNER,
    INVENTORY,
    MANY_STEPS,
    NOTIFY,
    NOTIFY_OWNER,
    OWNER_HANDLERS,
    RELAY,
    SETTLE,
    STARTER,
    TRACK,
    TRACKED_OWNER,
    TRACKING_STEPS,
    WATCH,
    BenchError,
    OperationNames,
    Owners,
    _progress,
    define_steps,
    deploy_owner_pair,
    execution_record,
    owner_alerts,
    probing,
    settle_period,
)
from pipeshare_local.bench.report import _load_average, build_table, machine, readme_table
from pipeshare_local.runtime import LocalFunction
from pipeshare_local.stack import LocalStack
from pipeshare_local.template import ROOT

DEFAULT_OUT = ROOT / "reports" / "bench.json"


class Bench:
    def __init__(self, runs: int, latency_runs: int = 7, *, deliver_step_ends: bool = False) -> None:
        self.runs = runs
        self.latency_runs = latency_runs
        self.deliver_step_ends = deliver_step_ends
        self.results: dict[str, Any] = {"peak_rss": {}}
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

    def rss(self, stack: LocalStack, function: LocalFunction, event: dict[str, Any]) -> dict[str, Any]:
        data = cold.measure_peak_rss(stack, function, event, self.names)
        self.results["peak_rss"][function.logical_id] = data
        if data.get("error"):
            raise BenchError(f"{function.logical_id} failed on its real event: {str(data['error']).splitlines()[0]}")
        return data

    def run(self) -> None:
        environments: dict[str, dict[str, str]] = {}
        functions: dict[str, LocalFunction] = {}
        with LocalStack() as stack:
            self.consumer_side(stack, functions, environments)
            stack.deliver()  # settle what the RSS invocations caused (not measured)
            stack.reset()  # the owner side starts from nothing: only its own accounts are deployed
            self.owner_side(stack, functions, environments)
        load: dict[str, Any] = {"load_average_before": _load_average()}
        for handler in (*CONSUMER_HANDLERS, *OWNER_HANDLERS):  # no network needed: the stack is down
            if handler not in functions:
                continue
            with self.step(f"cold init ({handler}, {cold.WARMUP_RUNS}+{self.runs} runs per variant)"):
                load[handler] = cold.measure_cold_init(functions[handler], environments[handler], self.runs)
        load["load_average_after"] = _load_average()
        self.results["cold_init"] = load

    def consumer_side(
        self, stack: LocalStack, functions: dict[str, LocalFunction], environments: dict[str, dict[str, str]]
    ) -> None:
        owners = Owners(stack)
        consumer = stack.deploy(CONSUMER, CONSUMER_PARAMETERS)
        for handler in CONSUMER_HANDLERS:
            functions[handler] = consumer.functions[handler]
            environments[handler] = cold.lambda_environment(stack, functions[handler])
        with self.step(f"peak RSS and warm overhead ({ACCEPT})"):
            data = self.rss(stack, functions[ACCEPT], cold.rss_accept_event(stack, owners))
            if (data["result"] or {}).get("accepted") != 1:
                raise BenchError(f"the RSS invocation did not accept its invitation: {data['result']}")
        with self.step(f"peak RSS and warm overhead ({NOTIFY})"):
            with probing(stack, CONSUMER, NOTIFY, capture_only=True) as notifier:
                stack.deliver()  # the acceptance's stream records
            if not notifier.captured:
                raise BenchError("no stream batch was captured for NotifyDecisionsFunction")
            self.rss(stack, functions[NOTIFY], notifier.captured[0])
        with self.step(f"peak RSS and warm overhead ({AUDIT})"):
            self.rss(stack, functions[AUDIT], cold.rss_audit_event(stack))
        with self.step(f"peak RSS and warm overhead ({RELAY})"):
            data = self.rss(stack, functions[RELAY], cold.rss_relay_event())
            if (data["result"] or {}).get("status") != "relayed":
                raise BenchError(f"the relay's RSS invocation did not relay the notice: {data['result']}")
        stack.deliver()
        with self.step(f"invitation flood: one sweep over {' and '.join(map(str, worst.FLOOD_SIZES))} invitations"):
            self.results["flood"] = worst.measure_flood(stack, owners, self.names)

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
            environments[handler] = cold.lambda_environment(stack, functions[handler])
        with self.step("owner side: deploy a second owner and a consumer with the forwarder"):
            forwarding = deploy_owner_pair(stack, owners, FORWARDING_OWNER, FORWARDER, forward=True)
            define_steps(stack, FORWARDING_OWNER, forwarding, TRACKING_STEPS)
        with self.step(f"latency, inferred start: settle period + processing ({self.latency_runs} runs)"):
            self.results["inferred_start_to_alert"] = latency.measure_inferred_start_to_alert(
                stack, TRACKED_OWNER, STARTER, pipeline, settle, self.latency_runs
            )
        if forwarding:
            with self.step(f"latency, forwarded start -> owner alert ({self.latency_runs} runs)"):
                self.results["start_to_alert"] = latency.measure_start_to_alert(
                    stack, FORWARDING_OWNER, FORWARDER, forwarding, self.latency_runs
                )
        self.owner_rss(stack, functions, pipeline, settle)
        self.owner_costs(stack, pipeline)

    def owner_rss(
        self, stack: LocalStack, functions: dict[str, LocalFunction], pipeline: str, settle: timedelta
    ) -> None:
        execution = ""
        with self.step(f"peak RSS and warm overhead ({TRACK})"):
            data = self.rss(stack, functions[TRACK], cold.rss_track_event(stack, TRACKED_OWNER, STARTER, pipeline))
            result = data["result"] or {}
            outcome = tuple(result.get(k) for k in ("status", "source", "alerts", "settling"))
            if outcome != ("recorded", "unknown", [], ["start"]):
                raise BenchError(f"the RSS invocation did not record the start unclaimed and schedule it: {result}")
            execution = str(result.get("execution_arn") or "")
        if execution:
            with self.step(f"peak RSS and warm overhead ({SETTLE}, then {NOTIFY_OWNER} on its alert)"):
                event = cold.rss_settle_event(stack, TRACKED_OWNER, execution, settle)
                result = self.rss(stack, functions[SETTLE], event)["result"] or {}
                record = execution_record(stack, TRACKED_OWNER, execution)
                if result.get("batchItemFailures") != [] or record.get("attribution_source") != "inferred":
                    raise BenchError(f"the settle RSS invocation did not infer the start: {result}, {record}")
                with (
                    probing(stack, TRACKED_OWNER, NOTIFY_OWNER, capture_only=True) as notifier,
                    probing(stack, TRACKED_OWNER, WATCH, capture_only=True) as watcher,
                ):
                    stack.deliver()  # the settle's stream records: the alert to publish, the spend to watch
                if not notifier.captured:
                    raise BenchError("no stream batch was captured for NotifyOwnerFunction")
                self.rss(stack, functions[NOTIFY_OWNER], notifier.captured[0])
                if len(owner_alerts(stack, TRACKED_OWNER, execution)) != 1:
                    raise BenchError("the start alert was not published once by the NotifyOwnerFunction RSS run")
                if watcher.captured:
                    self.rss(stack, functions[WATCH], watcher.captured[0])
        with self.step(f"peak RSS and warm overhead ({INVENTORY})"):
            data = self.rss(stack, functions[INVENTORY], cold.rss_inventory_event(stack, TRACKED_OWNER))
            if (data["result"] or {}).get("status") != "ok":
                raise BenchError(f"the inventory RSS invocation did not reconcile: {data['result']}")
        stack.deliver()  # publish what the RSS invocations caused (not measured)

    def owner_costs(self, stack: LocalStack, pipeline: str) -> None:
        """EstimateCostFunction, on the tracked owner's pipeline (its consumer starts it by ARN)."""
        with self.step(f"peak RSS and warm overhead ({ESTIMATE})"):
            event = cold.rss_estimate_event(stack, TRACKED_OWNER, STARTER, pipeline)
            function = stack.deployments[TRACKED_OWNER].functions[ESTIMATE]
            data = self.rss(stack, function, event)
            if (data["result"] or {}).get("status") != "finalised":
                raise BenchError(f"the estimator RSS invocation did not finalise: {data['result']}")
        with self.step(f"one running-estimate tick over {worst.TICK_EXECUTIONS} running executions"):
            self.results["running_tick"] = worst.measure_running_tick(
                stack, TRACKED_OWNER, STARTER, pipeline, self.names
            )
        with self.step(f"one estimate of a {MANY_STEPS}-step execution"):
            self.results["many_steps_estimate"] = worst.measure_many_steps(
                stack, TRACKED_OWNER, STARTER, pipeline, self.names, deliver_step_ends=self.deliver_step_ends
            )
        stack.deliver()  # publish what the estimates caused (not measured)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeshare_local.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed cold-init runs per variant (>= 7; default 7)")
    parser.add_argument("--latency-runs", type=int, default=7, help="start -> alert runs, per path (>= 5; default 7)")
    parser.add_argument(
        "--deliver-step-ends",
        action="store_true",
        help=f"the {MANY_STEPS}-step execution's step-ended events reach the estimator too (default: held back)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument(
        "--readme", action="store_true", help="print the README's benchmark table from the report (--out); no run"
    )
    args = parser.parse_args(argv)
    if args.readme:
        sys.stdout.write(readme_table(json.loads(args.out.read_text())) + "\n")
        return 0
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
            "forwarded_consumer_start_to_owner_alert_seconds": latency.LATENCY_TARGET_S,
            "cold_init_ratio": cold.INIT_RATIO_TARGET,
            "cold_init_ratio_aim": cold.INIT_RATIO_AIM,
            "peak_rss_mb": cold.RSS_TARGET_MB,
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
    load = bench.results.get("cold_init", {})
    out(
        f"load average {load.get('load_average_before')} -> {load.get('load_average_after')} during the cold init "
        "runs (1 min; other processes on the machine make timings noisy)\n\n"
    )
    out(table.markdown() + "\n")
    missed = table.missed
    verdict = f"{len(missed)} target(s) missed or not measured" if missed else "every stated target met"
    out(f"\n{verdict}; rows marked info are informational; report: {args.out} ({elapsed:.0f} s)\n")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
