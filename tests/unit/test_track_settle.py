"""Tracking with a settle period: inference waits for late CloudTrail records, retries seen in status events,
corrections, the owner as a candidate when no trail records its calls. Logic with fakes (logic/track.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.adapters.ports import Settle
from pipeshare.logic.track import settle_attribution, track_event
from pipeshare.models.executions import ExecutionRecord
from pipeshare.models.owner import OWNER_HOLDER, UNATTRIBUTED, CountedJob, Grant, SpendHolder
from pipeshare.models.owner_events import PipelineApiCallEvent, PipelineExecutionStatusEvent
from pipeshare.models.types import PipelineAction
from tests.conftest import load_event
from tests.fakes import (
    FakeCostRepository,
    FakeExecutionGateway,
    FakeExecutionRepository,
    FakeGrantRepository,
    FakeSettleScheduler,
    FakeTrailStatus,
)

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
PIPELINE = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/p4jn9xou8a8s"
ALLOW = "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution"
T0 = datetime(2024, 5, 1, 9, 30, 2, tzinfo=UTC)
SETTLE_SECONDS = 600
MONTH = "2024-05"
COUNTED = Decimal("1.25")


# ---------------------------------------------------------------------------------------------------------- world


def allow_execution(consumer: str) -> Grant:
    return Grant.model_validate(
        {
            "pipeline_arn": PIPELINE,
            "consumer": consumer,
            "association_status": "ASSOCIATED",
            "share_arn": "arn:aws:ram:us-east-1:111111111111:resource-share/s1",
            "share_name": "churn-share",
            "permission_arn": ALLOW,
            "permission_name": "AWSRAMPermissionSageMakerPipelineAllowExecution",
        }
    )


class World:
    def __init__(self, *consumers: str, trail: bool = True, settle: bool = True) -> None:
        self.executions = FakeExecutionRepository()
        self.grants = FakeGrantRepository([allow_execution(c) for c in consumers])
        self.scheduler = FakeSettleScheduler()
        self.trail = FakeTrailStatus(recorded=trail)
        self.settle = Settle(self.scheduler, SETTLE_SECONDS) if settle else None
        self.spend = FakeCostRepository()
        self.sagemaker = FakeExecutionGateway({EXECUTION: {"PipelineArn": PIPELINE, "PipelineExecutionArn": EXECUTION}})
        # what the cost estimator counted before anybody was attributed
        job = CountedJob(
            f"arn:aws:sagemaker:us-east-1:{OWNER}:processing-job/prep", "Preprocess", "processing", COUNTED, {}
        )
        assert self.spend.commit(
            EXECUTION,
            holder=UNATTRIBUTED,
            pipeline_arn=PIPELINE,
            month=MONTH,
            jobs=[job],
            estimate={"steps": [], "complete": True, "total": COUNTED},
            version=0,
            at=T0,
        )

    def event(self, event: dict[str, Any], now: datetime = T0) -> Any:
        model = PipelineExecutionStatusEvent if "Status Change" in event["detail-type"] else PipelineApiCallEvent
        return track_event(
            model.model_validate(event),
            owner_account=OWNER,
            executions=self.executions,
            grants=self.grants,
            sagemaker=self.sagemaker,
            alert_on_owner=False,
            settle=self.settle,
            spend=self.spend,
            now=now,
        )

    def settle_due(self, now: datetime = T0 + timedelta(seconds=SETTLE_SECONDS)) -> list[Any]:
        outcomes = []
        for request, _ in self.scheduler.scheduled:
            outcomes.append(
                settle_attribution(
                    request,
                    owner_account=OWNER,
                    executions=self.executions,
                    grants=self.grants,
                    trail=self.trail,
                    alert_on_owner=False,
                    spend=self.spend,
                    now=now,
                )
            )
        return outcomes

    def alert_events(self) -> list[tuple[str, str | None]]:
        return sorted((a.message["event"], a.message["consumer_account"]) for a in self.executions.alerts.values())

    def record(self) -> ExecutionRecord:
        record = self.executions.record(EXECUTION)
        assert record is not None
        return record

    def consumer_spend(self) -> dict[str, Decimal]:
        """Month-to-date spend per consumer, as the owner table holds it (CONSUMER#<account> items)."""
        return {
            sk.removeprefix("CONSUMER#"): total
            for (month, sk), total in self.spend.spend.items()
            if month == MONTH and sk.startswith("CONSUMER#") and "#PIPELINE#" not in sk
        }


def status(current: str, time: datetime, previous: str | None = None, **detail: Any) -> dict[str, Any]:
    event = load_event("sagemaker_execution_status_executing", time=time.strftime("%Y-%m-%dT%H:%M:%SZ"))
    event["detail"]["currentPipelineExecutionStatus"] = current
    if previous is None:
        event["detail"].pop("previousPipelineExecutionStatus", None)
    else:
        event["detail"]["previousPipelineExecutionStatus"] = previous
    if current in ("Failed", "Stopped", "Succeeded"):
        event["detail"]["executionEndTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["detail"].update(detail)
    return event


def owner_start() -> dict[str, Any]:
    return load_event("cloudtrail_start_pipeline_execution_owner")


def forwarded(fixture: str = "cloudtrail_start_pipeline_execution_consumer") -> dict[str, Any]:
    return load_event(fixture)


# ---------------------------------------------------------------------------------------------------------- tests


def test_an_unclaimed_execution_is_scheduled_to_settle_once_and_not_alerted_yet() -> None:
    # Given a consumer with allow-execution and a status event nobody has claimed
    world = World(CONSUMER)

    # When the status event arrives twice (at-least-once delivery)
    first = world.event(status("Executing", T0))
    again = world.event(status("Executing", T0))

    # Then the start waits for its settle period: one delayed request, no alert, no attribution yet
    assert first.settling == ["start"]
    assert again.status == "duplicate"
    assert [(r.action, r.attempt, d) for r, d in world.scheduler.scheduled] == [(PipelineAction.START, 0, 600)]
    assert world.executions.alerts == {}
    assert world.record().source == "unknown"


def test_a_late_owner_record_within_the_settle_period_leaves_no_consumer_alert() -> None:
    # Given the owner's own start whose CloudTrail record arrives 5 minutes after the status event
    world = World(CONSUMER)
    world.event(status("Executing", T0))
    world.event(owner_start(), now=T0 + timedelta(minutes=5))

    # When the settle period ends
    outcomes = world.settle_due()

    # Then nothing is inferred: the owner started it, no alert, nothing attributed to a consumer
    assert [o.status for o in outcomes] == ["duplicate"]
    assert world.executions.alerts == {}
    assert (world.record().source, world.record().initiator_account) == ("owner", OWNER)


def test_settling_an_unclaimed_start_infers_the_only_consumer_once() -> None:
    # Given an unclaimed execution
    world = World(CONSUMER)
    world.event(status("Executing", T0))

    # When the settle period ends, and its message is delivered twice
    first, second = world.settle_due()[0], world.settle_due()[0]

    # Then one inferred alert for the consumer; the second delivery changes nothing
    assert (first.status, first.source, first.initiator_account) == ("recorded", "inferred", CONSUMER)
    assert second.status == "duplicate"
    assert world.alert_events() == [("execution.start", CONSUMER)]


def test_a_claim_later_than_the_settle_period_corrects_the_inferred_alert_once() -> None:
    # Given an execution inferred to the consumer after the settle period
    world = World(CONSUMER)
    world.event(status("Executing", T0))
    world.settle_due()

    # When the owner's own CloudTrail record arrives even later, twice
    world.event(owner_start(), now=T0 + timedelta(minutes=20))
    world.event(owner_start(), now=T0 + timedelta(minutes=21))

    # Then one correction says the owner started it; the record no longer names the consumer
    assert world.alert_events() == [("execution.attribution-corrected", None), ("execution.start", CONSUMER)]
    correction = next(a for a in world.executions.alerts.values() if a.message.get("corrects"))
    assert correction.message["corrects"]["consumer_account"] == CONSUMER
    assert correction.subject.startswith("pipeshare: correction: owner 111111111111 started")
    assert world.record().initiator_account == OWNER


def test_a_claim_confirming_the_inference_sends_no_correction() -> None:
    # Given an inferred start, then the consumer's forwarded record of the same start
    world = World(CONSUMER)
    world.event(status("Executing", T0))
    world.settle_due()

    # When
    world.event(forwarded(), now=T0 + timedelta(minutes=20))

    # Then the attribution gets stronger, with no second message
    assert world.alert_events() == [("execution.start", CONSUMER)]
    assert world.record().source == "forwarded"


@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_a_retry_seen_only_in_status_events_is_settled_and_alerted_with_its_attempt(order: str) -> None:
    # Given a start claimed by the consumer, then Failed and Executing again (a retry without any CloudTrail record)
    world = World(CONSUMER)
    events = [
        status("Executing", T0),
        status("Failed", T0 + timedelta(minutes=10), previous="Executing"),
        status("Executing", T0 + timedelta(minutes=30), previous="Failed"),
    ]
    world.event(forwarded())
    for event in events if order == "in-order" else reversed(events):
        world.event(event)

    # When the retry's settle period ends
    retry_requests = [r for r, _ in world.scheduler.scheduled if r.action == PipelineAction.RETRY]
    world.settle_due(T0 + timedelta(minutes=45))

    # Then one retry alert for attempt 2, inferred to the only allow-execution consumer
    assert [(r.attempt) for r in retry_requests] == [2]
    retries = [a for a in world.executions.alerts.values() if a.message["action"] == "retry"]
    assert [(a.message["attempt"], a.message["consumer_account"]) for a in retries] == [(2, CONSUMER)]
    assert "(attempt 2)" in retries[0].subject


def test_two_retries_are_two_alerts_each_with_its_own_attempt() -> None:
    # Given an execution retried twice, each retry claimed by the consumer's forwarded CloudTrail record
    world = World(CONSUMER)
    retry = forwarded("cloudtrail_retry_pipeline_execution_consumer")
    world.event(forwarded())
    world.event(status("Executing", T0))
    for n, minutes in enumerate((10, 30), start=2):
        failed_at, call_at = T0 + timedelta(minutes=minutes), T0 + timedelta(minutes=minutes + 5)
        world.event(status("Failed", failed_at, previous="Executing"))
        call = dict(retry, detail={**retry["detail"], "eventTime": call_at.strftime("%Y-%m-%dT%H:%M:%SZ")})
        call["detail"]["eventID"] = f"retry-{n}"
        world.event(call)
        world.event(status("Executing", call_at + timedelta(seconds=20), previous="Failed"))

    # When / Then two retry alerts, attempts 2 and 3, both from the claims (nothing left to settle)
    retries = sorted(
        (a.message["attempt"], a.message["attribution"]["source"])
        for a in world.executions.alerts.values()
        if a.message["action"] == "retry"
    )
    assert retries == [(2, "forwarded"), (3, "forwarded")]
    assert world.scheduler.scheduled == []


def test_without_an_owner_trail_the_owner_is_a_candidate_and_the_alert_says_why() -> None:
    # Given no trail records the owner's management events, and one consumer that may run the pipeline
    world = World(CONSUMER, trail=False)
    world.event(status("Executing", T0))

    # When the settle period ends
    world.settle_due()

    # Then the start is ambiguous between the owner and the consumer, and nothing is pinned on the consumer
    record = world.record()
    assert (record.source, record.initiator_account, record.candidates) == ("ambiguous", None, (OWNER, CONSUMER))
    (alert,) = world.executions.alerts.values()
    assert "owner account is among them" in alert.message["attribution"]["caveat"]
    assert world.trail.regions == ["us-east-1"]


def test_without_an_owner_trail_or_consumers_the_owner_is_inferred_and_not_alerted() -> None:
    # Given no trail and no allow-execution consumer
    world = World(trail=False)
    world.event(status("Executing", T0))

    # When
    world.settle_due()

    # Then only the owner could have started it: recorded as the owner's, no alert
    assert (world.record().source, world.record().initiator_account) == ("inferred", OWNER)
    assert world.executions.alerts == {}


def test_without_inference_nothing_is_scheduled_and_unclaimed_runs_stay_unknown() -> None:
    # Given InferConsumerStarts=false
    world = World(CONSUMER, settle=False)

    # When
    outcome = world.event(status("Executing", T0))

    # Then
    assert (outcome.status, outcome.settling) == ("recorded", [])
    assert world.scheduler.scheduled == []
    assert world.record().source == "unknown"


@pytest.mark.parametrize("previous", [None, "Starting", "Executing", "Pending"])
def test_the_first_status_events_previous_value_never_refuses_nor_makes_a_retry(previous: str | None) -> None:
    # Given the first status event with each previous status SageMaker might send (undocumented)
    world = World(CONSUMER)

    # When
    outcome = world.event(status("Executing", T0, previous=previous))

    # Then it is recorded, and only the start settles (no retry)
    assert outcome.status == "recorded"
    assert outcome.settling == ["start"]
    assert world.record().attempts() == []


def test_a_status_outside_the_api_enum_is_recorded_as_text() -> None:
    # Given a status SageMaker might add
    world = World(CONSUMER)

    # When
    outcome = world.event(status("Paused", T0, previous="Executing"))

    # Then it is recorded, not refused
    assert outcome.status == "recorded"
    assert world.record().status == "Paused"


def test_spend_counted_before_the_settle_moves_to_the_inferred_consumer_once() -> None:
    # Given USD 1.25 counted for an execution before anybody was attributed
    world = World(CONSUMER)
    world.event(status("Executing", T0))
    assert world.consumer_spend() == {}

    # When the settle period infers the consumer (and the settle message comes twice)
    world.settle_due()
    world.settle_due()

    # Then the consumer's month-to-date spend holds the execution's total, moved once
    assert world.consumer_spend() == {CONSUMER: COUNTED}
    assert world.spend.moves == [SpendHolder("consumer", CONSUMER, False)]


def test_a_correction_takes_the_spend_back_from_the_wrongly_inferred_consumer() -> None:
    # Given an execution inferred to the consumer (its spend moved there)
    world = World(CONSUMER)
    world.event(status("Executing", T0))
    world.settle_due()

    # When the owner's own record arrives late
    world.event(owner_start(), now=T0 + timedelta(minutes=20))

    # Then nothing stays counted to the consumer
    assert world.consumer_spend() == {CONSUMER: Decimal(0)}
    assert world.spend.estimate_of(EXECUTION)["spend_holder"] == OWNER_HOLDER.key  # type: ignore[index]


def test_a_late_owner_record_inside_the_settle_period_never_counts_spend_to_a_consumer() -> None:
    # Given the owner's own run whose CloudTrail record is 5 minutes late
    world = World(CONSUMER)
    world.event(status("Executing", T0))
    world.event(owner_start(), now=T0 + timedelta(minutes=5))

    # When the settle period ends
    world.settle_due()

    # Then no spend was ever moved to a consumer (only to the owner's own run)
    assert [m for m in world.spend.moves if m.kind == "consumer"] == []
    assert world.consumer_spend() == {}


# ------------------------------------------------------------------------------------ attribution, as counted


def test_an_execution_is_counted_attributed_once_and_again_only_when_its_attribution_changes() -> None:
    # Given an unclaimed execution, inferred after the settle period, then confirmed by the consumer's own record
    world = World(CONSUMER)
    seen = world.event(status("Executing", T0))
    inferred, redelivered = world.settle_due()[0], world.settle_due()[0]
    confirmed = world.event(forwarded(), now=T0 + timedelta(minutes=20))
    again = world.event(forwarded(), now=T0 + timedelta(minutes=21))

    # Then: not attributed while unclaimed; "new" once (inferred); "changed" when the source gets stronger; nothing for
    # a redelivery or a repeat
    assert [o.attribution for o in (seen, inferred, redelivered, confirmed, again)] == [
        None,
        "new",
        None,
        "changed",
        None,
    ]
    assert (confirmed.source, confirmed.initiator_account) == ("forwarded", CONSUMER)


def test_a_start_claimed_first_is_new_and_a_correction_to_the_owner_is_a_change() -> None:
    # Given the owner's own record first on one world; an inference corrected by the owner's record on another
    first = World(CONSUMER).event(owner_start())
    world = World(CONSUMER)
    world.event(status("Executing", T0))
    world.settle_due()
    corrected = world.event(owner_start(), now=T0 + timedelta(minutes=20))

    # Then
    assert (first.attribution, first.source, first.initiator_account) == ("new", "owner", OWNER)
    assert (corrected.attribution, corrected.source, corrected.initiator_account) == ("changed", "owner", OWNER)
