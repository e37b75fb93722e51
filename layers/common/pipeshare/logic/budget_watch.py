"""Budgets per consumer: on each change of a consumer's month-to-date spend, alert each threshold crossed once per
month and, at 100 %, enforce (stop the consumer's running executions and/or switch its shares to read-only) or, in
dry run, say what would be done. Pure logic with ports as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from pipeshare.adapters.ports import BudgetLedger, BudgetSource, EnforcementGateway, GrantRepository, RunningExecutions
from pipeshare.logic.budgets import (
    BudgetPolicyInvalidError,
    enforcement_message,
    enforcement_plan,
    threshold_message,
    thresholds_crossed,
)
from pipeshare.models.errors import PipeshareError


@dataclass
class BudgetOutcome:
    status: str  # no-budget | below | alerted | enforced | policy-invalid
    consumer: str
    month: str
    thresholds: list[int] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)
    reason: str = ""


def on_spend_change(
    consumer: str,
    month: str,
    before: Decimal,
    after: Decimal,
    *,
    budgets: BudgetSource,
    ledger: BudgetLedger,
    running: RunningExecutions,
    grants: GrantRepository,
    enforcer: EnforcementGateway,
    now: datetime,
) -> BudgetOutcome:
    try:
        policy = budgets.load()
    except BudgetPolicyInvalidError as exc:  # fail closed: no budget applied, nothing enforced
        return BudgetOutcome("policy-invalid", consumer, month, reason=str(exc))
    budget = policy.budget_for(consumer) if policy is not None else None
    if budget is None:
        return BudgetOutcome("no-budget", consumer, month)
    crossed = thresholds_crossed(before, after, budget)
    if not crossed:
        return BudgetOutcome("below", consumer, month)
    alerted = [
        t
        for t in crossed
        if ledger.record_threshold(month, consumer, t, threshold_message(consumer, month, t, after, budget), at=now)
    ]
    outcome = BudgetOutcome("alerted", consumer, month, alerted)
    if not budget.enforce.any:
        return outcome
    plan = enforcement_plan(
        budget,
        crossed,
        consumer=consumer,
        month=month,
        spend=after,
        running_executions=running.running_for(consumer) if budget.enforce.stop_executions else [],
        grants=list(grants.grants().values()),  # all: the plan notes organization / OU grants it cannot switch
    )
    if plan.threshold is None or not ledger.claim_enforcement(month, consumer, at=now):
        return outcome
    for action in plan.actions:
        if action.dry_run:
            outcome.actions[action.key] = "not-run"
            continue
        try:
            if action.action == "stop_execution":
                done = enforcer.stop_execution(action.target)
            else:
                done = enforcer.switch_share_to_read_only(action.target)
            outcome.actions[action.key] = "done" if done else "skipped"
        except PipeshareError as exc:
            outcome.actions[action.key] = f"failed: {exc}"[:200]
    results = {
        k: ({"outcome": "failed", "detail": v[8:]} if v.startswith("failed") else v) for k, v in outcome.actions.items()
    }
    ledger.record_enforcement(month, consumer, enforcement_message(plan, results), at=now)
    outcome.status = "enforced"
    return outcome
