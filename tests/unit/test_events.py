"""Input contracts (pipeshare.models.events) and pipeshare.validation.parse_or_reject, on the fixtures in events/."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from pydantic import model_validator

from pipeshare.models.base import MAX_EVENT_BYTES
from pipeshare.models.events import AcceptTrigger, RamStateChangeEvent, ScheduledEvent
from pipeshare.models.outbox import DecisionHistoryItem
from pipeshare.observability import logger, metrics
from pipeshare.validation import parse_or_reject
from tests.conftest import EVENTS, load_event

pytestmark = pytest.mark.usefixtures("socket_disabled")

INVITATION_ARN = "arn:aws:ram:us-east-1:111111111111:resource-share-invitation/3b3bc051-fbf6-4336-8377-06c559dfee49"
INVALID_FIXTURES = sorted(p.stem for p in EVENTS.glob("invalid_*.json"))


class Output:
    """stdout of the code under test: Powertools log lines and, after flush(), the EMF metrics blob."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self.lines: list[dict[str, Any]] = []

    def flush(self) -> Output:
        if metrics.metric_set:
            metrics.flush_metrics()
        out = self._capsys.readouterr().out
        self.lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        return self

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("level") == "ERROR"]

    def metric(self, name: str) -> list[float]:
        """Values of one metric in the EMF blobs printed (empty when it was not emitted)."""
        values: list[float] = []
        for line in self.lines:
            emf = line.get("_aws")
            if not emf:
                continue
            names = [m["Name"] for d in emf["CloudWatchMetrics"] for m in d["Metrics"]]
            if name in names:
                value = line[name]
                values.extend(value if isinstance(value, list) else [value])
        return values


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the time (capsys swaps it between test phases)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Output]:
    # The Powertools logger keeps the stream it was created with: point it at the current (captured) stdout.
    monkeypatch.setattr(logger.registered_handler, "stream", _CurrentStdout())
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    metrics.clear_metrics()
    yield Output(capsys)
    metrics.clear_metrics()


def accept_trigger(event: Any) -> AcceptTrigger | None:
    return parse_or_reject(event, AcceptTrigger, wrap="event")


def assert_rejected_once(output: Output, *, event_id: str | None) -> str:
    """Exactly one structured error line (with the event id and a reason) and one InvalidEvent metric."""
    output.flush()
    assert len(output.errors) == 1, output.lines
    line = output.errors[0]
    assert line["message"] == "invalid input"
    assert line.get("event_id") == event_id
    assert isinstance(line["reason"], str)
    assert line["reason"]
    assert output.metric("InvalidEvent") == [1.0]
    return str(line["reason"])


def assert_accepted_silently(output: Output) -> None:
    output.flush()
    assert output.errors == []
    assert output.metric("InvalidEvent") == []


# ----------------------------------------------------------------------------------------------------- valid events


def test_parse_or_reject_ram_invitation_event_targets_its_invitation(output: Output) -> None:
    # Given the RAM event for a new invitation
    event = load_event("ram_invitation_pending")

    # When
    trigger = accept_trigger(event)

    # Then it is a RAM state change naming the invitation to process
    assert trigger is not None
    assert isinstance(trigger.event, RamStateChangeEvent)
    assert trigger.event.invitation_arns() == [INVITATION_ARN]
    assert trigger.event.id == event["id"]
    assert trigger.event.detail.status == "pending"
    assert_accepted_silently(output)


def test_parse_or_reject_ram_event_without_resources_is_valid_and_names_nothing(output: Output) -> None:
    # Given a RAM event with no resources key and an undocumented detail key
    event = load_event("ram_no_resources")
    assert "resources" not in event

    # When
    trigger = accept_trigger(event)

    # Then it is valid, names no invitation (so the caller sweeps), and keeps the unknown detail key
    assert trigger is not None
    assert isinstance(trigger.event, RamStateChangeEvent)
    assert trigger.event.resources == []
    assert trigger.event.invitation_arns() == []
    assert trigger.event.detail.model_extra == {"undocumentedKey": {"nested": True}}
    assert_accepted_silently(output)


def test_parse_or_reject_association_event_names_no_invitation(output: Output) -> None:
    # Given a RAM association event, whose resource is a share ARN
    event = load_event("ram_association_failed")

    # When
    trigger = accept_trigger(event)

    # Then it is valid but names no invitation
    assert trigger is not None
    assert isinstance(trigger.event, RamStateChangeEvent)
    assert trigger.event.resources == event["resources"]
    assert trigger.event.invitation_arns() == []
    assert_accepted_silently(output)


def test_parse_or_reject_scheduled_event_is_a_sweep(output: Output) -> None:
    # Given the scheduled sweep event
    event = load_event("scheduled_sweep")

    # When
    trigger = accept_trigger(event)

    # Then
    assert trigger is not None
    assert isinstance(trigger.event, ScheduledEvent)
    assert trigger.event.detail_type == "Scheduled Event"
    assert_accepted_silently(output)


def test_parse_or_reject_ram_event_keeps_only_invitation_arns(output: Output) -> None:
    # Given a RAM event listing an invitation and a share
    share = "arn:aws:ram:us-east-1:111111111111:resource-share/c4506c70-df75-4e6c-ac30-42ca03295a37"
    event = load_event("ram_invitation_pending", resources=[share, INVITATION_ARN])

    # When
    trigger = accept_trigger(event)

    # Then only the invitation is targeted
    assert trigger is not None
    assert isinstance(trigger.event, RamStateChangeEvent)
    assert trigger.event.invitation_arns() == [INVITATION_ARN]


# ---------------------------------------------------------------------------------------------------- invalid events


# what each known invalid fixture's reason must mention (a new events/invalid_*.json is still checked generically)
EXPECTED_REASON = {
    "invalid_detail_not_object": "detail",
    "invalid_extra_field": "accept: Extra inputs are not permitted",
    "invalid_missing_detail": "detail: Field required",
    "invalid_wrong_source": "custom.attacker",
    "invalid_wrong_types": "version",
}


def test_invalid_fixtures_are_present() -> None:
    # Given / When / Then: the parametrised reject test below really runs over events/invalid_*.json
    assert set(EXPECTED_REASON) <= set(INVALID_FIXTURES)


@pytest.mark.parametrize("fixture", INVALID_FIXTURES)
def test_parse_or_reject_rejects_invalid_fixture(output: Output, fixture: str) -> None:
    # Given an invalid event from events/
    event = load_event(fixture)

    # When
    trigger = accept_trigger(event)

    # Then it is refused with one error line naming the event and the problem, and one metric
    assert trigger is None
    reason = assert_rejected_once(output, event_id=event.get("id"))
    assert EXPECTED_REASON.get(fixture, "") in reason


@pytest.mark.parametrize(
    "overrides",
    [
        {"resources": ["not-an-arn"]},
        {"resources": [INVITATION_ARN] * 101},
        {"detail_type": "AWS API Call via CloudTrail"},
        {"account": "22222222222"},
        {"region": "US-EAST-1"},
        {"version": "1"},
        {"id": ""},
    ],
    ids=["resource-not-arn", "too-many-resources", "wrong-detail-type", "bad-account", "bad-region", "version", "id"],
)
def test_parse_or_reject_rejects_a_spoiled_ram_event(output: Output, overrides: dict[str, Any]) -> None:
    # Given a valid RAM event with one field spoiled
    event = load_event("ram_invitation_pending", **overrides)

    # When / Then
    assert accept_trigger(event) is None
    assert_rejected_once(output, event_id=event["id"])


def test_parse_or_reject_rejects_an_oversized_event_before_parsing(output: Output) -> None:
    # Given a RAM event padded past EventBridge's 256 KiB, otherwise valid (detail tolerates unknown keys)
    detail = {"event": "Resource Share Invitation", "status": "pending", "padding": "x" * MAX_EVENT_BYTES}
    event = load_event("ram_invitation_pending", detail=detail)
    assert AcceptTrigger.model_validate({"event": event}) is not None
    validated: list[Any] = []

    class Recording(AcceptTrigger):
        @model_validator(mode="before")
        @classmethod
        def _record(cls, data: Any) -> Any:
            validated.append(data)
            return data

    Recording.model_validate({"event": load_event("ram_invitation_pending")})
    assert len(validated) == 1  # the spy sees every validation
    validated.clear()

    # When
    trigger = parse_or_reject(event, Recording, wrap="event")

    # Then it is refused on its size alone, without being validated
    assert trigger is None
    assert validated == []
    reason = assert_rejected_once(output, event_id=event["id"])
    assert f"{MAX_EVENT_BYTES}-byte" in reason


def test_parse_or_reject_validates_an_event_under_the_size_limit(output: Output) -> None:
    # Given the same padded event, just under the limit (the control for the test above)
    detail = {"event": "Resource Share Invitation", "status": "pending", "padding": "x" * (MAX_EVENT_BYTES - 1024)}
    event = load_event("ram_invitation_pending", detail=detail)

    # When / Then
    assert accept_trigger(event) is not None
    assert_accepted_silently(output)


def test_parse_or_reject_measures_size_in_utf8_bytes(output: Output) -> None:
    # Given a RAM event whose detail carries ~200 KB of UTF-8 text (100 000 x 'é', 2 bytes each)
    detail = {"event": "Resource Share Invitation", "status": "pending", "note": "é" * 100_000}
    event = load_event("ram_invitation_pending", detail=detail)
    assert len(json.dumps(event, ensure_ascii=False).encode()) < MAX_EVENT_BYTES

    # When / Then it is within EventBridge's limit, so it is parsed
    assert accept_trigger(event) is not None


@pytest.mark.parametrize("event", [None, "event", 42, [], ["not", "a", "dict"]], ids=repr)
def test_parse_or_reject_rejects_a_non_dict_event(output: Output, event: Any) -> None:
    # Given an event that is not a JSON object
    # When / Then it is refused, logged without an event id
    assert accept_trigger(event) is None
    assert_rejected_once(output, event_id=None)


def test_parse_or_reject_rejects_a_list_of_valid_events(output: Output) -> None:
    # Given a valid event wrapped in a list
    event = [load_event("ram_invitation_pending")]

    # When / Then
    assert accept_trigger(event) is None
    assert_rejected_once(output, event_id=None)


def test_parse_or_reject_non_string_event_id_is_not_logged_as_id(output: Output) -> None:
    # Given an invalid event whose id is not a string
    event = load_event("invalid_wrong_source", id={"$ne": None})

    # When / Then
    assert accept_trigger(event) is None
    assert_rejected_once(output, event_id=None)


def test_parse_or_reject_counts_each_rejected_event(output: Output) -> None:
    # Given two invalid events in one invocation
    # When both are rejected
    accept_trigger(load_event("invalid_wrong_source"))
    accept_trigger(load_event("invalid_missing_detail"))

    # Then there are two error lines and two InvalidEvent data points
    output.flush()
    assert [e["event_id"] for e in output.errors] == ["bad-0001-wrong-source", "bad-0002-missing-detail"]
    assert output.metric("InvalidEvent") == [1.0, 1.0]


# --------------------------------------------------------------------------------------------- DecisionHistoryItem


def new_image(**overrides: Any) -> dict[str, Any]:
    image = load_event("ddb_stream_decision_accepted")["Records"][0]["dynamodb"]["NewImage"]
    data = {key: TypeDeserializer().deserialize(value) for key, value in image.items()}
    data.update(overrides)
    return data


def test_decision_history_item_parses_the_stream_new_image(output: Output) -> None:
    # Given the NewImage of the ACCEPTED history item, deserialised as the stream delivers it
    image = new_image()

    # When
    item = parse_or_reject(image, DecisionHistoryItem)

    # Then
    assert item is not None
    assert (item.pk, item.sk) == (f"INVITATION#{INVITATION_ARN}", "HIST#2026-05-01T08:56:26Z#ACCEPTED")
    assert (item.kind, item.to_status, item.at) == ("invitation", "ACCEPTED", "2026-05-01T08:56:26Z")
    assert (item.invitation_arn, item.sender_account_id, item.receiver_account_id) == (
        INVITATION_ARN,
        "111111111111",
        "222222222222",
    )
    assert (item.decision, item.rule, item.policy_source) == ("accept", "trusted-owner", "parameters")
    assert [(r.arn, r.type) for r in item.resources] == [
        ("arn:aws:sagemaker:us-east-1:111111111111:pipeline/churn-train", "sagemaker:Pipeline")
    ]
    assert item.errors == []
    assert_accepted_silently(output)


@pytest.mark.parametrize(
    "overrides",
    [{"sk": "STATE"}, {"to_status": "DELETED"}, {"kind": "share"}, {"at": None}],
    ids=["state-item", "unknown-status", "unknown-kind", "no-time"],
)
def test_decision_history_item_rejects_other_items(output: Output, overrides: dict[str, Any]) -> None:
    # Given a stream image that is not a well-formed history item
    image = new_image(**overrides)

    # When / Then
    assert parse_or_reject(image, DecisionHistoryItem) is None
    assert_rejected_once(output, event_id=None)
