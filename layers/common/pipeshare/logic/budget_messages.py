"""Budget messages for the owner team: thresholds reached (one message for all due at once), one message per
enforcement action (a stop, a share removal, a share that cannot lose one account; in dry run, what would be done),
and the unattributed-spend line of a pipeline. Pure, no I/O.

Each is an `OwnerAlert`: a readable ASCII subject of at most 100 characters that never cuts an account ID (names are
shortened instead), a JSON-ready body with a versioned `schema`, and filter attributes. Amounts in messages are
rounded to the cent for people; the ledger keeps exact figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from pipeshare.logic.budgets import (
    ALIAS_NOTE,
    ESTIMATE_STATEMENT,
    _ascii,
    _budget_block,
    _cents,
    _fit,
    over_limit,
    remaining,
    top_spend,
)
from pipeshare.models.budget_messages import (
    ENFORCEMENT_SCHEMA,
    THRESHOLD_SCHEMA,
    EnforcementState,
    GroupShareBlock,
    GroupShareMessage,
    PipelineSpend,
    ReadOnlyBlock,
    ShareBlock,
    ShareMessage,
    StopExecutionBlock,
    StopMessage,
    ThresholdMessage,
    WorstCaseBlock,
)
from pipeshare.models.budgets import (
    ENFORCE_AT,
    Budget,
    ConsumerSpend,
    GroupShare,
    LineSpend,
    ShareRemoval,
    StopOrder,
    UnattributedLine,
    _money,
)
from pipeshare.models.messages import EstimateBilling, OwnerAlert, SpendBlock

__all__ = ["ENFORCEMENT_SCHEMA", "THRESHOLD_SCHEMA"]
UNATTRIBUTED_SCHEMA = "pipeshare.owner.unattributed-threshold/1"
TOP_PIPELINES = 5
Outcome = Literal["done", "not-run", "skipped", "failed"]
OUTCOMES = frozenset({"done", "not-run", "skipped", "failed"})

UNATTRIBUTED_STATEMENT = (
    "Spend of this pipeline's executions that pipeshare could not attribute to one consumer (ambiguous or unknown) "
    "and that is not the owner's own. This line alerts only: nothing is stopped or removed for it."
)
_REASONS = {
    "over-budget": "the consumer's spend is at or over its budget, and its budget stops its executions",
    "worst-case": "the run's worst-case cost (from its pipeline definition) exceeds what is left of the budget",
    "unpriced": "the run uses instance types nobody could price, and the consumer's spend has reached its first "
    "threshold (`unpriced: stop`)",
}


def _billing() -> dict[str, Any]:
    return EstimateBilling(statement=ESTIMATE_STATEMENT).model_dump(mode="json")


def _percents(thresholds: Sequence[int]) -> str:
    return ", ".join(map(str, thresholds)) + "%"


def _spend_block(spend: ConsumerSpend, budget: Budget, currency: str) -> SpendBlock:
    """All the consumer's spend, the part attributed by evidence, and what enforcement counts (`enforced_on`)."""
    return SpendBlock(
        currency=currency,
        total=_cents(spend.total),
        confirmed=_cents(min(spend.confirmed_total, spend.total)),
        inferred=_cents(spend.inferred),
        enforced_on=budget.enforced_on,
        enforced_percent=f"{budget.percent_used(spend.enforced(budget)):f}",
        remaining=_cents(remaining(spend, budget)),
    )


# ------------------------------------------------------------------------------------------------------ thresholds


def threshold_message(
    spend: ConsumerSpend,
    thresholds: Sequence[int],
    budget: Budget,
    top_pipelines: Mapping[str, Decimal] | None = None,
    *,
    currency: str = "USD",
) -> OwnerAlert:
    """ONE message for the thresholds newly reached (all of `thresholds`): it names the highest and lists the others.
    `top_pipelines`: the consumer's month-to-date spend per pipeline ARN; the largest TOP_PIPELINES are listed.
    Raises ValueError for an empty list or a threshold not in the budget."""
    due = sorted(set(thresholds))
    unknown = sorted(set(due) - set(budget.thresholds))
    if not due or unknown:
        raise ValueError(f"thresholds {unknown or due} are not reached thresholds of the budget {budget.thresholds}")
    message = _threshold_body(spend, due, budget, top_pipelines or {}, currency)
    attributes = {
        "event": message.event,
        "consumer_account": spend.consumer,
        "month": spend.month,
        "threshold": str(message.threshold),
        "thresholds": ",".join(map(str, due)),
    }
    others = message.also_reached
    subject = _first_fitting(
        f"consumer {spend.consumer} at {message.threshold}% of {spend.month} budget",
        [f" (also {_percents(others)})", f" (+{len(others)} lower)"] if others else [],
        f": est. {currency} {_cents(spend.total)} of {_cents(budget.monthly_limit)}",
    )
    return OwnerAlert(subject=subject, message=message.body(), attributes=attributes)


def _threshold_body(
    spend: ConsumerSpend, due: list[int], budget: Budget, top_pipelines: Mapping[str, Decimal], currency: str
) -> ThresholdMessage:
    applies = over_limit(spend, budget)
    return ThresholdMessage(
        consumer_account=spend.consumer,
        month=spend.month,
        threshold=due[-1],
        thresholds=tuple(due),
        also_reached=tuple(due[:-1]),
        threshold_amount=_cents(budget.amount(due[-1])),
        spend=_spend_block(spend, budget, currency),
        budget=_budget_block(budget, spend.total, currency, cents=True),
        top_pipelines=tuple(
            PipelineSpend(pipeline=arn.rsplit("/", 1)[-1], pipeline_arn=arn, spend=_cents(cost))
            for arn, cost in top_spend(top_pipelines, TOP_PIPELINES)
        ),
        enforcement=EnforcementState(
            applies=applies,
            dry_run=budget.dry_run,
            enforced_on=budget.enforced_on,
            statement=_enforcement_statement(budget, applies),
        ),
        billing=EstimateBilling(statement=ESTIMATE_STATEMENT),
    )


def _first_fitting(head: str, middles: Sequence[str], tail: str) -> str:
    """The subject with the first middle part that fits whole (none when none does)."""
    for middle in middles:
        subject = _fit(head, middle, tail)
        if subject.endswith(_ascii(tail)) and _ascii(middle) in subject:
            return subject
    return _fit(head, "", tail)


def _enforcement_statement(budget: Budget, applies: bool) -> str:
    if not budget.enforce.at_limit:
        return "No enforcement for this budget: alert only."
    basis = "all attributed spend" if budget.count_inferred else "spend attributed by evidence (inferred runs excluded)"
    if not applies:
        return f"Enforcement applies from {budget.limit_threshold}% of the limit, counted on {basis}: not reached."
    if budget.dry_run:
        return "Dry run: one DRY RUN message per action says what enforcement would do; nothing is done."
    return "Enforcement applies now: one budget-enforcement message per action reports what was done."


def unattributed_message(
    spend: LineSpend,
    thresholds: Sequence[int],
    line: UnattributedLine,
    *,
    matched_by: str,
    currency: str = "USD",
) -> OwnerAlert:
    """ONE message for the thresholds a pipeline's unattributed spend newly reached (names the highest)."""
    due = sorted(set(thresholds))
    if not due or set(due) - set(line.thresholds):
        raise ValueError(f"thresholds {due} are not reached thresholds of the line {line.thresholds}")
    highest, others = due[-1], due[:-1]
    name = spend.pipeline_arn.rsplit("/", 1)[-1]
    message: dict[str, Any] = {
        "schema": UNATTRIBUTED_SCHEMA,
        "event": "budget.unattributed-threshold",
        "pipeline_arn": spend.pipeline_arn,
        "pipeline_name": name,
        "month": spend.month,
        "threshold": highest,
        "thresholds": due,
        "also_reached": others,
        "threshold_amount": _cents(line.amount(highest)),
        "spend": _cents(spend.total),
        "line": {
            "currency": currency,
            "monthly_limit": _cents(line.monthly_limit),
            "percent_used": f"{line.percent_used(spend.total):f}",
            "thresholds": list(line.thresholds),
            "matched_by": matched_by,
        },
        "statement": UNATTRIBUTED_STATEMENT,
        "billing": _billing(),
    }
    attributes = {
        "event": "budget.unattributed-threshold",
        "pipeline_name": name,
        "month": spend.month,
        "threshold": str(highest),
    }
    subject = _fit(
        "unattributed runs of ",
        name,
        f" reached {highest}% of {spend.month} line: est. {currency} {_cents(spend.total)}"
        f" of {_cents(line.monthly_limit)}",
    )
    return OwnerAlert(subject=subject, message=message, attributes=attributes)


# ------------------------------------------------------------------------------------------------------ enforcement


def _notes(budget: Budget, extra: Sequence[str]) -> list[str]:
    notes = list(extra)
    if budget.enforce.switch_to_read_only:
        notes.append(ALIAS_NOTE)
    if budget.dry_run:
        notes.append("Dry run: nothing was done; real enforcement still applies once dry_run is off.")
    return notes


def _enforcement_fields(
    action: str, spend: ConsumerSpend, budget: Budget, currency: str, outcome: Outcome, detail: str | None
) -> dict[str, Any]:
    """The fields every enforcement message (`EnforcementMessage`) starts with."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r} (expected one of {sorted(OUTCOMES)})")
    if budget.dry_run and outcome == "done":
        raise ValueError("a dry-run action cannot have been done")
    return {
        "action": action,
        "consumer_account": spend.consumer,
        "month": spend.month,
        "dry_run": budget.dry_run,
        "outcome": outcome,
        "detail": detail,
        "spend": _spend_block(spend, budget, currency),
        "budget": _budget_block(budget, spend.total, currency, cents=True),
        "enforce_at_percent": budget.limit_threshold or ENFORCE_AT,
        "billing": EstimateBilling(statement=ESTIMATE_STATEMENT),
    }


def _attributes(action: str, spend: ConsumerSpend, budget: Budget, outcome: str, reason: str) -> dict[str, str]:
    return {
        "event": "budget.enforcement",
        "action": action,
        "consumer_account": spend.consumer,
        "month": spend.month,
        "dry_run": str(budget.dry_run).lower(),
        "outcome": outcome,
        "reason": reason,
    }


def stop_message(
    order: StopOrder,
    spend: ConsumerSpend,
    budget: Budget,
    *,
    outcome: Outcome,
    detail: str | None = None,
    notes: Sequence[str] = (),
    currency: str = "USD",
) -> OwnerAlert:
    """One message per stop of one execution attempt (or, in dry run, per stop that would be made)."""
    run = order.run
    body = StopMessage(
        **_enforcement_fields("stop_execution", spend, budget, currency, outcome, detail),
        reason=order.reason,
        why=_REASONS[order.reason],
        execution=StopExecutionBlock(
            execution_arn=run.execution_arn,
            pipeline_arn=run.pipeline_arn or None,
            pipeline_name=run.pipeline_name,
            attempt=run.attempt,
            attribution_source=run.attribution_source,
            initiator_account=run.initiator_account,
        ),
        worst_case=None
        if order.reason != "worst-case" or run.worst_case_usd is None
        else WorstCaseBlock(
            usd=_cents(_money(run.worst_case_usd)),
            complete=run.worst_case_complete,
            remaining=_cents(remaining(spend, budget)),
        ),
        unpriced_instance_types=tuple(order.unpriced) or None,
        notes=tuple(_notes(budget, notes)),
    )
    attempt = f" (attempt {run.attempt})" if run.attempt > 1 else ""
    return OwnerAlert(
        subject=_stop_subject(order, spend, budget, outcome, attempt, currency),
        message=body.body(),
        attributes=_attributes("stop_execution", spend, budget, outcome, order.reason),
    )


def _stop_subject(
    order: StopOrder, spend: ConsumerSpend, budget: Budget, outcome: str, attempt: str, currency: str
) -> str:
    name, consumer = order.run.pipeline_name, spend.consumer
    why = {
        "over-budget": f"{attempt}",
        "worst-case": f"{attempt}: worst case {currency} {_cents(_money(order.run.worst_case_usd or Decimal(0)))}"
        f" > {_cents(remaining(spend, budget))} left",
        "unpriced": f"{attempt}: unpriced instance types",
    }[order.reason]
    dry = "DRY RUN: " if budget.dry_run else ""  # a dry run's every message says so first
    if outcome == "not-run":
        return _fit("DRY RUN: would stop run of ", name, f" by {consumer} ({order.reason})")
    if outcome == "failed":
        return _fit(f"{dry}enforcement FAILED on {consumer}: could not stop run of ", name, attempt)
    if outcome == "skipped":
        return _fit(f"{dry}budget on {consumer}: run already ended: ", name, attempt)
    if order.reason == "over-budget":
        return _fit(f"budget enforced on {consumer}: stopped run of ", name, why)
    return _fit(f"budget on {consumer}: stopped run of ", name, why)  # shorter head: the reason needs the room


def share_message(
    removal: ShareRemoval,
    spend: ConsumerSpend,
    budget: Budget,
    *,
    outcome: Outcome,
    detail: str | None = None,
    read_only_share: str | None = None,
    read_only_outcome: Outcome | None = None,
    notes: Sequence[str] = (),
    currency: str = "USD",
) -> OwnerAlert:
    """One message per removal of the consumer from one share (or, in dry run, per removal that would be made);
    with downgrade_to_read_only, the read-only share it was given the same pipelines through."""
    downgrade = budget.enforce.downgrade_to_read_only
    body = ShareMessage(
        **_enforcement_fields("remove_from_share", spend, budget, currency, outcome, detail),
        share=ShareBlock(
            share_arn=removal.share_arn,
            share_name=removal.share_name,
            principal=removal.principal,
            pipelines=removal.pipelines,
        ),
        read_only=None
        if not downgrade
        else ReadOnlyBlock(
            share_arn=read_only_share,
            pipelines=removal.pipelines,
            outcome=read_only_outcome or ("not-run" if budget.dry_run else "failed"),
        ),
        notes=tuple(_notes(budget, notes)),
    )
    subject = _share_subject(spend.consumer, removal.share_name, outcome, downgrade, read_only_outcome, budget.dry_run)
    return OwnerAlert(
        subject=subject,
        message=body.body(),
        attributes=_attributes("remove_from_share", spend, budget, outcome, "over-budget"),
    )


def _share_subject(
    consumer: str, name: str, outcome: Outcome, downgrade: bool, read_only_outcome: Outcome | None, dry_run: bool
) -> str:
    tail = {"done": ", now read-only", "failed": ", read-only grant FAILED"}.get(str(read_only_outcome), "")
    dry = "DRY RUN: " if dry_run else ""  # a dry run's every message says so first
    if outcome == "not-run":
        return _fit(f"DRY RUN: would remove {consumer} from share ", name, ", give read-only" if downgrade else "")
    if outcome == "failed":
        return _fit(f"{dry}enforcement FAILED on {consumer}: not removed from share ", name)
    if outcome == "skipped":
        return _fit(f"{dry}budget on {consumer}: already off share ", name, tail)
    return _fit(f"budget enforced on {consumer}: removed from share ", name, tail)


def group_share_message(
    group: GroupShare, spend: ConsumerSpend, budget: Budget, *, currency: str = "USD"
) -> OwnerAlert:
    """The consumer may run pipelines through a share pipeshare cannot take it off (an organization / OU principal,
    or an IAM role / user of the consumer): said once a month, so the owner can act."""
    principals = ", ".join(group.principals)
    if group.kind == "organization":
        why = "an organization or OU is the share's principal: one account cannot be removed from it"
        advice = (
            f"If consumer {spend.consumer} is in {principals}, it can still run these pipelines through this share: "
            "restrict it with an SCP or a separate share, or remove the organization."
        )
    else:
        why = "the share's principal is an IAM role or user of the consumer: pipeshare removes account principals only"
        advice = f"{principals} can still run these pipelines through this share: remove it from the share by hand."
    body = GroupShareMessage(
        **_enforcement_fields("cannot_remove_from_share", spend, budget, currency, "skipped", None),
        why=why,
        share=GroupShareBlock(
            share_arn=group.share_arn,
            share_name=group.share_name,
            principals=group.principals,
            principal_kind=group.kind,
            pipelines=group.pipelines,
        ),
        notes=tuple(_notes(budget, [advice])),
    )
    what = "organization share " if group.kind == "organization" else "share (IAM principal) "
    return OwnerAlert(
        subject=_fit(
            f"{'DRY RUN: ' if budget.dry_run else ''}budget: cannot remove {spend.consumer} from {what}",
            group.share_name,
        ),
        message=body.body(),
        attributes=_attributes("cannot_remove_from_share", spend, budget, "skipped", "over-budget"),
    )
