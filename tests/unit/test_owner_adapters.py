"""Owner-side adapters, offline (botocore Stubber; the requests a real client would send are captured):
- DynamoDB keys: grants per pipeline x consumer x share, every ARN in a key lower-case, the ARNs kept as given in
  the items; the inventory change item and the message published from it;
- SageMaker: ResourceNotFound for an execution is `ExecutionNotFoundError` (list_steps) or None (describe_execution),
  any other error is translated as before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.stub import Stubber

from pipeshare.adapters.dynamodb_costs import DynamoDbCostRepository, job_sk, pipeline_sk
from pipeshare.adapters.dynamodb_executions import execution_pk
from pipeshare.adapters.dynamodb_owner import DynamoDbGrantRepository, grant_sk
from pipeshare.adapters.sagemaker_executions import SageMakerCostGateway, SageMakerExecutionGateway
from pipeshare.logic.inventory import diff
from pipeshare.logic.owner_notify import owner_notification
from pipeshare.models.errors import ExecutionNotFoundError, TransientError
from pipeshare.models.owner import ALLOW_EXECUTION, READ_ONLY, CountedJob, Grant, SpendHolder

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER = "111111111111", "222222222222"
TABLE = "owner-table"
NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
MIXED_PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/Churn-Train"
PIPELINE = MIXED_PIPELINE.lower()
MIXED_EXECUTION = f"{MIXED_PIPELINE}/execution/P4JN9XOU8A8S"
JOB = f"arn:aws:sagemaker:us-east-1:{OWNER}:processing-job/Pipelines-P4JN9XOU8A8S-Preprocess"
READ_SHARE = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/Read-0001"
RUN_SHARE = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/Run-0002"

_deserializer = TypeDeserializer()


def plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


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

    def __enter__(self) -> Captured:
        self.stubber.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stubber.deactivate()


@pytest.fixture
def ddb() -> Iterator[Captured]:
    with Captured("dynamodb") as captured:
        yield captured


@pytest.fixture
def sagemaker() -> Iterator[Captured]:
    with Captured("sagemaker") as captured:
        yield captured


def grant(share_arn: str, permission: str, *, pipeline: str = MIXED_PIPELINE, status: str = "ASSOCIATED") -> Grant:
    return Grant(
        pipeline_arn=pipeline,
        consumer=CONSUMER,
        share_arn=share_arn,
        share_name=share_arn.rsplit("/", 1)[-1],
        association_status=status,
        permission_name=permission,
    )


# ---------------------------------------------------------------------------------------------- grant inventory


def test_grant_items_and_their_change_are_keyed_per_share_in_lower_case(ddb: Captured) -> None:
    # Given a new allow-execution grant on a pipeline whose ARN RAM lists in mixed case
    run = grant(RUN_SHARE, ALLOW_EXECUTION)
    [change] = diff({}, [run], at=NOW)
    ddb.stubber.add_response("transact_write_items", {})

    # When the change is recorded
    assert DynamoDbGrantRepository(TABLE, ddb.client).apply(change, history_expires_at=1)

    # Then the grant item is keyed pipeline x consumer x share, all lower-case, and keeps the ARNs as given
    [request] = ddb.params("TransactWriteItems")
    put_grant, put_change = (plain(i["Put"]["Item"]) for i in request["TransactItems"])
    assert put_grant["sk"] == f"GRANT#{PIPELINE}#{CONSUMER}#{RUN_SHARE.lower()}" == grant_sk(run)
    assert (put_grant["pipeline_arn"], put_grant["share_arn"]) == (MIXED_PIPELINE, RUN_SHARE)
    assert put_change["sk"] == f"CHANGE#2026-05-15T12:00:00Z#{PIPELINE}#{CONSUMER}#{RUN_SHARE.lower()}#accepted"
    assert put_change["cost_bearing"] is True


def test_the_same_grant_named_in_another_case_has_the_same_item_key() -> None:
    # Given the same grant, ARNs in mixed and in lower case
    mixed = grant(RUN_SHARE, ALLOW_EXECUTION)
    lower = grant(RUN_SHARE.lower(), ALLOW_EXECUTION, pipeline=PIPELINE)

    # When / Then one item key; another share of the same pipeline is another item
    assert grant_sk(mixed) == grant_sk(lower)
    assert grant_sk(grant(READ_SHARE, READ_ONLY)) != grant_sk(mixed)


def test_grants_of_a_pipeline_are_read_by_its_lower_case_prefix_and_every_share_is_kept(ddb: Captured) -> None:
    # Given the table holds the consumer's grants on the pipeline through two shares
    stored = [grant(READ_SHARE, READ_ONLY), grant(RUN_SHARE, ALLOW_EXECUTION)]
    items = [
        {"pk": {"S": "GRANTS"}, "sk": {"S": grant_sk(g)}, **{k: {"S": v} for k, v in g.model_dump().items() if v}}
        for g in stored
    ]
    ddb.stubber.add_response("query", {"Items": items})

    # When the tracker asks for the grants of the pipeline, named in mixed case
    found = DynamoDbGrantRepository(TABLE, ddb.client).grants(MIXED_PIPELINE)

    # Then the query uses the lower-case prefix and both grants come back, one per share
    [query] = ddb.params("Query")
    assert plain(query["ExpressionAttributeValues"])[":prefix"] == f"GRANT#{PIPELINE}#"
    assert {g.share_arn for g in found.values()} == {READ_SHARE, RUN_SHARE}


def test_revoking_the_read_only_share_is_announced_with_the_allow_execution_the_consumer_keeps(ddb: Captured) -> None:
    # Given the consumer held the pipeline through a read-only and an allow-execution share
    read, run = grant(READ_SHARE, READ_ONLY), grant(RUN_SHARE, ALLOW_EXECUTION)
    stored = {read.key: read, run.key: run}

    # When the read-only share's association is gone from RAM and the change is recorded
    [change] = diff(stored, [run], at=NOW)
    ddb.stubber.add_response("transact_write_items", {})
    DynamoDbGrantRepository(TABLE, ddb.client).apply(change, history_expires_at=1)

    # Then the read-only grant (its item) is deleted, and the change item says the consumer still runs the pipeline
    [request] = ddb.params("TransactWriteItems")
    delete, put_change = request["TransactItems"]
    assert plain(delete["Delete"]["Key"])["sk"] == grant_sk(read)
    item = plain(put_change["Put"]["Item"])
    assert (item["kind"], item["cost_bearing"]) == ("revoked", True)
    # and the owner's message names the share revoked and the one still giving allow-execution
    notification = owner_notification(item)
    assert notification is not None
    assert notification.subject.endswith("no longer holds Churn-Train via one share; can still RUN it")
    assert notification.message["share_arn"] == READ_SHARE
    assert notification.message["consumer_holds"]["share_arn"] == RUN_SHARE
    assert notification.message["consumer_holds"]["share_name"] == "Run-0002"
    assert notification.message["consumer_holds"]["cost_bearing"] is True


def test_revoking_the_allow_execution_share_is_announced_with_the_read_only_hold_left(ddb: Captured) -> None:
    # Given the consumer held the pipeline through both shares
    read, run = grant(READ_SHARE, READ_ONLY), grant(RUN_SHARE, ALLOW_EXECUTION)

    # When RAM lists the allow-execution association DISASSOCIATED and the change is recorded
    [change] = diff(
        {read.key: read, run.key: run}, [read, grant(RUN_SHARE, ALLOW_EXECUTION, status="DISASSOCIATED")], at=NOW
    )
    ddb.stubber.add_response("transact_write_items", {})
    DynamoDbGrantRepository(TABLE, ddb.client).apply(change, history_expires_at=1)

    # Then the change is not cost-bearing any more, and the message says the consumer still reads the pipeline
    item = plain(ddb.params("TransactWriteItems")[0]["TransactItems"][1]["Put"]["Item"])
    assert (item["kind"], item["cost_bearing"]) == ("revoked", False)
    notification = owner_notification(item)
    assert notification is not None
    assert notification.subject.endswith("no longer holds Churn-Train via one share; still reads it")
    assert notification.message["consumer_holds"]["share_name"] == "Read-0001"
    assert notification.message["consumer_holds"]["cost_bearing"] is False


def test_a_single_share_revocation_reads_as_before() -> None:
    # Given the consumer held the pipeline through one share only
    run = grant(RUN_SHARE, ALLOW_EXECUTION)
    [change] = diff({run.key: run}, [], at=NOW)

    # When / Then nothing is held after it, and the message is the plain revocation
    assert change.holding is None
    item = {
        "item_type": "change",
        "kind": change.kind,
        "notable": change.notable,
        "at": "2026-05-15T12:00:00Z",
        "before": run.model_dump(mode="json"),
        "after": None,
        "holding": None,
    }
    notification = owner_notification(item)
    assert notification is not None
    assert notification.subject == f"pipeshare: consumer {CONSUMER} no longer holds Churn-Train"
    assert notification.message["consumer_holds"] is None


# -------------------------------------------------------------------------------------------------------- costs


def test_cost_keys_are_lower_case_and_the_items_keep_the_arns_as_given(ddb: Captured) -> None:
    # Given a job of an execution, both named in mixed case
    job = CountedJob(JOB, "Preprocess", "processing", Decimal("1.25"), {})
    ddb.stubber.add_response("transact_write_items", {})

    # When the job is counted for the consumer
    assert DynamoDbCostRepository(TABLE, ddb.client).commit(
        MIXED_EXECUTION,
        holder=SpendHolder("consumer", CONSUMER, confirmed=True),
        pipeline_arn=MIXED_PIPELINE,
        month="2026-05",
        jobs=[job],
        estimate={"steps": []},
        version=0,
        at=NOW,
    )

    # Then every key has the ARNs in lower case, and the items keep them as given
    [request] = ddb.params("TransactWriteItems")
    job_put, estimate, *spend = request["TransactItems"]
    job_item = plain(job_put["Put"]["Item"])
    assert (job_item["pk"], job_item["sk"]) == (f"EXECUTION#{MIXED_EXECUTION.lower()}", f"JOB#{JOB.lower()}")
    assert job_item["job_arn"] == JOB
    assert plain(estimate["Update"]["Key"]) == {"pk": f"EXECUTION#{MIXED_EXECUTION.lower()}", "sk": "ESTIMATE"}
    assert plain(estimate["Update"]["ExpressionAttributeValues"])[":pipeline"] == MIXED_PIPELINE
    keys = [plain(u["Update"]["Key"]) for u in spend]
    assert keys == [
        {"pk": "SPEND#2026-05", "sk": f"PIPELINE#{PIPELINE}"},
        {"pk": "SPEND#2026-05", "sk": f"CONSUMER#{CONSUMER}"},
        {"pk": "SPEND#2026-05", "sk": f"CONSUMER#{CONSUMER}#PIPELINE#{PIPELINE}"},
    ]
    assert {plain(u["Update"]["ExpressionAttributeValues"])[":pipeline"] for u in spend} == {MIXED_PIPELINE, "-"}


def test_mixed_case_arns_map_to_one_cost_key() -> None:
    # Given / When / Then one pipeline, execution or job in two cases is one key
    assert pipeline_sk(MIXED_PIPELINE) == pipeline_sk(PIPELINE) == f"PIPELINE#{PIPELINE}"
    assert execution_pk(MIXED_EXECUTION) == execution_pk(MIXED_EXECUTION.lower())
    assert job_sk(JOB) == job_sk(JOB.lower())


# ---------------------------------------------------------------------------------------------------- SageMaker


def test_list_steps_of_an_execution_sagemaker_no_longer_knows_raises_execution_not_found(
    sagemaker: Captured,
) -> None:
    # Given SageMaker answers ResourceNotFound (the pipeline was deleted after the execution ended)
    sagemaker.stubber.add_client_error(
        "list_pipeline_execution_steps",
        service_error_code="ResourceNotFound",
        service_message=f"Pipeline execution '{MIXED_EXECUTION}' does not exist.",
        http_status_code=400,
    )

    # When / Then the adapter says so with its own error (not a retried API error), after one call
    with pytest.raises(ExecutionNotFoundError, match="does not exist"):
        SageMakerCostGateway(sagemaker.client).list_steps(MIXED_EXECUTION)
    assert [name for name, _ in sagemaker.requests] == ["ListPipelineExecutionSteps"]


def test_list_steps_throttled_is_still_a_transient_error(sagemaker: Captured) -> None:
    # Given SageMaker throttles the listing
    sagemaker.stubber.add_client_error(
        "list_pipeline_execution_steps", service_error_code="ThrottlingException", http_status_code=400
    )

    # When / Then it is transient (the invocation fails and is retried), not "gone"
    with pytest.raises(TransientError):
        SageMakerCostGateway(sagemaker.client).list_steps(MIXED_EXECUTION)


def test_describe_execution_of_an_unknown_execution_is_none(sagemaker: Captured) -> None:
    # Given SageMaker answers ResourceNotFound to DescribePipelineExecution (what the tracker verifies claims with)
    sagemaker.stubber.add_client_error(
        "describe_pipeline_execution", service_error_code="ResourceNotFound", http_status_code=400
    )

    # When / Then None: the tracker records the forwarded claim as unverified, without raising
    assert SageMakerCostGateway(sagemaker.client).describe_execution(MIXED_EXECUTION) is None


def test_sagemaker_gateways_build_their_client_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given boto3.client counted (the tracker builds its gateway on every event; status events never describe)
    built: list[str] = []
    monkeypatch.setattr(boto3, "client", lambda service, *a, **k: built.append(service) or object())

    # When gateways are made, then one is asked something
    tracker_side, cost_side = SageMakerExecutionGateway(), SageMakerCostGateway()
    assert built == []
    with pytest.raises(AttributeError):  # the counted stand-in client answers nothing
        cost_side.describe_execution(MIXED_EXECUTION)

    # Then exactly one client was built, for the gateway that was asked
    assert built == ["sagemaker"]
    assert tracker_side._client is None
