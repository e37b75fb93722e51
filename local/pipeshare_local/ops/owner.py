"""Owner commands: `grants`, `executions`, `explain`, `spend`, `budget check`, `prices`. They read the owner table
through the product's adapters (dynamodb_owner, dynamodb_costs, dynamodb_budgets) and models, and judge with its
logic (logic/budgets.py, logic/spend.py); the price table is the product's (logic/estimate.py, models/estimates.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeshare.adapters.dynamodb_budgets import DynamoDbBudgetLedger
from pipeshare.adapters.dynamodb_common import deserialize, item
from pipeshare.adapters.dynamodb_costs import DynamoDbCostRepository
from pipeshare.adapters.dynamodb_executions import execution_pk
from pipeshare.adapters.dynamodb_owner import DynamoDbGrantRepository
from pipeshare.adapters.price_cache import price_pk
from pipeshare.logic.budgets import month_of, over_limit, parse_budget_policy, thresholds_reached
from pipeshare.logic.estimate import load_shipped_prices
from pipeshare.logic.spend import consumer_of
from pipeshare.models.budgets import Budget, BudgetPolicy, ConsumerSpend
from pipeshare.models.errors import BudgetPolicyInvalidError, PriceTableError
from pipeshare.models.estimates import STORAGE, Component, PriceTable
from pipeshare.models.executions import ActionEntry, AttributionSource
from pipeshare_local.ops.consumer import load_json
from pipeshare_local.ops.output import Result, Section, bar
from pipeshare_local.ops.target import EXIT_PROBLEMS, CliError, Target, usage

SIDE = "owner"
TABLE_OUTPUT = "OwnerTableName"

# where each attribution source's evidence comes from (logic/attribution.py, models/executions.py)
EVIDENCE_ORIGIN = {
    AttributionSource.OWNER: "the owner account's own CloudTrail record of the call",
    AttributionSource.FORWARDED: "the consumer's CloudTrail record, forwarded to the owner's bus",
    AttributionSource.OWNER_COPY: "the copy of the consumer's call in the owner account's CloudTrail",
    AttributionSource.INFERRED: "the pipeline's grants (one consumer could have done it; no CloudTrail record)",
    AttributionSource.AMBIGUOUS: "the pipeline's grants (several consumers could have done it)",
    AttributionSource.UNKNOWN: "no evidence yet",
}


def _table(target: Target) -> str:
    return target.output(TABLE_OUTPUT, SIDE)


def _month(value: str | None, target: Target) -> str:
    if value is None:
        return month_of(target.now())
    try:
        datetime.strptime(value, "%Y-%m")
    except ValueError:
        raise usage(f"--month must be YYYY-MM, not {value!r}") from None
    return value


def budget_policy(target: Target) -> tuple[BudgetPolicy | None, str]:
    """The budget policy in force (the SSM parameter the stack names) and a note on it."""
    name = target.parameters.get("BudgetPolicyParameterName", "")
    if not name:
        return None, "no budget policy (BudgetPolicyParameterName is empty)"
    ssm = target.client("ssm")
    try:
        text = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None, f"no budget policy (SSM {name} does not exist)"
    try:
        return parse_budget_policy(text, source=f"ssm:{name}"), f"budget policy: ssm:{name}"
    except BudgetPolicyInvalidError as exc:
        return (
            None,
            f"the budget policy in ssm:{name} is invalid ({'; '.join(exc.errors[:3])}): budgets are not applied",
        )


# ------------------------------------------------------------------------------------------------------- grants


def grants(target: Target) -> Result:
    repository = DynamoDbGrantRepository(_table(target), target.client("dynamodb"))
    rows = [
        {
            "pipeline": g.pipeline_arn.rsplit("/", 1)[-1],
            "consumer": g.consumer,
            "share_name": g.share_name,
            "association_status": g.association_status,
            "permission": g.permission_name or (g.permission_arn or "").rsplit("/", 2)[-2:][0],
            "cost_bearing": g.cost_bearing,
            "pipeline_arn": g.pipeline_arn,
            "share_arn": g.share_arn,
        }
        for g in sorted(repository.grants().values(), key=lambda g: g.key)
    ]
    columns = [
        ("pipeline", "Pipeline"),
        ("consumer", "Consumer"),
        ("share_name", "Share"),
        ("association_status", "Status"),
        ("permission", "Permission"),
        ("cost_bearing", "Can run (owner pays)"),
    ]
    return Result([Section("grants", "Grants (who holds which pipeline)", columns, rows)], code=0 if rows else 1)


# --------------------------------------------------------------------------------------------------- executions


def _scan_executions(target: Target) -> list[dict[str, Any]]:
    """Every execution's STATE item, with its estimate's total (one Scan of the owner table)."""
    ddb = target.client("dynamodb")
    states: dict[str, dict[str, Any]] = {}
    totals: dict[str, dict[str, Any]] = {}
    for page in ddb.get_paginator("scan").paginate(
        TableName=_table(target),
        FilterExpression="begins_with(pk, :e) AND (sk = :state OR sk = :estimate)",
        ExpressionAttributeValues=item({":e": "EXECUTION#", ":state": "STATE", ":estimate": "ESTIMATE"}),
    ):
        for raw in page.get("Items", []):
            data = deserialize(raw)
            (states if data["sk"] == "STATE" else totals)[data["pk"]] = data
    rows = []
    for pk, state in states.items():
        estimate = totals.get(pk, {})
        rows.append({**state, "estimate_usd": estimate.get("total"), "estimate_final": estimate.get("final")})
    return sorted(rows, key=lambda r: (str(r.get("started_at") or ""), str(r.get("execution_arn"))))


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise usage(f"--since must be a date or time (ISO 8601), not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def executions(target: Target, consumer: str | None, since: str | None) -> Result:
    start = _since(since)
    rows = []
    for state in _scan_executions(target):
        if consumer and state.get("initiator_account") != consumer:
            continue
        started = state.get("started_at")
        if start and (not started or datetime.fromisoformat(str(started)) < start):
            continue
        rows.append(
            {
                "execution": str(state["execution_arn"]).rsplit("/", 1)[-1],
                "pipeline": str(state.get("pipeline_arn", "")).rsplit("/", 1)[-1],
                "status": state.get("status"),
                "started_at": started,
                "ended_at": state.get("ended_at"),
                "attribution_source": state.get("attribution_source"),
                "initiator_account": state.get("initiator_account"),
                "attempt": state.get("attempt"),
                "estimate_usd": state.get("estimate_usd"),
                "estimate_final": state.get("estimate_final"),
                "execution_arn": state["execution_arn"],
            }
        )
    columns = [
        ("execution", "Execution"),
        ("pipeline", "Pipeline"),
        ("status", "Status"),
        ("started_at", "Started"),
        ("attribution_source", "Source"),
        ("initiator_account", "Started by"),
        ("attempt", "Attempt"),
        ("estimate_usd", "Estimate USD"),
        ("estimate_final", "Final"),
    ]
    return Result([Section("executions", "Executions recorded", columns, rows)], code=0 if rows else 1)


# ------------------------------------------------------------------------------------------------------ explain


def _resolve_execution(target: Target, execution: str) -> str:
    if execution.startswith("arn:"):
        return execution
    matches = [
        str(s["execution_arn"])
        for s in _scan_executions(target)
        if str(s["execution_arn"]).rsplit("/", 1)[-1].lower() == execution.lower()
    ]
    if len(matches) != 1:
        raise CliError(f"{execution}: {'no' if not matches else 'several'} execution(s) with this ID", EXIT_PROBLEMS)
    return matches[0]


def _evidence(kind: str, entry: ActionEntry, attempt: int = 0) -> dict[str, Any]:
    return {
        "at": entry.at,
        "action": entry.action.value + (f" (attempt {attempt})" if attempt else ""),
        "kind": kind,
        "source": entry.source.value,
        "account": entry.account,
        "principal": entry.principal or entry.principal_id,
        "candidates": list(entry.candidates),
        "event_id": entry.event_id,
        "origin": EVIDENCE_ORIGIN[entry.source],
    }


def explain(target: Target, execution: str) -> Result:
    """Everything recorded about one execution: attribution evidence, status changes, cost lines, budget state."""
    arn = _resolve_execution(target, execution)
    ddb = target.client("dynamodb")
    costs = DynamoDbCostRepository(_table(target), ddb)
    state = costs.state(arn)
    record = state.record
    if record is None:
        raise CliError(f"{arn}: no execution on record in {target.label}", EXIT_PROBLEMS)
    summary = {
        "execution_arn": record.execution_arn,
        "pipeline": record.pipeline_name,
        "status": record.status,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "attribution_source": record.source.value,
        "initiator_account": record.initiator_account,
        "initiator_principal": record.initiator_principal,
        "estimate_usd": state.total if state.estimate else None,
        "estimate_final": (state.estimate or {}).get("final"),
        "unpriced": (state.estimate or {}).get("unpriced"),
    }
    evidence = [_evidence("attribution", e) for e in record.actions.values()]
    evidence += [_evidence("retry claim", e) for e in record.retry_claims]
    evidence += [_evidence("retry inference", e, n) for n, e in record.retry_inferences.items()]
    evidence.sort(key=lambda e: (e["at"], e["action"]))
    transitions = [{"at": t.at, "status": t.status, "previous": t.previous} for t in record.transitions]
    lines = []
    for job, cost in sorted(state.counted.items()):
        detail = state.details.get(job, {})
        lines.append(
            {
                "job": job.rsplit("/", 1)[-1],
                "cost_usd": cost,
                "final": job not in state.running,
                "summary": _job_summary(detail),
                "detail": detail,
                "job_arn": job,
            }
        )
    alerts = _alerts(target, arn)
    sections = [
        Section(
            "execution",
            "Execution",
            [("field", "Field"), ("value", "Value")],
            [{"field": k, "value": v} for k, v in summary.items()],
        ),
        Section(
            "evidence",
            "Attribution evidence",
            [
                ("at", "At"),
                ("action", "Action"),
                ("kind", "Kind"),
                ("source", "Source"),
                ("account", "Account"),
                ("principal", "Principal"),
                ("candidates", "Candidates"),
                ("event_id", "Event"),
                ("origin", "Where it comes from"),
            ],
            evidence,
        ),
        Section(
            "transitions",
            "Status changes (EventBridge status events)",
            [("at", "At"), ("status", "Status"), ("previous", "From")],
            transitions,
        ),
        Section(
            "costs",
            "Cost lines (each job counted once)",
            [("job", "Job"), ("cost_usd", "USD"), ("final", "Final"), ("summary", "Priced as")],
            lines,
        ),
        _budget_section(target, record.owner_account, record, state.estimate),
        Section(
            "alerts",
            "Alerts recorded (the owner topic's outbox)",
            [("at", "At"), ("key", "Key"), ("subject", "Subject")],
            alerts,
        ),
    ]
    return Result(sections)


def _job_summary(detail: dict[str, Any]) -> str:
    """A job's cost line in a few words: instances x seconds at their rate, storage, issues."""
    parts = [
        f"{i.get('count', 1)} x {i.get('instance_type')} {i.get('seconds')} s at USD {i.get('usd_per_hour')}/h"
        for i in detail.get("instances") or []
        if isinstance(i, dict)
    ]
    if detail.get("storage_cost") is not None:
        parts.append(f"storage USD {Decimal(str(detail['storage_cost'])).quantize(Decimal('0.000001'))}")
    if detail.get("spot_savings_percent") is not None:
        parts.append(f"spot savings {detail['spot_savings_percent']} %")
    parts += [str(issue) for issue in detail.get("issues") or []]
    return "; ".join(parts) or str(detail.get("reason") or detail.get("state") or "")


def _alerts(target: Target, arn: str) -> list[dict[str, Any]]:
    ddb = target.client("dynamodb")
    rows = []
    for page in ddb.get_paginator("query").paginate(
        TableName=_table(target),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :alert)",
        ExpressionAttributeValues=item({":pk": execution_pk(arn), ":alert": "ALERT#"}),
    ):
        for raw in page.get("Items", []):
            data = deserialize(raw)
            rows.append({"at": data.get("at"), "key": data["sk"], "subject": data.get("subject")})
    return rows


def _budget_section(target: Target, owner: str, record: Any, estimate: dict[str, Any] | None) -> Section:
    columns = [("field", "Field"), ("value", "Value")]
    consumer = consumer_of(record, owner)
    if consumer is None:
        return Section("budget", "Budget", columns, [{"field": "consumer", "value": "none (not a consumer's run)"}])
    month = month_of(record.started_at or target.now())
    ledger = DynamoDbBudgetLedger(_table(target), target.client("dynamodb"))
    spend = ledger.consumer_spend(month, consumer)
    policy, note = budget_policy(target)
    budget = policy.budget_for(consumer) if policy else None
    rows: list[dict[str, Any]] = [
        {"field": "consumer", "value": consumer},
        {"field": "month", "value": month},
        {"field": "month-to-date spend USD", "value": spend.total},
        {"field": "confirmed by evidence USD", "value": spend.confirmed_total},
        {"field": "policy", "value": note},
    ]
    if budget is not None:
        used = budget.percent_used(spend.enforced(budget))
        rows += [
            {"field": "monthly limit USD", "value": budget.monthly_limit},
            {"field": f"share used (on {budget.enforced_on} spend)", "value": f"{used} % {bar(used)}"},
            {"field": "thresholds reached", "value": thresholds_reached(spend.enforced(budget), budget)},
            {"field": "over the limit (enforcement applies)", "value": over_limit(spend, budget)},
        ]
    rows.append({"field": "ledger", "value": sorted(ledger.recorded(month, consumer))})
    return Section("budget", "Budget", columns, rows)


# -------------------------------------------------------------------------------------------------------- spend


def _budget_row(spend: ConsumerSpend, budget: Budget | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "consumer": spend.consumer,
        "total_usd": spend.total,
        "confirmed_usd": spend.confirmed_total,
        "inferred_usd": spend.inferred,
    }
    if budget is None:
        return row | {"limit_usd": None, "percent_used": None, "bar": ""}
    used = budget.percent_used(spend.enforced(budget))
    return row | {
        "limit_usd": budget.monthly_limit,
        "counted": budget.enforced_on,
        "percent_used": used,
        "bar": bar(used),
    }


def spend(target: Target, month: str | None) -> Result:
    month = _month(month, target)
    ledger = DynamoDbBudgetLedger(_table(target), target.client("dynamodb"))
    month_spend = ledger.month_spend_items(month)
    policy, note = budget_policy(target)
    consumers = [_budget_row(s, policy.budget_for(s.consumer) if policy else None) for s in month_spend.consumers]
    pipelines = [
        {"consumer": consumer, "pipeline": arn.rsplit("/", 1)[-1], "total_usd": total, "pipeline_arn": arn}
        for consumer, per in sorted(month_spend.consumer_pipelines.items())
        for arn, total in sorted(per.items(), key=lambda kv: -kv[1])
    ]
    pipelines += [
        {
            "consumer": "(unattributed)",
            "pipeline": line.pipeline_arn.rsplit("/", 1)[-1],
            "total_usd": line.total,
            "pipeline_arn": line.pipeline_arn,
        }
        for line in month_spend.unattributed
    ]
    sections = [
        Section(
            "consumers",
            f"Estimated spend {month}, per consumer",
            [
                ("consumer", "Consumer"),
                ("total_usd", "Total USD"),
                ("confirmed_usd", "Confirmed USD"),
                ("inferred_usd", "Inferred USD"),
                ("limit_usd", "Budget USD"),
                ("percent_used", "Used %"),
                ("bar", "Share of budget"),
            ],
            consumers,
        ),
        Section(
            "pipelines",
            f"Estimated spend {month}, per pipeline",
            [("consumer", "Consumer"), ("pipeline", "Pipeline"), ("total_usd", "Total USD")],
            pipelines,
        ),
    ]
    notes = [note, "Estimates from list prices, not the AWS bill; the owner account pays for every run."]
    return Result(sections, notes, code=0 if consumers or pipelines else EXIT_PROBLEMS, facts={"month": month})


def budget_check(target: Target, path: str) -> Result:
    """Validate a budget policy, then show what it would alert and enforce on this month's spend."""
    try:
        policy = parse_budget_policy(load_json(path), source=f"file:{path}")
    except BudgetPolicyInvalidError as exc:
        problems: list[dict[str, Any]] = [{"problem": e} for e in exc.errors]
        title = f"{path}: invalid budget policy (fail closed)"
        section = Section("problems", title, [("problem", "Problem")], problems)
        return Result([section], code=EXIT_PROBLEMS, facts={"valid": False})
    month = month_of(target.now())
    ledger = DynamoDbBudgetLedger(_table(target), target.client("dynamodb"))
    month_spend = ledger.month_spend_items(month)
    rows: list[dict[str, Any]] = []
    spends = {s.consumer: s for s in month_spend.consumers}
    for consumer in sorted(set(spends) | set(policy.consumers)):
        spend_now = spends.get(consumer) or ConsumerSpend(consumer=consumer, month=month)
        budget = policy.budget_for(consumer)
        if budget is None:
            rows.append(
                {
                    "subject": consumer,
                    "spend_usd": spend_now.total,
                    "limit_usd": None,
                    "would": "nothing (no budget for this consumer)",
                }
            )
            continue
        enforced = spend_now.enforced(budget)
        reached = thresholds_reached(enforced, budget)
        alerted = {k for k in ledger.recorded(month, consumer) if k.startswith("THRESHOLD#")}
        new = [t for t in reached if f"THRESHOLD#{t:04d}" not in alerted]
        actions = []
        if new:
            actions.append(f"alert {', '.join(f'{t} %' for t in new)}")
        if over_limit(spend_now, budget):
            enforce = budget.enforce
            what = [
                n
                for n, on in (
                    ("stop its executions", enforce.stop_executions),
                    ("remove it from allow-execution shares", enforce.remove_from_share),
                    ("give it the pipelines read-only", enforce.downgrade_to_read_only),
                )
                if on
            ]
            actions.append(("dry run: report " if budget.dry_run else "") + ", ".join(what))
        rows.append(
            {
                "subject": consumer,
                "spend_usd": enforced,
                "counted": budget.enforced_on,
                "limit_usd": budget.monthly_limit,
                "percent_used": budget.percent_used(enforced),
                "bar": bar(budget.percent_used(enforced)),
                "reached": reached,
                "alerted_already": sorted(int(k.removeprefix("THRESHOLD#")) for k in alerted),
                "would": "; ".join(actions) or "nothing",
            }
        )
    for line_spend in month_spend.unattributed:
        line, how = policy.unattributed_line(line_spend.pipeline_arn)
        reached = thresholds_reached(line_spend.total, line)
        rows.append(
            {
                "subject": f"unattributed {line_spend.pipeline_arn.rsplit('/', 1)[-1]}",
                "spend_usd": line_spend.total,
                "limit_usd": line.monthly_limit if line else None,
                "percent_used": line.percent_used(line_spend.total) if line else None,
                "bar": bar(line.percent_used(line_spend.total)) if line else "",
                "reached": reached,
                "would": (f"alert {', '.join(f'{t} %' for t in reached)} (line by {how})" if reached else "nothing"),
            }
        )
    columns = [
        ("subject", "Consumer"),
        ("spend_usd", "Spend USD"),
        ("counted", "Counted"),
        ("limit_usd", "Limit USD"),
        ("percent_used", "Used %"),
        ("bar", "Share"),
        ("reached", "Reached %"),
        ("alerted_already", "Alerted %"),
        ("would", "Would (dry run)"),
    ]
    section = Section("budgets", f"{path} on {month}'s spend (nothing is sent or changed)", columns, rows)
    return Result([section], facts={"valid": True, "month": month, "fingerprint": policy.fingerprint})


# ------------------------------------------------------------------------------------------------------- prices


def prices(target: Target) -> Result:
    """Each rate and where it comes from: the shipped table (as_of, sources), the SSM override, the Price List
    answers cached in the owner table."""
    shipped = load_shipped_prices()
    table: PriceTable = shipped
    notes = [f"shipped table: as of {shipped.as_of}; {shipped.source}"]
    override_name = target.parameters.get("PriceOverrideParameterName", "")
    if override_name:
        ssm = target.client("ssm")
        try:
            text = ssm.get_parameter(Name=override_name)["Parameter"]["Value"]
            table = shipped.merge(json.loads(text, parse_float=Decimal))
            notes.append(f"override: ssm:{override_name} merged")
        except ssm.exceptions.ParameterNotFound:
            notes.append(f"override: ssm:{override_name} does not exist")
        except (ValueError, PriceTableError) as exc:
            notes.append(f"override: ssm:{override_name} is invalid, the functions use the shipped table: {exc}")
    else:
        notes.append("override: none (PriceOverrideParameterName is empty)")
    rows = []
    for region, region_prices in sorted(table.regions.items()):
        for component in Component:
            for instance_type, rate in sorted(region_prices.rates(component).items()):
                rows.append(_price_row(table, region, component.value, instance_type, rate))
        if region_prices.storage_gb_month is not None:
            rows.append(_price_row(table, region, STORAGE, "", region_prices.storage_gb_month))
    use_price_list = target.parameters.get("UsePriceListApi", "")
    notes.append(
        f"Price List API: {'on' if use_price_list.lower() == 'true' else 'off'} (UsePriceListApi "
        f"{use_price_list or 'unset'}); its answers are cached in the owner table"
    )
    sections = [
        Section(
            "rates",
            "Rates (USD per instance-hour; storage per GB-month)",
            [
                ("region", "Region"),
                ("component", "Component"),
                ("instance_type", "Instance type"),
                ("usd", "USD"),
                ("origin", "Origin"),
                ("as_of", "As of"),
                ("sources", "Sources"),
            ],
            rows,
        ),
        Section(
            "price_list_cache",
            "Price List answers cached (owner table)",
            [
                ("region", "Region"),
                ("key", "Component#type"),
                ("usd", "USD"),
                ("fetched_at", "Fetched"),
                ("expires_at", "Expires"),
            ],
            _cached(target, sorted({*table.regions, target.region})),
        ),
    ]
    return Result(sections, notes, facts={"as_of": shipped.as_of})


def _price_row(table: PriceTable, region: str, component: str, instance_type: str, rate: Decimal) -> dict[str, Any]:
    origin = table.origin(region, component, instance_type)
    return {
        "region": region,
        "component": component,
        "instance_type": instance_type,
        "usd": rate,
        "origin": origin,
        "as_of": table.as_of if origin == "shipped" else None,
        "sources": list(table.cited_by(region, component, instance_type)),
    }


def _cached(target: Target, regions: list[str]) -> list[dict[str, Any]]:
    ddb = target.client("dynamodb")
    rows = []
    for region in regions:
        for page in ddb.get_paginator("query").paginate(
            TableName=_table(target),
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=item({":pk": price_pk(region)}),
        ):
            for raw in page.get("Items", []):
                data = deserialize(raw)
                expires = data.get("expires_at")
                rows.append(
                    {
                        "region": region,
                        "key": data.get("sk"),
                        "usd": data.get("rate") if data.get("found", True) else "none (no single rate)",
                        "fetched_at": data.get("fetched_at"),
                        "expires_at": datetime.fromtimestamp(int(expires), UTC) if expires is not None else None,
                    }
                )
    return rows
