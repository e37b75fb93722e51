"""The owner's share inventory on the local stack: grants, permissions, cost-bearing, changes notified once."""

from __future__ import annotations

from datetime import timedelta

from pipeshare_local.scenario import PERMISSIONS
from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import CONSUMER, OWNER, STRANGER, create_pipeline, deploy_shared_pipeline


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
