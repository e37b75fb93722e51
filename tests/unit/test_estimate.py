"""pipeshare.logic.estimate: the price table, the cost of one job, the cost of an execution's steps."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pipeshare.logic.estimate import job_cost, jobs_to_describe, load_shipped_prices, parse_price_table, step_costs
from pipeshare.models.errors import PriceTableError
from pipeshare.models.estimates import Component, PriceTable, StepState

pytestmark = pytest.mark.usefixtures("socket_disabled")

REGION = "us-east-1"
ACCOUNT = "111111111111"
NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
TRAINING_ARN = f"{ARN}:training-job/pipelines-p4jn9xou8a8s-trainmodel-abc123"
PROCESSING_ARN = f"{ARN}:processing-job/pipelines-p4jn9xou8a8s-preprocess-def456"
TRANSFORM_ARN = f"{ARN}:transform-job/pipelines-p4jn9xou8a8s-batchscore-ghi789"
TUNING_ARN = f"{ARN}:hyper-parameter-tuning-job/pipelines-p4jn9xou8-tune-jkl012"
CHECK_ARN = f"{ARN}:processing-job/pipelines-p4jn9xou8a8s-checkdata-mno345"
EARLIER_EXECUTION = f"{ARN}:pipeline/churn-train/execution/0a1b2c3d4e5f"

# Round rates, so the expected costs can be written down exactly.
PRICES = parse_price_table(
    {
        "source": "test table",
        "as_of": "2024-05-01",
        "currency": "USD",
        "regions": {
            REGION: {
                "training": {"ml.m5.xlarge": "0.23", "ml.c5.xlarge": "0.20", "ml.g5.xlarge": "1.40"},
                "processing": {"ml.m5.large": "0.115", "ml.m5.xlarge": "0.23"},
                "transform": {"ml.m5.xlarge": "0.23"},
                "storage_gb_month": "0.10",
            }
        },
    }
)

# aws-facts §4.4 (validated against the botocore models).
TRAINING: dict[str, Any] = {
    "TrainingJobName": "pipelines-p4jn9xou8a8s-trainmodel-abc123",
    "TrainingJobArn": TRAINING_ARN,
    "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/model.tar.gz"},
    "TrainingJobStatus": "Completed",
    "SecondaryStatus": "Completed",
    "AlgorithmSpecification": {
        "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "TrainingInputMode": "File",
    },
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    "CreationTime": "2024-05-01T09:31:02Z",
    "TrainingStartTime": "2024-05-01T09:33:00Z",
    "TrainingEndTime": "2024-05-01T09:40:30Z",
    "TrainingTimeInSeconds": 450,
    "BillableTimeInSeconds": 450,
    "EnableManagedSpotTraining": False,
}
PROCESSING: dict[str, Any] = {
    "ProcessingJobName": "pipelines-p4jn9xou8a8s-preprocess-def456",
    "ProcessingJobArn": PROCESSING_ARN,
    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}},
    "AppSpecification": {
        "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    },
    "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/SageMakerPipelineExecRole",
    "ProcessingJobStatus": "Completed",
    "CreationTime": "2024-05-01T09:30:06Z",
    "ProcessingStartTime": "2024-05-01T09:32:10Z",
    "ProcessingEndTime": "2024-05-01T09:35:40Z",
    "LastModifiedTime": "2024-05-01T09:35:41Z",
}
# Same style, written for these tests (shape checked against botocore below).
TRANSFORM: dict[str, Any] = {
    "TransformJobName": "pipelines-p4jn9xou8a8s-batchscore-ghi789",
    "TransformJobArn": TRANSFORM_ARN,
    "TransformJobStatus": "Completed",
    "ModelName": "churn-model",
    "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}}},
    "TransformOutput": {"S3OutputPath": "s3://bucket/out/"},
    "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 3},
    "CreationTime": "2024-05-01T09:42:00Z",
    "TransformStartTime": "2024-05-01T09:43:00Z",
    "TransformEndTime": "2024-05-01T09:53:00Z",
}
TUNING: dict[str, Any] = {
    "HyperParameterTuningJobName": "pipelines-p4jn9xou8-tune-jkl012",
    "HyperParameterTuningJobArn": TUNING_ARN,
    "HyperParameterTuningJobConfig": {
        "Strategy": "Bayesian",
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 2},
    },
    "TrainingJobDefinition": {
        "AlgorithmSpecification": {
            "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "TrainingInputMode": "File",
        },
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/SageMakerPipelineExecRole",
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/tuning/"},
        "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    },
    "HyperParameterTuningJobStatus": "Completed",
    "CreationTime": "2024-05-01T09:00:00Z",
    "HyperParameterTuningEndTime": "2024-05-01T10:00:00Z",
    "TrainingJobStatusCounters": {"Completed": 10},
    "ObjectiveStatusCounters": {"Succeeded": 10},
    "ConsumedResources": {"RuntimeInSeconds": 1800},
}


def variant(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of a Describe* response with top-level keys replaced (None removes the key)."""
    response = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            response.pop(key, None)
        else:
            response[key] = value
    return response


def step(
    name: str, metadata: dict[str, Any] | None = None, *, status: str = "Succeeded", **extra: Any
) -> dict[str, Any]:
    """One ListPipelineExecutionSteps entry."""
    entry: dict[str, Any] = {
        "StepName": name,
        "StepStatus": status,
        "StartTime": "2024-05-01T09:30:00Z",
        "AttemptCount": 1,
        "Metadata": metadata or {},
    }
    entry.update(extra)
    return entry


def cost(kind: str, response: dict[str, Any], *, prices: PriceTable = PRICES, region: str = REGION) -> Any:
    return job_cost(kind, response, region=region, prices=prices, now=NOW)


def estimate(steps: list[dict[str, Any]], jobs: dict[str, tuple[str, dict[str, Any]]], **kwargs: Any) -> Any:
    return step_costs(steps, jobs, region=REGION, prices=PRICES, now=NOW, **kwargs)


# ----------------------------------------------------------------------------------------------- the shipped table


def test_shipped_prices_load_and_validate() -> None:
    # Given / When the table shipped in the package is loaded
    table = load_shipped_prices()

    # Then it is a validated USD table, dated, its source stated, and every figure it keeps backed by its sources
    # (only figures two public sources agree on are shipped; the Price List prices the rest: test_price_table_tool)
    assert isinstance(table, PriceTable)
    assert table.currency == "USD"
    assert "two independent public sources" in table.source
    assert isinstance(table.as_of, date)
    assert table.regions, "the table prices something"
    assert table.uncited() == []


def test_shipped_prices_are_exact_decimals() -> None:
    # Given / When a rate is read from the shipped table
    rate = load_shipped_prices().price("us-east-1", "processing", "ml.m5.xlarge")

    # Then it is the sourced figure, as an exact Decimal
    assert rate == Decimal("0.23")
    assert isinstance(rate, Decimal)


# --------------------------------------------------------------------------------------------------- price table


def test_price_returns_none_for_an_unknown_region_or_instance_type() -> None:
    # Given / When / Then
    assert PRICES.price(REGION, Component.TRAINING, "ml.m5.xlarge") == Decimal("0.23")
    assert PRICES.price(REGION, "training", "ml.x9.huge") is None
    assert PRICES.price("ap-south-1", "training", "ml.m5.xlarge") is None
    assert PRICES.storage_price("ap-south-1") is None


def test_merge_replaces_and_extends_rates() -> None:
    # Given an override of one rate, a new type and a new region
    override = {
        "regions": {
            REGION: {"training": {"ml.m5.xlarge": "0.20", "ml.p3.2xlarge": "3.825"}},
            "eu-west-1": {"processing": {"ml.m5.large": 0.128}, "storage_gb_month": "0.154"},
        }
    }

    # When it is merged
    merged = PRICES.merge(override)

    # Then the rate is replaced, the others kept, the new entries added, and the source says so
    assert merged.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.20")
    assert merged.price(REGION, "training", "ml.p3.2xlarge") == Decimal("3.825")
    assert merged.price(REGION, "training", "ml.c5.xlarge") == Decimal("0.20")
    assert merged.price(REGION, "processing", "ml.m5.large") == Decimal("0.115")
    assert merged.storage_price(REGION) == Decimal("0.10")
    assert merged.price("eu-west-1", "processing", "ml.m5.large") == Decimal("0.128")
    assert merged.storage_price("eu-west-1") == Decimal("0.154")
    assert merged.source == "test table (with overrides)"


def test_merge_replaces_source_date_and_storage_when_given() -> None:
    # Given an override with its own source, date, storage price and note
    override = {
        "source": "negotiated rates",
        "as_of": "2024-06-30",
        "notes": ["EDP discount"],
        "regions": {REGION: {"storage_gb_month": "0.12"}},
    }

    # When it is merged
    merged = PRICES.merge(override)

    # Then those replace the table's, and the rates are untouched
    assert (merged.source, merged.as_of, merged.notes) == ("negotiated rates", date(2024, 6, 30), ("EDP discount",))
    assert merged.storage_price(REGION) == Decimal("0.12")
    assert merged.regions[REGION].training == PRICES.regions[REGION].training


def test_merge_leaves_the_original_table_unchanged() -> None:
    # Given / When an override is merged
    PRICES.merge({"regions": {REGION: {"training": {"ml.m5.xlarge": "9.99"}}}})

    # Then the table it was merged into still has its own rate
    assert PRICES.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.23")


def test_merge_rejects_an_invalid_override_with_every_problem() -> None:
    # Given an override with a negative rate, a bad instance type, an unknown component, a bad region and a currency
    override = {
        "currency": "EUR",
        "regions": {
            REGION: {"training": {"ml.m5.xlarge": "-1", "m5.xlarge": "0.2"}, "hosting": {}},
            "Mars": {},
        },
    }

    # When it is merged
    with pytest.raises(PriceTableError) as info:
        PRICES.merge(override)

    # Then each problem is named, with where it is
    errors = " | ".join(info.value.errors)
    assert "currency" in errors
    assert "regions.us-east-1.training.ml.m5.xlarge" in errors
    assert "m5.xlarge" in errors
    assert "pattern" in errors
    assert "regions.us-east-1.hosting" in errors
    assert "regions.Mars" in errors
    assert len(info.value.errors) == 5


@pytest.mark.parametrize("override", [[], "rates", None, {"regions": {REGION: {"training": {"ml.m5.xlarge": 0}}}}])
def test_merge_rejects_a_non_object_or_a_zero_rate(override: Any) -> None:
    # Given / When / Then
    with pytest.raises(PriceTableError, match="invalid price table"):
        PRICES.merge(override)


def test_parse_price_table_requires_source_and_date() -> None:
    # Given a table without source or as_of
    with pytest.raises(PriceTableError) as info:
        parse_price_table({"regions": {}})

    # Then both are reported
    assert sorted(e.split(":")[0] for e in info.value.errors) == ["as_of", "source"]


# ----------------------------------------------------------------------------------------------------- training


def test_training_cost_is_billable_time_times_instance_count() -> None:
    # Given the aws-facts training job: 2 x ml.m5.xlarge, 450 billable seconds, 30 GB each
    # When its cost is computed
    job = cost("training", TRAINING)

    # Then compute = 450 s x 2 x 0.23 $/h; storage = 30 GB x 2 x 450 s x 0.10 $/GB-month
    assert job.state == StepState.ESTIMATED
    assert job.compute_cost == Decimal("0.0575")
    assert job.storage_cost == pytest.approx(Decimal(30 * 2 * 450) * Decimal("0.10") / Decimal(2592000))
    assert job.total == job.compute_cost + job.storage_cost
    assert (job.billable_seconds, job.instance_seconds) == (450, 900)
    assert [(i.instance_type, i.count, i.usd_per_hour) for i in job.instances] == [("ml.m5.xlarge", 2, Decimal("0.23"))]
    assert not job.running
    assert job.issues == ()


def test_training_accepts_datetimes_as_boto3_returns_them() -> None:
    # Given the same job with datetime objects (as boto3 parses them) and no billable time
    response = variant(
        TRAINING,
        BillableTimeInSeconds=None,
        TrainingTimeInSeconds=None,
        TrainingStartTime=datetime(2024, 5, 1, 9, 33, tzinfo=UTC),
        TrainingEndTime=datetime(2024, 5, 1, 9, 40, 30, tzinfo=UTC),
    )

    # When its cost is computed
    job = cost("training", response)

    # Then end - start (450 s) is used, and the fallback is reported
    assert job.compute_cost == Decimal("0.0575")
    assert any("TrainingEndTime - TrainingStartTime used" in i for i in job.issues)


def test_training_managed_spot_uses_billable_time_and_reports_the_saving() -> None:
    # Given a managed spot job trained 500 s, billed 100 s, on 1 x ml.m5.xlarge without storage
    response = variant(
        TRAINING,
        EnableManagedSpotTraining=True,
        TrainingTimeInSeconds=500,
        BillableTimeInSeconds=100,
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 0},
    )

    # When its cost is computed
    job = cost("training", response)

    # Then only the billable 100 s are charged, and the 80 % saving is noted
    assert job.compute_cost == Decimal(100) * Decimal("0.23") / 3600
    assert job.spot_savings_percent == Decimal("80.00")
    assert job.storage_cost == 0


def test_training_without_spot_reports_no_saving() -> None:
    # Given / When / Then
    assert cost("training", TRAINING).spot_savings_percent is None


def test_training_heterogeneous_cluster_sums_each_group() -> None:
    # Given a heterogeneous cluster: 2 x ml.c5.xlarge and 1 x ml.g5.xlarge, 3600 billable seconds, no volume
    response = variant(
        TRAINING,
        BillableTimeInSeconds=3600,
        TrainingTimeInSeconds=3600,
        ResourceConfig={
            "InstanceGroups": [
                {"InstanceType": "ml.c5.xlarge", "InstanceCount": 2, "InstanceGroupName": "data"},
                {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "InstanceGroupName": "gpu"},
            ],
        },
    )

    # When its cost is computed
    job = cost("training", response)

    # Then each group is billed its own rate for the shared billable time: 2 x 0.20 + 1 x 1.40
    assert job.compute_cost == Decimal("1.80")
    assert [(i.label, i.instance_type, i.count, i.compute_cost) for i in job.instances] == [
        ("data", "ml.c5.xlarge", 2, Decimal("0.40")),
        ("gpu", "ml.g5.xlarge", 1, Decimal("1.40")),
    ]
    assert (job.billable_seconds, job.instance_seconds) == (3600, 10800)


def test_training_without_billable_time_falls_back_to_training_time() -> None:
    # Given a finished job whose response lacks BillableTimeInSeconds
    job = cost("training", variant(TRAINING, BillableTimeInSeconds=None, TrainingTimeInSeconds=900))

    # Then TrainingTimeInSeconds is used, with an issue saying so
    assert job.compute_cost == Decimal(900 * 2) * Decimal("0.23") / 3600
    assert job.state == StepState.ESTIMATED
    assert any("BillableTimeInSeconds missing: TrainingTimeInSeconds used" in i for i in job.issues)


def test_training_running_is_costed_so_far_from_its_start() -> None:
    # Given a job in progress since 09:30 (now is 10:00), no billable time yet
    response = variant(
        TRAINING,
        TrainingJobStatus="InProgress",
        TrainingStartTime="2024-05-01T09:30:00Z",
        TrainingEndTime=None,
        TrainingTimeInSeconds=None,
        BillableTimeInSeconds=None,
    )

    # When its cost is computed
    job = cost("training", response)

    # Then it is running, billed 1800 s so far on both instances
    assert job.running
    assert job.billable_seconds == 1800
    assert job.compute_cost == Decimal("0.23")


def test_training_running_spot_says_the_cost_so_far_is_an_upper_bound() -> None:
    # Given a running managed spot job
    response = variant(TRAINING, TrainingJobStatus="InProgress", EnableManagedSpotTraining=True, TrainingEndTime=None)

    # When / Then
    assert any("upper bound" in i for i in cost("training", response).issues)


def test_training_running_not_yet_on_its_instances_costs_nothing_so_far() -> None:
    # Given a job still provisioning (InProgress, no TrainingStartTime)
    response = variant(TRAINING, TrainingJobStatus="InProgress", TrainingStartTime=None, TrainingEndTime=None)

    # When / Then
    job = cost("training", response)
    assert job.running
    assert job.total == 0
    assert job.state == StepState.ESTIMATED


def test_training_warm_pool_retained_time_is_added() -> None:
    # Given a job that kept its 2 instances in a warm pool for 900 billable seconds, no volume
    response = variant(
        TRAINING,
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "KeepAlivePeriodInSeconds": 900},
        WarmPoolStatus={"Status": "Terminated", "ResourceRetainedBillableTimeInSeconds": 900},
    )

    # When its cost is computed
    job = cost("training", response)

    # Then (450 + 900) s x 2 instances are billed, the warm pool as its own line
    assert job.compute_cost == Decimal(1350 * 2) * Decimal("0.23") / 3600
    assert [i.warm_pool for i in job.instances] == [False, True]
    assert job.billable_seconds == 450


def test_training_selected_instance_type_is_the_one_billed() -> None:
    # Given a job launched from InstancePreferences: SageMaker selected 1 x ml.c5.xlarge
    response = variant(
        TRAINING,
        ResourceConfig={
            "InstancePreferences": [{"InstanceType": "ml.g5.xlarge"}, {"InstanceType": "ml.c5.xlarge"}],
            "SelectedInstanceType": "ml.c5.xlarge",
            "SelectedInstanceCount": 1,
        },
        BillableTimeInSeconds=3600,
    )

    # When / Then
    assert cost("training", response).compute_cost == Decimal("0.20")


def test_training_negative_billable_time_counts_zero_and_is_incomplete() -> None:
    # Given a response with a negative BillableTimeInSeconds
    job = cost("training", variant(TRAINING, BillableTimeInSeconds=-450))

    # Then nothing negative is billed and the problem is reported
    assert job.total == 0
    assert job.state == StepState.INCOMPLETE
    assert "BillableTimeInSeconds is not a valid duration" in (job.reason or "")


# ---------------------------------------------------------------------------------------- processing / transform


def test_processing_cost_is_duration_times_instance_count() -> None:
    # Given the aws-facts processing job: 1 x ml.m5.large from 09:32:10 to 09:35:40 (210 s), 30 GB
    job = cost("processing", PROCESSING)

    # Then compute = 210 s x 0.115 $/h, storage = 30 GB x 210 s x 0.10 $/GB-month
    assert job.state == StepState.ESTIMATED
    assert job.billable_seconds == 210
    assert job.compute_cost == Decimal(210) * Decimal("0.115") / 3600
    assert job.storage_cost == pytest.approx(Decimal(30 * 210) * Decimal("0.10") / Decimal(2592000))
    assert job.job_arn == PROCESSING_ARN


def test_processing_running_is_costed_so_far() -> None:
    # Given a processing job in progress since 09:32:10 (now is 10:00)
    response = variant(PROCESSING, ProcessingJobStatus="InProgress", ProcessingEndTime=None)

    # When / Then it is running with 1670 s so far
    job = cost("processing", response)
    assert job.running
    assert job.billable_seconds == 1670


def test_processing_end_before_start_costs_zero_with_an_issue() -> None:
    # Given inconsistent times: the end is before the start
    response = variant(PROCESSING, ProcessingStartTime="2024-05-01T09:35:40Z", ProcessingEndTime="2024-05-01T09:32:10Z")

    # When its cost is computed
    job = cost("processing", response)

    # Then it costs 0 (never negative), is incomplete, and says why
    assert job.total == 0
    assert job.state == StepState.INCOMPLETE
    assert any("is before ProcessingStartTime" in i for i in job.issues)


def test_processing_completed_without_a_start_is_incomplete() -> None:
    # Given a Completed job whose start time is missing
    job = cost("processing", variant(PROCESSING, ProcessingStartTime=None))

    # Then its duration is unknown: 0, incomplete, with the reason
    assert job.total == 0
    assert job.state == StepState.INCOMPLETE
    assert "ProcessingStartTime missing" in (job.reason or "")


def test_processing_failed_before_starting_costs_zero_with_an_issue() -> None:
    # Given a job that failed before it started on its instances
    job = cost("processing", variant(PROCESSING, ProcessingJobStatus="Failed", ProcessingStartTime=None))

    # Then it costs 0, is still an estimate, and the issue says why
    assert job.total == 0
    assert job.state == StepState.ESTIMATED
    assert any("failed before starting" in i for i in job.issues)


def test_transform_cost_is_duration_times_instance_count_without_storage() -> None:
    # Given a transform job: 3 x ml.m5.xlarge for 600 s
    job = cost("transform", TRANSFORM)

    # Then compute = 600 s x 3 x 0.23 $/h, and no storage is charged
    assert job.compute_cost == Decimal("0.115")
    assert job.storage_cost == 0
    assert job.component == Component.TRANSFORM


def test_transform_running_is_costed_so_far() -> None:
    # Given a transform in progress since 09:43 (now is 10:00)
    job = cost("transform", variant(TRANSFORM, TransformJobStatus="InProgress", TransformEndTime=None))

    # When / Then
    assert job.running
    assert job.billable_seconds == 17 * 60


# -------------------------------------------------------------------------------------------------------- tuning


def test_tuning_cost_is_runtime_times_instance_count() -> None:
    # Given a tuning job with 1800 s runtime on 1 x ml.c5.xlarge (10 GB)
    job = cost("tuning", TUNING)

    # Then compute = 1800 s x 0.20 $/h (training rate) plus storage, and the parallelism caveat is stated
    assert job.state == StepState.ESTIMATED
    assert job.compute_cost == Decimal("0.10")
    assert job.storage_cost == pytest.approx(Decimal(10 * 1800) * Decimal("0.10") / Decimal(2592000))
    assert any("MaxParallelTrainingJobs = 2" in i for i in job.issues)


def test_tuning_without_consumed_resources_is_not_estimated() -> None:
    # Given a tuning job that does not report its runtime
    job = cost("tuning", variant(TUNING, ConsumedResources=None))

    # Then it is not estimated, with the reason, and costs nothing
    assert job.state == StepState.NOT_ESTIMATED
    assert "RuntimeInSeconds" in (job.reason or "")
    assert job.total == 0


def test_tuning_with_flexible_instance_configs_is_not_estimated() -> None:
    # Given a tuning job whose instance type is chosen per training job
    definition = copy.deepcopy(TUNING["TrainingJobDefinition"])
    definition.pop("ResourceConfig")
    definition["HyperParameterTuningResourceConfig"] = {
        "InstanceConfigs": [{"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10}]
    }

    # When / Then
    job = cost("tuning", variant(TUNING, TrainingJobDefinition=definition))
    assert job.state == StepState.NOT_ESTIMATED
    assert "InstanceConfigs" in (job.reason or "")


# ------------------------------------------------------------------------------------- prices and storage problems


def test_unknown_instance_type_is_incomplete_with_the_reason() -> None:
    # Given a job on an instance type the table does not price
    response = variant(TRAINING, ResourceConfig={"InstanceType": "ml.p5.48xlarge", "InstanceCount": 1})

    # When its cost is computed
    job = cost("training", response)

    # Then it is incomplete, costs nothing for that type, and names it
    assert job.state == StepState.INCOMPLETE
    assert job.total == 0
    assert job.reason == "unknown instance type: no training price for ml.p5.48xlarge in us-east-1"


def test_unknown_group_type_keeps_the_known_groups_cost() -> None:
    # Given a heterogeneous cluster with one unknown type
    response = variant(
        TRAINING,
        BillableTimeInSeconds=3600,
        ResourceConfig={
            "InstanceGroups": [
                {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "InstanceGroupName": "a"},
                {"InstanceType": "ml.trn1.2xlarge", "InstanceCount": 1, "InstanceGroupName": "b"},
            ]
        },
    )

    # When / Then the known group is still counted (a lower bound) and the job is incomplete
    job = cost("training", response)
    assert job.compute_cost == Decimal("0.20")
    assert job.state == StepState.INCOMPLETE
    assert "ml.trn1.2xlarge" in (job.reason or "")


def test_region_without_prices_is_incomplete_and_says_so() -> None:
    # Given / When a job is costed in a region the table does not cover
    job = cost("processing", PROCESSING, region="ap-south-1")

    # Then
    assert job.state == StepState.INCOMPLETE
    assert "has no prices for region ap-south-1" in (job.reason or "")


def test_missing_instance_count_is_incomplete() -> None:
    # Given a job without an instance count
    response = variant(TRANSFORM, TransformResources={"InstanceType": "ml.m5.xlarge"})

    # When / Then
    job = cost("transform", response)
    assert job.state == StepState.INCOMPLETE
    assert "instance count missing" in (job.reason or "")


def test_storage_is_volume_times_instances_times_time_at_the_gb_month_rate() -> None:
    # Given 720 GB on 1 instance for 3600 s at 0.10 $/GB-month (30-day month)
    response = variant(
        PROCESSING,
        ProcessingResources={
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 720}
        },
        ProcessingStartTime="2024-05-01T09:00:00Z",
        ProcessingEndTime="2024-05-01T10:00:00Z",
    )

    # When / Then storage = 720 x 3600 x 0.10 / 2 592 000 = 0.10
    assert cost("processing", response).storage_cost == Decimal("0.1")


def test_storage_is_not_charged_on_instances_with_local_nvme() -> None:
    # Given a job on ml.g5 (local NVMe: no EBS volume is provisioned)
    response = variant(
        TRAINING, ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}
    )

    # When / Then
    job = cost("training", response)
    assert job.storage_cost == 0
    assert job.compute_cost == Decimal(450) * Decimal("1.40") / 3600


def test_storage_without_a_storage_price_is_incomplete() -> None:
    # Given a table without a storage price
    prices = parse_price_table(
        {"source": "t", "as_of": "2024-05-01", "regions": {REGION: {"processing": {"ml.m5.large": "0.115"}}}}
    )

    # When a job with a volume is costed
    job = cost("processing", PROCESSING, prices=prices)

    # Then the compute is still there but the job is incomplete: no silent zero for storage
    assert job.compute_cost > 0
    assert job.state == StepState.INCOMPLETE
    assert "no storage price" in (job.reason or "")


def test_unknown_job_kind_is_refused() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="unknown job kind"):
        cost("hosting", TRANSFORM)


# ------------------------------------------------------------------------------------------------------ steps


def steps_of_the_facts() -> list[dict[str, Any]]:
    """aws-facts §4.3: the two steps of the execution."""
    return [
        step("TrainModel", {"TrainingJob": {"Arn": TRAINING_ARN}}),
        step("Preprocess", {"ProcessingJob": {"Arn": PROCESSING_ARN}}),
    ]


def test_step_costs_sums_the_jobs_of_the_steps() -> None:
    # Given the two steps and their described jobs
    jobs = {TRAINING_ARN: ("training", TRAINING), PROCESSING_ARN: ("processing", PROCESSING)}

    # When the estimate is made
    result = estimate(steps_of_the_facts(), jobs)

    # Then the total is the two jobs' totals, and it is complete and final
    training, processing = cost("training", TRAINING), cost("processing", PROCESSING)
    assert result.total == training.total + processing.total
    assert [(s.step_name, s.step_type, s.state, s.total) for s in result.steps] == [
        ("TrainModel", "TrainingJob", StepState.ESTIMATED, training.total),
        ("Preprocess", "ProcessingJob", StepState.ESTIMATED, processing.total),
    ]
    assert result.complete
    assert result.final
    assert result.reasons == ()
    assert (result.price_source, result.region, result.currency) == ("test table", REGION, "USD")


def test_total_display_is_rounded_to_cents_and_total_stays_exact() -> None:
    # Given / When the facts' execution is estimated (0.0575 + storage + processing)
    jobs = {TRAINING_ARN: ("training", TRAINING), PROCESSING_ARN: ("processing", PROCESSING)}
    result = estimate(steps_of_the_facts(), jobs)

    # Then
    assert result.total_display == Decimal("0.07")
    assert result.total != result.total_display
    assert json.loads(result.model_dump_json())["total_display"] == "0.07"


def test_cached_step_costs_nothing_whatever_its_metadata() -> None:
    # Given a training step served from the cache of an earlier execution
    cached = step(
        "TrainModel",
        {"TrainingJob": {"Arn": TRAINING_ARN}},
        CacheHitResult={"SourcePipelineExecutionArn": EARLIER_EXECUTION},
    )

    # When the estimate is made, even with the job's description at hand
    result = estimate([cached], {TRAINING_ARN: ("training", TRAINING)})

    # Then the step is cached, costs 0, and the estimate is complete
    only = result.steps[0]
    assert (only.state, only.total, only.job_arn) == (StepState.CACHED, 0, TRAINING_ARN)
    assert EARLIER_EXECUTION in (only.reason or "")
    assert result.total == 0
    assert result.complete
    assert result.final


@pytest.mark.parametrize(
    ("key", "metadata"),
    [
        ("Condition", {"Outcome": "True"}),
        ("RegisterModel", {"Arn": f"{ARN}:model-package/churn/1"}),
        ("Fail", {"ErrorMessage": "accuracy too low"}),
        ("Model", {"Arn": f"{ARN}:model/churn-model"}),
        ("QualityCheck", {"BaselineUsedForDriftCheckStatistics": "s3://bucket/stats.json"}),
        ("ClarifyCheck", {"BaselineUsedForDriftCheckConstraints": "s3://bucket/constraints.json"}),
    ],
)
def test_steps_without_compute_cost_nothing_and_need_no_describe(key: str, metadata: dict[str, Any]) -> None:
    # Given a step that runs no job
    steps = [step("Step", {key: metadata})]

    # When the estimate is made
    result = estimate(steps, {})

    # Then it is no-compute, costs 0, keeps the estimate complete, and needs no Describe call
    assert (result.steps[0].step_type, result.steps[0].state, result.total) == (key, StepState.NO_COMPUTE, 0)
    assert result.complete
    assert jobs_to_describe(steps) == []


@pytest.mark.parametrize(
    ("key", "metadata"),
    [
        ("EMR", {"ClusterId": "j-1ABCDEFGHIJKL", "StepId": "s-1ABCDEFGHIJKL", "StepName": "spark"}),
        ("EMRServerless", {"ApplicationId": "00f1abcdef", "JobRunId": "00f1ghijkl"}),
        ("Lambda", {"Arn": "arn:aws:lambda:us-east-1:111111111111:function:tidy", "OutputParameters": []}),
        ("Callback", {"CallbackToken": "abcdefghij", "SqsQueueUrl": "https://sqs.us-east-1.amazonaws.com/1/q"}),
        ("AutoMLJob", {"Arn": f"{ARN}:automl-job/churn"}),
        ("Endpoint", {"Arn": f"{ARN}:endpoint/churn"}),
        ("EndpointConfig", {"Arn": f"{ARN}:endpoint-config/churn"}),
        ("InferenceComponent", {"Arn": f"{ARN}:inference-component/churn"}),
        ("BedrockCustomModel", {"Arn": "arn:aws:bedrock:us-east-1:111111111111:custom-model/x"}),
        ("BedrockModelImport", {"Arn": "arn:aws:bedrock:us-east-1:111111111111:model-import-job/x"}),
        ("Lineage", {"ActionArns": {}}),
    ],
)
def test_step_types_not_priced_are_listed_with_a_reason(key: str, metadata: dict[str, Any]) -> None:
    # Given a step of a type pipeshare does not price
    steps = [step("Step", {key: metadata})]

    # When the estimate is made
    result = estimate(steps, {})

    # Then it is not-estimated, named, with its reason, and the estimate is not complete (never a silent zero)
    only = result.steps[0]
    assert (only.step_type, only.state, only.total) == (key, StepState.NOT_ESTIMATED, 0)
    assert f"step type {key} is not estimated" in (only.reason or "")
    assert not result.complete
    assert any(r.startswith("Step: not-estimated: step type") for r in result.reasons)
    assert jobs_to_describe(steps) == []


@pytest.mark.parametrize("key", ["QualityCheck", "ClarifyCheck"])
def test_check_step_with_a_check_job_is_costed_as_processing(key: str) -> None:
    # Given a check step that ran a processing job
    steps = [step("CheckData", {key: {"CheckType": "DATA_QUALITY", "CheckJobArn": CHECK_ARN}})]
    check = variant(PROCESSING, ProcessingJobArn=CHECK_ARN)

    # When the estimate is made
    result = estimate(steps, {CHECK_ARN: ("processing", check)})

    # Then the check job is described and costed as a processing job
    assert jobs_to_describe(steps) == [("processing", CHECK_ARN)]
    assert (result.steps[0].state, result.steps[0].component) == (StepState.ESTIMATED, Component.PROCESSING)
    assert result.total == cost("processing", check).total


def test_transform_and_tuning_steps_are_costed() -> None:
    # Given a transform step and a tuning step, both described
    steps = [step("Score", {"TransformJob": {"Arn": TRANSFORM_ARN}}), step("Tune", {"TuningJob": {"Arn": TUNING_ARN}})]
    jobs = {TRANSFORM_ARN: ("transform", TRANSFORM), TUNING_ARN: ("tuning", TUNING)}

    # When the estimate is made
    result = estimate(steps, jobs)

    # Then both are estimated with their own formulas
    assert [s.state for s in result.steps] == [StepState.ESTIMATED, StepState.ESTIMATED]
    assert result.total == cost("transform", TRANSFORM).total + cost("tuning", TUNING).total


def test_job_metadata_with_a_training_job_arn_is_costed_as_training() -> None:
    # Given a step whose metadata uses the generic Job key
    steps = [step("Train", {"Job": {"Arn": TRAINING_ARN}})]

    # When / Then the kind comes from the ARN
    assert jobs_to_describe(steps) == [("training", TRAINING_ARN)]
    assert estimate(steps, {TRAINING_ARN: ("training", TRAINING)}).total == cost("training", TRAINING).total


def test_tuning_step_without_its_data_is_not_estimated() -> None:
    # Given a tuning step whose job was not described
    result = estimate([step("Tune", {"TuningJob": {"Arn": TUNING_ARN}})], {})

    # When / Then
    assert result.steps[0].state == StepState.NOT_ESTIMATED
    assert "not described" in (result.steps[0].reason or "")
    assert not result.complete


def test_job_not_described_is_incomplete_and_not_final() -> None:
    # Given a finished training step whose job was not described
    result = estimate([step("TrainModel", {"TrainingJob": {"Arn": TRAINING_ARN}})], {})

    # When / Then the estimate waits for that data
    only = result.steps[0]
    assert only.state == StepState.INCOMPLETE
    assert only.issues == (f"job {TRAINING_ARN} was not described",)
    assert not result.complete
    assert not result.final


def test_job_described_as_another_kind_is_incomplete() -> None:
    # Given a training step whose ARN was described as a processing job
    result = estimate(
        [step("TrainModel", {"TrainingJob": {"Arn": TRAINING_ARN}})], {TRAINING_ARN: ("processing", PROCESSING)}
    )

    # When / Then
    assert result.steps[0].state == StepState.INCOMPLETE
    assert "described as 'processing'" in (result.steps[0].reason or "")


def test_job_arn_referenced_by_two_steps_is_counted_once() -> None:
    # Given two steps pointing at the same training job
    steps = [
        step("TrainModel", {"TrainingJob": {"Arn": TRAINING_ARN}}),
        step("TrainModelAgain", {"TrainingJob": {"Arn": TRAINING_ARN}}),
    ]

    # When the estimate is made
    result = estimate(steps, {TRAINING_ARN: ("training", TRAINING)})

    # Then the job's cost appears once, and the second step says where it is counted
    assert result.total == cost("training", TRAINING).total
    assert [s.total for s in result.steps] == [cost("training", TRAINING).total, 0]
    assert "counted once, there" in result.steps[1].issues[0]
    assert jobs_to_describe(steps) == [("training", TRAINING_ARN)]


def test_running_step_is_costed_so_far_and_not_final() -> None:
    # Given an executing processing step whose job is in progress
    steps = [step("Preprocess", {"ProcessingJob": {"Arn": PROCESSING_ARN}}, status="Executing")]
    running = variant(PROCESSING, ProcessingJobStatus="InProgress", ProcessingEndTime=None)

    # When the estimate is made
    result = estimate(steps, {PROCESSING_ARN: ("processing", running)})

    # Then the cost so far is there, the step is running, and the estimate is complete but not final
    assert result.steps[0].running
    assert result.total > 0
    assert result.complete
    assert not result.final
    assert any("running: cost so far as of 2024-05-01T10:00:00Z" in r for r in result.reasons)


def test_step_without_metadata_yet_is_incomplete_and_not_final() -> None:
    # Given a step that is starting and has not recorded its job
    result = estimate([step("TrainModel", status="Starting")], {})

    # When / Then
    assert result.steps[0].state == StepState.INCOMPLETE
    assert not result.final


def test_ended_step_without_metadata_ran_no_job() -> None:
    # Given a step that failed before creating any job
    result = estimate([step("TrainModel", status="Failed", FailureReason="bad input")], {})

    # When / Then
    assert result.steps[0].state == StepState.NO_COMPUTE
    assert result.complete
    assert result.final


def test_execution_still_running_makes_the_estimate_not_final() -> None:
    # Given every listed step has ended, but the execution is still Executing
    jobs = {TRAINING_ARN: ("training", TRAINING), PROCESSING_ARN: ("processing", PROCESSING)}

    # When the estimate is made with the execution's status
    result = estimate(steps_of_the_facts(), jobs, execution_status="Executing")

    # Then it is not final, and says why
    assert not result.final
    assert "execution status Executing: more steps may run" in result.reasons


def test_no_steps_is_not_final() -> None:
    # Given / When / Then
    result = estimate([], {})
    assert (result.total, result.complete, result.final, result.reasons) == (0, True, False, ("no steps listed yet",))


def test_retried_step_is_not_complete() -> None:
    # Given a step that took 2 attempts (the first attempt's job is not listed)
    steps = [step("TrainModel", {"TrainingJob": {"Arn": TRAINING_ARN}}, AttemptCount=2)]

    # When the estimate is made
    result = estimate(steps, {TRAINING_ARN: ("training", TRAINING)})

    # Then the listed job is costed, but the estimate is not complete
    assert result.total == cost("training", TRAINING).total
    assert not result.complete
    assert any("2 attempts" in r for r in result.reasons)


def test_inconsistent_data_never_gives_a_negative_total() -> None:
    # Given jobs with every kind of bad duration
    steps = [
        step("A", {"TrainingJob": {"Arn": TRAINING_ARN}}),
        step("B", {"ProcessingJob": {"Arn": PROCESSING_ARN}}),
        step("C", {"TransformJob": {"Arn": TRANSFORM_ARN}}),
    ]
    jobs = {
        TRAINING_ARN: ("training", variant(TRAINING, BillableTimeInSeconds=-5, TrainingTimeInSeconds=-5)),
        PROCESSING_ARN: (
            "processing",
            variant(PROCESSING, ProcessingStartTime="2024-05-01T10:00:00Z", ProcessingEndTime="2024-05-01T09:00:00Z"),
        ),
        TRANSFORM_ARN: (
            "transform",
            variant(TRANSFORM, TransformJobStatus="InProgress", TransformStartTime="2024-05-02T00:00:00Z"),
        ),
    }

    # When the estimate is made
    result = estimate(steps, jobs)

    # Then nothing is negative, and every problem is reported
    assert result.total == 0
    assert all(s.total >= 0 and s.issues for s in result.steps)
    assert not result.complete


# ------------------------------------------------------------------------------------------------ jobs_to_describe


def test_jobs_to_describe_lists_each_job_once_and_skips_cached_and_no_compute_steps() -> None:
    # Given an execution's steps: two jobs, one duplicate, one cached, a condition, a lambda, a check without a job
    steps = [
        step("Preprocess", {"ProcessingJob": {"Arn": PROCESSING_ARN}}),
        step("TrainModel", {"TrainingJob": {"Arn": TRAINING_ARN}}),
        step("TrainModelAgain", {"TrainingJob": {"Arn": TRAINING_ARN.upper()}}),
        step("Cached", {"TransformJob": {"Arn": TRANSFORM_ARN}}, CacheHitResult={"SourcePipelineExecutionArn": "x"}),
        step("Check", {"Condition": {"Outcome": "True"}}),
        step("Notify", {"Lambda": {"Arn": "arn:aws:lambda:us-east-1:111111111111:function:n"}}),
        step("Quality", {"QualityCheck": {"CheckType": "DATA_QUALITY"}}),
        step("Tune", {"TuningJob": {"Arn": TUNING_ARN}}),
    ]

    # When / Then: 3 Describe calls, so the estimate costs 1 + step pages + 3 calls
    assert jobs_to_describe(steps) == [
        ("processing", PROCESSING_ARN),
        ("training", TRAINING_ARN),
        ("tuning", TUNING_ARN),
    ]


# ------------------------------------------------------------------------------------------- fixtures are honest


@pytest.mark.parametrize(
    ("operation", "response"),
    [
        ("describe_training_job", TRAINING),
        ("describe_processing_job", PROCESSING),
        ("describe_transform_job", TRANSFORM),
        ("describe_hyper_parameter_tuning_job", TUNING),
    ],
)
def test_describe_fixtures_follow_the_botocore_output_shapes(operation: str, response: dict[str, Any]) -> None:
    # Given a SageMaker client stubbed offline
    client = boto3.client("sagemaker", region_name=REGION)

    # When / Then the Stubber accepts the fixture as a response of that operation (it validates the shape)
    with Stubber(client) as stubber:
        stubber.add_response(operation, response)
