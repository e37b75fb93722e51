"""Budgets that bind, on the local stack (real runs, estimated as they run; the policy in SSM; its changes delivered as
Parameter Store Change events; the daily schedule on the scenario clock):

- thresholds are level-triggered: a limit lowered below the spend, a budget added mid-month, a lost stream record or
  a window of invalid policy are alerted at once (policy change) or within a day (daily run), each threshold once,
  several at once in one message;
- enforcement holds all month: a consumer over budget that starts again the next day is stopped again, one message
  per stop; a dry run does nothing, and real enforcement the same month still happens;
- only the offender: a consumer taken off the share leaves the other consumer of the same pipeline able to run;
- inferred spend and runs are not enforced on unless count_inferred.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.events.models import EventPattern

from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import (
    CONSUMER,
    CONSUMER_B,
    OWNER,
    calls_by_invocation,
    create_pipeline,
    deploy_shared_pipeline,
)

pytestmark = pytest.mark.local_stack

BUDGETS = "/pipeshare/budgets"
OWNER_BUS = f"arn:aws:events:us-east-1:{OWNER}:event-bus/pipeshare-owner"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
# Preprocess ends after 10 minutes at about 0.08 USD (2 x ml.m5.xlarge); the 2-hour training keeps the run going
STEPS = [
    StepSpec(
        name="Preprocess", type="Processing", duration_seconds=600, instance_type="ml.m5.xlarge", instance_count=2
    ),
    StepSpec(name="Train", type="Training", duration_seconds=7200, instance_type="ml.m5.xlarge"),
]


def _budget(limit: str = "0.05", **fields: Any) -> dict[str, Any]:
    return {"monthly_limit": limit, "thresholds": [50, 80, 100], **fields}


def _put_policy(stack: LocalStack, consumers: dict[str, Any], *, deliver: bool = True, **extra: Any) -> None:
    """The owner writes its budget policy to SSM (no redeploy): Parameter Store sends its change event."""
    document = {"version": 1, "consumers": consumers, **extra}
    stack.client(OWNER, "ssm").put_parameter(Name=BUDGETS, Value=json.dumps(document), Type="String", Overwrite=True)
    if deliver:
        stack.deliver()


def _setup(
    stack: LocalStack,
    consumers: dict[str, Any],
    *,
    forwarding: bool = True,
    both: bool = False,
    slow_clock: bool = False,
    **parameters: str,
) -> str:
    """The owner shares churn-train with allow-execution (with CONSUMER, and CONSUMER_B when `both`), its budget
    policy in SSM; consumers forward their own calls (attribution by evidence) unless `forwarding` is False (their
    runs are inferred). `slow_clock`: for a story spanning days, hourly running estimates and consumer sweeps every
    6 hours (fewer scheduled invocations to play; nothing here depends on them). Returns the share ARN."""
    pipeline = create_pipeline(stack, OWNER, "churn-train")
    stack.sagemaker.define_steps(OWNER, "us-east-1", "churn-train", STEPS)
    _put_policy(stack, consumers, deliver=False)
    accounts = (CONSUMER, CONSUMER_B) if both else (CONSUMER,)
    consumer_parameters = {"OwnerEventBusArn": OWNER_BUS} if forwarding else {}
    if slow_clock:
        consumer_parameters["SweepSchedule"] = "rate(6 hours)"
        parameters = {"RunningEstimateMinutes": "60", **parameters}
    deployment = deploy_shared_pipeline(
        stack,
        pipeline,
        accounts,
        consumer_parameters=consumer_parameters,
        BudgetPolicyParameterName=BUDGETS,
        ForwarderAccountIds=",".join(accounts),
        **parameters,
    )
    return str(deployment.refs["PipelineShare"])


def _start(stack: LocalStack, token: str, *, consumer: str = CONSUMER) -> str:
    arn = stack.client(consumer, "sagemaker").start_pipeline_execution(
        PipelineName=PIPELINE, ClientRequestToken=token * 32
    )["PipelineExecutionArn"]
    stack.deliver()
    return str(arn)


def _messages(stack: LocalStack, kind: str) -> list[dict[str, Any]]:
    """Owner messages of a kind: threshold, enforcement, unattributed."""
    schema = {
        "threshold": "pipeshare.owner.budget-threshold/",
        "enforcement": "pipeshare.owner.budget-enforcement/",
        "unattributed": "pipeshare.owner.unattributed-threshold/",
    }[kind]
    return [n for n in stack.read_notifications(OWNER) if str(n["message"].get("schema", "")).startswith(schema)]


def _thresholds(stack: LocalStack) -> list[list[int]]:
    return [n["message"]["thresholds"] for n in _messages(stack, "threshold")]


def _status(stack: LocalStack, execution: str) -> str:
    sagemaker = stack.client(OWNER, "sagemaker")
    return str(sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution)["PipelineExecutionStatus"])


def _watcher(stack: LocalStack) -> Any:
    return stack.deployments[OWNER].functions["WatchBudgetsFunction"]


# ------------------------------------------------------------------------------------------------------ thresholds


def test_reaching_the_budget_alerts_each_threshold_once_and_stops_the_consumers_run(stack: LocalStack) -> None:
    # Given a forwarding consumer with a 0.05 USD budget that stops its executions
    _setup(stack, {CONSUMER: _budget(enforce={"stop_executions": True})})
    execution = _start(stack, "a")

    # When its run's first step (about 0.08 USD) is counted, 5 minutes in by the running estimate, then at its end
    stack.advance(timedelta(minutes=12))

    # Then each threshold was alerted once (those due together in one message), the run stopped with one message
    assert sorted(t for ts in _thresholds(stack) for t in ts) == [50, 80, 100]
    assert _status(stack, execution) == "Stopped"
    [stop] = _messages(stack, "enforcement")
    assert (stop["message"]["action"], stop["message"]["execution"]["execution_arn"]) == ("stop_execution", execution)
    assert stop["subject"] == f"pipeshare: budget enforced on {CONSUMER}: stopped run of churn-train"


def test_a_limit_lowered_below_the_spend_alerts_at_once(stack: LocalStack) -> None:
    # Given a 10 USD budget (the default 60-second policy cache) and a run costing about 0.08 USD so far
    _setup(stack, {CONSUMER: _budget("10")})
    _start(stack, "b")
    stack.advance(timedelta(minutes=11))
    assert _thresholds(stack) == []

    # When the owner lowers the limit to 0.05 USD in SSM (no spend change follows)
    _put_policy(stack, {CONSUMER: _budget("0.05")})

    # Then the policy change is evaluated at once, past the cache: one message for 50, 80 and 100
    assert _thresholds(stack) == [[50, 80, 100]]
    assert any(i.trigger == "rule:WatchBudgetsFunctionBudgetPolicyChanged" for i in _watcher(stack).invocations)


def test_a_budget_added_mid_month_alerts_at_once(stack: LocalStack) -> None:
    # Given a consumer without a budget that has spent about 0.08 USD this month
    _setup(stack, {})
    _start(stack, "c")
    stack.advance(timedelta(minutes=11))

    # When a 0.1 USD budget is added for it
    _put_policy(stack, {CONSUMER: _budget("0.1")})

    # Then 50 % is alerted at once (80 % would need 0.08 USD: not reached yet)
    assert _thresholds(stack) == [[50]]


def test_a_lost_stream_record_is_caught_by_the_daily_run(stack: LocalStack) -> None:
    # Given the watcher's stream records are lost while the run crosses the budget (as records that exhausted their
    # retries are: the mapping moves past them)
    _setup(stack, {CONSUMER: _budget()}, slow_clock=True)
    [mapping] = [m for m in stack.deployments[OWNER].streams if m.function.logical_id == "WatchBudgetsFunction"]
    filters, mapping.filters = mapping.filters, [EventPattern.load('{"eventName": ["LOST"]}')]
    _start(stack, "d")
    stack.advance(timedelta(minutes=12))
    mapping.filters = filters
    assert _thresholds(stack) == []

    # When the day passes
    stack.advance(timedelta(days=1))

    # Then the daily run alerts what was due, once
    assert _thresholds(stack) == [[50, 80, 100]]
    assert any(i.trigger == "schedule:WatchBudgetsFunctionDaily" for i in _watcher(stack).invocations)


def test_an_invalid_policy_fails_closed_and_is_caught_up_once_fixed(stack: LocalStack) -> None:
    # Given a budget policy that does not validate while the run crosses the budget
    _setup(stack, {CONSUMER: _budget(enforce={"stop_executions": True})})
    stack.client(OWNER, "ssm").put_parameter(Name=BUDGETS, Value='{"version": 2}', Type="String", Overwrite=True)
    execution = _start(stack, "e")
    stack.advance(timedelta(minutes=12))

    # Then no budget applies: no alert, no enforcement, the run goes on; the watcher counts BudgetPolicyInvalid
    assert _thresholds(stack) == []
    assert _status(stack, execution) == "Executing"
    assert any(i.metrics.get("BudgetPolicyInvalid") for i in _watcher(stack).invocations)

    # When the owner fixes the policy
    _put_policy(stack, {CONSUMER: _budget(enforce={"stop_executions": True})})

    # Then what was due is alerted, and the run is stopped at once
    assert _thresholds(stack) == [[50, 80, 100]]
    stack.advance(timedelta(minutes=1))
    assert _status(stack, execution) == "Stopped"


# -------------------------------------------------------------------------------------------------- enforcement


def test_a_consumer_over_budget_that_starts_again_the_next_day_is_stopped_again(stack: LocalStack) -> None:
    # Given a consumer whose run was stopped when it went over its budget
    _setup(stack, {CONSUMER: _budget(enforce={"stop_executions": True})}, slow_clock=True)
    first = _start(stack, "f")
    stack.advance(timedelta(minutes=12))
    assert _status(stack, first) == "Stopped"

    # When it starts again the next day
    stack.advance(timedelta(days=1))
    second = _start(stack, "g")
    stack.advance(timedelta(minutes=1))

    # Then the new run is stopped as soon as it is seen running, and each stop has one message
    assert _status(stack, second) == "Stopped"
    stops = [n["message"]["execution"]["execution_arn"] for n in _messages(stack, "enforcement")]
    assert stops == [first, second]


def test_enforcement_stops_cost_seven_calls_at_the_crossing_and_six_for_a_later_start(stack: LocalStack) -> None:
    # Given a forwarding consumer with a 0.05 USD budget that stops its executions, the policy read on every
    # invocation (PolicyCacheSeconds 0: the counts do not depend on the age of a warm container's cache)
    _setup(stack, {CONSUMER: _budget(enforce={"stop_executions": True})}, PolicyCacheSeconds="0")

    # When its run's first step ends over the budget (50 % was alerted 5 minutes in, by the running estimate)
    with calls_by_invocation(stack, OWNER, "WatchBudgetsFunction") as runs:
        first = _start(stack, "s")
        stack.advance(timedelta(minutes=12))

    # Then one watcher invocation (the consumer's spend change) stopped it, with, in order: the policy, the ledger
    # of the month, the consumer's pipelines, one transaction for the thresholds due (80 and 100), the consumer's
    # running executions, the stop, one transaction for the stop's ledger item and message
    [crossing] = [r for r in runs if "StopPipelineExecution" in r.operations]
    assert crossing.operations == [
        "GetParameter",
        "Query",
        "Query",
        "TransactWriteItems",
        "Query",
        "StopPipelineExecution",
        "TransactWriteItems",
    ]
    assert _thresholds(stack) == [[50], [80, 100]]
    assert _status(stack, first) == "Stopped"

    # When the consumer, still over budget, starts again
    with calls_by_invocation(stack, OWNER, "WatchBudgetsFunction") as runs:
        second = _start(stack, "t")
        stack.advance(timedelta(minutes=1))

    # Then one watcher invocation (the new run's state) stopped it, with, in order: the policy, the consumer's
    # spend, the ledger of the month, the stop, one transaction for its ledger item and message, the consumer's
    # running executions (nothing else left to stop)
    [later] = [r for r in runs if "StopPipelineExecution" in r.operations]
    assert later.operations == [
        "GetParameter",
        "GetItem",
        "Query",
        "StopPipelineExecution",
        "TransactWriteItems",
        "Query",
    ]
    assert _status(stack, second) == "Stopped"
    stops = [n["message"]["execution"]["execution_arn"] for n in _messages(stack, "enforcement")]
    assert stops == [first, second]


def test_dry_run_then_real_enforcement_the_same_month(stack: LocalStack) -> None:
    # Given a dry-run budget that would stop the consumer's executions
    _setup(stack, {CONSUMER: _budget(enforce={"stop_executions": True}, dry_run=True)})
    execution = _start(stack, "h")

    # When its run crosses the budget
    stack.advance(timedelta(minutes=12))

    # Then nothing is stopped; one DRY RUN message says what would be done
    assert _status(stack, execution) == "Executing"
    [dry] = _messages(stack, "enforcement")
    assert dry["subject"].startswith("pipeshare: DRY RUN: would stop run of churn-train")
    assert (dry["message"]["dry_run"], dry["message"]["outcome"]) == (True, "not-run")

    # When the owner turns dry_run off, the same month
    _put_policy(stack, {CONSUMER: _budget(enforce={"stop_executions": True})})
    stack.advance(timedelta(minutes=1))

    # Then the run is stopped now, and said so once
    assert _status(stack, execution) == "Stopped"
    assert [n["message"]["dry_run"] for n in _messages(stack, "enforcement")] == [True, False]


def test_removing_the_offender_leaves_the_other_consumer_of_the_pipeline_able_to_run(stack: LocalStack) -> None:
    # Given two consumers on the same allow-execution share; only CONSUMER has a budget, which takes it off its
    # shares and gives it the pipelines read-only
    enforce = {"stop_executions": True, "remove_from_share": True, "downgrade_to_read_only": True}
    share = _setup(stack, {CONSUMER: _budget(enforce=enforce)}, both=True)
    _start(stack, "i")

    # When CONSUMER goes over its budget
    stack.advance(timedelta(minutes=12))

    # Then CONSUMER is off the share and can no longer start the pipeline; the share keeps its permission and
    # CONSUMER_B, and CONSUMER_B still runs it
    ram = stack.client(OWNER, "ram")
    principals = ram.list_resource_share_permissions(resourceShareArn=share)["permissions"]
    assert [p["arn"].rsplit("/", 1)[-1] for p in principals] == ["AWSRAMPermissionSageMakerPipelineAllowExecution"]
    associated = {
        a["associatedEntity"]
        for a in ram.get_resource_share_associations(associationType="PRINCIPAL", resourceShareArns=[share])[
            "resourceShareAssociations"
        ]
        if a["status"] == "ASSOCIATED"
    }
    assert associated == {CONSUMER_B}
    with pytest.raises(ClientError) as denied:
        _start(stack, "j")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert _status(stack, _start(stack, "k", consumer=CONSUMER_B)) == "Executing"
    # and the removal was announced once, with the read-only share it got instead
    [removal] = [n for n in _messages(stack, "enforcement") if n["message"]["action"] == "remove_from_share"]
    assert (removal["message"]["share"]["share_arn"], removal["message"]["read_only"]["outcome"]) == (share, "done")


def test_inferred_spend_is_not_enforced_on_unless_count_inferred(stack: LocalStack) -> None:
    # Given a consumer without the forwarder (its runs are inferred) and a budget that stops executions
    _setup(stack, {CONSUMER: _budget(enforce={"stop_executions": True})}, forwarding=False)
    execution = _start(stack, "l")

    # When its inferred run crosses the budget
    stack.advance(timedelta(minutes=15))

    # Then the thresholds are alerted (on all its spend, the inferred part shown), but nothing is stopped
    assert _thresholds(stack) == [[50, 80, 100]]
    spend = _messages(stack, "threshold")[0]["message"]["spend"]
    assert (spend["confirmed"], spend["enforced_on"]) == ("0.00", "confirmed")
    assert _status(stack, execution) == "Executing"
    assert _messages(stack, "enforcement") == []

    # When the owner counts inferred spend
    _put_policy(stack, {CONSUMER: _budget(enforce={"stop_executions": True}, count_inferred=True)})
    stack.advance(timedelta(minutes=1))

    # Then the inferred run is stopped
    assert _status(stack, execution) == "Stopped"
    [stop] = _messages(stack, "enforcement")
    assert stop["message"]["execution"]["attribution_source"] == "inferred"
