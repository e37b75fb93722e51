"""The owner side holds under every variant of every emulation setting (what AWS leaves undocumented).

One compact story runs once per variant, the other settings at their defaults: the owner's own run, a run by a
consumer without the forwarder (inferred after the settle period), a run by a forwarding consumer, a failed run
retried by the consumer. The product must reach the same truth whatever the variant: no consumer blamed for the owner's
run, one alert per consumer action, every run estimated, no event refused, nothing in a dead-letter queue.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare_local.scenario import Scenario, run_scenario
from pipeshare_local.settings import CloudTrailSettings, RamSettings, SageMakerSettings

pytestmark = pytest.mark.local_stack

OWNER, FORWARDING, SILENT = "111111111111", "222222222222", "444444444444"


def _variants() -> list[tuple[str, str, Any]]:
    """(block, setting, value) for every non-default value of every enumerated or boolean setting, plus the delay."""
    found: list[tuple[str, str, Any]] = [("cloudtrail", "delay_minutes", 5.0), ("cloudtrail", "delay_minutes", 9.0)]
    for block, model in (("cloudtrail", CloudTrailSettings), ("sagemaker", SageMakerSettings), ("ram", RamSettings)):
        for name, field in model.model_fields.items():
            values: tuple[Any, ...] = ()
            if field.annotation is bool:
                values = (not field.default,)
            elif getattr(field.annotation, "__args__", None) and all(
                isinstance(a, str) for a in field.annotation.__args__
            ):
                values = tuple(a for a in field.annotation.__args__ if a != field.default)
            found += [(block, name, value) for value in values]
    return found


VARIANTS = _variants()


def _story(block: str, name: str, value: Any) -> Scenario:
    owner_trail = not (block == "cloudtrail" and name == "owner_trail" and value is False)
    consumer_trail = not (block == "cloudtrail" and name == "consumer_trail" and value is False)
    # what the owner side can know of each run under this variant
    owner_run = {"source": "owner", "initiator": "owner"} if owner_trail else {"source": "ambiguous"}
    forwarded_run = {"source": "forwarded"} if consumer_trail else {"source": "inferred"}
    # without an owner trail the owner is a candidate for every run nobody claims: the silent consumer's run is
    # ambiguous between it and the owner, and nothing is counted to it
    silent_run = {"source": "inferred", "initiator": "silent"} if owner_trail else {"source": "ambiguous"}
    if block == "sagemaker" and name == "owner_cloudtrail_copy" and value is True:
        # the owner's copy of the silent consumer's own call names it: stronger evidence than the inference
        silent_run = {"source": "cloudtrail-owner-copy", "initiator": "silent"}
    silent_spend = {"min_usd": "0.0001"} if owner_trail else {"max_usd": "0"}
    return Scenario.model_validate(
        {
            "name": f"variant-{block}-{name}-{value}",
            "accounts": {
                "owner": {"id": OWNER},
                "forwarding": {"id": FORWARDING},
                "silent": {"id": SILENT},
            },
            block: {name: value},
            "deploy": [
                {"account": "owner", "mode": "owner", "parameters": {"ForwarderAccountIds": FORWARDING}},
                {
                    "account": "forwarding",
                    "parameters": {
                        "TrustedOwnerAccountIds": OWNER,
                        "OwnerEventBusArn": f"arn:aws:events:us-east-1:{OWNER}:event-bus/pipeshare-owner",
                    },
                },
                {"account": "silent", "parameters": {"TrustedOwnerAccountIds": OWNER}},
            ],
            "steps": [
                {"create_pipeline": {"account": "owner", "name": "solo"}},
                {"create_pipeline": {"account": "owner", "name": "fwd"}},
                {
                    "define_steps": {
                        "account": "owner",
                        "pipeline": "solo",
                        "steps": [{"name": "Prep", "duration_seconds": 300}],
                    }
                },
                {
                    "define_steps": {
                        "account": "owner",
                        "pipeline": "fwd",
                        "steps": [{"name": "Prep", "duration_seconds": 120, "outcome": "Failed"}],
                    }
                },
                {
                    "share": {
                        "account": "owner",
                        "name": "s-solo",
                        "resources": ["pipeline:solo"],
                        "principals": ["silent"],
                        "permission": "allow-execution",
                    }
                },
                {
                    "share": {
                        "account": "owner",
                        "name": "s-fwd",
                        "resources": ["pipeline:fwd"],
                        "principals": ["forwarding"],
                        "permission": "allow-execution",
                    }
                },
                {"advance": {"minutes": 61}},
                {"start_execution": {"account": "owner", "pipeline": "solo", "as": "owner-run"}},
                {"start_execution": {"account": "silent", "pipeline": "solo", "as": "silent-run"}},
                {"start_execution": {"account": "forwarding", "pipeline": "fwd", "as": "fwd-run"}},
                {"advance": {"minutes": 30}},
                {"retry_execution": {"account": "forwarding", "execution": "fwd-run"}},
                {"advance": {"minutes": 30}},
                {"redeliver_events": {"account": "owner", "count": 40, "reverse": True}},
                {"advance": {"minutes": 15}},
                {"expect_execution": {"owner": "owner", "execution": "owner-run", **owner_run}},
                {"expect_alerts": {"owner": "owner", "execution": "owner-run", "count": 0 if owner_trail else 1}},
                {"expect_execution": {"owner": "owner", "execution": "silent-run", **silent_run}},
                {"expect_alerts": {"owner": "owner", "execution": "silent-run", "action": "start", "count": 1}},
                {
                    "expect_execution": {
                        "owner": "owner",
                        "execution": "fwd-run",
                        "initiator": "forwarding",
                        **forwarded_run,
                    }
                },
                {"expect_alerts": {"owner": "owner", "execution": "fwd-run", "action": "start", "count": 1}},
                {
                    "expect_alerts": {
                        "owner": "owner",
                        "execution": "fwd-run",
                        "action": "retry",
                        "attempt": 2,
                        "consumer": "forwarding",
                        "count": 1,
                    }
                },
                {"expect_alerts": {"owner": "owner", "event": "execution.attribution-corrected", "count": 0}},
                {"expect_estimate": {"owner": "owner", "execution": "silent-run", "final": True}},
                {"expect_spend": {"owner": "owner", "consumer": "silent", **silent_spend}},
            ],
        }
    )


def test_every_undocumented_behaviour_has_variants_to_exercise() -> None:
    # Given the settings model / Then each block contributes variants (a new setting is exercised automatically)
    blocks = {block for block, _, _ in VARIANTS}
    assert blocks == {"cloudtrail", "sagemaker", "ram"}
    assert len(VARIANTS) >= 15


@pytest.mark.parametrize(("block", "name", "value"), VARIANTS, ids=[f"{b}.{n}={v}" for b, n, v in VARIANTS])
def test_owner_side_reaches_the_same_truth_under_the_variant(block: str, name: str, value: Any) -> None:
    # Given the story under one variant
    report = run_scenario(_story(block, name, value)).as_dict()

    # Then every expectation holds
    assert [e["text"] for e in report["expectations"] if not e["ok"]] == []
    # and no event was refused, no invocation failed (so nothing was retried into a dead-letter queue)
    invocations = report["invocations"]
    assert [i for i in invocations if (i.get("result") or {}).get("status") == "invalid"] == []
    assert [i for i in invocations if i.get("metrics", {}).get("InvalidEvent")] == []
    assert [(i["function"], i["error"]) for i in invocations if i.get("error")] == []
