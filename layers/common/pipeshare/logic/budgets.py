"""Per-consumer monthly budgets on estimated spend: the policy, what is due, what enforcement does. Pure, no I/O.

Consumer-started executions run in, and are billed to, the owner account. pipeshare estimates each execution's cost
and keeps a month-to-date estimated spend per consumer account (UTC calendar months, `month_of`), split into what is
attributed by evidence (`confirmed_total`: forwarded / CloudTrail owner copy) and in all (`total`: inferred too).

- The budget policy is a JSON document (SSM, changeable at runtime). `parse_budget_policy` validates it and fails
  closed: an invalid document raises `BudgetPolicyInvalidError` listing every problem found.
- Thresholds are level-triggered: `thresholds_reached(spend, ...)` lists every threshold whose amount the spend has
  reached; the ledger (elsewhere) keeps one item per (month, consumer, threshold), so each is alerted once whenever
  it is first seen reached (a limit lowered, a budget added, a lost stream record, a policy invalid for a while).
- Enforcement holds for the month: while `over_limit`, every run the consumer has going is stopped (`StopOrder`), and
  with `remove_from_share` the consumer is taken off its allow-execution shares (`share_removals`). Only runs
  attributed by evidence (`ENFORCEABLE_SOURCES`) and only the confirmed spend count, unless `count_inferred`.
- Messages: logic/budget_messages.py. The shared message helpers (`_fit`, `_cents`, `_budget_block`, ...) live here
  because the finish message (logic/cost_messages.py) uses them too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    ValidationError,
)

from pipeshare.models.budgets import (
    Budget,
    BudgetPolicy,
    ConsumerSpend,
    GroupShare,
    RunView,
    ShareRemoval,
    StopOrder,
    StopReason,
    _Line,
    _money,
)
from pipeshare.models.errors import BudgetPolicyInvalidError
from pipeshare.models.messages import BudgetBlock, BudgetEnforceBlock, cents
from pipeshare.models.types import candidate_of, fingerprint

if TYPE_CHECKING:
    from pipeshare.models.owner import GrantView

SUBJECT_MAX = 100  # SNS limit
HOLDING_STATUSES = frozenset({"ASSOCIATED", "ASSOCIATING"})  # a grant in these states gives (or will give) access


ESTIMATE_STATEMENT = (
    "This is pipeshare's estimate of the cost, computed from the execution's steps and list prices: it is not the "
    "AWS bill. The owner account pays: a consumer's executions run in, and are billed to, the account that owns "
    "the pipeline."
)
ALIAS_NOTE = (
    "`switch_to_read_only` is deprecated: it is read as remove_from_share + downgrade_to_read_only, which takes only "
    "this consumer off its allow-execution shares and gives it the same pipelines read-only (the whole share, every "
    "principal on it, used to be switched)."
)


# ------------------------------------------------------------------------------------------------------ the policy


def parse_budget_policy(document: Any, *, source: str) -> BudgetPolicy:
    """Validate a budget policy (a parsed JSON value, or its JSON text). Raises BudgetPolicyInvalidError (fail closed)
    with every problem found."""
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document, parse_float=Decimal)
        except ValueError as exc:
            raise BudgetPolicyInvalidError(source, [f"<root>: not valid JSON ({exc})"], fingerprint(document)) from None
    fp = fingerprint(document)
    if not isinstance(document, dict):
        raise BudgetPolicyInvalidError(source, ["<root>: the budget policy must be a JSON object"], fp)
    errors = [f"{key}: Extra inputs are not permitted" for key in ("source", "fingerprint") if key in document]
    try:
        policy = BudgetPolicy.model_validate({k: v for k, v in document.items() if k not in ("source", "fingerprint")})
    except ValidationError as exc:
        errors.extend(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
    if errors:
        raise BudgetPolicyInvalidError(source, errors, fp)
    return policy.model_copy(update={"source": source, "fingerprint": fp})


# -------------------------------------------------------------------------------------------------- spend and time


def month_of(at: datetime) -> str:
    """The UTC calendar month of an instant, "YYYY-MM": the period of month-to-date spend. Refuses a naive time."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("month_of needs a timezone-aware datetime")
    return at.astimezone(UTC).strftime("%Y-%m")


def thresholds_reached(spend: Decimal, line: _Line | None) -> list[int]:
    """Every threshold whose amount the spend has reached (amount <= spend), sorted. Level, not edge: whatever the
    path the spend took, the list says where it is; the ledger says which were alerted already."""
    spend = _money(spend)
    if line is None:
        return []
    return [t for t in line.thresholds if line.monthly_limit * t <= spend * 100]


def threshold_key(threshold: int) -> str:
    """The ledger key of one threshold of one month's line (one item each: alerted once)."""
    return f"THRESHOLD#{threshold:04d}"


LEGACY_THRESHOLD = re.compile(r"^ALERT#threshold-(\d{4})$")  # ledger items of the crossing-based watcher


def over_limit(spend: ConsumerSpend, budget: Budget | None) -> bool:
    """Enforcement applies: on, and the enforced spend at or over the enforcement threshold."""
    if budget is None or not budget.enforce.at_limit or budget.limit_threshold is None:
        return False
    return spend.enforced(budget) >= budget.amount(budget.limit_threshold)


def at_risk(spend: ConsumerSpend, budget: Budget) -> bool:
    """The enforced spend has reached the budget's lowest threshold (`unpriced: stop` applies from there)."""
    return spend.enforced(budget) >= budget.amount(budget.thresholds[0])


def remaining(spend: ConsumerSpend, budget: Budget) -> Decimal:
    """What is left of the monthly limit (never below 0), on the enforced spend."""
    return max(budget.monthly_limit - spend.enforced(budget), Decimal(0))


# ------------------------------------------------------------------------------------------------------ enforcement


def failure_key(key: str) -> str:
    """Ledger key of the one message saying an action failed (the action itself is tried again)."""
    return f"FAILED#{key}"


def _holding(grant: GrantView) -> bool:
    return grant.allow_execution and grant.association_status.upper() in HOLDING_STATUSES


def share_removals(
    consumer: str, grants: Iterable[GrantView], *, dry_run: bool = False
) -> tuple[list[ShareRemoval], list[GroupShare]]:
    """The shares through which `consumer` holds allow-execution (ASSOCIATED or ASSOCIATING): one removal per share
    granting to its account ID, pipelines listed; and, as notes, the shares it cannot be taken off: those granting to
    an IAM role / user of it, and those granting to an organization / OU (the consumer may be in it)."""
    mine: dict[str, tuple[str, set[str]]] = {}
    notes: dict[str, tuple[str, set[str], set[str], Literal["organization", "iam-principal"]]] = {}
    for grant in (g for g in grants if _holding(g)):
        holder = candidate_of(grant.consumer)
        if grant.consumer == consumer:
            mine.setdefault(grant.share_arn, (grant.share_name, set()))[1].add(grant.pipeline_arn)
        elif holder == consumer or not holder.isdigit():
            kind: Literal["organization", "iam-principal"] = "iam-principal" if holder == consumer else "organization"
            entry = notes.setdefault(grant.share_arn, (grant.share_name, set(), set(), kind))
            entry[1].add(grant.consumer)
            entry[2].add(grant.pipeline_arn)
    removals = [
        ShareRemoval(share_arn=s, share_name=n, principal=consumer, pipelines=tuple(sorted(ps)), dry_run=dry_run)
        for s, (n, ps) in sorted(mine.items())
    ]
    groups = [
        GroupShare(share_arn=s, share_name=n, principals=tuple(sorted(pr)), pipelines=tuple(sorted(ps)), kind=k)
        for s, (n, pr, ps, k) in sorted(notes.items())
    ]
    return removals, groups


def stop_reason(
    run: RunView, spend: ConsumerSpend, budget: Budget, *, admitted_now: bool, unpriced: Iterable[str] = ()
) -> StopOrder | None:
    """Why this running attempt of the consumer's execution must be stopped, if it must:
    - over-budget: enforcement on (stop_executions) and the enforced spend at or over the enforcement threshold;
    - worst-case: stop_when_worst_case_exceeds_remaining, the run newly admitted (`admitted_now`: first seen running
      and attributed), and its worst-case cost above what is left of the limit;
    - unpriced: `unpriced: stop`, the run has instance types nobody could price, and the consumer is at risk.
    Never a run that is not enforceable (ambiguous / unknown, inferred without count_inferred, the owner's own)."""
    if not run.enforceable(budget):
        return None
    types = tuple(sorted(set(unpriced)))
    reason: StopReason | None = None
    if budget.enforce.stop_executions and over_limit(spend, budget):
        reason = "over-budget"
    elif (
        budget.enforce.stop_when_worst_case_exceeds_remaining
        and admitted_now
        and run.worst_case_usd is not None
        and run.worst_case_usd > remaining(spend, budget)
    ):
        reason = "worst-case"
    elif types and budget.unpriced == "stop" and at_risk(spend, budget):
        reason = "unpriced"
    if reason is None:
        return None
    return StopOrder(run=run, reason=reason, dry_run=budget.dry_run, unpriced=types)


# -------------------------------------------------------------------------------------------- shared message helpers


def _ascii(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def _fit(head: str, name: str, tail: str = "") -> str:
    """`pipeshare: <head><name><tail>` in ASCII, at most SUBJECT_MAX characters: the name is shortened first (keep
    account IDs in head or tail: they are never cut)."""
    head, name, tail = _ascii(f"pipeshare: {head}"), _ascii(name), _ascii(tail)
    room = SUBJECT_MAX - len(head) - len(tail)
    if len(name) > room:
        name = name[: max(room - 3, 0)] + "..." if room >= 3 else ""
    text = head + name + tail
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 3] + "..."


def _amount(value: Decimal) -> str:
    """Exact, in plain notation (no exponent)."""
    return f"{value:f}"


_cents = cents  # rounded for people: to the cent


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _budget_block(budget: Budget, spend: Decimal, currency: str, *, cents: bool = False) -> BudgetBlock:
    """The budget as messages show it. `cents`: the limit rounded for people (the finish message keeps it exact)."""
    return BudgetBlock(
        currency=currency,
        monthly_limit=(_cents if cents else _amount)(budget.monthly_limit),
        percent_used=_amount(budget.percent_used(spend)),
        thresholds=budget.thresholds,
        enforce=BudgetEnforceBlock(
            at_percent=budget.limit_threshold,
            stop_executions=budget.enforce.stop_executions,
            remove_from_share=budget.enforce.remove_from_share,
            downgrade_to_read_only=budget.enforce.downgrade_to_read_only,
            stop_when_worst_case_exceeds_remaining=budget.enforce.stop_when_worst_case_exceeds_remaining,
            switch_to_read_only=budget.enforce.switch_to_read_only,
            dry_run=budget.dry_run,
        ),
        count_inferred=budget.count_inferred,
        unpriced=budget.unpriced,
    )


def top_spend(per_pipeline: Mapping[str, Decimal], limit: int) -> list[tuple[str, Decimal]]:
    """The largest `limit` (pipeline, spend) pairs, largest first (ties by pipeline)."""
    ranked = sorted(((name, _money(cost)) for name, cost in per_pipeline.items()), key=lambda i: (-i[1], i[0]))
    return ranked[:limit]
