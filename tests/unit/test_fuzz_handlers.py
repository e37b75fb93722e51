"""Property-based fuzzing of every handler (functions/*/app.py): the events/ fixtures each one receives, mutated at
every JSON path (a key dropped, a value replaced by random text, numbers, null, nested junk or a huge string, its type
changed, an unknown key added), and random JSON.

Each handler runs in-process with in-memory ports (tests/fakes.py) that record every call, healthy and seeded so that
a valid event can act (accept an invitation, publish, count spend, stop an execution). For every input:
- the handler does not raise (with healthy ports nothing is worth a retry: a raise on invalid input would make Lambda
  retry it, and a stream record would block its shard); a stream or queue batch reports no item failure;
- an input that fails validation gets exactly one structured error line (`invalid input`, the event id when there is
  one, what was wrong) and one `InvalidEvent` metric (EMF), the documented answer ({"status": "invalid"} from a rule
  target; an empty batchItemFailures from a stream or queue handler), and no call to any port: no RAM accept/reject,
  no SNS publish, no spend change, no StopPipelineExecution, not even a read;
- an input that passes validation may act normally.
Deterministic (derandomize, no example database); at least MIN_EVENTS events per handler, counted and asserted.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeshare import dependencies
from pipeshare.logic.budgets import parse_budget_policy
from pipeshare.logic.estimate import load_shipped_prices
from pipeshare.models.domain import OwnerRule, TrustPolicy
from pipeshare.models.executions import AlertKey, ExecutionRecord, OwnerAlert
from pipeshare.models.owner import Grant
from pipeshare.models.owner_events import SettleRequest
from pipeshare.models.projections import FinishedRun
from pipeshare.observability import logger
from tests.conftest import EVENTS, load_fixture_index
from tests.fakes import (
    ALLOW_EXECUTION,
    CONSUMER,
    OWNER,
    FakeBudgetLedger,
    FakeBudgetSource,
    FakeCostDataGateway,
    FakeCostRepository,
    FakeEnforcementGateway,
    FakeGrantRepository,
    FakeInvitationGateway,
    FakeNotifier,
    FakeOwnerShareGateway,
    FakePolicySource,
    FakePriceLookup,
    FakeRunningExecutions,
    FakeShareRepository,
    FakeSpendSource,
    raw_invitation,
    raw_resource,
)
from tests.fuzz_strategies import (
    FUNCTIONS,
    HANDLERS,
    mutate,
    mutation,
    random_batch_or_event,
    random_event,
    seeds,
)

pytestmark = [
    pytest.mark.usefixtures("socket_disabled"),
    pytest.mark.filterwarnings("ignore:No application metrics to publish"),
]

MIN_EVENTS = 1_000
EXAMPLES = 200
BATCH_MUTATIONS = 3  # each example runs 2 + BATCH_MUTATIONS + 1 events
ENVIRONMENT = {
    "SHARE_TABLE_NAME": "pipeshare-ShareTable",
    "TRUSTED_OWNER_ACCOUNT_IDS": OWNER,
    "ALLOWED_RESOURCE_TYPES": "sagemaker:Pipeline",
    "UNTRUSTED_ACTION": "hold",
    "DISALLOWED_RESOURCE_ACTION": "hold",
    "CONSUMER_TOPIC_ARN": f"arn:aws:sns:us-east-1:{CONSUMER}:pipeshare-decisions",
    "OWNER_TOPIC_ARN": f"arn:aws:sns:us-east-1:{OWNER}:pipeshare-owner",
    "OWNER_TABLE_NAME": "pipeshare-OwnerTable",
    "SETTLE_QUEUE_URL": f"https://sqs.us-east-1.amazonaws.com/{OWNER}/pipeshare-SettleQueue",
    "INFERENCE_SETTLE_MINUTES": "10",
    "BUDGET_POLICY_PARAMETER": "/pipeshare/budgets",
    "USE_PRICE_LIST_API": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Pipeshare",
    "POWERTOOLS_SERVICE_NAME": "pipeshare",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
# The port methods that change something outside the function: RAM answers, SNS publishes, table writes (spend
# included), the settle queue, enforcement (StopPipelineExecution, share changes).
WRITES = {
    "accept",
    "reject",
    "publish",
    "record_transition",
    "touch",
    "record_policy_invalid",
    "apply",
    "save",
    "commit",
    "move_spend",
    "resolve_pending",
    "record",
    "schedule",
    "stop_execution",
    "remove_principal",
    "grant_read_only",
}
BATCH_SOURCES = {"DynamoDB", "SQS"}
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
RUN: dict[str, Counter[str]] = {}  # what each handler was given (read by a report, if one asks)


# ---------------------------------------------------------------------------------------------- recording ports


@dataclass
class Calls:
    """Every port method called during one invocation, as (port, method)."""

    made: list[tuple[str, str]] = field(default_factory=list)

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.made if c[1] in WRITES]


class Recorded:
    """A port whose every method call is recorded, then delegated to the fake."""

    def __init__(self, name: str, fake: Any, calls: Calls) -> None:
        self._name, self._fake, self._calls = name, fake, calls

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._fake, attribute)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.made.append((self._name, attribute))
            return value(*args, **kwargs)

        return call


class Executions:
    """ports.ExecutionRepository in memory."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[ExecutionRecord, int]] = {}

    def get(self, execution_arn: str) -> tuple[ExecutionRecord | None, int]:
        return self.records.get(execution_arn.lower(), (None, 0))

    def save(
        self,
        record: ExecutionRecord,
        *,
        version: int,
        alerts: list[tuple[AlertKey, OwnerAlert]],
        at: datetime,
        **_: Any,
    ) -> bool:
        if self.records.get(record.key, (None, 0))[1] != version:
            return False
        self.records[record.key] = (record, version + 1)
        return True


class SageMaker:
    def describe_execution(self, execution_arn: str) -> dict[str, Any] | None:
        return {"PipelineArn": PIPELINE, "PipelineExecutionArn": execution_arn}

    def definition_for_execution(self, execution_arn: str) -> str:
        return json.dumps({"Version": "2020-12-01", "Steps": []})

    def parameters_for_execution(self, execution_arn: str) -> dict[str, str]:
        return {}


class History:
    def recent_runs(self, pipeline_arn: str, limit: int) -> list[FinishedRun]:
        return [FinishedRun(Decimal("4"), True)]

    def month_spend(self, month: str, consumer: str) -> Decimal:
        return Decimal("95")


class Scheduler:
    def schedule(self, request: SettleRequest, *, delay_seconds: int) -> None:
        pass


class Trail:
    def owner_calls_recorded(self, region: str) -> bool:
        return True


class Ledger(FakeBudgetLedger, FakeSpendSource, FakeRunningExecutions):
    """The owner table as the budget watcher reads and writes it (ledger, spend items, running executions)."""

    def __init__(self) -> None:
        FakeBudgetLedger.__init__(self)
        FakeSpendSource.__init__(self)
        FakeRunningExecutions.__init__(self)


class PublishOnce:
    """adapters.publish_once.PublishOnce: each item publishes through the recorded notifier."""

    def __init__(self, notifier: Any) -> None:
        self.notifier = notifier

    def for_item(self, pk: str, sk: str) -> Any:
        return self.notifier


def _grants() -> FakeGrantRepository:
    grant = Grant.model_validate(
        {
            "pipeline_arn": PIPELINE,
            "consumer": CONSUMER,
            "association_status": "ASSOCIATED",
            "share_arn": f"arn:aws:ram:us-east-1:{OWNER}:resource-share/s1",
            "share_name": "churn-share",
            "permission_arn": f"arn:aws:ram::aws:permission/{ALLOW_EXECUTION}",
            "permission_name": ALLOW_EXECUTION,
        }
    )
    return FakeGrantRepository([grant])


def _ram(events: list[Any]) -> FakeInvitationGateway:
    """RAM holding a pending invitation from the trusted owner for every invitation ARN the seeds name."""
    ram = FakeInvitationGateway()
    ram.add_invitation(raw_invitation("sweep"), [raw_resource("churn-train")])
    for event in events:
        for arn in event.get("resources", []) if isinstance(event, dict) else []:
            if isinstance(arn, str) and ":resource-share-invitation/" in arn:
                sender = arn.split(":")[4]
                raw = raw_invitation("seeded", sender=sender, resourceShareInvitationArn=arn)
                ram.add_invitation(raw, [raw_resource("churn-train", owner=sender)])
    return ram


def _factories(calls: Calls, ram_seeds: list[Any]) -> dict[str, Callable[..., Any]]:
    """dependencies.get_* -> a recorded in-memory port (fresh per invocation)."""
    notifier = Recorded("sns", FakeNotifier(), calls)
    budgets = parse_budget_policy({"version": 1, "consumers": {CONSUMER: {"monthly_limit": "1"}}}, source="fuzz")
    ports: dict[str, Any] = {
        "get_ram_gateway": ("ram", _ram(ram_seeds)),
        "get_share_repository": ("shares", FakeShareRepository()),
        "get_policy_source": ("policy", FakePolicySource(TrustPolicy(owners=[OwnerRule(account_id=OWNER)]))),
        "get_owner_gateway": ("ram-owner", FakeOwnerShareGateway()),
        "get_grant_repository": ("grants", _grants()),
        "get_execution_repository": ("executions", Executions()),
        "get_execution_gateway": ("sagemaker", SageMaker()),
        "get_definition_gateway": ("sagemaker-definitions", SageMaker()),
        "get_run_history": ("history", History()),
        "get_settle_scheduler": ("sqs", Scheduler()),
        "get_trail_status": ("cloudtrail", Trail()),
        "get_cost_repository": ("costs", FakeCostRepository()),
        "get_cost_gateway": ("sagemaker-costs", FakeCostDataGateway()),
        "get_budget_source": ("ssm-budgets", FakeBudgetSource(budgets)),
        "get_price_lookup": ("pricing", FakePriceLookup()),
        "get_budget_ledger": ("ledger", Ledger()),
        "get_enforcer": ("enforcement", FakeEnforcementGateway()),
    }
    made = {name: _returning(Recorded(label, fake, calls)) for name, (label, fake) in ports.items()}
    made["get_prices"] = lambda *_args, **_kwargs: SHIPPED_PRICES
    made["get_publish_once"] = lambda *_args, **_kwargs: PublishOnce(notifier)
    return made


def _returning(port: Any) -> Callable[..., Any]:
    return lambda *_args, **_kwargs: port


SHIPPED_PRICES = load_shipped_prices()


# ------------------------------------------------------------------------------------------------------ invoking


class Context:
    function_name = "pipeshare-fuzz"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:us-east-1:{OWNER}:function:pipeshare-fuzz"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/pipeshare-fuzz"
    log_stream_name = "fuzz"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


@dataclass
class Run:
    result: Any = None
    error: BaseException | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: Counter[str] = field(default_factory=Counter)
    calls: Calls = field(default_factory=Calls)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [line for line in self.logs if line.get("level") == "ERROR"]


@contextlib.contextmanager
def _captured() -> Iterator[io.StringIO]:
    """Powertools log lines and EMF blobs (both on stdout) of one invocation."""
    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def _parse(text: str, run: Run) -> None:
    for line in text.split("\n"):  # not splitlines(): a log line may hold U+0085 or U+2028
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if "_aws" not in entry:
            run.logs.append(entry)
            continue
        for directive in entry["_aws"].get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                values = entry.get(metric["Name"], [])
                run.metrics[metric["Name"]] += sum(values) if isinstance(values, list) else values


def invoke(handler: str, event: Any, ram_seeds: list[Any]) -> Run:
    module = importlib.import_module(f"functions.{handler}.app")
    run = Run()
    factories = _factories(run.calls, ram_seeds)
    with pytest.MonkeyPatch.context() as patch:
        for name in vars(module):
            if name.startswith("get_") and name in factories:
                patch.setattr(module, name, factories[name])
        with _captured() as out:
            try:
                run.result = module.lambda_handler(event, Context())
            except Exception as exc:  # the property checks that nothing is raised
                run.error = exc
    _parse(out.getvalue(), run)
    return run


# -------------------------------------------------------------------------------------------------- properties


def _event_id(event: Any) -> str | None:
    value = event.get("id") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


def _records(event: Any, *, sqs: bool) -> list[Any] | None:
    """The records of a batch as Lambda delivers it (each with its item identifier), else None."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        return None
    for record in records:
        if not isinstance(record, dict):
            return None
        stream = record.get("dynamodb")
        identifier = (
            record.get("messageId") if sqs else stream.get("SequenceNumber") if isinstance(stream, dict) else None
        )
        if not isinstance(identifier, str):
            return None
    return records


def _record_id(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    value = record.get("messageId", record.get("eventID"))
    return value if isinstance(value, str) else None


def check(handler: str, event: Any, run: Run) -> bool:
    """Assert the contract for one invocation; True when the input failed validation."""
    shown = json.dumps(event, default=str)[:600]
    assert run.error is None, f"{handler} raised {run.error!r} on {shown}"
    invalid = run.metrics["InvalidEvent"]
    errors = run.errors
    assert invalid == len(errors), f"{handler}: {invalid} InvalidEvent, {len(errors)} error lines on {shown}: {errors}"
    for line in errors:
        assert line["message"] == "invalid input", line
        assert isinstance(line.get("reason"), str), line
        assert line["reason"], line
    batch = bool(FUNCTIONS[handler]["sources"] & BATCH_SOURCES) and (
        handler != "watch_budgets" or (isinstance(event, dict) and "Records" in event)  # as the handler tells
    )
    if not batch:
        if invalid:
            assert invalid == 1, f"{handler}: {invalid} error lines for one event {shown}"
            assert errors[0].get("event_id") == _event_id(event), errors[0]
            assert run.result == {"status": "invalid"}, run.result
            assert run.calls.made == [], f"{handler} called {run.calls.made} on invalid input {shown}"
        else:
            assert isinstance(run.result, dict), run.result
            assert run.result.get("status") != "invalid", run.result
        return bool(invalid)
    assert run.result == {"batchItemFailures": []}, f"{handler} answered {run.result} on {shown}"
    records = _records(event, sqs="SQS" in FUNCTIONS[handler]["sources"])
    if records is None:  # not a batch at all
        assert invalid == 1, f"{handler}: {invalid} error lines for a malformed batch {shown}"
        assert run.calls.made == [], f"{handler} called {run.calls.made} on invalid input {shown}"
        return True
    if invalid == len(records):  # every record refused: nothing done for any of them
        assert run.calls.writes == [], f"{handler} wrote {run.calls.writes} on invalid input {shown}"
        assert {line.get("event_id") for line in errors} <= {_record_id(r) for r in records}, errors
    return invalid == len(records)


# ------------------------------------------------------------------------------------------------------ the test


@pytest.fixture(scope="module", autouse=True)
def _environment() -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(ENVIRONMENT)
    dependencies.reset()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        dependencies.reset()


@pytest.mark.parametrize("handler", HANDLERS)
def test_fuzzed_events_are_refused_once_without_side_effects_or_acted_on(handler: str) -> None:
    # Given the fixtures that reach the handler and a count of what it is given
    fixtures = seeds(handler)
    assert fixtures, f"no events/ fixture reaches {handler}"
    names = sorted(fixtures)
    batch = bool(FUNCTIONS[handler]["sources"] & BATCH_SOURCES)
    seen: Counter[str] = Counter()
    ram_seeds = list(fixtures.values())

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        # the events are large by design (whole fixtures, huge values): hypothesis' size warnings do not apply
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(name=st.sampled_from(names), data=st.data(), rng=st.randoms(use_true_random=True))
    def fuzz(name: str, data: st.DataObject, rng: random.Random) -> None:
        # When mutated fixtures and random structures are handed to the handler: one of each drawn by hypothesis
        # (shrunk on failure), and a batch more from a seeded random (each failure shows its event)
        events = [
            ("mutated", data.draw(mutation(fixtures[name]), label="mutated")),
            ("random", data.draw(random_event(batch), label="random")),
            *(("mutated", mutate(rng, fixtures[rng.choice(names)])) for _ in range(BATCH_MUTATIONS)),
            ("random", random_batch_or_event(rng, batch)),
        ]
        for kind, event in events:
            run = invoke(handler, event, ram_seeds)
            # Then it refuses invalid input once and does nothing with it, and acts on valid input without raising
            refused = check(handler, event, run)
            seen[kind] += 1
            seen["refused" if refused else "accepted"] += 1
            seen["acted"] += bool(run.calls.writes)

    fuzz()

    # Then at least MIN_EVENTS events were run, of both kinds, and some were refused
    assert seen["mutated"] >= MIN_EVENTS // 2, seen
    assert seen["random"] >= MIN_EVENTS // 4, seen
    assert seen["mutated"] + seen["random"] >= MIN_EVENTS, seen
    assert seen["refused"] > 0, seen
    RUN[handler] = seen


@pytest.mark.parametrize("handler", HANDLERS)
def test_the_unmutated_fixtures_are_read_as_events_sources_json_expects(handler: str) -> None:
    # Given the fixtures that reach the handler, and what events/sources.json says handlers make of them
    expect = {entry["file"]: entry["expect"] for entry in load_fixture_index()}
    for name, event in seeds(handler).items():
        # When each is handed over as it is
        run = invoke(handler, event, list(seeds(handler).values()))
        refused = check(handler, event, run)
        # Then an invalid fixture is refused and a parsed one is not (a stream record is whatever its item is)
        if expect.get(name) == "invalid":
            assert refused, name
        elif expect.get(name) == "parsed":
            assert not refused, (name, run.errors)


def _with(name: str, change: Callable[[Any], None]) -> Any:
    return _with_value(json.loads((EVENTS / name).read_text()), change)


def _with_value(value: Any, change: Callable[[Any], None]) -> Any:
    value = copy.deepcopy(value)
    change(value)
    return value


def _drop(*path: Any) -> Callable[[Any], None]:
    def change(event: Any) -> None:
        for step in path[:-1]:
            event = event[step]
        del event[path[-1]]

    return change


def _set(value: Any, *path: Any) -> Callable[[Any], None]:
    def change(event: Any) -> None:
        for step in path[:-1]:
            event = event[step]
        event[path[-1]] = value

    return change


SETTLE = seeds("settle_attribution")["sqs:settle_request"]
STREAM = "ddb_stream_decision_accepted.json"
# What fuzzing found, each once a crash, a retry of what no retry can fix, or a refusal without the event's id.
REGRESSIONS = {
    "stream image not DynamoDB JSON": (
        ["notify_decisions", "notify_owner", "watch_budgets"],
        _with(STREAM, _set({"Message": {}}, "Records", 0, "dynamodb", "NewImage", "kind")),
    ),
    "stream record without its sequence number": (
        ["notify_decisions", "notify_owner", "watch_budgets"],
        _with(STREAM, _drop("Records", 0, "dynamodb", "SequenceNumber")),
    ),
    "stream item refused: the record's eventID": (["notify_owner"], _with(STREAM, lambda event: None)),
    "not a batch": (["notify_decisions", "notify_owner", "settle_attribution"], {}),
    "an empty batch": (["notify_decisions", "notify_owner", "settle_attribution", "watch_budgets"], {"Records": []}),
    "records that are not objects": (["notify_decisions", "settle_attribution"], {"Records": ["x", 1]}),
    "a message without body": (["settle_attribution"], _with_value(SETTLE, _drop("Records", 0, "body"))),
    "a message without its id": (["settle_attribution"], _with_value(SETTLE, _drop("Records", 0, "messageId"))),
    "a message without its queue ARN": (
        ["settle_attribution"],
        _with_value(SETTLE, _drop("Records", 0, "eventSourceARN")),
    ),
    "a valid RAM share change to the tracker": (
        ["track_executions"],
        _with("invalid_missing_detail.json", _set({}, "detail")),
    ),
}


@pytest.mark.parametrize(
    ("case", "handler"), [(case, handler) for case, (handlers, _) in REGRESSIONS.items() for handler in handlers]
)
def test_what_fuzzing_found_stays_fixed(case: str, handler: str) -> None:
    # Given an input fuzzing once broke the handler with
    event = REGRESSIONS[case][1]
    # When it is handed to the handler
    run = invoke(handler, event, [])
    # Then the contract holds: no raise, no item failure, one error line and one metric per refusal, no side effect
    check(handler, event, run)
