"""functions/owner_inventory: a RAM state change or the schedule, with the owner's RAM shares and the grant inventory
in memory."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import load_event
from tests.fakes import CONSUMER, OWNER, FakeGrantRepository, FakeOwnerShareGateway
from tests.unit.handlers.conftest import Invoker, assert_refused_without_side_effect, invalid_fixtures

pytestmark = pytest.mark.usefixtures("socket_disabled")

HANDLER = "owner_inventory"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"


class Owner:
    def __init__(self) -> None:
        self.ram = FakeOwnerShareGateway()
        self.grants = FakeGrantRepository()

    def ports(self) -> dict[str, Any]:
        return {"get_owner_gateway": self.ram, "get_grant_repository": self.grants}


@pytest.mark.parametrize("fixture", ["ram_invitation_pending", "scheduled_event_docs_example"])
def test_a_new_grant_is_recorded_once_and_counted(invoke: Invoker, fixture: str) -> None:
    # Given a share of the pipeline with one consumer, allowed to run it (cost-bearing)
    owner = Owner()
    owner.ram.share("churn", [PIPELINE], [CONSUMER], "allow-execution")

    # When a RAM state change (or the schedule) arrives
    run = invoke(load_event(fixture), **owner.ports())

    # Then the grant is recorded as one change, and the response counts the share, the grant and what it costs
    [change] = owner.grants.applied
    assert (change.kind, change.grant.consumer, change.grant.pipeline_arn) == ("accepted", CONSUMER, PIPELINE)
    assert set(owner.grants.stored.values()) == {change.after}
    assert run.result["status"] == "ok"
    assert (run.result["shares"], run.result["grants"]) == (1, 1)
    assert (run.result["cost_bearing"], run.result["cost_bearing_holdings"]) == (1, 1)
    assert len(run.result["changes"]) == 1
    assert run.result["changes"][0].startswith(f"accepted: {CONSUMER} on {PIPELINE}")
    assert run.errors == []


def test_the_event_delivered_again_records_no_change(invoke: Invoker) -> None:
    # Given a grant the first delivery recorded
    owner = Owner()
    owner.ram.share("churn", [PIPELINE], [CONSUMER], "read-only")
    event = load_event("ram_invitation_pending")
    invoke(event, **owner.ports())

    # When the same event comes again
    run = invoke(event, **owner.ports())

    # Then nothing more is recorded
    assert len(owner.grants.applied) == 1
    assert run.result["changes"] == []
    assert (run.result["grants"], run.result["cost_bearing"]) == (1, 0)


def test_a_removed_consumer_is_recorded_as_revoked(invoke: Invoker) -> None:
    # Given a recorded grant whose consumer the owner then took off the share
    owner = Owner()
    owner.ram.share("churn", [PIPELINE], [CONSUMER], "read-only")
    invoke(load_event("scheduled_event_docs_example"), **owner.ports())
    owner.ram.forget("churn", CONSUMER)

    # When the schedule fires
    run = invoke(load_event("scheduled_event_docs_example"), **owner.ports())

    # Then the grant is revoked (deleted from the inventory) once
    assert [c.kind for c in owner.grants.applied] == ["accepted", "revoked"]
    assert owner.grants.stored == {}
    assert run.result["grants"] == 0


@pytest.mark.parametrize("event", [*invalid_fixtures(), pytest.param(None, id="wrong-detail-type")])
def test_an_invalid_event_is_refused_once_without_any_port_call(invoke: Invoker, event: Any) -> None:
    # Given an event that is neither a RAM state change nor the schedule
    event = event or load_event("ram_invitation_pending", detail_type="Resource Share Deleted")
    owner = Owner()
    owner.ram.share("churn", [PIPELINE], [CONSUMER], "allow-execution")

    # When it is handed to the handler
    run = invoke(event, **owner.ports())

    # Then it is refused once, with its id, and the inventory is neither read nor changed
    assert_refused_without_side_effect(run, event_id=event["id"], answer={"status": "invalid"})
    assert owner.grants.applied == []
