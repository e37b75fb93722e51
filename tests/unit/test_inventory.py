"""pipeshare.logic.inventory: grants keyed pipeline x consumer x share (a consumer holding a pipeline through two
shares keeps both), each consumer's hold on a pipeline (allow-execution wins), reconcile per share, ARNs in any case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeshare.logic.inventory import InventoryOutcome, diff, holdings, reconcile_inventory
from pipeshare.models.owner import ALLOW_EXECUTION, READ_ONLY, Grant, strongest
from tests.fakes import CONSUMER, OWNER, STRANGER, FakeGrantRepository, FakeOwnerShareGateway

pytestmark = pytest.mark.usefixtures("socket_disabled")

PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=400)


class Owner:
    """The owner's RAM view and inventory, in memory; `reconcile` runs the inventory once (an hour later each time)."""

    def __init__(self) -> None:
        self.ram = FakeOwnerShareGateway()
        self.inventory = FakeGrantRepository()
        self.runs = 0

    def reconcile(self) -> InventoryOutcome:
        self.runs += 1
        return reconcile_inventory(
            ram=self.ram, grants=self.inventory, now=NOW + timedelta(hours=self.runs), history_retention=RETENTION
        )

    def grants_of(self, consumer: str = CONSUMER) -> dict[str, Grant]:
        """The consumer's stored grants on the pipeline, by share name."""
        return {g.share_name: g for g in self.inventory.grants(PIPELINE).values() if g.consumer == consumer}

    def holding(self, consumer: str = CONSUMER) -> Grant | None:
        return holdings(self.inventory.grants().values()).get(f"{PIPELINE}#{consumer}")


def shared_twice() -> Owner:
    """The consumer holds the pipeline through a read-only share and an allow-execution share, both accepted."""
    owner = Owner()
    owner.ram.share("read", [PIPELINE], [CONSUMER], "read-only")
    owner.ram.share("run", [PIPELINE], [CONSUMER], "allow-execution")
    return owner


# ------------------------------------------------------------------------------------------------- two shares


def test_a_consumer_holding_a_pipeline_through_two_shares_keeps_both_grants() -> None:
    # Given the consumer holds the pipeline through a read-only share and an allow-execution share
    owner = shared_twice()

    # When the inventory is reconciled
    outcome = owner.reconcile()

    # Then both grants are stored, each with its own share and permission, and both acceptances are recorded
    grants = owner.grants_of()
    assert set(grants) == {"read", "run"}
    assert (grants["read"].permission_name, grants["read"].cost_bearing) == (READ_ONLY, False)
    assert (grants["run"].permission_name, grants["run"].cost_bearing) == (ALLOW_EXECUTION, True)
    assert [c.kind for c in owner.inventory.applied] == ["accepted", "accepted"]
    assert (outcome.grants, outcome.cost_bearing) == (2, 1)


def test_a_consumer_holding_allow_execution_through_any_share_is_cost_bearing() -> None:
    # Given the consumer holds the pipeline read-only through one share and with allow-execution through another
    owner = shared_twice()

    # When the inventory is reconciled
    outcome = owner.reconcile()

    # Then its hold on the pipeline is the allow-execution grant: cost-bearing, whichever share was recorded first,
    # and every change recorded says so
    held = owner.holding()
    assert held is not None
    assert (held.share_name, held.cost_bearing) == ("run", True)
    assert outcome.cost_bearing_holdings == 1
    assert {(c.grant.share_name, c.holding.share_name if c.holding else None) for c in owner.inventory.applied} == {
        ("read", "run"),
        ("run", "run"),
    }


@pytest.mark.parametrize("removal", ["disassociated", "purged"])
def test_revoking_the_read_only_share_keeps_the_allow_execution_grant(removal: str) -> None:
    # Given the consumer holds the pipeline through both shares, on record
    owner = shared_twice()
    owner.reconcile()

    # When the owner removes the consumer from the read-only share (RAM lists it DISASSOCIATED, or no more)
    if removal == "disassociated":
        owner.ram.disassociate("read", CONSUMER)
    else:
        owner.ram.forget("read", CONSUMER)
    outcome = owner.reconcile()

    # Then only the read-only grant is revoked; the allow-execution grant stays, and so does the cost
    assert set(owner.grants_of()) == {"run"}
    [change] = owner.inventory.applied[2:]
    assert (change.kind, change.grant.share_name) == ("revoked", "read")
    assert change.holding is not None
    assert (change.holding.share_name, change.holding.cost_bearing) == ("run", True)
    assert outcome.cost_bearing_holdings == 1


def test_revoking_the_allow_execution_share_keeps_the_read_only_grant() -> None:
    # Given the consumer holds the pipeline through both shares, on record
    owner = shared_twice()
    owner.reconcile()

    # When the owner removes the consumer from the allow-execution share
    owner.ram.disassociate("run", CONSUMER)
    outcome = owner.reconcile()

    # Then only that grant is revoked; the consumer still holds the pipeline read-only: no longer cost-bearing
    assert set(owner.grants_of()) == {"read"}
    [change] = owner.inventory.applied[2:]
    assert (change.kind, change.grant.share_name, change.grant.association_status) == (
        "revoked",
        "run",
        "DISASSOCIATED",
    )
    assert change.before is not None
    assert change.before.cost_bearing
    assert change.holding is not None
    assert (change.holding.share_name, change.holding.cost_bearing) == ("read", False)
    assert outcome.cost_bearing_holdings == 0


def test_deleting_one_share_revokes_its_grants_only() -> None:
    # Given the consumer holds the pipeline through both shares, and another consumer through the read-only one
    owner = Owner()
    owner.ram.share("read", [PIPELINE], [CONSUMER, STRANGER], "read-only")
    owner.ram.share("run", [PIPELINE], [CONSUMER], "allow-execution")
    owner.reconcile()

    # When the owner deletes the allow-execution share (RAM no longer lists it)
    owner.ram.delete("run")
    owner.reconcile()

    # Then the consumer's allow-execution grant is revoked, every read-only grant stays
    assert [(c.kind, c.grant.consumer, c.grant.share_name) for c in owner.inventory.applied[3:]] == [
        ("revoked", CONSUMER, "run")
    ]
    assert set(owner.grants_of()) == {"read"}
    assert set(owner.grants_of(STRANGER)) == {"read"}


def test_a_grant_still_disassociating_after_its_revocation_is_not_recorded_again() -> None:
    # Given the consumer's grant through the allow-execution share was revoked while RAM listed it DISASSOCIATING
    owner = shared_twice()
    owner.reconcile()
    owner.ram.shares[owner.ram.arn("run")]["principals"][CONSUMER]["status"] = "DISASSOCIATING"
    owner.reconcile()
    assert [c.kind for c in owner.inventory.applied[2:]] == ["revoked"]

    # When reconciles run again while RAM still lists it DISASSOCIATING, then DISASSOCIATED
    owner.reconcile()
    owner.ram.disassociate("run", CONSUMER)
    owner.reconcile()

    # Then nothing more is recorded: one revocation, no grant coming back
    assert [c.kind for c in owner.inventory.applied[2:]] == ["revoked"]
    assert set(owner.grants_of()) == {"read"}


def test_a_repeated_reconcile_records_nothing() -> None:
    # Given both grants on record
    owner = shared_twice()
    owner.reconcile()

    # When the reconcile runs again with nothing changed in RAM
    outcome = owner.reconcile()

    # Then no change
    assert outcome.changes == []
    assert len(owner.inventory.applied) == 2


def test_strongest_prefers_an_active_allow_execution_grant() -> None:
    # Given a consumer's grants: read-only active, allow-execution still being associated, allow-execution active
    def grant(share: str, status: str, permission: str) -> Grant:
        return Grant(
            pipeline_arn=PIPELINE,
            consumer=CONSUMER,
            share_arn=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/{share}",
            share_name=share,
            association_status=status,
            permission_name=permission,
        )

    read = grant("a", "ASSOCIATED", READ_ONLY)
    pending = grant("b", "ASSOCIATING", ALLOW_EXECUTION)
    run = grant("c", "ASSOCIATED", ALLOW_EXECUTION)

    # When / Then the active allow-execution grant wins in any order; without it, the active read-only one
    assert strongest([read, pending, run]) == strongest([run, pending, read]) == run
    assert strongest([pending, read]) == read
    assert strongest([]) is None


# ------------------------------------------------------------------------------------------------------ ARN case


def test_mixed_case_arns_map_to_one_grant_key() -> None:
    # Given one grant as RAM lists it, and the same grant with the pipeline and share ARNs in another case
    grant = Grant(
        pipeline_arn=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/Churn-Train",
        consumer=CONSUMER,
        share_arn=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/AbC-123",
        share_name="run",
        association_status="ASSOCIATED",
        permission_name=ALLOW_EXECUTION,
    )
    lower = grant.model_copy(update={"pipeline_arn": grant.pipeline_arn.lower(), "share_arn": grant.share_arn.lower()})

    # When / Then they have one key (lower-case), one holding key, and the same key differs per share
    assert grant.key == lower.key == f"{PIPELINE}#{CONSUMER}#arn:aws:ram:us-east-1:{OWNER}:resource-share/abc-123"
    assert grant.holding_key == lower.holding_key == f"{PIPELINE}#{CONSUMER}"
    other_share = grant.model_copy(update={"share_arn": f"arn:aws:ram:us-east-1:{OWNER}:resource-share/def-456"})
    assert other_share.key != grant.key
    assert other_share.holding_key == grant.holding_key


def test_a_pipeline_listed_in_another_case_is_the_same_grant() -> None:
    # Given a grant on record for the pipeline as RAM first listed it
    owner = Owner()
    owner.ram.share("run", [PIPELINE.replace("churn-train", "Churn-Train")], [CONSUMER], "allow-execution")
    owner.reconcile()

    # When RAM lists the same pipeline in lower case
    owner.ram.share("run", [PIPELINE], [CONSUMER], "allow-execution")
    outcome = owner.reconcile()

    # Then nothing changed: one grant, found by the pipeline ARN in either case
    assert outcome.changes == []
    assert len(owner.inventory.grants()) == 1
    assert owner.inventory.grants(PIPELINE) == owner.inventory.grants(PIPELINE.upper())


def test_diff_on_mixed_case_stored_and_current_grants_is_empty() -> None:
    # Given the stored grant (pipeline ARN in mixed case) and the current one (lower case)
    stored = Grant(
        pipeline_arn=PIPELINE.replace("churn-train", "Churn-Train"),
        consumer=CONSUMER,
        share_arn=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/run",
        share_name="run",
        association_status="ASSOCIATED",
        permission_name=ALLOW_EXECUTION,
    )
    current = stored.model_copy(update={"pipeline_arn": PIPELINE})

    # When / Then no change
    assert diff({stored.key: stored}, [current], at=NOW) == []
