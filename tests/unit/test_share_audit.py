"""The daily audit of accepted shares (pipeshare.logic.audit), through the in-memory ports in tests/fakes.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeshare.logic.audit import AuditOutcome, audit_shares
from pipeshare.logic.notify import build_notification
from pipeshare.logic.policy import policy_from_parameters
from pipeshare.models.errors import PolicyInvalidError
from pipeshare.models.outbox import DecisionHistoryItem
from tests.fakes import (
    OWNER,
    STRANGER,
    FakeAuditRepository,
    FakePolicySource,
    FakeSharedResources,
    raw_resource,
    share_arn,
)

pytestmark = pytest.mark.usefixtures("socket_disabled")

NOW = datetime(2026, 5, 2, 6, 0, tzinfo=UTC)
SHARE = share_arn("churn")


def shared(name: str, resource_type: str = "sagemaker:Pipeline", *, owner: str = OWNER, share: str = SHARE) -> dict:
    return raw_resource(name, owner=owner, resource_type=resource_type, resourceShareArn=share)


class World:
    def __init__(self, *resources: dict[str, Any], policy_error: PolicyInvalidError | None = None) -> None:
        self.ram = FakeSharedResources(resources)
        self.audits = FakeAuditRepository()
        policy = policy_from_parameters(
            trusted_owner_ids=OWNER,
            allowed_resource_types="sagemaker:Pipeline",
            untrusted_action="hold",
            disallowed_resource_action="hold",
        )
        self.policy = FakePolicySource(policy, error=policy_error)
        self.invalid: list[tuple[str, str | None]] = []

    def run(self, now: datetime = NOW) -> AuditOutcome:
        return audit_shares(
            ram=self.ram,
            audits=self.audits,
            policy_source=self.policy,
            now=now,
            history_retention=timedelta(days=400),
            on_invalid=lambda reason, ref: self.invalid.append((reason, ref)),
        )


def test_audit_allowed_types_only_raises_no_alert() -> None:
    # Given an accepted share carrying pipelines only
    world = World(shared("churn"), shared("fraud"))
    # When the audit runs
    outcome = world.run()
    # Then nothing is alerted, both resources were looked at
    assert world.audits.alerts == []
    assert (outcome.resources, outcome.shares) == (2, 1)


def test_audit_disallowed_type_alerts_once_with_the_resource() -> None:
    # Given an accepted pipeline share to which the owner added a subnet
    world = World(shared("churn"), shared("net", "ec2:Subnet"))
    # When the audit runs twice
    first = world.run()
    second = world.run(NOW + timedelta(days=1))
    # Then one alert, naming the type and the resource; the second run only counts it as known
    [alert] = world.audits.alerts
    assert alert["new_types"] == ["ec2:Subnet"]
    assert [r["type"] for r in alert["resources"]] == ["ec2:Subnet"]
    assert first.alerted == [SHARE]
    assert (second.alerted, second.already_alerted) == ([], 1)


def test_audit_new_disallowed_type_on_the_same_share_alerts_again() -> None:
    # Given a share already alerted on for a subnet
    world = World(shared("churn"), shared("net", "ec2:Subnet"))
    world.run()
    # When the owner also adds a Glue database and the audit runs again
    world.ram.resources.append(shared("db", "glue:Database"))
    world.run(NOW + timedelta(days=1))
    # Then a second alert names only the new type, and lists every disallowed type
    assert [a["new_types"] for a in world.audits.alerts] == [["ec2:Subnet"], ["glue:Database"]]
    assert world.audits.alerts[1]["disallowed_types"] == ["ec2:Subnet", "glue:Database"]


def test_audit_type_comparison_ignores_case() -> None:
    # Given a resource whose type differs from the allowed one only in case
    world = World(shared("churn", "SageMaker:Pipeline"))
    # When the audit runs
    world.run()
    # Then nothing is alerted (RAM resource types are case-insensitive)
    assert world.audits.alerts == []


def test_audit_share_of_an_owner_no_longer_trusted_alerts() -> None:
    # Given a share from an account the policy does not trust (accepted before, or outside pipeshare)
    other = share_arn("gpu", sender=STRANGER)
    world = World(shared("gpu", owner=STRANGER, share=other))
    # When the audit runs
    world.run()
    # Then every type it carries is disallowed, and the alert says the owner is not trusted
    [alert] = world.audits.alerts
    assert (alert["owner_account_id"], alert["trusted_owner"]) == (STRANGER, False)
    assert alert["new_types"] == ["sagemaker:Pipeline"]


def test_audit_alerts_per_share() -> None:
    # Given two shares of the owner, each with a subnet
    other = share_arn("other")
    world = World(shared("net1", "ec2:Subnet"), shared("net2", "ec2:Subnet", share=other))
    # When the audit runs
    outcome = world.run()
    # Then each share is alerted on once
    assert sorted(outcome.alerted) == sorted([SHARE, other])


def test_audit_under_invalid_policy_judges_nothing() -> None:
    # Given an invalid policy
    world = World(shared("net", "ec2:Subnet"), policy_error=PolicyInvalidError("ssm:/p", ["bad"], "fp"))
    # When the audit runs
    outcome = world.run()
    # Then nothing is listed or alerted
    assert outcome.status == "policy-invalid"
    assert (world.ram.calls, world.audits.alerts) == (0, [])


def test_audit_invalid_record_is_reported_and_skipped() -> None:
    # Given a record without a type next to a valid disallowed one
    bad = shared("x")
    del bad["type"]
    world = World(bad, shared("net", "ec2:Subnet"))
    # When the audit runs
    outcome = world.run()
    # Then the bad record is reported, the good one still alerts
    assert outcome.invalid_records == 1
    assert len(world.invalid) == 1
    assert outcome.alerted == [SHARE]


def test_audit_concurrent_run_does_not_alert_twice() -> None:
    # Given a share whose alert another run recorded between this run's read and write
    world = World(shared("net", "ec2:Subnet"))
    original = world.audits.alerted_types

    def stale_read(arns: Any) -> dict[str, list[str]]:
        found = original(arns)
        world.audits.alerted[SHARE] = ["ec2:Subnet"]  # the other run's write lands after this read
        return found

    world.audits.alerted_types = stale_read  # type: ignore[method-assign]
    # When this run tries to record its alert
    outcome = world.run()
    # Then the guard refuses it
    assert (outcome.alerted, world.audits.alerts) == ([], [])


def test_audit_message_names_share_owner_and_types() -> None:
    # Given a recorded alert
    world = World(shared("churn"), shared("net", "ec2:Subnet"))
    world.run()
    # When its notification is built
    notification = build_notification(DecisionHistoryItem.model_validate(world.audits.alerts[0]))
    # Then
    assert notification is not None
    assert notification.subject == f"pipeshare: accepted share from {OWNER} now carries ec2:Subnet - review needed"
    assert notification.message["event"] == "share.disallowed-resource"
    assert notification.message["share_arn"] == SHARE
    assert notification.attributes["status"] == "DISALLOWED_RESOURCE"
