"""The start projection through the local stack: a consumer starts the owner's pipeline and the start alert carries
its worst case (from the definition the execution runs), the pipeline's typical cost and the consumer's remaining
budget; the execution record keeps the worst case for the budget watcher; a failed projection never costs the alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from pipeshare.logic.estimate import load_shipped_prices
from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import CONSUMER, OWNER, create_pipeline, deploy_shared_pipeline
from tests.integration.test_iam_enforcement import without_statement

OWNER_BUS_ARN = f"arn:aws:events:us-east-1:{OWNER}:event-bus/pipeshare-owner"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
BUDGETS, PRICES = "/pipeshare/budgets", "/pipeshare/prices"
LIMIT = Decimal("250")
# the owner's price override (an input of this test, as an owner would set it): the ml.m5.4xlarge training rate of
# the local stack's Price List sample data (local/pipeshare_local/data/README.md, bulk price CSV notes of 2026-09-24)
OVERRIDE = {"regions": {"us-east-1": {"training": {"ml.m5.4xlarge": "0.922"}}}}
THREE_HOURS = 3 * 3600
TRAIN = StepSpec(
    name="Train",
    type="Training",
    duration_seconds=1800,
    instance_type="ml.m5.4xlarge",
    instance_count=2,
    max_runtime_seconds=THREE_HOURS,
)


def _setup(stack: LocalStack, *, budget: bool = True, steps: tuple[StepSpec, ...] = (TRAIN,)) -> None:
    create_pipeline(stack, OWNER, "churn-train")
    stack.sagemaker.define_steps(OWNER, "us-east-1", "churn-train", list(steps))
    ssm = stack.client(OWNER, "ssm")
    ssm.put_parameter(Name=PRICES, Value=json.dumps(OVERRIDE), Type="String")
    parameters = {"PriceOverrideParameterName": PRICES, "UsePriceListApi": "false", "PolicyCacheSeconds": "0"}
    if budget:
        policy = {"version": 1, "consumers": {CONSUMER: {"monthly_limit": str(LIMIT)}}}
        ssm.put_parameter(Name=BUDGETS, Value=json.dumps(policy), Type="String")
        parameters["BudgetPolicyParameterName"] = BUDGETS
    deploy_shared_pipeline(
        stack,
        PIPELINE,
        consumer_parameters={"OwnerEventBusArn": OWNER_BUS_ARN},
        ForwarderAccountIds=CONSUMER,
        **parameters,
    )


def _put(stack: LocalStack, item: dict[str, Any]) -> None:
    """An item written as the cost code writes it (tooling access, outside any function's role)."""
    typed = {
        k: {"N": str(v)} if isinstance(v, Decimal) else {"BOOL": v} if isinstance(v, bool) else {"S": v}
        for k, v in item.items()
    }
    table = stack.deployments[OWNER].refs["OwnerTable"]
    stack.client(OWNER, "dynamodb").put_item(TableName=table, Item=typed)


def _finished_runs(stack: LocalStack, totals: list[tuple[str, bool]]) -> None:
    """RUNS# items of earlier runs of the pipeline (pk/sk as the cost code writes them), oldest first."""
    for index, (total, complete) in enumerate(totals):
        execution = f"{PIPELINE}/execution/earlier{index:05d}"
        ended = f"2026-04-{index + 1:02d}T10:00:00Z"
        _put(
            stack,
            {
                "pk": f"RUNS#{PIPELINE.lower()}",
                "sk": f"{ended}#{execution.lower()}#01",
                "total": Decimal(total),
                "complete": complete,
                "execution_arn": execution,
            },
        )


def _start(stack: LocalStack, request: str = "p") -> str:
    arn = stack.client(CONSUMER, "sagemaker").start_pipeline_execution(
        PipelineName=PIPELINE, ClientRequestToken=request * 32
    )["PipelineExecutionArn"]
    stack.deliver()
    return str(arn)


def _start_alert(stack: LocalStack) -> dict[str, Any]:
    [alert] = [n for n in stack.read_notifications(OWNER) if n["message"].get("event") == "execution.start"]
    return alert


def _state(stack: LocalStack, execution: str) -> dict[str, Any]:
    [item] = [
        i
        for i in stack.table_items(OWNER, "OwnerTable")
        if i["pk"] == f"EXECUTION#{execution.lower()}" and i["sk"] == "STATE"
    ]
    return item


def test_consumer_start_alert_carries_worst_case_typical_and_remaining_budget(stack: LocalStack) -> None:
    # Given a pipeline whose training step runs 2 x ml.m5.4xlarge for at most 3 hours, earlier finished runs
    # (one incomplete), and a consumer that spent 40 USD of its 250 USD budget this month
    _setup(stack)
    _finished_runs(stack, [("9", True), ("1", True), ("500", False), ("3", True)])
    month = datetime.now(UTC).strftime("%Y-%m")
    _put(
        stack, {"pk": f"SPEND#{month}", "sk": f"CONSUMER#{CONSUMER}", "total": Decimal("40"), "kind": "consumer-total"}
    )
    # When the forwarding consumer starts the pipeline
    execution = _start(stack)
    # Then the start alert carries the worst case, 2 x 3 h x the table's rate (the table prices no storage)
    rate = load_shipped_prices().merge(OVERRIDE).price("us-east-1", "training", "ml.m5.4xlarge")
    assert rate is not None
    exact = 2 * Decimal(THREE_HOURS) * rate / 3600
    worst = exact.quantize(Decimal("0.01"), ROUND_CEILING)
    alert = _start_alert(stack)
    projection = alert["message"]["projection"]
    assert (projection["worst_case"], projection["worst_case_complete"], projection["unbounded_steps"]) == (
        str(worst),
        True,
        [],
    )
    # the typical cost: the median of the complete finished runs (1, 3, 9), and how many runs it rests on
    assert (projection["typical"], projection["typical_runs"]) == ("3.00", 3)
    # the remaining budget, and whether the worst case exceeds it
    assert (projection["remaining_budget"], projection["exceeds_remaining"]) == ("210.00", False)
    assert projection["unavailable"] is None
    assert alert["subject"].endswith(f"(owner pays) - worst case USD {worst}")
    # and the execution record keeps the worst case, for the budget watcher
    state = _state(stack, execution)
    assert (Decimal(str(state["worst_case_usd"])), state["worst_case_complete"]) == (exact, True)
    invocations = stack.deployments[OWNER].functions["TrackExecutionsFunction"].invocations
    assert not any(i.metrics.get("ProjectionUnavailable") for i in invocations)


def test_worst_case_survives_later_saves_of_the_record(stack: LocalStack) -> None:
    # Given a consumer start whose alert carried a projection, and no budget
    _setup(stack, budget=False)
    execution = _start(stack)
    before = _state(stack, execution)
    # When the execution runs to its end (its status events save the record again)
    stack.advance(timedelta(hours=1))
    after = _state(stack, execution)
    # Then the record moved on and still holds the worst case; without a budget, no remaining budget is given
    assert (before["status"], after["status"]) == ("Executing", "Succeeded")
    assert (after["worst_case_usd"], after["worst_case_complete"]) == (before["worst_case_usd"], True)
    assert "open_status" not in after  # out of the sparse open_executions index, as before
    projection = _start_alert(stack)["message"]["projection"]
    assert (projection["remaining_budget"], projection["exceeds_remaining"]) == (None, None)


def test_unbounded_steps_are_listed_and_the_subject_says_so(stack: LocalStack) -> None:
    # Given a pipeline with a processing step without a runtime limit (AWS documents no default for processing)
    _setup(stack, steps=(TRAIN, StepSpec(name="Prep", type="Processing", duration_seconds=60)))
    # When the consumer starts it
    execution = _start(stack)
    # Then the worst case is incomplete, names the step and why, and the record says it is incomplete
    alert = _start_alert(stack)
    projection = alert["message"]["projection"]
    assert projection["worst_case_complete"] is False
    [unbounded] = projection["unbounded_steps"]
    assert unbounded["step"] == "Prep"
    assert "MaxRuntimeInSeconds" in unbounded["reason"]
    assert alert["subject"].endswith("- worst case unbounded")
    assert _state(stack, execution)["worst_case_complete"] is False


def test_the_forwarded_start_costs_five_more_tracker_calls_for_the_projection(stack: LocalStack) -> None:
    # Given a forwarding consumer, a pipeline without parameters, a budget policy and a price override, both read
    # uncached (PolicyCacheSeconds 0), the Price List lookup off
    _setup(stack)
    before = len(stack.calls(OWNER, functions_only=True))
    # When the consumer starts the pipeline (the status event, then the forwarded record that makes the alert due)
    _start(stack)
    calls = [c[2] for c in stack.calls(OWNER, functions_only=True)[before:]]
    # Then the tracker's invocation on the forwarded record (from its verification to its write) made the 5 calls of
    # the attribution and 5 for the projection: the definition, the price override, the pipeline's finished runs,
    # the budget policy, the consumer's month-to-date spend (no ListPipelineParametersForExecution: no parameters)
    first = calls.index("DescribePipelineExecution")
    forwarded = calls[first : calls.index("TransactWriteItems", first) + 1]
    assert forwarded == [
        "DescribePipelineExecution",
        "GetItem",  # the execution record
        "GetItem",  # the estimate whose counted spend moves to the consumer
        "DescribePipelineDefinitionForExecution",
        "GetParameter",  # the price override
        "Query",  # the pipeline's finished runs (RUNS#)
        "GetParameter",  # the budget policy
        "GetItem",  # the consumer's month-to-date spend
        "Query",  # the pipeline's grants (the alert names the share)
        "TransactWriteItems",
    ]
    # and the status event's invocation before it, which alerted nothing, made none (3 calls, as without projection)
    assert calls[:first] == ["GetItem", "SendMessage", "TransactWriteItems"]


def test_projection_failure_keeps_the_alert_says_why_and_is_counted() -> None:
    # Given the tracker's role without the statement that lets it read an execution's definition
    with LocalStack(template=without_statement("TrackExecutionsFunction", "ProjectStarts")) as stack:
        _setup(stack, budget=False)
        # When a consumer starts the pipeline
        execution = _start(stack)
        # Then the start alert still goes out, its projection saying why the worst case is missing
        projection = _start_alert(stack)["message"]["projection"]
        assert projection["worst_case"] is None
        assert projection["unavailable"].startswith("projection unavailable: worst case: ")
        assert "AccessDenied" in projection["unavailable"]
        # the record holds no worst case, and the tracker counted ProjectionUnavailable
        assert "worst_case_usd" not in _state(stack, execution)
        invocations = stack.deployments[OWNER].functions["TrackExecutionsFunction"].invocations
        assert sum(i.metrics.get("ProjectionUnavailable", 0) for i in invocations) == 1
