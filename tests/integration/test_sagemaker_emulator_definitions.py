"""The SageMaker emulator's pipeline definitions: DescribePipelineDefinitionForExecution answers the definition the
pipeline had when the execution started (an UpdatePipeline afterwards changes DescribePipeline, not it);
ListPipelineParametersForExecution answers the execution's parameter values (settings.sagemaker.
execution_parameters decides whether undeclared defaults are listed: AWS does not say); define_steps writes the
definition of its steps in AWS's schema, and the jobs the steps run report the same limits the definition gives.

Driven by real boto3 clients over HTTP (the fixtures of test_sagemaker_emulator.py); every response is validated
against botocore's output shape.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from pipeshare.logic.estimate import parse_price_table
from pipeshare.logic.projection import DEFAULT_TRAINING_MAX_RUNTIME, worst_case
from pipeshare_local.sagemaker import READ_ONLY_PERMISSION, StepSpec
from tests.integration import test_sagemaker_emulator as base
from tests.integration.test_sagemaker_emulator import (
    CONSUMER,
    OWNER,
    REGION,
    STRANGER,
    Env,
    create_pipeline,
    error_of,
    share,
    shared_pipeline,
    start,
)

# the emulator test module's fixtures (a loopback server, clients per account, a fresh emulator per test)
server, clients, env = base.server, base.clients, base.env

PIPELINE = f"arn:aws:sagemaker:{REGION}:{OWNER}:pipeline/churn-train"
# a test table: rates only for the projection cross-check below
PRICES = parse_price_table(
    {
        "source": "test table",
        "as_of": "2026-05-01",
        "regions": {REGION: {"training": {"ml.m5.4xlarge": "0.9"}, "processing": {"ml.m5.xlarge": "0.2"}}},
    }
)
WITH_PARAMETERS = {
    "Version": "2020-12-01",
    "Parameters": [
        {"Name": "TrainType", "Type": "String", "DefaultValue": "ml.m5.xlarge"},
        {"Name": "TrainCount", "Type": "Integer", "DefaultValue": 1},
        {"Name": "Bucket", "Type": "String"},
    ],
    "Steps": [],
}


def _definition(env: Env, execution: str, account: str = OWNER) -> dict:
    response = env.sm(account).describe_pipeline_definition_for_execution(PipelineExecutionArn=execution)
    return json.loads(response["PipelineDefinition"])  # type: ignore[no-any-return]


def _parameters(env: Env, execution: str, **kwargs: object) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    request = {"PipelineExecutionArn": execution, **kwargs}
    while True:
        page = env.sm(OWNER).list_pipeline_parameters_for_execution(**request)
        found += page["PipelineParameters"]
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]


def test_an_execution_keeps_the_definition_it_started_with(env: Env) -> None:
    # Given a pipeline with steps, and an execution of it
    arn = shared_pipeline(env, steps=[StepSpec("Train", "Training", 60, "ml.m5.4xlarge", 2, max_runtime_seconds=3600)])
    execution = start(env, OWNER, "churn-train")
    started_with = _definition(env, execution)
    # When the owner updates the pipeline's definition (UpdatePipeline, moto)
    changed = {"Version": "2020-12-01", "Steps": [{"Name": "Other", "Type": "Fail", "Arguments": {}}]}
    env.client(OWNER).update_pipeline(PipelineName="churn-train", PipelineDefinition=json.dumps(changed))
    # Then DescribePipeline shows the new definition, the execution still answers the one it started with, and a new
    # execution the new one
    described = env.client(OWNER).describe_pipeline(PipelineName="churn-train")
    assert json.loads(described["PipelineDefinition"]) == changed
    assert _definition(env, execution) == started_with
    assert [s["Name"] for s in started_with["Steps"]] == ["Train"]
    assert _definition(env, start(env, OWNER, "churn-train", ClientRequestToken="n" * 32)) == changed
    # and CreationTime is the pipeline's ("The time when the pipeline was created")
    response = env.sm(OWNER).describe_pipeline_definition_for_execution(PipelineExecutionArn=execution)
    assert abs(response["CreationTime"] - described["CreationTime"]) < timedelta(milliseconds=1)  # moto keeps ms
    assert arn.endswith("/churn-train")


def test_define_steps_writes_the_definition_the_jobs_agree_with(env: Env) -> None:
    # Given steps with and without runtime limits
    steps = [
        StepSpec("Prep", "Processing", 60, "ml.m5.xlarge", 2, volume_gb=50, max_runtime_seconds=900),
        StepSpec("Train", "Training", 120, "ml.m5.4xlarge", 2, max_runtime_seconds=3 * 3600),
        StepSpec("TrainDefault", "Training", 60, "ml.m5.4xlarge", 1),
        StepSpec("Check", "Condition", 1),
        StepSpec("Score", "Transform", 30, "ml.m5.xlarge", 1),
    ]
    shared_pipeline(env, steps=steps)
    # When an execution runs them all
    execution = start(env, OWNER, "churn-train")
    env.tick(600)
    # Then DescribePipeline and the execution's definition are the same document, in AWS's schema
    definition = _definition(env, execution)
    assert json.loads(env.client(OWNER).describe_pipeline(PipelineName="churn-train")["PipelineDefinition"]) == (
        definition
    )
    assert definition["Version"] == "2020-12-01"
    by_name = {s["Name"]: s for s in definition["Steps"]}
    assert [s["Type"] for s in definition["Steps"]] == ["Processing", "Training", "Training", "Condition", "Transform"]
    assert by_name["Train"]["DependsOn"] == ["Prep"]
    prep, train = by_name["Prep"]["Arguments"], by_name["Train"]["Arguments"]
    assert prep["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 2,
        "InstanceType": "ml.m5.xlarge",
        "VolumeSizeInGB": 50,
    }
    assert prep["StoppingCondition"] == {"MaxRuntimeInSeconds": 900}
    assert train["StoppingCondition"] == {"MaxRuntimeInSeconds": 3 * 3600}
    assert "StoppingCondition" not in by_name["TrainDefault"]["Arguments"]  # none given: AWS's default applies
    assert by_name["Score"]["Arguments"]["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}
    # and the jobs report the same limits: the given ones, else the 1-day default AWS documents for training
    jobs = {
        s["StepName"]: s["Metadata"]
        for s in env.sm(OWNER).list_pipeline_execution_steps(PipelineExecutionArn=execution)["PipelineExecutionSteps"]
    }
    described = {
        name: env.sm(OWNER).describe_training_job(TrainingJobName=jobs[name]["TrainingJob"]["Arn"].rsplit("/", 1)[1])
        for name in ("Train", "TrainDefault")
    }
    assert described["Train"]["StoppingCondition"]["MaxRuntimeInSeconds"] == 3 * 3600
    assert described["TrainDefault"]["StoppingCondition"]["MaxRuntimeInSeconds"] == DEFAULT_TRAINING_MAX_RUNTIME
    processing = env.sm(OWNER).describe_processing_job(
        ProcessingJobName=jobs["Prep"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    )
    assert processing["StoppingCondition"] == {"MaxRuntimeInSeconds": 900}
    assert processing["ProcessingResources"]["ClusterConfig"] == prep["ProcessingResources"]["ClusterConfig"]


def test_the_projection_of_a_generated_definition_bounds_what_the_steps_run(env: Env) -> None:
    # Given a generated definition: processing 2 x ml.m5.xlarge for at most 15 minutes, training 2 x ml.m5.4xlarge
    # for at most 3 hours, a condition and a transform
    shared_pipeline(
        env,
        steps=[
            StepSpec("Prep", "Processing", 60, "ml.m5.xlarge", 2, max_runtime_seconds=900),
            StepSpec("Train", "Training", 120, "ml.m5.4xlarge", 2, max_runtime_seconds=3 * 3600),
            StepSpec("Check", "Condition", 1),
            StepSpec("Score", "Transform", 30),
        ],
    )
    execution = start(env, OWNER, "churn-train")
    # When it is projected (the test table prices no storage)
    projection = worst_case(_definition(env, execution), {}, PRICES, REGION)
    # Then each job step counts instances x its limit x the rate; the transform is unbounded
    assert {s.step: s.usd for s in projection.steps} == {
        "Prep": 2 * Decimal(900) * Decimal("0.2") / 3600,
        "Train": 2 * Decimal(3 * 3600) * Decimal("0.9") / 3600,
    }
    assert [(u.step, "runtime limit" in u.reason) for u in projection.unbounded] == [("Score", True)]


def test_parameters_of_an_execution_are_the_values_given_at_start(env: Env) -> None:
    # Given a pipeline declaring parameters (two with a default, one without)
    arn = create_pipeline(env)
    env.client(OWNER).update_pipeline(PipelineName="churn-train", PipelineDefinition=json.dumps(WITH_PARAMETERS))
    share(env, arn, READ_ONLY_PERMISSION)
    given = [{"Name": "TrainType", "Value": "ml.m5.4xlarge"}, {"Name": "Bucket", "Value": "my-bucket"}]
    execution = start(env, OWNER, "churn-train", PipelineParameters=given)
    # When they are listed, one to a page
    listed = _parameters(env, execution, MaxResults=1)
    # Then the values given at start (the default setting), every page followed
    assert listed == given
    # and with settings.sagemaker.execution_parameters = with_defaults, the declared defaults not overridden too
    env.sagemaker.settings.sagemaker.execution_parameters = "with_defaults"
    assert _parameters(env, execution) == [
        {"Name": "TrainType", "Value": "ml.m5.4xlarge"},
        {"Name": "TrainCount", "Value": "1"},
        {"Name": "Bucket", "Value": "my-bucket"},
    ]


def test_a_consumer_holding_the_pipeline_reads_both_and_others_are_told_it_does_not_exist(env: Env) -> None:
    # Given a pipeline shared read-only with the consumer, and an execution of it
    shared_pipeline(env, READ_ONLY_PERMISSION, steps=[StepSpec("Prep", "Processing", 60)])
    execution = start(env, OWNER, "churn-train", PipelineParameters=[{"Name": "X", "Value": "1"}])
    # Then the consumer reads the definition and the parameters (both in the read-only permission)
    assert [s["Name"] for s in _definition(env, execution, CONSUMER)["Steps"]] == ["Prep"]
    consumer = env.sm(CONSUMER).list_pipeline_parameters_for_execution(PipelineExecutionArn=execution)
    assert consumer["PipelineParameters"] == [{"Name": "X", "Value": "1"}]
    # and an account without a share, or an execution that does not exist, gets ResourceNotFound
    with pytest.raises(ClientError) as stranger:
        env.sm(STRANGER).describe_pipeline_definition_for_execution(PipelineExecutionArn=execution)
    assert error_of(stranger)[:2] == ("ResourceNotFound", 400)
    with pytest.raises(ClientError) as missing:
        env.sm(OWNER).list_pipeline_parameters_for_execution(PipelineExecutionArn=f"{PIPELINE}/execution/nope")
    assert error_of(missing)[0] == "ResourceNotFound"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "Transform", "max_runtime_seconds": 60}, "applies to"),
        ({"type": "Condition", "max_runtime_seconds": 60}, "applies to"),
        ({"type": "Training", "duration_seconds": 600, "max_runtime_seconds": 60}, ">= duration_seconds"),
        ({"type": "Processing", "duration_seconds": 0, "max_runtime_seconds": 777601}, "at most 777600"),
        ({"type": "Training", "max_runtime_seconds": 0}, "whole number >= 1"),
    ],
)
def test_step_specs_refuse_a_runtime_limit_their_job_cannot_have(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StepSpec(name="S", **spec)
