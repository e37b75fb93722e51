"""pipeshare.logic.cost with the fakes: the running tick (each job counted while it runs, by the increase since its
last count, once), the replacement of a running mark by the final cost whatever the order of events, retries (one
finalisation and one finish alert per attempt), finish alerts pending an attribution, spend holders, quantisation of
every cost to 1e-6 USD, an invalid budget policy at finalisation, unpriced instance types.

The price table is a test table with round rates (not prices); every expected figure is computed from the fixtures
with `job_cost` and `quantize_usd`, the way the logic computes it.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from pipeshare.logic.attribution import merge, observe_status
from pipeshare.logic.budgets import parse_budget_policy
from pipeshare.logic.cost import (
    PENDING_FINISH_MAX,
    CostOutcome,
    TickOutcome,
    on_execution_end,
    on_running_tick,
    on_step_event,
)
from pipeshare.logic.estimate import job_cost as estimate_job_cost
from pipeshare.logic.estimate import parse_price_table, quantize_usd
from pipeshare.models.errors import BudgetPolicyInvalidError
from pipeshare.models.executions import ActionObservation, AttributionSource, ExecutionRecord, InferenceObservation
from pipeshare.models.owner import PendingFinish, SpendHolder
from pipeshare.models.owner_events import OwnerEvent, PipelineExecutionStatusEvent, PipelineStepStatusEvent
from pipeshare.models.types import PipelineAction
from tests.conftest import load_event
from tests.fakes import FakeBudgetSource, FakeCostDataGateway, FakeCostRepository, FakePriceLookup

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
REGION = "us-east-1"
MONTH = "2024-05"
PIPELINE = f"arn:aws:sagemaker:{REGION}:{OWNER}:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/p4jn9xou8a8s"  # the execution of the events/ fixtures
SECOND = f"{PIPELINE}/execution/q5ko0ypv9b9t"
THIRD = f"{PIPELINE}/execution/r6lp1zqw0c0u"
FOREIGN = f"arn:aws:sagemaker:{REGION}:{OTHER}:pipeline/churn-train/execution/s7mq2arx1d1v"
JOBS = f"arn:aws:sagemaker:{REGION}:{OWNER}"
TRAIN_JOB = f"{JOBS}:training-job/pipelines-p4jn9xou8a8s-train-abc123"
RETRY_JOB = f"{JOBS}:training-job/pipelines-p4jn9xou8a8s-train-retry1"
PREP_JOB = f"{JOBS}:processing-job/pipelines-p4jn9xou8a8s-preprocess-def456"
PRINCIPAL = f"arn:aws:sts::{CONSUMER}:assumed-role/DataScientist/alice"
P4D = "ml.p4d.24xlarge"  # in no table here (and a family with local NVMe storage: no storage charge either)

EXECUTION_START = datetime(2024, 5, 1, 9, 58, tzinfo=UTC)
JOB_START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
RUN = timedelta(hours=3)
JOB_END = JOB_START + RUN
EXECUTION_END = JOB_END + timedelta(minutes=1)
TICK = timedelta(minutes=5)
TICKS = [JOB_START + TICK * k for k in range(1, RUN // TICK)]  # 10:05 ... 12:55, while the job runs

# Round test rates (USD per instance-hour, per GB-month): not prices.
PRICES = parse_price_table(
    {
        "source": "test table (round rates, not prices)",
        "as_of": "2024-05-01",
        "currency": "USD",
        "regions": {
            REGION: {
                "training": {"ml.m5.4xlarge": "0.9"},
                "processing": {"ml.m5.large": "0.115"},
                "storage_gb_month": "0.14",
            }
        },
    }
)


# ------------------------------------------------------------------------------------------------------ fixtures


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def cents(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


def training(
    arn: str = TRAIN_JOB,
    *,
    status: str = "InProgress",
    start: datetime = JOB_START,
    end: datetime | None = None,
    instance_type: str = "ml.m5.4xlarge",
    count: int = 2,
) -> dict[str, Any]:
    """A DescribeTrainingJob response (the shape of tests/unit/test_estimate.py's TRAINING): running, or ended at
    `end` with its billable time."""
    response: dict[str, Any] = {
        "TrainingJobName": arn.rsplit("/", 1)[-1],
        "TrainingJobArn": arn,
        "TrainingJobStatus": status,
        "SecondaryStatus": "Training" if end is None else status,
        "AlgorithmSpecification": {
            "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "TrainingInputMode": "File",
        },
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": count, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": iso(start - timedelta(minutes=1)),
        "TrainingStartTime": iso(start),
        "EnableManagedSpotTraining": False,
    }
    if end is not None:
        seconds = int((end - start).total_seconds())
        response |= {"TrainingEndTime": iso(end), "TrainingTimeInSeconds": seconds, "BillableTimeInSeconds": seconds}
    return response


def processing(arn: str, *, seconds: int, start: datetime = EXECUTION_START) -> dict[str, Any]:
    """A DescribeProcessingJob response (the shape of tests/unit/test_estimate.py's PROCESSING), ended."""
    return {
        "ProcessingJobName": arn.rsplit("/", 1)[-1],
        "ProcessingJobArn": arn,
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
        },
        "AppSpecification": {"ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"},
        "RoleArn": f"arn:aws:iam::{OWNER}:role/SageMakerPipelineExecRole",
        "ProcessingJobStatus": "Completed",
        "CreationTime": iso(start),
        "ProcessingStartTime": iso(start),
        "ProcessingEndTime": iso(start + timedelta(seconds=seconds)),
    }


def listed(name: str, key: str, arn: str, status: str) -> dict[str, Any]:
    """One ListPipelineExecutionSteps entry."""
    return {
        "StepName": name,
        "StepStatus": status,
        "StartTime": iso(JOB_START),
        "AttemptCount": 1,
        "Metadata": {key: {"Arn": arn}},
    }


def cost(kind: str, response: dict[str, Any], at: datetime) -> Decimal:
    """A job's cost as the logic counts it: computed from the Describe response, quantised to 1e-6 USD."""
    return quantize_usd(estimate_job_cost(kind, response, region=REGION, prices=PRICES, now=at).total)


def so_far(at: datetime) -> Decimal:
    return cost("training", training(), at)


FINAL = cost("training", training(status="Completed", end=JOB_END), EXECUTION_END)


def running_view(execution: str = EXECUTION, jobs: tuple[tuple[str, dict[str, Any]], ...] = ()) -> FakeCostDataGateway:
    """SageMaker while the training step runs (its job InProgress)."""
    sagemaker = FakeCostDataGateway()
    entries = jobs or ((TRAIN_JOB, training()),)
    sagemaker.add_steps(
        execution, [listed(f"Train{i}", "TrainingJob", arn, "Executing") for i, (arn, _) in enumerate(entries)]
    )
    for arn, response in entries:
        sagemaker.add_job("training", arn, response)
    return sagemaker


def ended_view() -> FakeCostDataGateway:
    """SageMaker once the training step (and the execution) ended."""
    sagemaker = FakeCostDataGateway()
    sagemaker.add_steps(EXECUTION, [listed("Train0", "TrainingJob", TRAIN_JOB, "Succeeded")])
    sagemaker.add_job("training", TRAIN_JOB, training(status="Completed", end=JOB_END))
    return sagemaker


# --------------------------------------------------------------------------------------------------------- events


def status_event(
    status: str, at: datetime, previous: str | None = None, execution: str = EXECUTION
) -> PipelineExecutionStatusEvent:
    """An execution status change of the fixture's execution, at `at` (a terminal one ends then)."""
    raw = load_event("sagemaker_execution_status_succeeded")
    raw["id"] = f"status-{status}-{iso(at)}"
    raw["time"] = iso(at)
    raw["resources"] = [PIPELINE, execution]
    detail = raw["detail"]
    detail |= {
        "currentPipelineExecutionStatus": status,
        "executionStartTime": iso(EXECUTION_START),
        "pipelineExecutionArn": execution,
    }
    detail.pop("previousPipelineExecutionStatus")
    detail.pop("executionEndTime")
    if previous is not None:
        detail["previousPipelineExecutionStatus"] = previous
    if status in ("Succeeded", "Failed", "Stopped"):
        detail["executionEndTime"] = iso(at)
    event = OwnerEvent.model_validate({"event": raw}).event
    assert isinstance(event, PipelineExecutionStatusEvent)
    return event


def step_end_event(at: datetime, *, arn: str = TRAIN_JOB, name: str = "Train0") -> PipelineStepStatusEvent:
    """The training step's end (Succeeded), delivered at `at`."""
    raw = load_event("sagemaker_step_status_succeeded")
    raw["time"] = iso(at)
    raw["detail"] |= {
        "stepName": name,
        "stepType": "Training",
        "metadata": {"trainingJob": {"arn": arn}},
        "stepStartTime": iso(JOB_START),
        "stepEndTime": iso(at),
    }
    event = OwnerEvent.model_validate({"event": raw}).event
    assert isinstance(event, PipelineStepStatusEvent)
    return event


# -------------------------------------------------------------------------------------------------------- records


def record(
    start: str | None = "forwarded",
    statuses: tuple[tuple[str, datetime, str | None], ...] = (("Executing", EXECUTION_START, None),),
    execution: str = EXECUTION,
) -> ExecutionRecord:
    """The execution's record: the status changes seen, its start attributed as `start` says (None: not yet)."""
    found: ExecutionRecord | None = None
    for status, at, previous in statuses:
        found = merge(found, observe_status(status_event(status, at, previous, execution)))
    assert found is not None
    if start is None:
        return found
    return merge(found, start_observation(start, execution))


def start_observation(start: str, execution: str = EXECUTION) -> Any:
    if start == "forwarded":
        return ActionObservation(
            execution_arn=execution,
            action=PipelineAction.START,
            source=AttributionSource.FORWARDED,
            account=CONSUMER,
            principal=PRINCIPAL,
            time=EXECUTION_START,
            event_id=f"forwarded-{execution[-4:]}",
        )
    if start == "owner":
        return ActionObservation(
            execution_arn=execution,
            action=PipelineAction.START,
            source=AttributionSource.OWNER,
            account=OWNER,
            principal=f"arn:aws:sts::{OWNER}:assumed-role/MLOps/bob",
            time=EXECUTION_START,
        )
    sources = {
        "inferred": (AttributionSource.INFERRED, (CONSUMER,)),
        "ambiguous": (AttributionSource.AMBIGUOUS, (CONSUMER, OTHER)),
        "unknown": (AttributionSource.UNKNOWN, ()),
    }
    source, candidates = sources[start]
    return InferenceObservation(
        execution_arn=execution, source=source, candidates=candidates, time=EXECUTION_START + timedelta(minutes=5)
    )


# ---------------------------------------------------------------------------------------------------------- world


@dataclass
class World:
    """The owner's cost repository and SageMaker, with the logic's three entry points on the scenario's clock."""

    costs: FakeCostRepository = field(default_factory=FakeCostRepository)
    sagemaker: FakeCostDataGateway = field(default_factory=running_view)
    budgets: FakeBudgetSource = field(default_factory=FakeBudgetSource)
    lookup: FakePriceLookup | None = None

    def tick(self, at: datetime, sagemaker: FakeCostDataGateway | None = None) -> TickOutcome:
        return on_running_tick(
            owner_account=OWNER,
            costs=self.costs,
            sagemaker=sagemaker or self.sagemaker,
            budgets=self.budgets,
            prices=PRICES,
            now=at,
            price_lookup=self.lookup,
        )

    def step_end(self, event: PipelineStepStatusEvent, sagemaker: FakeCostDataGateway | None = None) -> CostOutcome:
        return on_step_event(
            event,
            owner_account=OWNER,
            costs=self.costs,
            sagemaker=sagemaker or self.sagemaker,
            prices=PRICES,
            now=event.time,
            price_lookup=self.lookup,
        )

    def end(self, event: PipelineExecutionStatusEvent, sagemaker: FakeCostDataGateway | None = None) -> CostOutcome:
        return on_execution_end(
            event,
            owner_account=OWNER,
            costs=self.costs,
            sagemaker=sagemaker or self.sagemaker,
            budgets=self.budgets,
            prices=PRICES,
            now=event.time,
            price_lookup=self.lookup,
        )


def running_world(start: str | None = "forwarded") -> World:
    world = World()
    world.costs.seed_record(record(start))
    world.costs.open = [EXECUTION]
    return world


def ticked_world() -> World:
    """The training job ticked every 5 minutes while it ran: its running mark is its cost at 12:55."""
    world = running_world()
    for at in TICKS:
        world.tick(at)
    return world


def estimate(world: World, execution: str = EXECUTION) -> dict[str, Any]:
    found = world.costs.estimate_of(execution)
    assert found is not None
    return found


def written_final_counts(costs: FakeCostRepository, arn: str) -> list[Any]:
    return [job for c in costs.commits if c.written for job in c.jobs if job.job_arn == arn and job.final]


# ------------------------------------------------------------------------------------------------- running tick


def test_each_tick_adds_exactly_the_increase_and_the_sum_is_the_cost_so_far() -> None:
    # Given a 3-hour training step on 2 x ml.m5.4xlarge, ticked every 5 minutes while it runs
    world = running_world()
    outcomes = [world.tick(at) for at in TICKS]

    # Then each tick added its job's increase since the previous tick (quantised costs), once
    marks = [so_far(at) for at in TICKS]
    assert len(TICKS) == 35
    assert [o.added for o in outcomes] == [b - a for a, b in zip([Decimal(0), *marks], marks, strict=False)]
    assert all(o.added > 0 for o in outcomes)
    assert [(o.executions, o.jobs_counted, o.conflicts, o.errors) for o in outcomes] == [(1, 1, 0, [])] * 35
    # and the sum is the cost so far at the last tick: in the estimate, the job's running mark and the spend
    last = so_far(TICKS[-1])
    assert sum((o.added for o in outcomes), Decimal(0)) == last
    job = world.costs.counted(EXECUTION)[TRAIN_JOB.lower()]
    assert (job.cost, job.final, job.attempt) == (last, False, 1)
    found = estimate(world)
    assert (found["total"], found["final"], found["complete"]) == (last, False, False)
    assert found["breakdown"][0] == {
        "step": "Train0",
        "type": "training",
        "job": TRAIN_JOB,
        "state": "running",
        "cost": str(last),
        "issues": [],
    }
    assert world.costs.month_spend(MONTH, CONSUMER) == world.costs.pipeline_spend(MONTH, PIPELINE) == last


def test_a_repeated_tick_at_the_same_instant_adds_nothing() -> None:
    # Given the job ticked at 12:55
    world = ticked_world()
    commits, total = len(world.costs.commits), estimate(world)["total"]

    # When the tick runs again at the same instant (a duplicate schedule delivery)
    outcome = world.tick(TICKS[-1])

    # Then nothing moved: no commit, the total unchanged
    assert (outcome.added, outcome.jobs_counted) == (Decimal(0), 0)
    assert len(world.costs.commits) == commits
    assert estimate(world)["total"] == total == so_far(TICKS[-1])


def test_the_tick_makes_one_query_one_listing_one_describe_per_running_job_and_one_commit_per_execution() -> None:
    # Given three running executions of this owner (two jobs running; one; none yet) and one of another account
    world = World()
    for execution in (EXECUTION, SECOND, THIRD):
        world.costs.seed_record(record(execution=execution))
    two = f"{JOBS}:training-job/pipelines-q5ko0ypv9b9t-train-b"
    world.sagemaker = FakeCostDataGateway()
    world.sagemaker.add_steps(
        EXECUTION,
        [listed("A", "TrainingJob", TRAIN_JOB, "Executing"), listed("B", "TrainingJob", two, "Executing")],
    )
    world.sagemaker.add_steps(SECOND, [listed("A", "TrainingJob", RETRY_JOB, "Executing")])
    world.sagemaker.add_steps(THIRD, [{"StepName": "Wait", "StepStatus": "Starting", "Metadata": {}}])
    for arn in (TRAIN_JOB, two, RETRY_JOB):
        world.sagemaker.add_job("training", arn, training(arn))
    world.costs.open = [EXECUTION, SECOND, THIRD, FOREIGN]

    # When the tick runs
    outcome = world.tick(TICKS[0])

    # Then: one query of the open executions; per execution one listing and at most one state read; one Describe
    # per running job; one commit per execution whose jobs moved; one query of the pending finish alerts
    assert world.costs.calls == ["open_executions", "state", "commit", "state", "commit", "pending_finishes"]
    assert world.costs.state_reads == [EXECUTION.lower(), SECOND.lower()]
    assert world.sagemaker.api_calls == [
        ("ListPipelineExecutionSteps", EXECUTION),
        ("DescribeTrainingJob", TRAIN_JOB),
        ("DescribeTrainingJob", two),
        ("ListPipelineExecutionSteps", SECOND),
        ("DescribeTrainingJob", RETRY_JOB),
        ("ListPipelineExecutionSteps", THIRD),
    ]
    assert [(c.execution_arn, len(c.jobs)) for c in world.costs.commits] == [(EXECUTION, 2), (SECOND, 1)]
    assert (outcome.executions, outcome.jobs_counted, outcome.added) == (3, 3, 3 * so_far(TICKS[0]))


def test_a_tick_losing_to_the_step_end_adds_nothing_after_the_final_count() -> None:
    # Given the job ticked while it ran, and its step end counted between the next tick's read and its commit
    world = ticked_world()
    world.costs.interleave(lambda: world.step_end(step_end_event(JOB_END), ended_view()))

    # When that tick commits (its Describe said InProgress)
    outcome = world.tick(JOB_END - timedelta(seconds=30))

    # Then its commit is refused, it reads again, finds the job final and counts nothing: the total is the final cost
    assert (outcome.conflicts, outcome.jobs_counted, outcome.added) == (1, 0, Decimal(0))
    assert [c.written for c in world.costs.commits[-2:]] == [True, False]
    assert estimate(world)["total"] == FINAL == world.costs.month_spend(MONTH, CONSUMER)


def test_two_ticks_racing_count_the_increase_once() -> None:
    # Given the job ticked at 12:50, and another tick (12:55) commits between this tick's read and its commit
    world = running_world()
    for at in TICKS[:-1]:
        world.tick(at)
    world.costs.interleave(lambda: world.tick(TICKS[-1]))

    # When this tick (12:55 too) commits
    outcome = world.tick(TICKS[-1])

    # Then it recounts against the other's mark: nothing left to add; the total is the cost so far, once
    assert (outcome.conflicts, outcome.added) == (1, Decimal(0))
    assert estimate(world)["total"] == so_far(TICKS[-1]) == world.costs.month_spend(MONTH, CONSUMER)


# ------------------------------------------------------------------- the final count replaces the running mark


EVENTS: dict[str, Callable[[World], Any]] = {
    # a tick whose Describe still said InProgress (just before the end), delivered in any order
    "stale-tick": lambda w: w.tick(JOB_END - timedelta(seconds=30), running_view()),
    "fresh-tick": lambda w: w.tick(EXECUTION_END + TICK, ended_view()),  # the step listed as ended
    "step-end": lambda w: w.step_end(step_end_event(JOB_END + timedelta(seconds=5)), ended_view()),
    "execution-end": lambda w: w.end(status_event("Succeeded", EXECUTION_END, "Executing"), ended_view()),
}


def orders() -> Iterator[tuple[str, ...]]:
    """Every distinct order of the step end, the execution end and a stale tick, each delivered once or twice; and
    of the three, once each, with a fresh tick."""
    seen: set[tuple[str, ...]] = set()
    base = ("stale-tick", "step-end", "execution-end")
    deliveries = [base + twice for n in range(4) for twice in itertools.combinations(base, n)]
    for delivered in [*deliveries, (*base, "fresh-tick")]:
        for order in itertools.permutations(delivered):
            if order not in seen:
                seen.add(order)
                yield order


def test_the_final_cost_replaces_the_running_mark_exactly_once_whatever_the_order() -> None:
    # Given the job ticked every 5 minutes while it ran (its mark: the cost at 12:55)
    ticked = ticked_world()
    ticked.costs.commits.clear()  # the ticks' commits: the copies below record only their own
    mark = so_far(TICKS[-1])
    assert mark != FINAL

    checked = 0
    for order in orders():
        world = copy.deepcopy(ticked)

        # When the step end, the execution end and a stale tick arrive in this order (duplicates included)
        for name in order:
            EVENTS[name](world)

        # Then the job is counted at its final cost, replacing its last mark exactly once (by the difference)
        job = world.costs.counted(EXECUTION)[TRAIN_JOB.lower()]
        assert (job.cost, job.final) == (FINAL, True), order
        finals = written_final_counts(world.costs, TRAIN_JOB)
        assert len(finals) == 1, order
        assert finals[0].previous == mark or finals[0].previous == so_far(JOB_END - timedelta(seconds=30)), order
        assert mark + sum((j.delta for c in world.costs.commits if c.written for j in c.jobs), Decimal(0)) == FINAL
        found = estimate(world)
        assert (found["total"], found["final"], found["attempt"]) == (FINAL, True, 1), order
        assert world.costs.month_spend(MONTH, CONSUMER) == world.costs.pipeline_spend(MONTH, PIPELINE) == FINAL
        assert world.costs.confirmed_spend(MONTH, CONSUMER) == FINAL
        # and the execution's end is finalised once, with one finish alert of the final total
        assert list(world.costs.finish_alerts) == [(EXECUTION.lower(), 1)], order
        alert = world.costs.finish_alert(EXECUTION)
        assert alert is not None
        assert alert.message["estimate"]["total"] == cents(FINAL)
        assert len(world.costs.runs) == 1
        checked += 1
    # the distinct permutations of each delivery: 3! + 3 x 4!/2 + 3 x 5!/4 + 6!/8 = 222, and 4! with the fresh tick
    assert checked == 222 + 24


def test_a_running_mark_is_kept_when_its_job_cannot_be_described_at_the_end() -> None:
    # Given the job ticked while it ran, and SageMaker no longer describing it when the execution ends
    world = ticked_world()
    gone = FakeCostDataGateway()
    gone.add_steps(EXECUTION, [listed("Train0", "TrainingJob", TRAIN_JOB, "Failed")])

    # When the execution ends
    outcome = world.end(status_event("Failed", EXECUTION_END, "Executing"), gone)

    # Then the mark stays (not replaced by nothing): the cost so far is kept, the estimate says it is not complete
    mark = so_far(TICKS[-1])
    assert (outcome.status, outcome.added, outcome.total) == ("finalised", Decimal(0), mark)
    job = world.costs.counted(EXECUTION)[TRAIN_JOB.lower()]
    assert (job.cost, job.final) == (mark, False)
    found = estimate(world)
    assert (found["total"], found["final"], found["complete"]) == (mark, True, False)
    assert found["breakdown"][0]["state"] == "running"
    assert world.costs.month_spend(MONTH, CONSUMER) == mark


# ------------------------------------------------------------------------------------------------------ retries


def retried(*, knows_retry: bool) -> tuple[World, Decimal, Decimal]:
    """Attempt 1 ran the training job (failed after an hour), finalised; the retry's new job ran an hour too.
    `knows_retry`: whether the record already shows the retry's Executing status when the retry is counted."""
    failed_at = JOB_START + timedelta(hours=1)
    retry_start = failed_at + timedelta(minutes=30)
    world = World()
    first = record(statuses=(("Executing", EXECUTION_START, None), ("Failed", failed_at, "Executing")))
    world.costs.seed_record(first)
    failed = FakeCostDataGateway()
    failed.add_steps(EXECUTION, [listed("Train0", "TrainingJob", TRAIN_JOB, "Failed")])
    failed.add_job("training", TRAIN_JOB, training(status="Failed", end=failed_at))
    world.end(status_event("Failed", failed_at, "Executing"), failed)
    if knows_retry:
        world.costs.seed_record(
            record(
                statuses=(
                    ("Executing", EXECUTION_START, None),
                    ("Failed", failed_at, "Executing"),
                    ("Executing", retry_start, "Failed"),
                )
            )
        )
    world.sagemaker = FakeCostDataGateway()
    world.sagemaker.add_steps(EXECUTION, [listed("Train0", "TrainingJob", RETRY_JOB, "Succeeded")])
    world.sagemaker.add_job(
        "training", RETRY_JOB, training(RETRY_JOB, status="Completed", start=retry_start, end=retry_start + RUN / 3)
    )
    first_cost = cost("training", training(status="Failed", end=failed_at), failed_at)
    retry_cost = cost(
        "training", training(RETRY_JOB, status="Completed", start=retry_start, end=retry_start + RUN / 3), JOB_END
    )
    return world, first_cost, retry_cost


@pytest.mark.parametrize("knows_retry", [True, False])
def test_a_retry_counts_both_attempts_jobs_with_a_finish_alert_per_attempt(knows_retry: bool) -> None:
    # Given attempt 1 failed (its job counted, finalised, alerted) and the retry ran a new job
    world, first_cost, retry_cost = retried(knows_retry=knows_retry)
    retry_end = JOB_END
    first_alert = world.costs.finish_alert(EXECUTION, 1)
    assert first_alert is not None

    # When the retry's step ends (reopening the estimate) and then the retry ends
    counted = world.step_end(step_end_event(retry_end - timedelta(minutes=1), arn=RETRY_JOB))
    reopened = estimate(world)["final"]
    outcome = world.end(status_event("Succeeded", retry_end, "Executing"))

    # Then both jobs are counted once, each with its attempt; the total is their sum
    total = first_cost + retry_cost
    assert (counted.status, counted.added, reopened) == ("counted", retry_cost, False)
    jobs = world.costs.counted(EXECUTION)
    assert {arn: (j.cost, j.final) for arn, j in jobs.items()} == {
        TRAIN_JOB.lower(): (first_cost, True),
        RETRY_JOB.lower(): (retry_cost, True),
    }
    # (a job counted at its step's end is labelled with the attempt the record shows then: the retry's only once the
    # tracker has recorded the retry's Executing status)
    assert (jobs[TRAIN_JOB.lower()].attempt, jobs[RETRY_JOB.lower()].attempt) == (1, 2 if knows_retry else 1)
    assert (outcome.status, outcome.attempt, outcome.total, outcome.alerts) == ("finalised", 2, total, ["finish"])
    found = estimate(world)
    assert (found["total"], found["final"], found["attempt"], found["finalised_total"]) == (total, True, 2, total)
    assert [line["step"] for line in found["breakdown"]] == ["Train0", "(earlier attempt)"]
    # and two finish alerts: attempt 1 with its own total, attempt 2 with its own and the execution's
    assert sorted(world.costs.finish_alerts) == [(EXECUTION.lower(), 1), (EXECUTION.lower(), 2)]
    assert (first_alert.message["execution"]["attempt"], first_alert.message["estimate"]["attempt_total"]) == (
        1,
        cents(first_cost),
    )
    assert first_alert.message["estimate"]["total"] == cents(first_cost)
    second = world.costs.finish_alert(EXECUTION, 2)
    assert second is not None
    assert second.message["execution"]["attempt"] == 2
    assert (second.message["estimate"]["attempt_total"], second.message["estimate"]["total"]) == (
        cents(retry_cost),
        cents(total),
    )
    assert second.subject.startswith(f"pipeshare: retry 1 of churn-train by {CONSUMER} Succeeded: est. USD")
    assert [(r["attempt"], r["total"]) for r in world.costs.runs] == [(1, first_cost), (2, total)]
    assert world.costs.month_spend(MONTH, CONSUMER) == total


def test_an_old_end_delivered_after_the_retry_ended_is_a_duplicate() -> None:
    # Given both attempts finalised
    world, first_cost, retry_cost = retried(knows_retry=True)
    world.end(status_event("Succeeded", JOB_END, "Executing"))
    commits, calls = len(world.costs.commits), len(world.sagemaker.api_calls)

    # When attempt 1's end is delivered again (late, out of order), and attempt 2's too
    old = world.end(status_event("Failed", JOB_START + timedelta(hours=1), "Executing"))
    again = world.end(status_event("Succeeded", JOB_END, "Executing"))

    # Then both are duplicates: nothing listed, counted or alerted
    assert (old.status, again.status) == ("duplicate", "duplicate")
    assert (len(world.costs.commits), len(world.sagemaker.api_calls)) == (commits, calls)
    assert len(world.costs.finish_alerts) == 2
    assert estimate(world)["total"] == first_cost + retry_cost


def test_the_retrys_jobs_are_counted_at_its_end_when_no_step_event_came() -> None:
    # Given attempt 1 finalised, and no step event for the retry's job
    world, _, retry_cost = retried(knows_retry=True)

    # When the retry ends
    outcome = world.end(status_event("Succeeded", JOB_END, "Executing"))

    # Then the retry's job is counted there, for attempt 2
    assert (outcome.added, outcome.attempt) == (retry_cost, 2)
    assert world.costs.counted(EXECUTION)[RETRY_JOB.lower()].attempt == 2
    alert = world.costs.finish_alert(EXECUTION, 2)
    assert alert is not None
    assert alert.message["estimate"]["attempt_total"] == cents(retry_cost)


# ----------------------------------------------------------------------------------------------- pending finish


def ended_unattributed(start: str | None = None) -> World:
    """An execution that ended before anyone was known to have started it (`start` None: no start attributed)."""
    world = World(sagemaker=ended_view())
    world.costs.seed_record(record(start))
    world.end(status_event("Succeeded", EXECUTION_END, "Executing"))
    return world


def test_an_end_before_the_attribution_waits_then_the_tick_after_the_settle_releases_one_alert() -> None:
    # Given the execution ended before its start was attributed: finalised onto the unattributed line, pending
    world = ended_unattributed()
    assert list(world.costs.pending.values()) == [PendingFinish(EXECUTION, 1, iso(EXECUTION_END), "Succeeded")]
    assert world.costs.finish_alerts == {}
    assert world.costs.unattributed_spend(MONTH, PIPELINE) == FINAL

    # When a tick runs before the settle (nothing known yet), then the settle infers the consumer (the tracker moves
    # the spend, then saves the record), and the next ticks run
    early = world.tick(EXECUTION_END + TICK)
    holder = SpendHolder("consumer", CONSUMER, confirmed=False)
    assert world.costs.move_spend(EXECUTION, holder=holder, at=EXECUTION_END + 2 * TICK) == FINAL
    world.costs.seed_record(merge(record(None), start_observation("inferred")))
    released = world.tick(EXECUTION_END + 3 * TICK)
    later = world.tick(EXECUTION_END + 4 * TICK)

    # Then the early tick kept it waiting; the tick after the settle wrote exactly one finish alert, to the consumer
    assert (early.finish_alerts, early.pending_dropped) == (0, 0)
    assert (released.finish_alerts, later.finish_alerts) == (1, 0)
    assert world.costs.pending == {}
    alert = world.costs.finish_alert(EXECUTION)
    assert alert is not None
    assert list(world.costs.finish_alerts) == [(EXECUTION.lower(), 1)]
    message = alert.message
    assert (message["consumer_account"], message["attribution_source"]) == (CONSUMER, "inferred")
    assert (message["estimate"]["total"], message["month_to_date"]["consumer_spend"]) == (cents(FINAL), cents(FINAL))
    assert message["execution"]["ended_at"] == iso(EXECUTION_END)
    assert world.costs.unattributed_spend(MONTH, PIPELINE) == 0
    assert (world.costs.month_spend(MONTH, CONSUMER), world.costs.confirmed_spend(MONTH, CONSUMER)) == (FINAL, 0)


def test_a_pending_end_found_ambiguous_releases_an_alert_naming_the_candidates() -> None:
    # Given a pending end, then the settle finds two consumers who could have started it
    world = ended_unattributed()
    world.costs.seed_record(merge(record(None), start_observation("ambiguous")))

    # When the tick runs
    outcome = world.tick(EXECUTION_END + 3 * TICK)

    # Then one finish alert names both candidates, no consumer; the cost stays on the unattributed line
    assert outcome.finish_alerts == 1
    alert = world.costs.finish_alert(EXECUTION)
    assert alert is not None
    assert (alert.message["consumer_account"], alert.message["candidates"]) == (None, [CONSUMER, OTHER])
    assert "(ambiguous)" in alert.subject
    assert world.costs.pending == {}
    assert world.costs.unattributed_spend(MONTH, PIPELINE) == FINAL


def test_an_end_of_a_run_shared_through_an_organization_alerts_naming_the_unit() -> None:
    # Given a run the settle found ambiguous because the pipeline is shared with an organizational unit
    ou = f"arn:aws:organizations::{OWNER}:ou/o-abcdef1234/ou-ab12-cdefgh34"
    world = World(sagemaker=ended_view())
    world.costs.seed_record(
        merge(
            record(None),
            InferenceObservation(
                execution_arn=EXECUTION, source=AttributionSource.AMBIGUOUS, candidates=(ou,), time=EXECUTION_START
            ),
        )
    )

    # When it ends
    outcome = world.end(status_event("Succeeded", EXECUTION_END, "Executing"))

    # Then it is finalised with a finish alert naming the unit (not a crash on a candidate that is not an account)
    assert (outcome.status, outcome.alerts) == ("finalised", ["finish"])
    alert = world.costs.finish_alert(EXECUTION)
    assert alert is not None
    assert (alert.message["consumer_account"], alert.message["candidates"]) == (None, [ou])
    assert "by ou-ab12-cdefgh34 (ambiguous) Succeeded" in alert.subject
    assert world.costs.unattributed_spend(MONTH, PIPELINE) == FINAL


def test_a_pending_end_found_to_be_the_owners_own_run_is_dropped_without_an_alert() -> None:
    # Given a pending end, then the owner's own CloudTrail record of the start
    world = ended_unattributed()
    world.costs.seed_record(merge(record(None), start_observation("owner")))

    # When the tick runs
    outcome = world.tick(EXECUTION_END + 3 * TICK)

    # Then the pending mark is gone, and no finish alert was written
    assert (outcome.finish_alerts, world.costs.pending, world.costs.finish_alerts) == (0, {}, {})


@pytest.mark.parametrize("start", [None, "unknown"])
def test_a_pending_end_never_attributed_is_dropped_after_the_maximum_wait(start: str | None) -> None:
    # Given a pending end nobody is ever found to have started (no start, or the settle found no candidate)
    world = ended_unattributed(start)

    # When ticks run just before and just after PENDING_FINISH_MAX
    before = world.tick(EXECUTION_END + PENDING_FINISH_MAX)
    assert len(world.costs.pending) == 1
    after = world.tick(EXECUTION_END + PENDING_FINISH_MAX + timedelta(seconds=1))

    # Then it waited, then was dropped without an alert; the cost stays on the unattributed line
    assert (before.pending_dropped, after.pending_dropped, after.finish_alerts) == (0, 1, 0)
    assert (world.costs.pending, world.costs.finish_alerts) == ({}, {})
    assert world.costs.unattributed_spend(MONTH, PIPELINE) == FINAL


# ------------------------------------------------------------------------------------------------ spend holders


def test_confirmed_and_inferred_spend_are_kept_apart() -> None:
    # Given two executions of the same consumer: one attributed by evidence (forwarded), one inferred
    world = World()
    world.costs.seed_record(record("forwarded"))
    world.costs.seed_record(record("inferred", execution=SECOND))
    world.sagemaker = running_view()
    world.sagemaker.add_steps(SECOND, [listed("Train0", "TrainingJob", RETRY_JOB, "Executing")])
    world.sagemaker.add_job("training", RETRY_JOB, training(RETRY_JOB))
    world.costs.open = [EXECUTION, SECOND]

    # When the tick counts both
    world.tick(TICKS[0])

    # Then the consumer's total holds both, its confirmed total only the forwarded one
    each = so_far(TICKS[0])
    assert world.costs.month_spend(MONTH, CONSUMER) == 2 * each
    assert world.costs.confirmed_spend(MONTH, CONSUMER) == each
    assert world.costs.consumer_pipeline_spend(MONTH, CONSUMER, PIPELINE) == 2 * each
    assert (estimate(world)["spend_holder"], estimate(world, SECOND)["spend_holder"]) == (
        f"consumer:{CONSUMER}:confirmed",
        f"consumer:{CONSUMER}:inferred",
    )

    # and a later forwarded claim for the inferred one makes its spend confirmed (moved, not added)
    world.costs.move_spend(SECOND, holder=SpendHolder("consumer", CONSUMER, confirmed=True), at=TICKS[1])
    assert world.costs.month_spend(MONTH, CONSUMER) == 2 * each
    assert world.costs.confirmed_spend(MONTH, CONSUMER) == 2 * each


@pytest.mark.parametrize(
    ("start", "unattributed"), [("ambiguous", True), ("unknown", True), (None, True), ("owner", False)]
)
def test_spend_nobody_or_the_owner_holds_goes_to_the_pipeline(start: str | None, unattributed: bool) -> None:
    # Given a running execution attributed as `start` says
    world = running_world()
    world.costs.records.clear()
    if start is not None:
        world.costs.seed_record(record(start))

    # When the tick counts its job
    world.tick(TICKS[0])

    # Then the pipeline holds the cost; its unattributed line too unless it is the owner's own run; no consumer does
    each = so_far(TICKS[0])
    assert world.costs.pipeline_spend(MONTH, PIPELINE) == each
    assert world.costs.unattributed_spend(MONTH, PIPELINE) == (each if unattributed else 0)
    assert world.costs.month_spend(MONTH, CONSUMER) == world.costs.month_spend(MONTH, OTHER) == 0
    assert world.costs.month_spend(MONTH, OWNER) == 0
    assert estimate(world)["spend_holder"] == ("unattributed" if unattributed else "owner")


def held_where_the_estimate_says(world: World) -> bool:
    """The estimate's total is exactly the spend of the holder it names (and of nobody else)."""
    found = estimate(world)
    holder = SpendHolder.from_key(found["spend_holder"])
    consumer = world.costs.month_spend(MONTH, CONSUMER)
    unattributed = world.costs.unattributed_spend(MONTH, PIPELINE)
    if holder.kind == "consumer":
        return (consumer, unattributed) == (found["total"], 0)
    return (consumer, unattributed) == (0, found["total"] if holder.kind == "unattributed" else 0)


def test_a_count_between_the_trackers_move_and_its_save_does_not_split_the_spend() -> None:
    # Given a running execution counted while nobody was known to have started it
    world = running_world(start=None)
    world.tick(TICKS[0])
    # When the tracker, attributing it, moves the spend to the consumer, a tick reads the record before the tracker
    # saves it, and then the tracker saves it and the next tick runs
    world.costs.move_spend(EXECUTION, holder=SpendHolder("consumer", CONSUMER, confirmed=True), at=TICKS[0])
    world.tick(TICKS[1])
    stale = held_where_the_estimate_says(world)
    world.costs.seed_record(record("forwarded"))
    world.tick(TICKS[2])

    # Then the estimate's total is always the spend of the holder it names; at the end, all of it the consumer's
    assert stale
    assert held_where_the_estimate_says(world)
    assert estimate(world)["spend_holder"] == f"consumer:{CONSUMER}:confirmed"
    assert world.costs.month_spend(MONTH, CONSUMER) == so_far(TICKS[2])
    assert world.costs.confirmed_spend(MONTH, CONSUMER) == so_far(TICKS[2])
    assert world.costs.unattributed_spend(MONTH, PIPELINE) == 0


def test_an_estimate_first_written_from_an_older_record_follows_the_record_at_the_next_count() -> None:
    # Given the tracker attributes the execution (moves nothing yet: no estimate, then saves the record) while the
    # first tick, which read the record before, commits
    world = running_world(start=None)
    world.costs.interleave(lambda: world.costs.seed_record(record("forwarded")))
    world.tick(TICKS[0])
    first = (estimate(world)["spend_holder"], held_where_the_estimate_says(world))

    # When the next tick counts
    world.tick(TICKS[1])

    # Then the first count went where the estimate says (nobody's yet), and the next one moved it all to the consumer
    assert first == ("unattributed", True)
    assert held_where_the_estimate_says(world)
    assert (world.costs.month_spend(MONTH, CONSUMER), world.costs.unattributed_spend(MONTH, PIPELINE)) == (
        so_far(TICKS[1]),
        0,
    )


# ------------------------------------------------------------------------------------------------- quantisation


def test_a_sum_of_ten_thousand_counted_jobs_keeps_six_decimal_places_and_stays_exact() -> None:
    # Given an execution of 10,000 processing steps of 1 .. 10,000 seconds each (costs with endless decimals)
    arns = [f"{JOBS}:processing-job/pipelines-p4jn9xou8a8s-part{i:05d}" for i in range(10_000)]
    world = World(sagemaker=FakeCostDataGateway(page_size=100))
    world.costs.seed_record(record())
    world.sagemaker.add_steps(
        EXECUTION, [listed(f"Part{i}", "ProcessingJob", arn, "Succeeded") for i, arn in enumerate(arns)]
    )
    responses = [processing(arn, seconds=i + 1) for i, arn in enumerate(arns)]
    for arn, response in zip(arns, responses, strict=True):
        world.sagemaker.add_job("processing", arn, response)

    # When the execution ends
    outcome = world.end(status_event("Succeeded", EXECUTION_END, "Executing"))

    # Then every job is counted at its cost quantised to 1e-6 USD, and every sum is their exact sum
    exact = [
        estimate_job_cost("processing", r, region=REGION, prices=PRICES, now=EXECUTION_END).total for r in responses
    ]
    counted = [quantize_usd(c) for c in exact]
    assert any(c != q for c, q in zip(exact, counted, strict=True))  # the raw costs have more than 6 decimals
    total = sum(counted, Decimal(0))
    assert outcome.total == total
    assert all(-job.cost.as_tuple().exponent <= 6 for job in world.costs.counted(EXECUTION).values())
    stored = estimate(world)["total"]
    assert stored == total
    assert -stored.as_tuple().exponent <= 6
    assert len(stored.as_tuple().digits) <= 38  # DynamoDB's number precision
    for spend in (
        world.costs.month_spend(MONTH, CONSUMER),
        world.costs.pipeline_spend(MONTH, PIPELINE),
        world.costs.confirmed_spend(MONTH, CONSUMER),
    ):
        assert spend == total
        assert -spend.as_tuple().exponent <= 6
    # and it differs from the unquantised sum by at most half a micro-dollar per job
    assert abs(total - sum(exact, Decimal(0))) <= Decimal("0.0000005") * len(arns)


# --------------------------------------------------------------------------------------- invalid budget policy


def test_an_invalid_budget_policy_at_finalisation_still_finalises_and_alerts_without_a_budget() -> None:
    # Given the job ticked while it ran, and a budget policy that fails validation
    world = ticked_world()
    world.budgets = FakeBudgetSource(
        error=BudgetPolicyInvalidError("ssm:/pipeshare/budgets", ["consumers: not a mapping"], "0" * 16)
    )

    # When the execution ends
    outcome = world.end(status_event("Succeeded", EXECUTION_END, "Executing"), ended_view())

    # Then it is finalised and the finish alert written, without a budget; the outcome says the policy was invalid
    assert (outcome.status, outcome.alerts, outcome.budget_policy_invalid) == ("finalised", ["finish"], True)
    assert estimate(world)["final"] is True
    alert = world.costs.finish_alert(EXECUTION)
    assert alert is not None
    assert alert.message["month_to_date"] == {"month": MONTH, "consumer_spend": cents(FINAL), "budget": None}
    assert "budget" not in alert.subject
    assert world.budgets.loads == 1


def test_a_valid_budget_policy_at_finalisation_is_shown() -> None:
    # Given the same run with a valid policy (the counterpart of the invalid one)
    world = ticked_world()
    world.budgets = FakeBudgetSource(
        parse_budget_policy({"version": 1, "consumers": {CONSUMER: {"monthly_limit": "100"}}}, source="test")
    )

    # When the execution ends
    outcome = world.end(status_event("Succeeded", EXECUTION_END, "Executing"), ended_view())

    # Then
    assert outcome.budget_policy_invalid is False
    alert = world.costs.finish_alert(EXECUTION)
    assert alert is not None
    assert alert.message["month_to_date"]["budget"]["monthly_limit"] == "100"


# ------------------------------------------------------------------------------------------- unpriced instances


@pytest.mark.parametrize("ticked", [False, True])
def test_an_unpriced_instance_type_is_reported_as_a_lower_bound(ticked: bool) -> None:
    # Given an execution with a priced processing job (20 minutes) and a 1-hour training job on 2 x ml.p4d.24xlarge,
    # which neither the table nor the Price List prices (`ticked`: the training job was ticked while it ran)
    lookup = FakePriceLookup()
    world = World(lookup=lookup)
    world.costs.seed_record(record())
    world.costs.open = [EXECUTION]
    p4d_end = JOB_START + timedelta(hours=1)
    if ticked:
        world.tick(JOB_START + TICK, running_view(jobs=((TRAIN_JOB, training(instance_type=P4D)),)))
    world.sagemaker = FakeCostDataGateway()
    world.sagemaker.add_steps(
        EXECUTION,
        [
            listed("Prep", "ProcessingJob", PREP_JOB, "Succeeded"),
            listed("Train0", "TrainingJob", TRAIN_JOB, "Succeeded"),
        ],
    )
    world.sagemaker.add_job("processing", PREP_JOB, processing(PREP_JOB, seconds=1200))
    world.sagemaker.add_job("training", TRAIN_JOB, training(status="Completed", end=p4d_end, instance_type=P4D))

    # When the execution ends
    outcome = world.end(status_event("Succeeded", EXECUTION_END, "Executing"))

    # Then the Price List was asked for the type; the estimate is not complete, names it and its instance-hours
    assert lookup.requests[-1] == (REGION, [("processing", "ml.m5.large"), ("training", P4D)])
    priced = cost("processing", processing(PREP_JOB, seconds=1200), EXECUTION_END)
    assert (outcome.total, outcome.unpriced) == (priced, [P4D])
    found = estimate(world)
    assert (found["complete"], found["unpriced"], found["unpriced_instance_hours"]) == (False, [P4D], {P4D: "2.00"})
    job = world.costs.counted(EXECUTION)[TRAIN_JOB.lower()]
    assert (job.cost, job.final) == (Decimal(0), True)
    # and the finish alert says the figure is a lower bound, and why
    alert = world.costs.finish_alert(EXECUTION)
    assert alert is not None
    assert alert.subject.endswith(f"Succeeded: est. >= USD {cents(priced)}, unpriced: {P4D}")
    assert (alert.message["estimate"]["lower_bound"], alert.message["estimate"]["complete"]) == (True, False)
    assert alert.message["estimate"]["unpriced"] == [{"instance_type": P4D, "instance_hours": "2.00"}]
