"""Ports: what the logic needs from the outside world. Adapters implement them with boto3; tests with fakes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from decimal import Decimal

    from pipeshare.adapters.dynamodb_costs import CostState
    from pipeshare.logic.attribution import AlertKey, ExecutionRecord, OwnerAlert
    from pipeshare.logic.budgets import BudgetPolicy
    from pipeshare.logic.estimate import PriceTable
    from pipeshare.models.domain import RecordedState, ShareRecord, TrustPolicy
    from pipeshare.models.owner import CountedJob, Grant, GrantChange
    from pipeshare.models.owner_events import SettleRequest


class InvitationGateway(Protocol):
    """AWS RAM, as seen by the receiving (consumer) account. Returns raw API records; the logic validates them."""

    def get_invitations(self, arns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Invitations received by this account (all pages). With arns, only those."""
        ...

    def list_pending_resources(self, invitation_arn: str) -> list[dict[str, Any]]:
        """Resources carried by a pending invitation (all pages)."""
        ...

    def accept(self, invitation_arn: str, client_token: str) -> None: ...

    def reject(self, invitation_arn: str, client_token: str) -> None: ...


class ShareRepository(Protocol):
    """Durable share state (one item per invitation) plus an append-only history of transitions."""

    def record_transition(self, record: ShareRecord, *, history_expires_at: int) -> bool:
        """Move the record to record.status if that is a forward transition; append history. True if it moved."""
        ...

    def touch(self, invitation_arn: str, *, seen_at: datetime, reason: str, rule: str, policy_fingerprint: str) -> None:
        """Refresh last-seen, the latest check's reason and the policy it ran under, for an unchanged record."""
        ...

    def get(self, invitation_arn: str) -> ShareRecord | None: ...

    def recorded_states(self, invitation_arns: Sequence[str]) -> dict[str, RecordedState]:
        """Recorded state of each known invitation (one batched read per 100), so a sweep skips what is settled."""
        ...

    def record_policy_invalid(
        self,
        *,
        source: str,
        fingerprint: str,
        errors: list[str],
        at: datetime,
        remind_after: datetime,
        history_expires_at: int,
    ) -> bool:
        """Record an invalid policy. True when it is news (new fingerprint, or last notice before remind_after)."""
        ...


class PolicySource(Protocol):
    def load(self) -> TrustPolicy:
        """The current trust policy. Raises PolicyInvalidError when it fails validation."""
        ...


class Notifier(Protocol):
    def publish(self, *, subject: str, message: dict[str, Any], attributes: dict[str, str]) -> str:
        """Publish one message; returns its id."""
        ...


class OwnerShareGateway(Protocol):
    """AWS RAM as seen by the owner account. Raw API records, every page."""

    def owned_shares(self) -> list[dict[str, Any]]: ...

    def share_pipelines(self, share_arn: str) -> list[dict[str, Any]]: ...

    def share_principals(self, share_arn: str) -> list[dict[str, Any]]: ...

    def share_permissions(self, share_arn: str) -> list[dict[str, Any]]: ...


class GrantRepository(Protocol):
    """The owner's grant inventory and its change outbox."""

    def grants(self, pipeline_arn: str | None = None) -> dict[str, Grant]:
        """Stored grants by key (all, or one pipeline's)."""
        ...

    def apply(self, change: GrantChange, *, history_expires_at: int) -> bool:
        """Record a change once (guarded by the previous state); True when this call recorded it."""
        ...


class ExecutionRepository(Protocol):
    """Execution records (optimistic concurrency by version) and their alert outbox."""

    def get(self, execution_arn: str) -> tuple[ExecutionRecord | None, int]:
        """The record and its version (0 when there is none)."""
        ...

    def save(
        self, record: ExecutionRecord, *, version: int, alerts: list[tuple[AlertKey, OwnerAlert]], at: datetime
    ) -> bool:
        """Write the record if it is still at `version`, with each alert written once. False on a conflict."""
        ...


class PipelineExecutionGateway(Protocol):
    """SageMaker in the owner account."""

    def describe_execution(self, execution_arn: str) -> dict[str, Any] | None:
        """DescribePipelineExecution, or None when the execution does not exist here."""
        ...


class CostDataGateway(PipelineExecutionGateway, Protocol):
    """SageMaker in the owner account: an execution's steps and the jobs they ran."""

    def list_steps(self, execution_arn: str) -> tuple[list[dict[str, Any]], int]:
        """Every step (all pages) and the number of pages read. Raises ExecutionNotFoundError when SageMaker no
        longer knows the execution (it, or its pipeline, was deleted)."""
        ...

    def describe_job(self, kind: str, job_arn: str) -> dict[str, Any] | None:
        """Describe*Job (kind: training, processing, transform, tuning); None when unknown."""
        ...


class CostRepository(Protocol):
    """Jobs counted once, the execution's estimate, month-to-date spend (see adapters/dynamodb_costs.py)."""

    def state(self, execution_arn: str) -> CostState: ...

    def commit(
        self,
        execution_arn: str,
        *,
        consumer: str | None,
        pipeline_arn: str,
        month: str,
        jobs: list[CountedJob],
        estimate: dict[str, Any],
        final: bool,
        finish_alert: OwnerAlert | None,
        at: datetime,
    ) -> bool: ...

    def month_spend(self, month: str, consumer: str) -> Decimal: ...


class BudgetSource(Protocol):
    def load(self) -> BudgetPolicy | None:
        """The budget policy (None when none is configured). Raises BudgetPolicyInvalidError when invalid."""
        ...


class BudgetLedger(Protocol):
    """Once-per-month records of budget alerts and enforcement (outbox items the owner notifier publishes)."""

    def record_threshold(self, month: str, consumer: str, threshold: int, alert: OwnerAlert, *, at: datetime) -> bool:
        """Write the threshold's alert once per month; True when this call wrote it."""
        ...

    def claim_enforcement(self, month: str, consumer: str, *, at: datetime) -> bool:
        """Take the month's enforcement for the consumer (once); True when this call took it."""
        ...

    def record_enforcement(self, month: str, consumer: str, alert: OwnerAlert, *, at: datetime) -> None: ...


class RunningExecutions(Protocol):
    def running_for(self, consumer: str) -> list[str]:
        """ARNs of the executions the consumer started that are still running (from the execution records)."""
        ...


class EnforcementGateway(Protocol):
    def stop_execution(self, execution_arn: str) -> bool:
        """StopPipelineExecution; False when it had already ended."""
        ...

    def switch_share_to_read_only(self, share_arn: str) -> bool:
        """Replace the share's pipeline permission with the read-only one; False when it already was."""
        ...


class PriceLookup(Protocol):
    def fill(self, prices: PriceTable, region: str, wanted: list[tuple[str, str]]) -> PriceTable:
        """`prices` with live rates merged in for the (component, instance type) pairs wanted (those found)."""
        ...


class SettleScheduler(Protocol):
    """Delivers a settle request back to pipeshare after a delay (an SQS delay queue)."""

    def schedule(self, request: SettleRequest, *, delay_seconds: int) -> None: ...


class TrailStatusGateway(Protocol):
    """Whether the owner account's own Start/Stop/Retry calls reach EventBridge (a trail logs its management events)."""

    def owner_calls_recorded(self, region: str) -> bool:
        """True when a logging trail records this account's write management events in `region`."""
        ...


class SpendLedger(Protocol):
    """Whose month-to-date spend an execution's counted cost is (adapters/dynamodb_costs.py)."""

    def move_spend(self, execution_arn: str, *, consumer: str | None, at: datetime) -> Decimal | None:
        """Make the counted total the spend of `consumer` (None: of no consumer); the amount moved, or None."""
        ...
