"""Property-based fuzzing of every handler (functions/*/app.py): the events/ fixtures each one receives, mutated at
every JSON path (a key dropped, a value replaced by random text, numbers, null, nested junk or a huge string, its type
changed, an unknown key added), and random JSON.

Each handler runs in-process (tests/handler_harness.py) in the environment template.yaml gives its function, with the
shared in-memory ports (tests/fakes.py), every call recorded, healthy and seeded so that a valid event can act (accept
an invitation, publish, count spend, stop an execution). For every input:
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

import copy
import importlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeshare.adapters.publish_once import PublishOnce
from pipeshare.logic.budgets import month_of, parse_budget_policy
from pipeshare.logic.estimate import load_shipped_prices
from pipeshare.models.domain import OwnerRule, TrustPolicy
from pipeshare.models.owner import Grant
from pipeshare.models.projections import FinishedRun
from pipeshare.models.types import pipeline_of
from tests.conftest import EVENTS, load_fixture_index
from tests.fakes import (
    ALLOW_EXECUTION,
    CONSUMER,
    OWNER,
    FakeBudgetSource,
    FakeCostDataGateway,
    FakeCostRepository,
    FakeDefinitionGateway,
    FakeEnforcementGateway,
    FakeExecutionGateway,
    FakeExecutionRepository,
    FakeGrantRepository,
    FakeInvitationGateway,
    FakeNotifier,
    FakeOwnerShareGateway,
    FakeOwnerTable,
    FakePolicySource,
    FakePriceLookup,
    FakeRunHistory,
    FakeSettleScheduler,
    FakeShareRepository,
    FakeTrailStatus,
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
from tests.handler_harness import Marks, PlainValue, Recorded, Run, call, environment, factories_of, prepare

pytestmark = [
    pytest.mark.usefixtures("socket_disabled"),
    pytest.mark.filterwarnings("ignore:No application metrics to publish"),
]

MIN_EVENTS = 1_000
EXAMPLES = 200
BATCH_MUTATIONS = 3  # each example runs 2 + BATCH_MUTATIONS + 1 events
# Template parameters (the environment itself is template.yaml's, tests/handler_harness.environment): every function
# deployed, the fixtures' owner trusted, a budget policy to read.
PARAMETERS = {
    "Mode": "both",
    "TrustedOwnerAccountIds": OWNER,
    "BudgetPolicyParameterName": "/pipeshare/budgets",
    "ConsumerNoticeBusName": "pipeshare-notices",
}
# The port methods that change something outside the function: RAM answers, SNS publishes (and their publish marks),
# table writes (spend included), the settle queue, enforcement (StopPipelineExecution, share changes).
WRITES = {
    "accept",
    "reject",
    "publish",
    "put_item",
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
EXECUTION_ARN = re.compile(r"arn:aws:sagemaker:[a-z0-9-]+:[0-9]{12}:pipeline/[^/\s]+/execution/[^/\s\"]+")
RUN: dict[str, Counter[str]] = {}  # what each handler was given (read by a report, if one asks)
SHIPPED_PRICES = load_shipped_prices()


# ------------------------------------------------------------------------------------ the shared fakes, seeded


def _writes(run: Run) -> list[tuple[str, str]]:
    return [c for c in run.calls if c[1] in WRITES]


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


def _executions(events: list[Any]) -> set[str]:
    """Every pipeline execution ARN the seeds name (SageMaker knows each of them)."""
    return set(EXECUTION_ARN.findall(json.dumps(events)))


def _sagemaker(executions: set[str]) -> tuple[FakeExecutionGateway, FakeDefinitionGateway, FakeRunHistory]:
    """SageMaker knowing the seeds' executions (an empty definition each), and a finished run of each of their
    pipelines (USD 4), the consumer having spent USD 95 this month: a claim can be verified, a start projected."""
    described = FakeExecutionGateway(
        {arn: {"PipelineArn": pipeline_of(arn), "PipelineExecutionArn": arn} for arn in executions}
    )
    definitions = FakeDefinitionGateway()
    history = FakeRunHistory()
    for arn in executions:
        definitions.add(arn, json.dumps({"Version": "2020-12-01", "Steps": []}))
        history.runs[pipeline_of(arn).lower()] = [FinishedRun(Decimal("4"), True)]
    history.spend[(month_of(datetime.now(UTC)), CONSUMER)] = Decimal("95")
    return described, definitions, history


def _fakes(handler: str, run: Run, ram_seeds: list[Any]) -> dict[str, Any]:
    """dependencies.get_* -> a fresh in-memory port (tests/fakes.py), for the factories the handler imports. The
    notifier sits behind the real PublishOnce, its publish marks in memory; both record their calls in `run`."""
    module = importlib.import_module(f"functions.{handler}.app")
    variables = environment(handler, PARAMETERS)
    table = variables.get("OWNER_TABLE_NAME") or variables.get("SHARE_TABLE_NAME") or "pipeshare-table"
    notifier = Recorded("sns", FakeNotifier(), run.calls)
    marks = Recorded("publish-marks", Marks(), run.calls)
    budgets = parse_budget_policy({"version": 1, "consumers": {CONSUMER: {"monthly_limit": "1"}}}, source="fuzz")
    described, definitions, history = _sagemaker(_executions(ram_seeds))
    fakes: dict[str, Any] = {
        "get_ram_gateway": _ram(ram_seeds),
        "get_share_repository": FakeShareRepository(),
        "get_policy_source": FakePolicySource(TrustPolicy(owners=[OwnerRule(account_id=OWNER)])),
        "get_owner_gateway": FakeOwnerShareGateway(),
        "get_grant_repository": _grants(),
        "get_execution_repository": FakeExecutionRepository(),
        "get_execution_gateway": described,
        "get_definition_gateway": definitions,
        "get_run_history": history,
        "get_settle_scheduler": FakeSettleScheduler(),
        "get_trail_status": FakeTrailStatus(),
        "get_cost_repository": FakeCostRepository(),
        "get_cost_gateway": FakeCostDataGateway(),
        "get_budget_source": FakeBudgetSource(budgets),
        "get_price_lookup": FakePriceLookup(),
        "get_budget_ledger": FakeOwnerTable(),
        "get_enforcer": FakeEnforcementGateway(),
        "get_prices": PlainValue(SHIPPED_PRICES),
        "get_publish_once": PublishOnce(notifier, table, client=marks),  # type: ignore[arg-type]
        "get_notice_publisher": PublishOnce(notifier, table, client=marks),  # type: ignore[arg-type]
    }
    return {name: fake for name, fake in fakes.items() if name in factories_of(module)}


# ------------------------------------------------------------------------------------------------------ invoking


def invoke(handler: str, event: Any, ram_seeds: list[Any], context: Any) -> Run:
    """The handler called with `event` and fresh fakes (in the environment `prepare` put in place); what it raises is
    kept in `Run.error`."""
    module = importlib.import_module(f"functions.{handler}.app")
    run = Run()
    fakes = _fakes(handler, run, ram_seeds)
    with pytest.MonkeyPatch.context() as patch:
        call(module, event, context, fakes, patch, run=run, catch=True)
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
            assert run.calls == [], f"{handler} called {run.calls} on invalid input {shown}"
        else:
            assert isinstance(run.result, dict), run.result
            assert run.result.get("status") != "invalid", run.result
        return bool(invalid)
    assert run.result == {"batchItemFailures": []}, f"{handler} answered {run.result} on {shown}"
    records = _records(event, sqs="SQS" in FUNCTIONS[handler]["sources"])
    if records is None:  # not a batch at all
        assert invalid == 1, f"{handler}: {invalid} error lines for a malformed batch {shown}"
        assert run.calls == [], f"{handler} called {run.calls} on invalid input {shown}"
        return True
    if invalid == len(records):  # every record refused: nothing done for any of them
        assert _writes(run) == [], f"{handler} wrote {_writes(run)} on invalid input {shown}"
        assert {line.get("event_id") for line in errors} <= {_record_id(r) for r in records}, errors
    return invalid == len(records)


# ------------------------------------------------------------------------------------------------------ the test


@pytest.mark.parametrize("handler", HANDLERS)
def test_fuzzed_events_are_refused_once_without_side_effects_or_acted_on(
    handler: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the handler's function as template.yaml deploys it, the fixtures reaching it, a count of what it is given
    prepare(handler, PARAMETERS, lambda_context, monkeypatch)
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
            run = invoke(handler, event, ram_seeds, lambda_context)
            # Then it refuses invalid input once and does nothing with it, and acts on valid input without raising
            refused = check(handler, event, run)
            seen[kind] += 1
            seen["refused" if refused else "accepted"] += 1
            seen["acted"] += bool(_writes(run))

    fuzz()

    # Then at least MIN_EVENTS events were run, of both kinds, and some were refused
    assert seen["mutated"] >= MIN_EVENTS // 2, seen
    assert seen["random"] >= MIN_EVENTS // 4, seen
    assert seen["mutated"] + seen["random"] >= MIN_EVENTS, seen
    assert seen["refused"] > 0, seen
    RUN[handler] = seen


@pytest.mark.parametrize("handler", HANDLERS)
def test_the_unmutated_fixtures_are_read_as_events_sources_json_expects(
    handler: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the fixtures that reach the handler, and what events/sources.json says handlers make of them
    prepare(handler, PARAMETERS, lambda_context, monkeypatch)
    expect = {entry["file"]: entry["expect"] for entry in load_fixture_index()}
    for name, event in seeds(handler).items():
        # When each is handed over as it is
        run = invoke(handler, event, list(seeds(handler).values()), lambda_context)
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
def test_what_fuzzing_found_stays_fixed(
    case: str, handler: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an input fuzzing once broke the handler with
    prepare(handler, PARAMETERS, lambda_context, monkeypatch)
    event = REGRESSIONS[case][1]
    # When it is handed to the handler
    run = invoke(handler, event, [], lambda_context)
    # Then the contract holds: no raise, no item failure, one error line and one metric per refusal, no side effect
    check(handler, event, run)
