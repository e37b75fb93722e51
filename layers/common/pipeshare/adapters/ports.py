"""Ports: what the logic needs from the outside world. Adapters implement them with boto3; tests with fakes. Ports
talk in the models of pipeshare.models only; the bundles at the end group the ports one use case takes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from decimal import Decimal

    from pipeshare.models.budgets import BudgetPolicy, ConsumerSpend, MonthSpend, RunView
    from pipeshare.models.consumer_notices import EnforcementNotice
    from pipeshare.models.costs import CostState
    from pipeshare.models.domain import (
        AuditFinding,
        HeldDigest,
        HeldReminder,
        RecordedState,
        ReminderDigest,
        ShareRecord,
        TrustPolicy,
    )
    from pipeshare.models.estimates import PriceTable
    from pipeshare.models.executions import AlertKey, ExecutionRecord
    from pipeshare.models.messages import OwnerAlert
    from pipeshare.models.owner import CountedJob, Finalisation, Grant, GrantChange, PendingFinish, SpendHolder
    from pipeshare.models.projections import FinishedRun
    from pipeshare.models.settle import SettleRequest


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


class SharedResourceGateway(Protocol):
    """AWS RAM: what accepted shares carry now (ListResources, resourceOwner OTHER-ACCOUNTS). Raw records."""

    def list_shared_resources(self) -> list[dict[str, Any]]:
        """Every resource other accounts share with this one (all pages)."""
        ...


class AuditRepository(Protocol):
    """What the daily audit of accepted shares has alerted on (per share) and the alerts themselves (the outbox)."""

    def alerted_types(self, share_arns: Sequence[str]) -> dict[str, list[str]]: ...

    def record_audit_alert(self, finding: AuditFinding, *, known: Sequence[str], history_expires_at: int) -> bool:
        """Record the alert once, guarded by the types known before; True when this call recorded it."""
        ...


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

    def record_digest(self, digest: HeldDigest, *, history_expires_at: int) -> bool:
        """Record a sweep's digest of untrusted-sender holds (an outbox item). True when written."""
        ...

    def record_reminder(self, reminder: HeldReminder, *, history_expires_at: int) -> bool:
        """Mark the HELD record reminded and write the reminder (an outbox item), once per invitation: False when the
        record is not HELD or was reminded already."""
        ...

    def record_reminder_digest(self, digest: ReminderDigest, *, history_expires_at: int) -> bool:
        """Record a sweep's digest of reminders beyond the threshold (an outbox item). True when written."""
        ...


class PolicySource(Protocol):
    def load(self) -> TrustPolicy:
        """The current trust policy. Raises PolicyInvalidError when it fails validation."""
        ...


class Notifier(Protocol):
    def publish(
        self,
        *,
        subject: str,
        message: dict[str, Any],
        attributes: dict[str, str],
        texts: Mapping[str, str] | None = None,
    ) -> str:
        """Publish one message; returns its id. `message` is the JSON body every protocol gets by default; `texts`
        (protocol -> text, e.g. `email`) replace it for those protocols (SNS MessageStructure json)."""
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
        self,
        record: ExecutionRecord,
        *,
        version: int,
        alerts: list[tuple[AlertKey, OwnerAlert]],
        at: datetime,
        worst_case: tuple[Decimal, bool] | None = None,
    ) -> bool:
        """Write the record if it is still at `version`, with each alert written once. False on a conflict.
        `worst_case`: (USD, complete) of the start projection, kept on the record from then on."""
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
    """Jobs counted (once, or up to a running mark), the execution's estimate, month-to-date spend, finish alerts
    waiting for an attribution, running executions (see adapters/dynamodb_costs.py)."""

    def state(self, execution_arn: str) -> CostState: ...

    def commit(
        self,
        execution_arn: str,
        *,
        holder: SpendHolder,
        pipeline_arn: str,
        month: str,
        jobs: list[CountedJob],
        estimate: dict[str, Any],
        version: int,
        finalise: Finalisation | None = None,
        finish_alert: OwnerAlert | None = None,
        pending_finish: bool = False,
        at: datetime,
    ) -> bool:
        """Count `jobs` (each moves the estimate and the spend by its delta); False when the estimate's version is no
        longer `version` (another writer was first: nothing written)."""
        ...

    def month_spend(self, month: str, consumer: str) -> Decimal: ...

    def open_executions(self) -> list[str]:
        """The ARNs of the executions whose last status is Executing."""
        ...

    def pending_finishes(self) -> list[PendingFinish]: ...

    def resolve_pending(self, pending: PendingFinish, alert: OwnerAlert | None, *, at: datetime) -> bool: ...

    def move_spend(self, execution_arn: str, *, holder: SpendHolder, at: datetime) -> Decimal | None:
        """As SpendLedger.move_spend: the cost logic makes the counted total the record's holder's before it counts
        more (see logic/cost.py `_follow_record`)."""
        ...


class BudgetSource(Protocol):
    def load(self, *, fresh: bool = False) -> BudgetPolicy | None:
        """The budget policy (None when none is configured). Raises BudgetPolicyInvalidError when invalid. `fresh`:
        read it now, not from a warm container's cache (the policy just changed)."""
        ...


class BudgetLedger(Protocol):
    """Once-per-month records of budget alerts and enforcement actions, per subject (a consumer account, or an
    unattributed line `UNATTRIBUTED#<pipeline arn>`), each with its outbox message the owner notifier publishes."""

    def recorded(self, month: str, subject: str) -> set[str]:
        """The ledger keys written for (month, subject) (THRESHOLD#0050, STOP#<arn>#<attempt>, SHARE#..., ...)."""
        ...

    def record(
        self,
        month: str,
        subject: str,
        keys: Sequence[str],
        alert: OwnerAlert | None,
        *,
        at: datetime,
        facts: Mapping[str, Any] | None = None,
        notice: EnforcementNotice | None = None,
    ) -> bool:
        """Write one ledger item per key (with `facts`: exact figures) and ONE outbox item (the alert; None: no
        message) in one transaction, only if none of the keys is written yet; with `notice`, also the consumer's
        notice outbox item (NOTICE#<last key>) in the same transaction. True when this call wrote them; False when
        one was there already (nothing written)."""
        ...


class RunningExecutions(Protocol):
    def running_for(self, consumer: str) -> list[RunView]:
        """The executions the consumer started that are running (by_initiator index: status Executing)."""
        ...

    def execution(self, execution_arn: str) -> RunView | None:
        """The execution's flat state (STATE item), or None when it is not recorded."""
        ...


class SpendSource(Protocol):
    """Month-to-date spend items (SPEND#<month>), written by the cost code."""

    def month_spend_items(self, month: str) -> MonthSpend:
        """Every spend item of the month (one paginated Query): consumers, their pipelines, unattributed lines."""
        ...

    def consumer_spend(self, month: str, consumer: str) -> ConsumerSpend:
        """The consumer's month-to-date spend (zero when it has none)."""
        ...

    def consumer_pipelines(self, month: str, consumer: str) -> dict[str, Decimal]:
        """The consumer's month-to-date spend per pipeline ARN (one Query)."""
        ...


class EnforcementGateway(Protocol):
    """Budget enforcement in the owner account. RAM changes touch only the offending consumer: a share's permission
    (which applies to every principal of the share) is never changed (adapters/enforcement.py, aws-facts §10)."""

    def stop_execution(self, execution_arn: str) -> bool:
        """StopPipelineExecution; False when it had already ended."""
        ...

    def remove_principal(self, share_arn: str, principal: str, *, month: str) -> bool:
        """Take the consumer (a 12-digit account ID) off the share (DisassociateResourceShare); the other principals
        keep their access. One request per (share, consumer, month): a retry the same month repeats it, a new month
        is a new request. False when the consumer was not associated any more (or the share is gone). Raises
        InvalidEventError for a malformed share ARN, account ID or month."""
        ...

    def grant_read_only(self, principal: str, pipeline_arns: Sequence[str], *, month: str) -> str:
        """Make sure the consumer holds these pipelines read-only through the owner's pipeshare read-only share for
        it (pipeshare-read-only-<account>, permission AWSRAMDefaultPermissionSageMakerPipeline): created when absent,
        else the missing pipelines (and the consumer) associated. Returns the share ARN. Idempotent per (consumer,
        month). Raises InvalidEventError for malformed input."""
        ...


class PriceLookup(Protocol):
    """Rates from the AWS Price List (adapters/price_list.py), cached; never raises for the Price List's errors."""

    def fill(self, prices: PriceTable, region: str, wanted: list[tuple[str, str]]) -> PriceTable:
        """`prices` with, for every (component, instance type) pair wanted, and for the region's ML storage: a rate
        from the SSM override kept; otherwise the Price List's rate (when it has exactly one hourly on-demand rate)
        instead of the shipped one; otherwise the shipped rate (PriceTable.origin tells which)."""
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

    def move_spend(self, execution_arn: str, *, holder: SpendHolder, at: datetime) -> Decimal | None:
        """Make the counted total the spend of `holder`; the amount moved, or None."""
        ...


class PipelineDefinitionGateway(Protocol):
    """SageMaker in the owner account: what an execution runs (the start projection, logic/projection.py)."""

    def definition_for_execution(self, execution_arn: str) -> str:
        """DescribePipelineDefinitionForExecution: the pipeline definition JSON the execution runs. Raises
        ExecutionNotFoundError when SageMaker does not know the execution, AccessDeniedError, TransientError, ..."""
        ...

    def parameters_for_execution(self, execution_arn: str) -> dict[str, str]:
        """ListPipelineParametersForExecution (every page): parameter name -> value."""
        ...


class RunHistory(Protocol):
    """The owner table as the start projection reads it (adapters/dynamodb_projection.py)."""

    def recent_runs(self, pipeline_arn: str, limit: int) -> list[FinishedRun]:
        """The pipeline's last `limit` finished runs (RUNS# items), newest first."""
        ...

    def month_spend(self, month: str, consumer: str) -> Decimal:
        """The consumer's month-to-date estimated spend (0 when none)."""
        ...


# ------------------------------------------------------------------------- bundles of ports a use case takes


@dataclass(frozen=True)
class BudgetPorts:
    budgets: BudgetSource
    ledger: BudgetLedger
    spend: SpendSource
    runs: RunningExecutions
    grants: GrantRepository
    enforcer: EnforcementGateway


@dataclass(frozen=True)
class Settle:
    """Inference is provisional: an execution (or retry attempt) nobody has claimed is attributed from the grants
    only after `seconds`, so a CloudTrail record arriving late (best effort, no ordering promise) is waited for."""

    scheduler: SettleScheduler
    seconds: int


@dataclass(frozen=True)
class ProjectionSources:
    """Where the start projection of a consumer-started execution reads from (logic/projection.py). Each is a
    zero-argument factory, called only when a start alert is due: an invocation that alerts nothing builds none."""

    definitions: Callable[[], PipelineDefinitionGateway]
    history: Callable[[], RunHistory]
    budgets: Callable[[], BudgetSource]
    prices: Callable[[], PriceTable]
    price_lookup: Callable[[], PriceLookup] | None = None
