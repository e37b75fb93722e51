"""Per-consumer monthly budgets on estimated spend: the policy, threshold crossings, enforcement plans, messages.

Pure, no I/O. Consumer-started executions run in, and are billed to, the owner account. pipeshare estimates each
execution's cost and keeps a month-to-date estimated spend per consumer account (UTC calendar months, `month_of`).

- The budget policy is a JSON document (SSM, changeable at runtime). `parse_budget_policy` validates it and fails
  closed: an invalid document raises `BudgetPolicyInvalidError` listing every problem found.
- `thresholds_crossed(before, after, budget)`: the thresholds whose amount lies in (before, after]. Over any sequence
  of increasing spends each threshold is crossed by exactly one update; exactly-once delivery is the conditional
  write's job (elsewhere), keyed by (month, consumer, threshold).
- `enforcement_plan`: what to do when a threshold >= 100% is crossed (stop the consumer's running executions, switch
  the shares through which it holds allow-execution to read-only), each action flagged `dry_run` from the budget.
- Messages (`threshold_message`, `enforcement_message`; the finish message: `logic/cost_messages.py`): an
  `OwnerAlert` (readable ASCII subject of
  at most 100 characters, a JSON-ready body with a `schema`, filter attributes). Amounts and percentages are
  strings in the body (exact decimals; DynamoDB refuses floats).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)

from pipeshare.logic.attribution import GrantView, OwnerAlert, candidate_of
from pipeshare.logic.policy import fingerprint
from pipeshare.models.domain import AccountId
from pipeshare.models.errors import PipeshareError

THRESHOLD_SCHEMA = "pipeshare.owner.budget-threshold/1"
ENFORCEMENT_SCHEMA = "pipeshare.owner.budget-enforcement/1"
SUBJECT_MAX = 100  # SNS limit
DEFAULT_THRESHOLDS = (50, 80, 100)
ENFORCE_AT = 100  # enforcement applies when a threshold at or above 100% of the limit is crossed
TOP_PIPELINES = 5
HOLDING_STATUSES = frozenset({"ASSOCIATED", "ASSOCIATING"})  # a grant in these states gives (or will give) access

STOP_EXECUTION = "stop_execution"
SWITCH_SHARE = "switch_share_to_read_only"
OUTCOMES = frozenset({"done", "failed", "skipped", "not-run"})

Month = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
Threshold = Annotated[int, Strict(), Field(ge=1, le=1000)]
Money = Annotated[Decimal, Field(allow_inf_nan=False)]

ESTIMATE_STATEMENT = (
    "This is pipeshare's estimate of the cost, computed from the execution's steps and list prices: it is not the "
    "AWS bill. The owner account pays: a consumer's executions run in, and are billed to, the account that owns "
    "the pipeline."
)
SWITCH_NOTE = (
    "Switching a share to read-only replaces its allow-execution permission for every principal the share is "
    "associated with (other consumers too) and every pipeline in it, not only for this consumer."
)


class BudgetPolicyInvalidError(PipeshareError):
    """The budget policy failed validation: fail closed (no budget is applied from it)."""

    def __init__(self, source: str, errors: list[str], fingerprint: str) -> None:
        super().__init__(f"budget policy from {source} is invalid: {'; '.join(errors)}")
        self.source = source
        self.errors = errors
        self.fingerprint = fingerprint


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ------------------------------------------------------------------------------------------------------ the policy


class Enforcement(_Frozen):
    """What to do when a threshold >= 100% is crossed. Both off: alert only."""

    stop_executions: bool = False
    switch_to_read_only: bool = False

    @property
    def any(self) -> bool:
        return self.stop_executions or self.switch_to_read_only


class Budget(_Frozen):
    """One consumer's monthly budget on estimated spend (in the policy's currency)."""

    monthly_limit: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    thresholds: tuple[Threshold, ...] = Field(default=DEFAULT_THRESHOLDS, min_length=1)
    enforce: Enforcement = Field(default_factory=Enforcement)
    dry_run: bool = False

    @field_validator("thresholds")
    @classmethod
    def _sorted_unique(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        duplicates = sorted({t for t in value if value.count(t) > 1})
        if duplicates:
            raise ValueError(f"thresholds must be unique; repeated: {', '.join(map(str, duplicates))}")
        return tuple(sorted(value))

    @model_validator(mode="after")
    def _enforcement_reachable(self) -> Budget:
        if self.enforce.any and max(self.thresholds) < ENFORCE_AT:
            raise ValueError(
                f"enforce is set but no threshold is >= {ENFORCE_AT}, so it would never apply; add {ENFORCE_AT}"
            )
        return self

    def amount(self, threshold: int) -> Decimal:
        """The spend at which `threshold` (a percentage of the limit) is reached."""
        return self.monthly_limit * threshold / 100

    def percent_used(self, spend: Decimal) -> Decimal:
        """Spend as a percentage of the limit, rounded down to 0.1 (so it never shows a threshold not yet reached)."""
        return (_money(spend) * 100 / self.monthly_limit).quantize(Decimal("0.1"), rounding=ROUND_FLOOR)


class BudgetPolicy(_Frozen):
    """The owner's budget policy. A consumer listed in `consumers` has that budget, any other the `default` (if any)."""

    version: Literal[1]
    currency: Literal["USD"] = "USD"
    default: Budget | None = None
    consumers: dict[AccountId, Budget] = Field(default_factory=dict, max_length=5000)
    source: str = Field(default="", exclude=True)
    fingerprint: str = Field(default="", exclude=True)

    def budget_for(self, consumer: str) -> Budget | None:
        """The consumer's budget: its own entry, else the default, else None (no budget)."""
        return self.consumers.get(consumer, self.default)


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


def _money(value: Decimal | int) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"amounts must be Decimal (or int), not {type(value).__name__}")
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"amounts must be finite, not {value}")
    return value


def thresholds_crossed(before_usd: Decimal, after_usd: Decimal, budget: Budget | None) -> list[int]:
    """The thresholds this spend update crosses: those whose amount lies in (before, after]. Sorted.

    Consecutive updates cover disjoint intervals, so over any sequence of increasing month-to-date spends each
    threshold is crossed exactly once (when the spend first reaches it). No budget, or no increase: none.
    """
    before, after = _money(before_usd), _money(after_usd)
    if budget is None or after <= before:
        return []
    limit = budget.monthly_limit
    return [t for t in budget.thresholds if before * 100 < limit * t <= after * 100]


# ------------------------------------------------------------------------------------------------------ enforcement


class EnforcementAction(_Frozen):
    """One step of an enforcement plan. `target`: the execution ARN, or the share ARN."""

    action: Literal["stop_execution", "switch_share_to_read_only"]
    target: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    dry_run: bool
    share_name: str | None = None
    pipelines: tuple[str, ...] = ()  # for a share: the pipelines the consumer holds allow-execution on through it
    note: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def key(self) -> str:
        """The action's identity: the key of its result in `enforcement_message(plan, results)`."""
        target = self.target.lower() if self.action == STOP_EXECUTION else self.target
        return f"{self.action}#{target}"


class EnforcementPlan(_Frozen):
    """What enforcement does for one consumer, one month. `threshold` None: nothing crossed at or above 100%."""

    consumer: AccountId
    month: Month
    spend: Money
    threshold: Threshold | None = None
    monthly_limit: Money | None = None
    dry_run: bool = False
    actions: tuple[EnforcementAction, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions


def _unique_executions(arns: Iterable[str]) -> list[str]:
    kept: dict[str, str] = {}
    for arn in arns:
        kept[arn.lower()] = min(arn, kept.get(arn.lower(), arn))
    return [kept[k] for k in sorted(kept)]


def _share_actions(
    consumer: str, grants: Iterable[GrantView], dry_run: bool
) -> tuple[list[EnforcementAction], list[str]]:
    shares: dict[str, tuple[str, set[str]]] = {}
    groups: dict[str, set[str]] = {}
    for grant in grants:
        if not grant.allow_execution or grant.association_status.upper() not in HOLDING_STATUSES:
            continue
        holder = candidate_of(grant.consumer)
        if holder == consumer:
            shares.setdefault(grant.share_arn, (grant.share_name, set()))[1].add(grant.pipeline_arn)
        elif not holder.isdigit():  # an organization / OU: the consumer may be in it
            groups.setdefault(grant.share_arn, set()).add(holder)
    actions = [
        EnforcementAction(
            action=SWITCH_SHARE,
            target=share_arn,
            dry_run=dry_run,
            share_name=name,
            pipelines=tuple(sorted(pipelines)),
            note=SWITCH_NOTE,
        )
        for share_arn, (name, pipelines) in sorted(shares.items())
    ]
    notes = [
        f"Share {share_arn} grants allow-execution to {', '.join(sorted(principals))}: if consumer {consumer} is in "
        "it, it can still run pipelines through that share, which this plan does not switch."
        for share_arn, principals in sorted(groups.items())
        if share_arn not in shares
    ]
    return actions, notes


def enforcement_plan(
    budget: Budget | None,
    crossed: Sequence[int],
    *,
    consumer: str,
    month: str,
    spend: Decimal,
    running_executions: Iterable[str],
    grants: Iterable[GrantView],
) -> EnforcementPlan:
    """What to do now that `crossed` (from `thresholds_crossed`) were crossed by `consumer` in `month`.

    Only a crossed threshold >= 100% triggers enforcement (the highest one is the plan's `threshold`); otherwise the
    plan is empty. Then, per the budget's `enforce`:
    - `stop_executions`: one `stop_execution` per running execution of the consumer (`running_executions`, which the
      caller lists for that consumer; duplicates, compared case-insensitively, count once);
    - `switch_to_read_only`: one `switch_share_to_read_only` per share through which the consumer (its account ID, or
      an IAM role/user of it) holds allow-execution, ASSOCIATED or ASSOCIATING (`grants`: `GrantView`s, such as
      `pipeshare.models.owner.Grant`). This switches the share for every principal on it (see the note); a share
      granting to an organization / OU is not switched, only noted.
    Every action carries the budget's `dry_run`. Raises ValueError when `crossed` names a threshold not in the
    budget (any, when there is no budget).
    """
    spend = _money(spend)
    unknown = sorted(set(crossed) - set(budget.thresholds if budget else ()))
    if unknown:
        raise ValueError(f"threshold(s) {', '.join(map(str, unknown))} are not in the budget")
    trigger = max((t for t in crossed if t >= ENFORCE_AT), default=None)
    if budget is None or trigger is None:
        return EnforcementPlan(consumer=consumer, month=month, spend=spend)
    actions: list[EnforcementAction] = []
    notes: list[str] = []
    if not budget.enforce.any:
        notes.append("Enforcement is off for this budget (no enforce option set): alert only.")
    if budget.enforce.stop_executions:
        actions.extend(
            EnforcementAction(action=STOP_EXECUTION, target=arn, dry_run=budget.dry_run)
            for arn in _unique_executions(running_executions)
        )
        if not actions:
            notes.append(f"No running execution of consumer {consumer} to stop.")
    if budget.enforce.switch_to_read_only:
        share_actions, group_notes = _share_actions(consumer, grants, budget.dry_run)
        actions.extend(share_actions)
        notes.append(SWITCH_NOTE if share_actions else f"Consumer {consumer} holds allow-execution through no share.")
        notes.extend(group_notes)
    if budget.dry_run:
        notes.append("Dry run: nothing is stopped or switched; the actions show what enforcement would do.")
    return EnforcementPlan(
        consumer=consumer,
        month=month,
        spend=spend,
        threshold=trigger,
        monthly_limit=budget.monthly_limit,
        dry_run=budget.dry_run,
        actions=tuple(actions),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------------------- messages


def _ascii(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def _fit(head: str, name: str, tail: str = "") -> str:
    """`pipeshare: <head><name><tail>` in ASCII, at most SUBJECT_MAX characters: the name is shortened first."""
    head, name, tail = _ascii(f"pipeshare: {head}"), _ascii(name), _ascii(tail)
    room = SUBJECT_MAX - len(head) - len(tail)
    if len(name) > room:
        name = name[: max(room - 3, 0)] + "..."
    text = head + name + tail
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 3] + "..."


def _amount(value: Decimal) -> str:
    """Exact, in plain notation (no exponent)."""
    return f"{value:f}"


def _cents(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _budget_block(budget: Budget, spend: Decimal, currency: str) -> dict[str, Any]:
    return {
        "currency": currency,
        "monthly_limit": _amount(budget.monthly_limit),
        "percent_used": _amount(budget.percent_used(spend)),
        "thresholds": list(budget.thresholds),
        "enforce": {
            "at_percent": ENFORCE_AT,
            "stop_executions": budget.enforce.stop_executions,
            "switch_to_read_only": budget.enforce.switch_to_read_only,
            "dry_run": budget.dry_run,
        },
    }


def threshold_message(
    consumer: str,
    month: str,
    threshold: int,
    spend: Decimal,
    budget: Budget,
    top_pipelines: Mapping[str, Decimal] | Iterable[tuple[str, Decimal]] = (),
    *,
    currency: str = "USD",
) -> OwnerAlert:
    """The alert for one crossed threshold. `top_pipelines`: the consumer's month-to-date estimated spend per pipeline
    (name or ARN -> amount); the largest TOP_PIPELINES are listed. Raises ValueError for a threshold not in the budget.
    """
    if threshold not in budget.thresholds:
        raise ValueError(f"threshold {threshold} is not in the budget ({budget.thresholds})")
    spend = _money(spend)
    per_pipeline = sorted(
        ((name, _money(cost)) for name, cost in dict(top_pipelines).items()), key=lambda item: (-item[1], item[0])
    )
    event = "budget.threshold"
    enforced = threshold >= ENFORCE_AT and budget.enforce.any
    if not enforced:
        statement = "No enforcement at this threshold: alert only."
    elif budget.dry_run:
        statement = "Dry run: the budget-enforcement message lists what enforcement would do; nothing is done."
    else:
        statement = "Enforcement applies now: the budget-enforcement message reports what was done."
    message: dict[str, Any] = {
        "schema": THRESHOLD_SCHEMA,
        "event": event,
        "consumer_account": consumer,
        "month": month,
        "threshold": threshold,
        "threshold_amount": _amount(budget.amount(threshold)),
        "spend": _amount(spend),
        "budget": _budget_block(budget, spend, currency),
        "top_pipelines": [{"pipeline": name, "spend": _amount(cost)} for name, cost in per_pipeline[:TOP_PIPELINES]],
        "enforcement": {"applies": enforced, "dry_run": budget.dry_run, "statement": statement},
        "billing": {"estimate": True, "statement": ESTIMATE_STATEMENT},
    }
    attributes = {"event": event, "consumer_account": consumer, "month": month, "threshold": str(threshold)}
    subject = _fit(
        f"consumer {consumer} reached {threshold}% of {month} budget: est. {currency} ",
        f"{_cents(spend)} of {_cents(budget.monthly_limit)}",
    )
    return OwnerAlert(subject=subject, message=message, attributes=attributes)


def _outcome(action: EnforcementAction, result: Any) -> dict[str, Any]:
    if result is None:
        outcome, detail = "not-run", None
    elif isinstance(result, str):
        outcome, detail = result, None
    elif isinstance(result, Mapping):
        outcome, detail = result.get("outcome"), result.get("detail")
    else:
        raise ValueError(f"the result of {action.key} must be an outcome string or a mapping, not {result!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r} for {action.key} (expected one of {sorted(OUTCOMES)})")
    if action.dry_run and outcome == "done":
        raise ValueError(f"{action.key} is a dry-run action, so it cannot have been done")
    return {**action.model_dump(mode="json"), "outcome": outcome, "detail": None if detail is None else str(detail)}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _enforcement_summary(plan: EnforcementPlan, rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(headline, summary) for the subject, e.g. ("budget enforced on", "stopped 2/2 runs, 1/1 shares read-only")."""
    stops = [r for r in rows if r["action"] == STOP_EXECUTION]
    switches = [r for r in rows if r["action"] == SWITCH_SHARE]
    if not rows:
        return "budget limit, nothing enforced on", "nothing to do"
    if plan.dry_run:
        parts = [f"would stop {_count(len(stops), 'run')}"] if stops else []
        parts += [f"make {_count(len(switches), 'share')} read-only"] if switches else []
        return "DRY RUN enforcement on", ", ".join(parts)
    outcomes = {r["outcome"] for r in rows}
    parts = [f"stopped {sum(r['outcome'] == 'done' for r in stops)}/{len(stops)} runs"] if stops else []
    parts += [f"{sum(r['outcome'] == 'done' for r in switches)}/{len(switches)} shares read-only"] if switches else []
    head = (
        "enforcement FAILED on"
        if "failed" in outcomes
        else "enforcement INCOMPLETE on"
        if "not-run" in outcomes
        else "budget enforced on"
    )
    return head, ", ".join(parts)


def enforcement_message(
    plan: EnforcementPlan, results: Mapping[str, Any] | None = None, *, currency: str = "USD"
) -> OwnerAlert:
    """What enforcement did (or, in dry run, would do), with one outcome per action.

    `results` maps an action's `key` to its outcome: "done" | "failed" | "skipped" (e.g. the execution had already
    ended) | "not-run", or to {"outcome": ..., "detail": "..."}. An action without a result is "not-run" (in dry run,
    every action). Raises ValueError for a plan without a trigger, a result for no action of the plan, an unknown
    outcome, or a dry-run action reported "done".
    """
    if plan.threshold is None:
        raise ValueError("the plan has no threshold at or above 100%: there is no enforcement to report")
    results = dict(results or {})
    strays = sorted(set(results) - {a.key for a in plan.actions})
    if strays:
        raise ValueError(f"results for actions not in the plan: {', '.join(strays)}")
    rows = [_outcome(action, results.get(action.key)) for action in plan.actions]
    head, summary = _enforcement_summary(plan, rows)
    event = "budget.enforcement"
    message: dict[str, Any] = {
        "schema": ENFORCEMENT_SCHEMA,
        "event": event,
        "consumer_account": plan.consumer,
        "month": plan.month,
        "threshold": plan.threshold,
        "spend": _amount(plan.spend),
        "currency": currency,
        "monthly_limit": None if plan.monthly_limit is None else _amount(plan.monthly_limit),
        "dry_run": plan.dry_run,
        "summary": summary,
        "actions": rows,
        "notes": list(plan.notes),
        "billing": {"estimate": True, "statement": ESTIMATE_STATEMENT},
    }
    attributes = {
        "event": event,
        "consumer_account": plan.consumer,
        "month": plan.month,
        "threshold": str(plan.threshold),
        "dry_run": str(plan.dry_run).lower(),
    }
    subject = _fit(f"{head} {plan.consumer} at {plan.threshold}%: ", summary)
    return OwnerAlert(subject=subject, message=message, attributes=attributes)
