"""Per-consumer budgets on the local stack: thresholds once a month, enforcement (stop / read-only) and dry run."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.scenario import PERMISSIONS
from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import CONSUMER, OWNER, create_pipeline, deploy_shared_pipeline

BUDGETS = "/pipeshare/budgets"
STEPS = [
    StepSpec(
        name="Preprocess", type="Processing", duration_seconds=600, instance_type="ml.m5.xlarge", instance_count=2
    ),
    StepSpec(name="Train", type="Training", duration_seconds=7200, instance_type="ml.m5.xlarge"),
]


def _setup(stack: LocalStack, *, enforce: dict[str, bool], dry_run: bool = False, limit: str = "0.05") -> str:
    pipeline = create_pipeline(stack, OWNER, "churn-train")
    stack.sagemaker.define_steps(OWNER, "us-east-1", "churn-train", STEPS)
    policy = {
        "version": 1,
        "consumers": {
            CONSUMER: {"monthly_limit": limit, "thresholds": [50, 80, 100], "enforce": enforce, "dry_run": dry_run}
        },
    }
    stack.client(OWNER, "ssm").put_parameter(Name=BUDGETS, Value=json.dumps(policy), Type="String")
    deployment = deploy_shared_pipeline(stack, pipeline, BudgetPolicyParameterName=BUDGETS, PolicyCacheSeconds="0")
    return str(deployment.refs["PipelineShare"])


def _start(stack: LocalStack, request_id: str = "b") -> str:
    arn = stack.client(CONSUMER, "sagemaker").start_pipeline_execution(
        PipelineName=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train", ClientRequestToken=request_id * 32
    )["PipelineExecutionArn"]
    stack.deliver()
    return str(arn)


def _budget_alerts(stack: LocalStack, kind: str) -> list[dict[str, Any]]:
    return [
        n
        for n in stack.read_notifications(OWNER)
        if str(n["message"].get("schema", "")).startswith(f"pipeshare.owner.budget-{kind}")
    ]


def _status(stack: LocalStack, execution: str) -> str:
    return str(
        stack.client(OWNER, "sagemaker").describe_pipeline_execution(PipelineExecutionArn=execution)[
            "PipelineExecutionStatus"
        ]
    )


def test_crossing_the_budget_alerts_each_threshold_once_and_stops_the_consumers_run(stack: LocalStack) -> None:
    # Given a consumer with a small budget whose enforcement stops its executions
    _setup(stack, enforce={"stop_executions": True})
    execution = _start(stack)
    # When its first step's cost (about 0.08 USD) crosses 50, 80 and 100 % of 0.05 USD
    stack.advance(timedelta(minutes=11))
    # Then three threshold alerts, the running execution stopped, and the enforcement reported
    assert sorted(a["message"]["threshold"] for a in _budget_alerts(stack, "threshold")) == [50, 80, 100]
    stack.advance(timedelta(minutes=1))
    assert _status(stack, execution) == "Stopped"
    [enforcement] = _budget_alerts(stack, "enforcement")
    assert "enforced" in enforcement["subject"]


def test_dry_run_reports_what_it_would_do_and_stops_nothing(stack: LocalStack) -> None:
    _setup(stack, enforce={"stop_executions": True}, dry_run=True)
    execution = _start(stack)
    stack.advance(timedelta(minutes=12))
    [enforcement] = _budget_alerts(stack, "enforcement")
    assert "DRY RUN" in enforcement["subject"]
    assert _status(stack, execution) == "Executing"


def test_thresholds_are_alerted_once_per_month(stack: LocalStack) -> None:
    # Given a budget without enforcement, crossed by one run
    _setup(stack, enforce={})
    _start(stack, "x")
    stack.advance(timedelta(hours=3))
    # When more runs add spend in the same month
    _start(stack, "y")
    stack.advance(timedelta(hours=3))
    # Then each threshold was alerted once, and nothing was enforced
    assert sorted(a["message"]["threshold"] for a in _budget_alerts(stack, "threshold")) == [50, 80, 100]
    assert _budget_alerts(stack, "enforcement") == []


def test_switch_to_read_only_takes_execution_rights_away(stack: LocalStack) -> None:
    # Given enforcement that switches the consumer's shares to read-only
    share = _setup(stack, enforce={"switch_to_read_only": True})
    _start(stack, "r")
    # When the budget is crossed
    stack.advance(timedelta(minutes=12))
    # Then the share carries the read-only permission and the consumer can no longer start the pipeline
    permissions = stack.client(OWNER, "ram").list_resource_share_permissions(resourceShareArn=share)["permissions"]
    assert [p["arn"] for p in permissions] == [PERMISSIONS["read-only"]]
    with pytest.raises(ClientError) as denied:
        _start(stack, "s")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_invalid_budget_policy_fails_closed(stack: LocalStack) -> None:
    # Given a budget policy that does not validate
    _setup(stack, enforce={"stop_executions": True})
    stack.client(OWNER, "ssm").put_parameter(Name=BUDGETS, Value='{"version": 2}', Type="String", Overwrite=True)
    execution = _start(stack)
    stack.advance(timedelta(minutes=12))
    # Then no budget is applied: no alert, no enforcement, the run goes on; the watcher says why
    assert _budget_alerts(stack, "threshold") == []
    assert _status(stack, execution) == "Executing"
    watched = stack.deployments[OWNER].functions["WatchBudgetsFunction"].invocations
    assert any(i.metrics.get("BudgetPolicyInvalid") for i in watched)
