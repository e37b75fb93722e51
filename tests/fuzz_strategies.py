"""Hypothesis strategies for fuzzing the handlers: the events/ fixtures each handler receives (events/sources.json for
the rules, template.yaml for rules, streams and queues -> functions), mutated at every JSON path, and random JSON.

A handler is named by its folder under functions/. Seeds come only from events/; the SQS settle message (no AWS event
is stored for it) is the Lambda SQS record shape the local stack delivers, around a SettleRequest naming the execution
of an events/ fixture.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from pipeshare_local.template import load_template
from tests.conftest import EVENTS, load_fixture_index

RULE_EVENT_TYPES = {"EventBridgeRule", "Schedule"}
INVALID = "invalid"  # expect: refused by every handler invoked with it


def _functions() -> dict[str, dict[str, Any]]:
    """Handler folder -> {logical id, the types of its event sources, its rule targets '<Function>:<Event>'}."""
    found: dict[str, dict[str, Any]] = {}
    for logical_id, spec in load_template()["Resources"].items():
        if spec["Type"] != "AWS::Serverless::Function":
            continue
        folder = spec["Properties"]["CodeUri"].rstrip("/").rsplit("/", 1)[-1]
        events = spec["Properties"].get("Events", {})
        found[folder] = {
            "logical_id": logical_id,
            "sources": {e["Type"] for e in events.values()},
            "rules": {f"{logical_id}:{name}" for name, e in events.items() if e["Type"] in RULE_EVENT_TYPES},
        }
    return found


FUNCTIONS = _functions()
HANDLERS = sorted(FUNCTIONS)


def _load(file: str) -> Any:
    return json.loads((EVENTS / file).read_text())


def _settle_message(execution_arn: str) -> dict[str, Any]:
    """One SQS batch of one settle request, as Lambda's SQS event source (and the local stack) delivers it."""
    body = json.dumps({"execution_arn": execution_arn, "action": "start", "attempt": 0})
    return {
        "Records": [
            {
                "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1777626000000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1777626000001",
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:111111111111:pipeshare-SettleQueue",
                "awsRegion": "us-east-1",
            }
        ]
    }


def seeds(handler: str) -> dict[str, Any]:
    """The events/ fixtures that reach `handler` (by rule, stream or queue), plus the invalid ones for rule targets."""
    function = FUNCTIONS[handler]
    found: dict[str, Any] = {}
    for entry in load_fixture_index():
        reaches = bool(function["rules"] & set(entry["routes_to"]))
        if entry["expect"] == "stream-record":
            reaches = "DynamoDB" in function["sources"]
        elif entry["expect"] == INVALID:
            reaches = bool(function["rules"])
        if reaches:
            found[entry["file"]] = _load(entry["file"])
    if "SQS" in function["sources"]:
        status = _load("sagemaker_execution_status_succeeded.json")
        found["sqs:settle_request"] = _settle_message(status["detail"]["pipelineExecutionArn"])
    return found


# ------------------------------------------------------------------------------------------------- junk and mutation

HUGE = 300_000  # over EventBridge's 256 KB event limit once serialised

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", " ", "0", "-1", "null", "2026-13-45T99:99:99Z", "arn:aws:", "111111111111", "\x00", "é" * 5]),
)

json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

huge = st.sampled_from(["x" * HUGE, ("y" * 1000,) * (HUGE // 1000)]).map(lambda v: v if isinstance(v, str) else list(v))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value (keys and list indexes), the root first."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


def _retype(value: Any) -> list[Any]:
    """The same value as other JSON types."""
    return [str(value), [value], {"value": value}, 0 if isinstance(value, str) else "0", value is None]


@st.composite
def mutation(draw: st.DrawFn, event: Any) -> Any:
    """`event` with one to three mutations, each at a path of the value as it is by then: the key dropped, the value
    replaced (random scalar or nested junk, null, a huge string), its type changed, or an unknown key added."""
    event = copy.deepcopy(event)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(list(paths(event))))
        op = draw(st.sampled_from(["drop", "replace", "retype", "add", "huge"] if path else ["replace", "retype"]))
        if op == "huge" and draw(st.integers(0, 9)):  # a huge value now and then: it is slow to serialise
            op = "replace"
        replacement: Any = None
        if op == "replace":
            replacement = draw(json_values)
        elif op == "retype":
            replacement = draw(st.sampled_from(_retype(_get(event, path))))
        elif op == "huge":
            replacement = draw(huge)
        elif op == "add":
            target = _get(event, path)
            if isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
                continue
            replacement = draw(json_values)
        replacement = copy.deepcopy(replacement)  # never an object shared with the event or another draw
        if not path:
            event = replacement
        elif op == "drop":
            _delete(event, path)
        else:
            _get(event, path[:-1])[path[-1]] = replacement
    return event


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _delete(value: Any, path: tuple[Any, ...]) -> None:
    parent = _get(value, path[:-1])
    del parent[path[-1]]


def random_event(batch: bool) -> st.SearchStrategy[Any]:
    """Random JSON; for a stream or queue handler also random records in a batch envelope."""
    base = st.one_of(
        json_values, st.dictionaries(st.sampled_from(["id", "source", "detail-type", "detail"]), json_values)
    )
    if not batch:
        return base
    records = st.lists(
        st.one_of(
            json_values, st.dictionaries(st.sampled_from(["dynamodb", "body", "messageId", "eventID"]), json_values)
        ),
        min_size=1,
        max_size=3,
    )
    return st.one_of(base, st.builds(lambda r: {"Records": r}, records))


# ---------------------------------------------------------------- the same operators from a seeded random (batches)

_WORDS = ["", " ", "0", "-1", "null", "true", "2026-13-45T99:99:99Z", "arn:aws:", "111111111111", "\x00", "\u2028", "é"]


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: a scalar, or (less often the deeper it is) a small list or object of junk."""
    roll = rng.random()
    if depth < 3 and roll < 0.2:
        return [junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and roll < 0.4:
        return {
            rng.choice([*_WORDS, "id", "detail", "Records"]): junk(rng, depth + 1) for _ in range(rng.randint(0, 3))
        }
    return rng.choice(
        [
            None,
            rng.random() < 0.5,
            rng.randint(-(2**63), 2**64),
            rng.uniform(-1e12, 1e12),
            rng.choice(_WORDS),
            "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 12))),
        ]
    )


def mutate(rng: random.Random, event: Any) -> Any:
    """`event` with one to three mutations, as `mutation` makes them, chosen by `rng`."""
    event = copy.deepcopy(event)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(list(paths(event)))
        op = rng.choice(["drop", "replace", "retype", "add"] if path else ["replace", "retype"])
        if op == "add" and isinstance(_get(event, path), dict):
            _get(event, path)[rng.choice(_WORDS) + "x"] = junk(rng)
            continue
        if op == "drop":
            _delete(event, path)
            continue
        value = copy.deepcopy(rng.choice(_retype(_get(event, path)))) if op == "retype" else junk(rng)
        if not path:
            event = value
        else:
            _get(event, path[:-1])[path[-1]] = value
    return event


def random_batch_or_event(rng: random.Random, batch: bool) -> Any:
    """Random JSON; for a stream or queue handler half of the time records of junk in a batch envelope."""
    if batch and rng.random() < 0.5:
        return {"Records": [junk(rng, 1) for _ in range(rng.randint(1, 3))]}
    return junk(rng)
