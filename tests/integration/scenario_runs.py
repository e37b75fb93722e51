"""Scenario runs shared by the scenario tests and the fault suite: one fault-free run per scenario and test process.

`play` runs a scenario on a fresh local stack whose clock stands still between the scenario's jumps and whose retry
backoff takes no scenario time, so that two runs of one scenario see the same instants: a faulted run's final state
(durations and costs included) can be compared exactly with the fault-free run's. `baseline` plays each scenario once
per test process (the session cache `scenario_runs`); tests that share a scenario's baseline carry the same
`xdist_group` so that pytest-xdist (`--dist loadgroup`) runs them in one process.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pipeshare_local.faults import CallSite
from pipeshare_local.scenario import Player, Scenario, load_scenario
from pipeshare_local.settings import Fault
from pipeshare_local.stack import LocalStack
from tests.conftest import ROOT

SCENARIOS = ROOT / "scenarios"


@dataclass
class Outcome:
    ok: bool
    report: dict[str, Any]  # the scenario's report (pipeshare local run --json)
    expectations: list[str]  # the failed ones
    state: dict[str, Any]
    messages: list[tuple[str, str]]  # (pipeshare-message-id, subject) of every message received
    dead_letters: dict[str, list[dict[str, Any]]]  # queue logical ID -> message bodies
    sites: list[CallSite]  # the functions' call sites, in first-seen order
    injected: list[Any]


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[t ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(z|[+-]\d{2}:?\d{2})?")
# also: a grant's fingerprint (a hash of its share's random ARN) and an item's optimistic-concurrency version (a
# write retried after a lost answer may rewrite the same content under the next version)
_VOLATILE_KEYS = re.compile(
    r"(^|_)(at|time|timestamp|ttl|expiration|expires?|updated|created|request_id|message_id|fingerprint|version)$"
)
_HEX = re.compile(r"\b[0-9a-f]{32,64}\b")
# the random suffix SageMaker gives a pipeline step's job name
_JOB_SUFFIX = re.compile(r"((?:processing|training|transform)-job/[^\"]+)-[a-z0-9]{10}(?![a-z0-9-])")


def _normalise(value: Any, names: dict[str, str]) -> Any:
    """Volatile values out: timestamps and TTLs, request / message ids and hashes; the random part of ARNs replaced
    by what the scenario calls them (execution label, share name and receiver)."""
    if isinstance(value, dict):
        return {k: "<volatile>" if _VOLATILE_KEYS.search(k.lower()) else _normalise(v, names) for k, v in value.items()}
    if isinstance(value, list):
        items = [_normalise(v, names) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if isinstance(value, str):
        text = value.lower()
        for volatile, name in names.items():
            text = text.replace(volatile, name)
        text = _UUID.sub("<uuid>", text)
        text = _HEX.sub("<hash>", text)
        text = _JOB_SUFFIX.sub(r"\1-<suffix>", text)
        return _ISO.sub("<time>", text)
    return value


def _names(player: Player) -> dict[str, str]:
    """Random ids of the run -> stable names: executions by label, invitations and shares by name (and receiver)."""
    names = {arn.rsplit("/", 1)[-1].lower(): f"<execution {label}>" for label, arn in player.executions.items()}
    for alias, arn in player.aliases.items():  # resources the scenario created (subnets have random ids)
        names.setdefault(arn.rsplit("/", 1)[-1].lower(), f"<{alias}>")
    snapshot = player.stack.ram.snapshot()
    for share in snapshot.get("shares", []):
        names[share["arn"].rsplit("/", 1)[-1].lower()] = f"<share {share['name']}>"
    for invitation in snapshot.get("invitations", []):
        receiver = player.alias_of(invitation.get("receiver", ""))
        names[invitation["arn"].rsplit("/", 1)[-1].lower()] = f"<invitation {invitation['shareName']} {receiver}>"
    return names


def _dead_letters(stack: LocalStack) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for account, deployment in stack.deployments.items():
        for logical in deployment.refs:
            if logical.endswith("Dlq"):
                messages = stack.queue_messages(account, logical)
                if messages:
                    found[f"{account}:{logical}"] = messages
    return found


def play(scenario: Scenario, faults: list[Fault] | None = None) -> Outcome:
    """One run of the scenario on a fresh local stack, with the fault plan given."""
    settings = scenario.emulation_settings()
    settings.faults = list(faults or [])
    # the clock stands still between the scenario's jumps and a retry's backoff takes no scenario time, so that a
    # faulted run sees the fault-free run's instants (durations and costs compared exactly);
    # test_retry_backoff_passes_on_the_scenario_clock checks the default
    with LocalStack(region=scenario.region, start=scenario.start, settings=settings, clock_ticks=False) as stack:
        stack.retry_backoff_passes_time = False
        player = Player(scenario, stack)
        report = player.run().as_dict()
        names = _names(player)
        sites: dict[CallSite, None] = {}
        for _account, service, operation, caller, key in list(stack.aws_calls):
            if caller == "functions":
                sites.setdefault(CallSite(stack._signer(key), service, operation))
        notifications = [n for account in stack.deployments for n in stack.read_notifications(account)]
        unique = {n["attributes"].get("pipeshare-message-id"): n for n in notifications}
        state = {
            "records": report["records"],
            "executions": [{k: v for k, v in row.items() if k != "at"} for row in report["executions"]],
            "invitations": [
                {k: inv[k] for k in ("share_name", "sender", "receiver", "ram_status", "recorded_status", "rule")}
                for inv in report["invitations"]
            ],
            "owner_tables": {
                account: stack.table_items(account, "OwnerTable")
                for account, d in stack.deployments.items()
                if "OwnerTable" in d.refs
            },
            "notifications": [
                {"topic": n["topic"], "subject": n["subject"], "message": n["message"]} for n in unique.values()
            ],
        }
        return Outcome(
            ok=report["ok"],
            report=report,
            expectations=[e["text"] for e in report["expectations"] if not e["ok"]],
            state=_normalise(state, names),
            messages=[(n["attributes"].get("pipeshare-message-id", ""), n["subject"] or "") for n in notifications],
            dead_letters=_dead_letters(stack),
            sites=list(sites),
            injected=list(stack.faults.injected),
        )


def baseline(cache: dict[str, tuple[Scenario, Outcome]], name: str) -> tuple[Scenario, Outcome]:
    """The fault-free run of scenarios/<name>.yaml, played once per test process."""
    if name not in cache:
        scenario = load_scenario(SCENARIOS / f"{name}.yaml")
        cache[name] = (scenario, play(scenario))
    return cache[name]
