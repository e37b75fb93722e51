"""pipeshare.logic.cost: each job counted once (at its step's end or when the execution ends), the final estimate,
month-to-date spend per spend holder (consumer confirmed / inferred, owner, unattributed) and pipeline, the finish
alert (or a pending mark while nobody is known to have started the run), live prices from the Price List.

Every figure expected here is computed from the fixtures and quantised to 1e-6 USD (`quantize_usd`), as the logic
quantises every cost before it is written or summed. The running tick, retries, pending finish alerts and
quantisation over many jobs: tests/unit/test_running_estimates.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from pipeshare.logic.attribution import merge, observe_status
from pipeshare.logic.budgets import parse_budget_policy
from pipeshare.logic.cost import MAX_ATTEMPTS, on_execution_end, on_step_event
from pipeshare.logic.cost_messages import FINISH_SCHEMA
from pipeshare.logic.estimate import job_cost, quantize_usd
from pipeshare.logic.spend import consumer_of
from pipeshare.models.errors import CostConflictError
from pipeshare.models.estimates import PriceTable
from pipeshare.models.executions import ActionObservation, AttributionSource, ExecutionRecord, InferenceObservation
from pipeshare.models.owner import Finalisation, PendingFinish, SpendHolder
from pipeshare.models.owner_events import OwnerEvent, PipelineExecutionStatusEvent, PipelineStepStatusEvent
from pipeshare.models.types import PipelineAction
from tests.conftest import load_event
from tests.fakes import FakeBudgetSource, FakeCostDataGateway, FakeCostRepository, FakePriceLookup
from tests.unit.test_estimate import (
    EARLIER_EXECUTION,
    PRICES,
    PROCESSING,
    PROCESSING_ARN,
    TRAINING,
    TRAINING_ARN,
    TRANSFORM,
    TRANSFORM_ARN,
    step,
    variant,
)

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
REGION = "us-east-1"
PIPELINE = f"arn:aws:sagemaker:{REGION}:{OWNER}:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/p4jn9xou8a8s"  # the execution of the events/ fixtures
NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
MONTH = "2024-05"
STARTED = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
PRINCIPAL = f"arn:aws:sts::{CONSUMER}:assumed-role/DataScientist/alice"
UNKNOWN_TYPE = "ml.x9.huge"  # in no price table
# The fixture's processing job, on an instance type the table does not price (210 s, 1 instance, 30 GB).
UNPRICED = variant(
    PROCESSING,
    ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": UNKNOWN_TYPE, "VolumeSizeInGB": 30}},
)
LIVE_RATE = "0.5"


# ---------------------------------------------------------------------------------------------------------- events


def step_event(**detail: Any) -> PipelineStepStatusEvent:
    """The fixture's step event (Preprocess ended, its processing job), detail keys replaced (None removes one)."""
    raw = load_event("sagemaker_step_status_succeeded")
    for key, value in detail.items():
        if value is None:
            raw["detail"].pop(key, None)
        else:
            raw["detail"][key] = value
    event = OwnerEvent.model_validate({"event": raw}).event
    assert isinstance(event, PipelineStepStatusEvent)
    return event


def execution_event(fixture: str = "sagemaker_execution_status_succeeded") -> PipelineExecutionStatusEvent:
    event = OwnerEvent.model_validate({"event": load_event(fixture)}).event
    assert isinstance(event, PipelineExecutionStatusEvent)
    return event


def of_another_account(event: PipelineStepStatusEvent) -> PipelineStepStatusEvent:
    """The same step event, for the same-named pipeline in account OTHER."""
    raw = json.loads(json.dumps(load_event("sagemaker_step_status_succeeded")).replace(OWNER, OTHER))
    other = OwnerEvent.model_validate({"event": raw}).event
    assert isinstance(other, PipelineStepStatusEvent)
    assert other.owner_account() == OTHER != event.owner_account()
    return other


# --------------------------------------------------------------------------------------------------------- records


def attributed(start: str) -> ExecutionRecord:
    """The execution's record (it ended Succeeded), its start attributed as `start` says."""
    record = merge(None, observe_status(execution_event()))
    observations = {
        "forwarded": ActionObservation(
            execution_arn=EXECUTION,
            action=PipelineAction.START,
            source=AttributionSource.FORWARDED,
            account=CONSUMER,
            principal=PRINCIPAL,
            time=STARTED,
            event_id="forwarded-1",
        ),
        "owner-copy": ActionObservation(
            execution_arn=EXECUTION,
            action=PipelineAction.START,
            source=AttributionSource.OWNER_COPY,
            account=CONSUMER,
            principal_id=f"AROAEXAMPLE:{CONSUMER}",
            time=STARTED,
        ),
        "inferred": InferenceObservation(
            execution_arn=EXECUTION, source=AttributionSource.INFERRED, candidates=(CONSUMER,), time=STARTED
        ),
        "ambiguous": InferenceObservation(
            execution_arn=EXECUTION, source=AttributionSource.AMBIGUOUS, candidates=(CONSUMER, OTHER), time=STARTED
        ),
        "owner": ActionObservation(
            execution_arn=EXECUTION,
            action=PipelineAction.START,
            source=AttributionSource.OWNER,
            account=OWNER,
            principal=f"arn:aws:sts::{OWNER}:assumed-role/MLOps/bob",
            time=STARTED,
        ),
    }
    return record if start == "unknown" else merge(record, observations[start])


def repository(start: str | None = "forwarded") -> FakeCostRepository:
    """A cost repository holding the execution's record (None: no record at all)."""
    costs = FakeCostRepository()
    if start is not None:
        costs.seed_record(attributed(start))
    return costs


# -------------------------------------------------------------------------------------------------------- SageMaker


def sagemaker_with_the_job(response: dict[str, Any] = PROCESSING) -> FakeCostDataGateway:
    """SageMaker knowing the step event's processing job."""
    sagemaker = FakeCostDataGateway()
    sagemaker.add_job("processing", PROCESSING_ARN, response)
    return sagemaker


def sagemaker_with_the_execution(*, page_size: int = 100) -> FakeCostDataGateway:
    """SageMaker knowing the execution's two steps (TrainModel, Preprocess) and their jobs."""
    sagemaker = FakeCostDataGateway(page_size=page_size)
    sagemaker.add_steps(
        EXECUTION,
        [
            step("TrainModel", {"TrainingJob": {"Arn": TRAINING_ARN}}),
            step("Preprocess", {"ProcessingJob": {"Arn": PROCESSING_ARN}}),
        ],
    )
    sagemaker.add_job("training", TRAINING_ARN, TRAINING)
    sagemaker.add_job("processing", PROCESSING_ARN, PROCESSING)
    return sagemaker


def cost_of(kind: str, response: dict[str, Any], prices: PriceTable = PRICES) -> Decimal:
    """A job's cost as counted: computed from the fixture, then quantised to 1e-6 USD like every stored cost."""
    return quantize_usd(job_cost(kind, response, region=REGION, prices=prices, now=NOW).total)


def count_step(
    costs: FakeCostRepository,
    sagemaker: FakeCostDataGateway,
    event: PipelineStepStatusEvent | None = None,
    *,
    price_lookup: FakePriceLookup | None = None,
) -> Any:
    return on_step_event(
        event or step_event(),
        owner_account=OWNER,
        costs=costs,
        sagemaker=sagemaker,
        prices=PRICES,
        now=NOW,
        price_lookup=price_lookup,
    )


def finalise(
    costs: FakeCostRepository,
    sagemaker: FakeCostDataGateway,
    event: PipelineExecutionStatusEvent | None = None,
    *,
    budgets: FakeBudgetSource | None = None,
    price_lookup: FakePriceLookup | None = None,
) -> Any:
    return on_execution_end(
        event or execution_event(),
        owner_account=OWNER,
        costs=costs,
        sagemaker=sagemaker,
        budgets=budgets or FakeBudgetSource(),
        prices=PRICES,
        now=NOW,
        price_lookup=price_lookup,
    )


def cents(amount: Decimal) -> str:
    """An amount as the finish message shows it: rounded half-up to cents."""
    return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


TRAINING_COST = cost_of("training", TRAINING)
PROCESSING_COST = cost_of("processing", PROCESSING)


# ------------------------------------------------------------------------------------------------ step events


def test_step_not_ended_is_running_and_nothing_is_described() -> None:
    # Given a step still executing
    costs, sagemaker = repository(), sagemaker_with_the_job()
    event = step_event(currentStepStatus="Executing", previousStepStatus="Starting", stepEndTime=None)

    # When its event is handled
    outcome = count_step(costs, sagemaker, event)

    # Then it is reported running; nothing is described nor written
    assert (outcome.status, outcome.execution_arn) == ("running", EXECUTION)
    assert outcome.reason == "step Preprocess is Executing"
    assert sagemaker.api_calls == []
    assert costs.commits == []


def test_cached_step_is_ignored() -> None:
    # Given an ended step served from the cache of an earlier execution
    costs, sagemaker = repository(), sagemaker_with_the_job()
    event = step_event(cacheHitResult={"sourcePipelineExecutionArn": EARLIER_EXECUTION})

    # When its event is handled
    outcome = count_step(costs, sagemaker, event)

    # Then it is not billed again: nothing described, nothing counted
    assert outcome.status == "ignored"
    assert "cached" in outcome.reason
    assert sagemaker.api_calls == []
    assert costs.commits == []


def test_step_of_another_account_is_ignored() -> None:
    # Given the ended step of a pipeline owned by another account
    costs, sagemaker = repository(), sagemaker_with_the_job()
    event = of_another_account(step_event())

    # When it is handled by this owner
    outcome = count_step(costs, sagemaker, event)

    # Then nothing is read, described or counted
    assert outcome.status == "ignored"
    assert costs.state_reads == []
    assert sagemaker.api_calls == []
    assert costs.commits == []


def test_step_that_ran_no_job_is_ignored() -> None:
    # Given an ended step whose metadata names no job
    costs, sagemaker = repository(), sagemaker_with_the_job()

    # When its event is handled
    outcome = count_step(costs, sagemaker, step_event(metadata={}))

    # Then
    assert (outcome.status, outcome.reason) == ("ignored", "the step ran no job")
    assert sagemaker.api_calls == []
    assert costs.commits == []


def test_ended_step_job_is_described_once_and_counted() -> None:
    # Given a consumer's execution whose Preprocess step ended
    costs, sagemaker = repository("forwarded"), sagemaker_with_the_job()

    # When the step event is handled
    outcome = count_step(costs, sagemaker)

    # Then the job is described once and its cost counted into the running estimate and the month's spend
    assert PROCESSING_COST > 0
    assert (outcome.status, outcome.added, outcome.total, outcome.consumer) == (
        "counted",
        PROCESSING_COST,
        PROCESSING_COST,
        CONSUMER,
    )
    assert sagemaker.api_calls == [("DescribeProcessingJob", PROCESSING_ARN)]
    job = costs.counted(EXECUTION)[PROCESSING_ARN.lower()]
    assert (job.job_arn, job.step, job.kind, job.cost) == (PROCESSING_ARN, "Preprocess", "processing", PROCESSING_COST)
    assert job.detail["state"] == "estimated"
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    assert (estimate["total"], estimate["final"], estimate["complete"], estimate["month"]) == (
        PROCESSING_COST,
        False,
        False,
        MONTH,
    )
    assert estimate["breakdown"] == [
        {
            "step": "Preprocess",
            "type": "processing",
            "job": PROCESSING_ARN,
            "state": "estimated",
            "cost": str(PROCESSING_COST),
            "issues": [],
        }
    ]
    assert (job.final, job.previous, job.attempt) == (True, None, 1)
    assert (estimate["version"], estimate["spend_holder"], estimate["unpriced"]) == (
        1,
        f"consumer:{CONSUMER}:confirmed",
        [],
    )
    assert costs.month_spend(MONTH, CONSUMER) == PROCESSING_COST
    assert costs.confirmed_spend(MONTH, CONSUMER) == PROCESSING_COST
    assert costs.pipeline_spend(MONTH, PIPELINE) == PROCESSING_COST
    assert costs.consumer_pipeline_spend(MONTH, CONSUMER, PIPELINE) == PROCESSING_COST
    assert costs.unattributed_spend(MONTH, PIPELINE) == 0


def test_a_second_step_adds_to_the_running_estimate() -> None:
    # Given the Preprocess step already counted
    costs = repository("forwarded")
    sagemaker = sagemaker_with_the_execution()
    count_step(costs, sagemaker)

    # When the TrainModel step ends
    event = step_event(stepName="TrainModel", stepType="Training", metadata={"trainingJob": {"arn": TRAINING_ARN}})
    outcome = count_step(costs, sagemaker, event)

    # Then its job is added to the total and the breakdown, and to the spend
    assert (outcome.status, outcome.added, outcome.total) == ("counted", TRAINING_COST, PROCESSING_COST + TRAINING_COST)
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    assert estimate["total"] == PROCESSING_COST + TRAINING_COST
    assert [(line["step"], line["type"]) for line in estimate["breakdown"]] == [
        ("Preprocess", "processing"),
        ("TrainModel", "training"),
    ]
    assert costs.month_spend(MONTH, CONSUMER) == PROCESSING_COST + TRAINING_COST


@pytest.mark.parametrize(
    ("start", "holder"),
    [
        ("forwarded", SpendHolder("consumer", CONSUMER, confirmed=True)),
        ("owner-copy", SpendHolder("consumer", CONSUMER, confirmed=True)),
        ("inferred", SpendHolder("consumer", CONSUMER, confirmed=False)),
        ("owner", SpendHolder("owner")),
        ("ambiguous", SpendHolder("unattributed")),
        ("unknown", SpendHolder("unattributed")),
        (None, SpendHolder("unattributed")),
    ],
)
def test_counted_step_goes_to_the_spend_holder_the_record_attributes(start: str | None, holder: SpendHolder) -> None:
    # Given the execution's record, attributed as `start` says (None: no record yet)
    costs, sagemaker = repository(start), sagemaker_with_the_job()

    # When the step is counted
    outcome = count_step(costs, sagemaker)

    # Then the spend goes to that holder, always to the pipeline: a consumer's total (and its confirmed total only
    # for forwarded / owner-copy attributions), the owner's own runs on the pipeline only, ambiguous / unknown / no
    # record on the pipeline's unattributed line
    consumer = holder.account
    assert outcome.status == "counted"
    assert outcome.consumer == consumer
    assert costs.commits[0].holder == holder
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    assert (estimate["spend_holder"], estimate["consumer_account"]) == (holder.key, consumer or "-")
    assert costs.pipeline_spend(MONTH, PIPELINE) == PROCESSING_COST
    assert costs.month_spend(MONTH, CONSUMER) == (PROCESSING_COST if consumer else 0)
    assert costs.consumer_pipeline_spend(MONTH, CONSUMER, PIPELINE) == (PROCESSING_COST if consumer else 0)
    assert costs.confirmed_spend(MONTH, CONSUMER) == (PROCESSING_COST if holder.confirmed else 0)
    assert costs.unattributed_spend(MONTH, PIPELINE) == (PROCESSING_COST if holder.kind == "unattributed" else 0)
    assert costs.month_spend(MONTH, OTHER) == 0
    assert costs.month_spend(MONTH, OWNER) == 0


def test_consumer_of_a_record_attributed_to_the_owner_account_is_none() -> None:
    # Given a start whose forwarded record names the owner account itself
    record = merge(
        None,
        ActionObservation(
            execution_arn=EXECUTION,
            action=PipelineAction.START,
            source=AttributionSource.FORWARDED,
            account=OWNER,
            time=STARTED,
        ),
    )

    # When / Then it is the owner's own spend
    assert consumer_of(record, OWNER) is None
    assert consumer_of(attributed("forwarded"), OWNER) == CONSUMER
    assert consumer_of(None, OWNER) is None


def test_repeated_step_event_is_a_duplicate_and_describes_nothing() -> None:
    # Given the step already counted
    costs, sagemaker = repository(), sagemaker_with_the_job()
    count_step(costs, sagemaker)
    calls = len(sagemaker.api_calls)

    # When the same event is delivered again
    outcome = count_step(costs, sagemaker)

    # Then it is a duplicate: no Describe call, no write, the spend unchanged
    assert outcome.status == "duplicate"
    assert len(sagemaker.api_calls) == calls == 1
    assert len(costs.commits) == 1
    assert costs.month_spend(MONTH, CONSUMER) == PROCESSING_COST


def test_commit_conflict_is_retried_then_counted_once() -> None:
    # Given another writer changes the execution between the state read and the first commit
    costs, sagemaker = repository(), sagemaker_with_the_job()
    costs.conflict(times=1)

    # When the step event is handled
    outcome = count_step(costs, sagemaker)

    # Then the state is read again, the second commit goes through, and the job is counted once
    assert outcome.status == "counted"
    assert [c.written for c in costs.commits] == [False, True]
    assert len(costs.state_reads) == 2
    assert list(costs.counted(EXECUTION)) == [PROCESSING_ARN.lower()]
    assert costs.month_spend(MONTH, CONSUMER) == PROCESSING_COST


def test_concurrent_invocation_counting_the_same_job_makes_the_retry_a_duplicate() -> None:
    # Given a concurrent invocation of the same event that commits first
    costs, sagemaker = repository(), sagemaker_with_the_job()
    costs.interleave(lambda: count_step(costs, sagemaker_with_the_job()))

    # When this invocation commits
    outcome = count_step(costs, sagemaker)

    # Then its commit is refused (the job is counted already), the retry finds it counted: once in total
    assert outcome.status == "duplicate"
    assert [c.written for c in costs.commits] == [True, False]
    assert costs.month_spend(MONTH, CONSUMER) == PROCESSING_COST
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    assert estimate["total"] == PROCESSING_COST


def test_persistent_commit_conflict_raises_cost_conflict_error() -> None:
    # Given every commit loses to another writer
    costs, sagemaker = repository(), sagemaker_with_the_job()
    costs.conflict(times=100)

    # When the step event is handled
    with pytest.raises(CostConflictError, match="kept changing"):
        count_step(costs, sagemaker)

    # Then it tried MAX_ATTEMPTS times and counted nothing (Lambda retries the event)
    assert len(costs.commits) == MAX_ATTEMPTS
    assert costs.counted(EXECUTION) == {}
    assert costs.month_spend(MONTH, CONSUMER) == 0


def test_job_not_described_yet_is_ignored() -> None:
    # Given SageMaker does not know the step's job (yet)
    costs, sagemaker = repository(), FakeCostDataGateway()

    # When the step event is handled
    outcome = count_step(costs, sagemaker)

    # Then it was asked once, nothing is counted (the execution's end will count or report it)
    assert outcome.status == "ignored"
    assert sagemaker.api_calls == [("DescribeProcessingJob", PROCESSING_ARN)]
    assert costs.commits == []


# ------------------------------------------------------------------------------------------------ execution end


def test_execution_not_ended_is_ignored() -> None:
    # Given an execution status event for a running execution
    costs, sagemaker = repository(), sagemaker_with_the_execution()

    # When it is handled
    outcome = finalise(costs, sagemaker, execution_event("sagemaker_execution_status_executing"))

    # Then nothing is listed, described or written
    assert outcome.status == "ignored"
    assert sagemaker.api_calls == []
    assert costs.commits == []


def test_execution_end_counts_only_the_jobs_not_counted_yet_and_finalises() -> None:
    # Given Preprocess was counted when its step ended
    costs, sagemaker = repository("forwarded"), sagemaker_with_the_execution()
    count_step(costs, sagemaker)

    # When the execution ends
    outcome = finalise(costs, sagemaker)

    # Then only TrainModel's job is added; the estimate is final, complete, with every step; each job counted once
    assert (outcome.status, outcome.added, outcome.total, outcome.consumer) == (
        "finalised",
        TRAINING_COST,
        TRAINING_COST + PROCESSING_COST,
        CONSUMER,
    )
    assert [job.job_arn for job in costs.commits[-1].jobs] == [TRAINING_ARN]
    assert set(costs.counted(EXECUTION)) == {TRAINING_ARN.lower(), PROCESSING_ARN.lower()}
    assert all(job.final for job in costs.counted(EXECUTION).values())
    assert costs.commits[-1].finalise == Finalisation(execution_event().time, 1, "Succeeded")
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    assert (estimate["final"], estimate["complete"], estimate["total"], estimate["finalised_total"]) == (
        True,
        True,
        TRAINING_COST + PROCESSING_COST,
        TRAINING_COST + PROCESSING_COST,
    )
    assert (estimate["attempt"], estimate["ended_at"], estimate["status"]) == (1, "2024-05-01T09:42:11Z", "Succeeded")
    assert estimate["breakdown"] == [
        {
            "step": "TrainModel",
            "type": "TrainingJob",
            "job": TRAINING_ARN,
            "state": "estimated",
            "cost": str(TRAINING_COST),
            "issues": [],
        },
        {
            "step": "Preprocess",
            "type": "ProcessingJob",
            "job": PROCESSING_ARN,
            "state": "estimated",
            "cost": str(PROCESSING_COST),
            "issues": [],
        },
    ]
    assert costs.runs == [
        {
            "pipeline_arn": PIPELINE,
            "execution_arn": EXECUTION,
            "attempt": 1,
            "ended_at": "2024-05-01T09:42:11Z",
            "total": TRAINING_COST + PROCESSING_COST,
            "complete": True,
        }
    ]
    assert costs.month_spend(MONTH, CONSUMER) == TRAINING_COST + PROCESSING_COST
    assert costs.pipeline_spend(MONTH, PIPELINE) == TRAINING_COST + PROCESSING_COST


def test_finish_alert_of_a_consumer_execution_includes_this_execution_in_month_to_date() -> None:
    # Given a consumer with 10 USD spent this month already, a budget, and Preprocess counted at its step's end
    costs, sagemaker = repository("forwarded"), sagemaker_with_the_execution()
    costs.seed_spend(MONTH, CONSUMER, Decimal(10))
    budgets = FakeBudgetSource(
        parse_budget_policy({"version": 1, "consumers": {CONSUMER: {"monthly_limit": "100"}}}, source="test")
    )
    count_step(costs, sagemaker)

    # When the execution ends
    outcome = finalise(costs, sagemaker, budgets=budgets)

    # Then one finish alert is written with the total, this execution in the month-to-date spend, and the budget;
    # amounts rounded to cents (the stored figures stay exact)
    assert (outcome.alerts, outcome.attempt, outcome.budget_policy_invalid) == (["finish"], 1, False)
    total = TRAINING_COST + PROCESSING_COST
    alert = costs.finish_alert(EXECUTION)
    assert alert is not None
    assert list(costs.finish_alerts) == [(EXECUTION.lower(), 1)]
    message = alert.message
    assert (message["schema"], message["consumer_account"], message["attribution_source"], message["principal"]) == (
        FINISH_SCHEMA,
        CONSUMER,
        "forwarded",
        PRINCIPAL,
    )
    assert message["execution"]["status"] == "Succeeded"
    assert (message["execution"]["started_at"], message["execution"]["ended_at"]) == (
        "2024-05-01T09:30:00Z",
        "2024-05-01T09:42:10Z",
    )
    assert message["execution"]["attempt"] == 1
    assert (message["estimate"]["total"], message["estimate"]["attempt_total"]) == (cents(total), cents(total))
    assert (message["estimate"]["complete"], message["estimate"]["lower_bound"]) == (True, False)
    assert message["month_to_date"]["consumer_spend"] == cents(Decimal(10) + total)
    assert alert.subject.startswith(f"pipeshare: run of churn-train by {CONSUMER} Succeeded: est. USD {cents(total)}")
    assert message["month_to_date"]["budget"]["monthly_limit"] == "100"
    assert costs.month_spend(MONTH, CONSUMER) == Decimal(10) + total
    assert budgets.loads == 1


def test_no_finish_alert_for_the_owners_own_execution() -> None:
    # Given the owner's own execution
    costs, sagemaker = repository("owner"), sagemaker_with_the_execution()
    budgets = FakeBudgetSource(parse_budget_policy({"version": 1, "default": {"monthly_limit": "5"}}, source="test"))

    # When it ends
    outcome = finalise(costs, sagemaker, budgets=budgets)

    # Then it is finalised and counted toward the pipeline only: no finish alert, no pending mark, no budget read
    assert (outcome.status, outcome.consumer, outcome.alerts) == ("finalised", None, [])
    assert costs.finish_alerts == {}
    assert costs.pending == {}
    assert (costs.commits[-1].finish_alert, costs.commits[-1].pending_finish) == (None, False)
    assert budgets.loads == 0
    assert costs.pipeline_spend(MONTH, PIPELINE) == TRAINING_COST + PROCESSING_COST
    assert costs.unattributed_spend(MONTH, PIPELINE) == 0
    assert costs.month_spend(MONTH, CONSUMER) == 0


def test_finish_alert_of_an_ambiguous_execution_names_the_candidates() -> None:
    # Given an execution two consumers could have started
    costs, sagemaker = repository("ambiguous"), sagemaker_with_the_execution()
    budgets = FakeBudgetSource(parse_budget_policy({"version": 1, "default": {"monthly_limit": "5"}}, source="test"))

    # When it ends
    outcome = finalise(costs, sagemaker, budgets=budgets)

    # Then a finish alert names both candidates, no consumer and no budget; the cost is on the unattributed line
    total = TRAINING_COST + PROCESSING_COST
    assert (outcome.status, outcome.consumer, outcome.alerts) == ("finalised", None, ["finish"])
    alert = costs.finish_alert(EXECUTION)
    assert alert is not None
    assert (alert.message["consumer_account"], alert.message["candidates"]) == (None, [CONSUMER, OTHER])
    assert alert.message["month_to_date"] == {"month": MONTH, "consumer_spend": None, "budget": None}
    assert alert.attributes["consumer_account"] == "ambiguous"
    assert f"by {CONSUMER} or {OTHER} (ambiguous) Succeeded" in alert.subject
    assert budgets.loads == 0
    assert costs.pending == {}
    assert costs.unattributed_spend(MONTH, PIPELINE) == costs.pipeline_spend(MONTH, PIPELINE) == total
    assert costs.month_spend(MONTH, CONSUMER) == costs.month_spend(MONTH, OTHER) == 0


@pytest.mark.parametrize("start", ["unknown", None])
def test_finish_of_an_execution_not_attributed_yet_waits_in_a_pending_mark(start: str | None) -> None:
    # Given an execution nobody is known to have started yet (its record not attributed, or no record at all)
    costs, sagemaker = repository(start), sagemaker_with_the_execution()
    budgets = FakeBudgetSource(parse_budget_policy({"version": 1, "default": {"monthly_limit": "5"}}, source="test"))

    # When it ends
    outcome = finalise(costs, sagemaker, budgets=budgets)

    # Then it is finalised onto the unattributed line, and its finish alert waits in a pending mark (the running
    # tick releases it once the record is attributed)
    assert (outcome.status, outcome.consumer, outcome.alerts) == ("finalised", None, ["finish-pending"])
    assert costs.finish_alerts == {}
    assert list(costs.pending.values()) == [PendingFinish(EXECUTION, 1, "2024-05-01T09:42:11Z", "Succeeded")]
    assert (costs.commits[-1].finish_alert, costs.commits[-1].pending_finish) == (None, True)
    assert budgets.loads == 0
    assert costs.unattributed_spend(MONTH, PIPELINE) == TRAINING_COST + PROCESSING_COST
    assert costs.month_spend(MONTH, CONSUMER) == 0


def test_a_job_listed_under_two_steps_is_counted_and_shown_once() -> None:
    # Given an execution whose TrainModel job is also listed under a second step
    sagemaker = sagemaker_with_the_execution()
    sagemaker.add_steps(
        EXECUTION,
        [
            step("TrainModel", {"TrainingJob": {"Arn": TRAINING_ARN}}),
            step("TrainAgain", {"TrainingJob": {"Arn": TRAINING_ARN}}),
        ],
    )
    costs = repository()

    # When the execution ends
    outcome = finalise(costs, sagemaker)

    # Then the job is counted once, and the breakdown shows its cost under the first step only, with the reason
    assert (outcome.status, outcome.total) == ("finalised", TRAINING_COST)
    assert [job.job_arn for job in costs.commits[-1].jobs] == [TRAINING_ARN]
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    first, second = estimate["breakdown"]
    assert (first["step"], first["cost"], second["step"]) == ("TrainModel", str(TRAINING_COST), "TrainAgain")
    assert Decimal(second["cost"]) == 0
    assert second["issues"] == [f"job {TRAINING_ARN} is also the job of step 'TrainModel': counted once, there"]
    assert sum(Decimal(line["cost"]) for line in estimate["breakdown"]) == estimate["total"]


def test_execution_already_final_is_a_duplicate_without_sagemaker_calls() -> None:
    # Given the execution was finalised
    costs, sagemaker = repository(), sagemaker_with_the_execution()
    finalise(costs, sagemaker)
    calls, commits = len(sagemaker.api_calls), len(costs.commits)

    # When its end event is delivered again
    outcome = finalise(costs, sagemaker)

    # Then nothing is listed, described or written
    assert outcome.status == "duplicate"
    assert len(sagemaker.api_calls) == calls
    assert len(costs.commits) == commits
    assert len(costs.finish_alerts) == 1


def test_finalisation_costs_one_list_call_per_page_and_one_describe_per_job() -> None:
    # Given 5 steps listed 2 per page: 3 jobs, a condition and a cached step
    sagemaker = FakeCostDataGateway(page_size=2)
    sagemaker.add_steps(
        EXECUTION,
        [
            step("Preprocess", {"ProcessingJob": {"Arn": PROCESSING_ARN}}),
            step("TrainModel", {"TrainingJob": {"Arn": TRAINING_ARN}}),
            step("CheckAccuracy", {"Condition": {"Outcome": "True"}}),
            step("Score", {"TransformJob": {"Arn": TRANSFORM_ARN}}),
            step(
                "Features",
                {"ProcessingJob": {"Arn": PROCESSING_ARN.replace("preprocess", "features")}},
                CacheHitResult={"SourcePipelineExecutionArn": EARLIER_EXECUTION},
            ),
        ],
    )
    for kind, arn, response in [
        ("processing", PROCESSING_ARN, PROCESSING),
        ("training", TRAINING_ARN, TRAINING),
        ("transform", TRANSFORM_ARN, TRANSFORM),
    ]:
        sagemaker.add_job(kind, arn, response)
    costs = repository()

    # When the execution ends
    outcome = finalise(costs, sagemaker)

    # Then 3 ListPipelineExecutionSteps pages and one Describe per job run (the cached one is not described)
    assert outcome.status == "finalised"
    assert sagemaker.calls_to("ListPipelineExecutionSteps") == [EXECUTION] * 3
    assert sagemaker.describes == [
        ("DescribeProcessingJob", PROCESSING_ARN),
        ("DescribeTrainingJob", TRAINING_ARN),
        ("DescribeTransformJob", TRANSFORM_ARN),
    ]
    assert len(sagemaker.api_calls) == 6
    assert outcome.total == PROCESSING_COST + TRAINING_COST + cost_of("transform", TRANSFORM)


def test_concurrent_finalisation_makes_the_retry_a_duplicate() -> None:
    # Given another invocation finalises the execution between this one's state read and its commit
    costs, sagemaker = repository("forwarded"), sagemaker_with_the_execution()
    costs.interleave(lambda: finalise(costs, sagemaker_with_the_execution()))

    # When this invocation commits
    outcome = finalise(costs, sagemaker)

    # Then its commit is refused, the retry sees the final estimate: jobs, spend and finish alert once
    assert outcome.status == "duplicate"
    assert [c.written for c in costs.commits] == [True, False]
    assert len(costs.finish_alerts) == 1
    assert costs.month_spend(MONTH, CONSUMER) == TRAINING_COST + PROCESSING_COST


def test_persistent_conflict_at_execution_end_raises_cost_conflict_error() -> None:
    # Given every commit loses to another writer
    costs, sagemaker = repository(), sagemaker_with_the_execution()
    costs.conflict(times=100)

    # When / Then
    with pytest.raises(CostConflictError, match="finalising"):
        finalise(costs, sagemaker)
    assert len(costs.commits) == MAX_ATTEMPTS
    assert costs.estimate_of(EXECUTION) is None


# ----------------------------------------------------------------------------------------------- live prices


def test_unknown_instance_type_at_step_end_is_priced_through_the_lookup() -> None:
    # Given the step's job ran on an instance type the table does not price, and a live price lookup knowing it
    costs, sagemaker = repository(), sagemaker_with_the_job(UNPRICED)
    lookup = FakePriceLookup({("processing", UNKNOWN_TYPE): LIVE_RATE})

    # When the step event is handled
    outcome = count_step(costs, sagemaker, price_lookup=lookup)

    # Then the lookup is asked for exactly that (component, type), and the job is counted at the live rate
    assert lookup.requests == [(REGION, [("processing", UNKNOWN_TYPE)])]
    live = PRICES.merge({"regions": {REGION: {"processing": {UNKNOWN_TYPE: LIVE_RATE}}}})
    expected = cost_of("processing", UNPRICED, live)
    assert expected > cost_of("processing", UNPRICED)
    assert (outcome.status, outcome.added) == ("counted", expected)
    job = costs.counted(EXECUTION)[PROCESSING_ARN.lower()]
    assert job.detail["state"] == "estimated"
    assert job.detail["instances"][0]["usd_per_hour"] == LIVE_RATE


def test_unknown_instance_type_at_step_end_without_lookup_stays_incomplete() -> None:
    # Given the step's job ran on an instance type the table does not price, and no lookup
    costs, sagemaker = repository(), sagemaker_with_the_job(UNPRICED)

    # When the step event is handled
    outcome = count_step(costs, sagemaker)

    # Then the job is counted without its compute cost (storage only), marked incomplete with the reason
    job = costs.counted(EXECUTION)[PROCESSING_ARN.lower()]
    assert outcome.status == "counted"
    assert job.detail["state"] == "incomplete"
    assert f"unknown instance type: no processing price for {UNKNOWN_TYPE} in {REGION}" in job.detail["reason"]
    assert job.detail["compute_cost"] == "0"
    assert job.cost == cost_of("processing", UNPRICED)


def test_running_estimate_shows_a_job_without_a_price_as_incomplete() -> None:
    # Given the step's job ran on an instance type the table does not price, and no lookup
    costs, sagemaker = repository(), sagemaker_with_the_job(UNPRICED)

    # When the step event is handled
    count_step(costs, sagemaker)

    # Then the running estimate's line for the step says it is incomplete, and why
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    line = estimate["breakdown"][0]
    assert line["state"] == "incomplete"
    assert [issue for issue in line["issues"] if "unknown instance type" in issue] == [
        f"unknown instance type: no processing price for {UNKNOWN_TYPE} in {REGION}"
    ]  # once, though it is both the job's issue and its reason


def test_unknown_instance_type_at_execution_end_is_priced_through_the_lookup() -> None:
    # Given an execution whose only step's job ran on an instance type the table does not price
    sagemaker = FakeCostDataGateway()
    sagemaker.add_steps(EXECUTION, [step("Preprocess", {"ProcessingJob": {"Arn": PROCESSING_ARN}})])
    sagemaker.add_job("processing", PROCESSING_ARN, UNPRICED)
    costs = repository()
    lookup = FakePriceLookup({("processing", UNKNOWN_TYPE): LIVE_RATE})

    # When the execution ends
    outcome = finalise(costs, sagemaker, price_lookup=lookup)

    # Then the lookup is asked for exactly the missing pair, and the final estimate is priced and complete
    assert lookup.requests == [(REGION, [("processing", UNKNOWN_TYPE)])]
    live = PRICES.merge({"regions": {REGION: {"processing": {UNKNOWN_TYPE: LIVE_RATE}}}})
    expected = cost_of("processing", UNPRICED, live)
    assert (outcome.total, outcome.added) == (expected, expected)
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    assert estimate["complete"] is True
    assert estimate["breakdown"][0]["state"] == "estimated"


def test_unknown_instance_type_at_execution_end_without_lookup_stays_incomplete() -> None:
    # Given the same execution, without a lookup
    sagemaker = FakeCostDataGateway()
    sagemaker.add_steps(EXECUTION, [step("Preprocess", {"ProcessingJob": {"Arn": PROCESSING_ARN}})])
    sagemaker.add_job("processing", PROCESSING_ARN, UNPRICED)
    costs = repository()

    # When the execution ends
    outcome = finalise(costs, sagemaker)

    # Then the step is incomplete, with the reason, and the final estimate is not complete: it names the unpriced
    # instance type and its instance-hours (210 s on 1 instance, in hours to the hundredth)
    assert (outcome.status, outcome.unpriced) == ("finalised", [UNKNOWN_TYPE])
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    assert (estimate["final"], estimate["complete"]) == (True, False)
    line = estimate["breakdown"][0]
    assert line["state"] == "incomplete"
    assert any(f"no processing price for {UNKNOWN_TYPE}" in issue for issue in line["issues"])
    assert estimate["unpriced"] == [UNKNOWN_TYPE]
    assert estimate["unpriced_instance_hours"] == {UNKNOWN_TYPE: str((Decimal(210) / 3600).quantize(Decimal("0.01")))}


def test_lookup_is_asked_for_every_pair_a_job_uses_and_its_rate_takes_precedence() -> None:
    # Given jobs on instance types the table prices, and a Price List lookup knowing another processing rate
    costs, sagemaker = repository(), sagemaker_with_the_execution()
    list_rate = "0.2"
    assert PRICES.price(REGION, "processing", "ml.m5.large") != Decimal(list_rate)
    lookup = FakePriceLookup({("processing", "ml.m5.large"): list_rate})

    # When a step is counted and the execution ends
    counted = count_step(costs, sagemaker, price_lookup=lookup)
    finalised = finalise(costs, sagemaker, price_lookup=lookup)

    # Then the lookup was asked for each (component, instance type) used, known to the table or not: at the step's
    # end for its job, at the execution's end for the job not counted yet (not again for the one counted)
    assert lookup.requests == [
        (REGION, [("processing", "ml.m5.large")]),
        (REGION, [("training", "ml.m5.xlarge")]),
    ]
    # and the Price List's rate wins over the table's; the table's stays where the Price List has none
    listed = cost_of(
        "processing", PROCESSING, PRICES.merge({"regions": {REGION: {"processing": {"ml.m5.large": list_rate}}}})
    )
    assert listed != PROCESSING_COST
    assert counted.added == listed
    assert costs.counted(EXECUTION)[PROCESSING_ARN.lower()].detail["instances"][0]["usd_per_hour"] == list_rate
    assert (finalised.added, finalised.total) == (TRAINING_COST, listed + TRAINING_COST)


# ------------------------------------------------------------------------------------------------ execution gone


def test_execution_sagemaker_no_longer_knows_is_gone_without_error_or_write() -> None:
    # Given a consumer execution that ended, then its pipeline was deleted: SageMaker answers ResourceNotFound
    costs, sagemaker = repository("forwarded"), sagemaker_with_the_execution()
    sagemaker.delete(EXECUTION)

    # When its end event arrives
    outcome = finalise(costs, sagemaker)

    # Then a terminal outcome, no exception: gone after one listing, nothing written, no finish alert
    assert (outcome.status, outcome.consumer, outcome.total) == ("gone", CONSUMER, None)
    assert outcome.execution_arn == EXECUTION
    assert "no longer knows the execution" in outcome.reason
    assert sagemaker.api_calls == [("ListPipelineExecutionSteps", EXECUTION)]
    assert costs.commits == []
    assert costs.finish_alerts == {}


def test_gone_execution_keeps_the_jobs_counted_when_their_steps_ended() -> None:
    # Given Preprocess was counted when its step ended, then the pipeline was deleted
    costs, sagemaker = repository("forwarded"), sagemaker_with_the_execution()
    count_step(costs, sagemaker)
    sagemaker.delete(EXECUTION)

    # When the execution's end event arrives (and again: a duplicate delivery)
    outcomes = [finalise(costs, sagemaker), finalise(costs, sagemaker)]

    # Then gone each time, with the running estimate's total; the estimate and the month's spend are unchanged
    assert [(o.status, o.total) for o in outcomes] == [("gone", PROCESSING_COST)] * 2
    estimate = costs.estimate_of(EXECUTION)
    assert estimate is not None
    assert (estimate["final"], estimate["total"]) == (False, PROCESSING_COST)
    assert costs.month_spend(MONTH, CONSUMER) == PROCESSING_COST
    assert len(costs.commits) == 1  # the step's
