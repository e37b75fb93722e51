"""The scenario report's owner rows read from OwnerTable items, and the timeline's words for what an invocation
changed (pipeshare_local.scenario; the scenarios that reach these rows run in tests/integration)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare_local.scenario import Player, _changes_text

OWNER, CONSUMER = "111111111111", "444444444444"
SHARE = "arn:aws:ram:us-east-1:111111111111:resource-share/ABC-123"
PIPELINE = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/train"
EXECUTION = f"{PIPELINE}/execution/xyz"


class _Aliases:
    """The two Player methods the row builders use, with the scenario's account aliases."""

    ids = {"owner": OWNER, "consumer": CONSUMER}
    alias_of = Player.alias_of
    _account_alias = Player._account_alias
    _ledger_row = Player._ledger_row


def _ledger(subject: str, key: str, alert: dict[str, Any] | None = None) -> dict[str, Any]:
    item = {
        "pk": f"BUDGET#2026-06#{subject}",
        "sk": key,
        "item_type": "budget-ledger",
        "at": "2026-06-01T08:10:06.624498Z",
        "month": "2026-06",
        "spend_total": 0.078089,
        "monthly_limit": 0.05,
    }
    return _Aliases()._ledger_row("owner", item, alert, {EXECUTION: "run1"}, {SHARE.lower(): "train-share"})


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("THRESHOLD#0080", {"action": "threshold", "threshold_percent": 80, "dry_run": False, "failed": False}),
        (
            f"STOP#{EXECUTION}#2",
            {"action": "stop-execution", "label": "run1", "attempt": 2, "execution_arn": EXECUTION},
        ),
        (
            f"DRYRUN#STOP#{EXECUTION}#1",
            {"action": "stop-execution", "dry_run": True, "failed": False, "label": "run1", "attempt": 1},
        ),
        (
            f"FAILED#SHARE#{SHARE.lower()}#{CONSUMER}",
            {"action": "remove-from-share", "failed": True, "dry_run": False, "share": "train-share"},
        ),
        (
            f"DRYRUN#READONLY#{SHARE.lower()}#{CONSUMER}",
            {"action": "downgrade-to-read-only", "dry_run": True, "share": "train-share", "principal": "consumer"},
        ),
        (f"NOTE#SHARE#{SHARE.lower()}", {"action": "note-group-share", "share": "train-share", "principal": None}),
    ],
)
def test_a_ledger_key_is_read_as_the_action_it_records(key: str, expected: dict[str, Any]) -> None:
    row = _ledger(CONSUMER, key)
    assert {k: row.get(k) for k in expected} == expected
    assert (row["consumer"], row["pipeline"], row["key"]) == ("consumer", None, key)
    assert (row["spend_usd"], row["monthly_limit_usd"]) == ("0.078089", "0.05")


def test_an_unattributed_line_names_its_pipeline_and_the_alert_subject_is_kept() -> None:
    row = _ledger(f"UNATTRIBUTED#{PIPELINE.lower()}", "THRESHOLD#0100", {"subject": "pipeshare: train at 100%"})
    assert (row["consumer"], row["pipeline"], row["threshold_percent"]) == (None, "train", 100)
    assert row["alert_subject"] == "pipeshare: train at 100%"


def test_what_an_invocation_changed_is_said_in_words() -> None:
    assert _changes_text({}) == ""
    assert _changes_text({"dynamodb:TransactWriteItems": 3, "dynamodb:PutItem": 1, "sns:Publish": 2}) == (
        "4 record(s) written, 2 message(s) published"
    )
    assert _changes_text({"dynamodb:UpdateItem": 1, "sagemaker:StopPipelineExecution": 1, "sqs:SendMessage": 2}) == (
        "1 record(s) written, StopPipelineExecution, SendMessage x2"
    )
