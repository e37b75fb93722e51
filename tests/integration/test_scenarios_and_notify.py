"""The demo and the CLI report, and the notification function's failure paths."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pipeshare_local.cli import main
from pipeshare_local.stack import LocalStack
from tests.conftest import ROOT, load_event
from tests.integration.scenario_runs import baseline
from tests.integration.stackhelpers import CONSUMER, OWNER, notifications, share_pipeline


@pytest.mark.xdist_group("scenario-demo")
def test_demo_scenario_plays_every_case_and_passes(scenario_runs: dict[str, Any]) -> None:
    # Given the demo scenario (the README's first command plays it)
    # When it runs on a fresh local stack (its fault-free run, shared with the fault suite)
    report = baseline(scenario_runs, "demo")[1].report
    # Then every expectation holds and the final state is what the story says
    assert [e["text"] for e in report["expectations"] if not e["ok"]] == []
    final = {(i["share_name"], i["receiver"]): i["recorded_status"] for i in report["invitations"]}
    assert final == {
        ("churn-share", "consumer"): "ACCEPTED",
        ("stranger-share", "consumer"): "EXPIRED",
        ("stranger-share", "consumer-b"): "REJECTED",
        ("network-share", "consumer"): "EXPIRED",
        ("fraud-share", "consumer"): "ACCEPTED",
        ("batch-share", "consumer-b"): "ACCEPTED",
    }
    attribution = sorted((e["initiator"], e["attribution_source"], e["status"]) for e in report["executions"])
    assert attribution == [
        ("consumer", "forwarded", "Stopped"),
        ("consumer-b", "inferred", "Stopped"),  # the run stopped by budget enforcement
        ("consumer-b", "inferred", "Succeeded"),
        ("owner", "owner", "Succeeded"),
    ]
    assert sum(1 for e in report["events"] if e["dropped"]) == 1


def test_cli_json_report_has_the_documented_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a small scenario
    out = tmp_path / "report.json"
    # When it runs through the command line with --json
    code = main(["local", "run", str(ROOT / "scenarios" / "lost-event.yaml"), "--json", "--out", str(out)])
    report = json.loads(capsys.readouterr().out)
    # Then it exits 0 and the report carries every documented section
    assert code == 0
    assert json.loads(out.read_text()) == report
    assert set(report) >= {
        "scenario",
        "ok",
        "timeline",
        "expectations",
        "accounts",
        "invitations",
        "records",
        "notifications",
        "events",
        "pending_events",
        "settings",
        "invocations",
        "quiet_invocations",
        "executions",
        "estimates",
        "spend",
        "budget_ledger",
    }
    # no owner deployment in this story: the owner sections are there, empty
    assert [report[k] for k in ("executions", "estimates", "spend", "budget_ledger")] == [[], [], [], []]
    [invitation] = report["invitations"]
    assert set(invitation) >= {
        "invitation_arn",
        "share_name",
        "sender",
        "receiver",
        "ram_status",
        "recorded_status",
        "rule",
        "reason",
    }
    assert invitation["recorded_status"] == "ACCEPTED"
    assert {"pk", "sk", "status"} <= set(report["records"]["consumer"][-1])
    assert report["notifications"][0]["message"]["event"] == "invitation.accepted"


def test_cli_exits_non_zero_when_an_expectation_fails(tmp_path: Path) -> None:
    # Given a scenario whose expectation cannot hold
    text = (ROOT / "scenarios" / "lost-event.yaml").read_text().replace("status: ACCEPTED", "status: REJECTED")
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(text)
    # When it runs / Then the command fails
    assert main(["local", "run", str(scenario)]) == 1


def test_invalid_scenario_is_refused_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: x\naccounts: {a: {id: '1'}}\nsteps: [{teleport: {}}]\n")
    # When it is run / Then the command refuses it (exit 2), one line per problem on stderr
    assert main(["local", "run", str(scenario)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2
    assert errors[0] == f"{scenario}:2: accounts.a.id: String should match pattern '^[0-9]{{12}}$' (got '1')"
    assert errors[1].startswith(f"{scenario}:3: steps[0]: unknown step kind 'teleport' (kinds: note, ")


def test_invalid_history_item_is_counted_and_not_published(stack: LocalStack) -> None:
    # Given a stream record whose history item is malformed
    stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER})
    event = load_event("ddb_stream_decision_accepted")
    event["Records"][0]["dynamodb"]["NewImage"]["to_status"] = {"S": "MAYBE"}
    function = stack.deployments[CONSUMER].functions["NotifyDecisionsFunction"]
    # When the notifier receives it
    invocation = function.invoke_once(event, trigger="test")
    # Then: no failure reported for retry, an InvalidEvent metric, nothing published
    assert invocation.result == {"batchItemFailures": []}
    assert invocation.metrics["InvalidEvent"] == 1
    assert notifications(stack, CONSUMER) == []


def test_notifier_publishes_the_fixture_record(stack: LocalStack) -> None:
    # Given the stream fixture of an accepted decision
    stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER})
    function = stack.deployments[CONSUMER].functions["NotifyDecisionsFunction"]
    # When the notifier receives it
    invocation = function.invoke_once(load_event("ddb_stream_decision_accepted"), trigger="test")
    # Then one message went out with the share's facts
    assert invocation.metrics["DecisionNotified"] == 1
    [note] = notifications(stack, CONSUMER)
    assert note["message"]["share_name"] == "churn-pipeline-share"
    assert note["message"]["resources"][0]["type"] == "sagemaker:Pipeline"


def test_a_redelivered_batch_publishes_each_decision_once_with_a_stable_message_id(stack: LocalStack) -> None:
    # Given the stream fixture of an accepted decision, and a second record of another decision
    stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER})
    function = stack.deployments[CONSUMER].functions["NotifyDecisionsFunction"]
    event = load_event("ddb_stream_decision_accepted")
    second = copy.deepcopy(event["Records"][0])
    second["dynamodb"]["Keys"]["sk"]["S"] = second["dynamodb"]["NewImage"]["sk"]["S"] = "HIST#second"
    second["dynamodb"]["SequenceNumber"] = str(int(event["Records"][0]["dynamodb"]["SequenceNumber"]) + 1)
    batch = {"Records": [event["Records"][0], second]}
    # When the batch is delivered, then delivered again (Lambda resuming after a failure, or after a timeout)
    first = function.invoke_once(batch, trigger="test")
    again = function.invoke_once(copy.deepcopy(batch), trigger="test")
    # Then each decision went out once, each message with its own stable id, both deliveries reported no failure
    assert first.result == again.result == {"batchItemFailures": []}
    published = notifications(stack, CONSUMER)
    ids = [n["attributes"]["pipeshare-message-id"] for n in published]
    assert len(published) == 2
    assert len(set(ids)) == 2


def test_unpublishable_decision_is_retried_then_sent_to_the_dlq(stack: LocalStack) -> None:
    # Given a consumer whose notification topic is gone
    deployment = stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER})
    stack.client(CONSUMER, "sns").delete_topic(TopicArn=deployment.refs["ConsumerTopic"])
    # When a decision is recorded
    share_pipeline(stack, OWNER, "churn", [CONSUMER])
    stack.deliver()
    # Then the stream batch was retried (bounded) and its position sent to the on-failure queue
    attempts = stack.deployments[CONSUMER].functions["NotifyDecisionsFunction"].invocations
    max_retries = deployment.streams[0].max_retries  # MaximumRetryAttempts of the template's stream event
    assert max_retries == 5
    assert len(attempts) == 1 + max_retries
    [dead] = stack.queue_messages(CONSUMER, "NotifyDecisionsDlq")
    assert dead["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert dead["DDBStreamBatchInfo"]["batchSize"] == 1


@pytest.mark.xdist_group("scenario-attribution")
def test_attribution_scenario_covers_every_path_with_duplicates_and_reordering(scenario_runs: dict[str, Any]) -> None:
    # Given the attribution scenario (forwarded, owner copy, inferred, ambiguous, owner; then every owner-side
    # event delivered again newest first)
    report = baseline(scenario_runs, "attribution")[1].report  # shared with the fault suite
    # Then every expectation holds and each path is represented once
    assert [e["text"] for e in report["expectations"] if not e["ok"]] == []
    assert sorted(e["attribution_source"] for e in report["executions"]) == [
        "ambiguous",
        "cloudtrail-owner-copy",
        "forwarded",
        "inferred",
        "owner",
    ]


@pytest.mark.xdist_group("scenario-owner-realism")
def test_owner_realism_scenario_holds_with_late_and_missing_cloudtrail_records(scenario_runs: dict[str, Any]) -> None:
    # Given the owner-realism scenario (CloudTrail 5 minutes late, then 20, then no owner trail; a retry without the
    # forwarder; one pipeline through two shares; an undocumented previous status on every first status event)
    report = baseline(scenario_runs, "owner-realism")[1].report  # shared with the fault suite
    # Then every expectation holds, and no consumer is blamed for any owner run
    assert [e["text"] for e in report["expectations"] if not e["ok"]] == []
    by_run = {e["execution_arn"]: e for e in report["executions"]}
    assert sorted((e["initiator"] or "-", e["attribution_source"]) for e in by_run.values()) == [
        ("-", "ambiguous"),
        ("consumer-a", "forwarded"),
        ("consumer-b", "inferred"),
        ("owner", "owner"),
        ("owner", "owner"),
    ]
    # and no event was refused (the first status events all carried previousPipelineExecutionStatus "Starting")
    refused = [i for i in report["invocations"] if (i.get("result") or {}).get("status") == "invalid"]
    assert refused == []
    assert sum(1 for e in report["events"] if e["detail"].get("previousPipelineExecutionStatus") == "Starting") >= 5


@pytest.mark.xdist_group("scenario-budgets")
def test_budgets_scenario_stops_each_offending_run_once_and_no_bystander(scenario_runs: dict[str, Any]) -> None:
    # Given the budgets scenario (a long single step, a consumer taken off the share, a retry, an unpriced type, a run
    # the next day, a worst case above what is left, a lowered limit in dry run then for real)
    report = baseline(scenario_runs, "budgets")[1].report  # shared with the fault suite
    # Then every expectation holds
    assert [e["text"] for e in report["expectations"] if not e["ok"]] == []
    accounts = {alias: a["id"] if isinstance(a, dict) else a for alias, a in report["accounts"].items()}
    messages = [n["message"] for n in report["notifications"] if isinstance(n["message"], dict)]
    enforced = [
        m
        for m in messages
        if str(m.get("schema", "")).startswith("pipeshare.owner.budget-enforcement")
        and not m["dry_run"]
        and m["outcome"] == "done"
    ]
    stops = [
        (m["consumer_account"], m["execution"]["execution_arn"], m["execution"]["attempt"])
        for m in enforced
        if m["action"] == "stop_execution"
    ]
    # and each stopped run was reported once (no duplicate stop message for the same run)
    assert len(stops) == len(set(stops))
    stopped_by = sorted(c for c, _, _ in stops)
    assert stopped_by == sorted(
        [accounts["alice"], accounts["alice"], accounts["carol"], accounts["dave"], accounts["bob"]]
    )
    # and nothing was done to a consumer under its budget: only carol was taken off a share
    removed = [m["consumer_account"] for m in enforced if m["action"] == "remove_from_share"]
    assert removed == [accounts["carol"]]
