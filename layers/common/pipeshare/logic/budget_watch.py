"""Budgets that bind. Pure logic with ports as arguments (`BudgetPorts`).

Thresholds are level-triggered: on every spend change (`on_spend_change`, `on_line_change`), every budget-policy
change and every day (`evaluate_month`: one Query of the month's spend), each threshold the spend has reached that
has no ledger item yet is alerted, once; several due at once make ONE message naming the highest.

Enforcement holds for the month: while a consumer is at or over its enforcement threshold (on the spend enforcement
counts: confirmed unless `count_inferred`), every run it has going is stopped as soon as pipeshare sees it (a spend
change lists its running executions; `on_execution_state` sees each new or retried run), and with `remove_from_share`
it is taken off its allow-execution shares (and, with `downgrade_to_read_only`, given the same pipelines read-only).
Each action is recorded once (ledger key per execution attempt, per share and principal, per month) with one
message, and, in the same transaction, one notice for the consumer (logic/consumer_notices.py: the owner notifier
puts it on the consumer's notice bus; a skipped or failed action has none); a dry run records its own keys
(DRYRUN#...) and does nothing, so real enforcement later still happens. A
failed action is reported once (FAILED#<key>) and tried again on the next trigger (the invocation fails: Lambda
retries it). An invalid policy fails closed: nothing is alerted or enforced until it is valid again, and then the
policy-change evaluation catches up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipeshare.adapters.ports import (
    BudgetPorts,
)
from pipeshare.logic.budget_messages import (
    Outcome,
    group_share_message,
    share_message,
    stop_message,
    threshold_message,
    unattributed_message,
)
from pipeshare.logic.budgets import (
    failure_key,
    month_of,
    over_limit,
    share_removals,
    stop_reason,
    threshold_key,
    thresholds_reached,
)
from pipeshare.logic.consumer_notices import Done, share_notice, stop_notice
from pipeshare.models.budgets import Budget, BudgetPolicy, ConsumerSpend, LineSpend, RunView, ShareRemoval, StopOrder
from pipeshare.models.consumer_notices import EnforcementNotice
from pipeshare.models.errors import BudgetPolicyInvalidError, EnforcementIncompleteError, PipeshareError
from pipeshare.models.messages import OwnerAlert
from pipeshare.models.owner_outcomes import BudgetOutcome

RECORD_ATTEMPTS = 3  # another writer recorded some thresholds first: read the ledger again and write the rest
EXECUTING = "Executing"


@dataclass
class _Consumer:
    """One consumer's evaluation: its spend, budget, ledger keys (read once) and the policy's currency."""

    spend: ConsumerSpend
    budget: Budget
    currency: str
    ports: BudgetPorts
    now: datetime
    outcome: BudgetOutcome
    done: set[str] | None = None

    @property
    def month(self) -> str:
        return self.spend.month

    def recorded(self, *, again: bool = False) -> set[str]:
        if self.done is None or again:
            self.done = self.ports.ledger.recorded(self.month, self.spend.consumer)
        return self.done

    def record(self, keys: list[str], alert: OwnerAlert | None, notice: EnforcementNotice | None = None) -> bool:
        written = self.ports.ledger.record(
            self.month,
            self.spend.consumer,
            keys,
            alert,
            at=self.now,
            facts=_facts(self.spend, self.budget),
            notice=notice,
        )
        if written:
            self.recorded().update(keys)
        return written


def _facts(spend: ConsumerSpend, budget: Budget) -> dict[str, Decimal | str]:
    """Exact figures kept on the ledger items (messages round them)."""
    return {
        "spend_total": spend.total,
        "spend_confirmed": spend.confirmed_total,
        "monthly_limit": budget.monthly_limit,
        "enforced_on": budget.enforced_on,
    }


def _load(ports: BudgetPorts, *, fresh: bool = False) -> BudgetPolicy | BudgetPolicyInvalidError | None:
    try:
        return ports.budgets.load(fresh=fresh)
    except BudgetPolicyInvalidError as exc:  # fail closed: no budget applied, nothing enforced
        return exc


# ------------------------------------------------------------------------------------------------------ triggers


def on_spend_change(spend: ConsumerSpend, *, ports: BudgetPorts, now: datetime) -> BudgetOutcome:
    """A consumer's month-to-date spend changed: alert what is due; enforce while it is over its budget (current
    month only: a late update of a past month alerts, and enforces nothing)."""
    outcome = BudgetOutcome(status="below", subject=spend.consumer, month=spend.month)
    policy = _load(ports)
    if isinstance(policy, BudgetPolicyInvalidError) or policy is None:
        return _no_policy(outcome, policy)
    budget = policy.budget_for(spend.consumer)
    if budget is None:
        return outcome.model_copy(update={"status": "no-budget"})
    _evaluate_consumer(_Consumer(spend, budget, policy.currency, ports, now, outcome), pipelines=None)
    return _finish(outcome)


def on_line_change(line: LineSpend, *, ports: BudgetPorts, now: datetime) -> BudgetOutcome:
    """A pipeline's unattributed spend changed: alert the thresholds of its line that are due (alerts only)."""
    outcome = BudgetOutcome(status="below", subject=_line_subject(line.pipeline_arn), month=line.month)
    policy = _load(ports)
    if isinstance(policy, BudgetPolicyInvalidError) or policy is None:
        return _no_policy(outcome, policy)
    _evaluate_line(line, policy, ports, now, outcome)
    return outcome.settle()


def on_execution_state(run: RunView, previous: RunView | None, *, ports: BudgetPorts, now: datetime) -> BudgetOutcome:
    """A consumer's execution is running (new, retried, attributed, or just changed): stop it when its consumer is
    over budget (then enforce on the rest as for a spend change), or, newly admitted, when its worst-case cost
    exceeds what is left of the budget."""
    month = month_of(now)
    outcome = BudgetOutcome(status="ignored", subject=run.execution_arn, month=month)
    consumer = run.initiator_account
    if run.open_status != EXECUTING or consumer is None or not consumer.isdigit():
        return outcome
    policy = _load(ports)
    if isinstance(policy, BudgetPolicyInvalidError) or policy is None:
        return _no_policy(outcome, policy)
    budget = policy.budget_for(consumer)
    stops = budget is not None and (
        budget.enforce.stop_executions or budget.enforce.stop_when_worst_case_exceeds_remaining
    )
    if budget is None or not stops or not run.enforceable(budget):
        return outcome
    spend = ports.spend.consumer_spend(month, consumer)
    order = stop_reason(run, spend, budget, admitted_now=_admitted_now(run, previous, budget))
    outcome = outcome.model_copy(update={"status": "below"})
    if order is not None:
        state = _Consumer(spend, budget, policy.currency, ports, now, outcome)
        _stop(state, order)
        if order.reason == "over-budget":
            _enforce(state)
    return _finish(outcome)


def on_unpriced_estimate(
    execution_arn: str, unpriced: Iterable[str], *, ports: BudgetPorts, now: datetime
) -> BudgetOutcome:
    """A run's estimate has instance types nobody could price: with `unpriced: stop`, stop its running attempt when
    its consumer is at risk (the spend enforcement counts has reached the budget's lowest threshold)."""
    month = month_of(now)
    outcome = BudgetOutcome(status="ignored", subject=execution_arn, month=month)
    policy = _load(ports)
    if isinstance(policy, BudgetPolicyInvalidError) or policy is None:
        return _no_policy(outcome, policy)
    run = ports.runs.execution(execution_arn)
    if run is None or run.open_status != EXECUTING or run.initiator_account is None:
        return outcome
    budget = policy.budget_for(run.initiator_account)
    if budget is None or budget.unpriced != "stop" or not run.enforceable(budget):
        return outcome
    spend = ports.spend.consumer_spend(month, run.initiator_account)
    order = stop_reason(run, spend, budget, admitted_now=False, unpriced=unpriced)
    outcome = outcome.model_copy(update={"status": "below"})
    if order is not None:
        _stop(_Consumer(spend, budget, policy.currency, ports, now, outcome), order)
    return _finish(outcome)


def evaluate_month(month: str, *, ports: BudgetPorts, now: datetime, fresh: bool = False) -> BudgetOutcome:
    """The policy changed, or the day's run: every consumer and unattributed line of the month against the policy,
    from one Query of the month's spend (what a lost stream record or an invalid policy left undone is done now)."""
    outcome = BudgetOutcome(status="evaluated", subject="month", month=month)
    policy = _load(ports, fresh=fresh)
    if isinstance(policy, BudgetPolicyInvalidError) or policy is None:
        return _no_policy(outcome, policy)
    if not (policy.consumers or policy.default or policy.unattributed):
        return outcome.model_copy(update={"status": "no-budget"})
    items = ports.spend.month_spend_items(month)
    for spend in items.consumers:
        budget = policy.budget_for(spend.consumer)
        if budget is not None:
            state = _Consumer(spend, budget, policy.currency, ports, now, outcome)
            _evaluate_consumer(state, pipelines=items.consumer_pipelines.get(spend.consumer, {}))
    for line in items.unattributed:
        _evaluate_line(line, policy, ports, now, outcome)
    outcome = outcome.model_copy(update={"evaluated": len(items.consumers) + len(items.unattributed)})
    _raise_on_failures(outcome)
    return outcome


# ------------------------------------------------------------------------------------------------------ helpers


def _no_policy(outcome: BudgetOutcome, policy: BudgetPolicyInvalidError | None) -> BudgetOutcome:
    if policy is not None:
        return outcome.model_copy(update={"status": "policy-invalid", "reason": str(policy)})
    return outcome.model_copy(update={"status": "no-budget", "reason": ""})


def _finish(outcome: BudgetOutcome) -> BudgetOutcome:
    settled = outcome.settle()
    _raise_on_failures(settled)
    return settled


def _raise_on_failures(outcome: BudgetOutcome) -> None:
    if outcome.failures:
        raise EnforcementIncompleteError(outcome)


def _admitted_now(run: RunView, previous: RunView | None, budget: Budget) -> bool:
    """The run is newly running and enforceable: a new execution, a new attempt, just attributed, or its worst case
    just known (the tracker may record it after the attribution)."""
    if previous is None or previous.attempt != run.attempt or previous.open_status != EXECUTING:
        return True
    return not previous.enforceable(budget) or (previous.worst_case_usd is None and run.worst_case_usd is not None)


def _line_subject(pipeline_arn: str) -> str:
    return f"UNATTRIBUTED#{pipeline_arn.lower()}"


def _evaluate_consumer(state: _Consumer, *, pipelines: Mapping[str, Decimal] | None) -> None:
    current = state.month == month_of(state.now)
    if current:
        state.outcome.spend[state.spend.consumer] = (state.spend.total, state.budget.monthly_limit)
    due = thresholds_reached(state.spend.total, state.budget)
    enforce = over_limit(state.spend, state.budget) and current
    if not due and not enforce:
        return
    _alert_thresholds(state, due, pipelines)
    if enforce:
        _enforce(state)


def _alert_thresholds(state: _Consumer, due: list[int], pipelines: Mapping[str, Decimal] | None) -> None:
    consumer = state.spend.consumer
    for attempt in range(RECORD_ATTEMPTS):
        new = [t for t in due if threshold_key(t) not in state.recorded(again=attempt > 0)]
        if not new:
            return
        if pipelines is None:
            pipelines = state.ports.spend.consumer_pipelines(state.month, consumer)
        alert = threshold_message(state.spend, new, state.budget, pipelines, currency=state.currency)
        if state.record([threshold_key(t) for t in new], alert):
            state.outcome.thresholds.extend(f"{consumer}:{t}" for t in new)
            return


def _evaluate_line(
    line: LineSpend, policy: BudgetPolicy, ports: BudgetPorts, now: datetime, outcome: BudgetOutcome
) -> None:
    budget_line, matched_by = policy.unattributed_line(line.pipeline_arn)
    due = thresholds_reached(line.total, budget_line)
    if budget_line is None or not due:
        return
    subject = _line_subject(line.pipeline_arn)
    for _ in range(RECORD_ATTEMPTS):
        new = [t for t in due if threshold_key(t) not in ports.ledger.recorded(line.month, subject)]
        if not new:
            return
        alert = unattributed_message(line, new, budget_line, matched_by=matched_by, currency=policy.currency)
        facts = {"spend_total": line.total, "monthly_limit": budget_line.monthly_limit}
        if ports.ledger.record(line.month, subject, [threshold_key(t) for t in new], alert, at=now, facts=facts):
            outcome.thresholds.extend(f"{subject}:{t}" for t in new)
            return


def _enforce(state: _Consumer) -> None:
    """Over budget: stop every enforceable running execution, take the consumer off its shares (once a month each)."""
    budget, consumer = state.budget, state.spend.consumer
    if budget.enforce.stop_executions:
        for run in state.ports.runs.running_for(consumer):
            order = stop_reason(run, state.spend, budget, admitted_now=False)
            if order is not None and order.reason == "over-budget":
                _stop(state, order)
    if budget.enforce.remove_from_share:
        removals, groups = share_removals(consumer, state.ports.grants.grants().values(), dry_run=budget.dry_run)
        _remove_from_shares(state, removals)
        for group in groups:
            if group.key not in state.recorded():
                state.record([group.key], group_share_message(group, state.spend, budget, currency=state.currency))
                state.outcome.actions[group.key] = "skipped"


def _stop(state: _Consumer, order: StopOrder) -> None:
    if order.key in state.recorded() or order.key in state.outcome.actions:
        return
    result: Outcome = "not-run"
    if not order.dry_run:
        try:
            result = "done" if state.ports.enforcer.stop_execution(order.run.execution_arn) else "skipped"
        except PipeshareError as exc:
            _failed(state, order.key, stop_message(order, state.spend, state.budget, outcome="failed", detail=str(exc)))
            state.outcome.actions[order.key] = f"failed: {exc}"[:300]
            return
    state.outcome.actions[order.key] = result
    if result == "skipped":  # it had already ended: nothing was done, nothing to report
        return
    done: Done = "done" if result == "done" else "not-run"
    alert = stop_message(order, state.spend, state.budget, outcome=done, currency=state.currency)
    notice = stop_notice(order, state.spend, state.budget, outcome=done, at=state.now, currency=state.currency)
    state.record([order.key], alert, notice)


def _failed(state: _Consumer, key: str, alert: OwnerAlert) -> None:
    """Report a failed action once a month (the action itself is tried again: its own key stays unwritten)."""
    if failure_key(key) not in state.recorded():
        state.record([failure_key(key)], alert)


def _read_only_key(removal: ShareRemoval) -> str:
    return f"{'DRYRUN#' if removal.dry_run else ''}READONLY#{removal.share_arn.lower()}#{removal.principal.lower()}"


def _remove_from_shares(state: _Consumer, removals: list[ShareRemoval]) -> None:
    """Take the consumer off each share (then, with downgrade_to_read_only, give each principal the pipelines it
    lost read-only, one call per principal); one message per share."""
    done = state.recorded()
    todo = [r for r in removals if r.key not in done or (_downgrades(state) and _read_only_key(r) not in done)]
    results: dict[ShareRemoval, tuple[Outcome, str | None]] = {}
    for removal in todo:
        results[removal] = ("done", None) if removal.key in done else _remove_one(state, removal)
    read_only = _grant_read_only(state, [r for r, (res, _) in results.items() if res != "failed"])
    for removal, (result, detail) in results.items():
        _record_removal(state, removal, result, detail, read_only.get(removal.principal))


def _downgrades(state: _Consumer) -> bool:
    return state.budget.enforce.downgrade_to_read_only


def _remove_one(state: _Consumer, removal: ShareRemoval) -> tuple[Outcome, str | None]:
    if removal.dry_run:
        return "not-run", None
    try:
        removed = state.ports.enforcer.remove_principal(removal.share_arn, removal.principal, month=state.month)
    except PipeshareError as exc:
        return "failed", str(exc)
    return ("done" if removed else "skipped"), None


def _grant_read_only(state: _Consumer, removals: list[ShareRemoval]) -> dict[str, tuple[str | None, Outcome]]:
    """principal -> (read-only share ARN, outcome), one call per principal for every pipeline it lost."""
    if not _downgrades(state) or not removals:
        return {}
    wanted: dict[str, set[str]] = {}
    for removal in removals:
        if _read_only_key(removal) not in state.recorded():
            wanted.setdefault(removal.principal, set()).update(removal.pipelines)
    granted: dict[str, tuple[str | None, Outcome]] = {}
    for principal, pipelines in sorted(wanted.items()):
        if state.budget.dry_run:
            granted[principal] = (None, "not-run")
            continue
        try:
            share = state.ports.enforcer.grant_read_only(principal, sorted(pipelines), month=state.month)
            granted[principal] = (share, "done")
        except PipeshareError as exc:
            granted[principal] = (f"failed: {exc}"[:300], "failed")
    return granted


def _record_removal(
    state: _Consumer,
    removal: ShareRemoval,
    result: Outcome,
    detail: str | None,
    read_only: tuple[str | None, Outcome] | None,
) -> None:
    """Record the removal (and the read-only grant, when it was made) with one message. A failed removal is reported
    once and tried again; a failed read-only grant is reported in the removal's message and tried again."""
    spend, budget, key = state.spend, state.budget, removal.key
    if result == "failed":
        _failed(state, key, share_message(removal, spend, budget, outcome="failed", detail=detail))
        state.outcome.actions[key] = f"failed: {detail}"[:300]
        return
    ro_share, ro_outcome = read_only if read_only is not None else (None, None)
    keys = [] if key in state.recorded() else [key]
    if ro_outcome in ("done", "not-run"):
        keys.append(_read_only_key(removal))
    elif ro_outcome == "failed":
        state.outcome.actions[_read_only_key(removal)] = str(ro_share)
        detail, ro_share = str(ro_share), None
    if not keys:
        return
    quiet = result == "skipped" and ro_outcome is None  # it was off the share already: recorded, not announced
    alert, notice = None, None
    if result in ("done", "not-run"):  # the consumer lost (or, in dry run, would lose) something: it is told
        notice = share_notice(
            removal,
            spend,
            budget,
            outcome=result,
            at=state.now,
            key=keys[-1],
            read_only_share=ro_share if ro_outcome == "done" else None,
            currency=state.currency,
        )
    if not quiet:
        alert = share_message(
            removal,
            spend,
            budget,
            outcome=result,
            detail=detail,
            read_only_share=ro_share,
            read_only_outcome=ro_outcome,
            currency=state.currency,
        )
    state.record(keys, alert, notice)
    state.outcome.actions[key] = result
