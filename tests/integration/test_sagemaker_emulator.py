"""The local SageMaker pipeline-execution emulator, driven by real boto3 clients over HTTP.

One loopback server dispatches like the local stack does: the six emulated SageMaker operations to the emulator,
RAM to the RAM emulator, everything else (STS, CreatePipeline, ...) to moto. Each account gets credentials from moto
STS AssumeRole, so the emulators see which account (and role/session) is calling. Every response the emulator
builds, and every response boto3 parses, is validated against botocore's output shape.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.iam.models import get_account_id_from
from moto.server import DomainDispatcherApplication, create_backend_app

from pipeshare_local.ram import RamEmulator, serve
from pipeshare_local.sagemaker import (
    ALLOW_EXECUTION_PERMISSION,
    READ_ONLY_PERMISSION,
    SageMakerParamValidator,
    SageMakerPipelineEmulator,
    StepSpec,
    moto_pipeline_exists,
    sagemaker_service_model,
)
from tests.integration.emulator_helpers import Clock, client_config, output_checker

OWNER, CONSUMER, STRANGER = "111111111111", "222222222222", "333333333333"
ROLES = {OWNER: ("PipelineAdmin", "ops"), CONSUMER: ("DataScientist", "alice"), STRANGER: ("Analyst", "bob")}
REGION = "us-east-1"
START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
EXECUTION_ARN_RE = re.compile(r"^arn:aws:sagemaker:us-east-1:(\d{12}):pipeline/([^/]+)/execution/([a-z0-9]{12})$")

ENVELOPE_KEYS = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
STATUS_KEYS = {
    "pipelineExecutionDisplayName",
    "currentPipelineExecutionStatus",
    "executionStartTime",
    "pipelineArn",
    "pipelineExecutionArn",
}
STEP_KEYS = {
    "metadata",
    "stepStartTime",
    "stepName",
    "stepType",
    "currentStepStatus",
    "pipelineArn",
    "pipelineExecutionArn",
}
TRAIL_KEYS = {
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "requestID",
    "eventID",
    "readOnly",
    "eventType",
    "managementEvent",
    "recipientAccountId",
    "eventCategory",
}
STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
STEP_CHANGE = "SageMaker Model Building Pipeline Execution Step Status Change"
API_CALL = "AWS API Call via CloudTrail"


assert_valid_output = output_checker(sagemaker_service_model, SageMakerParamValidator)


@dataclass
class Env:
    url: str
    clock: Clock
    ram: RamEmulator
    sagemaker: SageMakerPipelineEmulator
    events: list[dict] = field(default_factory=list)
    responses: list[tuple[str, dict]] = field(default_factory=list)
    clients: dict[tuple[str, str], BaseClient] = field(default_factory=dict)

    def client(self, account: str, service: str = "sagemaker") -> BaseClient:
        return self.clients[(account, service)]

    def sm(self, account: str) -> Checked:
        return Checked(self.client(account))

    def tick(self, seconds: float = 0) -> None:
        self.clock.advance(seconds)
        self.sagemaker.tick()

    def of(self, detail_type: str, account: str | None = None) -> list[dict]:
        return [e for e in self.events if e["detail-type"] == detail_type and account in (None, e["account"])]


class Checked:
    """A SageMaker client whose parsed responses are validated against the output shape."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            response = method(**kwargs)
            assert_valid_output(self._client.meta.method_to_api_mapping[name], response)
            return response

        return call


SESSION = boto3.Session()
CONFIG = Config(retries={"mode": "standard", "max_attempts": 1})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, Any]]]:
    current: dict[str, Any] = {}
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict, start_response: Any) -> Any:
        sagemaker, ram = current.get("sagemaker"), current.get("ram")
        if sagemaker is not None and sagemaker.handles(environ):
            return sagemaker(environ, start_response)
        if ram is not None and ram.is_ram_request(environ):
            return ram(environ, start_response)
        return moto_app(environ, start_response)

    url, shutdown = serve(app)
    yield url, current
    shutdown()


def make_client(url: str, service: str, creds: dict[str, str], *, validate: bool = True) -> BaseClient:
    return SESSION.client(
        service,  # type: ignore[call-overload]
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=client_config(validate=validate),
    )


@pytest.fixture(scope="module")
def clients(server: tuple[str, dict[str, Any]]) -> dict[tuple[str, str], BaseClient]:
    """Clients per account, with credentials from moto STS AssumeRole (bound to the role's account)."""
    url, _ = server
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()  # noqa: S310
    sts = SESSION.client(
        "sts", endpoint_url=url, region_name=REGION, aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap"
    )
    result: dict[tuple[str, str], BaseClient] = {}
    for account, (role, session) in ROLES.items():
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName=session)["Credentials"]
        for service in ("sagemaker", "ram"):
            result[(account, service)] = make_client(url, service, creds)
        result[(account, "sagemaker-raw")] = make_client(url, "sagemaker", creds, validate=False)
    return result


@pytest.fixture
def env(server: tuple[str, dict[str, Any]], clients: dict[tuple[str, str], BaseClient]) -> Iterator[Env]:
    url, current = server
    for account in ROLES:  # moto keeps pipelines between tests; the credentials must survive, so no moto reset
        sagemaker_client = clients[(account, "sagemaker")]
        for pipeline in sagemaker_client.list_pipelines()["PipelineSummaries"]:
            sagemaker_client.delete_pipeline(PipelineName=pipeline["PipelineName"], ClientRequestToken="d" * 32)
    clock = Clock(START)
    events: list[dict] = []
    ram = RamEmulator(account_for_access_key=get_account_id_from, clock=clock, emit=events.append)
    sagemaker = SageMakerPipelineEmulator(
        account_for_access_key=get_account_id_from,
        clock=clock,
        emit=events.append,
        ram=ram,
        pipeline_exists=moto_pipeline_exists,
    )
    result = Env(url=url, clock=clock, ram=ram, sagemaker=sagemaker, events=events, clients=clients)
    sagemaker.response_observer = lambda op, response: result.responses.append((op, response))
    current.update(ram=ram, sagemaker=sagemaker)
    yield result
    for operation, response in result.responses:
        assert_valid_output(operation, response)


def create_pipeline(env: Env, name: str = "churn-train", account: str = OWNER) -> str:
    response = env.client(account).create_pipeline(
        PipelineName=name,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn=f"arn:aws:iam::{account}:role/SageMakerPipelineExecRole",
        ClientRequestToken="c" * 32,
    )
    return response["PipelineArn"]  # type: ignore[no-any-return]


def share(env: Env, pipeline_arn: str, permission: str, consumer: str = CONSUMER) -> None:
    """Owner shares the pipeline with `permission`; the consumer accepts the invitation."""
    env.client(OWNER, "ram").create_resource_share(
        name="pipelines", resourceArns=[pipeline_arn], principals=[consumer], permissionArns=[permission]
    )
    ram = env.client(consumer, "ram")
    (invitation,) = ram.get_resource_share_invitations()["resourceShareInvitations"]
    ram.accept_resource_share_invitation(resourceShareInvitationArn=invitation["resourceShareInvitationArn"])


def shared_pipeline(env: Env, permission: str = ALLOW_EXECUTION_PERMISSION, steps: list[StepSpec] | None = None) -> str:
    arn = create_pipeline(env)
    if steps is not None:
        env.sagemaker.define_steps(OWNER, REGION, "churn-train", steps)
    share(env, arn, permission)
    env.events.clear()
    return arn


def start(env: Env, account: str, pipeline: str, **kwargs: Any) -> str:
    return env.sm(account).start_pipeline_execution(PipelineName=pipeline, **kwargs)["PipelineExecutionArn"]  # type: ignore[no-any-return]


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def statuses(env: Env, account: str | None = OWNER) -> list[str]:
    return [e["detail"]["currentPipelineExecutionStatus"] for e in env.of(STATUS_CHANGE, account)]


def step_statuses(env: Env) -> list[tuple[str, str]]:
    return [(e["detail"]["stepName"], e["detail"]["currentStepStatus"]) for e in env.of(STEP_CHANGE)]


TWO_STEPS = [
    StepSpec("Preprocess", "Processing", duration_seconds=120),
    StepSpec("TrainModel", "Training", duration_seconds=600, instance_type="ml.p3.2xlarge", instance_count=2),
]


# ------------------------------------------------------------------------------------------------ start / access


def test_owner_starts_own_pipeline_by_name(env: Env) -> None:
    # Given
    pipeline_arn = create_pipeline(env)
    # When
    arn = start(env, OWNER, "churn-train")
    # Then
    assert EXECUTION_ARN_RE.match(arn).groups()[:2] == (OWNER, "churn-train")  # type: ignore[union-attr]
    described = env.sm(OWNER).describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described["PipelineArn"] == pipeline_arn
    assert described["PipelineExecutionStatus"] == "Executing"
    assert described["CreationTime"] == START
    assert described["CreatedBy"] == {}
    assert described["LastModifiedBy"] == {}


def test_consumer_with_allow_execution_starts_by_arn_and_execution_lives_in_owner_account(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env)
    # When
    arn = start(env, CONSUMER, pipeline_arn)
    # Then
    assert arn.startswith(f"{pipeline_arn}/execution/")
    assert env.sm(OWNER).describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing"
    assert env.sagemaker.snapshot()["executions"][0]["startedBy"] == CONSUMER


def test_consumer_with_read_only_share_is_denied_start(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env, READ_ONLY_PERMISSION)
    # When
    with pytest.raises(ClientError) as exc:
        env.client(CONSUMER).start_pipeline_execution(PipelineName=pipeline_arn)
    # Then
    code, status, message = error_of(exc)
    assert (code, status) == ("AccessDeniedException", 400)
    assert message == (
        f"User: arn:aws:sts::{CONSUMER}:assumed-role/DataScientist/alice is not authorized to perform: "
        f"sagemaker:StartPipelineExecution on resource: {pipeline_arn} because no resource-based policy allows "
        "the sagemaker:StartPipelineExecution action"
    )
    assert env.sagemaker.snapshot()["executions"] == []


def test_denied_start_is_recorded_in_consumer_cloudtrail_with_error_code(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env, READ_ONLY_PERMISSION)
    # When
    with pytest.raises(ClientError):
        env.client(CONSUMER).start_pipeline_execution(PipelineName=pipeline_arn, ClientRequestToken="t" * 32)
    # Then
    (trail,) = env.events
    detail = trail["detail"]
    assert (trail["detail-type"], trail["account"]) == (API_CALL, CONSUMER)
    assert set(detail) == TRAIL_KEYS | {"errorCode", "errorMessage"}
    assert detail["errorCode"] == "AccessDenied"
    assert "is not authorized to perform: sagemaker:StartPipelineExecution" in detail["errorMessage"]
    assert detail["responseElements"] is None
    assert detail["requestParameters"] == {"pipelineName": pipeline_arn, "clientRequestToken": "t" * 32}


def test_consumer_without_share_gets_resource_not_found(env: Env) -> None:
    # Given
    pipeline_arn = create_pipeline(env)
    # When
    with pytest.raises(ClientError) as exc:
        env.client(STRANGER).start_pipeline_execution(PipelineName=pipeline_arn)
    # Then
    assert error_of(exc)[:2] == ("ResourceNotFound", 400)


def test_pending_invitation_grants_nothing(env: Env) -> None:
    # Given: shared with allow-execution, invitation not accepted yet
    pipeline_arn = create_pipeline(env)
    env.client(OWNER, "ram").create_resource_share(
        name="p", resourceArns=[pipeline_arn], principals=[CONSUMER], permissionArns=[ALLOW_EXECUTION_PERMISSION]
    )
    # When
    with pytest.raises(ClientError) as exc:
        env.client(CONSUMER).list_pipeline_executions(PipelineName=pipeline_arn)
    # Then
    assert error_of(exc)[0] == "ResourceNotFound"
    assert env.ram.grant(CONSUMER, pipeline_arn) is None


def test_ram_grant_names_the_permission_case_insensitively(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env, READ_ONLY_PERMISSION)
    # When
    granted = env.ram.grant(CONSUMER, pipeline_arn.replace("churn-train", "Churn-Train"))
    # Then
    assert granted == READ_ONLY_PERMISSION
    assert env.ram.grant(STRANGER, pipeline_arn) is None


def test_removed_consumer_loses_access(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env)
    arn = start(env, CONSUMER, pipeline_arn)
    ram = env.client(OWNER, "ram")
    (resource_share,) = ram.get_resource_shares(resourceOwner="SELF")["resourceShares"]
    ram.disassociate_resource_share(resourceShareArn=resource_share["resourceShareArn"], principals=[CONSUMER])
    # When
    with pytest.raises(ClientError) as exc:
        env.client(CONSUMER).describe_pipeline_execution(PipelineExecutionArn=arn)
    # Then
    assert error_of(exc)[0] == "ResourceNotFound"


def test_unknown_execution_is_resource_not_found(env: Env) -> None:
    # Given
    create_pipeline(env)
    # When
    with pytest.raises(ClientError) as exc:
        env.client(OWNER).describe_pipeline_execution(
            PipelineExecutionArn=f"arn:aws:sagemaker:{REGION}:{OWNER}:pipeline/churn-train/execution/abcdefabcdef"
        )
    # Then
    assert error_of(exc)[:2] == ("ResourceNotFound", 400)


def test_unknown_pipeline_is_resource_not_found(env: Env) -> None:
    # Given: no pipeline in moto
    # When
    with pytest.raises(ClientError) as exc:
        env.client(OWNER).start_pipeline_execution(PipelineName="nope")
    # Then
    assert error_of(exc)[:2] == ("ResourceNotFound", 400)


def test_read_only_consumer_can_describe_and_list(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env, READ_ONLY_PERMISSION)
    arn = start(env, OWNER, "churn-train")
    consumer = env.sm(CONSUMER)
    # When
    described = consumer.describe_pipeline_execution(PipelineExecutionArn=arn)
    listed = consumer.list_pipeline_executions(PipelineName=pipeline_arn)
    steps = consumer.list_pipeline_execution_steps(PipelineExecutionArn=arn)
    # Then
    assert described["PipelineExecutionArn"] == arn
    assert [s["PipelineExecutionArn"] for s in listed["PipelineExecutionSummaries"]] == [arn]
    assert [s["StepName"] for s in steps["PipelineExecutionSteps"]] == ["Process"]


def test_read_only_consumer_cannot_stop(env: Env) -> None:
    # Given
    shared_pipeline(env, READ_ONLY_PERMISSION)
    arn = start(env, OWNER, "churn-train")
    # When
    with pytest.raises(ClientError) as exc:
        env.client(CONSUMER).stop_pipeline_execution(PipelineExecutionArn=arn)
    # Then
    code, _, message = error_of(exc)
    assert code == "AccessDeniedException"
    assert f"sagemaker:StopPipelineExecution on resource: {arn}" in message


def test_stranger_cannot_describe_an_execution(env: Env) -> None:
    # Given
    create_pipeline(env)
    arn = start(env, OWNER, "churn-train")
    # When
    with pytest.raises(ClientError) as exc:
        env.client(STRANGER).describe_pipeline_execution(PipelineExecutionArn=arn)
    # Then
    assert error_of(exc)[0] == "ResourceNotFound"


def test_other_sagemaker_operations_are_left_to_moto(env: Env) -> None:
    # Given
    create_pipeline(env)
    # When
    described = env.client(OWNER).describe_pipeline(PipelineName="churn-train")
    # Then
    assert described["PipelineName"] == "churn-train"
    assert env.responses == []


# ----------------------------------------------------------------------------------------------- progression


def test_execution_progresses_through_steps_as_time_passes(env: Env) -> None:
    # Given
    shared_pipeline(env, steps=TWO_STEPS)
    arn = start(env, OWNER, "churn-train")
    sm = env.sm(OWNER)
    seen = [sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]]
    # When
    for seconds in (119, 1, 599, 1):
        env.tick(seconds)
        seen.append(sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"])
    # Then
    assert seen == ["Executing", "Executing", "Executing", "Executing", "Succeeded"]
    assert step_statuses(env) == [
        ("Preprocess", "Starting"),
        ("Preprocess", "Executing"),
        ("Preprocess", "Succeeded"),
        ("TrainModel", "Starting"),
        ("TrainModel", "Executing"),
        ("TrainModel", "Succeeded"),
    ]
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["LastModifiedTime"] == START + timedelta(
        seconds=720
    )


def test_steps_are_listed_with_owner_job_arns_and_times(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env, steps=TWO_STEPS)
    arn = start(env, CONSUMER, pipeline_arn)
    execution_id = arn.rsplit("/", 1)[1]
    # When
    env.tick(3600)
    steps = env.sm(CONSUMER).list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    # Then: newest first (the default order)
    train, preprocess = steps
    assert (train["StepName"], train["StepStatus"], train["AttemptCount"]) == ("TrainModel", "Succeeded", 1)
    assert (train["StartTime"], train["EndTime"]) == (START + timedelta(seconds=120), START + timedelta(seconds=720))
    assert (preprocess["StartTime"], preprocess["EndTime"]) == (START, START + timedelta(seconds=120))
    assert re.fullmatch(
        rf"arn:aws:sagemaker:us-east-1:{OWNER}:training-job/pipelines-{execution_id}-trainmodel-[a-z0-9]{{10}}",
        train["Metadata"]["TrainingJob"]["Arn"],
    )
    assert re.fullmatch(
        rf"arn:aws:sagemaker:us-east-1:{OWNER}:processing-job/pipelines-{execution_id}-preprocess-[a-z0-9]{{10}}",
        preprocess["Metadata"]["ProcessingJob"]["Arn"],
    )


def test_steps_are_paginated(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", [StepSpec(f"S{i}", duration_seconds=10) for i in range(5)])
    arn = start(env, OWNER, "churn-train")
    env.tick(60)
    sm = env.sm(OWNER)
    # When
    first = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, MaxResults=2, SortOrder="Ascending")
    paginator = env.client(OWNER).get_paginator("list_pipeline_execution_steps")
    pages = list(paginator.paginate(PipelineExecutionArn=arn, SortOrder="Ascending", PaginationConfig={"PageSize": 2}))
    # Then
    assert [s["StepName"] for s in first["PipelineExecutionSteps"]] == ["S0", "S1"]
    assert "NextToken" in first
    assert [len(p["PipelineExecutionSteps"]) for p in pages] == [2, 2, 1]
    assert [s["StepName"] for p in pages for s in p["PipelineExecutionSteps"]] == ["S0", "S1", "S2", "S3", "S4"]


def test_next_token_from_another_query_is_rejected(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", [StepSpec(f"S{i}", duration_seconds=0) for i in range(3)])
    arn = start(env, OWNER, "churn-train")
    token = env.sm(OWNER).list_pipeline_execution_steps(PipelineExecutionArn=arn, MaxResults=1)["NextToken"]
    # When
    with pytest.raises(ClientError) as exc:
        env.client(OWNER).list_pipeline_execution_steps(
            PipelineExecutionArn=arn, SortOrder="Ascending", NextToken=token
        )
    # Then
    assert error_of(exc)[:2] == ("ValidationException", 400)


def test_executions_are_listed_newest_first_and_paginated(env: Env) -> None:
    # Given
    create_pipeline(env)
    arns = []
    for _ in range(3):
        arns.append(start(env, OWNER, "churn-train"))
        env.clock.advance(60)
    sm = env.sm(OWNER)
    # When
    first = sm.list_pipeline_executions(PipelineName="churn-train", MaxResults=2)
    rest = sm.list_pipeline_executions(PipelineName="churn-train", MaxResults=2, NextToken=first["NextToken"])
    # Then
    listed = first["PipelineExecutionSummaries"] + rest["PipelineExecutionSummaries"]
    assert [s["PipelineExecutionArn"] for s in listed] == arns[::-1]
    assert "NextToken" not in rest
    assert [s["StartTime"] for s in listed] == [START + timedelta(seconds=120), START + timedelta(seconds=60), START]


def test_executions_are_filtered_by_creation_time(env: Env) -> None:
    # Given
    create_pipeline(env)
    start(env, OWNER, "churn-train")
    env.clock.advance(600)
    later = start(env, OWNER, "churn-train")
    # When
    listed = env.sm(OWNER).list_pipeline_executions(
        PipelineName="churn-train", CreatedAfter=START + timedelta(seconds=300)
    )
    # Then
    assert [s["PipelineExecutionArn"] for s in listed["PipelineExecutionSummaries"]] == [later]


def test_failed_step_fails_the_execution(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.define_steps(
        OWNER, REGION, "churn-train", [*TWO_STEPS[:1], StepSpec("TrainModel", "Training", 60, outcome="Failed")]
    )
    arn = start(env, OWNER, "churn-train")
    # When
    env.tick(3600)
    # Then
    described = env.sm(OWNER).describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "Step failure: One or multiple steps failed."
    (failed,) = [e["detail"] for e in env.of(STEP_CHANGE) if e["detail"]["currentStepStatus"] == "Failed"]
    assert failed["stepName"] == "TrainModel"
    assert failed["failureReason"].startswith("ClientError:")
    assert statuses(env) == ["Executing", "Failed"]


def test_stop_goes_through_stopping_to_stopped(env: Env) -> None:
    # Given
    shared_pipeline(env, steps=TWO_STEPS)
    pipeline_arn = f"arn:aws:sagemaker:{REGION}:{OWNER}:pipeline/churn-train"
    arn = start(env, CONSUMER, pipeline_arn)
    env.tick(130)
    sm = env.sm(CONSUMER)
    # When
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    stopping = sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
    env.tick(5)
    # Then
    assert stopping == "Stopping"
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Stopped"
    assert statuses(env) == ["Executing", "Stopping", "Stopped"]
    assert step_statuses(env)[-2:] == [("TrainModel", "Stopping"), ("TrainModel", "Stopped")]
    train = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"][0]
    assert (train["StepStatus"], train["EndTime"]) == ("Stopped", START + timedelta(seconds=135))


def test_stop_of_a_finished_execution_conflicts(env: Env) -> None:
    # Given
    create_pipeline(env)
    arn = start(env, OWNER, "churn-train")
    env.clock.advance(301)  # the default step has ended: the stop call catches up first
    # When
    with pytest.raises(ClientError) as exc:
        env.client(OWNER).stop_pipeline_execution(PipelineExecutionArn=arn)
    # Then
    assert error_of(exc)[:2] == ("ConflictException", 400)
    assert statuses(env) == ["Executing", "Succeeded"]


def test_retry_after_failure_resumes_at_the_failed_step(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.define_steps(
        OWNER, REGION, "churn-train", [TWO_STEPS[0], StepSpec("TrainModel", "Training", 60, outcome="Failed")]
    )
    arn = start(env, OWNER, "churn-train")
    env.tick(3600)
    first_job = env.sm(OWNER).list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"][0]
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", [])  # definitions apply to new executions only
    # When
    env.sm(OWNER).retry_pipeline_execution(PipelineExecutionArn=arn)
    # Then
    retried, preprocess = env.sm(OWNER).list_pipeline_execution_steps(PipelineExecutionArn=arn)[
        "PipelineExecutionSteps"
    ]
    assert (retried["StepName"], retried["StepStatus"], retried["AttemptCount"]) == ("TrainModel", "Executing", 2)
    assert retried["StartTime"] == START + timedelta(seconds=3600)
    assert retried["Metadata"]["TrainingJob"]["Arn"] != first_job["Metadata"]["TrainingJob"]["Arn"]
    assert (preprocess["StepStatus"], preprocess["AttemptCount"]) == ("Succeeded", 1)
    assert statuses(env) == ["Executing", "Failed", "Executing"]
    described = env.sm(OWNER).describe_pipeline_execution(PipelineExecutionArn=arn)
    assert "FailureReason" not in described


def test_retry_of_a_running_execution_conflicts(env: Env) -> None:
    # Given
    create_pipeline(env)
    arn = start(env, OWNER, "churn-train")
    # When
    with pytest.raises(ClientError) as exc:
        env.client(OWNER).retry_pipeline_execution(PipelineExecutionArn=arn)
    # Then
    assert error_of(exc)[0] == "ConflictException"


def test_retry_after_stop_runs_the_stopped_step_again(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env)
    arn = start(env, CONSUMER, pipeline_arn)
    env.sm(CONSUMER).stop_pipeline_execution(PipelineExecutionArn=arn)
    env.tick(10)
    # When
    env.sm(CONSUMER).retry_pipeline_execution(PipelineExecutionArn=arn)
    env.tick(300)
    # Then
    assert statuses(env) == ["Executing", "Stopping", "Stopped", "Executing", "Succeeded"]
    (step,) = env.sm(CONSUMER).list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert (step["StepStatus"], step["AttemptCount"]) == ("Succeeded", 2)


def test_client_request_token_makes_start_idempotent(env: Env) -> None:
    # Given
    create_pipeline(env)
    token = "idempotency-token-0000000000000000"
    first = start(env, OWNER, "churn-train", ClientRequestToken=token)
    # When
    second = start(env, OWNER, "churn-train", ClientRequestToken=token)
    # Then
    assert second == first
    assert len(env.sagemaker.snapshot()["executions"]) == 1
    assert statuses(env) == ["Executing"]
    assert [e["detail"]["responseElements"] for e in env.of(API_CALL)] == [{"pipelineExecutionArn": first}] * 2


def test_invalid_input_is_a_validation_exception(env: Env) -> None:
    # Given: a client that skips botocore's own checks
    create_pipeline(env)
    raw = env.client(OWNER, "sagemaker-raw")
    # When
    with pytest.raises(ClientError) as exc:
        raw.start_pipeline_execution(PipelineName="churn-train", ClientRequestToken="short")
    # Then
    code, status, message = error_of(exc)
    assert (code, status) == ("ValidationException", 400)
    assert "ClientRequestToken" in message


def test_wire_timestamps_are_epoch_seconds(env: Env) -> None:
    # Given
    create_pipeline(env)
    arn = start(env, OWNER, "churn-train")
    request = urllib.request.Request(  # noqa: S310 - loopback
        env.url,
        data=json.dumps({"PipelineExecutionArn": arn}).encode(),
        headers={
            "X-Amz-Target": "SageMaker.DescribePipelineExecution",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20260501/us-east-1/sagemaker/aws4_request",
            "x-moto-account-id": OWNER,
        },
        method="POST",
    )
    # When
    with urllib.request.urlopen(request) as response:  # noqa: S310 - loopback
        body = json.loads(response.read())
    # Then
    assert body["CreationTime"] == START.timestamp()
    assert isinstance(body["LastModifiedTime"], int | float)


# ------------------------------------------------------------------------------------------------------ events


def test_status_and_step_events_go_to_the_owner_in_order_with_exact_shapes(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env)
    arn = start(env, CONSUMER, pipeline_arn, PipelineExecutionDisplayName="consumer-run-1")
    # When
    env.tick(300)
    # Then
    lifecycle = [e for e in env.events if e["detail-type"] != API_CALL]
    assert [(e["detail-type"], e["account"]) for e in lifecycle] == [
        (STATUS_CHANGE, OWNER),
        (STEP_CHANGE, OWNER),
        (STEP_CHANGE, OWNER),
        (STEP_CHANGE, OWNER),
        (STATUS_CHANGE, OWNER),
    ]
    for event in lifecycle:
        assert set(event) == ENVELOPE_KEYS
        assert (event["version"], event["source"], event["region"]) == ("0", "aws.sagemaker", REGION)
        assert event["resources"] == [pipeline_arn, arn]
    first, *steps, last = lifecycle
    assert set(first["detail"]) == STATUS_KEYS
    assert first["detail"]["currentPipelineExecutionStatus"] == "Executing"
    assert first["time"] == "2026-05-01T09:00:00Z"
    assert set(last["detail"]) == STATUS_KEYS | {"previousPipelineExecutionStatus", "executionEndTime"}
    assert last["detail"]["executionEndTime"] == last["time"] == "2026-05-01T09:05:00Z"
    assert last["detail"]["pipelineExecutionDisplayName"] == "consumer-run-1"
    assert set(steps[0]["detail"]) == STEP_KEYS
    assert set(steps[2]["detail"]) == STEP_KEYS | {"previousStepStatus", "stepEndTime"}
    assert steps[2]["detail"]["stepType"] == "Processing"
    assert list(steps[2]["detail"]["metadata"]) == ["processingJob"]
    assert steps[2]["detail"]["metadata"]["processingJob"]["arn"].startswith(
        f"arn:aws:sagemaker:{REGION}:{OWNER}:processing-job/pipelines-"
    )


def test_step_metadata_keys_follow_the_step_type(env: Env) -> None:
    # Given
    create_pipeline(env)
    kinds = ["Training", "Transform", "Condition", "RegisterModel", "Lambda", "Fail"]
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", [StepSpec(f"S{k}", k, 1) for k in kinds])
    arn = start(env, OWNER, "churn-train")
    # When
    env.tick(10)
    # Then
    ended = {e["detail"]["stepName"]: e["detail"] for e in env.of(STEP_CHANGE) if "stepEndTime" in e["detail"]}
    assert {name: list(d["metadata"]) for name, d in ended.items()} == {
        "STraining": ["trainingJob"],
        "STransform": ["transformJob"],
        "SCondition": ["condition"],
        "SRegisterModel": ["registerModel"],
        "SLambda": ["lambda"],
        "SFail": ["fail"],
    }
    assert ended["SFail"]["currentStepStatus"] == "Failed"
    assert env.sm(OWNER).describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Failed"


def test_consumer_start_is_recorded_in_consumer_cloudtrail(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env)
    # When
    arn = start(
        env, CONSUMER, pipeline_arn, ClientRequestToken="t" * 40, PipelineParameters=[{"Name": "Epochs", "Value": "3"}]
    )
    # Then
    (trail,) = env.of(API_CALL)
    assert env.events[0] is trail  # the call, then what it caused
    assert set(trail) == ENVELOPE_KEYS
    assert (trail["account"], trail["source"], trail["resources"]) == (CONSUMER, "aws.sagemaker", [])
    detail = trail["detail"]
    assert set(detail) == TRAIL_KEYS
    assert (detail["eventSource"], detail["eventName"]) == ("sagemaker.amazonaws.com", "StartPipelineExecution")
    assert detail["recipientAccountId"] == CONSUMER
    assert detail["requestParameters"] == {
        "pipelineName": pipeline_arn,
        "clientRequestToken": "t" * 40,
        "pipelineParameters": [{"name": "Epochs", "value": "3"}],
    }
    assert detail["responseElements"] == {"pipelineExecutionArn": arn}
    identity = detail["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["arn"] == f"arn:aws:sts::{CONSUMER}:assumed-role/DataScientist/alice"
    assert identity["accountId"] == CONSUMER
    assert identity["principalId"].endswith(":alice")
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == f"arn:aws:iam::{CONSUMER}:role/DataScientist"


def test_owner_cloudtrail_copy_is_off_by_default(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env)
    # When
    start(env, CONSUMER, pipeline_arn)
    # Then
    assert [e["account"] for e in env.of(API_CALL)] == [CONSUMER]
    assert "sharedEventID" not in env.of(API_CALL)[0]["detail"]


def test_owner_cloudtrail_copy_when_enabled(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env)
    env.sagemaker.owner_cloudtrail_copy = True
    arn = start(env, CONSUMER, pipeline_arn)
    # When
    env.sm(CONSUMER).stop_pipeline_execution(PipelineExecutionArn=arn)
    # Then
    trails = env.of(API_CALL)
    assert [(e["account"], e["detail"]["eventName"]) for e in trails] == [
        (CONSUMER, "StartPipelineExecution"),
        (OWNER, "StartPipelineExecution"),
        (CONSUMER, "StopPipelineExecution"),
        (OWNER, "StopPipelineExecution"),
    ]
    consumer_copy, owner_copy = trails[2]["detail"], trails[3]["detail"]
    assert owner_copy["recipientAccountId"] == OWNER
    assert owner_copy["userIdentity"] == {
        "type": "AWSAccount",
        "principalId": consumer_copy["userIdentity"]["principalId"],
        "accountId": CONSUMER,
    }
    assert owner_copy["sharedEventID"] == consumer_copy["sharedEventID"]
    assert owner_copy["eventID"] != consumer_copy["eventID"]
    assert owner_copy["requestParameters"] == {
        "pipelineExecutionArn": arn,
        "clientRequestToken": consumer_copy["requestParameters"]["clientRequestToken"],
    }


def test_denied_call_is_copied_to_the_owner_when_enabled(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env, READ_ONLY_PERMISSION)
    env.sagemaker.owner_cloudtrail_copy = True
    # When
    with pytest.raises(ClientError):
        env.client(CONSUMER).start_pipeline_execution(PipelineName=pipeline_arn)
    # Then
    consumer_copy, owner_copy = env.of(API_CALL)
    assert (consumer_copy["account"], owner_copy["account"]) == (CONSUMER, OWNER)
    assert owner_copy["detail"]["errorCode"] == consumer_copy["detail"]["errorCode"] == "AccessDenied"
    assert owner_copy["detail"]["responseElements"] is None


def test_owner_own_start_has_no_owner_copy(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.owner_cloudtrail_copy = True
    # When
    start(env, OWNER, "churn-train")
    # Then
    (trail,) = env.of(API_CALL)
    assert trail["account"] == OWNER
    assert trail["detail"]["userIdentity"]["arn"] == f"arn:aws:sts::{OWNER}:assumed-role/PipelineAdmin/ops"
    assert "sharedEventID" not in trail["detail"]


def test_consumer_status_events_option_copies_lifecycle_to_the_starter(env: Env) -> None:
    # Given
    pipeline_arn = shared_pipeline(env)
    env.sagemaker.consumer_status_events = True
    # When
    start(env, CONSUMER, pipeline_arn)
    env.tick(300)
    # Then
    assert statuses(env, CONSUMER) == statuses(env, OWNER) == ["Executing", "Succeeded"]


# -------------------------------------------------------------------------------------------------------- jobs


def job_steps(env: Env, execution_arn: str, account: str = OWNER) -> dict[str, dict[str, Any]]:
    """Step name -> ListPipelineExecutionSteps entry."""
    steps = env.sm(account).list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)
    return {s["StepName"]: s for s in steps["PipelineExecutionSteps"]}


def job_name(step: dict[str, Any], member: str) -> str:
    return step["Metadata"][member]["Arn"].rsplit("/", 1)[1]  # type: ignore[no-any-return]


def test_describe_training_job_while_running_and_after_completion(env: Env) -> None:
    # Given: the pipeline runs with its own role
    env.client(OWNER).create_pipeline(
        PipelineName="churn-train",
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn=f"arn:aws:iam::{OWNER}:role/service-role/ChurnPipelineRole",
        ClientRequestToken="c" * 32,
    )
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", TWO_STEPS)
    arn = start(env, OWNER, "churn-train")
    env.tick(300)  # Preprocess done at 120 s, TrainModel running since then
    name = job_name(job_steps(env, arn)["TrainModel"], "TrainingJob")
    sm = env.sm(OWNER)
    # When
    running = sm.describe_training_job(TrainingJobName=name)
    env.tick(600)
    done = sm.describe_training_job(TrainingJobName=name)
    # Then
    assert (running["TrainingJobStatus"], running["SecondaryStatus"]) == ("InProgress", "Training")
    assert running["TrainingJobArn"] == job_steps(env, arn)["TrainModel"]["Metadata"]["TrainingJob"]["Arn"]
    assert running["ResourceConfig"] == {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30}
    assert running["RoleArn"] == f"arn:aws:iam::{OWNER}:role/service-role/ChurnPipelineRole"
    assert (running["CreationTime"], running["TrainingStartTime"]) == (START + timedelta(seconds=120),) * 2
    assert running["EnableManagedSpotTraining"] is False
    assert {"TrainingEndTime", "TrainingTimeInSeconds", "BillableTimeInSeconds"}.isdisjoint(running)
    assert (done["TrainingJobStatus"], done["SecondaryStatus"]) == ("Completed", "Completed")
    assert done["TrainingEndTime"] == START + timedelta(seconds=720)
    assert (done["TrainingTimeInSeconds"], done["BillableTimeInSeconds"]) == (600, 600)
    assert done["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert done["ModelArtifacts"]["S3ModelArtifacts"] == (
        f"s3://sagemaker-{REGION}-{OWNER}/churn-train/{name}/output/model.tar.gz"
    )
    assert done["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert [op for op, _ in env.responses].count("DescribeTrainingJob") == 2


def test_describe_processing_job_while_running_and_after_completion(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.define_steps(
        OWNER, REGION, "churn-train", [StepSpec("Preprocess", "Processing", 120, "ml.c5.2xlarge", 3, volume_gb=100)]
    )
    arn = start(env, OWNER, "churn-train")
    name = job_name(job_steps(env, arn)["Preprocess"], "ProcessingJob")
    sm = env.sm(OWNER)
    # When
    running = sm.describe_processing_job(ProcessingJobName=name)
    env.tick(120)
    done = sm.describe_processing_job(ProcessingJobName=name)
    # Then
    assert running["ProcessingJobStatus"] == "InProgress"
    assert running["ProcessingResources"] == {
        "ClusterConfig": {"InstanceCount": 3, "InstanceType": "ml.c5.2xlarge", "VolumeSizeInGB": 100}
    }
    assert (running["CreationTime"], running["ProcessingStartTime"]) == (START, START)
    assert "ProcessingEndTime" not in running
    assert running["RoleArn"] == f"arn:aws:iam::{OWNER}:role/SageMakerPipelineExecRole"
    assert running["AppSpecification"]["ImageUri"].endswith(".amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3")
    assert done["ProcessingJobStatus"] == "Completed"
    assert (done["ProcessingEndTime"], done["LastModifiedTime"]) == (START + timedelta(seconds=120),) * 2
    assert "BillableTimeInSeconds" not in done


def test_describe_transform_job_while_running_and_after_completion(env: Env) -> None:
    # Given: a Model step, then the batch transform that uses the model
    create_pipeline(env)
    steps = [StepSpec("CreateModel", "Model", 5), StepSpec("Score", "Transform", 200, "ml.m5.large", 2)]
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", steps)
    arn = start(env, OWNER, "churn-train")
    env.tick(5)
    listed = job_steps(env, arn)
    name = job_name(listed["Score"], "TransformJob")
    sm = env.sm(OWNER)
    # When
    running = sm.describe_transform_job(TransformJobName=name)
    env.tick(200)
    done = sm.describe_transform_job(TransformJobName=name)
    # Then
    assert running["TransformJobStatus"] == "InProgress"
    assert running["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2}
    assert running["ModelName"] == listed["CreateModel"]["Metadata"]["Model"]["Arn"].rsplit("/", 1)[1]
    assert (running["CreationTime"], running["TransformStartTime"]) == (START + timedelta(seconds=5),) * 2
    assert "TransformEndTime" not in running
    assert done["TransformJobStatus"] == "Completed"
    assert done["TransformEndTime"] == START + timedelta(seconds=205)


def test_describe_tuning_job_while_running_and_after_completion(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.define_steps(
        OWNER, REGION, "churn-train", [StepSpec("TuneHyperparameters", "Tuning", 1800, "ml.m5.2xlarge", 4)]
    )
    arn = start(env, OWNER, "churn-train")
    name = job_name(job_steps(env, arn)["TuneHyperparameters"], "TuningJob")
    sm = env.sm(OWNER)
    env.clock.advance(600)  # no tick: the job has run 600 s as of the call
    # When
    running = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    env.tick(1200)
    done = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    # Then
    assert len(name) <= 32
    assert running["HyperParameterTuningJobStatus"] == "InProgress"
    assert running["TrainingJobDefinition"]["ResourceConfig"] == {
        "InstanceType": "ml.m5.2xlarge",
        "InstanceCount": 4,
        "VolumeSizeInGB": 30,
    }
    assert running["ConsumedResources"] == {"RuntimeInSeconds": 600}
    assert running["TrainingJobStatusCounters"]["InProgress"] == 1
    assert "HyperParameterTuningEndTime" not in running
    assert done["HyperParameterTuningJobStatus"] == "Completed"
    assert done["HyperParameterTuningEndTime"] == START + timedelta(seconds=1800)
    assert done["ConsumedResources"] == {"RuntimeInSeconds": 1800}
    assert (done["TrainingJobStatusCounters"]["Completed"], done["ObjectiveStatusCounters"]["Succeeded"]) == (1, 1)
    assert done["TrainingJobDefinition"]["RoleArn"] == f"arn:aws:iam::{OWNER}:role/SageMakerPipelineExecRole"


def test_spot_training_bills_the_saved_time(env: Env) -> None:
    # Given
    create_pipeline(env)
    steps = [
        StepSpec("TrainSpot", "Training", 1000, spot=True),
        StepSpec("TrainSpot70", "Training", 301, spot=True, spot_saving=0.7),
        StepSpec("TuneSpot", "Tuning", 60, spot=True),
    ]
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", steps)
    arn = start(env, OWNER, "churn-train")
    env.tick(2000)
    listed = job_steps(env, arn)
    sm = env.sm(OWNER)
    # When
    spot = sm.describe_training_job(TrainingJobName=job_name(listed["TrainSpot"], "TrainingJob"))
    spot70 = sm.describe_training_job(TrainingJobName=job_name(listed["TrainSpot70"], "TrainingJob"))
    tuning = sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=job_name(listed["TuneSpot"], "TuningJob")
    )
    # Then
    assert spot["EnableManagedSpotTraining"] is True
    assert (spot["TrainingTimeInSeconds"], spot["BillableTimeInSeconds"]) == (1000, 400)
    assert (spot70["TrainingTimeInSeconds"], spot70["BillableTimeInSeconds"]) == (301, 90)
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 172800}
    assert tuning["TrainingJobDefinition"]["EnableManagedSpotTraining"] is True


def test_instance_groups_replace_instance_type_and_count(env: Env) -> None:
    # Given
    create_pipeline(env)
    groups = (("ml.p3.2xlarge", 2), ("ml.c5.xlarge", 4))
    steps = [
        StepSpec("Train", "Training", 60, instance_groups=groups, volume_gb=50),
        StepSpec("Tune", "Tuning", 60, instance_groups=groups),
    ]
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", steps)
    arn = start(env, OWNER, "churn-train")
    env.tick(120)
    listed = job_steps(env, arn)
    # When
    training = env.sm(OWNER).describe_training_job(TrainingJobName=job_name(listed["Train"], "TrainingJob"))
    tuning = env.sm(OWNER).describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=job_name(listed["Tune"], "TuningJob")
    )
    # Then
    assert training["ResourceConfig"] == {
        "VolumeSizeInGB": 50,
        "InstanceGroups": [
            {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 2, "InstanceGroupName": "instance_group_1"},
            {"InstanceType": "ml.c5.xlarge", "InstanceCount": 4, "InstanceGroupName": "instance_group_2"},
        ],
    }
    assert [g["InstanceCount"] for g in tuning["TrainingJobDefinition"]["ResourceConfig"]["InstanceGroups"]] == [2, 4]
    (execution,) = env.sagemaker.snapshot()["executions"]
    train_snapshot = execution["steps"][0]
    assert (train_snapshot["instanceType"], train_snapshot["instanceCount"]) == (None, 6)
    assert train_snapshot["instanceGroups"] == [["ml.p3.2xlarge", 2], ["ml.c5.xlarge", 4]]


def test_step_spec_rejects_job_options_that_do_not_apply() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="Training and Tuning"):
        StepSpec("Prep", "Processing", spot=True)
    with pytest.raises(ValueError, match="Training and Tuning"):
        StepSpec("Prep", "Transform", instance_groups=(("ml.m5.xlarge", 1),))
    with pytest.raises(ValueError, match="spot_saving"):
        StepSpec("Train", "Training", spot=True, spot_saving=1.0)
    with pytest.raises(ValueError, match="cache_hit"):
        StepSpec("Train", "Training", outcome="Failed", cache_hit=True)
    with pytest.raises(ValueError, match="volume_gb"):
        StepSpec("Train", "Training", volume_gb=0)
    assert StepSpec("T", "Training", instance_groups=[["ml.m5.xlarge", 2]]).instance_groups == (  # type: ignore[arg-type]
        ("ml.m5.xlarge", 2),
    )


def test_failed_and_stopped_steps_leave_failed_and_stopped_jobs(env: Env) -> None:
    # Given: a failing training step, retried; then a processing step stopped while it runs
    create_pipeline(env)
    steps = [StepSpec("TrainModel", "Training", 60, outcome="Failed"), StepSpec("Evaluate", "Processing", 600)]
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", steps)
    arn = start(env, OWNER, "churn-train")
    env.tick(100)
    failed = job_name(job_steps(env, arn)["TrainModel"], "TrainingJob")
    sm = env.sm(OWNER)
    # When
    failed_job = sm.describe_training_job(TrainingJobName=failed)
    sm.retry_pipeline_execution(PipelineExecutionArn=arn)
    retried = job_name(job_steps(env, arn)["TrainModel"], "TrainingJob")
    retried_job = sm.describe_training_job(TrainingJobName=retried)
    # Then
    assert (failed_job["TrainingJobStatus"], failed_job["SecondaryStatus"]) == ("Failed", "Failed")
    assert failed_job["FailureReason"].startswith("AlgorithmError:")
    assert (failed_job["TrainingEndTime"], failed_job["BillableTimeInSeconds"]) == (START + timedelta(seconds=60), 60)
    assert retried != failed
    assert retried_job["TrainingJobStatus"] == "InProgress"
    assert sm.describe_training_job(TrainingJobName=failed)["TrainingJobStatus"] == "Failed"


def test_stopped_step_leaves_a_stopping_then_stopped_job(env: Env) -> None:
    # Given
    create_pipeline(env)
    arn = start(env, OWNER, "churn-train")  # the default Processing step, 300 s
    env.tick(100)
    name = job_name(job_steps(env, arn)["Process"], "ProcessingJob")
    sm = env.sm(OWNER)
    # When
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    stopping = sm.describe_processing_job(ProcessingJobName=name)
    env.tick(5)
    stopped = sm.describe_processing_job(ProcessingJobName=name)
    # Then
    assert stopping["ProcessingJobStatus"] == "Stopping"
    assert "ProcessingEndTime" not in stopping
    assert stopped["ProcessingJobStatus"] == "Stopped"
    assert stopped["ProcessingEndTime"] == START + timedelta(seconds=105)


def test_check_steps_run_describable_processing_jobs(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", [StepSpec("DataQuality", "QualityCheck", 30)])
    arn = start(env, OWNER, "churn-train")
    check_arn = job_steps(env, arn)["DataQuality"]["Metadata"]["QualityCheck"]["CheckJobArn"]
    # When
    described = env.sm(OWNER).describe_processing_job(ProcessingJobName=check_arn.rsplit("/", 1)[1])
    # Then
    assert described["ProcessingJobArn"] == check_arn
    assert "sagemaker-model-monitor-analyzer" in described["AppSpecification"]["ImageUri"]


def test_cache_hit_step_runs_no_job_and_points_at_the_earlier_execution(env: Env) -> None:
    # Given: a first execution runs the training job
    create_pipeline(env)
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", TWO_STEPS)
    first = start(env, OWNER, "churn-train")
    env.tick(720)
    first_training = job_steps(env, first)["TrainModel"]
    cached = [TWO_STEPS[0], StepSpec("TrainModel", "Training", 600, "ml.p3.2xlarge", 2, cache_hit=True)]
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", cached)
    second = start(env, OWNER, "churn-train")
    env.events.clear()
    # When
    env.tick(120)
    # Then: served from cache at once when Preprocess ends, the execution ends with it
    train = job_steps(env, second)["TrainModel"]
    assert train["CacheHitResult"] == {"SourcePipelineExecutionArn": first}
    assert (train["StepStatus"], train["AttemptCount"]) == ("Succeeded", 1)
    assert train["StartTime"] == train["EndTime"] == START + timedelta(seconds=840)
    assert train["Metadata"] == first_training["Metadata"]  # the earlier job: no new one
    assert "CacheHitResult" not in job_steps(env, second)["Preprocess"]
    (event,) = [e["detail"] for e in env.of(STEP_CHANGE) if e["detail"]["stepName"] == "TrainModel"]
    assert event["currentStepStatus"] == "Succeeded"
    assert event["cacheHitResult"] == {"sourcePipelineExecutionArn": first}
    assert set(event) == STEP_KEYS | {"stepEndTime", "cacheHitResult"}
    assert statuses(env) == ["Succeeded"]
    described = env.sm(OWNER).describe_training_job(TrainingJobName=job_name(train, "TrainingJob"))
    assert described["CreationTime"] == START + timedelta(seconds=120)  # the first execution's job
    steps = env.sagemaker.snapshot()["executions"][1]["steps"]
    assert [s["cacheHitSource"] for s in steps] == [None, first]


def test_cache_hit_without_an_earlier_execution_points_at_itself(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", [StepSpec("Prep", "Processing", 300, cache_hit=True)])
    # When
    arn = start(env, OWNER, "churn-train")
    # Then
    (step,) = env.sm(OWNER).list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert step["CacheHitResult"] == {"SourcePipelineExecutionArn": arn}
    assert (step["StepStatus"], step["Metadata"]) == ("Succeeded", {})
    assert env.sm(OWNER).describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == (
        "Succeeded"
    )
    assert step_statuses(env) == [("Prep", "Succeeded")]


@pytest.mark.parametrize(
    ("method", "member"),
    [
        ("describe_training_job", "TrainingJobName"),
        ("describe_processing_job", "ProcessingJobName"),
        ("describe_transform_job", "TransformJobName"),
        ("describe_hyper_parameter_tuning_job", "HyperParameterTuningJobName"),
    ],
)
def test_unknown_job_is_resource_not_found(env: Env, method: str, member: str) -> None:
    # Given
    create_pipeline(env)
    start(env, OWNER, "churn-train")
    # When
    with pytest.raises(ClientError) as exc:
        getattr(env.client(OWNER), method)(**{member: "pipelines-nosuchjob"})
    # Then
    assert error_of(exc)[:2] == ("ResourceNotFound", 400)


def test_unknown_job_code_can_be_validation_exception(env: Env) -> None:
    # Given
    env.sagemaker.job_not_found_code = "ValidationException"
    # When
    with pytest.raises(ClientError) as exc:
        env.client(OWNER).describe_training_job(TrainingJobName="pipelines-nosuchjob")
    # Then
    assert error_of(exc) == ("ValidationException", 400, "Requested resource not found.")
    env.sagemaker.reset()
    assert env.sagemaker.job_not_found_code == "ResourceNotFound"


def test_invalid_job_name_is_a_validation_exception(env: Env) -> None:
    # Given: a client that skips botocore's own checks
    raw = env.client(OWNER, "sagemaker-raw")
    # When
    with pytest.raises(ClientError) as exc:
        raw.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="x" * 33)
    # Then
    code, _, message = error_of(exc)
    assert code == "ValidationException"
    assert "HyperParameterTuningJobName" in message


def test_consumer_cannot_describe_the_owner_jobs(env: Env) -> None:
    # Given: the consumer started the execution; its job runs in the owner's account
    pipeline_arn = shared_pipeline(env, steps=TWO_STEPS)
    arn = start(env, CONSUMER, pipeline_arn)
    env.tick(200)
    name = job_name(job_steps(env, arn, CONSUMER)["TrainModel"], "TrainingJob")
    # When
    with pytest.raises(ClientError) as exc:
        env.client(CONSUMER).describe_training_job(TrainingJobName=name)
    # Then
    assert error_of(exc)[:2] == ("ResourceNotFound", 400)
    with pytest.raises(ClientError) as stranger:
        env.client(STRANGER).describe_training_job(TrainingJobName=name)
    assert error_of(stranger)[0] == "ResourceNotFound"
    assert env.sm(OWNER).describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress"


def test_describe_job_operations_are_claimed_and_other_job_operations_left_to_moto(env: Env) -> None:
    # Given
    def environ(operation: str) -> dict[str, str]:
        return {"HTTP_X_AMZ_TARGET": f"SageMaker.{operation}"}

    # When
    claimed = {
        op: env.sagemaker.handles(environ(op))
        for op in (
            "DescribeTrainingJob",
            "DescribeProcessingJob",
            "DescribeTransformJob",
            "DescribeHyperParameterTuningJob",
            "ListTrainingJobs",
            "CreateTrainingJob",
            "DescribeAutoMLJob",
        )
    }
    listed = env.client(OWNER).list_training_jobs()
    # Then
    assert claimed == {
        "DescribeTrainingJob": True,
        "DescribeProcessingJob": True,
        "DescribeTransformJob": True,
        "DescribeHyperParameterTuningJob": True,
        "ListTrainingJobs": False,
        "CreateTrainingJob": False,
        "DescribeAutoMLJob": False,
    }
    assert "TrainingJobSummaries" in listed
    assert env.responses == []


JOB_KINDS = [
    ("Training", "TrainingJob", "describe_training_job", "TrainingJobName"),
    ("Processing", "ProcessingJob", "describe_processing_job", "ProcessingJobName"),
    ("Transform", "TransformJob", "describe_transform_job", "TransformJobName"),
    ("Tuning", "TuningJob", "describe_hyper_parameter_tuning_job", "HyperParameterTuningJobName"),
]


@pytest.mark.parametrize(("step_type", "member", "method_name", "name_member"), JOB_KINDS)
def test_every_job_response_validates_in_every_status(
    env: Env, step_type: str, member: str, method_name: str, name_member: str
) -> None:
    # Given: one execution that succeeds, one that fails, one that is stopped (spot where it applies)
    create_pipeline(env)
    spot = step_type in ("Training", "Tuning")
    specs = {
        "ok": StepSpec("Job", step_type, 60, instance_type=None, spot=spot),
        "fail": StepSpec("Job", step_type, 60, outcome="Failed"),
        "stop": StepSpec("Job", step_type, 60),
    }
    arns = {}
    for key, spec in specs.items():
        env.sagemaker.define_steps(OWNER, REGION, "churn-train", [spec])
        arns[key] = start(env, OWNER, "churn-train")
    names = {key: job_name(job_steps(env, arn)["Job"], member) for key, arn in arns.items()}
    method = getattr(env.sm(OWNER), method_name)  # Checked: every parsed response is validated
    seen = [method(**{name_member: names["ok"]})]  # InProgress
    env.sm(OWNER).stop_pipeline_execution(PipelineExecutionArn=arns["stop"])
    seen.append(method(**{name_member: names["stop"]}))  # Stopping
    # When
    env.tick(60)
    seen += [method(**{name_member: names[key]}) for key in ("ok", "fail", "stop")]
    # Then: each response the emulator built validates against the output shape (so does each parsed one)
    status_key = "HyperParameterTuningJobStatus" if step_type == "Tuning" else f"{step_type}JobStatus"
    assert [r[status_key] for r in seen] == ["InProgress", "Stopping", "Completed", "Failed", "Stopped"]
    operation = env.client(OWNER).meta.method_to_api_mapping[method_name]
    built = [response for op, response in env.responses if op == operation]
    assert len(built) == 5
    for response in built:
        assert_valid_output(operation, response)


# ---------------------------------------------------------------------------------------------- housekeeping


def test_concurrent_starts_with_one_token_make_one_execution(env: Env) -> None:
    # Given
    create_pipeline(env)
    token = "concurrent-token-00000000000000000"
    results: list[str] = []

    def run() -> None:
        results.append(start(env, OWNER, "churn-train", ClientRequestToken=token))

    threads = [threading.Thread(target=run) for _ in range(6)]
    # When
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then
    assert len(results) == 6
    assert len(set(results)) == 1
    assert statuses(env) == ["Executing"]


def test_snapshot_is_json_and_reset_forgets_everything(env: Env) -> None:
    # Given
    create_pipeline(env)
    env.sagemaker.define_steps(OWNER, REGION, "churn-train", TWO_STEPS)
    env.sagemaker.owner_cloudtrail_copy = True
    start(env, OWNER, "churn-train")
    env.tick(60)
    snapshot = json.loads(json.dumps(env.sagemaker.snapshot()))
    # When
    env.sagemaker.reset()
    # Then
    (execution,) = snapshot["executions"]
    assert [(s["name"], s["status"], s["instanceType"], s["instanceCount"]) for s in execution["steps"]] == [
        ("Preprocess", "Executing", "ml.m5.xlarge", 1),
        ("TrainModel", None, "ml.p3.2xlarge", 2),
    ]
    assert env.sagemaker.snapshot()["executions"] == []
    assert env.sagemaker.owner_cloudtrail_copy is False
