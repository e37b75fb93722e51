"""`pipeshare consumer ...` / `pipeshare owner ...` on the local stack (`--local SCENARIO`): every command, in tables
and in --json, against one play of tests/fixtures/scenarios/cli.yaml (module fixture; the mutating tests run last)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pipeshare.observability  # noqa: F401 - the functions' log handler binds the session's stdout, not capsys's
from pipeshare_local.cli import main
from pipeshare_local.ops import cli as ops_cli
from pipeshare_local.ops.target import LocalRun, local_targets
from tests.conftest import ROOT

pytestmark = [pytest.mark.local_stack, pytest.mark.xdist_group("cli-local")]

SCENARIO = str(ROOT / "tests" / "fixtures" / "scenarios" / "cli.yaml")
CONSUMER, OWNER, STRANGER, OTHER = "222222222222", "111111111111", "333333333333", "555555555555"


@pytest.fixture(scope="module")
def played() -> Iterator[LocalRun]:
    """The scenario played once (through the command's own `local_targets`); every `--local` command of the module
    answers from that run instead of playing it again."""
    with local_targets(SCENARIO) as run, pytest.MonkeyPatch.context() as patch:
        patch.setattr(ops_cli, "local_targets", lambda path: contextlib.nullcontext(run))
        yield run


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--local", SCENARIO])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli(capsys, *argv, "--json")
    assert err == ""
    return code, json.loads(out)


def _invitations(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    _, document = cli_json(capsys, "consumer", "invitations")
    return {row["share_name"]: row for row in document["invitations"]}


# ------------------------------------------------------------------------------------------------ consumer reads


def test_invitations_lists_every_record_in_a_table_and_in_json(
    played: LocalRun, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "consumer", "invitations")
    assert code == 0
    assert out.startswith(f"local consumer ({CONSUMER})")
    for share, status in (("churn-share", "ACCEPTED"), ("stranger-share", "HELD"), ("network-share", "HELD")):
        assert any(share in line and status in line for line in out.splitlines()), share
    code, document = cli_json(capsys, "consumer", "invitations")
    rows = {row["share_name"]: row for row in document["invitations"]}
    assert code == 0
    assert document["target"] == f"local consumer ({CONSUMER})"
    assert {k: (r["status"], r["rule"], r["sender_account_id"]) for k, r in rows.items()} == {
        "churn-share": ("ACCEPTED", "trusted-owner", OWNER),
        "stranger-share": ("HELD", "untrusted-owner", STRANGER),
        "other-share": ("HELD", "untrusted-owner", OTHER),
        "network-share": ("HELD", "resource-type-not-allowed", OWNER),
    }
    assert rows["network-share"]["resource_types"] == ["ec2:Subnet"]
    assert rows["churn-share"]["invitation_arn"].endswith("/" + rows["churn-share"]["invitation"])


def test_invitations_by_status_and_a_bad_status(played: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
    code, document = cli_json(capsys, "consumer", "invitations", "--status", "HELD")
    assert code == 0
    assert sorted(r["share_name"] for r in document["invitations"]) == [
        "network-share",
        "other-share",
        "stranger-share",
    ]
    code, document = cli_json(capsys, "consumer", "invitations", "--status", "EXPIRED")
    assert (code, document["invitations"]) == (1, [])  # nothing found
    code, _, err = cli(capsys, "consumer", "invitations", "--status", "BOGUS")
    assert code == 2
    assert "--status must be one of" in err


def test_policy_check_shows_what_a_policy_would_decide(
    played: LocalRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "version": 1,
                "owners": [{"account_id": OWNER, "allowed_resource_types": ["sagemaker:Pipeline", "ec2:Subnet"]}],
            }
        )
    )
    code, document = cli_json(capsys, "consumer", "policy", "check", str(policy))
    decisions = {row["share_name"]: row for row in document["decisions"]}
    assert (code, document["valid"]) == (0, True)
    assert (decisions["network-share"]["would"], decisions["network-share"]["would_rule"]) == (
        "ACCEPTED",
        "trusted-owner",
    )
    assert decisions["network-share"]["changes"] is True
    assert (decisions["stranger-share"]["would"], decisions["stranger-share"]["changes"]) == ("HELD", False)
    assert (decisions["churn-share"]["would"], decisions["churn-share"]["changes"]) == ("ACCEPTED", False)
    code, out, _ = cli(capsys, "consumer", "policy", "check", str(policy))
    assert code == 0
    assert "1 of 4 invitation(s) on record would be decided differently" in out
    # a dry run: nothing changed
    assert _invitations(capsys)["network-share"]["status"] == "HELD"


def test_policy_check_lists_every_problem_of_an_invalid_policy(
    played: LocalRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 2, "owners": [{"account_id": "1111"}]}))
    code, document = cli_json(capsys, "consumer", "policy", "check", str(policy))
    assert (code, document["valid"]) == (1, False)
    problems = [row["problem"] for row in document["problems"]]
    assert any(p.startswith("version:") for p in problems)
    assert any(p.startswith("owners.0.account_id:") for p in problems)
    code, out, _ = cli(capsys, "consumer", "policy", "check", str(policy))
    assert code == 1
    assert "invalid trust policy (fail closed)" in out
    policy.write_text("{not json")
    code, _, err = cli(capsys, "consumer", "policy", "check", str(policy))
    assert code == 2
    assert "not valid JSON" in err
    code, _, err = cli(capsys, "consumer", "policy", "check", str(tmp_path / "missing.json"))
    assert code == 2


# --------------------------------------------------------------------------------------------------- owner reads


def test_grants_and_executions(played: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
    code, document = cli_json(capsys, "owner", "grants")
    assert code == 0
    assert document["target"] == f"local owner ({OWNER})"
    (grant,) = document["grants"]
    assert (grant["pipeline"], grant["consumer"], grant["share_name"]) == ("churn-train", CONSUMER, "churn-share")
    assert (grant["association_status"], grant["cost_bearing"]) == ("ASSOCIATED", True)
    code, out, _ = cli(capsys, "owner", "grants")
    assert code == 0
    assert "churn-share" in out
    assert "ASSOCIATED" in out

    code, document = cli_json(capsys, "owner", "executions")
    (run,) = document["executions"]
    assert code == 0
    assert (run["pipeline"], run["status"], run["attribution_source"]) == ("churn-train", "Succeeded", "forwarded")
    assert run["initiator_account"] == CONSUMER
    assert run["estimate_final"] is True
    assert float(run["estimate_usd"]) > 0
    code, out, _ = cli(capsys, "owner", "executions", "--consumer", CONSUMER)
    assert code == 0
    assert run["execution"] in out
    assert cli_json(capsys, "owner", "executions", "--consumer", "999999999999") == (
        1,
        {"target": f"local owner ({OWNER})", "executions": [], "notes": []},
    )
    code, document = cli_json(capsys, "owner", "executions", "--since", "2026-05-02")
    assert (code, document["executions"]) == (1, [])
    code, _, err = cli(capsys, "owner", "executions", "--since", "yesterday")
    assert code == 2
    assert "--since" in err


def test_explain_shows_evidence_costs_budget_and_alerts(played: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
    _, listing = cli_json(capsys, "owner", "executions")
    execution = listing["executions"][0]
    code, document = cli_json(capsys, "owner", "explain", execution["execution"])  # by ID
    assert code == 0
    summary = {row["field"]: row["value"] for row in document["execution"]}
    assert summary["execution_arn"] == execution["execution_arn"]
    assert (summary["attribution_source"], summary["initiator_account"]) == ("forwarded", CONSUMER)
    (evidence,) = document["evidence"]
    assert (evidence["action"], evidence["source"], evidence["account"]) == ("start", "forwarded", CONSUMER)
    assert evidence["event_id"]
    assert evidence["at"].startswith("2026-05-01T08:")
    assert "forwarded" in evidence["origin"]
    assert [t["status"] for t in document["transitions"]] == ["Executing", "Succeeded"]
    (line,) = document["costs"]
    assert line["final"] is True
    assert line["cost_usd"] == summary["estimate_usd"]
    assert "ml.m5.xlarge" in line["summary"]
    budget = {row["field"]: row["value"] for row in document["budget"]}
    assert (budget["consumer"], budget["month"], budget["monthly limit USD"]) == (CONSUMER, "2026-05", "0.50")
    assert budget["month-to-date spend USD"] == summary["estimate_usd"]
    assert (budget["thresholds reached"], budget["ledger"]) == ([10], ["THRESHOLD#0010"])
    assert sorted(a["key"] for a in document["alerts"]) == ["ALERT#finish", "ALERT#start"]
    code, out, _ = cli(capsys, "owner", "explain", execution["execution_arn"])  # by ARN, as a table
    assert code == 0
    for title in ("Attribution evidence", "Cost lines", "Budget", "Alerts recorded"):
        assert title in out
    code, _, err = cli(capsys, "owner", "explain", "no-such-run")
    assert code == 1
    assert "no execution" in err


def test_spend_per_consumer_and_pipeline_with_the_budget(played: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
    code, document = cli_json(capsys, "owner", "spend")
    assert (code, document["month"]) == (0, "2026-05")  # the scenario clock's month
    (consumer,) = document["consumers"]
    assert (consumer["consumer"], consumer["limit_usd"], consumer["counted"]) == (CONSUMER, "0.50", "confirmed")
    assert consumer["total_usd"] == consumer["confirmed_usd"]
    assert consumer["percent_used"] == "15.7"  # USD 0.078611 of 0.50
    assert consumer["bar"] == "█" * 3 + "░" * 17
    (pipeline,) = document["pipelines"]
    assert (pipeline["consumer"], pipeline["pipeline"], pipeline["total_usd"]) == (
        CONSUMER,
        "churn-train",
        consumer["total_usd"],
    )
    code, out, _ = cli(capsys, "owner", "spend", "--month", "2026-05")
    assert code == 0
    assert "Estimated spend 2026-05, per consumer" in out
    assert "███░░░" in out
    code, document = cli_json(capsys, "owner", "spend", "--month", "2026-04")
    assert (code, document["consumers"], document["pipelines"]) == (1, [], [])
    assert cli(capsys, "owner", "spend", "--month", "May")[0] == 2


def test_budget_check_shows_what_a_policy_would_do_this_month(
    played: LocalRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "budgets.json"
    policy.write_text(
        json.dumps(
            {
                "version": 1,
                "consumers": {
                    CONSUMER: {
                        "monthly_limit": "0.05",
                        "thresholds": [10, 50, 100],
                        "enforce": {"stop_executions": True},
                    }
                },
            }
        )
    )
    code, document = cli_json(capsys, "owner", "budget", "check", str(policy))
    (row,) = document["budgets"]
    assert (code, document["valid"], document["month"]) == (0, True, "2026-05")
    assert row["reached"] == [10, 50, 100]
    assert row["alerted_already"] == [10]  # the policy in force alerted 10 % already (its ledger)
    assert row["would"] == "alert 50 %, 100 %; stop its executions"
    code, out, _ = cli(capsys, "owner", "budget", "check", str(policy))
    assert code == 0
    assert "nothing is sent or changed" in out
    policy.write_text(json.dumps({"version": 1, "consumers": {CONSUMER: {"monthly_limit": "-1"}}}))
    code, document = cli_json(capsys, "owner", "budget", "check", str(policy))
    assert (code, document["valid"]) == (1, False)
    assert any("monthly_limit" in row["problem"] for row in document["problems"])


def test_prices_say_where_each_price_comes_from(played: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
    code, document = cli_json(capsys, "owner", "prices")
    assert code == 0
    shipped = [r for r in document["rates"] if r["origin"] == "shipped"]
    assert shipped
    assert all(r["as_of"] == document["as_of"] and len(r["sources"]) >= 2 for r in shipped)
    cached = {r["key"]: r for r in document["price_list_cache"]}
    assert "training#ml.m5.xlarge" in cached  # the run's training job was priced from the Price List
    assert cached["training#ml.m5.xlarge"]["fetched_at"].startswith("2026-05-01")
    assert any(n.startswith("override: none") for n in document["notes"])
    code, out, _ = cli(capsys, "owner", "prices")
    assert code == 0
    assert "Price List answers cached" in out


def test_target_usage_errors(played: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "owner", "grants", "--regions", "us-east-1,eu-west-1")[0] == 2
    code, _, err = cli(capsys, "consumer", "invitations", "--account", OWNER)
    assert code == 2
    assert "ShareTableName" in err
    code, document = cli_json(capsys, "consumer", "invitations", "--account", "consumer")  # a scenario alias
    assert code == 0
    assert len(document["invitations"]) == 4


# ---------------------------------------------------------------------------------- approve / reject (mutating)


def test_approve_refuses_what_the_guardrails_forbid(played: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _invitations(capsys)
    code, _, err = cli(capsys, "consumer", "approve", rows["network-share"]["invitation"], "--reason", "needed")
    assert code == 4
    assert "ec2:Subnet not allowed by the trust policy" in err
    code, _, err = cli(capsys, "consumer", "approve", rows["churn-share"]["invitation_arn"], "--reason", "again")
    assert code == 4
    assert "recorded as ACCEPTED" in err
    code, _, err = cli(capsys, "consumer", "approve", "no-such-invitation", "--reason", "x")
    assert code == 1
    assert cli(capsys, "consumer", "approve", rows["stranger-share"]["invitation"], "--reason", "  ")[0] == 2
    after = _invitations(capsys)
    assert after["network-share"]["status"] == "HELD"
    assert after["stranger-share"]["status"] == "HELD"
    ram = played.stack.client(CONSUMER, "ram").get_resource_share_invitations(
        resourceShareInvitationArns=[rows["network-share"]["invitation_arn"]]
    )["resourceShareInvitations"]
    assert [i["status"] for i in ram] == ["PENDING"]  # RAM was not answered


def test_approve_and_reject_record_the_caller_and_notify(played: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _invitations(capsys)
    stack = played.stack
    caller = stack.client(CONSUMER, "sts").get_caller_identity()["Arn"]
    code, document = cli_json(
        capsys, "consumer", "approve", rows["stranger-share"]["invitation"], "--reason", "vetted partner"
    )
    (answer,) = document["answer"]
    assert code == 0
    assert (answer["previous"], answer["status"], answer["rule"], answer["by"]) == (
        "HELD",
        "ACCEPTED",
        "manual-approval",
        caller,
    )
    assert answer["recorded"] is True
    code, out, _ = cli(capsys, "consumer", "reject", rows["other-share"]["invitation"], "--reason", "unknown sender")
    assert code == 0
    assert "manual-rejection" in out
    # RAM was answered, the records moved, and the table stream notified as for any decision
    ram = stack.client(CONSUMER, "ram").get_resource_share_invitations(
        resourceShareInvitationArns=[rows["stranger-share"]["invitation_arn"], rows["other-share"]["invitation_arn"]]
    )["resourceShareInvitations"]
    assert {i["resourceShareName"]: i["status"] for i in ram} == {
        "stranger-share": "ACCEPTED",
        "other-share": "REJECTED",
    }
    after = _invitations(capsys)
    assert (after["stranger-share"]["status"], after["stranger-share"]["rule"]) == ("ACCEPTED", "manual-approval")
    assert after["stranger-share"]["reason"] == f"approved by {caller}: vetted partner"
    assert after["stranger-share"]["resource_types"] == ["sagemaker:Pipeline"]
    assert (after["other-share"]["status"], after["other-share"]["rule"]) == ("REJECTED", "manual-rejection")
    stack.pump_streams()
    notes = {
        n["message"]["share_name"]: n["message"]
        for n in stack.read_notifications(CONSUMER)
        if n["message"].get("rule", "").startswith("manual-")
    }
    assert (notes["stranger-share"]["event"], notes["stranger-share"]["rule"]) == (
        "invitation.accepted",
        "manual-approval",
    )
    assert caller in notes["stranger-share"]["reason"]
    assert (notes["other-share"]["event"], notes["other-share"]["rule"]) == ("invitation.rejected", "manual-rejection")
    # answered: a second answer is refused, nothing changes
    code, _, err = cli(
        capsys, "consumer", "reject", rows["stranger-share"]["invitation"], "--reason", "changed my mind"
    )
    assert code == 4
    assert "recorded as ACCEPTED" in err
