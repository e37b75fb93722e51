"""Budget enforcement, RAM side, on the local stack: only the offender is touched.

Two consumers hold one allow-execution share (sharing as code, single layout). The enforcement gateway runs with the
budget watcher's credentials (its role as the template grants it, enforced by the local IAM):
- removing consumer A takes A off the share; B keeps starting executions and the share's permission is unchanged;
- A gets a read-only share of its own, which A's pipeshare accepts (A trusts the owner); A can read the pipeline but
  not start it;
- the same calls the same month change nothing; a new month is a new request;
- the role allows nothing more: no pipeline taken off a share, no permission changed, no principal added to a share
  that is not a pipeshare read-only share, nothing but pipelines shared;
- ShareLayout per-consumer gives each consumer a share of its own (Fn::ForEach), and removing one touches no other.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeshare.adapters.enforcement import AwsEnforcementGateway, read_only_share_name
from pipeshare_local.scenario import PERMISSIONS
from pipeshare_local.stack import LocalStack
from tests.integration.stackhelpers import (
    CONSUMER,
    CONSUMER_B,
    OWNER,
    STRANGER,
    create_pipeline,
    create_subnet,
    deploy_shared_pipeline,
    state,
)

MONTH, NEXT_MONTH = "2026-05", "2026-06"
WATCHER = "WatchBudgetsFunction"


def enforcer(stack: LocalStack) -> AwsEnforcementGateway:
    """The gateway as the budget watcher runs it: its clients sign with the function's role."""
    return AwsEnforcementGateway(
        sagemaker=stack.function_client(OWNER, WATCHER, "sagemaker"), ram=stack.function_client(OWNER, WATCHER, "ram")
    )


def two_consumers_on_one_share(stack: LocalStack) -> tuple[str, str]:
    """(pipeline ARN, allow-execution share ARN), both consumers' pipeshare having accepted the share."""
    pipeline = create_pipeline(stack, OWNER, "churn-train")
    deployment = deploy_shared_pipeline(stack, pipeline, (CONSUMER, CONSUMER_B))
    return pipeline, str(deployment.refs["PipelineShare"])


def start(stack: LocalStack, consumer: str, pipeline: str, token: str) -> str:
    response = stack.client(consumer, "sagemaker").start_pipeline_execution(
        PipelineName=pipeline, ClientRequestToken=token.ljust(32, "0")
    )
    return str(response["PipelineExecutionArn"])


def refused_start(stack: LocalStack, consumer: str, pipeline: str, token: str) -> str:
    with pytest.raises(ClientError) as refused:
        start(stack, consumer, pipeline, token)
    return str(refused.value.response["Error"]["Code"])


def principals(stack: LocalStack, share_arn: str) -> dict[str, str]:
    response = stack.client(OWNER, "ram").get_resource_share_associations(
        associationType="PRINCIPAL", resourceShareArns=[share_arn]
    )
    return {a["associatedEntity"]: a["status"] for a in response["resourceShareAssociations"]}


def permissions(stack: LocalStack, share_arn: str) -> list[str]:
    response = stack.client(OWNER, "ram").list_resource_share_permissions(resourceShareArn=share_arn)
    return [p["arn"] for p in response["permissions"]]


def owned_shares(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in stack.ram.snapshot()["shares"] if s["owner"] == OWNER}


def ram_state(stack: LocalStack) -> dict[str, Any]:
    snapshot = stack.ram.snapshot()
    return {"shares": snapshot["shares"], "invitations": snapshot["invitations"]}


# ------------------------------------------------------------------------------------------------ only the offender


def test_removing_one_consumer_leaves_the_other_able_to_start(stack: LocalStack) -> None:
    # Given two consumers running the owner's pipeline through one allow-execution share
    pipeline, share = two_consumers_on_one_share(stack)
    start(stack, CONSUMER, pipeline, "a-before")
    start(stack, CONSUMER_B, pipeline, "b-before")

    # When the budget watcher removes consumer A
    removed = enforcer(stack).remove_principal(share, CONSUMER, month=MONTH)
    stack.deliver()

    # Then A is off the share and can no longer see or start the pipeline; B keeps its access and the permission
    assert removed is True
    assert principals(stack, share) == {CONSUMER: "DISASSOCIATED", CONSUMER_B: "ASSOCIATED"}
    assert refused_start(stack, CONSUMER, pipeline, "a-after") in ("ResourceNotFound", "ValidationException")
    assert start(stack, CONSUMER_B, pipeline, "b-after").startswith(pipeline)
    assert permissions(stack, share) == [PERMISSIONS["allow-execution"]]
    assert stack.iam.denials == []


def test_the_removed_consumer_gets_a_read_only_share_its_pipeshare_accepts(stack: LocalStack) -> None:
    # Given consumer A removed from the allow-execution share
    pipeline, share = two_consumers_on_one_share(stack)
    gateway = enforcer(stack)
    gateway.remove_principal(share, CONSUMER, month=MONTH)

    # When A is granted the same pipeline read-only, and the events are delivered
    read_share = gateway.grant_read_only(CONSUMER, [pipeline], month=MONTH)
    stack.deliver()

    # Then A's pipeshare accepted the invitation (A trusts the owner), and A reads the pipeline but cannot start it
    record = state(stack, CONSUMER, read_only_share_name(CONSUMER))
    assert record is not None
    assert (record["status"], record["rule"]) == ("ACCEPTED", "trusted-owner")
    assert principals(stack, read_share) == {CONSUMER: "ASSOCIATED"}
    assert permissions(stack, read_share) == [PERMISSIONS["read-only"]]
    executions = stack.client(CONSUMER, "sagemaker").list_pipeline_executions(PipelineName=pipeline)
    assert "PipelineExecutionSummaries" in executions
    assert refused_start(stack, CONSUMER, pipeline, "a-read-only") == "AccessDeniedException"
    # and B is neither invited nor changed
    assert state(stack, CONSUMER_B, read_only_share_name(CONSUMER)) is None
    assert start(stack, CONSUMER_B, pipeline, "b-still").startswith(pipeline)
    assert stack.iam.denials == []


def test_repeating_the_calls_the_same_month_changes_nothing(stack: LocalStack) -> None:
    # Given A removed and granted read-only this month, the events delivered
    pipeline, share = two_consumers_on_one_share(stack)
    gateway = enforcer(stack)
    gateway.remove_principal(share, CONSUMER, month=MONTH)
    read_share = gateway.grant_read_only(CONSUMER, [pipeline], month=MONTH)
    stack.deliver()
    before = ram_state(stack)
    events = len(stack.delivered)

    # When both calls are made again the same month (a retried invocation)
    again = gateway.grant_read_only(CONSUMER, [pipeline], month=MONTH)
    gateway.remove_principal(share, CONSUMER, month=MONTH)
    stack.deliver()

    # Then RAM is as it was: the same share, no new share, invitation, association or event
    assert again == read_share
    assert ram_state(stack) == before
    assert len(stack.delivered) == events


def test_the_same_month_replays_the_removal_and_a_new_month_makes_a_new_one(stack: LocalStack) -> None:
    # Given A removed this month, then put back on the share by the owner (A's pipeshare accepts again)
    pipeline, share = two_consumers_on_one_share(stack)
    gateway = enforcer(stack)
    assert gateway.remove_principal(share, CONSUMER, month=MONTH) is True
    stack.client(OWNER, "ram").associate_resource_share(resourceShareArn=share, principals=[CONSUMER])
    stack.deliver()
    assert principals(stack, share)[CONSUMER] == "ASSOCIATED"

    # When the removal is asked again this month (the same request), then next month (a new one)
    gateway.remove_principal(share, CONSUMER, month=MONTH)
    kept = principals(stack, share)[CONSUMER]
    removed_next_month = gateway.remove_principal(share, CONSUMER, month=NEXT_MONTH)
    gone_already = gateway.remove_principal(share, CONSUMER, month="2026-07")

    # Then this month's token is RAM's same request (no second removal), next month's removes A again, and a
    # consumer that is not associated any more is reported as such
    assert kept == "ASSOCIATED"
    assert removed_next_month is True
    assert principals(stack, share) == {CONSUMER: "DISASSOCIATED", CONSUMER_B: "ASSOCIATED"}
    assert gone_already is False
    assert refused_start(stack, CONSUMER, pipeline, "a-next-month") in ("ResourceNotFound", "ValidationException")


def test_a_second_grant_the_same_month_adds_the_missing_pipelines_to_the_same_share(stack: LocalStack) -> None:
    # Given A granted one pipeline read-only this month
    pipeline, share = two_consumers_on_one_share(stack)
    other = create_pipeline(stack, OWNER, "churn-score")
    gateway = enforcer(stack)
    gateway.remove_principal(share, CONSUMER, month=MONTH)
    first = gateway.grant_read_only(CONSUMER, [pipeline], month=MONTH)
    stack.deliver()

    # When A is granted both pipelines, the same month
    second = gateway.grant_read_only(CONSUMER, [other, pipeline], month=MONTH)
    stack.deliver()

    # Then the one read-only share holds both, and A reads both
    assert second == first
    shares = owned_shares(stack)
    assert sorted(r["arn"] for r in shares[read_only_share_name(CONSUMER)]["resources"]) == sorted([pipeline, other])
    assert len([name for name in shares if name.startswith("pipeshare-read-only-")]) == 1
    assert "PipelineExecutionSummaries" in stack.client(CONSUMER, "sagemaker").list_pipeline_executions(
        PipelineName=other
    )
    assert stack.iam.denials == []


def test_removing_a_consumer_never_associated_is_not_an_error_whatever_ram_answers(stack: LocalStack) -> None:
    # Given a share the stranger never was on
    _, share = two_consumers_on_one_share(stack)
    before = ram_state(stack)

    # When the stranger is removed, with RAM answering UnknownResourceException (default), then success (no_op)
    unknown = enforcer(stack).remove_principal(share, STRANGER, month=MONTH)
    stack.settings.ram.disassociate_unassociated = "no_op"
    silent = enforcer(stack).remove_principal(share, STRANGER, month=NEXT_MONTH)

    # Then neither raises and nothing changes; only the documented-by-nobody success reads as done
    assert (unknown, silent) == (False, True)
    assert ram_state(stack) == before


# ------------------------------------------------------------------------------------------------ what the role forbids


def test_the_budget_watchers_role_allows_nothing_beyond_the_offender(stack: LocalStack) -> None:
    # Given the allow-execution share and the budget watcher's own RAM client
    pipeline, share = two_consumers_on_one_share(stack)
    ram = stack.function_client(OWNER, WATCHER, "ram")
    subnet = create_subnet(stack, OWNER)
    attempts = {
        "take a pipeline off a share": lambda: ram.disassociate_resource_share(
            resourceShareArn=share, resourceArns=[pipeline]
        ),
        "change a share's permission": lambda: ram.associate_resource_share_permission(
            resourceShareArn=share, permissionArn=PERMISSIONS["read-only"], replace=True
        ),
        "add a principal to the allow-execution share": lambda: ram.associate_resource_share(
            resourceShareArn=share, principals=[STRANGER]
        ),
        "share something other than a pipeline": lambda: ram.create_resource_share(
            name=read_only_share_name(STRANGER), resourceArns=[subnet], principals=[STRANGER]
        ),
        "share with an organization": lambda: ram.create_resource_share(
            name=read_only_share_name(STRANGER),
            resourceArns=[pipeline],
            principals=[f"arn:aws:organizations::{OWNER}:organization/o-abcdefghij"],
        ),
    }

    # When it tries each
    codes = {}
    for what, attempt in attempts.items():
        with pytest.raises(ClientError) as refused:
            attempt()
        codes[what] = refused.value.response["Error"]["Code"]

    # Then IAM refuses every one, and the share is untouched
    assert set(codes.values()) == {"AccessDeniedException"}, codes
    assert principals(stack, share) == {CONSUMER: "ASSOCIATED", CONSUMER_B: "ASSOCIATED"}
    assert permissions(stack, share) == [PERMISSIONS["allow-execution"]]


# ------------------------------------------------------------------------------------------------ per-consumer layout


def test_per_consumer_layout_gives_each_consumer_its_own_share(stack: LocalStack) -> None:
    # Given the owner sharing a pipeline as code with two consumers, one share per consumer
    pipeline = create_pipeline(stack, OWNER, "churn-train")
    deployment = deploy_shared_pipeline(stack, pipeline, (CONSUMER, CONSUMER_B), ShareLayout="per-consumer")

    # When the stack is read back
    shares = owned_shares(stack)

    # Then there is one share per consumer, named for it, each with that consumer only (accepted by its pipeshare)
    assert sorted(shares) == [f"pipeshare-pipelines-{CONSUMER}", f"pipeshare-pipelines-{CONSUMER_B}"]
    for consumer in (CONSUMER, CONSUMER_B):
        share = str(deployment.refs[f"PipelineShareFor{consumer}"])
        assert principals(stack, share) == {consumer: "ASSOCIATED"}
        assert [r["arn"] for r in shares[f"pipeshare-pipelines-{consumer}"]["resources"]] == [pipeline]
        assert state(stack, consumer, f"pipeshare-pipelines-{consumer}")["status"] == "ACCEPTED"
    assert "PipelineShare" not in deployment.refs

    # and removing A from its share leaves B's share as it was
    b_share = str(deployment.refs[f"PipelineShareFor{CONSUMER_B}"])
    enforcer(stack).remove_principal(str(deployment.refs[f"PipelineShareFor{CONSUMER}"]), CONSUMER, month=MONTH)
    assert principals(stack, b_share) == {CONSUMER_B: "ASSOCIATED"}
    assert start(stack, CONSUMER_B, pipeline, "b-own-share").startswith(pipeline)
