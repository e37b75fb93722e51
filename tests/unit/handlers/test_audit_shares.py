"""functions/audit_shares: the daily schedule, with RAM's shared resources, the share table and the trust policy in
memory."""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare.logic.policy import policy_from_parameters
from tests.conftest import load_event
from tests.fakes import OWNER, FakeAuditRepository, FakePolicySource, FakeSharedResources, raw_resource, share_arn
from tests.unit.handlers.conftest import Invoker, assert_refused_without_side_effect, invalid_fixtures

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "audit_shares"
SCHEDULE = load_event("scheduled_event_docs_example")
SHARE = share_arn("churn")


class Consumer:
    """What other accounts share with the consumer (one share of the trusted owner), its alerts, its policy."""

    def __init__(self, *types: str) -> None:
        self.ram = FakeSharedResources(
            [raw_resource(f"r{i}", resource_type=t, resourceShareArn=SHARE) for i, t in enumerate(types)]
        )
        self.audits = FakeAuditRepository()
        self.policy = FakePolicySource(
            policy_from_parameters(
                trusted_owner_ids=OWNER,
                allowed_resource_types="sagemaker:Pipeline",
                untrusted_action="hold",
                disallowed_resource_action="hold",
            )
        )

    def ports(self) -> dict[str, Any]:
        return {"get_ram_gateway": self.ram, "get_share_repository": self.audits, "get_policy_source": self.policy}


def test_a_share_carrying_a_disallowed_type_is_alerted_with_that_type(invoke: Invoker) -> None:
    # Given an accepted share to which the owner added a subnet next to its pipeline
    consumer = Consumer("sagemaker:Pipeline", "ec2:Subnet")

    # When the schedule fires
    run = invoke(SCHEDULE, **consumer.ports())

    # Then one alert (outbox item) names the share and the new type, and the response counts it
    [alert] = consumer.audits.alerts
    assert (alert["share_arn"], alert["new_types"]) == (SHARE, ["ec2:Subnet"])
    assert [r["type"] for r in alert["resources"]] == ["ec2:Subnet"]
    assert run.result["resources"] == 2
    assert run.result["shares"] == 1
    assert run.result["alerted"] == 1
    assert run.result["already_alerted"] == 0
    assert run.errors == []


def test_the_next_run_does_not_alert_the_same_type_again(invoke: Invoker) -> None:
    # Given a share already alerted on
    consumer = Consumer("sagemaker:Pipeline", "ec2:Subnet")
    invoke(SCHEDULE, **consumer.ports())

    # When the schedule fires again (or the event is delivered again)
    run = invoke(SCHEDULE, **consumer.ports())

    # Then no second alert
    assert len(consumer.audits.alerts) == 1
    assert (run.result["alerted"], run.result["already_alerted"]) == (0, 1)


def test_allowed_types_only_raise_no_alert(invoke: Invoker) -> None:
    # Given a share of pipelines only
    consumer = Consumer("sagemaker:Pipeline", "sagemaker:Pipeline")

    # When the schedule fires
    run = invoke(SCHEDULE, **consumer.ports())

    # Then nothing is recorded
    assert consumer.audits.alerts == []
    assert (run.result["resources"], run.result["alerted"]) == (2, 0)


@pytest.mark.parametrize("event", [*invalid_fixtures(), pytest.param(None, id="wrong-detail-type")])
def test_an_invalid_event_is_refused_once_without_any_port_call(invoke: Invoker, event: Any) -> None:
    # Given an event that is not the schedule
    event = event or load_event("scheduled_event_docs_example", detail_type="Resource Sharing State Change")
    consumer = Consumer("sagemaker:Pipeline", "ec2:Subnet")

    # When it is handed to the handler
    run = invoke(event, **consumer.ports())

    # Then it is refused once, with its id, and nothing is read or recorded
    assert_refused_without_side_effect(run, event_id=event["id"], answer={"status": "invalid"})
    assert consumer.ram.calls == 0
    assert consumer.audits.alerts == []
