"""The bench's report: one row per figure, each next to its target (a missed target fails `make bench`) or marked
informational; the JSON report, the markdown table, and the README's benchmark table rendered from the JSON."""

from __future__ import annotations

import os
import platform
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeshare_local.bench.cold import INIT_RATIO_AIM, INIT_RATIO_TARGET, RSS_TARGET_MB
from pipeshare_local.bench.harness import ACCEPT, CONSUMER_HANDLERS, ESTIMATE, OWNER_HANDLERS
from pipeshare_local.bench.latency import LATENCY_TARGET_S
from pipeshare_local.bench.worst import FLOOD_SIZES, TICK_EXECUTIONS

INFO = "info"
HANDLERS = (*CONSUMER_HANDLERS, *OWNER_HANDLERS)


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

    def add(self, metric: str, handler: str, value: str, target: str, ok: bool | None) -> None:
        """ok None: informational (no target stated)."""
        verdict = INFO if ok is None else ("yes" if ok else "NO")
        self.rows.append({"metric": metric, "handler": handler, "value": value, "target": target, "ok": verdict})

    @property
    def missed(self) -> list[dict[str, str]]:
        return [r for r in self.rows if r["ok"] in ("NO", "ERROR")]

    def markdown(self, columns: tuple[str, ...] = ("metric", "handler", "value", "target", "ok")) -> str:
        return markdown(self.rows, columns)


def markdown(rows: list[dict[str, str]], columns: tuple[str, ...], *, padded: bool = True) -> str:
    """A markdown table; padded (aligned columns, for the terminal) or compact (the README's style)."""
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) if padded else 0 for c in columns}
    rule = "|" + "|".join("-" * (widths[c] + 2) if padded else "---" for c in columns) + "|"
    lines = ["| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |", rule]
    lines += ["| " + " | ".join(r[c].ljust(widths[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _short(handler: str) -> str:
    return handler.removesuffix("Function")


def build_table(results: dict[str, Any], errors: dict[str, str], runs: int) -> Table:
    table = Table()
    _latency_rows(table, results)
    _worst_rows(table, results)
    for handler in HANDLERS:
        init = results.get("cold_init", {}).get(handler)
        if init:
            table.add(
                f"cold init ratio, CPU time, median of {runs} (handler import + clients / `import boto3` + same "
                "clients; the wall-clock ratio is beside it in the console table and reports/bench.json)",
                handler,
                f"{init['ratio']:.2f} ({init['handler_median_ms']:.0f} ms / {init['baseline_median_ms']:.0f} ms CPU; "
                f"wall {init.get('wall_ratio', float('nan')):.2f})",
                f"<= {INIT_RATIO_TARGET:g} (aim {INIT_RATIO_AIM:g})",
                init["ratio"] <= INIT_RATIO_TARGET,
            )
    for handler in HANDLERS:
        init = results.get("cold_init", {}).get(handler)
        if init and "floor_ratio" in init:
            table.add(
                f"cold init floor, CPU time, median of {runs} (`import boto3` + same clients + every other module the "
                "handler loaded - pydantic, Powertools, the standard library they use -, no pipeshare code / `import "
                "boto3` + same clients)",
                handler,
                f"{init['floor_ratio']:.2f} ({init['floor_median_ms']:.0f} ms)",
                "-",
                None,
            )
    for handler in HANDLERS:
        rss = results.get("peak_rss", {}).get(handler)
        if rss:
            table.add(
                "peak RSS, one real invocation (fresh process)",
                handler,
                f"{rss['peak_rss_mb']:.1f} MB",
                f"<= {RSS_TARGET_MB:g} MB",
                rss["peak_rss_mb"] <= RSS_TARGET_MB and rss["error"] is None,
            )
    for handler in HANDLERS:
        overhead = (results.get("peak_rss", {}).get(handler) or {}).get("overhead")
        if overhead is None:
            continue
        if overhead.get("error") or overhead.get("ratio") is None:
            value = f"not measured: {str(overhead.get('error') or 'no AWS call made warm').splitlines()[0][:120]}"
        else:
            value = (
                f"{overhead['ratio']:.2f} ({overhead['handler_median_ms']:.2f} ms / {overhead['bare_median_ms']:.2f} ms"
                f", {len(overhead['warm_calls'])} calls, median of {overhead['runs']})"
            )
        table.add(
            "warm per-event overhead ratio (handler on instant stubbed AWS / the same boto3 calls bare)",
            handler,
            value,
            "-",
            None,
        )
    for name, message in errors.items():
        table.rows.append(
            {"metric": name, "handler": "-", "value": f"ERROR: {message[:160]}", "target": "-", "ok": "ERROR"}
        )
    return table


def _latency_rows(table: Table, results: dict[str, Any]) -> None:
    forwarded = results.get("start_to_alert")
    if forwarded:
        table.add(
            "consumer with the forwarder: StartPipelineExecution -> owner alert readable from SNS (local)",
            "Track + NotifyOwner",
            f"{forwarded['median_s']:.2f} s median of {forwarded['runs']} "
            f"({forwarded['min_s']:.2f}-{forwarded['max_s']:.2f})",
            f"<= {LATENCY_TARGET_S:g} s",
            forwarded["median_s"] <= LATENCY_TARGET_S,
        )
    inferred = results.get("inferred_start_to_alert")
    if inferred:
        table.add(
            "consumer without the forwarder: start -> inferred alert (settle period on the scenario clock, then wall)",
            "Track -> SettleQueue -> SettleAttribution + NotifyOwner",
            f"{inferred['settle_minutes']:g} min of scenario time ({inferred['settle_at_scenario_median_s']:.1f} s "
            f"start call -> settle, median), then {inferred['median_s']:.2f} s median of {inferred['runs']} "
            f"({inferred['min_s']:.2f}-{inferred['max_s']:.2f}) wall to the alert",
            "-",
            None,
        )


def _worst_rows(table: Table, results: dict[str, Any]) -> None:
    flood = results.get("flood")
    if flood:
        for size in FLOOD_SIZES:
            run = flood[str(size)]
            table.add(
                f"invitation flood: one sweep over {size:,} untrusted invitations (fresh process)",
                ACCEPT,
                f"{run['wall_seconds']:.1f} s, {run['calls_per_invitation']:.2f} calls per invitation, "
                f"peak RSS {run['peak_rss_mb']:.1f} MB",
                f"< {flood['timeout_seconds']:.0f} s (Timeout)",
                run["wall_seconds"] < flood["timeout_seconds"],
            )
        table.add(
            f"invitation flood: peak RSS {max(FLOOD_SIZES):,} / {min(FLOOD_SIZES):,}",
            ACCEPT,
            f"{flood['rss_ratio_large_to_small']:.2f}",
            "-",
            None,
        )
    many = results.get("many_steps_estimate")
    if many:
        final = many["finalised"]
        table.add(
            f"{many['steps_defined']}-step execution, every step event lost: the finalising invocation",
            ESTIMATE,
            f"final in {final['finalising_invocations']} invocation{'s' * (final['finalising_invocations'] != 1)}, "
            f"{final['wall_ms'] / 1000:.1f} s locally "
            f"({final['endpoint_ms'] / 1000:.1f} s in the local endpoint), {final['calls']} calls "
            f"(1 + {final['step_pages']} pages + {final['jobs']} jobs = {final['formula']})",
            "final in 1 invocation",
            bool(final["one_invocation"]),
        )
    tick = results.get("running_tick")
    if tick:
        table.add(
            f"one running-estimate tick over {TICK_EXECUTIONS} running executions",
            ESTIMATE,
            f"{tick['wall_ms']:.0f} ms locally, {tick['calls']} calls (bound {tick['bound']})",
            "-",
            None,
        )


README_COLUMNS = ("metric", "handler", "value", "target")


def readme_table(report: dict[str, Any]) -> str:
    """The README's benchmark table, rendered from a bench report (reports/bench.json): one row per figure, the
    per-function rows of one metric folded into one row (handlers and values joined by " / ")."""
    rows: list[dict[str, str]] = []
    folded: dict[tuple[str, str], dict[str, Any]] = {}
    per_function = Counter(r["metric"] for r in report["table"] if r["handler"] in HANDLERS)
    for row in report["table"]:
        if per_function[row["metric"]] > 1 and row["ok"] != "ERROR":
            key = (row["metric"], row["target"])
            if key not in folded:
                folded[key] = {"metric": row["metric"], "handlers": [], "values": [], "target": row["target"], "ok": []}
                rows.append(folded[key])  # type: ignore[arg-type]
            value = row["value"].split(" (", 1)[0] if "ratio" in row["metric"] else row["value"].removesuffix(" MB")
            folded[key]["handlers"].append(_short(row["handler"]))
            folded[key]["values"].append(value)
            folded[key]["ok"].append(row["ok"])
        else:
            rows.append(dict(row))
    out = []
    for row in rows:
        if "handlers" in row:
            unit = " MB" if str(row["metric"]).startswith("peak RSS") else ""
            missed = [h for h, ok in zip(row["handlers"], row["ok"], strict=True) if ok == "NO"]
            target = str(row["target"]) + (f" - **not met by {', '.join(missed)}**" if missed else "")
            if all(ok == INFO for ok in row["ok"]):
                target = "- (informational)"
            out.append(
                {
                    "metric": str(row["metric"]),
                    "handler": " / ".join(row["handlers"]),
                    "value": " / ".join(row["values"]) + unit,
                    "target": target,
                }
            )
        else:
            target = row["target"] if row["ok"] != INFO else "- (informational)"
            if row["ok"] == "NO":
                target += " - **not met**"
            out.append({"metric": row["metric"], "handler": row["handler"], "value": row["value"], "target": target})
    return markdown(out, README_COLUMNS, padded=False)
