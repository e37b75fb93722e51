"""Owner side foundations on the local stack: sharing as code, the owner bus and the consumer forwarder."""

from __future__ import annotations

import copy

from pipeshare_local.scenario import PERMISSIONS
from pipeshare_local.stack import LocalStack
from tests.conftest import load_event
from tests.integration.stackhelpers import (
    CONSUMER,
    OWNER,
    STRANGER,
    create_pipeline,
    deploy_shared_pipeline,
    ram_status,
)

OWNER_BUS_ARN = f"arn:aws:events:us-east-1:{OWNER}:event-bus/pipeshare-owner"


def _deploy_forwarding(stack: LocalStack, *, admitted: str = CONSUMER) -> None:
    stack.deploy(OWNER, {"Mode": "owner", "ForwarderAccountIds": admitted})
    stack.deploy(CONSUMER, {"TrustedOwnerAccountIds": OWNER, "OwnerEventBusArn": OWNER_BUS_ARN})


def _on_owner_bus(stack: LocalStack) -> list[dict]:
    return [d.event for d in stack.delivered if d.account == OWNER and d.bus == "pipeshare-owner"]


def test_sharing_as_code_creates_the_share_with_the_chosen_permission(stack: LocalStack) -> None:
    # Given a pipeline and a consumer that trusts its owner
    pipeline = create_pipeline(stack, OWNER, "churn-train")
    # When the owner deploys pipeshare with the pipeline shared allow-execution
    deployment = deploy_shared_pipeline(stack, pipeline)
    # Then the consumer was invited and accepted, and the share carries the allow-execution permission
    assert ram_status(stack, CONSUMER, "pipeshare-pipelines") == "ACCEPTED"
    permissions = stack.client(OWNER, "ram").list_resource_share_permissions(
        resourceShareArn=deployment.refs["PipelineShare"]
    )["permissions"]
    assert [p["arn"] for p in permissions] == [PERMISSIONS["allow-execution"]]


def test_sharing_as_code_is_off_by_default(stack: LocalStack) -> None:
    # When an owner deploys without pipelines to share
    deployment = stack.deploy(OWNER, {"Mode": "owner"})
    # Then no share exists
    assert "PipelineShare" not in deployment.refs
    assert stack.client(OWNER, "ram").get_resource_shares(resourceOwner="SELF")["resourceShares"] == []


def test_consumer_call_on_a_trusted_owners_pipeline_is_forwarded_to_the_owner_bus(stack: LocalStack) -> None:
    # Given an owner bus admitting the consumer, and a consumer forwarding to it
    _deploy_forwarding(stack)
    event = load_event("cloudtrail_start_pipeline_execution_consumer")
    # When the consumer's CloudTrail records its StartPipelineExecution on the owner's pipeline
    stack.put_event(CONSUMER, event)
    stack.deliver()
    # Then the event, unchanged, is on the owner's bus
    assert _on_owner_bus(stack) == [event]


def test_stop_and_retry_calls_are_forwarded_too(stack: LocalStack) -> None:
    _deploy_forwarding(stack)
    for name in ("cloudtrail_stop_pipeline_execution_consumer", "cloudtrail_retry_pipeline_execution_consumer"):
        stack.put_event(CONSUMER, load_event(name))
    stack.deliver()
    assert [e["detail"]["eventName"] for e in _on_owner_bus(stack)] == [
        "StopPipelineExecution",
        "RetryPipelineExecution",
    ]


def test_calls_on_other_pipelines_and_failed_calls_are_not_forwarded(stack: LocalStack) -> None:
    # Given forwarding set up for one trusted owner
    _deploy_forwarding(stack)
    own = load_event("cloudtrail_start_pipeline_execution_consumer")
    own["detail"]["requestParameters"]["pipelineName"] = f"arn:aws:sagemaker:us-east-1:{CONSUMER}:pipeline/mine"
    by_name = copy.deepcopy(own)
    by_name["detail"]["requestParameters"]["pipelineName"] = "mine"
    untrusted = copy.deepcopy(own)
    untrusted["detail"]["requestParameters"]["pipelineName"] = f"arn:aws:sagemaker:us-east-1:{STRANGER}:pipeline/x"
    denied = load_event("cloudtrail_start_pipeline_execution_denied")
    # When the consumer's own, untrusted-owner and denied calls are recorded
    for event in (own, by_name, untrusted, denied):
        stack.put_event(CONSUMER, event)
    stack.deliver()
    # Then nothing reaches the owner
    assert _on_owner_bus(stack) == []


def test_owner_bus_refuses_accounts_it_does_not_admit(stack: LocalStack) -> None:
    # Given an owner bus that admits another account only
    _deploy_forwarding(stack, admitted=STRANGER)
    # When the consumer forwards a call
    stack.put_event(CONSUMER, load_event("cloudtrail_start_pipeline_execution_consumer"))
    stack.deliver()
    # Then the owner never sees it and the consumer's rule dead-letter queue holds it, with the reason
    assert _on_owner_bus(stack) == []
    [dead] = stack.queue_messages(CONSUMER, "RuleTargetDlq")
    assert "does not admit" in dead["error"]


def test_owner_bus_policy_admits_only_cloudtrail_pipeline_records(stack: LocalStack) -> None:
    # Given an admitted consumer and the owner bus policy's conditions (events:source, events:detail-type)
    _deploy_forwarding(stack)
    [forwarder] = [r for r in stack.deployments[CONSUMER].rules if r.forward_to]
    # When the consumer's rule targets the owner bus with an event of another source and detail-type
    refused = stack._forward(CONSUMER, forwarder, load_event("ram_invitation_pending", account=CONSUMER))
    allowed = stack._forward(CONSUMER, forwarder, load_event("cloudtrail_start_pipeline_execution_consumer"))
    # Then the policy refuses it (dead-lettered with the reason) and admits the CloudTrail record
    assert refused is not None
    assert "does not admit" in refused
    assert allowed is None
    assert [d["error"] for d in stack.queue_messages(CONSUMER, "RuleTargetDlq")] == [refused]
