"""The start projection (logic/projection.py): the worst case of a pipeline definition, the typical cost of the
pipeline's runs, the block in the start alert, and the reading of its inputs through ports (fakes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.budgets import parse_budget_policy
from pipeshare.logic.estimate import SECONDS_PER_MONTH, parse_price_table
from pipeshare.logic.projection import (
    DEFAULT_TRAINING_MAX_RUNTIME,
    MAX_LISTED_STEPS,
    project_start,
    projection_block,
    typical,
    worst_case,
)
from pipeshare.models.errors import (
    AccessDeniedError,
    BudgetPolicyInvalidError,
    ExecutionNotFoundError,
    PipeshareError,
    TransientError,
)
from pipeshare.models.estimates import PriceTable
from pipeshare.models.projections import FinishedRun, Projection

pytestmark = pytest.mark.usefixtures("socket_disabled")

REGION = "us-east-1"
PIPELINE = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/p4jn9xou8a8s"
CONSUMER = "222222222222"
NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
# a test table (not shipped): round rates keep the expected figures readable
TRAIN_RATE, PROC_RATE, STORAGE_RATE = Decimal("1.2"), Decimal("0.3"), Decimal("0.1")
PRICES = parse_price_table(
    {
        "source": "test table",
        "as_of": "2026-05-01",
        "regions": {
            REGION: {
                "training": {"ml.m5.4xlarge": str(TRAIN_RATE), "ml.c5.xlarge": "0.2", "ml.g5.xlarge": "1.5"},
                "processing": {"ml.m5.xlarge": str(PROC_RATE)},
                "storage_gb_month": str(STORAGE_RATE),
            }
        },
    }
)
NO_STORAGE = parse_price_table(
    {"source": "t", "as_of": "2026-05-01", "regions": {REGION: {"training": {"ml.m5.4xlarge": "1.2"}}}}
)


def hours(rate: Decimal, count: int, seconds: int) -> Decimal:
    return count * Decimal(seconds) * rate / 3600


def training(name: str = "Train", **arguments: Any) -> dict[str, Any]:
    args = {
        "ResourceConfig": {"InstanceType": "ml.m5.4xlarge", "InstanceCount": 2},
        "StoppingCondition": {"MaxRuntimeInSeconds": 10800},
        **arguments,
    }
    return {"Name": name, "Type": "Training", "Arguments": args}


def processing(name: str = "Prep", runtime: Any = 600, **cluster: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, **cluster}}
    }
    if runtime is not None:
        args["StoppingCondition"] = {"MaxRuntimeInSeconds": runtime}
    return {"Name": name, "Type": "Processing", "Arguments": args}


def definition(*steps: dict[str, Any], parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"Version": "2020-12-01", "Parameters": parameters or [], "Steps": list(steps)}


def project(document: Any, given: dict[str, str] | None = None, prices: PriceTable = NO_STORAGE) -> Projection:
    return worst_case(document, given or {}, prices, REGION)


def reasons(projection: Projection) -> dict[str, str]:
    return {u.step: u.reason for u in projection.unbounded}


# ---------------------------------------------------------------------------------------------------- worst case


def test_a_training_step_costs_instances_times_its_runtime_limit_times_the_rate() -> None:
    # Given 2 x ml.m5.4xlarge for at most 3 hours
    projection = project(definition(training()))
    # Then the worst case is 2 x 3 h x the rate, complete
    assert projection.total == hours(TRAIN_RATE, 2, 10800)
    assert projection.complete
    assert projection.steps[0].detail == "2 x ml.m5.4xlarge x 10800 s (training)"


def test_ml_storage_counts_over_the_same_time_when_the_table_prices_it() -> None:
    # Given a 30 GB volume per instance, a table with a storage price
    projection = project(definition(training(ResourceConfig={**_config(), "VolumeSizeInGB": 30})), prices=PRICES)
    # Then compute plus 2 volumes x 30 GB over 3 hours at the GB-month price
    storage = Decimal(30) * 2 * 10800 * STORAGE_RATE / SECONDS_PER_MONTH
    assert projection.total == hours(TRAIN_RATE, 2, 10800) + storage
    # and without a storage price, compute only, with a note
    unpriced = project(definition(training(ResourceConfig={**_config(), "VolumeSizeInGB": 30})))
    assert unpriced.total == hours(TRAIN_RATE, 2, 10800)
    assert unpriced.notes == ("ML storage not counted: the price table has no storage price for us-east-1",)


def test_no_storage_for_instance_families_with_local_nvme_storage() -> None:
    config = {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 100}
    assert project(definition(training(ResourceConfig=config)), prices=PRICES).total == hours(Decimal("1.5"), 1, 10800)


def _config(**overrides: Any) -> dict[str, Any]:
    return {"InstanceType": "ml.m5.4xlarge", "InstanceCount": 2, **overrides}


def test_a_training_step_without_a_stopping_condition_runs_at_most_the_documented_default() -> None:
    step = {"Name": "Train", "Type": "Training", "Arguments": {"ResourceConfig": _config()}}
    projection = project(definition(step))
    assert projection.total == hours(TRAIN_RATE, 2, DEFAULT_TRAINING_MAX_RUNTIME)
    assert DEFAULT_TRAINING_MAX_RUNTIME == 86400  # botocore: "The default value is 1 day."


def test_a_warm_pool_keeps_the_instances_billed_after_the_job() -> None:
    projection = project(definition(training(ResourceConfig=_config(KeepAlivePeriodInSeconds=1800))))
    assert projection.total == hours(TRAIN_RATE, 2, 10800 + 1800)


def test_parameters_take_the_value_given_at_start_else_their_default() -> None:
    # Given the instance type and count as parameters, with defaults
    parameters = [
        {"Name": "TrainType", "Type": "String", "DefaultValue": "ml.c5.xlarge"},
        {"Name": "TrainCount", "Type": "Integer", "DefaultValue": 1},
        {"Name": "MaxRuntime", "Type": "Integer", "DefaultValue": 3600},
    ]
    step = training(
        ResourceConfig={
            "InstanceType": {"Get": "Parameters.TrainType"},
            "InstanceCount": {"Get": "Parameters.TrainCount"},
        },
        StoppingCondition={"MaxRuntimeInSeconds": {"Get": "Parameters.MaxRuntime"}},
    )
    document = definition(step, parameters=parameters)
    # Then without values the defaults apply; values given at start (strings, as the API lists them) win
    assert project(document, prices=PRICES).total == hours(Decimal("0.2"), 1, 3600)
    given = {"TrainType": "ml.m5.4xlarge", "TrainCount": "3", "Undeclared": "ignored"}
    assert project(document, given, PRICES).total == hours(TRAIN_RATE, 3, 3600)


def test_std_join_of_literals_and_parameters_is_resolved() -> None:
    parameters = [{"Name": "Size", "Type": "String", "DefaultValue": "4xlarge"}]
    instance_type = {"Std:Join": {"On": ".", "Values": ["ml", "m5", {"Get": "Parameters.Size"}]}}
    step = training(ResourceConfig={"InstanceType": instance_type, "InstanceCount": 1})
    assert project(definition(step, parameters=parameters)).total == hours(TRAIN_RATE, 1, 10800)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"Get": "Steps.Prep.Properties.ProcessingOutputConfig"}, "takes its value at run time"),
        ({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Eval.PropertyFiles.f"}, "Path": "a"}}, "Std:JsonGet"),
        ({"Get": "Parameters.Nope"}, "does not declare"),
        ({"Get": "Parameters.NoDefault"}, "no default and no value was given"),
        (None, "InstanceType is missing"),
        (["ml.m5.4xlarge"], "not a value"),
    ],
)
def test_a_value_known_only_at_run_time_leaves_the_step_unbounded(value: Any, why: str) -> None:
    step = training(ResourceConfig={"InstanceType": value, "InstanceCount": 1})
    projection = project(definition(step, parameters=[{"Name": "NoDefault", "Type": "String"}]))
    assert not projection.complete
    assert projection.total == 0
    assert why in reasons(projection)["Train"]


@pytest.mark.parametrize("count", [0, -1, "two", "1.5", True, {"Get": "Execution.PipelineExecutionId"}])
def test_an_invalid_instance_count_leaves_the_step_unbounded(count: Any) -> None:
    projection = project(definition(training(ResourceConfig=_config(InstanceCount=count))))
    assert "InstanceCount" in reasons(projection)["Train"]


def test_both_branches_of_a_condition_count() -> None:
    # Given a condition whose if branch trains and whose else branch processes, then fails
    condition = {
        "Name": "Check",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}],
            "IfSteps": [training()],
            "ElseSteps": [processing(), {"Name": "Stop", "Type": "Fail", "Arguments": {}}],
        },
    }
    projection = project(definition(condition), prices=PRICES)
    # Then both count: an upper bound, whatever the condition decides
    assert {s.step for s in projection.steps} == {"Train", "Prep"}
    assert projection.total == hours(TRAIN_RATE, 2, 10800) + hours(PROC_RATE, 1, 600)
    assert projection.complete


def test_a_condition_branch_that_is_not_a_list_is_reported() -> None:
    condition = {"Name": "Check", "Type": "Condition", "Arguments": {"IfSteps": "oops"}}
    assert "not a list of steps" in reasons(project(definition(condition)))["Check.IfSteps"]


def test_heterogeneous_instance_groups_each_count() -> None:
    groups = [
        {"InstanceGroupName": "a", "InstanceType": "ml.m5.4xlarge", "InstanceCount": 2},
        {"InstanceGroupName": "b", "InstanceType": "ml.c5.xlarge", "InstanceCount": 4},
    ]
    projection = project(definition(training(ResourceConfig={"InstanceGroups": groups})), prices=PRICES)
    assert projection.total == hours(TRAIN_RATE, 2, 10800) + hours(Decimal("0.2"), 4, 10800)


def test_a_tuning_step_is_its_job_count_times_its_largest_training_definition() -> None:
    # Given at most 10 training jobs, from two definitions
    arguments = {
        "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {"MaxNumberOfTrainingJobs": 10}},
        "TrainingJobDefinitions": [
            {"ResourceConfig": _config(InstanceCount=1), "StoppingCondition": {"MaxRuntimeInSeconds": 600}},
            {"ResourceConfig": _config(InstanceCount=1), "StoppingCondition": {"MaxRuntimeInSeconds": 1200}},
        ],
    }
    projection = project(definition({"Name": "Tune", "Type": "Tuning", "Arguments": arguments}))
    # Then 10 x the larger one
    assert projection.total == 10 * hours(TRAIN_RATE, 1, 1200)
    # and without MaxNumberOfTrainingJobs the number of jobs is not bounded
    del arguments["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"]
    tune = reasons(project(definition({"Name": "Tune", "Type": "Tuning", "Arguments": arguments})))["Tune"]
    assert "MaxNumberOfTrainingJobs" in tune


def test_a_tuning_step_where_sagemaker_chooses_the_instance_type_is_unbounded() -> None:
    config = {"InstanceConfigs": [{"InstanceType": "ml.m5.4xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}]}
    arguments = {
        "HyperParameterTuningJobConfig": {"ResourceLimits": {"MaxNumberOfTrainingJobs": 2}},
        "TrainingJobDefinition": {"HyperParameterTuningResourceConfig": config},
    }
    tune = reasons(project(definition({"Name": "Tune", "Type": "Tuning", "Arguments": arguments})))["Tune"]
    assert "chooses the instance type" in tune


def test_a_processing_step_without_a_runtime_limit_is_unbounded_and_the_rest_still_counts() -> None:
    projection = project(definition(training(), processing(runtime=None)), prices=PRICES)
    assert projection.total == hours(TRAIN_RATE, 2, 10800)
    assert not projection.complete
    assert reasons(projection) == {
        "Prep": "no StoppingCondition.MaxRuntimeInSeconds, and AWS documents no default for processing jobs"
    }


def test_check_steps_are_processing_jobs() -> None:
    step = {**processing("Quality"), "Type": "QualityCheck", "CheckType": "DATA_QUALITY"}
    assert project(definition(step), prices=PRICES).total == hours(PROC_RATE, 1, 600)


def test_a_transform_step_is_unbounded() -> None:
    transform = {
        "Name": "Score",
        "Type": "Transform",
        "Arguments": {"TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}},
    }
    assert "no runtime limit" in reasons(project(definition(transform)))["Score"]


def test_an_unknown_rate_leaves_the_step_unbounded_and_is_listed_for_a_live_lookup() -> None:
    projection = project(definition(training(ResourceConfig=_config(InstanceType="ml.p4d.24xlarge"))))
    assert reasons(projection)["Train"] == "no training rate for ml.p4d.24xlarge in us-east-1 in the price table"
    assert projection.missing_rates == (("training", "ml.p4d.24xlarge"),)
    other_region = worst_case(definition(training()), {}, NO_STORAGE, "eu-west-1")
    assert "in eu-west-1" in reasons(other_region)["Train"]


@pytest.mark.parametrize(
    ("policies", "attempts"),
    [
        ([], 1),
        ([{"ExceptionType": ["SageMaker.CAPACITY_ERROR"], "MaxAttempts": 2}], 3),
        ([{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 1}, {"ExceptionType": ["x"], "MaxAttempts": 4}], 6),
    ],
)
def test_retry_policies_multiply_the_step_by_one_plus_their_max_attempts(policies: list[Any], attempts: int) -> None:
    projection = project(definition({**training(), "RetryPolicies": policies}))
    assert projection.steps[0].attempts == attempts
    assert projection.total == attempts * hours(TRAIN_RATE, 2, 10800)


def test_a_retry_policy_bounded_by_time_only_leaves_the_step_unbounded() -> None:
    step = {**training(), "RetryPolicies": [{"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "ExpireAfterMin": 60}]}
    assert "no MaxAttempts" in reasons(project(definition(step)))["Train"]


def test_steps_that_run_no_job_cost_nothing_and_unpriced_types_are_unbounded() -> None:
    steps = [
        {"Name": "Check", "Type": "Condition", "Arguments": {"Conditions": []}},
        {"Name": "Stop", "Type": "Fail", "Arguments": {}},
        {"Name": "Register", "Type": "RegisterModel", "Arguments": {}},
        {"Name": "Model", "Type": "Model", "Arguments": {}},
        {"Name": "Notify", "Type": "Lambda", "Arguments": {}},
        {"Name": "Spark", "Type": "EMR", "Arguments": {}},
        {"Name": "Notebook", "Type": "NotebookJob", "Arguments": {}},
    ]
    projection = project(definition(*steps))
    assert projection.steps == ()
    assert set(reasons(projection)) == {"Notify", "Spark", "Notebook"}
    assert "billed by Lambda" in reasons(projection)["Notify"]
    assert "not projected by pipeshare" in reasons(projection)["Notebook"]


@pytest.mark.parametrize(
    ("document", "where", "why"),
    [
        ("not json object", "(definition)", "not a JSON object"),
        ({"Version": "2020-12-01"}, "Steps", "not a list of steps"),
        ({"Steps": {"a": 1}}, "Steps", "not a list of steps"),
        ({"Steps": ["text"]}, "#1", "not a step object"),
        ({"Steps": [{"Type": "Training"}]}, "#1", "InstanceType is missing"),
    ],
)
def test_a_malformed_definition_is_reported_never_raised(document: Any, where: str, why: str) -> None:
    projection = project(document)
    assert not projection.complete
    assert why in reasons(projection)[where]


def test_a_negative_volume_or_runtime_is_refused() -> None:
    assert (
        "VolumeSizeInGB" in reasons(project(definition(training(ResourceConfig=_config(VolumeSizeInGB=-5)))))["Train"]
    )
    assert (
        "MaxRuntimeInSeconds"
        in reasons(project(definition(training(StoppingCondition={"MaxRuntimeInSeconds": 0}))))["Train"]
    )


# ------------------------------------------------------------------------------------------------------- typical


@pytest.mark.parametrize(
    ("totals", "expected"),
    [
        ([], None),
        (["4"], "4"),
        (["9", "1", "3"], "3"),
        (["9", "1", "3", "4"], "3.5"),
        ([str(n) for n in range(1, 13)], "5.5"),  # newest first: the first 10 (1..10) count
    ],
)
def test_typical_is_the_median_of_the_last_ten_totals(totals: list[str], expected: str | None) -> None:
    result = typical([Decimal(t) for t in totals])
    assert result == (None if expected is None else Decimal(expected))


# --------------------------------------------------------------------------------------------------------- block


def test_the_block_rounds_the_worst_case_up_to_cents_and_compares_it_with_the_remaining_budget() -> None:
    # Given a worst case of 2 x 1 h at 1.234567 (2.469134), a remaining budget of 2.47
    table = parse_price_table(
        {"source": "t", "as_of": "2026-05-01", "regions": {REGION: {"training": {"ml.m5.4xlarge": "1.234567"}}}}
    )
    worst = worst_case(definition(training(StoppingCondition={"MaxRuntimeInSeconds": 3600})), {}, table, REGION)
    result = projection_block(worst, typical_total=Decimal("1.005"), typical_runs=4, remaining=Decimal("2.47"))
    block = result.block
    # Then people read cents (the worst case rounded up), the record keeps it to the micro-dollar
    assert (block["worst_case"], block["typical"], block["remaining_budget"]) == ("2.47", "1.01", "2.47")
    assert (block["exceeds_remaining"], block["summary"]) == (False, "worst case USD 2.47")
    assert (result.worst_case_usd, result.worst_case_complete) == (Decimal("2.469134"), True)
    # and over the budget it says so, in the summary too
    over = projection_block(worst, typical_total=None, typical_runs=0, remaining=Decimal("2")).block
    assert (over["exceeds_remaining"], over["summary"]) == (True, "worst case USD 2.47 > budget left")


def test_an_unbounded_worst_case_exceeds_the_budget_only_when_its_bounded_part_does() -> None:
    worst = project(definition(training(), processing(runtime=None)))
    fits = projection_block(worst, typical_total=None, typical_runs=0, remaining=Decimal("1000")).block
    over = projection_block(worst, typical_total=None, typical_runs=0, remaining=Decimal("1")).block
    assert (fits["exceeds_remaining"], over["exceeds_remaining"]) == (None, True)
    assert fits["summary"] == "worst case unbounded"
    assert fits["worst_case"] == "7.20"  # the bounded part: a lower bound of the worst case


def test_the_block_lists_the_largest_steps_first_and_counts_the_rest() -> None:
    steps = [training(f"T{i}", StoppingCondition={"MaxRuntimeInSeconds": 60 * (i + 1)}) for i in range(25)]
    block = projection_block(project(definition(*steps)), typical_total=None, typical_runs=0, remaining=None).block
    assert len(block["steps"]) == MAX_LISTED_STEPS
    assert block["steps"][0]["step"] == "T24"
    assert block["steps_not_listed"] == 25 - MAX_LISTED_STEPS


def test_the_block_is_json_ready() -> None:
    block = projection_block(project(definition(training())), typical_total=None, typical_runs=0, remaining=None)
    assert json.loads(json.dumps(block.block)) == block.block


# ------------------------------------------------------------------------------------------ inputs through ports


class Definitions:
    def __init__(
        self, text: str | None = None, error: PipeshareError | None = None, params: dict[str, str] | None = None
    ):
        self.text, self.error, self.params = text, error, params or {}
        self.calls: list[str] = []

    def definition_for_execution(self, execution_arn: str) -> str:
        self.calls.append("definition")
        if self.error:
            raise self.error
        return self.text or ""

    def parameters_for_execution(self, execution_arn: str) -> dict[str, str]:
        self.calls.append("parameters")
        return self.params


class History:
    def __init__(self, runs: list[FinishedRun] | None = None, spend: str = "0", error: PipeshareError | None = None):
        self.runs, self.spend, self.error = runs or [], Decimal(spend), error
        self.asked: list[tuple[str, Any]] = []

    def recent_runs(self, pipeline_arn: str, limit: int) -> list[FinishedRun]:
        self.asked.append(("runs", (pipeline_arn, limit)))
        if self.error:
            raise self.error
        return self.runs

    def month_spend(self, month: str, consumer: str) -> Decimal:
        self.asked.append(("spend", (month, consumer)))
        return self.spend


class Budgets:
    def __init__(self, limit: str | None = "100", error: PipeshareError | None = None) -> None:
        self.limit, self.error = limit, error

    def load(self) -> Any:
        if self.error:
            raise self.error
        if self.limit is None:
            return None
        return parse_budget_policy({"version": 1, "consumers": {CONSUMER: {"monthly_limit": self.limit}}}, source="t")


class Lookup:
    def __init__(self, rate: str | None = None, error: PipeshareError | None = None) -> None:
        self.rate, self.error = rate, error
        self.wanted: list[tuple[str, str]] = []

    def fill(self, prices: PriceTable, region: str, wanted: list[tuple[str, str]]) -> PriceTable:
        self.wanted = wanted
        if self.error:
            raise self.error
        rates = {t: self.rate for c, t in wanted if c == "training" and self.rate}
        return prices.merge({"regions": {region: {"training": rates}}}) if rates else prices


def run(
    definitions: Definitions,
    history: History | None = None,
    budgets: Budgets | None = None,
    lookup: Lookup | None = None,
    consumer: str | None = CONSUMER,
) -> Any:
    return project_start(
        EXECUTION,
        PIPELINE,
        consumer,
        definitions=definitions,
        history=history or History(),
        budgets=budgets or Budgets(),
        prices=lambda: NO_STORAGE,
        price_lookup=(lambda: lookup) if lookup else None,
        now=NOW,
    )


def test_project_start_reads_each_input_once_and_fills_the_block() -> None:
    # Given a definition without parameters, three finished runs (one incomplete), 30 spent of a 100 budget
    runs = [FinishedRun(Decimal("5"), True), FinishedRun(Decimal("90"), False), FinishedRun(Decimal("7"), True)]
    definitions, history = Definitions(json.dumps(definition(training()))), History(runs, spend="30")
    # When the start is projected
    result = run(definitions, history)
    # Then: the definition only (no parameters declared), the last 10 runs of the pipeline, this month's spend
    assert definitions.calls == ["definition"]
    assert history.asked == [("runs", (PIPELINE, 10)), ("spend", ("2026-05", CONSUMER))]
    block = result.block
    assert (block["worst_case"], block["typical"], block["typical_runs"]) == ("7.20", "6.00", 2)
    assert (block["remaining_budget"], block["exceeds_remaining"], block["unavailable"]) == ("70.00", False, None)
    assert result.unavailable == ()


def test_parameter_values_are_read_only_when_the_definition_declares_parameters() -> None:
    parameters = [{"Name": "N", "Type": "Integer", "DefaultValue": 1}]
    step = training(ResourceConfig=_config(InstanceCount={"Get": "Parameters.N"}))
    definitions = Definitions(json.dumps(definition(step, parameters=parameters)), params={"N": "4"})
    result = run(definitions)
    assert definitions.calls == ["definition", "parameters"]
    assert result.worst_case_usd == hours(TRAIN_RATE, 4, 10800)


@pytest.mark.parametrize(
    "error",
    [
        AccessDeniedError("AccessDeniedException: not authorized"),
        ExecutionNotFoundError("gone"),
        TransientError("ThrottlingException: slow down"),
    ],
)
def test_a_definition_that_cannot_be_read_leaves_the_rest_of_the_projection(error: PipeshareError) -> None:
    result = run(Definitions(error=error), History([FinishedRun(Decimal("3"), True)]))
    block = result.block
    assert block["worst_case"] is None
    assert block["unavailable"] == f"projection unavailable: worst case: {error}"
    assert (block["typical"], block["remaining_budget"]) == ("3.00", "100.00")
    assert (result.worst_case_usd, result.worst_case_complete) == (None, None)


def test_a_definition_that_is_not_json_is_unavailable() -> None:
    result = run(Definitions("{not json"))
    assert result.block["unavailable"].startswith("projection unavailable: worst case: Expecting property name")


def test_history_and_budget_failures_are_reported_by_part() -> None:
    invalid = BudgetPolicyInvalidError("ssm:/b", ["bad"], "fp")
    result = run(
        Definitions(json.dumps(definition(training()))),
        History(error=TransientError("ThrottlingException")),
        Budgets(error=invalid),
    )
    assert result.unavailable == (
        "typical: ThrottlingException",
        "remaining budget: the budget policy is invalid",
    )
    assert result.block["worst_case"] == "7.20"


def test_no_budget_or_no_single_consumer_means_no_remaining_budget() -> None:
    assert (
        run(Definitions(json.dumps(definition(training()))), budgets=Budgets(limit=None)).block["remaining_budget"]
        is None
    )
    history = History()
    assert (
        run(Definitions(json.dumps(definition(training()))), history, consumer=None).block["remaining_budget"] is None
    )
    assert [kind for kind, _ in history.asked] == ["runs"]  # an ambiguous start reads no consumer's spend


def test_the_live_lookup_prices_every_instance_type_the_jobs_use() -> None:
    # Given a type the table lacks, and a Price List lookup that knows it
    lookup = Lookup(rate="2")
    step = training(ResourceConfig=_config(InstanceType="ml.p3.2xlarge"))
    result = run(Definitions(json.dumps(definition(step, training("Other")))), lookup=lookup)
    # Then the lookup was asked for every (component, type) used, and the worst case is complete
    assert lookup.wanted == [("training", "ml.p3.2xlarge"), ("training", "ml.m5.4xlarge")]
    assert result.worst_case_usd == hours(Decimal("2"), 2, 10800) + hours(Decimal("2"), 2, 10800)
    assert result.worst_case_complete is True


def test_a_failing_live_lookup_keeps_the_tables_worst_case_with_a_note() -> None:
    result = run(Definitions(json.dumps(definition(training()))), lookup=Lookup(error=TransientError("Throttling")))
    assert result.block["worst_case"] == "7.20"
    assert result.block["notes"] == ["live price lookup failed: Throttling"]
