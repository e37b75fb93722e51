"""pipeshare.logic.attribution: observations, merge (a join), grant inference, due alerts and their message."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import reduce
from typing import Any

import pytest
from pydantic import ValidationError

from pipeshare.logic.attribution import (
    SCHEMA,
    SUBJECT_MAX,
    alert_message,
    alerts_due,
    infer,
    merge,
    observe_call,
    observe_status,
)
from pipeshare.models.executions import (
    ActionObservation,
    AlertKey,
    AttributionSource,
    ExecutionRecord,
    InferenceObservation,
    Observation,
    StatusObservation,
)
from pipeshare.models.owner import Grant
from pipeshare.models.owner_events import PipelineApiCallEvent, PipelineExecutionStatusEvent
from pipeshare.models.types import PipelineAction
from tests.conftest import load_event

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
PIPELINE = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/p4jn9xou8a8s"
ALICE = "arn:aws:sts::222222222222:assumed-role/DataScientist/alice"
SHARE = "arn:aws:ram:us-east-1:111111111111:resource-share/c4506c70-df75-4e6c-ac30-42ca03295a37"
ALLOW = "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution"
READ_ONLY = "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"
OU = "arn:aws:organizations::999999999999:ou/o-exampleorgid/ou-ab12-cd34ef56"
START, STOP, RETRY = PipelineAction.START, PipelineAction.STOP, PipelineAction.RETRY


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2024, 5, 1, hh, mm, ss, tzinfo=UTC)


def status(fixture: str) -> StatusObservation:
    return observe_status(PipelineExecutionStatusEvent.model_validate(load_event(fixture)))


def call(fixture: str, *, owner: str = OWNER, **overrides: Any) -> ActionObservation | None:
    return observe_call(PipelineApiCallEvent.model_validate(load_event(fixture, **overrides)), owner_account=owner)


def action(fixture: str) -> ActionObservation:
    observation = call(fixture)
    assert observation is not None
    return observation


def executing() -> StatusObservation:
    return status("sagemaker_execution_status_executing")


def succeeded() -> StatusObservation:
    return status("sagemaker_execution_status_succeeded")


def status_at(value: str, time: datetime, previous: str | None = None) -> StatusObservation:
    return StatusObservation(execution_arn=EXECUTION, pipeline_arn=PIPELINE, status=value, previous=previous, time=time)


def executing_again() -> StatusObservation:
    """A repeated Executing event, delivered later (SageMaker may send more than one event per change)."""
    return executing().model_copy(update={"time": at(9, 31), "started_at": None})


def forwarded_start() -> ActionObservation:
    return action("cloudtrail_start_pipeline_execution_consumer")


def owner_copy_start() -> ActionObservation:
    return action("cloudtrail_start_pipeline_execution_owner_copy")


def owner_start() -> ActionObservation:
    return action("cloudtrail_start_pipeline_execution_owner")


def consumer_call(act: PipelineAction, account: str, time: datetime, principal: str | None = None) -> ActionObservation:
    return ActionObservation(
        execution_arn=EXECUTION,
        action=act,
        source=AttributionSource.FORWARDED,
        account=account,
        principal=principal or f"arn:aws:sts::{account}:assumed-role/DataScientist/user",
        time=time,
    )


def grant(account: str = CONSUMER, **overrides: Any) -> Grant:
    """The inventory's grant (pipeshare.models.owner.Grant): allow-execution, ASSOCIATED, on churn-train."""
    data = {
        "pipeline_arn": PIPELINE,
        "consumer": account,
        "association_status": "ASSOCIATED",
        "share_arn": SHARE,
        "share_name": "churn-pipeline-share",
        "permission_arn": ALLOW,
        "permission_name": "AWSRAMPermissionSageMakerPipelineAllowExecution",
        **overrides,
    }
    return Grant.model_validate(data)


def inferred(account: str = CONSUMER) -> InferenceObservation:
    return infer(PIPELINE, [grant(account)], OWNER, execution_arn=EXECUTION, at=at(9, 30, 2))


def ambiguous(*accounts: str) -> InferenceObservation:
    grants = [grant(a) for a in accounts or (OTHER, CONSUMER)]
    return infer(PIPELINE, grants, OWNER, execution_arn=EXECUTION, at=at(9, 30, 2))


def fold(observations: Sequence[Observation], record: ExecutionRecord | None = None) -> ExecutionRecord:
    result = reduce(merge, observations, record)
    assert result is not None
    return result


# ---------------------------------------------------------------------------------------- events -> observations


def test_observe_status_times_executing_at_the_event_and_keeps_the_reported_start() -> None:
    # Given / When
    observation = executing()

    # Then
    assert (observation.execution_arn, observation.pipeline_arn, observation.status) == (
        EXECUTION,
        PIPELINE,
        "Executing",
    )
    assert (observation.time, observation.started_at) == (at(9, 30, 2), at(9, 30))


def test_observe_status_times_a_terminal_status_at_the_execution_end() -> None:
    # Given / When
    observation = succeeded()

    # Then executionEndTime (09:42:10), not the event time (09:42:11)
    assert (observation.status, observation.time) == ("Succeeded", at(9, 42, 10))


def test_observe_call_attributes_the_consumers_own_record_as_forwarded() -> None:
    # Given / When
    observation = forwarded_start()

    # Then
    assert (observation.source, observation.action, observation.account) == (
        AttributionSource.FORWARDED,
        START,
        CONSUMER,
    )
    assert (observation.principal, observation.principal_id) == (ALICE, "AROAEXAMPLEID:alice")
    assert (observation.execution_arn, observation.time) == (EXECUTION, at(9, 30))
    assert observation.event_id == "a1b2c3d4-5678-90ab-cdef-EXAMPLE44444"


def test_observe_call_attributes_the_owner_copy_without_principal_arn() -> None:
    # Given / When
    observation = owner_copy_start()

    # Then
    assert (observation.source, observation.account) == (AttributionSource.OWNER_COPY, CONSUMER)
    assert (observation.principal, observation.principal_id) == (None, "AROAEXAMPLEID:alice")


def test_observe_call_attributes_the_owners_own_start_to_the_owner() -> None:
    # Given / When
    observation = owner_start()

    # Then
    assert (observation.source, observation.account) == (AttributionSource.OWNER, OWNER)


@pytest.mark.parametrize(
    ("fixture", "act"),
    [("cloudtrail_stop_pipeline_execution_consumer", STOP), ("cloudtrail_retry_pipeline_execution_consumer", RETRY)],
)
def test_observe_call_reads_stop_and_retry(fixture: str, act: PipelineAction) -> None:
    # Given / When
    observation = action(fixture)

    # Then
    assert (observation.action, observation.source, observation.account) == (act, AttributionSource.FORWARDED, CONSUMER)


def test_observe_call_ignores_a_denied_call() -> None:
    # Given / When / Then
    assert call("cloudtrail_start_pipeline_execution_denied") is None


def test_observe_call_ignores_a_pipeline_of_another_owner() -> None:
    # Given / When / Then: seen by account 333333333333, the pipeline is not its own
    assert call("cloudtrail_start_pipeline_execution_consumer", owner=OTHER) is None


@pytest.mark.parametrize(
    ("fixture", "account"),
    [
        ("cloudtrail_start_pipeline_execution_consumer", OTHER),
        ("cloudtrail_start_pipeline_execution_owner_copy", CONSUMER),
        ("cloudtrail_start_pipeline_execution_owner", CONSUMER),
    ],
    ids=["consumer-copy-sent-by-a-third-account", "owner-copy-sent-by-the-consumer", "owner-record-sent-by-a-consumer"],
)
def test_observe_call_ignores_a_record_on_no_known_route(fixture: str, account: str) -> None:
    # Given a record whose envelope account matches neither the caller's own copy nor the owner's copy
    # When / Then
    assert call(fixture, account=account) is None


# --------------------------------------------------------------------------------------------------------- merge


def test_merge_creates_a_record_from_a_status() -> None:
    # Given no record
    # When
    record = merge(None, executing())

    # Then
    assert (record.execution_arn, record.pipeline_arn, record.owner_account) == (EXECUTION, PIPELINE, OWNER)
    assert (record.status, record.status_at, record.started_at, record.ended_at) == (
        "Executing",
        at(9, 30, 2),
        at(9, 30),
        None,
    )
    assert record.actions == {}
    assert (record.source, record.initiator_account) == (AttributionSource.UNKNOWN, None)


def test_merge_keeps_status_history_and_sets_end_at_the_terminal_status() -> None:
    # Given the Succeeded status merged before Executing
    # When
    record = fold([succeeded(), executing()])

    # Then the current status is the latest, the history keeps each status's time
    assert (record.status, record.ended_at) == ("Succeeded", at(9, 42, 10))
    assert record.status_history == {"Executing": at(9, 30, 2), "Succeeded": at(9, 42, 10)}
    assert record.started_at == at(9, 30)


@pytest.mark.parametrize("reverse", [False, True], ids=["later-first", "earlier-first"])
def test_merge_keeps_the_earliest_time_of_a_repeated_status(reverse: bool) -> None:
    # Given the same status seen twice (SageMaker may send an event more than once)
    observations = [executing_again(), executing()]

    # When
    record = fold(observations[::-1] if reverse else observations)

    # Then
    assert record.status_history == {"Executing": at(9, 30, 2)}


def test_merge_takes_started_at_from_the_start_call_when_it_is_earliest() -> None:
    # Given a status without a reported start and a start call a second before it
    status_only = executing().model_copy(update={"started_at": None})
    start = forwarded_start().model_copy(update={"time": at(9, 29, 59)})

    # When
    record = fold([status_only, start])

    # Then
    assert record.started_at == at(9, 29, 59)


def test_merge_shows_a_retried_execution_running_again() -> None:
    # Given an execution that failed at 09:40 and was retried (Executing again at 09:50)
    failed = StatusObservation(execution_arn=EXECUTION, pipeline_arn=PIPELINE, status="Failed", time=at(9, 40))
    again = StatusObservation(execution_arn=EXECUTION, pipeline_arn=PIPELINE, status="Executing", time=at(9, 50))

    # When
    record = fold([again, executing(), failed])

    # Then it is running, not ended, and the history still shows the failure
    assert (record.status, record.status_at, record.ended_at) == ("Executing", at(9, 50), None)
    assert record.status_history == {"Executing": at(9, 30, 2), "Failed": at(9, 40)}


@pytest.mark.parametrize("reverse", [False, True], ids=["inferred-first", "owner-first"])
def test_merge_lets_the_stronger_source_win(reverse: bool) -> None:
    # Given an inference and the owner's own start, in either order
    observations = [inferred(), owner_start()]

    # When
    record = fold(observations[::-1] if reverse else observations)

    # Then the owner record (rank 4) beats the inference (rank 2)
    assert (record.source, record.initiator_account) == (AttributionSource.OWNER, OWNER)


@pytest.mark.parametrize("reverse", [False, True], ids=["222-first", "333-first"])
def test_merge_breaks_a_tie_by_the_smaller_account(reverse: bool) -> None:
    # Given two forwarded starts of the same rank from two consumers
    observations = [consumer_call(START, CONSUMER, at(9, 30)), consumer_call(START, OTHER, at(9, 29))]

    # When
    record = fold(observations[::-1] if reverse else observations)

    # Then
    assert record.initiator_account == CONSUMER


@pytest.mark.parametrize("reverse", [False, True], ids=["forwarded-first", "owner-copy-first"])
def test_merge_prefers_the_record_that_names_the_principal_between_equal_ranks(reverse: bool) -> None:
    # Given the consumer's own record (with the role ARN) and the owner copy (AWSAccount, no ARN) of one call
    observations = [forwarded_start(), owner_copy_start()]

    # When
    record = fold(observations[::-1] if reverse else observations)

    # Then
    assert (record.source, record.initiator_principal) == (AttributionSource.FORWARDED, ALICE)


def test_merge_keeps_a_stop_by_another_consumer_as_its_own_action() -> None:
    # Given a start by 222222222222 and a stop by 333333333333
    # When
    record = fold([forwarded_start(), consumer_call(STOP, OTHER, at(9, 36))])

    # Then
    assert set(record.actions) == {START, STOP}
    assert record.actions[STOP].account == OTHER
    assert record.initiator_account == CONSUMER


def test_merge_keeps_every_retry_call_and_attributes_each_attempt_to_the_strongest() -> None:
    # Given two retry calls by two consumers before one retry attempt (Failed 09:40, Executing again 09:56)
    calls = [consumer_call(RETRY, OTHER, at(9, 50)), consumer_call(RETRY, CONSUMER, at(9, 55))]

    # When
    record = fold([*calls, executing(), status_at("Failed", at(9, 40)), status_at("Executing", at(9, 56))])

    # Then both calls are kept; attempt 2 goes to the tie's smaller account; start/stop entries are untouched
    assert len(record.retry_claims) == 2
    assert RETRY not in record.actions
    assert {n: e.account for n, e in record.retries().items() if e} == {2: CONSUMER}


def test_merge_is_idempotent() -> None:
    # Given a record
    record = fold([executing(), forwarded_start()])

    # When the same observations are merged again
    again = fold([forwarded_start(), executing()], record)

    # Then
    assert again == record


def test_merge_refuses_an_observation_of_another_execution() -> None:
    # Given a record and a status of another execution of the same pipeline
    record = merge(None, executing())
    other = executing().model_copy(update={"execution_arn": f"{PIPELINE}/execution/otherexec001"})

    # When / Then
    with pytest.raises(ValueError, match="cannot merge"):
        merge(record, other)


def test_merge_matches_execution_arns_case_insensitively() -> None:
    # Given the execution ARN with the pipeline name in mixed case in one observation only
    mixed = EXECUTION.replace("churn-train", "Churn-Train")
    status_mixed = StatusObservation(
        execution_arn=mixed,
        pipeline_arn=PIPELINE.replace("churn-train", "Churn-Train"),
        status="Executing",
        time=at(9, 30, 2),
    )

    # When merged in either order
    one, two = fold([status_mixed, forwarded_start()]), fold([forwarded_start(), status_mixed])

    # Then one record, keyed lower-case, keeping the mixed-case form
    assert one == two
    assert (one.key, one.execution_arn) == (EXECUTION, mixed)


def test_record_round_trips_through_its_stored_form() -> None:
    # Given a full record dumped as it would be stored (computed fields included)
    record = fold([executing(), succeeded(), forwarded_start(), consumer_call(STOP, OTHER, at(9, 36))])
    stored = json.loads(record.model_dump_json())

    # When
    loaded = ExecutionRecord.model_validate(stored)

    # Then
    assert loaded == record
    assert stored["source"] == "forwarded"
    assert stored["ended_at"] == "2024-05-01T09:42:10Z"


def test_status_observation_refuses_an_execution_of_another_pipeline() -> None:
    # Given / When / Then
    with pytest.raises(ValidationError, match="not an execution of"):
        StatusObservation(execution_arn=EXECUTION, pipeline_arn=f"{PIPELINE}-v2", status="Executing", time=at(9, 30))


@pytest.mark.parametrize(
    ("source", "candidates"),
    [
        ("inferred", ()),
        ("inferred", (CONSUMER, OTHER)),
        ("ambiguous", (CONSUMER,)),
        ("unknown", (CONSUMER,)),
        ("ambiguous", (OTHER, CONSUMER)),
    ],
    ids=["inferred-none", "inferred-two", "ambiguous-one-account", "unknown-one", "ambiguous-unsorted"],
)
def test_inference_observation_refuses_candidates_that_do_not_fit(source: str, candidates: tuple[str, ...]) -> None:
    # Given / When / Then
    with pytest.raises(ValidationError, match="candidate"):
        InferenceObservation(execution_arn=EXECUTION, source=source, candidates=candidates, time=at(9, 30))


# --------------------------------------------------------------------------------------------------------- infer


def test_infer_names_the_only_allow_execution_consumer() -> None:
    # Given / When
    observation = inferred()

    # Then
    assert (observation.source, observation.candidates, observation.action) == (
        AttributionSource.INFERRED,
        (CONSUMER,),
        START,
    )
    assert merge(None, observation).initiator_account == CONSUMER


def test_infer_lists_several_consumers_sorted_as_ambiguous() -> None:
    # Given / When
    observation = ambiguous(OTHER, CONSUMER, OTHER)

    # Then
    assert (observation.source, observation.candidates) == (AttributionSource.AMBIGUOUS, (CONSUMER, OTHER))
    record = merge(None, observation)
    assert (record.initiator_account, record.candidates) == (None, (CONSUMER, OTHER))


def test_infer_without_grants_is_unknown() -> None:
    # Given / When
    observation = infer(PIPELINE, [], OWNER, execution_arn=EXECUTION, at=at(9, 30))

    # Then
    assert (observation.source, observation.candidates) == (AttributionSource.UNKNOWN, ())


@pytest.mark.parametrize(
    "excluded",
    [
        grant(OTHER, association_status="DISASSOCIATED"),
        grant(OTHER, association_status="ASSOCIATING"),
        grant(OTHER, permission_arn=READ_ONLY, permission_name="AWSRAMDefaultPermissionSageMakerPipeline"),
        grant(OWNER),
        grant(OTHER, pipeline_arn="arn:aws:sagemaker:us-east-1:111111111111:pipeline/other"),
    ],
    ids=["disassociated", "associating", "read-only", "owner", "other-pipeline"],
)
def test_infer_counts_only_associated_allow_execution_consumers_of_this_pipeline(excluded: Grant) -> None:
    # Given one eligible consumer and one grant that must not count
    # When
    observation = infer(PIPELINE, [grant(CONSUMER), excluded], OWNER, execution_arn=EXECUTION, at=at(9, 30))

    # Then
    assert (observation.source, observation.candidates) == (AttributionSource.INFERRED, (CONSUMER,))


def test_infer_accepts_association_status_in_any_case_and_a_matching_pipeline() -> None:
    # Given a grant recorded with lower-case status and this pipeline's ARN in another case
    eligible = grant(association_status="associated", pipeline_arn=PIPELINE.replace("churn-train", "Churn-Train"))

    # When / Then
    assert infer(PIPELINE, [eligible], OWNER, execution_arn=EXECUTION, at=at(9, 30)).candidates == (CONSUMER,)


def test_infer_counts_an_iam_role_principal_as_its_account() -> None:
    # Given a pipeline shared with an IAM role of the consumer account
    role = grant("arn:aws:iam::222222222222:role/DataScientist")

    # When / Then
    assert infer(PIPELINE, [role], OWNER, execution_arn=EXECUTION, at=at(9, 30)).candidates == (CONSUMER,)


def test_infer_calls_a_single_ou_grant_ambiguous() -> None:
    # Given a pipeline shared with allow-execution to an organizational unit only
    # When
    observation = infer(PIPELINE, [grant(OU)], OWNER, execution_arn=EXECUTION, at=at(9, 30))

    # Then no account can be named: every account in the OU may have acted
    assert (observation.source, observation.candidates) == (AttributionSource.AMBIGUOUS, (OU,))


def test_infer_refuses_an_execution_of_another_pipeline() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="not an execution of"):
        infer(f"{PIPELINE}-v2", [grant()], OWNER, execution_arn=EXECUTION, at=at(9, 30))


def test_infer_can_attribute_a_stop() -> None:
    # Given / When
    observation = infer(PIPELINE, [grant()], OWNER, execution_arn=EXECUTION, at=at(9, 36), action=STOP)

    # Then
    assert list(merge(None, observation).actions) == [STOP]


# ---------------------------------------------------------------------------------------------------- alerts_due


def due(before: ExecutionRecord | None, after: ExecutionRecord, *, alert_on_owner: bool = False) -> list[AlertKey]:
    return alerts_due(before, after, owner_account=OWNER, alert_on_owner=alert_on_owner)


def test_alerts_due_for_a_first_consumer_start() -> None:
    # Given a record with only a status
    before = merge(None, executing())

    # When the consumer's start is merged
    after = merge(before, forwarded_start())

    # Then
    assert due(before, after) == [AlertKey(EXECUTION, START)]


def test_alerts_due_for_a_consumer_start_on_a_new_record() -> None:
    # Given / When / Then
    assert due(None, merge(None, owner_copy_start())) == [AlertKey(EXECUTION, START)]


def test_alerts_not_due_again_when_the_attribution_gets_stronger() -> None:
    # Given a start already due on an inference
    before = merge(None, inferred())

    # When the forwarded record of the same start arrives
    after = merge(before, forwarded_start())

    # Then nothing new is due (one alert per execution and action)
    assert after.source == AttributionSource.FORWARDED
    assert due(before, after) == []


def test_alerts_not_due_for_a_status_change() -> None:
    # Given a record whose start is due already
    before = merge(None, forwarded_start())

    # When / Then
    assert due(before, merge(before, succeeded())) == []


@pytest.mark.parametrize(("alert_on_owner", "expected"), [(False, []), (True, [AlertKey(EXECUTION, START)])])
def test_alerts_for_owner_actions_only_when_asked(alert_on_owner: bool, expected: list[AlertKey]) -> None:
    # Given / When
    after = merge(None, owner_start())

    # Then
    assert due(None, after, alert_on_owner=alert_on_owner) == expected


def test_alerts_not_due_for_an_unknown_caller() -> None:
    # Given / When
    after = merge(None, infer(PIPELINE, [], OWNER, execution_arn=EXECUTION, at=at(9, 30)))

    # Then
    assert due(None, after, alert_on_owner=True) == []


def test_alerts_due_for_a_stop_by_another_consumer() -> None:
    # Given a consumer start already alerted
    before = merge(None, forwarded_start())

    # When another consumer stops the execution
    after = merge(before, consumer_call(STOP, OTHER, at(9, 36)))

    # Then only the stop is due
    assert due(before, after) == [AlertKey(EXECUTION, STOP)]


def test_alerts_due_use_the_canonical_execution_key() -> None:
    # Given a start recorded under a mixed-case execution ARN
    mixed = forwarded_start().model_copy(update={"execution_arn": EXECUTION.replace("churn-train", "Churn-Train")})

    # When / Then
    assert due(None, merge(None, mixed)) == [AlertKey(EXECUTION, START)]


def test_alerts_due_refuses_records_of_two_executions() -> None:
    # Given two records of different executions
    before = merge(None, executing())
    after = merge(None, executing().model_copy(update={"execution_arn": f"{PIPELINE}/execution/otherexec001"}))

    # When / Then
    with pytest.raises(ValueError, match="different executions"):
        due(before, after)


# ------------------------------------------------------------------------------------------------- alert_message


def test_alert_message_subject_names_consumer_action_and_pipeline() -> None:
    # Given a forwarded consumer start
    record = fold([executing(), forwarded_start()])

    # When
    alert = alert_message(record, START, grant())

    # Then
    assert alert.subject == "pipeshare: consumer 222222222222 started churn-train (owner pays)"


def test_alert_message_body_carries_the_attribution_grant_and_payer() -> None:
    # Given a forwarded consumer start on a finished execution
    record = fold([executing(), succeeded(), forwarded_start()])

    # When
    _, body, attributes = alert_message(record, START, grant())

    # Then
    assert body["schema"] == SCHEMA == "pipeshare.owner.execution-alert/1"
    assert (body["consumer_account"], body["principal"], body["action"]) == (CONSUMER, ALICE, "start")
    assert (body["pipeline_name"], body["pipeline_arn"], body["execution_arn"]) == ("churn-train", PIPELINE, EXECUTION)
    assert body["grant"]["consumer"] == CONSUMER
    assert body["grant"]["share_arn"] == SHARE
    assert body["grant"]["share_name"] == "churn-pipeline-share"
    assert body["grant"]["permission_arn"] == ALLOW
    assert body["attribution"]["source"] == "forwarded"
    assert body["attribution"]["caveat"] is None
    assert body["billing"]["payer_account"] == OWNER
    assert "owner account 111111111111 pays" in body["billing"]["statement"]
    assert body["execution"] == {
        "status": "Succeeded",
        "started_at": "2024-05-01T09:30:00Z",
        "ended_at": "2024-05-01T09:42:10Z",
    }
    assert attributes == {
        "event": "execution.start",
        "action": "start",
        "source": "forwarded",
        "owner_account": OWNER,
        "consumer_account": CONSUMER,
    }
    json.dumps(body)  # serialisable as the SNS message


def test_alert_message_for_an_inference_says_so_with_a_caveat() -> None:
    # Given an inferred start
    record = merge(None, inferred())

    # When
    alert = alert_message(record, START, grant())

    # Then
    assert alert.subject == "pipeshare: consumer 222222222222 (inferred) started churn-train (owner pays)"
    assert alert.message["attribution"]["source"] == "inferred"
    assert "Inferred, not observed" in alert.message["attribution"]["caveat"]
    assert alert.message["principal"] is None


def test_alert_message_for_an_ambiguous_start_lists_the_candidates() -> None:
    # Given an ambiguous start
    record = merge(None, ambiguous())

    # When
    alert = alert_message(record, START, None)

    # Then
    assert alert.subject == "pipeshare: one of 2 consumers (ambiguous) started churn-train (owner pays)"
    assert (alert.message["consumer_account"], alert.message["candidates"]) == (None, [CONSUMER, OTHER])
    assert f"{CONSUMER}, {OTHER}" in alert.message["attribution"]["caveat"]
    assert alert.message["grant"] is None
    assert "consumer_account" not in alert.attributes


@pytest.mark.parametrize(("act", "verb", "attempt"), [(STOP, "stopped", 0), (RETRY, "retried", 2)])
def test_alert_message_names_stop_and_retry(act: PipelineAction, verb: str, attempt: int) -> None:
    # Given a stop, or a retry (the execution failed and runs again), by another consumer
    retried = [status_at("Failed", at(9, 39)), status_at("Executing", at(9, 41))] if attempt else []
    record = fold([forwarded_start(), executing(), *retried, consumer_call(act, OTHER, at(9, 40))])

    # When
    alert = alert_message(record, act, grant(OTHER), attempt=attempt)

    # Then
    suffix = f" (attempt {attempt})" if attempt else ""
    assert alert.subject == f"pipeshare: consumer 333333333333 {verb} churn-train{suffix} (owner pays)"
    assert alert.message["event"] == f"execution.{act.value}"
    assert alert.message["attempt"] == (attempt or None)


def test_alert_message_for_the_owner_has_no_consumer() -> None:
    # Given the owner's own start
    record = merge(None, owner_start())

    # When
    alert = alert_message(record, START, None)

    # Then
    assert alert.subject == "pipeshare: owner 111111111111 started churn-train"
    assert alert.message["consumer_account"] is None


def test_alert_message_subject_fits_sns_with_a_long_pipeline_name() -> None:
    # Given a pipeline with a 200-character name
    pipeline = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/" + "p" * 200
    record = merge(None, forwarded_start().model_copy(update={"execution_arn": f"{pipeline}/execution/p4jn9xou8a8s"}))

    # When
    subject = alert_message(record, START, grant(pipeline_arn=pipeline)).subject

    # Then
    assert len(subject) <= SUBJECT_MAX
    assert subject.isascii()
    assert subject.startswith("pipeshare: consumer 222222222222 started ppp")
    assert subject.endswith("... (owner pays)")


def test_alert_message_refuses_an_action_the_record_lacks() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="no 'stop' action"):
        alert_message(merge(None, forwarded_start()), STOP, grant())


def test_alert_message_refuses_the_grant_of_another_consumer() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="does not belong"):
        alert_message(merge(None, forwarded_start()), START, grant(OTHER))


def test_alert_message_refuses_a_grant_on_another_pipeline() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="not on"):
        alert_message(merge(None, forwarded_start()), START, grant(pipeline_arn=f"{PIPELINE}-v2"))


def test_alert_message_for_an_ou_grant_explains_the_candidates() -> None:
    # Given a start ambiguous between one account and an OU
    record = merge(None, infer(PIPELINE, [grant(OTHER), grant(OU)], OWNER, execution_arn=EXECUTION, at=at(9, 30)))

    # When
    alert = alert_message(record, START, grant(OU))

    # Then
    assert alert.message["candidates"] == [OTHER, OU]
    assert "organization or OU" in alert.message["attribution"]["caveat"]
    assert alert.message["grant"]["consumer"] == OU


# ---------------------------------------------------------------------------------------------- order-independence


SETS = {
    "distinct": lambda: [executing(), succeeded(), forwarded_start(), owner_copy_start(), inferred(), ambiguous()],
    "duplicates": lambda: [
        executing(),
        executing_again(),
        forwarded_start(),
        forwarded_start(),
        ambiguous(),
        succeeded(),
    ],
    "three-actions": lambda: [
        executing(),
        owner_copy_start(),
        consumer_call(STOP, OTHER, at(9, 36)),
        consumer_call(RETRY, CONSUMER, at(9, 38), ALICE),
        status_at("Executing", at(9, 39), previous="Stopped"),
        succeeded(),
    ],
    "owner-start": lambda: [
        executing(),
        owner_start(),
        inferred(),
        ambiguous(),
        consumer_call(STOP, OTHER, at(9, 36)),
        succeeded(),
    ],
}
STRONGEST = {
    "distinct": (AttributionSource.FORWARDED, CONSUMER, ALICE),
    "duplicates": (AttributionSource.FORWARDED, CONSUMER, ALICE),
    "three-actions": (AttributionSource.OWNER_COPY, CONSUMER, "AROAEXAMPLEID:alice"),
    "owner-start": (AttributionSource.OWNER, OWNER, "arn:aws:sts::111111111111:assumed-role/MLOpsDeployer/deploy-bot"),
}


@pytest.mark.parametrize("name", SETS)
def test_merge_gives_the_same_record_for_every_order(name: str) -> None:
    # Given a set of observations (with duplicates in one set)
    observations = SETS[name]()
    assert len(observations) <= 6

    # When they are merged in every order
    records = {fold(order).model_dump_json() for order in itertools.permutations(observations)}

    # Then every order gives one and the same record, which names the strongest source and the full status
    assert len(records) == 1
    record = ExecutionRecord.model_validate_json(records.pop())
    assert (record.source, record.initiator_account, record.initiator_principal) == STRONGEST[name]
    assert (record.status, record.started_at, record.ended_at) == ("Succeeded", at(9, 30), at(9, 42, 10))


@pytest.mark.parametrize(
    ("name", "alert_on_owner"),
    [("distinct", False), ("duplicates", False), ("three-actions", False), ("owner-start", True)],
)
def test_alerts_become_due_exactly_once_in_every_order(name: str, alert_on_owner: bool) -> None:
    # Given a set of observations and the slots its final record attributes
    observations = SETS[name]()
    final = fold(observations)
    expected = {AlertKey(final.key, act) for act in final.actions}
    expected |= {AlertKey(final.key, RETRY, n) for n, e in final.retries().items() if e is not None}

    for order in itertools.permutations(observations):
        # When they are merged one by one, collecting what each merge makes due
        counts: Counter[AlertKey] = Counter()
        last_said: dict[tuple[PipelineAction, int], str] = {}
        record: ExecutionRecord | None = None
        for observation in order:
            after = merge(record, observation)
            for key in alerts_due(record, after, owner_account=OWNER, alert_on_owner=alert_on_owner):
                counts[key] += 1
                entry = after.entry(key.action, key.attempt)
                assert entry is not None
                last_said[(key.action, key.attempt)] = entry.account or ",".join(entry.candidates)
            record = after

        # Then each slot's alert became due once, any correction at most once, and what was said last about each
        # slot is what the final record says (no wrong attribution stands uncorrected), whatever the order
        alerts = Counter({k: v for k, v in counts.items() if not k.correction})
        assert alerts == Counter(expected), order
        assert all(v == 1 for v in counts.values()), order
        for (act, attempt), said in last_said.items():
            entry = final.entry(act, attempt)
            assert entry is not None
            assert said == (entry.account or ",".join(entry.candidates)), order
