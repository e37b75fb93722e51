"""Running estimates, retries and late attribution on the local stack: a long single step is counted while it runs,
a retry's jobs are counted with a finish message per attempt, and a run attributed after it ended still gets its
finish message."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from pipeshare.logic.estimate import SECONDS_PER_HOUR, quantize_usd
from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import (
    CONSUMER,
    OWNER,
    calls_by_invocation,
    create_pipeline,
    deploy_shared_pipeline,
)

PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/train-big"
LONG = [
    StepSpec(
        name="Train",
        type="Training",
        duration_seconds=3 * 3600,
        instance_type="ml.m5.4xlarge",
        instance_count=2,
        volume_gb=1,
    )
]


def _setup(stack: LocalStack, steps: list[StepSpec], **owner: str) -> None:
    pipeline = create_pipeline(stack, OWNER, "train-big")
    stack.sagemaker.define_steps(OWNER, "us-east-1", "train-big", steps)
    deploy_shared_pipeline(stack, pipeline, **owner)


def _start(stack: LocalStack, label: str = "run1") -> str:
    arn = stack.client(CONSUMER, "sagemaker").start_pipeline_execution(
        PipelineName=PIPELINE, ClientRequestToken=label.ljust(32, "0")
    )["PipelineExecutionArn"]
    stack.deliver()
    return str(arn)


def _items(stack: LocalStack, pk: str) -> dict[str, dict[str, Any]]:
    return {i["sk"]: i for i in stack.table_items(OWNER, "OwnerTable") if i["pk"] == pk}


def _estimate(stack: LocalStack, execution: str) -> dict[str, Any]:
    return _items(stack, f"EXECUTION#{execution.lower()}").get("ESTIMATE", {})


def _jobs(stack: LocalStack, execution: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in _items(stack, f"EXECUTION#{execution.lower()}").items() if k.startswith("JOB#")}


def _finish_messages(stack: LocalStack, execution: str) -> list[dict[str, Any]]:
    return [
        n
        for n in stack.read_notifications(OWNER)
        if str(n["message"].get("schema", "")).startswith("pipeshare.owner.execution-cost")
        and n["message"]["execution_arn"].lower() == execution.lower()
    ]


def _compute(job: dict[str, Any], seconds: int) -> Decimal:
    """2 instances for `seconds` at the rate the estimate used (whichever source priced it)."""
    [line] = job["detail"]["instances"]
    assert (line["instance_type"], int(line["count"])) == ("ml.m5.4xlarge", 2)
    return Decimal(seconds) * 2 * Decimal(str(line["usd_per_hour"])) / SECONDS_PER_HOUR


def test_a_long_single_step_is_counted_while_it_runs_and_settled_once_at_its_end(stack: LocalStack) -> None:
    # Given a consumer's three-hour training step on 2 x ml.m5.4xlarge, ticked every 5 minutes
    _setup(stack, LONG, RunningEstimateMinutes="5")
    execution = _start(stack)
    # When an hour passes
    stack.advance(timedelta(minutes=61))
    # Then the estimate holds what the job has cost so far (at least 55 minutes of it), not final, with a running mark
    running = _estimate(stack, execution)
    assert running["final"] is False
    [mark] = _jobs(stack, execution).values()
    assert Decimal(str(running["total"])) >= quantize_usd(_compute(mark, 55 * 60))
    assert mark["final"] is False
    assert Decimal(str(mark["cost"])) == Decimal(str(running["total"]))
    # and the pipeline's month-to-date spend moved with it
    month = running["month"]
    spend = _items(stack, f"SPEND#{month}")
    assert Decimal(str(spend[f"PIPELINE#{PIPELINE.lower()}"]["total"])) == Decimal(str(running["total"]))
    # When the step ends and every event (and a few more ticks) has been delivered
    stack.advance(timedelta(hours=2, minutes=30))
    # Then the job is counted at its final cost, exactly once: the spend equals the estimate equals the job
    final = _estimate(stack, execution)
    [job] = _jobs(stack, execution).values()
    assert (final["final"], job["final"]) == (True, True)
    assert Decimal(str(final["total"])) == Decimal(str(job["cost"])) >= quantize_usd(_compute(job, 3 * 3600))
    spend = _items(stack, f"SPEND#{month}")
    assert Decimal(str(spend[f"PIPELINE#{PIPELINE.lower()}"]["total"])) == Decimal(str(final["total"]))
    consumer_total = spend.get(f"CONSUMER#{CONSUMER}", {}).get("total", 0)
    assert Decimal(str(consumer_total)) == Decimal(str(final["total"]))


def test_a_running_tick_costs_a_bounded_number_of_calls(stack: LocalStack) -> None:
    # Given the long step running for 20 minutes
    _setup(stack, LONG, RunningEstimateMinutes="5")
    execution = _start(stack)
    stack.advance(timedelta(minutes=20))
    function = stack.deployments[OWNER].functions["EstimateCostFunction"]
    before = len(function.invocations)
    calls_before = len(stack.calls(OWNER, function="EstimateCostFunction"))
    # When the next tick runs
    stack.advance(timedelta(minutes=5))
    ticks = [i for i in function.invocations[before:] if "executions" in i.result]
    assert len(ticks) == 1
    assert (ticks[0].result["executions"], ticks[0].result["jobs_counted"]) == (1, 1)
    # Then, in order: one query for running executions, the execution's steps, its state, one Describe for the one
    # running job, one read of the cached Price List answers (the rate was looked up at an earlier tick), one
    # transaction for its changed count, one query for pending finish alerts
    ops = [c[2] for c in stack.calls(OWNER, function="EstimateCostFunction")[calls_before:]]
    assert ops == [
        "Query",
        "ListPipelineExecutionSteps",
        "Query",
        "DescribeTrainingJob",
        "BatchGetItem",
        "TransactWriteItems",
        "Query",
    ]
    assert _estimate(stack, execution)["final"] is False


def test_a_step_end_update_of_the_running_estimate_costs_four_calls(stack: LocalStack) -> None:
    # Given a consumer's 20.5-minute training step, counted while it runs by the ticks every 5 minutes (the first tick
    # looked its rates up in the Price List and cached the answers in the owner table)
    steps = [
        StepSpec(
            name="Train",
            type="Training",
            duration_seconds=1230,
            instance_type="ml.m5.4xlarge",
            instance_count=2,
            volume_gb=1,
        )
    ]
    _setup(stack, steps, RunningEstimateMinutes="5")
    execution = _start(stack)
    stack.advance(timedelta(minutes=20))
    [mark] = _jobs(stack, execution).values()
    assert (mark["final"], _estimate(stack, execution)["final"]) == (False, False)
    # When the step ends (and with it the execution)
    with calls_by_invocation(stack, OWNER, "EstimateCostFunction") as runs:
        stack.advance(timedelta(minutes=1))
    # Then the invocation on the step-ended event counted the job at its final cost, with, in order: one query of the
    # execution's state, one Describe of its job, one read of the cached Price List answers, one transaction
    [step_end] = [r for r in runs if r.invocation.trigger == "rule:EstimateCostFunctionStepEnded"]
    assert step_end.invocation.result["status"] == "counted"
    assert step_end.operations == ["Query", "DescribeTrainingJob", "BatchGetItem", "TransactWriteItems"]
    [job] = _jobs(stack, execution).values()
    assert job["final"] is True
    assert Decimal(str(job["cost"])) >= quantize_usd(_compute(job, 1230))


def test_a_retry_reopens_the_estimate_and_each_attempt_gets_its_finish_message(stack: LocalStack) -> None:
    # Given a consumer run whose training step fails after 20 minutes
    steps = [
        StepSpec(name="Train", type="Training", duration_seconds=1200, instance_type="ml.m5.xlarge", outcome="Failed")
    ]
    _setup(stack, steps, RunningEstimateMinutes="5")
    execution = _start(stack)
    stack.advance(timedelta(minutes=40))
    first = _estimate(stack, execution)
    assert (first["final"], first["attempt"]) == (True, 1)
    # When the consumer retries it (the step runs again: a new job) and the retry ends
    stack.client(CONSUMER, "sagemaker").retry_pipeline_execution(
        PipelineExecutionArn=execution, ClientRequestToken="retry1".ljust(32, "0")
    )
    stack.deliver()
    stack.advance(timedelta(minutes=40))
    # Then both attempts' jobs are counted, the estimate was finalised again for attempt 2
    jobs = _jobs(stack, execution)
    assert len(jobs) == 2
    second = _estimate(stack, execution)
    assert (second["final"], second["attempt"]) == (True, 2)
    total = sum((Decimal(str(j["cost"])) for j in jobs.values()), Decimal(0))
    assert Decimal(str(second["total"])) == total
    # and one finish message per attempt: the attempt's total and the execution's
    messages = sorted(_finish_messages(stack, execution), key=lambda n: n["message"]["execution"]["attempt"])
    assert [n["message"]["execution"]["attempt"] for n in messages] == [1, 2]
    assert Decimal(messages[1]["message"]["estimate"]["total"]) == total.quantize(Decimal("0.01"))
    assert Decimal(messages[1]["message"]["estimate"]["attempt_total"]) < Decimal(
        messages[1]["message"]["estimate"]["total"]
    )
    assert "retry 1 of train-big" in messages[1]["subject"]


def test_a_run_attributed_after_it_ended_still_gets_its_finish_message(stack: LocalStack) -> None:
    # Given a consumer without a forwarder whose 3-minute run ends before the settle period (10 minutes) infers it
    steps = [StepSpec(name="Prep", type="Processing", duration_seconds=180, instance_type="ml.m5.xlarge")]
    _setup(stack, steps, RunningEstimateMinutes="5")
    execution = _start(stack)
    stack.advance(timedelta(minutes=5))
    assert _estimate(stack, execution)["final"] is True
    assert _finish_messages(stack, execution) == []
    assert any(i["pk"] == "PENDING#finish" for i in stack.table_items(OWNER, "OwnerTable"))
    # When the settle period infers the consumer and the next tick runs
    stack.advance(timedelta(minutes=15))
    # Then one finish message names the inferred consumer, and nothing waits any more
    [message] = _finish_messages(stack, execution)
    assert (message["message"]["consumer_account"], message["message"]["attribution_source"]) == (
        CONSUMER,
        "inferred",
    )
    assert not any(i["pk"] == "PENDING#finish" for i in stack.table_items(OWNER, "OwnerTable"))
    stack.advance(timedelta(minutes=15))
    assert len(_finish_messages(stack, execution)) == 1
