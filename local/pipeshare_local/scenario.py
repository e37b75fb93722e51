"""Scenarios: a YAML story played on the local stack (accounts, deployments, steps, expectations) and its report.

The format is documented in docs/scenarios.md. Every step talks to the local stack through real boto3 clients;
events produced by the emulated services are delivered after each step, unless the scenario drops them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeshare_local.settings import (
    SCENARIO_CLOUDTRAIL_DELAY_MINUTES,
    CloudTrailSettings,
    EmulationSettings,
    RamSettings,
    SageMakerSettings,
)
from pipeshare_local.stack import LocalStack
from pipeshare_local.template import ROOT

PERMISSIONS = {
    "read-only": "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline",
    "allow-execution": "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountSpec(_Strict):
    id: str = Field(pattern=r"^[0-9]{12}$")
    role: str = "account"


class DeploySpec(_Strict):
    account: str
    mode: Literal["consumer", "owner", "both"] = "consumer"
    parameters: dict[str, str | int] = Field(default_factory=dict)
    trust_policy: Any = None  # stored in SSM and named by TrustPolicyParameterName
    trust_policy_parameter: str = "/pipeshare/trust-policy"


class ScenarioCloudTrail(CloudTrailSettings):
    """The scenario's `cloudtrail:` block: the scenario default latency, and `trails` keyed by alias or account ID."""

    delay_minutes: float = Field(default=SCENARIO_CLOUDTRAIL_DELAY_MINUTES, ge=0, le=24 * 60)
    trails: dict[str, bool] = Field(default_factory=dict)


class Scenario(_Strict):
    name: str
    description: str = ""
    region: str = "us-east-1"
    start: datetime = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    invitation_ttl_hours: float | None = Field(default=None, gt=0)  # shorthand for ram: {invitation_ttl_hours}
    # emulation settings (pipeshare_local.settings; docs/scenarios.md "Emulation settings")
    cloudtrail: ScenarioCloudTrail = Field(default_factory=ScenarioCloudTrail)
    sagemaker: SageMakerSettings = Field(default_factory=SageMakerSettings)
    ram: RamSettings = Field(default_factory=RamSettings)
    accounts: dict[str, AccountSpec]
    deploy: list[DeploySpec] = Field(default_factory=list)
    steps: list[dict[str, Any]]

    @model_validator(mode="after")
    def _steps_known(self) -> Scenario:
        for index, step in enumerate(self.steps):
            if len(step) != 1 or next(iter(step)) not in STEP_KINDS:
                raise ValueError(f"steps[{index}] must be one of {sorted(STEP_KINDS)}, got {list(step)}")
        return self

    @model_validator(mode="after")
    def _settings_consistent(self) -> Scenario:
        if self.invitation_ttl_hours is not None:
            if "invitation_ttl_hours" in self.ram.model_fields_set:
                raise ValueError("set the invitation window once: invitation_ttl_hours or ram.invitation_ttl_hours")
            self.ram.invitation_ttl_hours = self.invitation_ttl_hours
        unknown = sorted(k for k in self.cloudtrail.trails if k not in self.accounts and not re.fullmatch(r"\d{12}", k))
        if unknown:
            raise ValueError(f"cloudtrail.trails names unknown accounts {unknown} (known: {', '.join(self.accounts)})")
        return self

    def emulation_settings(self) -> EmulationSettings:
        """The settings the scenario's local stack runs with (trails keyed by account ID)."""
        cloudtrail = self.cloudtrail.model_dump()
        cloudtrail["trails"] = {
            (self.accounts[k].id if k in self.accounts else k): v for k, v in self.cloudtrail.trails.items()
        }
        return EmulationSettings(
            cloudtrail=CloudTrailSettings(**cloudtrail),
            sagemaker=self.sagemaker.model_copy(),
            ram=self.ram.model_copy(),
        )


@dataclass
class Report:
    scenario: str
    timeline: list[dict[str, Any]] = field(default_factory=list)
    expectations: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(e["ok"] for e in self.expectations)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "ok": self.ok,
            "timeline": self.timeline,
            "expectations": self.expectations,
            **self.data,
        }


class Player:
    """Plays one scenario on a LocalStack."""

    def __init__(self, scenario: Scenario, stack: LocalStack) -> None:
        self.scenario = scenario
        self.stack = stack
        self.report = Report(scenario.name)
        self.aliases: dict[str, str] = {}  # "pipeline:churn-train" -> ARN, share names -> ARN
        self.ids = {alias: spec.id for alias, spec in scenario.accounts.items()}
        self.quiet_sweeps = 0
        self.executions: dict[str, str] = {}  # scenario label -> execution ARN
        self.denied: list[tuple[str, str]] = []  # (label, error code) of refused starts
        self.spend_marks: dict[str, Decimal] = {}  # expect_spend labels -> the spend then

    # ------------------------------------------------------------------ helpers
    def account(self, ref: str) -> str:
        if ref in self.ids:
            return self.ids[ref]
        if ref.isdigit() and len(ref) == 12:
            return ref
        raise ValueError(f"unknown account {ref!r} (known: {', '.join(self.ids)})")

    def alias_of(self, account_id: str) -> str:
        return next((a for a, i in self.ids.items() if i == account_id), account_id)

    def log(self, step: str, text: str, **details: Any) -> None:
        self.report.timeline.append(
            {
                "at": self.stack.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "step": step,
                "text": text,
                **({"details": details} if details else {}),
            }
        )

    def resource_arn(self, ref: str) -> str:
        if ref.startswith("arn:"):
            return ref
        if ref in self.aliases:
            return self.aliases[ref]
        raise ValueError(f"unknown resource {ref!r}: create it in an earlier step")

    # ------------------------------------------------------------------ running
    def run(self) -> Report:
        changed = self.stack.settings.changed()
        self.log(
            "settings",
            "emulation settings: "
            + ("; ".join(f"{block} {values}" for block, values in changed.items()) if changed else "defaults"),
        )
        for spec in self.scenario.deploy:
            self.deploy(spec)
        for step in self.scenario.steps:
            ((kind, args),) = step.items()
            STEP_KINDS[kind](self, args or {})
            self.after_step()
        self.finish()
        return self.report

    def after_step(self) -> None:
        for invocation in self.stack.deliver():
            self.log_invocation(invocation)
        for account in self.stack.deployments:
            self.stack.read_notifications(account)

    def log_invocation(self, invocation: Any) -> None:
        result = invocation.result if isinstance(invocation.result, dict) else {}
        if invocation.function == "TrackExecutionsFunction":
            self._log_tracking(invocation, result)
            return
        if invocation.function == "EstimateCostFunction" and result.get("status") in ("counted", "finalised"):
            execution = str(result.get("execution_arn", "")).rsplit("/", 1)[-1]
            self.log(
                "cost",
                f"owner {'finalises' if result['status'] == 'finalised' else 'updates'} the estimate of "
                f"{execution}: USD {Decimal(result.get('total') or 0):.4f}",
            )
            return
        if invocation.function == "WatchBudgetsFunction" and invocation.metrics.get("BudgetThresholdAlerted"):
            enforced = " and enforces the budget" if invocation.metrics.get("BudgetEnforced") else ""
            self.log(
                "budget",
                f"owner alerts {int(invocation.metrics['BudgetThresholdAlerted'])} budget threshold(s){enforced}",
            )
            return
        if invocation.function != "AcceptInvitationsFunction":
            return
        if invocation.error:
            self.log(
                "invoke",
                f"{invocation.function} in {self.alias_of(invocation.account)} failed "
                f"(attempt {invocation.attempt}): {invocation.error}",
            )
        elif result.get("status") == "invalid":
            self.log(
                "invoke",
                f"{invocation.function} in {self.alias_of(invocation.account)} rejected an invalid "
                f"event {invocation.event_id} (InvalidEvent metric)",
            )
        elif invocation.trigger.startswith("schedule:") and not any(
            result.get(k) for k in ("accepted", "held", "rejected", "expired", "problems", "invalid_records")
        ):
            self.quiet_sweeps += 1
        else:
            self.log(
                "invoke",
                f"{invocation.function} in {self.alias_of(invocation.account)} ({invocation.trigger}):"
                f" seen {result.get('seen', 0)}, accepted {result.get('accepted', 0)}, held {result.get('held', 0)},"
                f" rejected {result.get('rejected', 0)}, expired {result.get('expired', 0)}",
            )

    def _log_tracking(self, invocation: Any, result: dict[str, Any]) -> None:
        if invocation.error:
            self.log("invoke", f"TrackExecutionsFunction failed (attempt {invocation.attempt}): {invocation.error}")
        elif result.get("status") == "recorded" and (result.get("alerts") or result.get("source") != "unknown"):
            execution = str(result.get("execution_arn", "")).rsplit("/", 1)[-1]
            initiator = self.alias_of(str(result.get("initiator_account") or "")) or "?"
            alerts = f", alert due: {', '.join(result['alerts'])}" if result.get("alerts") else ""
            self.log(
                "track",
                f"owner records execution {execution}: started by {initiator} (source {result.get('source')}){alerts}",
            )
        elif result.get("status") in ("unverified", "invalid"):
            self.log("track", f"owner ignores an event: {result.get('status')} {result.get('reason', '')}")

    def deploy(self, spec: DeploySpec) -> None:
        account = self.account(spec.account)
        parameters = {"Mode": spec.mode, **{k: str(v) for k, v in spec.parameters.items()}}
        if spec.trust_policy is not None:
            self.put_trust_policy(account, spec.trust_policy_parameter, spec.trust_policy)
            parameters["TrustPolicyParameterName"] = spec.trust_policy_parameter
        deployment = self.stack.deploy(account, parameters)
        created = sorted(set(deployment.refs) - {r for r in deployment.refs if r.endswith(("RamStateChange", "Sweep"))})
        self.log(
            "deploy",
            f"{spec.account} ({account}) deploys pipeshare in {spec.mode} mode",
            parameters=parameters,
            resources=created,
            not_emulated=deployment.skipped,
        )

    def put_trust_policy(self, account: str, name: str, policy: Any) -> None:
        value = policy if isinstance(policy, str) else json.dumps(policy)
        self.stack.client(account, "ssm").put_parameter(Name=name, Value=value, Type="String", Overwrite=True)

    def finish(self) -> None:
        invitations = []
        for snapshot_invitation in self.stack.ram.snapshot().get("invitations", []):
            invitations.append(snapshot_invitation)
        records: dict[str, list[dict[str, Any]]] = {}
        for account, deployment in self.stack.deployments.items():
            if "ShareTable" in deployment.refs:
                records[self.alias_of(account)] = self.stack.table_items(account)
        recorded = {
            item["invitation_arn"]: item
            for items in records.values()
            for item in items
            if item.get("sk") == "STATE" and "invitation_arn" in item
        }
        summary = []
        for inv in invitations:
            arn = inv.get("arn")
            rec = recorded.get(arn, {})
            summary.append(
                {
                    "invitation_arn": arn,
                    "share_name": inv.get("shareName"),
                    "sender": self.alias_of(inv.get("sender", "")),
                    "receiver": self.alias_of(inv.get("receiver", "")),
                    "ram_status": inv.get("status"),
                    "expires_at": inv.get("expiresAt"),
                    "recorded_status": rec.get("status"),
                    "rule": rec.get("rule"),
                    "reason": rec.get("reason"),
                }
            )
        self.report.data = {
            "accounts": {alias: spec.model_dump() for alias, spec in self.scenario.accounts.items()},
            "invitations": summary,
            "records": records,
            "notifications": self.stack.notifications,
            "events": [
                {
                    "account": self.alias_of(e.account),
                    "source": e.event.get("source"),
                    "detail-type": e.event.get("detail-type"),
                    "id": e.event.get("id"),
                    "detail": e.event.get("detail"),
                    "dropped": e.dropped,
                    "matched": e.matched,
                    "delivered_at": e.at.strftime("%Y-%m-%dT%H:%M:%SZ") if e.at else None,
                }
                for e in self.stack.delivered
            ],
            "pending_events": [
                {
                    "account": self.alias_of(account),
                    "detail-type": event.get("detail-type"),
                    "id": event.get("id"),
                    "due": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                for due, account, event in self.stack.pending_events()
            ],
            "settings": self.stack.settings.model_dump(),
            "invocations": [i.as_dict() for i in self.stack.invocations()],
            "executions": self._executions(),
        }

    def _executions(self) -> list[dict[str, Any]]:
        rows = []
        for account, deployment in self.stack.deployments.items():
            if "OwnerTable" not in deployment.refs:
                continue
            for item in self.stack.table_items(account, "OwnerTable"):
                if item.get("item_type") != "execution":
                    continue
                rows.append(
                    {
                        "owner": self.alias_of(account),
                        "execution_arn": item["execution_arn"],
                        "status": item.get("status"),
                        "attribution_source": item.get("attribution_source"),
                        "initiator": self.alias_of(str(item.get("initiator_account") or "")) or None,
                        "candidates": [self.alias_of(c) for c in item.get("candidates") or []],
                        "actions": sorted(item.get("actions") or {}),
                    }
                )
        return rows


# ---------------------------------------------------------------------- steps
def _note(p: Player, args: dict[str, Any]) -> None:
    p.log("note", str(args.get("text", "")))


def _create_pipeline(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    name = args["name"]
    sagemaker = p.stack.client(account, "sagemaker")
    definition = args.get("definition") or {"Version": "2020-12-01", "Steps": []}
    arn = sagemaker.create_pipeline(
        PipelineName=name,
        PipelineDefinition=json.dumps(definition),
        RoleArn=f"arn:aws:iam::{account}:role/SageMakerPipelineExecRole",
        ClientRequestToken=f"create-pipeline-{name}".ljust(32, "0")[:128],
    )["PipelineArn"]
    p.aliases[f"pipeline:{name}"] = arn
    p.log("create_pipeline", f"{args['account']} creates pipeline {name}", arn=arn)


def _create_subnet(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    ec2 = p.stack.client(account, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    arn = f"arn:aws:ec2:{p.stack.region}:{account}:subnet/{subnet}"
    p.aliases[f"subnet:{args['name']}"] = arn
    p.log("create_subnet", f"{args['account']} creates subnet {args['name']}", arn=arn)


def _share(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    ram = p.stack.client(account, "ram")
    permission = args.get("permission", "read-only")
    request: dict[str, Any] = {
        "name": args["name"],
        "resourceArns": [p.resource_arn(r) for r in args.get("resources", [])],
        "principals": [p.account(x) for x in args.get("principals", [])],
        "allowExternalPrincipals": bool(args.get("allow_external_principals", True)),
    }
    if permission in PERMISSIONS and any(":pipeline/" in r for r in request["resourceArns"]):
        request["permissionArns"] = [PERMISSIONS[permission]]
    share = ram.create_resource_share(**request)["resourceShare"]
    p.aliases[f"share:{args['name']}"] = share["resourceShareArn"]
    p.log(
        "share",
        f"{args['account']} shares {', '.join(args.get('resources', []))} as {args['name']!r} with "
        f"{', '.join(args.get('principals', []))} ({permission})",
        share_arn=share["resourceShareArn"],
    )


def _drop_events(p: Player, args: dict[str, Any]) -> None:
    count = int(args.get("count", 1))
    p.stack.drop_next_events(count)
    p.log("drop_events", f"the next {count} event(s) are lost (RAM events are best effort)")


def _put_event(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    path = ROOT / args["file"]
    event = json.loads(path.read_text())
    if isinstance(event, dict):
        event.update(args.get("overrides", {}))
    p.stack.put_event(account, event)
    p.log("put_event", f"event {args['file']} delivered as-is to {args['account']}")


def _redeliver_events(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    count = int(args.get("count", 1))
    earlier = [e.event for e in p.stack.delivered if e.account == account and not e.dropped][-count:]
    if args.get("reverse"):
        earlier.reverse()  # out of order: newest first
    for event in earlier:
        p.stack.put_event(account, event)
    p.log(
        "redeliver_events", f"{len(earlier)} earlier event(s) of {args['account']} are delivered again (at least once)"
    )


def _advance(p: Player, args: dict[str, Any]) -> None:
    delta = timedelta(hours=float(args.get("hours", 0)), minutes=float(args.get("minutes", 0)))
    p.log("advance", f"the clock advances {delta}")
    p.quiet_sweeps = 0
    for invocation in p.stack.advance(delta):
        p.log_invocation(invocation)
    if p.quiet_sweeps:
        p.log("advance", f"{p.quiet_sweeps} scheduled sweep(s) found nothing new")


def _sweep(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    p.log("sweep", f"the scheduled sweep runs in {args['account']}")
    for invocation in p.stack.run_schedule(account):
        p.log_invocation(invocation)


def _set_trust_policy(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    deployment = p.stack.deployments[account]
    name = deployment.parameters.get("TrustPolicyParameterName") or "/pipeshare/trust-policy"
    p.put_trust_policy(account, name, args["policy"])
    p.log("set_trust_policy", f"{args['account']} updates its trust policy in SSM {name} (no redeploy)")


def _expect(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    share = args["share"]
    items = p.stack.table_items(account)
    states = [i for i in items if i.get("sk") == "STATE" and i.get("share_name") == share]
    actual = states[0].get("status") if states else "ABSENT"
    ok = actual == args["status"]
    if ok and "rule" in args:
        ok = states[0].get("rule") == args["rule"]
    text = f"{args['account']} records share {share!r} as {args['status']}" + (
        f" ({args['rule']})" if "rule" in args else ""
    )
    p.report.expectations.append(
        {"ok": ok, "text": text, "actual": actual, "rule": states[0].get("rule") if states else None}
    )
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {actual}"))


def _expect_notification(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    messages = p.stack.read_notifications(account)
    matches = [
        m
        for m in messages
        if isinstance(m["message"], dict)
        and m["message"].get("event") == args["event"]
        and ("share" not in args or m["message"].get("share_name") == args["share"])
    ]
    expected = int(args.get("count", 1))
    ok = len(matches) == expected
    text = f"{args['account']} got {expected} {args['event']} notification(s)" + (
        f" for {args['share']!r}" if "share" in args else ""
    )
    p.report.expectations.append({"ok": ok, "text": text, "actual": len(matches)})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {len(matches)}"))


def _start_execution(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    arn = p.resource_arn(f"pipeline:{args['pipeline']}")
    own = arn.split(":")[4] == account
    sagemaker = p.stack.client(account, "sagemaker")
    label = args.get("as", f"run-{len(p.executions) + 1}")
    try:
        execution = sagemaker.start_pipeline_execution(
            PipelineName=arn.rsplit("/", 1)[1] if own else arn,
            ClientRequestToken=f"{label}-{account}".ljust(32, "0")[:128],
        )["PipelineExecutionArn"]
    except sagemaker.exceptions.ClientError as exc:
        code = exc.response["Error"]["Code"]
        p.denied.append((label, code))
        p.log("start_execution", f"{args['account']} tries to start {args['pipeline']}: {code}")
        return
    p.executions[label] = execution
    p.log(
        "start_execution",
        f"{args['account']} starts {args['pipeline']} ({'by name' if own else 'by ARN'}) as {label}",
        execution_arn=execution,
    )


def _stop_execution(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    p.stack.client(account, "sagemaker").stop_pipeline_execution(
        PipelineExecutionArn=p.executions[args["execution"]],
        ClientRequestToken=f"stop-{args['execution']}".ljust(32, "0"),
    )
    p.log("stop_execution", f"{args['account']} stops {args['execution']}")


def _retry_execution(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    p.stack.client(account, "sagemaker").retry_pipeline_execution(
        PipelineExecutionArn=p.executions[args["execution"]],
        ClientRequestToken=f"retry-{args['execution']}".ljust(32, "0"),
    )
    p.log("retry_execution", f"{args['account']} retries {args['execution']}")


def _owner_cloudtrail_copy(p: Player, args: dict[str, Any]) -> None:
    p.stack.sagemaker.owner_cloudtrail_copy = bool(args.get("enabled", True))
    p.log(
        "owner_cloudtrail_copy",
        f"owner-account copies of cross-account CloudTrail records: {args.get('enabled', True)}",
    )


def _expect_execution(p: Player, args: dict[str, Any]) -> None:
    owner = p.account(args["owner"])
    label = args["execution"]
    execution = p.executions.get(label, "")
    items = [
        i
        for i in p.stack.table_items(owner, "OwnerTable")
        if i.get("item_type") == "execution" and i["execution_arn"].lower() == execution.lower()
    ]
    item = items[0] if items else {}
    checks = {
        "source": item.get("attribution_source"),
        "initiator": p.alias_of(str(item.get("initiator_account") or "")) or None,
        "status": item.get("status"),
        "candidates": sorted(p.alias_of(str(c)) for c in item.get("candidates") or []),
    }
    if "candidates" in args:
        args = {**args, "candidates": sorted(args["candidates"])}
    wanted = {k: args[k] for k in ("source", "initiator", "status", "candidates") if k in args}
    ok = bool(item) and all(checks[k] == v for k, v in wanted.items())
    text = f"{args['owner']} records {label} with " + ", ".join(f"{k} {v}" for k, v in wanted.items())
    p.report.expectations.append({"ok": ok, "text": text, "actual": checks})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {checks}"))


def _expect_alerts(p: Player, args: dict[str, Any]) -> None:
    owner = p.account(args["owner"])
    execution = p.executions.get(args.get("execution", ""), "")
    alerts = [
        n
        for n in p.stack.read_notifications(owner)
        if isinstance(n["message"], dict)
        and str(n["message"].get("schema", "")).startswith("pipeshare.owner.execution-alert")
        and (not execution or n["message"].get("execution_arn", "").lower() == execution.lower())
        and ("action" not in args or n["message"].get("action") == args["action"])
        and ("attempt" not in args or n["message"].get("attempt") == args["attempt"])
        and ("event" not in args or n["message"].get("event") == args["event"])
        and ("consumer" not in args or n["message"].get("consumer_account") == p.account(args["consumer"]))
    ]
    ok = len(alerts) == int(args.get("count", 1))
    text = (
        f"{args['owner']} got {args.get('count', 1)} execution alert(s)"
        + (f" for {args['execution']}" if "execution" in args else "")
        + (f" ({args['action']})" if "action" in args else "")
        + (f" attempt {args['attempt']}" if "attempt" in args else "")
        + (f" event {args['event']}" if "event" in args else "")
        + (f" naming {args['consumer']}" if "consumer" in args else "")
    )
    p.report.expectations.append({"ok": ok, "text": text, "actual": len(alerts)})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {len(alerts)}"))


def _expect_denied(p: Player, args: dict[str, Any]) -> None:
    label = args["execution"]
    codes = [code for name, code in p.denied if name == label]
    ok = codes == [args.get("code", "AccessDeniedException")] and label not in p.executions
    text = f"the start of {label} was refused with {args.get('code', 'AccessDeniedException')}"
    p.report.expectations.append({"ok": ok, "text": text, "actual": codes})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {codes}"))


def _define_steps(p: Player, args: dict[str, Any]) -> None:
    from pipeshare_local.sagemaker import StepSpec

    account = p.account(args["account"])
    specs = [
        StepSpec(**{k: tuple(map(tuple, v)) if k == "instance_groups" else v for k, v in step.items()})
        for step in args["steps"]
    ]
    p.stack.sagemaker.define_steps(account, p.stack.region, args["pipeline"], specs)
    p.log(
        "define_steps",
        f"{args['pipeline']} runs "
        + ", ".join(
            f"{s.name} ({s.type}{', cached' if s.cache_hit else ''}{', spot' if s.spot else ''}"
            + (f", max {s.max_runtime_seconds} s" if s.max_runtime_seconds else "")  # the step's job limit
            + ")"
            for s in specs
        ),
    )


def _set_budget_policy(p: Player, args: dict[str, Any]) -> None:
    account = p.account(args["account"])
    name = p.stack.deployments[account].parameters.get("BudgetPolicyParameterName") or "/pipeshare/budgets"
    value = args["policy"] if isinstance(args["policy"], str) else json.dumps(args["policy"])
    p.stack.client(account, "ssm").put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    p.log("set_budget_policy", f"{args['account']} sets its budget policy in SSM {name} (no redeploy)")


def _owner_items(p: Player, owner: str) -> list[dict[str, Any]]:
    return p.stack.table_items(p.account(owner), "OwnerTable")


def _expect_estimate(p: Player, args: dict[str, Any]) -> None:
    """An execution's estimate: `final`, `complete`, `attempt` (the last attempt finalised), total within `min_usd` /
    `max_usd`, and `unpriced` (the instance types nobody could price)."""
    execution = p.executions.get(args["execution"], "").lower()
    items = {i["sk"]: i for i in _owner_items(p, args["owner"]) if i["pk"] == f"EXECUTION#{execution}"}
    estimate = items.get("ESTIMATE", {})
    total = Decimal(str(estimate.get("total", 0)))
    checks = {
        "final": lambda: estimate.get("final") is args["final"],
        "complete": lambda: estimate.get("complete") is args["complete"],
        "attempt": lambda: int(estimate.get("attempt") or 0) == int(args["attempt"]),
        "min_usd": lambda: total >= Decimal(str(args["min_usd"])),
        "max_usd": lambda: total <= Decimal(str(args["max_usd"])),
        "unpriced": lambda: sorted(estimate.get("unpriced") or []) == sorted(args["unpriced"]),
    }
    unknown = sorted(set(args) - set(checks) - {"owner", "execution"})
    if unknown:
        raise ValueError(f"expect_estimate: unknown key(s) {', '.join(unknown)}")
    ok = bool(estimate) and all(check() for key, check in checks.items() if key in args)
    shown = {k: v for k, v in args.items() if k in checks}
    text = f"{args['owner']} estimates {args['execution']} " + json.dumps(shown, sort_keys=True, default=str)
    actual = {
        "total": str(total),
        "final": estimate.get("final"),
        "complete": estimate.get("complete"),
        "attempt": str(estimate.get("attempt")),
        "unpriced": estimate.get("unpriced"),
    }
    p.report.expectations.append({"ok": ok, "text": text, "actual": actual})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + f" (estimate {json.dumps(actual, default=str)})")


def _set_emulation(p: Player, args: dict[str, Any]) -> None:
    """Change emulation settings from now on (blocks as at the top level; trails keyed by alias or account ID)."""
    for block, values in args.items():
        if block not in ("cloudtrail", "sagemaker", "ram"):
            raise ValueError(f"set_emulation: unknown block {block!r} (cloudtrail, sagemaker, ram)")
        target = getattr(p.stack.settings, block)
        for key, value in values.items():
            if block == "cloudtrail" and key == "trails":
                value = {**target.trails, **{p.account(k): bool(v) for k, v in value.items()}}
            setattr(target, key, value)  # validated on assignment
    p.log("set_emulation", "emulation settings from now on: " + json.dumps(args, sort_keys=True))


def _spend(p: Player, owner: str, consumer: str) -> Decimal:
    items = [i for i in _owner_items(p, owner) if i["pk"].startswith("SPEND#") and i["sk"] == f"CONSUMER#{consumer}"]
    return sum((Decimal(str(i.get("total", 0))) for i in items), Decimal(0))


def _expect_spend(p: Player, args: dict[str, Any]) -> None:
    """The consumer's month-to-date spend (every month): within min_usd / max_usd, and/or the same as (or `above`)
    what it was when the expectation labelled `unchanged_since` was checked; `as` labels this one."""
    consumer = p.account(args["consumer"])
    spend = _spend(p, args["owner"], consumer)
    ok = spend >= Decimal(str(args.get("min_usd", "-Infinity"))) and spend <= Decimal(
        str(args.get("max_usd", "Infinity"))
    )
    if "unchanged_since" in args:
        ok = ok and spend == p.spend_marks[args["unchanged_since"]]
    if "above" in args:
        ok = ok and spend > p.spend_marks[args["above"]]
    if "as" in args:
        p.spend_marks[args["as"]] = spend
    bounds = [f"{k.split('_')[0]} USD {args[k]}" for k in ("min_usd", "max_usd") if k in args]
    if "unchanged_since" in args:
        bounds.append(f"unchanged since {args['unchanged_since']}")
    if "above" in args:
        bounds.append(f"above what it was at {args['above']}")
    text = f"{args['owner']} counts {args['consumer']}'s spend " + ", ".join(bounds)
    p.report.expectations.append({"ok": ok, "text": text, "actual": str(spend)})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + f" (USD {spend:.4f})")


def _expect_grants(p: Player, args: dict[str, Any]) -> None:
    """The owner's inventory: how many grants a consumer holds on a pipeline, and whether one allows execution."""
    consumer = p.account(args["consumer"])
    pipeline = p.resource_arn(f"pipeline:{args['pipeline']}").lower()
    grants = [
        i
        for i in _owner_items(p, args["owner"])
        if i.get("item_type") == "grant" and i["consumer"] == consumer and i["pipeline_arn"].lower() == pipeline
    ]
    actual = {"count": len(grants), "allow_execution": any(g.get("allow_execution") for g in grants)}
    wanted = {k: args[k] for k in ("count", "allow_execution") if k in args}
    ok = all(actual[k] == v for k, v in wanted.items())
    text = f"{args['owner']} lists {args['consumer']} on {args['pipeline']} with " + ", ".join(
        f"{k} {v}" for k, v in wanted.items()
    )
    p.report.expectations.append({"ok": ok, "text": text, "actual": actual})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {actual}"))


_OWNER_MESSAGE_SCHEMAS = {
    "finish": "pipeshare.owner.execution-cost",
    "threshold": "pipeshare.owner.budget-threshold",
    "enforcement": "pipeshare.owner.budget-enforcement",
    "alert": "pipeshare.owner.execution-alert",
}


def _path(value: Any, dotted: str) -> Any:
    """`a.b.0.c` in nested dicts and lists (None when absent)."""
    for part in dotted.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _expect_owner_messages(p: Player, args: dict[str, Any]) -> None:
    """Owner messages of one kind (finish | threshold | enforcement | alert), optionally only those about one
    `execution` (alias) or `consumer` (alias), whose subject contains `subject_contains`, and whose body has the
    values in `where` ({dotted.path: value}); `count` of them (default 1)."""
    owner = p.account(args["owner"])
    schema = _OWNER_MESSAGE_SCHEMAS[args["kind"]]
    execution = p.executions.get(args.get("execution", ""), args.get("execution", "")).lower()
    consumer = p.account(args["consumer"]) if "consumer" in args else None
    where = dict(args.get("where") or {})
    found = [
        n
        for n in p.stack.read_notifications(owner)
        if isinstance(n["message"], dict)
        and str(n["message"].get("schema", "")).startswith(schema)
        and (not execution or execution in json.dumps(n["message"]).lower())
        and (consumer is None or n["message"].get("consumer_account") == consumer)
        and str(args.get("subject_contains", "")) in str(n.get("subject") or "")
        and all(_path(n["message"], k) == v for k, v in where.items())
    ]
    ok = len(found) == int(args.get("count", 1))
    text = (
        f"{args['owner']} got {args.get('count', 1)} {args['kind']} message(s)"
        + (f" about {args['execution']}" if "execution" in args else "")
        + (f" naming {args['consumer']}" if consumer else "")
        + (f" with subject containing {args['subject_contains']!r}" if "subject_contains" in args else "")
        + (f" where {json.dumps(where, sort_keys=True)}" if where else "")
    )
    p.report.expectations.append(
        {"ok": ok, "text": text, "actual": len(found), "subjects": [n.get("subject") for n in found]}
    )
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {len(found)}"))


STEP_KINDS: dict[str, Callable[[Player, dict[str, Any]], None]] = {
    "note": _note,
    "create_pipeline": _create_pipeline,
    "create_subnet": _create_subnet,
    "share": _share,
    "drop_events": _drop_events,
    "put_event": _put_event,
    "redeliver_events": _redeliver_events,
    "advance": _advance,
    "sweep": _sweep,
    "set_trust_policy": _set_trust_policy,
    "expect": _expect,
    "expect_notification": _expect_notification,
    "start_execution": _start_execution,
    "stop_execution": _stop_execution,
    "retry_execution": _retry_execution,
    "owner_cloudtrail_copy": _owner_cloudtrail_copy,
    "expect_execution": _expect_execution,
    "expect_alerts": _expect_alerts,
    "expect_denied": _expect_denied,
    "define_steps": _define_steps,
    "set_budget_policy": _set_budget_policy,
    "expect_estimate": _expect_estimate,
    "expect_owner_messages": _expect_owner_messages,
    "set_emulation": _set_emulation,
    "expect_spend": _expect_spend,
    "expect_grants": _expect_grants,
}


def load_scenario(path: Path) -> Scenario:
    try:
        return Scenario.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        raise SystemExit(f"{path}: invalid scenario:\n{exc}") from None


def run_scenario(scenario: Scenario) -> Report:
    with LocalStack(region=scenario.region, start=scenario.start, settings=scenario.emulation_settings()) as stack:
        return Player(scenario, stack).run()
