"""Execution cost estimates on the owner side (local stack): running estimate, final estimate, spend, finish alert."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeshare.adapters.dynamodb_costs import DynamoDbCostRepository
from pipeshare.adapters.price_list import PriceListGateway
from pipeshare.models.owner import OWNER_HOLDER, UNATTRIBUTED, CountedJob, SpendHolder
from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.stack import LocalStack
from tests.conftest import load_event
from tests.integration.stackhelpers import CONSUMER, OWNER, create_pipeline, deploy_shared_pipeline

STEPS = [
    StepSpec(
        name="Preprocess", type="Processing", duration_seconds=300, instance_type="ml.m5.xlarge", instance_count=2
    ),
    StepSpec(name="Train", type="Training", duration_seconds=600, instance_type="ml.m5.xlarge", spot=True),
    StepSpec(name="CheckAccuracy", type="Condition", duration_seconds=1),
    StepSpec(name="Features", type="Processing", cache_hit=True),
]


def _setup(stack: LocalStack) -> None:
    pipeline = create_pipeline(stack, OWNER, "churn-train")
    stack.sagemaker.define_steps(OWNER, "us-east-1", "churn-train", STEPS)
    deploy_shared_pipeline(stack, pipeline)


def _start(stack: LocalStack, request_id: str = "c") -> str:
    arn = stack.client(CONSUMER, "sagemaker").start_pipeline_execution(
        PipelineName=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train", ClientRequestToken=request_id * 32
    )["PipelineExecutionArn"]
    stack.deliver()
    return str(arn)


def _items(stack: LocalStack, pk: str) -> dict[str, dict[str, Any]]:
    return {i["sk"]: i for i in stack.table_items(OWNER, "OwnerTable") if i["pk"] == pk}


def _estimate(stack: LocalStack, execution: str) -> dict[str, Any]:
    return _items(stack, f"EXECUTION#{execution.lower()}").get("ESTIMATE", {})


def _month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def _finish_alerts(stack: LocalStack) -> list[dict[str, Any]]:
    return [
        n
        for n in stack.read_notifications(OWNER)
        if str(n["message"].get("schema", "")).startswith("pipeshare.owner.execution-cost")
    ]


def test_estimate_runs_with_the_steps_and_is_final_when_the_execution_ends(stack: LocalStack) -> None:
    # Given a consumer execution of a pipeline with processing, spot training, condition and cached steps
    _setup(stack)
    execution = _start(stack)
    # When the first step has ended
    stack.advance(timedelta(seconds=310))
    running = _estimate(stack, execution)
    # Then the running estimate holds the processing job, not final
    # the rates the estimator uses: the (local) Price List's, laid over the shipped table (README, Prices)
    prices = PriceListGateway(stack.client(OWNER, "pricing"))
    processing = prices.usd_per_hour("us-east-1", "processing", "ml.m5.xlarge")
    assert processing is not None
    assert running["final"] is False
    assert Decimal(str(running["total"])) >= Decimal(300 * 2) * processing / 3600
    # When the execution ends
    stack.advance(timedelta(minutes=20))
    final = _estimate(stack, execution)
    # Then the estimate is final, and spot training was billed for its billable time only (40 % of 600 s)
    training = prices.usd_per_hour("us-east-1", "training", "ml.m5.xlarge")
    assert training is not None
    compute = Decimal(600) * processing / 3600 + Decimal(240) * training / 3600
    assert final["final"] is True
    assert compute <= Decimal(str(final["total"])) < compute + Decimal("0.05")  # plus the ML storage volumes
    states = {line["step"]: line["state"] for line in final["breakdown"]}
    assert states == {
        "Preprocess": "estimated",
        "Train": "estimated",
        "CheckAccuracy": "no-compute",
        "Features": "cached",
    }


def test_each_job_is_counted_once_and_spend_matches_the_estimate(stack: LocalStack) -> None:
    # Given a finished consumer execution
    _setup(stack)
    execution = _start(stack)
    stack.advance(timedelta(minutes=30))
    # When every owner-side event is delivered again, newest first
    for event in reversed([d.event for d in stack.delivered if d.account == OWNER and not d.dropped]):
        stack.put_event(OWNER, event)
    stack.deliver()
    # Then two jobs are counted, and the consumer's and the pipeline's month-to-date spend equal the estimate
    jobs = [sk for sk in _items(stack, f"EXECUTION#{execution.lower()}") if sk.startswith("JOB#")]
    assert len(jobs) == 2
    total = Decimal(str(_estimate(stack, execution)["total"]))
    spend = _items(stack, f"SPEND#{_month()}")
    assert Decimal(str(spend[f"CONSUMER#{CONSUMER}"]["total"])) == total
    assert Decimal(str(spend[f"PIPELINE#arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"]["total"])) == total
    assert len(_finish_alerts(stack)) == 1


def test_finish_alert_carries_the_breakdown_and_month_to_date(stack: LocalStack) -> None:
    _setup(stack)
    _start(stack)
    stack.advance(timedelta(minutes=30))
    [alert] = _finish_alerts(stack)
    body = alert["message"]
    assert CONSUMER in alert["subject"]
    assert {line["step"] for line in body["estimate"]["steps"]} == {"Preprocess", "Train", "CheckAccuracy", "Features"}
    assert body["month_to_date"]["consumer_spend"] == body["estimate"]["total"]  # its first run this month
    assert "estimate" in json.dumps(body).lower()


def test_owner_runs_are_estimated_but_not_counted_as_consumer_spend(stack: LocalStack) -> None:
    _setup(stack)
    execution = str(
        stack.client(OWNER, "sagemaker").start_pipeline_execution(
            PipelineName="churn-train", ClientRequestToken="o" * 32
        )["PipelineExecutionArn"]
    )
    stack.advance(timedelta(minutes=30))
    assert _estimate(stack, execution)["final"] is True
    assert f"CONSUMER#{OWNER}" not in _items(stack, f"SPEND#{_month()}")
    assert _finish_alerts(stack) == []


def test_concurrent_spend_updates_add_up_exactly(stack: LocalStack) -> None:
    # Given the owner table and 8 writers each counting 5 distinct jobs of different executions at once
    deployment = stack.deploy(OWNER, {"Mode": "owner"})
    creds = stack.credentials(OWNER, "tooling")
    import boto3

    def writer(n: int) -> None:
        client = boto3.client(
            "dynamodb",
            endpoint_url=stack.endpoint,
            region_name="us-east-1",
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=creds["AWS_SESSION_TOKEN"],
        )
        repo = DynamoDbCostRepository(deployment.refs["OwnerTable"], client)
        for j in range(5):
            execution = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/p/execution/e{n}x{j}"
            job = CountedJob(
                f"arn:aws:sagemaker:us-east-1:{OWNER}:processing-job/j{n}x{j}", "s", "processing", Decimal("0.37"), {}
            )
            assert repo.commit(
                execution,
                holder=SpendHolder("consumer", CONSUMER, True),
                pipeline_arn="arn:p",
                month="2026-05",
                jobs=[job],
                estimate={"steps": []},
                version=0,
                at=datetime.now(UTC),
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))  # re-raises any writer's error
    # Then the month's spend is exactly 40 x 0.37
    spend = _items(stack, "SPEND#2026-05")
    assert Decimal(str(spend[f"CONSUMER#{CONSUMER}"]["total"])) == Decimal("14.80")


def test_finalised_estimate_call_count(stack: LocalStack) -> None:
    # Given a consumer execution of the 4-step pipeline (2 jobs, 1 page of steps)
    _setup(stack)
    _start(stack)
    function = stack.deployments[OWNER].functions["EstimateCostFunction"]
    before_invocations = len(function.invocations)
    before = len(stack.calls(OWNER, functions_only=True))
    # When the execution runs to its end
    stack.advance(timedelta(minutes=30))
    # Then the finalising invocation read the record once, listed one page, described no job again (both were
    # counted when their steps ended), read the consumer's month-to-date spend and wrote once: within
    # 1 + pages + jobs = 4
    finalising = [i for i in function.invocations[before_invocations:] if i.result.get("status") == "finalised"]
    assert len(finalising) == 1
    owner_calls = stack.calls(OWNER, functions_only=True)[before:]
    ops = [c[2] for c in owner_calls]
    start = len(ops) - 1 - ops[::-1].index("ListPipelineExecutionSteps") - 1  # the Query just before the listing
    finalisation = ops[start : ops.index("TransactWriteItems", start) + 1]
    assert finalisation == ["Query", "ListPipelineExecutionSteps", "GetItem", "TransactWriteItems"]
    assert len(finalisation) <= 1 + 1 + 2


def _cost_repository(stack: LocalStack) -> DynamoDbCostRepository:
    """The cost repository on the owner's table, through the stack's client with the owner's tooling credentials."""
    return DynamoDbCostRepository(stack.deployments[OWNER].refs["OwnerTable"], stack.client(OWNER, "dynamodb"))


def test_arns_in_mixed_case_are_one_execution_one_job_and_one_pipeline_total(stack: LocalStack) -> None:
    # Given the owner table
    stack.deploy(OWNER, {"Mode": "owner"})
    repository = _cost_repository(stack)
    pipeline = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/Churn-Train"
    job = f"arn:aws:sagemaker:us-east-1:{OWNER}:processing-job/Pipelines-E1-Preprocess"

    def commit(execution: str, pipeline_arn: str, job_arn: str) -> bool:
        return repository.commit(
            execution,
            holder=SpendHolder("consumer", CONSUMER, True),
            pipeline_arn=pipeline_arn,
            month="2026-05",
            jobs=[CountedJob(job_arn, "Preprocess", "processing", Decimal("0.50"), {})],
            estimate={"steps": []},
            version=repository.state(execution).version,
            at=datetime.now(UTC),
        )

    # When two executions of the pipeline are counted, named in two cases, and the first job again in lower case
    assert commit(f"{pipeline}/execution/E1", pipeline, job)
    assert commit(f"{pipeline.lower()}/execution/e2", pipeline.lower(), job.replace("E1", "E2"))
    assert not commit(f"{pipeline.lower()}/execution/e1", pipeline.lower(), job.lower())
    # Then one pipeline total (and one consumer-pipeline total) with both jobs, keyed in lower case
    spend = _items(stack, "SPEND#2026-05")
    assert set(spend) == {
        f"CONSUMER#{CONSUMER}",
        f"PIPELINE#{pipeline.lower()}",
        f"CONSUMER#{CONSUMER}#PIPELINE#{pipeline.lower()}",
    }
    assert {Decimal(str(item["total"])) for item in spend.values()} == {Decimal("1.00")}
    # and the first execution is one item set: its job counted once, its ARN kept as given
    first = _items(stack, f"EXECUTION#{pipeline.lower()}/execution/e1")
    assert set(first) == {"ESTIMATE", f"JOB#{job.lower()}"}
    assert first[f"JOB#{job.lower()}"]["job_arn"] == job
    assert first["ESTIMATE"]["pipeline_arn"] == pipeline


def test_a_finished_execution_sagemaker_no_longer_knows_is_gone_once_and_not_retried(stack: LocalStack) -> None:
    # Given an owner deployment, and a finished execution whose pipeline has since been deleted: SageMaker answers
    # ResourceNotFound to ListPipelineExecutionSteps (the local SageMaker never had this execution: the same answer)
    stack.deploy(OWNER, {"Mode": "owner"})
    event = load_event("sagemaker_execution_status_succeeded")
    execution = event["detail"]["pipelineExecutionArn"]
    function = stack.deployments[OWNER].functions["EstimateCostFunction"]
    # When its end event reaches the cost estimator through the owner's rule (an asynchronous invocation)
    stack.put_event(OWNER, event)
    stack.deliver()
    # Then one attempt, a terminal "gone" outcome: the CostGone metric and a warning; no retry, nothing dead-lettered
    [attempt] = function.invocations
    assert attempt.error is None
    assert (attempt.result["status"], attempt.result["execution_arn"]) == ("gone", execution)
    assert attempt.metrics.get("CostGone") == 1
    assert [line["message"] for line in attempt.logs if line.get("level") == "WARNING"] == ["cost event processed"]
    assert stack.queue_messages(OWNER, "EstimateCostDlq") == []
    # and nothing was written for it
    assert "ESTIMATE" not in _items(stack, f"EXECUTION#{execution.lower()}")


def test_counted_spend_follows_the_attribution_and_a_commit_on_a_stale_one_loses(stack: LocalStack) -> None:
    # Given an owner table and USD 1.50 counted for an execution nobody was attributed yet
    stack.deploy(OWNER, {"Mode": "owner"})
    costs = _cost_repository(stack)
    pipeline = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
    execution, month, now = f"{pipeline}/execution/late1", "2026-05", datetime(2026, 5, 1, 9, tzinfo=UTC)
    confirmed, inferred = SpendHolder("consumer", CONSUMER, True), SpendHolder("consumer", CONSUMER, False)

    def commit(holder: SpendHolder, job: str, cost: str, version: int) -> bool:
        counted = CountedJob(
            job_arn=f"{pipeline}-job/{job}", step=job, kind="processing", cost=Decimal(cost), detail={}
        )
        return costs.commit(
            execution,
            holder=holder,
            pipeline_arn=pipeline,
            month=month,
            jobs=[counted],
            estimate={"steps": [], "complete": False},
            version=version,
            at=now,
        )

    def spend(sk: str, attribute: str = "total") -> Decimal:
        return Decimal(str(_items(stack, f"SPEND#{month}").get(sk, {}).get(attribute, 0)))

    assert commit(UNATTRIBUTED, "prep", "1.50", 0)
    assert spend(f"UNATTRIBUTED#PIPELINE#{pipeline}") == Decimal("1.50")
    # When the execution is inferred to the consumer (its settle period passed)
    stale = costs.state(execution).version
    moved = costs.move_spend(execution, holder=inferred, at=now)
    # Then the whole counted total is now the consumer's spend (not confirmed), off the unattributed line
    assert (moved, costs.month_spend(month, CONSUMER)) == (Decimal("1.50"), Decimal("1.50"))
    assert (spend(f"CONSUMER#{CONSUMER}", "confirmed_total"), spend(f"UNATTRIBUTED#PIPELINE#{pipeline}")) == (0, 0)
    # and a commit that read the estimate before the move loses (nothing written); one that reads it again counts
    assert not commit(UNATTRIBUTED, "train", "0.50", stale)
    assert commit(inferred, "train", "0.50", costs.state(execution).version)
    assert costs.month_spend(month, CONSUMER) == Decimal("2.00")
    # When the consumer's forwarded record confirms it, the total becomes confirmed spend too
    assert costs.move_spend(execution, holder=confirmed, at=now) == Decimal("2.00")
    assert spend(f"CONSUMER#{CONSUMER}", "confirmed_total") == Decimal("2.00")
    # When a later record shows the owner started it, the spend goes back out of the consumer, once
    assert costs.move_spend(execution, holder=OWNER_HOLDER, at=now) == Decimal("2.00")
    assert costs.move_spend(execution, holder=OWNER_HOLDER, at=now) is None
    assert costs.month_spend(month, CONSUMER) == Decimal(0)
    assert spend(f"CONSUMER#{CONSUMER}", "confirmed_total") == Decimal(0)
    assert spend(f"PIPELINE#{pipeline}") == Decimal("2.00")
