"""Errors raised across layers. Adapters translate botocore ClientError codes into these."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeshare.models.owner_outcomes import BudgetOutcome


class PipeshareError(Exception):
    """Base class."""


class InvalidEventError(PipeshareError):
    """An input (event or API data) failed validation. Retrying cannot fix it."""

    def __init__(self, reason: str, *, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


class TransientError(PipeshareError):
    """Throttling, 5xx, timeouts: the same call may succeed later."""


class PolicyInvalidError(PipeshareError):
    """The trust policy failed validation: fail closed."""

    def __init__(self, source: str, errors: list[str], fingerprint: str) -> None:
        super().__init__(f"trust policy from {source} is invalid: {'; '.join(errors)}")
        self.source = source
        self.errors = errors
        self.fingerprint = fingerprint


class InvitationNotFoundError(PipeshareError):
    """RAM does not know the invitation (purged, or not addressed to this account)."""


class InvitationAlreadyAcceptedError(PipeshareError):
    """RAM says the invitation was accepted already (success for an accept)."""


class InvitationAlreadyRejectedError(PipeshareError):
    """RAM says the invitation was rejected already."""


class InvitationExpiredError(PipeshareError):
    """RAM says the invitation expired."""


class AccessDeniedError(PipeshareError):
    """IAM (the deploy-time guardrail) denied the call."""


class UnexpectedApiError(PipeshareError):
    """Any other API error: logged, counted, and the sweep goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ExecutionNotFoundError(PipeshareError):
    """SageMaker does not know the pipeline execution (ResourceNotFound): it, or its pipeline, was deleted.
    Retrying cannot bring it back."""


class SweepIncompleteError(PipeshareError):
    """Raised at the end of an invocation in which some invitations could not be processed (after the others)."""


class TransactionConflictError(PipeshareError):
    """An item kept changing under a conditional transaction: the invocation fails and is retried."""


class BudgetPolicyInvalidError(PipeshareError):
    """The budget policy failed validation: fail closed (no budget is applied from it)."""

    def __init__(self, source: str, errors: list[str], fingerprint: str) -> None:
        super().__init__(f"budget policy from {source} is invalid: {'; '.join(errors)}")
        self.source = source
        self.errors = errors
        self.fingerprint = fingerprint


class CostConflictError(PipeshareError):
    """Another invocation kept counting the same execution: fail, and let Lambda retry."""


class ConcurrentUpdateError(PipeshareError):
    """The execution record kept changing under us: the invocation fails and Lambda retries it."""


class EnforcementIncompleteError(PipeshareError):
    """An enforcement action failed (reported once): the invocation fails so that Lambda tries it again."""

    def __init__(self, outcome: BudgetOutcome) -> None:
        failures = "; ".join(f"{k}: {outcome.actions[k]}" for k in outcome.failures)
        super().__init__(
            f"{len(outcome.failures)} enforcement action(s) failed (tried again on retry): {failures}"[:1500]
        )
        self.outcome = outcome


class PriceTableError(PipeshareError, ValueError):
    """A price table or an override failed validation."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"invalid price table: {'; '.join(errors)}")
        self.errors = errors


class NoticeUndeliverableError(PipeshareError):
    """The consumer's notice bus refused a notice for a reason a retry cannot change (its policy does not admit this
    owner, it does not exist, the entry is invalid): reported and counted, the stream record is not failed."""

    def __init__(self, bus_arn: str, code: str, message: str) -> None:
        super().__init__(f"PutEvents to {bus_arn}: {code}: {message}"[:500])
        self.bus_arn = bus_arn
        self.code = code
