"""The start projection's adapters, offline (botocore Stubber: the requests a real client would send are captured and
validated): SageMaker's definition and parameters of an execution, the pipeline's finished runs (one Query, newest
first), the consumer's month-to-date spend, and the execution record's projection attributes (kept by an Update)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.stub import Stubber

from pipeshare.adapters.dynamodb_executions import DynamoDbExecutionRepository
from pipeshare.adapters.dynamodb_projection import DynamoDbRunHistory, runs_pk
from pipeshare.adapters.sagemaker_definitions import CLIENT_CONFIG, SageMakerDefinitionGateway
from pipeshare.logic.attribution import merge, observe_status
from pipeshare.models.errors import AccessDeniedError, ExecutionNotFoundError, TransientError
from pipeshare.models.executions import ExecutionRecord
from pipeshare.models.owner_events import PipelineExecutionStatusEvent
from pipeshare.models.projections import FinishedRun
from tests.conftest import load_event

pytestmark = pytest.mark.usefixtures("socket_disabled")

TABLE = "owner-table"
PIPELINE = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/Churn-Train"
EXECUTION = f"{PIPELINE}/execution/p4jn9xou8a8s"
NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
_de = TypeDeserializer()


class Captured:
    """A real boto3 client, stubbed: the parameters of each request (validated by botocore) are kept in order."""

    def __init__(self, service: str) -> None:
        self.client = boto3.client(service, region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.client.meta.events.register("provide-client-params.*.*", self._keep)

    def _keep(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.requests.append((model.name, dict(params)))

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.requests if name == operation]


@pytest.fixture
def sagemaker() -> Iterator[Captured]:
    captured = Captured("sagemaker")
    with captured.stubber:
        yield captured


@pytest.fixture
def ddb() -> Iterator[Captured]:
    captured = Captured("dynamodb")
    with captured.stubber:
        yield captured


# ------------------------------------------------------------------------------------------------------ SageMaker


def test_the_definition_of_an_execution_is_read_by_its_arn(sagemaker: Captured) -> None:
    sagemaker.stubber.add_response(
        "describe_pipeline_definition_for_execution",
        {"PipelineDefinition": '{"Version": "2020-12-01", "Steps": []}', "CreationTime": NOW},
    )
    text = SageMakerDefinitionGateway(sagemaker.client).definition_for_execution(EXECUTION)
    assert text == '{"Version": "2020-12-01", "Steps": []}'
    assert sagemaker.params("DescribePipelineDefinitionForExecution") == [{"PipelineExecutionArn": EXECUTION}]


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ResourceNotFound", 400, ExecutionNotFoundError),
        ("AccessDeniedException", 400, AccessDeniedError),
        ("ThrottlingException", 400, TransientError),
    ],
)
def test_sagemaker_errors_are_translated(sagemaker: Captured, code: str, status: int, error: type) -> None:
    sagemaker.stubber.add_client_error("describe_pipeline_definition_for_execution", code, "no", status)
    with pytest.raises(error):
        SageMakerDefinitionGateway(sagemaker.client).definition_for_execution(EXECUTION)


def test_parameters_of_an_execution_are_read_from_every_page(sagemaker: Captured) -> None:
    # Given two pages of parameters
    sagemaker.stubber.add_response(
        "list_pipeline_parameters_for_execution",
        {"PipelineParameters": [{"Name": "TrainType", "Value": "ml.m5.4xlarge"}], "NextToken": "t1"},
    )
    sagemaker.stubber.add_response(
        "list_pipeline_parameters_for_execution", {"PipelineParameters": [{"Name": "Count", "Value": "2"}]}
    )
    # When they are read
    found = SageMakerDefinitionGateway(sagemaker.client).parameters_for_execution(EXECUTION)
    # Then both pages, the second asked with the token
    assert found == {"TrainType": "ml.m5.4xlarge", "Count": "2"}
    first, second = sagemaker.params("ListPipelineParametersForExecution")
    assert (first.get("NextToken"), second["NextToken"], second["MaxResults"]) == (None, "t1", 100)


def test_the_default_client_retries_once_with_short_timeouts() -> None:
    # (the projection must not hold up the start alert: its failure is reported in the alert instead)
    assert CLIENT_CONFIG.retries == {"total_max_attempts": 2, "mode": "standard"}
    # building a client leaves the shared config as it was (botocore rewrites `max_attempts` in place)
    boto3.client("sagemaker", region_name="us-east-1", config=CLIENT_CONFIG)
    assert CLIENT_CONFIG.retries == {"total_max_attempts": 2, "mode": "standard"}
    assert (CLIENT_CONFIG.connect_timeout, CLIENT_CONFIG.read_timeout) == (2, 5)


# ------------------------------------------------------------------------------------------------------- DynamoDB


def test_finished_runs_are_one_query_newest_first_at_most_the_limit(ddb: Captured) -> None:
    # Given the table's RUNS# items for the pipeline: complete, incomplete, without a total
    items = [
        {"total": {"N": "4.5"}, "complete": {"BOOL": True}},
        {"total": {"N": "80"}, "complete": {"BOOL": False}},
        {"complete": {"BOOL": True}},
    ]
    ddb.stubber.add_response("query", {"Items": items})
    # When the last ten runs are read
    runs = DynamoDbRunHistory(TABLE, ddb.client).recent_runs(PIPELINE, 10)
    # Then one Query on the lower-case pipeline key, newest first, limited; a run without a total is not complete
    [query] = ddb.params("Query")
    assert _de.deserialize(query["ExpressionAttributeValues"][":pk"]) == f"RUNS#{PIPELINE.lower()}" == runs_pk(PIPELINE)
    assert (query["ScanIndexForward"], query["Limit"]) == (False, 10)
    assert runs == [
        FinishedRun(Decimal("4.5"), True),
        FinishedRun(Decimal("80"), False),
        FinishedRun(Decimal("0"), False),
    ]


def test_month_to_date_spend_of_a_consumer(ddb: Captured) -> None:
    ddb.stubber.add_response("get_item", {"Item": {"total": {"N": "12.345"}}})
    ddb.stubber.add_response("get_item", {})
    history = DynamoDbRunHistory(TABLE, ddb.client)
    assert history.month_spend("2026-05", "222222222222") == Decimal("12.345")
    assert history.month_spend("2026-05", "444444444444") == Decimal(0)
    first = ddb.params("GetItem")[0]
    assert {k: _de.deserialize(v) for k, v in first["Key"].items()} == {
        "pk": "SPEND#2026-05",
        "sk": "CONSUMER#222222222222",
    }


def test_a_throttled_read_is_transient(ddb: Captured) -> None:
    ddb.stubber.add_client_error("query", "ProvisionedThroughputExceededException", "slow", 400)
    with pytest.raises(TransientError):
        DynamoDbRunHistory(TABLE, ddb.client).recent_runs(PIPELINE, 10)


# ------------------------------------------------------------------------------------ the record keeps the worst case


def _record() -> ExecutionRecord:
    event = PipelineExecutionStatusEvent.model_validate(load_event("sagemaker_execution_status_executing"))
    return merge(None, observe_status(event))


def _state_update(ddb: Captured, **kwargs: Any) -> dict[str, Any]:
    ddb.stubber.add_response("transact_write_items", {})
    assert DynamoDbExecutionRepository(TABLE, ddb.client).save(_record(), alerts=[], at=NOW, **kwargs)
    [request] = ddb.params("TransactWriteItems")
    update = request["TransactItems"][0]["Update"]
    names = update["ExpressionAttributeNames"]
    values = {k: _de.deserialize(v) for k, v in update["ExpressionAttributeValues"].items()}
    sets, _, removes = update["UpdateExpression"].removeprefix("SET ").partition(" REMOVE ")
    assigned = {names[n]: values[v] for n, v in (part.split(" = ") for part in sets.split(", "))}
    return {"set": assigned, "remove": {names[n] for n in removes.split(", ") if n}, "update": update}


def test_the_state_is_an_update_that_sets_the_worst_case_once_given(ddb: Captured) -> None:
    written = _state_update(ddb, version=3, worst_case=(Decimal("5.532"), True))
    # the projection's two flat attributes, the record's attributes, and nothing it does not name is touched
    assert (written["set"]["worst_case_usd"], written["set"]["worst_case_complete"]) == (Decimal("5.532"), True)
    assert written["set"]["status"] == "Executing"
    assert written["set"]["open_status"] == "Executing"  # kept: the sparse open_executions index
    assert written["set"]["version"] == 4
    condition = written["update"]["ConditionExpression"]
    assert written["update"]["ExpressionAttributeNames"][condition.split(" = ")[0]] == "version"
    assert condition.endswith(" = :expected")
    assert _de.deserialize(written["update"]["ExpressionAttributeValues"][":expected"]) == 3
    assert "ended_at" in written["remove"]  # an attribute without a value is removed, as a Put left it out


def test_a_save_without_a_projection_leaves_the_worst_case_alone(ddb: Captured) -> None:
    written = _state_update(ddb, version=0)
    assert "worst_case_usd" not in written["set"]
    assert "worst_case_usd" not in written["remove"]
    assert written["update"]["ConditionExpression"] == "attribute_not_exists(pk)"
