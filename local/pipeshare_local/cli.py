"""The `pipeshare` command (dev tooling): `pipeshare local run SCENARIO.yaml [--json] [--out FILE]`.

Exit status: 0 when every expectation holds, 1 when one fails, 2 when the scenario is invalid (one line per problem
on stderr; nothing ran).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_WIDTH = 110


def _print_human(report: dict[str, Any]) -> None:
    out = sys.stdout.write
    out(f"\n== scenario: {report['scenario']} ==\n\n-- timeline --\n")
    for entry in report["timeline"]:
        out(f"{entry['at']}  {entry['step']:<16} {entry['text']}\n")
    out("\n-- invitations (RAM status / pipeshare record) --\n")
    for inv in report["invitations"]:
        out(
            f"{inv['share_name']!s:<24} {inv['sender']:>10} -> {inv['receiver']:<10} RAM {inv['ram_status']!s:<9} "
            f"recorded {inv['recorded_status']!s:<9} {inv['rule'] or ''}\n"
        )
        if inv.get("reason"):
            out(f"{'':<24} reason: {inv['reason'][: _WIDTH - 33]}\n")
    _print_owner(report, out)
    out("\n-- notifications published --\n")
    for note in report["notifications"]:
        out(f"[{note['account']}] {note['subject']}\n")
    events = report["events"]
    dropped = sum(1 for e in events if e["dropped"])
    pending = len(report.get("pending_events", []))
    late = f", {pending} not yet due (delayed CloudTrail records)" if pending else ""
    out(f"\n-- events: {len(events)} delivered to buses, {dropped} dropped{late} --\n")
    quiet = report.get("quiet_invocations", 0)
    out(f"-- invocations: {len(report.get('invocations', []))}, {quiet} of them changed nothing --\n")
    passed = sum(1 for e in report["expectations"] if e["ok"])
    out(f"\n-- expectations: {passed}/{len(report['expectations'])} passed --\n")
    for e in report["expectations"]:
        out(f"  {'PASS' if e['ok'] else 'FAIL'}  {e['text']}\n")
    out("\n" + ("OK" if report["ok"] else "FAILED") + "\n")


def _run_name(row: dict[str, Any]) -> str:
    return str(row.get("label") or str(row.get("execution_arn", "")).rsplit("/", 1)[-1])


def _claim(action: str, claim: dict[str, Any]) -> str:
    """A later action's attribution evidence (stop, retry...): its source, and who it names (account or candidates)."""
    who = claim.get("account") or "/".join(claim.get("candidates") or []) or "?"
    return f"{action}: {claim.get('source')} ({who})"


def _spend_cell(row: dict[str, Any]) -> str:
    confirmed = row.get("confirmed_usd")
    shown = f" (confirmed {confirmed})" if confirmed not in (None, row["total_usd"]) else ""
    return f"{row['consumer'] or row['pipeline']} {row['total_usd']}{shown}"


def _print_owner(report: dict[str, Any], out: Callable[[str], Any]) -> None:
    """The owner side, one line per execution, estimate, spend line and ledger entry (read from the OwnerTable)."""
    if report.get("executions"):
        out("\n-- executions recorded by the owner (attribution: source of the evidence; later actions) --\n")
        for row in report["executions"]:
            who = row["initiator"] or ("/".join(row["candidates"]) if row["candidates"] else "?")
            started = f"started by {who} ({row['attribution_source']})"
            others = [_claim(a, claim) for a, claim in row.get("evidence", {}).items() if a != "start"]
            out(f"{_run_name(row):<16} {row['status']!s:<10} {started:<44} {'; '.join(others)}".rstrip() + "\n")
    if report.get("estimates"):
        out("\n-- estimates (USD) --\n")
        for row in report["estimates"]:
            state = "final" if row["final"] else "running"
            unpriced = f" understated: no price for {', '.join(row['unpriced'])}" if row["unpriced"] else ""
            holder = row["consumer"] or "unattributed"
            out(
                f"{_run_name(row):<16} {row['pipeline']!s:<14} {row['total_usd']!s:>10} {state:<7} "
                f"{'complete' if row['complete'] else 'incomplete':<10} held by {holder}{unpriced}\n"
            )
    if report.get("spend"):
        out("\n-- spend, month to date (USD) --\n")
        owners = len({r["owner"] for r in report["spend"]}) > 1
        for owner, month in sorted({(r["owner"], r["month"]) for r in report["spend"]}):
            for line in ("consumer", "pipeline", "unattributed-pipeline"):  # consumer-pipeline lines: --json
                rows = [r for r in report["spend"] if (r["owner"], r["month"], r["line"]) == (owner, month, line)]
                if rows:
                    cells = ", ".join(_spend_cell(r) for r in rows)
                    out(f"{f'{owner} ' if owners else ''}{month} {line + ':':<22} {cells}\n")
    if report.get("budget_ledger"):
        out("\n-- budget ledger (thresholds alerted, enforcement) --\n")
        for row in report["budget_ledger"]:
            target = (
                f"{row['threshold_percent']}%"
                if "threshold_percent" in row
                else str(row.get("label") or row.get("share") or row.get("execution_arn") or "")
            )
            flags = "".join(f" [{flag}]" for flag in ("dry_run", "failed") if row.get(flag)).replace("_", " ")
            out(
                f"{row['month']} {row['consumer'] or row['pipeline']!s:<12} {row['action']:<22} {target:<16} spend "
                f"{row['spend_usd']} of {row['monthly_limit_usd']}{flags}\n"
            )


_MAX_PROBLEMS = 20  # problems listed for an invalid scenario (the rest are counted)


def _run(args: argparse.Namespace) -> int:
    from pipeshare_local.scenario import ScenarioError, load_scenario, run_scenario

    try:
        scenario = load_scenario(Path(args.scenario))
    except ScenarioError as exc:  # one line per problem, nothing ran
        shown = exc.problems[:_MAX_PROBLEMS]
        more = len(exc.problems) - len(shown)
        sys.stderr.write("".join(f"{line}\n" for line in shown))
        if more:
            sys.stderr.write(f"{args.scenario}: ... and {more} more problem(s)\n")
        return 2
    report = run_scenario(scenario).as_dict()
    text = json.dumps(report, indent=2, default=str, sort_keys=False)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    if args.json:
        sys.stdout.write(text + "\n")
    else:
        _print_human(report)
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pipeshare", description="pipeshare: operate it (consumer, owner, redrive) and play the local stack"
    )
    sub = parser.add_subparsers(dest="area", required=True)
    local = sub.add_parser("local", help="the embedded local stack (no AWS account, no Docker)")
    local_sub = local.add_subparsers(dest="command", required=True)
    run = local_sub.add_parser("run", help="play a scenario and print its report")
    run.add_argument("scenario", help="scenario YAML file (see docs/scenarios.md)")
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.add_argument("--out", help="also write the JSON report to this file")
    from pipeshare_local import redrive

    redrive.add_parser(sub)  # `pipeshare redrive QUEUE` (pipeshare_local/redrive.py)
    from pipeshare_local.ops import cli as ops

    ops.add_parsers(sub)  # `pipeshare consumer ...`, `pipeshare owner ...` (pipeshare_local/ops/)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    return int(args.handler(args)) if "handler" in args else _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
