"""Helpers for tests on the local stack: owner-side setup through real boto3 clients, and reading state back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipeshare_local.runtime import Invocation
from pipeshare_local.scenario import PERMISSIONS
from pipeshare_local.stack import LocalStack

OWNER = "111111111111"
CONSUMER = "222222222222"
STRANGER = "333333333333"
CONSUMER_B = "444444444444"


def create_pipeline(stack: LocalStack, account: str, name: str) -> str:
    return str(
        stack.client(account, "sagemaker").create_pipeline(
            PipelineName=name,
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
            RoleArn=f"arn:aws:iam::{account}:role/SageMakerPipelineExecRole",
            ClientRequestToken=f"create-{name}".ljust(32, "0"),
        )["PipelineArn"]
    )


def create_subnet(stack: LocalStack, account: str) -> str:
    ec2 = stack.client(account, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    return f"arn:aws:ec2:{stack.region}:{account}:subnet/{subnet}"


def share(
    stack: LocalStack, owner: str, name: str, resources: list[str], principals: list[str], permission: str | None = None
) -> str:
    request: dict[str, Any] = {"name": name, "resourceArns": resources, "principals": principals}
    if permission:
        request["permissionArns"] = [PERMISSIONS[permission]]
    return str(stack.client(owner, "ram").create_resource_share(**request)["resourceShare"]["resourceShareArn"])


def share_pipeline(stack: LocalStack, owner: str, name: str, principals: list[str], **kwargs: Any) -> str:
    return share(stack, owner, f"{name}-share", [create_pipeline(stack, owner, name)], principals, **kwargs)


def invitation_arn(stack: LocalStack, receiver: str, share_name: str) -> str:
    invitations = stack.client(receiver, "ram").get_resource_share_invitations()["resourceShareInvitations"]
    return str(next(i["resourceShareInvitationArn"] for i in invitations if i["resourceShareName"] == share_name))


def ram_status(stack: LocalStack, receiver: str, share_name: str) -> str:
    invitations = stack.client(receiver, "ram").get_resource_share_invitations()["resourceShareInvitations"]
    return str(next(i["status"] for i in invitations if i["resourceShareName"] == share_name))


def state(stack: LocalStack, account: str, share_name: str) -> dict[str, Any] | None:
    items = [i for i in stack.table_items(account) if i["sk"] == "STATE" and i.get("share_name") == share_name]
    assert len(items) <= 1
    return items[0] if items else None


def history(stack: LocalStack, account: str, share_name: str) -> list[dict[str, Any]]:
    return [i for i in stack.table_items(account) if i["sk"].startswith("HIST#") and i.get("share_name") == share_name]


def notifications(stack: LocalStack, account: str, event: str | None = None) -> list[dict[str, Any]]:
    return [n for n in stack.read_notifications(account) if event is None or n["message"].get("event") == event]


def acceptor_invocations(stack: LocalStack, account: str) -> list[Any]:
    return stack.deployments[account].functions["AcceptInvitationsFunction"].invocations


def deploy_shared_pipeline(
    stack: LocalStack,
    pipeline_arn: str,
    consumers: tuple[str, ...] = (CONSUMER,),
    *,
    permission: str = "allow-execution",
    consumer_parameters: dict[str, str] | None = None,
    **owner_parameters: str,
) -> Any:
    """Consumers trusting the owner, then the owner sharing the pipeline as code; events delivered. The owner's
    deployment is returned."""
    for consumer in consumers:
        stack.deploy(consumer, {"TrustedOwnerAccountIds": OWNER, **(consumer_parameters or {})})
    deployment = stack.deploy(
        OWNER,
        {
            "Mode": "owner",
            "SharedPipelineArns": pipeline_arn,
            "ShareConsumerAccountIds": ",".join(consumers),
            "SharePermission": permission,
            **owner_parameters,
        },
    )
    stack.deliver()
    return deployment


@dataclass
class InvocationCalls:
    """One invocation of a function and the operations it signed while it ran, in order."""

    invocation: Invocation
    operations: list[str]


@contextmanager
def calls_by_invocation(stack: LocalStack, account: str, logical_id: str) -> Iterator[list[InvocationCalls]]:
    """While active, every invocation of the deployed function (rules, streams, queues and schedules all invoke
    through invoke_once; the local stack runs one at a time) is listed with the calls signed by that function's key
    during it, so one invocation's calls can be told apart from the function's other invocations'."""
    function = stack.deployments[account].functions[logical_id]
    runs: list[InvocationCalls] = []
    invoke_once = function.invoke_once

    def recorded(event: dict[str, Any], *, trigger: str, attempt: int = 1) -> Invocation:
        before = len(stack.calls(account, function=logical_id))
        invocation = invoke_once(event, trigger=trigger, attempt=attempt)
        runs.append(InvocationCalls(invocation, [c[2] for c in stack.calls(account, function=logical_id)[before:]]))
        return invocation

    function.invoke_once = recorded  # type: ignore[method-assign]
    try:
        yield runs
    finally:
        del function.invoke_once
