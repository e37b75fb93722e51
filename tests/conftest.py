"""Shared fixtures: event loading from events/ (the single fixture source), a Lambda context, offline env defaults."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

# Never talk to a real account from tests.
for _key, _value in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "pipeshare",
    "POWERTOOLS_METRICS_NAMESPACE": "Pipeshare",
}.items():
    os.environ.setdefault(_key, _value)
os.environ.pop("AWS_PROFILE", None)


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    """An event from events/<name>.json; top-level keys replaced by overrides (use detail_type for detail-type)."""
    event = json.loads((EVENTS / f"{name}.json").read_text())
    for key, value in overrides.items():
        event[key.replace("detail_type", "detail-type")] = copy.deepcopy(value)
    return event


def load_fixture_index() -> list[dict[str, Any]]:
    """The entries of events/sources.json: each fixture's origin and source, the rules it must match, what to expect."""
    return list(json.loads((EVENTS / "sources.json").read_text())["fixtures"])


@pytest.fixture(autouse=True)
def _fresh_metrics() -> None:
    """Each test starts as a fresh invocation: Powertools metrics are process-wide, so a metric one test added without
    a flushing handler would otherwise be counted in the next test's EMF (an order-dependent failure under xdist)."""
    from pipeshare.observability import metrics

    metrics.clear_metrics()


@pytest.fixture
def lambda_context() -> Any:
    class _Context:
        function_name = "pipeshare-test"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:222222222222:function:pipeshare-test"
        memory_limit_in_mb = 256
        aws_request_id = "00000000-0000-4000-8000-000000000000"
        log_group_name = "/aws/lambda/pipeshare-test"
        log_stream_name = "test"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 60_000

    return _Context()


def create_pk_sk_table(client: Any, name: str, *, stream: bool = False) -> None:
    """A pk + sk string-keyed, on-demand table as pipeshare's tables are (optionally with a NEW_AND_OLD_IMAGES
    stream), for adapter tests on moto."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        **({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}),
    )
