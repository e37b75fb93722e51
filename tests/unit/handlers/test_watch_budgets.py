"""functions/watch_budgets: the owner table's stream (spend totals, execution states, estimates), the budget policy's
SSM change and the daily schedule, with the budget ledger, spend, running executions, grants, enforcement and the
policy in memory."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.budgets import ConsumerSpend, month_of, parse_budget_policy
from tests.conftest import load_event
from tests.fakes import (
    CONSUMER,
    FakeBudgetLedger,
    FakeBudgetSource,
    FakeEnforcementGateway,
    FakeGrantRepository,
    FakeRunningExecutions,
    FakeSpendSource,
)
from tests.unit.handlers.conftest import Invoker, assert_refused_without_side_effect, invalid_fixtures, stream_batch

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "watch_budgets"
POLICY_CHANGED = load_event("ssm_parameter_store_change_budget_policy")
PARAMETERS = {"Mode": "owner", "BudgetPolicyParameterName": POLICY_CHANGED["detail"]["name"]}
NO_FAILURE = {"batchItemFailures": []}


class OwnerTable(FakeBudgetLedger, FakeSpendSource, FakeRunningExecutions):
    """The owner table as the watcher reads and writes it: one object for the ledger, the spend and the runs."""

    def __init__(self) -> None:
        FakeBudgetLedger.__init__(self)
        FakeSpendSource.__init__(self)
        FakeRunningExecutions.__init__(self)


class Owner:
    def __init__(self, limit: str = "100") -> None:
        policy = {"version": 1, "consumers": {CONSUMER: {"monthly_limit": limit}}}
        self.budgets = FakeBudgetSource(parse_budget_policy(policy, source="test"))
        self.table = OwnerTable()
        self.grants = FakeGrantRepository()
        self.enforcer = FakeEnforcementGateway()

    def ports(self) -> dict[str, Any]:
        return {
            "get_budget_source": self.budgets,
            "get_budget_ledger": self.table,
            "get_grant_repository": self.grants,
            "get_enforcer": self.enforcer,
        }


def consumer_total(total: str, *, month: str | None = None) -> dict[str, Any]:
    """A consumer's month-to-date spend item (SPEND#<month> / CONSUMER#<account>) as the cost code writes it."""
    month = month or month_of(datetime.now(UTC))
    return {
        "pk": f"SPEND#{month}",
        "sk": f"CONSUMER#{CONSUMER}",
        "kind": "consumer-total",
        "consumer_account": CONSUMER,
        "month": month,
        "total": Decimal(total),
    }


def test_a_spend_change_over_thresholds_records_one_alert_for_them(invoke: Invoker) -> None:
    # Given a consumer at 95 of its 100 budget this month (stream record of its spend item)
    owner = Owner()

    # When the record arrives
    run = invoke(stream_batch(consumer_total("95")), **owner.ports())

    # Then the 50% and 80% thresholds are written in one ledger transaction with one alert; nothing is enforced
    [write] = owner.table.writes
    assert (write.subject, write.keys, write.written) == (CONSUMER, ["THRESHOLD#0050", "THRESHOLD#0080"], True)
    assert write.alert is not None
    assert write.alert.message["event"] == "budget.threshold"
    assert write.alert.message["thresholds"] == [50, 80]
    assert owner.enforcer.calls == []
    assert run.result == NO_FAILURE
    assert run.metrics["SpendChangesReceived"] == 1
    assert run.errors == []


def test_the_record_delivered_again_alerts_nothing_more(invoke: Invoker) -> None:
    # Given a spend change already alerted on
    owner = Owner()
    invoke(stream_batch(consumer_total("95")), **owner.ports())

    # When the stream delivers it again
    run = invoke(stream_batch(consumer_total("95")), **owner.ports())

    # Then still one alert
    assert len(owner.table.alerts) == 1
    assert run.result == NO_FAILURE


@pytest.mark.parametrize("fixture", ["ssm_parameter_store_change_budget_policy", "scheduled_event_docs_example"])
def test_the_policy_change_or_the_schedule_evaluates_the_month(invoke: Invoker, fixture: str) -> None:
    # Given a consumer's spend this month at 95 of 100
    owner = Owner()
    owner.table.set(ConsumerSpend(consumer=CONSUMER, month=month_of(datetime.now(UTC)), total=Decimal("95")))

    # When the budget policy changes (SSM), or the daily schedule fires
    run = invoke(load_event(fixture), **owner.ports())

    # Then the month is evaluated: the thresholds reached are alerted once; a policy change reads the policy fresh
    assert run.result == {
        "status": "evaluated",
        "evaluated": 1,
        "thresholds": [f"{CONSUMER}:50", f"{CONSUMER}:80"],
    }
    assert len(owner.table.alerts) == 1
    assert owner.budgets.fresh_loads == (1 if fixture.startswith("ssm") else 0)
    assert owner.enforcer.calls == []


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # nothing to count: valid, not ours
def test_a_change_of_another_parameter_is_ignored_without_any_port_call(invoke: Invoker) -> None:
    # Given an SSM change of a parameter that is not the budget policy
    owner = Owner()
    event = load_event("ssm_parameter_store_change_budget_policy")
    event["detail"]["name"] = "/someone/else"

    # When it arrives
    run = invoke(event, **owner.ports())

    # Then it is ignored (valid, not ours): nothing read or written, nothing refused
    assert run.result == {"status": "ignored", "reason": "not the budget policy parameter"}
    assert run.calls == []
    assert run.errors == []


@pytest.mark.parametrize(
    "event",
    [
        *invalid_fixtures(),
        pytest.param(load_event("ssm_parameter_store_change_budget_policy", detail_type="Other"), id="wrong-type"),
        pytest.param(load_event("scheduled_event_docs_example", source="aws.ssm"), id="wrong-source"),
    ],
)
def test_an_invalid_event_is_refused_once_without_any_port_call(invoke: Invoker, event: Any) -> None:
    # Given an event that is neither the policy change, the schedule nor a stream batch
    owner = Owner()

    # When it is handed to the handler
    run = invoke(event, **owner.ports())

    # Then one error line with its id, one InvalidEvent, {"status": "invalid"}; no ledger write, no enforcement
    assert_refused_without_side_effect(run, event_id=event["id"], answer={"status": "invalid"})
    assert owner.table.writes == []
    assert owner.budgets.loads == 0


def _without_sequence_number() -> dict[str, Any]:
    batch = stream_batch(consumer_total("95"))
    del batch["Records"][0]["dynamodb"]["SequenceNumber"]
    return batch


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"Records": []}, id="empty-batch"),
        pytest.param({"Records": "x"}, id="records-not-a-list"),
        pytest.param(_without_sequence_number(), id="record-without-its-id"),
    ],
)
def test_a_malformed_batch_is_refused_once_without_any_port_call(invoke: Invoker, event: Any) -> None:
    # Given a stream batch Lambda could not have delivered (no records, or a record without its id)
    owner = Owner()

    # When it is handed to the handler
    run = invoke(event, **owner.ports())

    # Then it is refused once, no item failure, nothing read or written
    assert_refused_without_side_effect(run, event_id=None, answer=NO_FAILURE, reason="not a DynamoDB")
    assert owner.table.writes == []


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(consumer_total("95", month="2026-13"), id="bad-month"),
        pytest.param({**consumer_total("95"), "total": Decimal("-1")}, id="negative-total"),
        pytest.param({**consumer_total("95"), "consumer_account": "not-an-account"}, id="bad-account"),
    ],
)
def test_an_invalid_spend_item_is_refused_with_its_event_id(invoke: Invoker, image: dict[str, Any]) -> None:
    # Given a stream record whose spend item breaks its contract
    owner = Owner()
    batch = stream_batch(image)

    # When it arrives
    run = invoke(batch, **owner.ports())

    # Then it is refused with the record's eventID, not retried, and nothing is read or written
    assert_refused_without_side_effect(run, event_id=batch["Records"][0]["eventID"], answer=NO_FAILURE)
    assert owner.table.writes == []
