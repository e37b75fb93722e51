"""The scenario report (`pipeshare local run --json`): the owner side read from the OwnerTable (executions with their
attribution evidence, estimates, month-to-date spend, the budget ledger), and a timeline that stamps each invocation
with its own scenario time, says what it changed, and counts the quiet ones (docs/scenarios.md, Report schema).

One scenario run is shared by the module: a consumer without the forwarder starts a one-hour training run on the
owner's pipeline, the clock advances two hours, the run is inferred after the settle period, crosses its consumer's
budget (50% and 100% at once) and is stopped by enforcement.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pipeshare_local.cli import _print_human
from pipeshare_local.scenario import Scenario, run_scenario
from pipeshare_local.stack import LocalStack
from tests.conftest import load_event
from tests.integration.stackhelpers import CONSUMER as NOTIFY_CONSUMER
from tests.integration.stackhelpers import OWNER as NOTIFY_OWNER

pytestmark = pytest.mark.xdist_group("scenario-report")

START = datetime.fromisoformat("2026-06-01T08:00:00+00:00")
OWNER, CONSUMER = "111111111111", "444444444444"
SCENARIO: dict[str, Any] = {
    "name": "report-sections",
    "start": START.isoformat(),
    "accounts": {
        "owner": {"id": OWNER, "role": "pipeline owner"},
        "consumer": {"id": CONSUMER, "role": "consumer without the forwarder"},
    },
    "deploy": [
        {
            "account": "owner",
            "mode": "owner",
            "parameters": {"BudgetPolicyParameterName": "/pipeshare/budgets", "PolicyCacheSeconds": 0},
        },
        {"account": "consumer", "parameters": {"TrustedOwnerAccountIds": OWNER}},
    ],
    "steps": [
        {"create_pipeline": {"account": "owner", "name": "train"}},
        {
            "define_steps": {
                "account": "owner",
                "pipeline": "train",
                "steps": [
                    {
                        "name": "Train",
                        "type": "Training",
                        "duration_seconds": 3600,
                        "instance_type": "ml.m5.xlarge",
                        "instance_count": 2,
                    }
                ],
            }
        },
        {
            "share": {
                "account": "owner",
                "name": "train-share",
                "resources": ["pipeline:train"],
                "principals": ["consumer"],
                "permission": "allow-execution",
            }
        },
        {
            "set_budget_policy": {
                "account": "owner",
                "policy": {
                    "version": 1,
                    "consumers": {
                        CONSUMER: {
                            "monthly_limit": "0.05",
                            "thresholds": [50, 100],
                            "enforce": {"stop_executions": True},
                            "count_inferred": True,
                        }
                    },
                },
            }
        },
        {"start_execution": {"account": "consumer", "pipeline": "train", "as": "run1"}},
        {"advance": {"hours": 2}},
        {"expect_execution": {"owner": "owner", "execution": "run1", "status": "Stopped"}},
    ],
}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = run_scenario(Scenario.model_validate(SCENARIO)).as_dict()
    assert result["ok"], [e["text"] for e in result["expectations"] if not e["ok"]]
    return json.loads(json.dumps(result, default=str))  # as `--json` prints it


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _advance_entries(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The timeline entries of the `advance` step: from its own entry up to the next step's first entry."""
    timeline = report["timeline"]
    start = next(i for i, e in enumerate(timeline) if e["step"] == "advance")
    end = next(i for i, e in enumerate(timeline) if e["step"] == "expect")
    return timeline[start:end]


# ------------------------------------------------------------------ the owner side


def test_executions_carry_the_attribution_and_the_evidence_of_each_action(report: dict[str, Any]) -> None:
    [row] = report["executions"]
    assert row["owner"] == "owner"
    assert row["label"] == "run1"
    assert row["pipeline"] == "train"
    assert row["status"] == "Stopped"
    assert row["attribution_source"] == "inferred"
    assert row["initiator"] == "consumer"
    assert row["actions"] == ["start", "stop"]
    # the start was inferred (no CloudTrail record: no event, no principal); the stop is the owner's enforcement,
    # evidenced by its own CloudTrail record, signed by the budget watcher's role
    start, stop = row["evidence"]["start"], row["evidence"]["stop"]
    assert (start["source"], start["account"], start["candidates"], start["event_id"]) == (
        "inferred",
        "consumer",
        ["consumer"],
        None,
    )
    assert (stop["source"], stop["account"]) == ("owner", "owner")
    assert stop["event_id"]
    assert "WatchBudgetsFunction" in stop["principal"]
    assert _time(row["ended_at"]) - _time(row["started_at"]) < timedelta(hours=1)  # stopped before its hour


def test_estimates_are_listed_per_execution_with_whose_spend_holds_them(report: dict[str, Any]) -> None:
    [estimate] = report["estimates"]
    assert estimate["label"] == "run1"
    assert estimate["pipeline"] == "train"
    assert estimate["consumer"] == "consumer"
    assert estimate["spend_holder"] == f"consumer:{CONSUMER}:inferred"
    assert (estimate["final"], estimate["complete"], estimate["unpriced"]) == (True, True, [])
    assert (estimate["month"], estimate["status"], estimate["attempt"]) == ("2026-06", "Stopped", 1)
    assert Decimal(estimate["total_usd"]) >= Decimal("0.05")  # over the budget it crossed


def test_spend_is_given_per_consumer_and_per_pipeline_for_the_month(report: dict[str, Any]) -> None:
    total = report["estimates"][0]["total_usd"]
    lines = {(r["line"], r["consumer"], r["pipeline"]): r for r in report["spend"]}
    assert {r["month"] for r in report["spend"]} == {"2026-06"}
    consumer = lines[("consumer", "consumer", None)]
    assert (consumer["total_usd"], consumer["confirmed_usd"]) == (total, "0")  # inferred: nothing confirmed
    assert lines[("consumer-pipeline", "consumer", "train")]["total_usd"] == total
    assert lines[("pipeline", None, "train")]["total_usd"] == total
    # counted as unattributed while the run was unclaimed, moved to the consumer once inferred
    assert Decimal(lines[("unattributed-pipeline", None, "train")]["total_usd"]) == 0


def test_the_budget_ledger_lists_thresholds_alerted_and_enforcement_actions(report: dict[str, Any]) -> None:
    ledger = report["budget_ledger"]
    assert [(r["action"], r.get("threshold_percent"), r.get("label")) for r in ledger] == [
        ("threshold", 50, None),
        ("threshold", 100, None),
        ("stop-execution", None, "run1"),
    ]
    for row in ledger:
        assert (row["owner"], row["month"], row["consumer"], row["pipeline"]) == ("owner", "2026-06", "consumer", None)
        assert (row["dry_run"], row["failed"], row["monthly_limit_usd"]) == (False, False, "0.05")
        assert Decimal(row["spend_usd"]) >= Decimal("0.05")
    thresholds, stop = ledger[:2], ledger[2]
    # the thresholds reached together are one message, written with the last of them
    assert thresholds[0]["alert_subject"] is None
    assert "100%" in thresholds[1]["alert_subject"]
    assert stop["attempt"] == 1
    assert stop["execution_arn"] == report["executions"][0]["execution_arn"].lower()
    assert "budget enforced" in stop["alert_subject"]


# ------------------------------------------------------------------ the timeline


def test_each_invocation_is_stamped_with_the_scenario_time_it_ran(report: dict[str, Any]) -> None:
    # Given the two-hour advance: its entry is stamped when it starts
    entries = _advance_entries(report)
    began = _time(entries[0]["at"])
    invoked = [e for e in entries if "function" in e.get("details", {})]
    stamps = [_time(e["at"]) for e in invoked]
    # Then the invocations it ran are stamped through it, in time order, not at its end
    assert stamps == sorted(stamps)
    assert len(set(stamps)) >= 3
    assert all(began <= at <= began + timedelta(hours=2) for at in stamps)
    assert stamps[-1] < began + timedelta(minutes=30)  # everything happened early; the end is two hours on
    # the running estimates tick every 5 minutes; the settle queue infers the initiator after its settle period
    # (InferenceSettleMinutes, 10), and the budget is enforced then
    ticks = [_time(e["at"]) for e in invoked if e["details"]["function"] == "EstimateCostFunction"]
    assert ticks[:2] == sorted(ticks[:2])
    assert ticks[1] - ticks[0] == timedelta(minutes=5)
    [budget] = [e for e in invoked if e["step"] == "budget"]
    assert timedelta(minutes=10) <= _time(budget["at"]) - began < timedelta(minutes=11)
    # and the whole timeline reads in the order things happened
    assert [e["at"] for e in report["timeline"]] == sorted(e["at"] for e in report["timeline"])


def test_listed_invocations_say_what_they_changed_and_match_the_invocations(report: dict[str, Any]) -> None:
    invocations = report["invocations"]
    listed = [e for e in report["timeline"] if "function" in e.get("details", {})]
    assert listed
    for entry in listed:
        details = entry["details"]
        assert details["changes"], entry  # listed: it changed something (none of this run's failed)
        assert any(
            i["function"] == details["function"]
            and i["changes"] == details["changes"]
            and _time(i["at"]).replace(microsecond=0) == _time(entry["at"])
            for i in invocations
        ), entry
    [budget] = [e for e in listed if e["step"] == "budget"]
    assert budget["details"]["changes"]["sagemaker:StopPipelineExecution"] == 1
    assert "StopPipelineExecution" in budget["text"]
    [*_, notify] = [e for e in listed if e["details"]["function"] == "NotifyOwnerFunction"]
    assert notify["details"]["changes"]["sns:Publish"] >= 1
    assert "message(s) published" in notify["text"]
    assert "record(s) written" in notify["text"]


def test_quiet_invocations_are_counted_not_listed(report: dict[str, Any]) -> None:
    invocations = report["invocations"]
    quiet = [i for i in invocations if not i["changes"] and not i["error"] and not i["metrics"].get("InvalidEvent")]
    listed = [e for e in report["timeline"] if "function" in e.get("details", {})]
    counts = [e for e in report["timeline"] if e["step"] == "quiet"]
    # every invocation is either listed or counted, once
    assert len(listed) + len(quiet) == len(invocations)
    assert sum(e["details"]["count"] for e in counts) == len(quiet) == report["quiet_invocations"]
    # the advance's quiet ones in one entry at its end: the sweeps and the estimate ticks with nothing running
    [advance_quiet] = [e for e in _advance_entries(report) if e["step"] == "quiet"]
    functions = advance_quiet["details"]["functions"]
    assert functions["AcceptInvitationsFunction"] >= 1
    assert functions["EstimateCostFunction"] >= 10
    assert advance_quiet["details"]["count"] == sum(functions.values())
    assert _time(advance_quiet["details"]["first"]) < _time(advance_quiet["details"]["last"])
    assert advance_quiet["text"].startswith(f"{advance_quiet['details']['count']} invocation(s) changed nothing")


def test_the_human_report_shows_the_owner_sections(report: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    _print_human(report)
    text = capsys.readouterr().out
    total = report["estimates"][0]["total_usd"]
    lines = text.splitlines()
    run_line = next(line for line in lines if line.startswith("run1 ") and "started by" in line)
    assert "Stopped" in run_line
    assert "started by consumer (inferred)" in run_line
    assert "stop: owner (owner)" in run_line
    estimate_line = next(line for line in lines if line.startswith("run1 ") and total in line)
    assert "final" in estimate_line
    assert "held by consumer" in estimate_line
    assert any(line.startswith("2026-06 consumer:") and f"consumer {total} (confirmed 0)" in line for line in lines)
    ledger = [line for line in lines if line.startswith("2026-06 consumer ")]
    assert [line.split()[2] for line in ledger] == ["threshold", "threshold", "stop-execution"]
    assert "spend" in ledger[-1]
    assert "of 0.05" in ledger[-1]
    assert f"{report['quiet_invocations']} of them changed nothing" in text


def test_what_a_function_changed_counts_its_successful_writes_only(stack: LocalStack) -> None:
    # Given a consumer's notifier, watched as an invocation of it starts
    deployment = stack.deploy(NOTIFY_CONSUMER, {"TrustedOwnerAccountIds": NOTIFY_OWNER})
    changes = stack.watch_changes(deployment.functions["NotifyDecisionsFunction"])
    ddb = stack.function_client(NOTIFY_CONSUMER, "NotifyDecisionsFunction", "dynamodb")
    table = deployment.refs["ShareTable"]
    item = {"pk": {"S": "PUBLISHED"}, "sk": {"S": "publish#x"}, "status": {"S": "COMPLETED"}}
    # When it writes once, has the same conditional write refused, reads, and writes two items in one transaction
    ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    ddb.get_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    ddb.transact_write_items(
        TransactItems=[{"Put": {"TableName": table, "Item": {**item, "sk": {"S": f"publish#{n}"}}}} for n in ("y", "z")]
    )
    stack.client(NOTIFY_CONSUMER, "dynamodb").put_item(TableName=table, Item={**item, "sk": {"S": "publish#tool"}})
    # Then the change is the successful write and the transaction's two items: not the refused write, the read, or
    # a call the function did not sign
    assert changes() == {"dynamodb:PutItem": 1, "dynamodb:TransactWriteItems": 2}


def test_a_repeated_delivery_that_writes_nothing_is_a_quiet_invocation(stack: LocalStack) -> None:
    # Given a consumer's notifier and the stream record of an accepted decision
    stack.deploy(NOTIFY_CONSUMER, {"TrustedOwnerAccountIds": NOTIFY_OWNER})
    function = stack.deployments[NOTIFY_CONSUMER].functions["NotifyDecisionsFunction"]
    event = load_event("ddb_stream_decision_accepted")
    # When it is delivered, then delivered again (at least once)
    first = function.invoke_once(event, trigger="test")
    again = function.invoke_once(copy.deepcopy(event), trigger="test")
    # Then the first delivery published the message and wrote its publish record; the second changed nothing
    assert first.changes == {"sns:Publish": 1, "dynamodb:PutItem": 1}
    assert again.error is None
    assert again.changes == {}
    assert first.as_dict()["changes"] == first.changes
