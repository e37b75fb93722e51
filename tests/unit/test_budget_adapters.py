"""The budget watcher's DynamoDB adapter, offline (botocore Stubber; the requests a real client would send are kept):
the ledger (keys once, one transaction with the message; the crossing-based watcher's items still count), a
consumer's running executions (by_initiator), an execution's state, and the month's spend items (one paginated
Query; an item from before `confirmed_total` counts nothing as confirmed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.stub import Stubber

from pipeshare.adapters.dynamodb_budgets import DynamoDbBudgetLedger
from pipeshare.models.budgets import ConsumerSpend, LineSpend
from pipeshare.models.messages import OwnerAlert

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER = "111111111111", "222222222222"
TABLE = "owner-table"
NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/Churn-Train"
EXECUTION = f"{PIPELINE}/execution/P4JN9XOU8A8S"
ALERT = OwnerAlert(subject="pipeshare: x", message={"schema": "s", "spend": "1.00"}, attributes={"event": "e"})

_ser, _de = TypeSerializer(), TypeDeserializer()


def wire(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in values.items()}


def plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


class Captured:
    """A real DynamoDB client, stubbed: the parameters of each request (validated by botocore) are kept in order."""

    def __init__(self) -> None:
        self.client = boto3.client("dynamodb", region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.client.meta.events.register("provide-client-params.*.*", self._keep)

    def _keep(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.requests.append((model.name, dict(params)))

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.requests if name == operation]


@pytest.fixture
def ddb() -> Iterator[Captured]:
    captured = Captured()
    with captured.stubber:
        yield captured


def ledger(ddb: Captured) -> DynamoDbBudgetLedger:
    return DynamoDbBudgetLedger(TABLE, ddb.client)


def test_recorded_lists_the_ledger_keys_and_reads_the_old_threshold_items_as_their_threshold(ddb: Captured) -> None:
    # Given the month's ledger on two pages: an old watcher's threshold alert, new keys, and outbox items
    pk = f"BUDGET#2026-05#{CONSUMER}"
    page1 = [{"pk": pk, "sk": "ALERT#threshold-0050"}, {"pk": pk, "sk": "THRESHOLD#0080"}]
    page2 = [{"pk": pk, "sk": "ALERT#THRESHOLD#0080"}, {"pk": pk, "sk": f"STOP#{EXECUTION.lower()}#1"}]
    ddb.stubber.add_response("query", {"Items": [wire(i) for i in page1], "LastEvaluatedKey": wire(page1[-1])})
    ddb.stubber.add_response("query", {"Items": [wire(i) for i in page2]})

    # When
    keys = ledger(ddb).recorded("2026-05", CONSUMER)

    # Then every key, the old item counting as THRESHOLD#0050, no outbox item; read consistently, page after page
    assert keys == {"THRESHOLD#0050", "THRESHOLD#0080", f"STOP#{EXECUTION.lower()}#1"}
    first, second = ddb.params("Query")
    assert (first["ConsistentRead"], first["ProjectionExpression"]) == (True, "sk")
    assert second["ExclusiveStartKey"] == wire(page1[-1])


def test_record_writes_every_key_and_one_message_in_one_conditional_transaction(ddb: Captured) -> None:
    # Given
    ddb.stubber.add_response("transact_write_items", {})

    # When two thresholds are recorded with their message and the exact spend
    keys = ["THRESHOLD#0050", "THRESHOLD#0080"]
    written = ledger(ddb).record("2026-05", CONSUMER, keys, ALERT, at=NOW, facts={"spend_total": Decimal("85.004")})

    # Then one transaction: two ledger items and the outbox item (ALERT#<last key>), each only if absent
    assert written is True
    [request] = ddb.params("TransactWriteItems")
    puts = [i["Put"] for i in request["TransactItems"]]
    assert {p["ConditionExpression"] for p in puts} == {"attribute_not_exists(pk)"}
    items = [plain(p["Item"]) for p in puts]
    assert [(i["sk"], i["item_type"]) for i in items] == [
        ("THRESHOLD#0050", "budget-ledger"),
        ("THRESHOLD#0080", "budget-ledger"),
        ("ALERT#THRESHOLD#0080", "alert"),
    ]
    assert items[0]["spend_total"] == Decimal("85.004")
    assert (items[2]["subject"], items[2]["message"], items[2]["attributes"]) == (
        ALERT.subject,
        ALERT.message,
        ALERT.attributes,
    )


def test_record_without_a_message_writes_the_keys_only(ddb: Captured) -> None:
    # Given / When
    ddb.stubber.add_response("transact_write_items", {})
    ledger(ddb).record("2026-05", CONSUMER, ["SHARE#s#222222222222"], None, at=NOW)

    # Then
    [request] = ddb.params("TransactWriteItems")
    assert [plain(i["Put"]["Item"])["sk"] for i in request["TransactItems"]] == ["SHARE#s#222222222222"]


def test_record_refused_by_a_key_already_written_is_false(ddb: Captured) -> None:
    # Given the transaction is cancelled by a condition (a key was there)
    ddb.stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message="cancelled",
        response_meta={},
        modeled_fields={"CancellationReasons": [{"Code": "ConditionalCheckFailed"}, {"Code": "None"}]},
    )

    # When / Then nothing was written, and it says so
    assert ledger(ddb).record("2026-05", CONSUMER, ["THRESHOLD#0050"], ALERT, at=NOW) is False


def test_running_for_reads_the_by_initiator_index(ddb: Captured) -> None:
    # Given the index lists one running execution of the consumer (its projected attributes)
    item = {
        "pk": f"EXECUTION#{EXECUTION.lower()}",
        "sk": "STATE",
        "initiator_account": CONSUMER,
        "status": "Executing",
        "execution_arn": EXECUTION,
        "pipeline_arn": PIPELINE,
        "attempt": 2,
        "attribution_source": "forwarded",
    }
    ddb.stubber.add_response("query", {"Items": [wire(item)]})

    # When
    [run] = ledger(ddb).running_for(CONSUMER)

    # Then
    [request] = ddb.params("Query")
    assert (request["IndexName"], request["ExpressionAttributeValues"][":running"]) == (
        "by_initiator",
        {"S": "Executing"},
    )
    assert (run.execution_arn, run.attempt, run.attribution_source, run.open_status) == (
        EXECUTION,
        2,
        "forwarded",
        "Executing",
    )


def test_execution_reads_the_state_with_its_worst_case(ddb: Captured) -> None:
    # Given the execution's STATE item
    item = {
        "execution_arn": EXECUTION,
        "pipeline_arn": PIPELINE,
        "attempt": 1,
        "initiator_account": CONSUMER,
        "attribution_source": "forwarded",
        "open_status": "Executing",
        "worst_case_usd": Decimal("5.66"),
        "worst_case_complete": False,
    }
    ddb.stubber.add_response("get_item", {"Item": wire(item)})

    # When
    run = ledger(ddb).execution(EXECUTION.lower())

    # Then it is read by its lower-case key, consistently
    assert run is not None
    assert (run.execution_arn, run.worst_case_usd, run.worst_case_complete) == (EXECUTION, Decimal("5.66"), False)
    [request] = ddb.params("GetItem")
    assert (plain(request["Key"]), request["ConsistentRead"]) == (
        {"pk": f"EXECUTION#{EXECUTION.lower()}", "sk": "STATE"},
        True,
    )


def test_month_spend_items_sorts_the_months_items_by_kind(ddb: Captured) -> None:
    # Given the month's spend items; the consumer's total from before confirmed_total existed
    items = [
        {"pk": "SPEND#2026-05", "sk": f"CONSUMER#{CONSUMER}", "kind": "consumer-total", "consumer_account": CONSUMER,
         "total": Decimal("12.5")},
        {"pk": "SPEND#2026-05", "sk": f"CONSUMER#{CONSUMER}#PIPELINE#{PIPELINE.lower()}",
         "kind": "consumer-pipeline-total", "consumer_account": CONSUMER, "pipeline_arn": PIPELINE,
         "total": Decimal("12.5")},
        {"pk": "SPEND#2026-05", "sk": f"PIPELINE#{PIPELINE.lower()}", "kind": "pipeline-total", "total": Decimal(20)},
        {"pk": "SPEND#2026-05", "sk": f"UNATTRIBUTED#PIPELINE#{PIPELINE.lower()}",
         "kind": "unattributed-pipeline-total", "pipeline_arn": PIPELINE, "total": Decimal("7.5")},
    ]  # fmt: skip
    ddb.stubber.add_response("query", {"Items": [wire(i) for i in items]})

    # When
    month = ledger(ddb).month_spend_items("2026-05")

    # Then
    assert month.consumers == (ConsumerSpend(consumer=CONSUMER, month="2026-05", total=Decimal("12.5")),)
    assert month.consumers[0].confirmed_total == 0
    assert month.consumer_pipelines == {CONSUMER: {PIPELINE: Decimal("12.5")}}
    assert month.unattributed == (LineSpend(pipeline_arn=PIPELINE, month="2026-05", total=Decimal("7.5")),)


def test_consumer_spend_without_an_item_is_zero(ddb: Captured) -> None:
    # Given / When
    ddb.stubber.add_response("get_item", {})
    spend = ledger(ddb).consumer_spend("2026-05", CONSUMER)

    # Then
    assert (spend.total, spend.confirmed_total) == (0, 0)
