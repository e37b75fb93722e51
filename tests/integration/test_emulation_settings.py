"""The local stack's emulation settings: CloudTrail timing and trails, and the undocumented SageMaker / RAM choices.

Scenario time only (stack.advance); every setting changed here is restored by the stack fixture's reset().
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.scenario import Scenario, run_scenario
from pipeshare_local.settings import EmulationSettings
from pipeshare_local.stack import DeliveredEvent, LocalStack
from tests.integration.stackhelpers import CONSUMER, OWNER, create_pipeline, deploy_shared_pipeline, share_pipeline

OWNER_BUS = "pipeshare-owner"
OWNER_BUS_ARN = f"arn:aws:events:us-east-1:{OWNER}:event-bus/{OWNER_BUS}"
PIPELINE_ARN = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
API_CALL = "AWS API Call via CloudTrail"
STATUS = "SageMaker Model Building Pipeline Execution Status Change"
STEP = "SageMaker Model Building Pipeline Execution Step Status Change"


def _setup(stack: LocalStack, *, step_minutes: int = 10) -> None:
    """The owner shares churn-train (one step of step_minutes) allow-execution with a forwarding consumer."""
    create_pipeline(stack, OWNER, "churn-train")
    stack.sagemaker.define_steps(
        OWNER, stack.region, "churn-train", [StepSpec("Train", "Training", duration_seconds=step_minutes * 60)]
    )
    deploy_shared_pipeline(
        stack,
        PIPELINE_ARN,
        permission="allow-execution",
        consumer_parameters={"OwnerEventBusArn": OWNER_BUS_ARN},
        ForwarderAccountIds=CONSUMER,
    )


def _start(stack: LocalStack, account: str, tag: str = "t", pipeline: str | None = None) -> str:
    """account starts the owner's churn-train (by name in the owner account, by ARN elsewhere), or its own pipeline."""
    name = pipeline or ("churn-train" if account == OWNER else PIPELINE_ARN)
    arn = stack.client(account, "sagemaker").start_pipeline_execution(PipelineName=name, ClientRequestToken=tag * 32)[
        "PipelineExecutionArn"
    ]
    stack.deliver()
    return str(arn)


def _delivered(stack: LocalStack, detail_type: str, account: str | None = None, bus: str = "default") -> list[Any]:
    return [
        d
        for d in stack.delivered
        if d.event.get("detail-type") == detail_type and account in (None, d.account) and d.bus == bus
    ]


def _status(d: DeliveredEvent) -> str:
    return str(d.event["detail"]["currentPipelineExecutionStatus"])


def _position(stack: LocalStack, delivered: DeliveredEvent) -> int:
    return next(i for i, d in enumerate(stack.delivered) if d is delivered)


def _minutes(since: datetime, at: datetime | None) -> float:
    assert at is not None
    return (at - since).total_seconds() / 60


# ------------------------------------------------------------------------------------------ CloudTrail timing


def test_consumer_record_arrives_delay_minutes_after_the_status_event(stack: LocalStack) -> None:
    # Given CloudTrail records that reach EventBridge 5 minutes after the call
    _setup(stack)
    stack.settings.cloudtrail.delay_minutes = 5
    started = stack.clock.now()
    # When the consumer starts the owner's pipeline
    _start(stack, CONSUMER)
    # Then the owner's status event is delivered at once, the consumer's record is pending for 5 minutes
    [executing] = _delivered(stack, STATUS, OWNER)
    assert _minutes(started, executing.at) < 0.5
    assert _delivered(stack, API_CALL) == []
    [(due, account, record)] = stack.pending_events()
    assert (account, record["detail"]["eventName"]) == (CONSUMER, "StartPipelineExecution")
    assert 5 <= _minutes(started, due) < 5.5
    stack.advance(timedelta(minutes=4))
    assert _delivered(stack, API_CALL) == []
    # When the clock passes the due time
    stack.advance(timedelta(minutes=2))
    # Then the record reaches the consumer's bus, after the status event, and is forwarded to the owner bus
    [trail] = _delivered(stack, API_CALL, CONSUMER)
    assert 5 <= _minutes(started, trail.at) < 5.5
    assert _position(stack, executing) < _position(stack, trail)
    [forwarded] = _delivered(stack, API_CALL, OWNER, bus=OWNER_BUS)
    assert forwarded.event["id"] == trail.event["id"]
    assert _position(stack, trail) < _position(stack, forwarded)
    assert stack.pending_events() == []


def test_advance_interleaves_delayed_records_with_executions_and_schedules(stack: LocalStack) -> None:
    # Given records delayed 20 minutes, a 10-minute step and the consumer's sweep every 15 minutes
    _setup(stack, step_minutes=10)
    stack.settings.cloudtrail.delay_minutes = 20
    deployed = stack.clock.now()
    _start(stack, CONSUMER)
    # When 35 minutes pass in one advance
    stack.advance(timedelta(minutes=35))
    # Then: Succeeded at +10, the sweep at +15, the record at +20, the sweep at +30, in that order
    [_, succeeded] = _delivered(stack, STATUS, OWNER)
    [trail] = _delivered(stack, API_CALL, CONSUMER)
    sweeps = [
        datetime.fromisoformat(i.at)
        for i in stack.deployments[CONSUMER].functions["AcceptInvitationsFunction"].invocations
        if i.trigger.startswith("schedule:")
    ]
    assert _status(succeeded) == "Succeeded"
    assert [round(_minutes(deployed, at)) for at in (succeeded.at, sweeps[0], trail.at, sweeps[1])] == [10, 15, 20, 30]
    assert succeeded.at < sweeps[0] < trail.at < sweeps[1]
    assert _position(stack, succeeded) < _position(stack, trail)
    times = [d.at for d in stack.delivered]
    assert times == sorted(times)


def test_equal_due_times_keep_the_emission_order(stack: LocalStack) -> None:
    # Given three events due at the same instant
    due = stack.clock.now()
    for n in range(3):
        stack._emit({"account": OWNER, "detail-type": "Test", "source": "test", "detail": {"n": n}}, due=due)
    # When they are delivered
    stack.deliver()
    # Then in the order they were emitted
    assert [d.event["detail"]["n"] for d in stack.delivered] == [0, 1, 2]


def test_zero_delay_order_puts_the_record_before_or_after_the_service_events(stack: LocalStack) -> None:
    # Given no delay (the stack default): the record goes first (before_service_events, the default) ...
    _setup(stack)
    _start(stack, OWNER, "a")
    first = [d.event["detail-type"] for d in stack.delivered if d.account == OWNER][-4:]
    # ... or last
    stack.settings.cloudtrail.order = "after_service_events"
    _start(stack, OWNER, "b")
    last = [d.event["detail-type"] for d in stack.delivered if d.account == OWNER][-4:]
    # Then
    assert first == [API_CALL, STATUS, STEP, STEP]
    assert last == [STATUS, STEP, STEP, API_CALL]


def test_drop_and_redelivery_still_work_with_delayed_records(stack: LocalStack) -> None:
    # Given a delayed record, and the next event lost
    _setup(stack)
    stack.settings.cloudtrail.delay_minutes = 5
    _start(stack, CONSUMER)
    stack.drop_next_events(1)
    # When the record falls due
    stack.advance(timedelta(minutes=6))
    # Then it is the event lost; delivering it again (as-is, at once) reaches the consumer's bus and the owner bus
    [lost] = _delivered(stack, API_CALL, CONSUMER)
    assert lost.dropped
    assert _delivered(stack, API_CALL, OWNER, bus=OWNER_BUS) == []
    stack.put_event(CONSUMER, lost.event)
    stack.deliver()
    assert [d.dropped for d in _delivered(stack, API_CALL, CONSUMER)] == [True, False]
    assert len(_delivered(stack, API_CALL, OWNER, bus=OWNER_BUS)) == 1


# ------------------------------------------------------------------------------------------------- trails


def test_without_owner_trail_no_record_reaches_the_owner(stack: LocalStack) -> None:
    # Given owner copies on, but no trail in the owner account
    _setup(stack)
    stack.settings.cloudtrail.owner_trail = False
    stack.sagemaker.owner_cloudtrail_copy = True
    # When the consumer and the owner start the pipeline
    _start(stack, CONSUMER, "c")
    _start(stack, OWNER, "o")
    stack.advance(timedelta(minutes=1))
    # Then the owner gets no record (neither the copy nor its own call); the consumer's record is delivered
    assert [d.account for d in _delivered(stack, API_CALL)] == [CONSUMER]
    assert len(_delivered(stack, API_CALL, OWNER, bus=OWNER_BUS)) == 1  # forwarded by the consumer
    withheld = sorted((e["account"], e["detail"]["userIdentity"]["type"]) for e in stack.untrailed)
    assert withheld == [(OWNER, "AWSAccount"), (OWNER, "AssumedRole")]
    assert len(_delivered(stack, STATUS, OWNER)) == 2  # service events do not need a trail


def test_without_consumer_trail_nothing_is_forwarded(stack: LocalStack) -> None:
    # Given a forwarding consumer without a trail
    _setup(stack)
    stack.settings.cloudtrail.consumer_trail = False
    # When it starts the owner's pipeline
    _start(stack, CONSUMER)
    stack.advance(timedelta(minutes=1))
    # Then no record reaches its bus, so nothing is forwarded; the owner still gets the status event
    assert _delivered(stack, API_CALL) == []
    assert _delivered(stack, API_CALL, OWNER, bus=OWNER_BUS) == []
    assert [(e["account"], e["detail"]["eventName"]) for e in stack.untrailed] == [(CONSUMER, "StartPipelineExecution")]
    assert _status(_delivered(stack, STATUS, OWNER)[0]) == "Executing"


def test_consumer_trail_covers_only_calls_on_other_accounts_resources(stack: LocalStack) -> None:
    # Given a consumer without a trail for cross-account calls, which also owns a pipeline
    _setup(stack)
    create_pipeline(stack, CONSUMER, "own-pipeline")
    stack.settings.cloudtrail.consumer_trail = False
    # When it starts its own pipeline
    _start(stack, CONSUMER, "x", pipeline="own-pipeline")
    # Then that record reaches it (it owns the pipeline: owner_trail)
    assert [d.account for d in _delivered(stack, API_CALL)] == [CONSUMER]


def test_per_account_trail_overrides_the_role_defaults(stack: LocalStack) -> None:
    # Given trails everywhere but in the consumer account
    _setup(stack)
    create_pipeline(stack, CONSUMER, "own-pipeline")
    stack.settings.cloudtrail.trails = {CONSUMER: False}
    # When the consumer calls its own and the owner's pipeline, and the owner its own
    _start(stack, CONSUMER, "x", pipeline="own-pipeline")
    _start(stack, CONSUMER, "c")
    _start(stack, OWNER, "o")
    # Then only the owner's own record is delivered
    assert [d.account for d in _delivered(stack, API_CALL)] == [OWNER]
    assert len(stack.untrailed) == 2


# ---------------------------------------------------------------------------------------- SageMaker events


@pytest.mark.parametrize("variant", ["absent", "Starting", "Executing"])
def test_first_status_event_carries_the_configured_previous_status(stack: LocalStack, variant: str) -> None:
    # Given
    _setup(stack, step_minutes=1)
    stack.settings.sagemaker.first_previous_status = variant
    # When an execution starts and ends
    _start(stack, OWNER)
    stack.advance(timedelta(minutes=2))
    # Then the first event carries the variant (absent: no key); later ones the real previous status
    first, last = (d.event["detail"] for d in _delivered(stack, STATUS, OWNER))
    assert first["currentPipelineExecutionStatus"] == "Executing"
    assert first.get("previousPipelineExecutionStatus", "absent") == variant
    assert (last["previousPipelineExecutionStatus"], last["currentPipelineExecutionStatus"]) == (
        "Executing",
        "Succeeded",
    )


@pytest.mark.parametrize("variant", ["absent", "Starting", "Executing"])
def test_first_step_event_carries_the_configured_previous_status(stack: LocalStack, variant: str) -> None:
    # Given
    _setup(stack)
    stack.settings.sagemaker.first_previous_step_status = variant
    # When
    _start(stack, OWNER)
    # Then
    starting, executing = (d.event["detail"] for d in _delivered(stack, STEP, OWNER))
    assert starting["currentStepStatus"] == "Starting"
    assert starting.get("previousStepStatus", "absent") == variant
    assert executing["previousStepStatus"] == "Starting"


def test_step_without_starting_event_and_reverse_instant_order(stack: LocalStack) -> None:
    # Given steps that go straight to Executing, and events of one instant delivered newest first
    _setup(stack, step_minutes=1)
    stack.settings.sagemaker.step_starting_event = False
    stack.settings.sagemaker.same_instant_order = "reverse"
    # When an execution starts and ends
    _start(stack, OWNER)
    stack.advance(timedelta(minutes=2))
    # Then
    seen = [
        d.event["detail"].get("currentStepStatus") or d.event["detail"]["currentPipelineExecutionStatus"]
        for d in stack.delivered
        if d.account == OWNER and d.event["detail-type"] in (STATUS, STEP)
    ]
    assert seen == ["Executing", "Executing", "Succeeded", "Succeeded"]  # step, execution; execution, step
    kinds = [d.event["detail-type"] for d in stack.delivered if d.event["detail-type"] in (STATUS, STEP)]
    assert kinds == [STEP, STATUS, STATUS, STEP]


@pytest.mark.parametrize(("variant", "same_ids"), [("same_id", True), ("new_id", False)])
def test_duplicate_service_events(stack: LocalStack, variant: str, same_ids: bool) -> None:
    # Given every status / step event sent twice
    _setup(stack)
    stack.settings.sagemaker.duplicate_events = variant
    # When
    _start(stack, OWNER)
    # Then each one comes twice, back to back; CloudTrail records once
    statuses = _delivered(stack, STATUS, OWNER)
    assert [_status(d) for d in statuses] == ["Executing", "Executing"]
    assert (statuses[0].event["id"] == statuses[1].event["id"]) is same_ids
    assert statuses[0].event["detail"] == statuses[1].event["detail"]
    assert len(_delivered(stack, STEP, OWNER)) == 4
    assert len(_delivered(stack, API_CALL, OWNER)) == 1


# ------------------------------------------------------------------------------------------------------ RAM


def test_ram_event_resources_setting_and_invitation_window(stack: LocalStack) -> None:
    # Given RAM events without resources and a 1-hour invitation window
    stack.settings.ram.event_resources = "empty"
    stack.settings.ram.invitation_ttl_hours = 1
    # When the owner shares with an account that does not answer
    share_pipeline(stack, OWNER, "churn-train", [CONSUMER])
    stack.deliver()
    # Then the events carry no resources, and the invitation expires after an hour
    [pending] = [d.event for d in stack.delivered if d.account == CONSUMER]
    assert (pending["detail"], pending["resources"]) == (
        {"event": "Resource Share Invitation", "status": "pending"},
        [],
    )
    stack.advance(timedelta(minutes=61))
    [invitation] = stack.client(CONSUMER, "ram").get_resource_share_invitations()["resourceShareInvitations"]
    assert invitation["status"] == "EXPIRED"


def test_reset_restores_the_constructor_settings(stack: LocalStack) -> None:
    # Given changed settings
    stack.settings.cloudtrail.delay_minutes = 7
    stack.sagemaker.owner_cloudtrail_copy = True
    # When
    stack.reset()
    # Then: the stack's defaults, shared with the emulators
    assert stack.settings == EmulationSettings()
    assert stack.sagemaker.settings is stack.settings is stack.ram.settings
    assert stack.sagemaker.owner_cloudtrail_copy is False


def test_invalid_setting_is_refused_on_assignment(stack: LocalStack) -> None:
    with pytest.raises(ValueError, match="first_previous_status"):
        stack.settings.sagemaker.first_previous_status = "Stopped"
    with pytest.raises(ValueError, match="delay_minutes"):
        stack.settings.cloudtrail.delay_minutes = -1
    with pytest.raises(ValueError, match="job_not_found_code"):
        stack.sagemaker.job_not_found_code = "NoSuchJob"


# ------------------------------------------------------------------------------------------------ scenarios


def test_scenario_blocks_set_the_stack_settings() -> None:
    # Given a scenario whose consumer has no trail and whose records are late
    scenario = Scenario.model_validate(
        {
            "name": "settings",
            "cloudtrail": {"delay_minutes": 5, "trails": {"consumer": False}},
            "sagemaker": {"first_previous_status": "Starting"},
            "invitation_ttl_hours": 2,
            "accounts": {"owner": {"id": OWNER}, "consumer": {"id": CONSUMER}},
            "deploy": [
                {"account": "owner", "mode": "owner", "parameters": {"ForwarderAccountIds": CONSUMER}},
                {
                    "account": "consumer",
                    "parameters": {"TrustedOwnerAccountIds": OWNER, "OwnerEventBusArn": OWNER_BUS_ARN},
                },
            ],
            "steps": [
                {"create_pipeline": {"account": "owner", "name": "churn-train"}},
                {
                    "share": {
                        "account": "owner",
                        "name": "s",
                        "resources": ["pipeline:churn-train"],
                        "principals": ["consumer"],
                        "permission": "allow-execution",
                    }
                },
                {"start_execution": {"account": "consumer", "pipeline": "churn-train", "as": "run"}},
                {"start_execution": {"account": "owner", "pipeline": "churn-train", "as": "own"}},
                {"advance": {"minutes": 10}},
            ],
        }
    )
    # When it runs
    report = run_scenario(scenario).as_dict()
    # Then the settings are in the report, and the events follow them
    assert report["settings"]["cloudtrail"]["trails"] == {CONSUMER: False}
    assert report["settings"]["ram"]["invitation_ttl_hours"] == 2
    assert report["timeline"][0]["step"] == "settings"
    trails = [e for e in report["events"] if e["detail-type"] == API_CALL]
    assert [e["account"] for e in trails] == ["owner"]  # the consumer has no trail; the owner's own call, late
    statuses = [e["detail"] for e in report["events"] if e["detail-type"] == STATUS]
    assert {s.get("previousPipelineExecutionStatus") for s in statuses if "executionEndTime" not in s} == {"Starting"}
