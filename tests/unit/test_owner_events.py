"""Owner-side input contracts (pipeshare.models.owner_events), on the fixtures in events/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from pipeshare.models.owner_events import (
    OwnerEvent,
    OwnerShareStateChange,
    PipelineApiCallEvent,
    PipelineExecutionStatusEvent,
    PipelineStepStatusEvent,
)
from pipeshare.models.types import KNOWN_EXECUTION_STATUSES as KNOWN
from pipeshare.models.types import PipelineAction, arn_account, pipeline_of
from pipeshare.validation import parse_or_reject
from tests.conftest import load_event

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER = "111111111111", "222222222222"
PIPELINE = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/p4jn9xou8a8s"
ALICE = "arn:aws:sts::222222222222:assumed-role/DataScientist/alice"

FIXTURE_MODELS = {
    "sagemaker_execution_status_executing": PipelineExecutionStatusEvent,
    "sagemaker_execution_status_succeeded": PipelineExecutionStatusEvent,
    "sagemaker_step_status_succeeded": PipelineStepStatusEvent,
    "cloudtrail_start_pipeline_execution_consumer": PipelineApiCallEvent,
    "cloudtrail_start_pipeline_execution_owner_copy": PipelineApiCallEvent,
    "cloudtrail_stop_pipeline_execution_consumer": PipelineApiCallEvent,
    "cloudtrail_retry_pipeline_execution_consumer": PipelineApiCallEvent,
    "cloudtrail_start_pipeline_execution_denied": PipelineApiCallEvent,
    "cloudtrail_start_pipeline_execution_owner": PipelineApiCallEvent,
    "ram_association_failed": OwnerShareStateChange,
}


def call(name: str, **overrides: Any) -> PipelineApiCallEvent:
    return PipelineApiCallEvent.model_validate(load_event(name, **overrides))


def call_with_detail(name: str, **detail: Any) -> dict[str, Any]:
    """A CloudTrail fixture with detail keys replaced (None deletes the key)."""
    event = load_event(name)
    for key, value in detail.items():
        if value is None:
            event["detail"].pop(key, None)
        else:
            event["detail"][key] = value
    return event


# ---------------------------------------------------------------------------------------------- dispatch by type


@pytest.mark.parametrize(("fixture", "model"), FIXTURE_MODELS.items(), ids=list(FIXTURE_MODELS))
def test_owner_event_dispatches_each_fixture_to_its_contract(fixture: str, model: type) -> None:
    # Given an owner-side fixture
    event = load_event(fixture)

    # When it is validated as any owner event
    parsed = OwnerEvent.model_validate({"event": event}).event

    # Then the contract is chosen by detail-type
    assert type(parsed) is model
    assert parsed.id == event["id"]


def test_owner_event_refuses_an_unknown_detail_type() -> None:
    # Given a status event relabelled with a detail-type the owner does not consume
    event = load_event("sagemaker_execution_status_executing", detail_type="SageMaker Training Job State Change")

    # When / Then
    with pytest.raises(ValidationError, match=r"detail-type|tag"):
        OwnerEvent.model_validate({"event": event})


def test_parse_or_reject_accepts_an_owner_event_and_refuses_a_spoiled_one() -> None:
    # Given a valid CloudTrail fixture and the same with a security-relevant field spoiled (the receiving account)
    good = load_event("cloudtrail_start_pipeline_execution_consumer")
    bad = load_event("cloudtrail_start_pipeline_execution_consumer", account="22222222222x")

    # When
    parsed = parse_or_reject(good, OwnerEvent, wrap="event")
    refused = parse_or_reject(bad, OwnerEvent, wrap="event")

    # Then
    assert parsed is not None
    assert isinstance(parsed.event, PipelineApiCallEvent)
    assert refused is None


# -------------------------------------------------------------------------------------------------- status events


def test_status_event_executing_names_execution_pipeline_and_owner() -> None:
    # Given the Executing status event
    # When
    event = PipelineExecutionStatusEvent.model_validate(load_event("sagemaker_execution_status_executing"))

    # Then
    assert (event.execution_arn(), event.pipeline_arn(), event.owner_account()) == (EXECUTION, PIPELINE, OWNER)
    assert event.status == "Executing"
    assert not event.terminal
    assert event.detail.previous_status is None
    assert event.detail.execution_end_time is None


def test_status_event_succeeded_is_terminal_with_its_times() -> None:
    # Given the Succeeded status event
    # When
    event = PipelineExecutionStatusEvent.model_validate(load_event("sagemaker_execution_status_succeeded"))

    # Then
    assert event.terminal
    assert (event.detail.previous_status, event.status) == ("Executing", "Succeeded")
    assert event.detail.execution_start_time == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert event.detail.execution_end_time == datetime(2024, 5, 1, 9, 42, 10, tzinfo=UTC)


def test_status_event_tolerates_unknown_detail_keys() -> None:
    # Given a status event whose detail has a key AWS may add later
    event = load_event("sagemaker_execution_status_executing")
    event["detail"]["newAwsField"] = {"x": 1}

    # When
    parsed = PipelineExecutionStatusEvent.model_validate(event)

    # Then
    assert parsed.detail.model_extra == {"newAwsField": {"x": 1}}


@pytest.mark.parametrize(
    ("detail", "problem"),
    [
        ({"currentPipelineExecutionStatus": "Paused'; DROP"}, "currentPipelineExecutionStatus"),
        ({"pipelineArn": "arn:aws:sagemaker:us-east-1:111111111111:pipeline/other"}, "not an execution of"),
        ({"pipelineExecutionArn": "arn:aws:sagemaker:us-east-1:111111111111:training-job/x"}, "pipelineExecutionArn"),
    ],
    ids=["not-a-status-word", "execution-of-another-pipeline", "not-an-execution-arn"],
)
def test_status_event_refuses_a_spoiled_detail(detail: dict[str, Any], problem: str) -> None:
    # Given the Executing event with one detail field spoiled
    event = load_event("sagemaker_execution_status_executing")
    event["detail"].update(detail)

    # When / Then
    with pytest.raises(ValidationError, match=problem):
        PipelineExecutionStatusEvent.model_validate(event)


def test_status_event_ignores_a_top_level_key_eventbridge_may_add() -> None:
    # Given a replayed status event (EventBridge adds replay-name to replayed events)
    event = load_event("sagemaker_execution_status_executing", **{"replay-name": "owner-archive-replay"})

    # When
    parsed = PipelineExecutionStatusEvent.model_validate(event)

    # Then it is parsed for what decisions read
    assert parsed.execution_arn() == EXECUTION


@pytest.mark.parametrize(
    ("current", "previous"),
    [("Paused", None), ("Executing", "Starting"), ("Executing", "Pending"), ("Succeeded", "Executing")],
)
def test_status_event_keeps_statuses_outside_the_api_enum_as_text(current: str, previous: str | None) -> None:
    # Given statuses SageMaker may send but the API enum does not list (the step enum has Starting)
    event = load_event("sagemaker_execution_status_executing")
    event["detail"]["currentPipelineExecutionStatus"] = current
    event["detail"]["previousPipelineExecutionStatus"] = previous

    # When
    parsed = PipelineExecutionStatusEvent.model_validate(event)

    # Then the event is kept, and only the values outside the enum are reported as unknown
    assert (parsed.status, parsed.detail.previous_status) == (current, previous)
    expected = {
        k: v
        for k, v in [("currentPipelineExecutionStatus", current), ("previousPipelineExecutionStatus", previous)]
        if v is not None and v not in KNOWN
    }
    assert parsed.unknown_values() == expected


def test_status_event_accepts_mixed_case_pipeline_names() -> None:
    # Given the docs' example casing (myPipeline-123), in both ARNs, one of them lower-cased
    event = load_event("sagemaker_execution_status_executing")
    event["detail"]["pipelineArn"] = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/myPipeline-123"
    event["detail"]["pipelineExecutionArn"] = (
        "arn:aws:sagemaker:us-east-1:111111111111:pipeline/mypipeline-123/execution/p4jn9xou8a8s"
    )

    # When
    parsed = PipelineExecutionStatusEvent.model_validate(event)

    # Then the two ARNs are recognised as the same pipeline
    assert parsed.pipeline_arn().endswith("myPipeline-123")


# ---------------------------------------------------------------------------------------------------- step events


def test_step_event_names_its_jobs_and_status() -> None:
    # Given the Succeeded step event
    # When
    event = PipelineStepStatusEvent.model_validate(load_event("sagemaker_step_status_succeeded"))

    # Then
    assert event.execution_arn() == EXECUTION
    assert (event.detail.step_name, event.detail.step_type, event.detail.current_status) == (
        "Preprocess",
        "Processing",
        "Succeeded",
    )
    job = "arn:aws:sagemaker:us-east-1:111111111111:processing-job/pipelines-p4jn9xou8a8s-preprocess-def456"
    assert event.job_arns() == {"processingJob": job}
    assert not event.cache_hit


def test_step_event_reports_a_cache_hit_and_skips_metadata_without_arn() -> None:
    # Given a step served from cache, with a condition step's metadata (no ARN)
    event = load_event("sagemaker_step_status_succeeded")
    event["detail"]["cacheHitResult"] = {"sourcePipelineExecutionArn": f"{PIPELINE}/execution/earlier0001"}
    event["detail"]["metadata"] = {"condition": {"outcome": "True"}}

    # When
    parsed = PipelineStepStatusEvent.model_validate(event)

    # Then
    assert parsed.cache_hit
    assert parsed.job_arns() == {}


# ----------------------------------------------------------------------------------------------- CloudTrail calls


def test_consumer_start_names_caller_principal_pipeline_and_execution() -> None:
    # Given the consumer's own CloudTrail record of its start
    # When
    event = call("cloudtrail_start_pipeline_execution_consumer")

    # Then
    assert event.action is PipelineAction.START
    assert event.succeeded
    assert (event.caller_account(), event.principal_arn()) == (CONSUMER, ALICE)
    assert (event.execution_arn(), event.pipeline_arn(), event.pipeline_owner_account()) == (EXECUTION, PIPELINE, OWNER)
    assert event.detail.recipient_account_id == CONSUMER
    assert not event.is_cross_account_copy
    assert event.detail.shared_event_id is None


def test_owner_copy_has_an_account_identity_and_no_principal_arn() -> None:
    # Given the owner's copy of the consumer's start ([U] for SageMaker)
    # When
    event = call("cloudtrail_start_pipeline_execution_owner_copy")

    # Then the caller is the consumer, known by account and principal id only
    assert event.detail.user_identity.type == "AWSAccount"
    assert event.caller_account() == CONSUMER
    assert event.principal_arn() is None
    assert event.principal_id() == "AROAEXAMPLEID:alice"
    assert event.detail.recipient_account_id == OWNER
    assert event.is_cross_account_copy
    assert event.detail.shared_event_id == "a1b2c3d4-5678-90ab-cdef-EXAMPLE33333"
    assert event.execution_arn() == EXECUTION


@pytest.mark.parametrize(
    ("fixture", "action"),
    [
        ("cloudtrail_stop_pipeline_execution_consumer", PipelineAction.STOP),
        ("cloudtrail_retry_pipeline_execution_consumer", PipelineAction.RETRY),
    ],
)
def test_stop_and_retry_name_the_execution_and_its_pipeline(fixture: str, action: PipelineAction) -> None:
    # Given a consumer's stop or retry (no pipelineName in the request)
    # When
    event = call(fixture)

    # Then the pipeline comes from the execution ARN
    assert event.action is action
    assert event.detail.request_parameters is not None
    assert event.detail.request_parameters.pipeline_name is None
    assert (event.execution_arn(), event.pipeline_arn(), event.pipeline_owner_account()) == (EXECUTION, PIPELINE, OWNER)


def test_stop_without_response_takes_the_execution_from_the_request() -> None:
    # Given a stop record without responseElements
    event = call_with_detail("cloudtrail_stop_pipeline_execution_consumer", responseElements=None)

    # When
    parsed = PipelineApiCallEvent.model_validate(event)

    # Then
    assert parsed.execution_arn() == EXECUTION


def test_denied_start_is_valid_but_not_a_success_and_names_no_execution() -> None:
    # Given a refused start (errorCode AccessDenied, responseElements null)
    # When
    event = call("cloudtrail_start_pipeline_execution_denied")

    # Then
    assert not event.succeeded
    assert event.detail.error_code == "AccessDenied"
    assert event.execution_arn() is None
    assert event.pipeline_arn() == PIPELINE


def test_owner_start_by_bare_name_resolves_in_the_callers_account() -> None:
    # Given the owner's own start, naming its pipeline without an ARN
    # When
    event = call("cloudtrail_start_pipeline_execution_owner")

    # Then
    assert event.detail.request_parameters is not None
    assert event.detail.request_parameters.pipeline_name == "churn-train"
    assert (event.caller_account(), event.pipeline_arn()) == (OWNER, PIPELINE)
    assert event.principal_arn() == "arn:aws:sts::111111111111:assumed-role/MLOpsDeployer/deploy-bot"


def test_consumer_start_by_bare_name_is_a_pipeline_of_the_consumer() -> None:
    # Given a consumer start of its own pipeline called churn-train (bare name, execution in its own account)
    event = load_event("cloudtrail_start_pipeline_execution_denied")
    event["detail"]["requestParameters"]["pipelineName"] = "churn-train"

    # When
    parsed = PipelineApiCallEvent.model_validate(event)

    # Then it names the consumer's pipeline, not the owner's
    assert parsed.pipeline_arn() == "arn:aws:sagemaker:us-east-1:222222222222:pipeline/churn-train"
    assert parsed.pipeline_owner_account() == CONSUMER


def test_cloudtrail_call_tolerates_unknown_detail_keys() -> None:
    # Given a CloudTrail record with an extra detail key and an extra identity key
    event = call_with_detail("cloudtrail_start_pipeline_execution_consumer", tlsDetails={"tlsVersion": "TLSv1.3"})
    event["detail"]["userIdentity"]["onBehalfOf"] = {"userId": "x"}

    # When
    parsed = PipelineApiCallEvent.model_validate(event)

    # Then
    assert parsed.detail.model_extra is not None
    assert parsed.detail.model_extra["tlsDetails"] == {"tlsVersion": "TLSv1.3"}
    assert parsed.detail.user_identity.model_extra is not None
    assert parsed.detail.user_identity.model_extra["onBehalfOf"] == {"userId": "x"}


@pytest.mark.parametrize(
    ("detail", "problem"),
    [
        ({"eventName": "CreatePipeline"}, "eventName"),
        ({"eventSource": "ram.amazonaws.com"}, "eventSource"),
        ({"responseElements": {"pipelineExecutionArn": f"{PIPELINE}/execution/otherexec001"}}, "different executions"),
        ({"userIdentity": {"type": "AssumedRole", "principalId": "AROAX:bob", "accountId": CONSUMER}}, "arn"),
        ({"userIdentity": {"type": "AWSAccount", "principalId": "AROAX:bob"}}, "accountId"),
        ({"recipientAccountId": None}, "recipientAccountId"),
        ({"eventID": None}, "eventID"),
    ],
    ids=[
        "other-event-name",
        "other-event-source",
        "request-response-mismatch",
        "assumed-role-without-arn",
        "identity-without-account",
        "no-recipient",
        "no-event-id",
    ],
)
def test_stop_call_refuses_a_spoiled_detail(detail: dict[str, Any], problem: str) -> None:
    # Given the consumer's stop record with one detail field spoiled or removed
    event = call_with_detail("cloudtrail_stop_pipeline_execution_consumer", **detail)

    # When / Then
    with pytest.raises(ValidationError, match=problem):
        PipelineApiCallEvent.model_validate(event)


def test_successful_start_must_name_its_execution() -> None:
    # Given a successful start whose response names no execution
    event = call_with_detail("cloudtrail_start_pipeline_execution_consumer", responseElements={})

    # When / Then
    with pytest.raises(ValidationError, match="must name its pipelineExecutionArn"):
        PipelineApiCallEvent.model_validate(event)


def test_successful_stop_must_carry_the_execution_in_its_request() -> None:
    # Given a successful stop whose request names no execution
    event = call_with_detail("cloudtrail_stop_pipeline_execution_consumer", requestParameters={})

    # When / Then
    with pytest.raises(ValidationError, match=r"must carry requestParameters\.pipelineExecutionArn"):
        PipelineApiCallEvent.model_validate(event)


def test_start_refuses_a_pipeline_name_that_is_not_the_executions_pipeline() -> None:
    # Given a start naming one pipeline and returning an execution of another
    event = load_event("cloudtrail_start_pipeline_execution_consumer")
    event["detail"]["requestParameters"]["pipelineName"] = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/other"

    # When / Then
    with pytest.raises(ValidationError, match="different pipelines"):
        PipelineApiCallEvent.model_validate(event)


def test_start_refuses_an_invalid_pipeline_name() -> None:
    # Given a start whose pipelineName is neither a name nor a pipeline ARN
    event = load_event("cloudtrail_start_pipeline_execution_denied")
    event["detail"]["requestParameters"]["pipelineName"] = "churn train; rm -rf"

    # When / Then
    with pytest.raises(ValidationError, match="pipelineName"):
        PipelineApiCallEvent.model_validate(event)


# ------------------------------------------------------------------------------------------------- RAM and helpers


def test_owner_ram_event_names_its_shares() -> None:
    # Given the RAM association-failed event, with an invitation ARN added
    invitation = "arn:aws:ram:us-east-1:111111111111:resource-share-invitation/3b3bc051-fbf6-4336-8377-06c559dfee49"
    event = load_event("ram_association_failed")
    event["resources"].append(invitation)

    # When
    parsed = OwnerShareStateChange.model_validate(event)

    # Then
    assert parsed.share_arns() == [
        "arn:aws:ram:us-east-1:111111111111:resource-share/c4506c70-df75-4e6c-ac30-42ca03295a37"
    ]
    assert parsed.detail.status == "failed"


def test_arn_helpers_read_owner_account_and_pipeline() -> None:
    # Given / When / Then
    assert arn_account(EXECUTION) == OWNER
    assert pipeline_of(EXECUTION) == PIPELINE
    with pytest.raises(ValueError, match="not an ARN"):
        arn_account("churn-train")
    with pytest.raises(ValueError, match="not a pipeline execution ARN"):
        pipeline_of(PIPELINE)
