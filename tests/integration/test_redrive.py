"""`pipeshare redrive QUEUE`: failed invocations replayed from the on-failure queue into their function."""

from __future__ import annotations

import json

import pytest

import pipeshare.observability  # noqa: F401 - the functions' log handler binds the session's stdout, not capsys's
from pipeshare_local.cli import main
from pipeshare_local.redrive import Replay, replay_of
from pipeshare_local.settings import Fault
from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import CONSUMER, OWNER, share_pipeline, state

THROTTLED_ACCEPT = Fault(
    service="ram",
    operation="AcceptResourceShareInvitation",
    function="AcceptInvitationsFunction",
    error="Throttling",
    count=1000,
)


def _failed_accept(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> str:
    """A trusted share whose acceptance fails on every retry: its event lands in the acceptor's on-failure queue.
    The CLI's default session gets the consumer's credentials; returns the queue URL."""
    stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER})
    stack.settings.faults = [THROTTLED_ACCEPT]
    share_pipeline(stack, OWNER, "churn-train", [CONSUMER])
    stack.deliver()
    stack.settings.faults = []
    credentials = stack.credentials(CONSUMER, "tooling")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, credentials[name])
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return str(stack.deployments[CONSUMER].refs["AcceptInvitationsDlq"])


def test_redrive_replays_a_failed_event_into_its_function_and_empties_the_queue(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a RAM event whose acceptance failed every retry (the fault is gone now)
    queue = _failed_accept(stack, monkeypatch)
    (record,) = stack.queue_messages(CONSUMER, "AcceptInvitationsDlq")
    assert record["requestPayload"]["source"] == "aws.ram"
    assert state(stack, CONSUMER, "churn-train-share") is None
    # When the queue is redriven
    code = main(["redrive", queue, "--endpoint-url", stack.endpoint, "--region", stack.region])
    lines = capsys.readouterr().out.splitlines()
    stack.deliver()
    # Then the event ran again in its function, the share is accepted and the queue is empty
    assert code == 0
    assert lines[0].startswith("redriven")
    assert "pipeshare-AcceptInvitationsFunction" in lines[0]
    assert lines[-1] == "1 redriven"
    invocations = stack.deployments[CONSUMER].functions["AcceptInvitationsFunction"].invocations
    replayed = [(i.event_id, i.error) for i in invocations if i.trigger == "invoke"]
    assert replayed == [(record["requestPayload"]["id"], None)]
    assert (state(stack, CONSUMER, "churn-train-share") or {}).get("status") == "ACCEPTED"
    assert stack.queue_messages(CONSUMER, "AcceptInvitationsDlq") == []


def test_redrive_dry_run_changes_nothing(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a failed event in the on-failure queue
    queue = _failed_accept(stack, monkeypatch)
    invoked = len(stack.deployments[CONSUMER].functions["AcceptInvitationsFunction"].invocations)
    # When the queue is redriven with --dry-run
    code = main(["redrive", queue, "--dry-run", "--endpoint-url", stack.endpoint, "--region", stack.region])
    lines = capsys.readouterr().out.splitlines()
    stack.deliver()
    # Then it says what it would do, the message is still there (visible) and nothing ran
    assert code == 0
    assert lines[0].startswith("would redrive")
    assert len(stack.queue_messages(CONSUMER, "AcceptInvitationsDlq")) == 1
    assert len(stack.deployments[CONSUMER].functions["AcceptInvitationsFunction"].invocations) == invoked
    assert state(stack, CONSUMER, "churn-train-share") is None


def test_redrive_keeps_what_it_cannot_replay() -> None:
    # Given a stream batch record (a stream position, no payload) and rule dead letters for a function and a bus
    stream = {"Body": json.dumps({"requestContext": {"functionArn": "arn:aws:lambda:us-east-1:1:function:f"}})}
    event = {"id": "e1", "source": "aws.ram"}
    to_function = {
        "Body": json.dumps(event),
        "MessageAttributes": {"TARGET_ARN": {"StringValue": "arn:aws:lambda:us-east-1:1:function:f"}},
    }
    to_bus = {
        "Body": json.dumps(event),
        "MessageAttributes": {"TARGET_ARN": {"StringValue": "arn:aws:events:us-east-1:1:event-bus/b"}},
    }
    # When each is read / Then only the function's dead letter is replayed, with the event as its payload
    assert "stream batch record" in str(replay_of(stream))
    assert replay_of(to_function) == Replay("arn:aws:lambda:us-east-1:1:function:f", event, "rule dead letter")
    assert "is not a Lambda function" in str(replay_of(to_bus))
