"""The consumer is told too: the notice model (models/consumer_notices.py), its building and the consumer's message
(logic/consumer_notices.py), the budget watcher writing one notice per enforcement action with its ledger item, and
the PutEvents adapter (adapters/eventbridge_notices.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber
from pydantic import ValidationError

from pipeshare.adapters.eventbridge_notices import EventBridgeNoticeSender
from pipeshare.logic.consumer_notices import admit_notice, notice_bus_arn, notice_id, notice_message
from pipeshare.models.consumer_notices import EnforcementNotice
from pipeshare.models.domain import OwnerRule, TrustPolicy
from pipeshare.models.errors import NoticeUndeliverableError, TransientError
from pipeshare.models.notice_events import EnforcementNoticeEvent
from tests.conftest import load_event
from tests.fakes import FakeGrantRepository
from tests.unit.test_budget_watch import (
    CONSUMER,
    MONTH,
    OTHER,
    OWNER,
    PIPELINE,
    SHARE_A,
    grant,
    owner,
    run,
    stop_key,
)

pytestmark = pytest.mark.usefixtures("socket_disabled")

FIXTURE = "eventbridge_enforcement_notice"
BUS = f"arn:aws:events:us-east-1:{CONSUMER}:event-bus/pipeshare-notices"


def detail(**changes: Any) -> dict[str, Any]:
    return {**load_event(FIXTURE)["detail"], **changes}


def event(**changes: Any) -> EnforcementNoticeEvent:
    return EnforcementNoticeEvent.model_validate({**load_event(FIXTURE), **changes})


# ------------------------------------------------------------------------------------------------------------ model


def test_the_fixture_is_a_valid_notice_event() -> None:
    parsed = event()
    assert (parsed.account, parsed.detail.action, str(parsed.detail.spend.monthly_limit)) == (
        OWNER,
        "stop_execution",
        "0.05",
    )


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"execution_arn": None}, "names its execution_arn"),
        ({"dry_run": True}, "not-run exactly when dry_run"),
        ({"pipeline_arns": [f"arn:aws:sagemaker:us-east-1:{OTHER}:pipeline/churn-train"]}, "belong to owner"),
        ({"owner_account_id": OTHER}, "belong to owner"),
        ({"pipeline_arns": []}, "at least 1"),
        ({"notice_id": "not-hex"}, "pattern"),
        ({"surprise": 1}, "Extra inputs"),
        ({"spend": {**detail()["spend"], "monthly_limit": "-1"}}, "greater than or equal"),
    ],
)
def test_an_inconsistent_notice_is_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        EnforcementNotice.model_validate(detail(**changes))


def test_an_envelope_with_another_source_or_detail_type_is_refused() -> None:
    for changes in ({"source": "aws.sagemaker"}, {"detail-type": "Something Else"}):
        with pytest.raises(ValidationError):
            event(**changes)


# ------------------------------------------------------------------------------------------------------ owner side


def test_the_owner_stopping_a_run_writes_one_notice_with_the_action() -> None:
    # Given a consumer over its 100 USD budget with a forwarded run going, and a budget that stops runs
    o = owner(enforce={"stop_executions": True})
    o.runs.add(run(1))

    # When its spend reaches 120.004 (80.004 confirmed is not enough: all of it is confirmed here)
    o.spend_changes("120.004")

    # Then the stop is recorded with its message and ONE notice naming the owner, the pipeline and the figures
    [(month, subject, key, notice)] = o.ledger.notices
    assert (month, subject, key) == (MONTH, CONSUMER, stop_key(run(1)))
    assert (notice.owner_account_id, notice.consumer_account_id) == (OWNER, CONSUMER)
    assert (notice.action, notice.outcome, notice.dry_run, notice.reason) == (
        "stop_execution",
        "done",
        False,
        "over-budget",
    )
    assert (notice.execution_arn, notice.pipeline_arns, notice.attempt) == (run(1).execution_arn, (PIPELINE,), 1)
    assert (str(notice.spend.month_to_date), str(notice.spend.monthly_limit)) == ("120.00", "100.00")
    assert str(notice.spend.percent_used) == "120.0"
    assert notice.notice_id == notice_id(MONTH, CONSUMER, stop_key(run(1)))

    # When the same spend comes again (a redelivered stream record)
    o.spend_changes("120.004")

    # Then nothing more is written: the notice went with the action's ledger item, once
    assert len(o.ledger.notices) == 1


def test_a_dry_run_notice_says_nothing_was_done() -> None:
    o = owner(enforce={"stop_executions": True}, dry_run=True)
    o.runs.add(run(1))
    o.spend_changes("120")
    [(_, _, key, notice)] = o.ledger.notices
    assert key == stop_key(run(1), dry_run=True)
    assert (notice.outcome, notice.dry_run) == ("not-run", True)
    assert o.enforcer.stopped == []


def test_a_run_that_had_ended_or_a_failed_stop_tells_the_consumer_nothing() -> None:
    # Given two consumers' worth of cases: a run that had ended before the stop, and a stop that fails
    ended = owner(enforce={"stop_executions": True})
    ended.runs.add(run(1))
    ended.enforcer.ended.add(run(1).execution_arn)
    failing = owner(enforce={"stop_executions": True})
    failing.runs.add(run(2))
    failing.enforcer.fail("stop_execution", TransientError("throttled"))

    # When each goes over budget
    ended.spend_changes("120")
    with pytest.raises(Exception, match="enforcement action"):
        failing.spend_changes("120")

    # Then no notice is written for either
    assert (ended.ledger.notices, failing.ledger.notices) == ([], [])


def test_removing_the_consumer_from_a_share_writes_one_notice_naming_the_share() -> None:
    # Given a consumer holding churn-train through an allow-execution share, and a budget that removes it
    o = owner(enforce={"remove_from_share": True, "downgrade_to_read_only": True})
    o.grants = FakeGrantRepository([grant(SHARE_A)])

    # When it goes over budget
    o.spend_changes("130")

    # Then one notice names the share, the pipeline it lost and the read-only share it got the pipeline back through
    [(_, _, _, notice)] = o.ledger.notices
    assert (notice.action, notice.outcome, notice.share_arn) == ("remove_from_share", "done", SHARE_A)
    assert notice.pipeline_arns == (PIPELINE,)
    assert notice.read_only_share_arn is not None


def test_the_bus_arn_follows_the_naming_convention() -> None:
    assert notice_bus_arn(partition="aws", region="us-east-1", consumer=CONSUMER, bus_name="pipeshare-notices") == BUS


# --------------------------------------------------------------------------------------------------- consumer side


def trust(*owners: str) -> TrustPolicy:
    return TrustPolicy(owners=[OwnerRule(account_id=o) for o in owners])


def test_a_notice_from_a_trusted_owner_about_this_account_is_admitted() -> None:
    assert admit_notice(event(), trust(OWNER), CONSUMER) is None


@pytest.mark.parametrize(
    ("delivered", "policy", "own", "why"),
    [
        ({}, trust(OTHER), CONSUMER, "not a trusted owner"),
        ({"account": OTHER}, trust(OWNER, OTHER), CONSUMER, f"but account {OTHER} sent it"),
        ({}, trust(OWNER), OTHER, "not this account"),
    ],
)
def test_a_notice_is_refused_unless_sent_by_a_trusted_owner_about_this_account(
    delivered: dict[str, Any], policy: TrustPolicy, own: str, why: str
) -> None:
    reason = admit_notice(event(**delivered), policy, own)
    assert reason is not None
    assert why in reason


def test_the_message_names_the_owner_the_pipeline_the_figure_and_the_limit() -> None:
    message = notice_message(event().detail)
    assert message.subject == f"pipeshare: owner {OWNER} stopped your run of churn-train (budget 0.08/0.05 USD)"
    assert message.message == detail()
    assert message.attributes == {
        "event": "enforcement.stop_execution",
        "action": "stop_execution",
        "outcome": "done",
        "dry_run": "false",
        "owner_account": OWNER,
        "consumer_account": CONSUMER,
        "month": "2026-05",
    }


def test_a_long_name_is_shortened_never_the_account_or_the_figures() -> None:
    name = "p" * 200
    arn = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/{name}"
    notice = EnforcementNotice.model_validate(
        detail(pipeline_arns=[arn], execution_arn=f"{arn}/execution/abc", dry_run=True, outcome="not-run")
    )
    subject = notice_message(notice).subject
    assert len(subject) <= 100
    assert subject.startswith(f"pipeshare: DRY RUN: owner {OWNER} would stop your run of ppp")
    assert subject.endswith("... (budget 0.08/0.05 USD)")


# ---------------------------------------------------------------------------------------------------------- adapter


def sender() -> tuple[EventBridgeNoticeSender, Stubber]:
    import boto3

    client = boto3.client("events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return EventBridgeNoticeSender(BUS, client), Stubber(client)


def expected_request() -> dict[str, Any]:
    entry = {
        "Source": "pipeshare.owner",
        "DetailType": "Pipeshare Enforcement Notice",
        "Detail": json.dumps(detail(), sort_keys=True),
        "EventBusName": BUS,
    }
    return {"Entries": [entry]}


def test_the_sender_puts_one_event_on_the_consumers_bus() -> None:
    notices, stub = sender()
    stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]}, expected_request())
    with stub:
        assert notices.publish(subject="", message=detail(), attributes={}) == "e-1"
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ThrottlingException", TransientError),
        ("InternalFailure", TransientError),
        ("AccessDeniedException", NoticeUndeliverableError),
        ("MalformedDetail", NoticeUndeliverableError),
    ],
)
def test_a_failed_entry_is_retryable_or_undeliverable(code: str, error: type[Exception]) -> None:
    notices, stub = sender()
    answer = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": code, "ErrorMessage": "no"}]}
    stub.add_response("put_events", answer, expected_request())
    with stub, pytest.raises(error, match=code):
        notices.publish(subject="", message=detail(), attributes={})


def test_a_refused_call_is_undeliverable() -> None:
    notices, stub = sender()
    stub.add_client_error("put_events", service_error_code="AccessDeniedException", http_status_code=400)
    with stub, pytest.raises(NoticeUndeliverableError, match="AccessDeniedException"):
        notices.publish(subject="", message=detail(), attributes={})


def test_the_owner_notifier_without_its_region_fails_closed_when_consumers_are_told() -> None:
    from pipeshare.config.owner import NotifyOwnerSettings

    base = {"OWNER_TOPIC_ARN": f"arn:aws:sns:us-east-1:{OWNER}:t", "OWNER_TABLE_NAME": "table"}
    assert NotifyOwnerSettings.model_validate(base).consumer_notice_bus_name == ""
    told = {**base, "CONSUMER_NOTICE_BUS_NAME": "pipeshare-notices"}
    with pytest.raises(ValidationError, match="AWS_REGION"):
        NotifyOwnerSettings.model_validate(told)
    assert NotifyOwnerSettings.model_validate({**told, "AWS_REGION": "eu-west-1"}).partition == "aws"
