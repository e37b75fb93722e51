"""The owner's share inventory on the local stack: grants, permissions, cost-bearing, changes notified once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeshare.adapters.dynamodb_owner import DynamoDbGrantRepository
from pipeshare.logic.inventory import diff
from pipeshare.models.owner import ALLOW_EXECUTION, Grant
from pipeshare_local.scenario import PERMISSIONS
from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import (
    CONSUMER,
    OWNER,
    STRANGER,
    create_pipeline,
    deploy_shared_pipeline,
    share,
)


def _grants(stack: LocalStack) -> list[dict]:
    return [i for i in stack.table_items(OWNER, "OwnerTable") if i["sk"].startswith("GRANT#")]


def _owner_events(stack: LocalStack) -> list[str]:
    return [n["message"]["event"] for n in stack.read_notifications(OWNER) if n["topic"] == "OwnerTopic"]


def _share_allow_execution(stack: LocalStack) -> str:
    deployment = deploy_shared_pipeline(stack, create_pipeline(stack, OWNER, "churn-train"))
    return str(deployment.refs["PipelineShare"])


def test_accepted_allow_execution_grant_is_recorded_as_cost_bearing(stack: LocalStack) -> None:
    # When the owner shares with allow-execution and the consumer accepts
    _share_allow_execution(stack)
    # Then the inventory holds one cost-bearing grant with the permission
    [grant] = _grants(stack)
    assert grant["consumer"] == CONSUMER
    assert grant["pipeline_arn"].endswith(":pipeline/churn-train")
    assert (grant["association_status"], grant["allow_execution"], grant["cost_bearing"]) == ("ASSOCIATED", True, True)
    assert grant["permission_arn"] == PERMISSIONS["allow-execution"]


def test_consumer_acceptance_is_notified_once_with_the_cost_statement(stack: LocalStack) -> None:
    # Given an accepted allow-execution share
    _share_allow_execution(stack)
    # When reconciles run again (schedule) with nothing new
    stack.advance(timedelta(hours=2))
    # Then exactly one acceptance message, which says the owner pays
    notes = [n for n in stack.read_notifications(OWNER) if n["topic"] == "OwnerTopic"]
    assert [n["message"]["event"] for n in notes] == ["inventory.accepted"]
    assert "billed to, the owner account" in notes[0]["message"]["cost_statement"]
    assert "owner pays" in notes[0]["subject"]


def test_permission_swap_is_seen_by_the_reconcile(stack: LocalStack) -> None:
    # Given an accepted read-only share
    pipeline = create_pipeline(stack, OWNER, "churn-train")
    stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER})
    deployment = stack.deploy(
        OWNER, {"Mode": "owner", "SharedPipelineArns": pipeline, "ShareConsumerAccountIds": CONSUMER}
    )
    stack.deliver()
    assert _grants(stack)[0]["cost_bearing"] is False
    # When the owner switches the share to allow-execution (no RAM event for that) and the hourly reconcile runs
    stack.client(OWNER, "ram").associate_resource_share_permission(
        resourceShareArn=deployment.refs["PipelineShare"], permissionArn=PERMISSIONS["allow-execution"], replace=True
    )
    stack.advance(timedelta(hours=1, minutes=1))
    # Then the grant is cost-bearing and the change was announced
    assert _grants(stack)[0]["cost_bearing"] is True
    assert _owner_events(stack)[-1] == "inventory.gained-allow-execution"


def test_removed_consumer_is_revoked_in_the_inventory(stack: LocalStack) -> None:
    # Given an accepted share
    share_arn = _share_allow_execution(stack)
    # When the owner removes the consumer
    stack.client(OWNER, "ram").disassociate_resource_share(resourceShareArn=share_arn, principals=[CONSUMER])
    stack.deliver()
    stack.advance(timedelta(hours=1, minutes=1))
    # Then the grant is gone and the revocation announced once
    assert _grants(stack) == []
    assert _owner_events(stack).count("inventory.revoked") == 1


def test_shares_without_pipelines_are_not_inventoried(stack: LocalStack) -> None:
    # Given an owner sharing only a subnet
    from tests.integration.stackhelpers import create_subnet, share

    stack.deploy(OWNER, {"Mode": "owner"})
    share(stack, OWNER, "network", [create_subnet(stack, OWNER)], [STRANGER])
    stack.deliver()
    # Then nothing is recorded
    assert _grants(stack) == []


# ------------------------------------------------------------------------------- one pipeline through two shares


def _two_shares(stack: LocalStack) -> tuple[str, str, str]:
    """The consumer holds churn-train read-only through the template's share and with allow-execution through a
    second share, both accepted. Returns (pipeline, read-only share, allow-execution share)."""
    pipeline = create_pipeline(stack, OWNER, "churn-train")
    read = str(deploy_shared_pipeline(stack, pipeline, permission="read-only").refs["PipelineShare"])
    run = share(stack, OWNER, "churn-train-run", [pipeline], [CONSUMER], "allow-execution")
    stack.deliver()
    return pipeline, read, run


def _by_share(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return {g["share_arn"]: g for g in _grants(stack)}


def _revocations(stack: LocalStack) -> list[dict[str, Any]]:
    return [
        n
        for n in stack.read_notifications(OWNER)
        if n["topic"] == "OwnerTopic" and n["message"]["event"] == "inventory.revoked"
    ]


def test_a_consumer_holding_a_pipeline_through_two_shares_keeps_both_grants(stack: LocalStack) -> None:
    # When the consumer holds the pipeline through a read-only share and an allow-execution share
    pipeline, read, run = _two_shares(stack)
    # Then the inventory holds both grants, one item per share (keys lower-case), and the consumer is cost-bearing
    grants = _by_share(stack)
    assert set(grants) == {read, run}
    assert {(g["association_status"], g["consumer"]) for g in grants.values()} == {("ASSOCIATED", CONSUMER)}
    assert (grants[read]["allow_execution"], grants[read]["cost_bearing"]) == (False, False)
    assert (grants[run]["allow_execution"], grants[run]["cost_bearing"]) == (True, True)
    assert {g["sk"] for g in grants.values()} == {
        f"GRANT#{pipeline.lower()}#{CONSUMER}#{read.lower()}",
        f"GRANT#{pipeline.lower()}#{CONSUMER}#{run.lower()}",
    }
    assert _owner_events(stack).count("inventory.accepted") == 2


def test_revoking_the_read_only_share_keeps_the_allow_execution_grant(stack: LocalStack) -> None:
    # Given the consumer holds the pipeline through both shares
    _, read, run = _two_shares(stack)
    # When the owner removes the consumer from the read-only share, and the reconciles run
    stack.client(OWNER, "ram").disassociate_resource_share(resourceShareArn=read, principals=[CONSUMER])
    stack.deliver()
    stack.advance(timedelta(hours=1, minutes=1))
    # Then the allow-execution grant stays, cost-bearing
    grants = _by_share(stack)
    assert set(grants) == {run}
    assert grants[run]["cost_bearing"] is True
    # and the one revocation message names the read-only share and says the consumer can still run the pipeline
    [revoked] = _revocations(stack)
    assert revoked["message"]["share_arn"] == read
    assert revoked["message"]["consumer_holds"]["share_arn"] == run
    assert revoked["message"]["consumer_holds"]["cost_bearing"] is True
    assert revoked["subject"].endswith("via one share; can still RUN it")
    # and RAM agrees: the consumer can still start it
    execution = stack.client(CONSUMER, "sagemaker").start_pipeline_execution(PipelineName=grants[run]["pipeline_arn"])
    assert execution["PipelineExecutionArn"]


def test_revoking_the_allow_execution_share_keeps_the_read_only_grant(stack: LocalStack) -> None:
    # Given the consumer holds the pipeline through both shares
    _, read, run = _two_shares(stack)
    # When the owner removes the consumer from the allow-execution share, and the reconciles run
    stack.client(OWNER, "ram").disassociate_resource_share(resourceShareArn=run, principals=[CONSUMER])
    stack.deliver()
    stack.advance(timedelta(hours=1, minutes=1))
    # Then the read-only grant stays, not cost-bearing, and the revocation says the consumer still reads it
    grants = _by_share(stack)
    assert set(grants) == {read}
    assert grants[read]["cost_bearing"] is False
    [revoked] = _revocations(stack)
    assert revoked["message"]["share_arn"] == run
    assert revoked["message"]["consumer_holds"]["share_arn"] == read
    assert revoked["message"]["consumer_holds"]["cost_bearing"] is False
    assert revoked["subject"].endswith("via one share; still reads it")


# ------------------------------------------------------------------------------------------------------ ARN case


def _owner_table(stack: LocalStack) -> DynamoDbGrantRepository:
    """The grant repository on the owner's table, through the stack's client with the owner's tooling credentials."""
    return DynamoDbGrantRepository(stack.deployments[OWNER].refs["OwnerTable"], stack.client(OWNER, "dynamodb"))


def test_a_pipeline_arn_in_mixed_case_is_one_grant_item(stack: LocalStack) -> None:
    # Given a grant recorded with the pipeline ARN in mixed case
    stack.deploy(OWNER, {"Mode": "owner"})
    repository = _owner_table(stack)
    mixed = Grant(
        pipeline_arn=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/Churn-Train",
        consumer=CONSUMER,
        share_arn=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/Run-0001",
        share_name="run",
        association_status="ASSOCIATED",
        permission_name=ALLOW_EXECUTION,
    )
    now = datetime.now(UTC)
    [accepted] = diff({}, [mixed], at=now)
    assert repository.apply(accepted, history_expires_at=0)
    lower = mixed.model_copy(update={"pipeline_arn": mixed.pipeline_arn.lower()})
    # When it is read by the pipeline ARN in lower case, and RAM later lists the pipeline in lower case
    stored = repository.grants(lower.pipeline_arn)
    # Then it is found, with the ARN as first given, and nothing changed: one item
    assert [g.pipeline_arn for g in stored.values()] == [mixed.pipeline_arn]
    assert diff(stored, [lower], at=now) == []
    assert len(_grants(stack)) == 1
    # and its revocation, named in lower case, deletes that one item
    [revoked] = diff(stored, [], at=now + timedelta(seconds=1))
    assert repository.apply(revoked, history_expires_at=0)
    assert _grants(stack) == []
