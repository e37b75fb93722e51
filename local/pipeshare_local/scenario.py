"""Scenarios: a YAML story played on the local stack (accounts, deployments, steps, expectations) and its report.

The format is documented in docs/scenarios.md. Every step talks to the local stack through real boto3 clients;
events produced by the emulated services are delivered after each step, unless the scenario drops them.

A scenario is input like any other: `load_scenario` validates all of it before anything runs. Each step kind has a
pydantic model of its arguments (unknown keys and wrong types refused), the accounts, resource aliases, execution
labels and spend marks a step names must be declared at the top or created by an earlier step, and deploy
parameters must be template.yaml's. Every problem is reported as `FILE:LINE: WHERE: WHAT` (`ScenarioError`).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.settings import (
    SCENARIO_CLOUDTRAIL_DELAY_MINUTES,
    CloudTrailSettings,
    EmulationSettings,
    RamSettings,
    SageMakerSettings,
)
from pipeshare_local.stack import LocalStack
from pipeshare_local.template import ROOT, Resolver, load_template

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

    def template_parameters(self) -> dict[str, str]:
        """The parameters the deployment gets: Mode, the given ones, and the trust policy's parameter name."""
        parameters = {"Mode": self.mode, **{k: str(v) for k, v in self.parameters.items()}}
        if self.trust_policy is not None:
            parameters["TrustPolicyParameterName"] = self.trust_policy_parameter
        return parameters


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
    steps: list[ScenarioStep]  # each a one-key mapping {kind: arguments}, validated by the kind's model

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

    @model_validator(mode="after")
    def _references_known(self) -> Scenario:
        problems = reference_problems(self)
        if problems:
            raise PydanticCustomError(
                "scenario_reference",
                "{text}",
                {"text": "; ".join(f"{where(loc)}: {what}" for loc, what in problems), "problems": problems},
            )
        return self

    # the fault plan: a list of pipeshare_local.settings.Fault (docs/scenarios.md "Faults"), checked as the settings'
    faults: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("faults")
    @classmethod
    def _faults_valid(cls, faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [fault.model_dump(exclude_none=True) for fault in EmulationSettings(faults=faults).faults]

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
            faults=self.faults,
        )


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invoked_at(invocation: Any) -> datetime:
    """The scenario time an invocation ran (runtime.Invocation.at: ISO 8601, taken on the scenario clock)."""
    return datetime.fromisoformat(invocation.at)


def _changes_text(changes: Mapping[str, int]) -> str:
    """What an invocation changed, in words: records written, messages published, then other operations."""
    written = sum(n for name, n in changes.items() if name.startswith("dynamodb:"))
    published = changes.get("sns:Publish", 0)
    parts = [f"{written} record(s) written"] if written else []
    if published:
        parts.append(f"{published} message(s) published")
    parts += [
        name.split(":", 1)[1] + (f" x{n}" if n > 1 else "")
        for name, n in sorted(changes.items())
        if not name.startswith("dynamodb:") and name != "sns:Publish"
    ]
    return ", ".join(parts)


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
        self.quiet: list[Any] = []  # this step's quiet invocations (changed nothing), counted by log_quiet
        self.quiet_invocations = 0  # in the whole run
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

    def log(self, step: str, text: str, *, at: datetime | None = None, **details: Any) -> None:
        """One timeline entry, stamped with `at` (an invocation's own scenario time) or now."""
        self.report.timeline.append(
            {
                "at": _stamp(at or self.stack.clock.now()),
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
            STEP_KINDS[step.kind].play(self, step.args)
            self.after_step()
        self.finish()
        return self.report

    def after_step(self) -> None:
        for invocation in self.stack.deliver():
            self.log_invocation(invocation)
        for account in self.stack.deployments:
            self.stack.read_notifications(account)
        self.log_quiet()

    def log_quiet(self) -> None:
        """One entry counting the step's quiet invocations (those that changed nothing), by function."""
        if not self.quiet:
            return
        by_function: dict[str, int] = {}
        for invocation in self.quiet:
            by_function[invocation.function] = by_function.get(invocation.function, 0) + 1
        count = len(self.quiet)
        first, last = _stamp(_invoked_at(self.quiet[0])), _stamp(_invoked_at(self.quiet[-1]))
        self.quiet_invocations += count
        self.quiet = []
        self.log(
            "quiet",
            f"{count} invocation(s) changed nothing: "
            + ", ".join(f"{name.removesuffix('Function')} x{n}" for name, n in sorted(by_function.items())),
            count=count,
            functions=by_function,
            first=first,
            last=last,
        )

    def log_invocation(self, invocation: Any) -> None:
        """An invocation that changed something (a successful write: records written, messages published, a RAM
        answer, a stopped execution...), failed, or refused its event as invalid is listed at its own scenario time,
        with what it changed; the others are quiet: counted (log_quiet), not listed."""
        result = invocation.result if isinstance(invocation.result, dict) else {}
        invalid = bool(invocation.metrics.get("InvalidEvent")) or result.get("status") == "invalid"
        if not (invocation.error or invocation.changes or invalid):
            self.quiet.append(invocation)
            return
        step, text = self._describe(invocation, result, invalid)
        changed = _changes_text(invocation.changes)
        self.log(
            step,
            text + (f" - {changed}" if changed else ""),
            at=_invoked_at(invocation),
            function=invocation.function,
            account=self.alias_of(invocation.account),
            trigger=invocation.trigger,
            attempt=invocation.attempt,
            changes=invocation.changes,
        )

    def _describe(self, invocation: Any, result: dict[str, Any], invalid: bool) -> tuple[str, str]:
        """(step, text) of a listed invocation: what it did, in the product's words where its result says it."""
        where = f"{invocation.function} in {self.alias_of(invocation.account)}"
        if invocation.error:
            return "invoke", f"{where} failed (attempt {invocation.attempt}): {invocation.error}"
        if invalid:
            return "invoke", f"{where} rejected an invalid event {invocation.event_id} (InvalidEvent metric)"
        function = invocation.function
        execution = str(result.get("execution_arn", "")).rsplit("/", 1)[-1]
        if function == "TrackExecutionsFunction" and result.get("status") == "recorded":
            if result.get("source") in (None, "unknown"):
                return "track", f"owner records execution {execution}: initiator not known yet"
            initiator = self.alias_of(str(result.get("initiator_account") or "")) or "?"
            alerts = f", alert due: {', '.join(result['alerts'])}" if result.get("alerts") else ""
            source = result.get("source")
            return "track", f"owner records execution {execution}: started by {initiator} (source {source}){alerts}"
        if function == "EstimateCostFunction" and result.get("status") in ("counted", "finalised"):
            verb = "finalises" if result["status"] == "finalised" else "updates"
            return "cost", f"owner {verb} the estimate of {execution}: USD {Decimal(result.get('total') or 0):.4f}"
        if function == "WatchBudgetsFunction" and invocation.metrics.get("BudgetThresholdAlerted"):
            enforced = " and enforces the budget" if invocation.metrics.get("BudgetEnforced") else ""
            alerted = int(invocation.metrics["BudgetThresholdAlerted"])
            return "budget", f"owner alerts {alerted} budget threshold(s){enforced}"
        if function == "AcceptInvitationsFunction":
            counts = ", ".join(f"{k} {result.get(k, 0)}" for k in ("seen", "accepted", "held", "rejected", "expired"))
            return "invoke", f"{where} ({invocation.trigger.split(':', 1)[0]}): {counts}"
        return "invoke", f"{where} ({invocation.trigger.split(':', 1)[0]})"

    def deploy(self, spec: DeploySpec) -> None:
        account = self.account(spec.account)
        parameters = spec.template_parameters()
        if spec.trust_policy is not None:
            self.put_trust_policy(account, spec.trust_policy_parameter, spec.trust_policy)
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
            "quiet_invocations": self.quiet_invocations,
            **self._owner_sections(),
        }

    def _owner_sections(self) -> dict[str, Any]:
        """The owner side, read from each owner deployment's OwnerTable: executions (with the attribution evidence),
        estimates, month-to-date spend, the budget ledger (docs/scenarios.md, Report schema)."""
        labels = {arn.lower(): label for label, arn in self.executions.items()}
        shares = {arn.lower(): alias[6:] for alias, arn in self.aliases.items() if alias.startswith("share:")}
        sections: dict[str, list[dict[str, Any]]] = {key: [] for key in ("executions", "estimates", "spend")}
        sections["budget_ledger"] = []
        for account, deployment in self.stack.deployments.items():
            if "OwnerTable" not in deployment.refs:
                continue
            owner = self.alias_of(account)
            items = self.stack.table_items(account, "OwnerTable")
            alerts = {  # a ledger record's message: ALERT#<its last key>, in the same partition
                (i["pk"], i["sk"].removeprefix("ALERT#")): i
                for i in items
                if i["pk"].startswith("BUDGET#") and i["sk"].startswith("ALERT#")
            }
            for item in items:
                kind = item.get("item_type")
                if kind == "execution":
                    sections["executions"].append(self._execution_row(owner, item, labels))
                elif kind == "estimate":
                    sections["estimates"].append(self._estimate_row(owner, item, labels))
                elif item["pk"].startswith("SPEND#") and "kind" in item:
                    sections["spend"].append(self._spend_row(owner, item))
                elif kind == "budget-ledger":
                    alert = alerts.get((item["pk"], item["sk"]))
                    sections["budget_ledger"].append(self._ledger_row(owner, item, alert, labels, shares))
        # the ledger in the order things happened (thresholds before the enforcement they led to)
        sections["budget_ledger"].sort(key=lambda r: (r["owner"], str(r["at"]), r["action"] != "threshold", r["key"]))
        return sections

    def _account_alias(self, account: Any) -> str | None:
        return self.alias_of(str(account)) if account and account != "-" else None

    def _execution_row(self, owner: str, item: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
        actions = item.get("actions") or {}
        return {
            "owner": owner,
            "execution_arn": item["execution_arn"],
            "label": labels.get(item["execution_arn"].lower()),
            "pipeline": _pipeline_name(item.get("pipeline_arn")),
            "status": item.get("status"),
            "attempt": item.get("attempt"),
            "started_at": item.get("started_at"),
            "ended_at": item.get("ended_at"),
            "attribution_source": item.get("attribution_source"),
            "initiator": self._account_alias(item.get("initiator_account")),
            "initiator_principal": item.get("initiator_principal"),
            "candidates": [self.alias_of(c) for c in item.get("candidates") or []],
            "actions": sorted(actions),
            "evidence": {
                name: {
                    "source": claim.get("source"),
                    "account": self._account_alias(claim.get("account")),
                    "principal": claim.get("principal"),
                    "event_id": claim.get("event_id"),
                    "candidates": [self.alias_of(c) for c in claim.get("candidates") or []],
                    "at": claim.get("at"),
                }
                for name, claim in sorted(actions.items())
                if isinstance(claim, dict)
            },
        }

    def _estimate_row(self, owner: str, item: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
        execution_arn = item["pk"].removeprefix("EXECUTION#")
        return {
            "owner": owner,
            "execution_arn": execution_arn,
            "label": labels.get(execution_arn.lower()),
            "pipeline": _pipeline_name(item.get("pipeline_arn")),
            "consumer": self._account_alias(item.get("consumer_account")),
            "spend_holder": item.get("spend_holder"),
            "month": item.get("month"),
            "total_usd": _usd_text(item.get("total")),
            "final": bool(item.get("final")),
            "complete": bool(item.get("complete")),
            "unpriced": sorted(item.get("unpriced") or []),
            "attempt": item.get("attempt"),
            "status": item.get("status"),
        }

    def _spend_row(self, owner: str, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "owner": owner,
            "month": item.get("month"),
            "line": str(item["kind"]).removesuffix("-total"),
            "consumer": self._account_alias(item.get("consumer_account")),
            "pipeline": _pipeline_name(item.get("pipeline_arn")),
            "total_usd": _usd_text(item.get("total")),
            # consumer lines: the part attributed by evidence (none written yet: 0)
            "confirmed_usd": _usd_text(item.get("confirmed_total", 0)) if item["kind"] == "consumer-total" else None,
        }

    def _ledger_row(
        self,
        owner: str,
        item: dict[str, Any],
        alert: dict[str, Any] | None,
        labels: dict[str, str],
        shares: dict[str, str],
    ) -> dict[str, Any]:
        subject = item["pk"].split("#", 2)[2]  # BUDGET#<month>#<consumer | UNATTRIBUTED#<pipeline arn>>
        key = str(item["sk"])
        rest, failed = (key.removeprefix("FAILED#"), True) if key.startswith("FAILED#") else (key, False)
        rest, dry_run = (rest.removeprefix("DRYRUN#"), True) if rest.startswith("DRYRUN#") else (rest, False)
        kind, _, target = rest.partition("#")
        row: dict[str, Any] = {
            "owner": owner,
            "month": item.get("month"),
            "consumer": None if subject.startswith("UNATTRIBUTED#") else self.alias_of(subject),
            "pipeline": _pipeline_name(subject.removeprefix("UNATTRIBUTED#"))
            if subject.startswith("UNATTRIBUTED#")
            else None,
            "action": _LEDGER_ACTIONS.get(kind, kind.lower()),
            "dry_run": dry_run,
            "failed": failed,
            "key": key,
            "at": item.get("at"),
            "spend_usd": _usd_text(item.get("spend_total")),
            "monthly_limit_usd": _usd_text(item.get("monthly_limit")),
            "alert_subject": alert.get("subject") if alert else None,
        }
        if kind == "THRESHOLD":
            row["threshold_percent"] = int(target)
        elif kind == "STOP":
            execution_arn, _, attempt = target.rpartition("#")
            row.update(execution_arn=execution_arn, label=labels.get(execution_arn), attempt=int(attempt))
        elif kind in ("SHARE", "READONLY", "NOTE"):
            share_arn, _, principal = target.removeprefix("SHARE#").partition("#")
            row.update(share=shares.get(share_arn, share_arn), principal=self._account_alias(principal))
        return row


_LEDGER_ACTIONS = {  # budget ledger key kinds (README, OwnerTable: budget ledger) -> the report's action names
    "THRESHOLD": "threshold",
    "STOP": "stop-execution",
    "SHARE": "remove-from-share",
    "READONLY": "downgrade-to-read-only",
    "NOTE": "note-group-share",
}


def _pipeline_name(arn: Any) -> str | None:
    return str(arn).rsplit("/", 1)[-1] if arn and ":pipeline/" in str(arn) else None


def _usd_text(value: Any) -> str | None:
    """A USD amount read back from DynamoDB (a number) as a decimal string, as the product's messages write them."""
    return None if value is None else str(Decimal(str(value)))


# ---------------------------------------------------------------------- step arguments
@dataclass(frozen=True)
class Ref:
    """Marks a step field that names something declared at the top or created by an earlier step.

    account: an alias under `accounts:` (or a 12-digit account ID); deployed: such an account with a `deploy:` entry;
    resource: an alias an earlier step created (pipeline:NAME, subnet:NAME, share:NAME) or an ARN; pipeline: a
    pipeline an earlier create_pipeline created; own_pipeline: the same, created by the step's own `account`;
    execution: the `as` label of an earlier start_execution; spend_mark: the `as` label of an earlier expect_spend.
    """

    kind: Literal["account", "deployed", "resource", "pipeline", "own_pipeline", "execution", "spend_mark"]


@dataclass(frozen=True)
class Creates:
    """Marks a step field whose value names what the step creates: a resource alias (prefix + value), an execution
    label or a spend mark (later steps refer to it)."""

    kind: Literal["resource", "execution", "spend_mark"]
    prefix: str = ""


ACCOUNT = Ref("account")
DEPLOYED = Ref("deployed")
RESOURCE = Ref("resource")
PIPELINE = Ref("pipeline")
OWN_PIPELINE = Ref("own_pipeline")
EXECUTION = Ref("execution")
SPEND_MARK = Ref("spend_mark")

FieldPath = tuple[str | int, ...]


class StepArgs(BaseModel):
    """A step's arguments. Unknown keys and wrong types are refused when the scenario is loaded; the fields marked
    with `Ref` are checked against the accounts and against what earlier steps created (`Scenario` validation)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def references(self) -> Iterator[tuple[FieldPath, Ref, str]]:
        """(field path, reference kind, value) of every reference the arguments make."""
        for name, info in type(self).model_fields.items():
            ref = next((m for m in info.metadata if isinstance(m, Ref)), None)
            value = getattr(self, name)
            if ref is None or value is None:
                continue
            key = info.alias or name
            if isinstance(value, list):
                yield from (((key, index), ref, item) for index, item in enumerate(value))
            else:
                yield (key,), ref, value

    def creations(self) -> Iterator[tuple[Creates, str | None]]:
        """(what, value) of everything the step creates (None: a name the player chooses)."""
        for name, info in type(self).model_fields.items():
            for marker in info.metadata:
                if isinstance(marker, Creates):
                    yield marker, getattr(self, name)


def _usd(value: Any) -> Decimal:
    """A USD amount as scenarios write it: a decimal string ("0.05") or a number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError('a USD amount is a decimal string such as "0.05" or a number')
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f'{value!r} is not a USD amount (a decimal string such as "0.05")') from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite USD amount")
    return amount


Usd = Annotated[Decimal, BeforeValidator(_usd)]
Count = Annotated[int, Field(ge=0)]


# ---------------------------------------------------------------------- steps
class NoteArgs(StepArgs):
    text: str = ""


def _note(p: Player, args: NoteArgs) -> None:
    p.log("note", args.text)


class CreatePipelineArgs(StepArgs):
    account: Annotated[str, ACCOUNT]
    name: Annotated[str, Creates("resource", "pipeline:")]
    definition: dict[str, Any] | None = None  # the pipeline definition (default: no steps; see define_steps)


def _create_pipeline(p: Player, args: CreatePipelineArgs) -> None:
    account = p.account(args.account)
    name = args.name
    sagemaker = p.stack.client(account, "sagemaker")
    definition = args.definition or {"Version": "2020-12-01", "Steps": []}
    arn = sagemaker.create_pipeline(
        PipelineName=name,
        PipelineDefinition=json.dumps(definition),
        RoleArn=f"arn:aws:iam::{account}:role/SageMakerPipelineExecRole",
        ClientRequestToken=f"create-pipeline-{name}".ljust(32, "0")[:128],
    )["PipelineArn"]
    p.aliases[f"pipeline:{name}"] = arn
    p.log("create_pipeline", f"{args.account} creates pipeline {name}", arn=arn)


class CreateSubnetArgs(StepArgs):
    account: Annotated[str, ACCOUNT]
    name: Annotated[str, Creates("resource", "subnet:")]


def _create_subnet(p: Player, args: CreateSubnetArgs) -> None:
    account = p.account(args.account)
    ec2 = p.stack.client(account, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    arn = f"arn:aws:ec2:{p.stack.region}:{account}:subnet/{subnet}"
    p.aliases[f"subnet:{args.name}"] = arn
    p.log("create_subnet", f"{args.account} creates subnet {args.name}", arn=arn)


class ShareArgs(StepArgs):
    account: Annotated[str, ACCOUNT]
    name: Annotated[str, Creates("resource", "share:")]
    resources: Annotated[list[str], RESOURCE] = Field(default_factory=list)  # aliases of earlier steps, or ARNs
    principals: Annotated[list[str], ACCOUNT] = Field(default_factory=list)
    permission: Literal["read-only", "allow-execution"] = "read-only"
    allow_external_principals: bool = True


def _share(p: Player, args: ShareArgs) -> None:
    account = p.account(args.account)
    ram = p.stack.client(account, "ram")
    request: dict[str, Any] = {
        "name": args.name,
        "resourceArns": [p.resource_arn(r) for r in args.resources],
        "principals": [p.account(x) for x in args.principals],
        "allowExternalPrincipals": args.allow_external_principals,
    }
    if any(":pipeline/" in r for r in request["resourceArns"]):
        request["permissionArns"] = [PERMISSIONS[args.permission]]
    share = ram.create_resource_share(**request)["resourceShare"]
    p.aliases[f"share:{args.name}"] = share["resourceShareArn"]
    p.log(
        "share",
        f"{args.account} shares {', '.join(args.resources)} as {args.name!r} with "
        f"{', '.join(args.principals)} ({args.permission})",
        share_arn=share["resourceShareArn"],
    )


class DropEventsArgs(StepArgs):
    count: Count = 1


def _drop_events(p: Player, args: DropEventsArgs) -> None:
    p.stack.drop_next_events(args.count)
    p.log("drop_events", f"the next {args.count} event(s) are lost (RAM events are best effort)")


class PutEventArgs(StepArgs):
    account: Annotated[str, ACCOUNT]
    file: str  # relative to the repository root, e.g. events/ram_invitation_pending.json
    overrides: dict[str, Any] = Field(default_factory=dict)  # top-level keys of the event replaced

    @field_validator("file")
    @classmethod
    def _file_exists(cls, value: str) -> str:
        if not (ROOT / value).is_file():
            raise ValueError(f"no file {value} under the repository root {ROOT}")
        return value


def _put_event(p: Player, args: PutEventArgs) -> None:
    account = p.account(args.account)
    event = json.loads((ROOT / args.file).read_text())
    if isinstance(event, dict):
        event.update(args.overrides)
    p.stack.put_event(account, event)
    p.log("put_event", f"event {args.file} delivered as-is to {args.account}")


class RedeliverEventsArgs(StepArgs):
    account: Annotated[str, ACCOUNT]
    count: int = Field(default=1, ge=1)  # the last `count` events delivered to the account
    reverse: bool = False  # newest first


def _redeliver_events(p: Player, args: RedeliverEventsArgs) -> None:
    account = p.account(args.account)
    earlier = [e.event for e in p.stack.delivered if e.account == account and not e.dropped][-args.count :]
    if args.reverse:
        earlier.reverse()  # out of order: newest first
    for event in earlier:
        p.stack.put_event(account, event)
    p.log("redeliver_events", f"{len(earlier)} earlier event(s) of {args.account} are delivered again (at least once)")


class AdvanceArgs(StepArgs):
    hours: float = Field(default=0, ge=0)
    minutes: float = Field(default=0, ge=0)


def _advance(p: Player, args: AdvanceArgs) -> None:
    delta = timedelta(hours=args.hours, minutes=args.minutes)
    p.log("advance", f"the clock advances {delta}")
    for invocation in p.stack.advance(delta):
        p.log_invocation(invocation)


class SweepArgs(StepArgs):
    account: Annotated[str, DEPLOYED]


def _sweep(p: Player, args: SweepArgs) -> None:
    account = p.account(args.account)
    p.log("sweep", f"the scheduled sweep runs in {args.account}")
    for invocation in p.stack.run_schedule(account):
        p.log_invocation(invocation)


class SetTrustPolicyArgs(StepArgs):
    account: Annotated[str, DEPLOYED]
    policy: Any  # the trust policy document (a mapping, stored as JSON) or its text


def _set_trust_policy(p: Player, args: SetTrustPolicyArgs) -> None:
    account = p.account(args.account)
    deployment = p.stack.deployments[account]
    name = deployment.parameters.get("TrustPolicyParameterName") or "/pipeshare/trust-policy"
    p.put_trust_policy(account, name, args.policy)
    p.log("set_trust_policy", f"{args.account} updates its trust policy in SSM {name} (no redeploy)")


class ExpectArgs(StepArgs):
    account: Annotated[str, DEPLOYED]
    share: str  # the share's name as recorded (shares pipeshare creates itself have names no step gives)
    status: str  # ABSENT: no record
    rule: str | None = None


def _expect(p: Player, args: ExpectArgs) -> None:
    account = p.account(args.account)
    items = p.stack.table_items(account)
    states = [i for i in items if i.get("sk") == "STATE" and i.get("share_name") == args.share]
    actual = states[0].get("status") if states else "ABSENT"
    ok = actual == args.status
    if ok and args.rule is not None:
        ok = states[0].get("rule") == args.rule
    text = f"{args.account} records share {args.share!r} as {args.status}" + (
        f" ({args.rule})" if args.rule is not None else ""
    )
    p.report.expectations.append(
        {"ok": ok, "text": text, "actual": actual, "rule": states[0].get("rule") if states else None}
    )
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {actual}"))


class ExpectNotificationArgs(StepArgs):
    account: Annotated[str, DEPLOYED]
    event: str
    share: str | None = None
    count: Count = 1


def _expect_notification(p: Player, args: ExpectNotificationArgs) -> None:
    account = p.account(args.account)
    messages = p.stack.read_notifications(account)
    matches = [
        m
        for m in messages
        if isinstance(m["message"], dict)
        and m["message"].get("event") == args.event
        and (args.share is None or m["message"].get("share_name") == args.share)
    ]
    ok = len(matches) == args.count
    text = f"{args.account} got {args.count} {args.event} notification(s)" + (
        f" for {args.share!r}" if args.share is not None else ""
    )
    p.report.expectations.append({"ok": ok, "text": text, "actual": len(matches)})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {len(matches)}"))


class StartExecutionArgs(StepArgs):
    account: Annotated[str, ACCOUNT]
    pipeline: Annotated[str, PIPELINE]  # by name in the owner account, by ARN from another
    label: Annotated[str | None, Creates("execution")] = Field(default=None, alias="as")  # default run-N


def _start_execution(p: Player, args: StartExecutionArgs) -> None:
    account = p.account(args.account)
    arn = p.resource_arn(f"pipeline:{args.pipeline}")
    own = arn.split(":")[4] == account
    sagemaker = p.stack.client(account, "sagemaker")
    label = args.label if args.label is not None else f"run-{len(p.executions) + 1}"
    try:
        execution = sagemaker.start_pipeline_execution(
            PipelineName=arn.rsplit("/", 1)[1] if own else arn,
            ClientRequestToken=f"{label}-{account}".ljust(32, "0")[:128],
        )["PipelineExecutionArn"]
    except sagemaker.exceptions.ClientError as exc:
        code = exc.response["Error"]["Code"]
        p.denied.append((label, code))
        p.log("start_execution", f"{args.account} tries to start {args.pipeline}: {code}")
        return
    p.executions[label] = execution
    p.log(
        "start_execution",
        f"{args.account} starts {args.pipeline} ({'by name' if own else 'by ARN'}) as {label}",
        execution_arn=execution,
    )


class StopExecutionArgs(StepArgs):
    account: Annotated[str, ACCOUNT]
    execution: Annotated[str, EXECUTION]


def _stop_execution(p: Player, args: StopExecutionArgs) -> None:
    account = p.account(args.account)
    p.stack.client(account, "sagemaker").stop_pipeline_execution(
        PipelineExecutionArn=p.executions[args.execution],
        ClientRequestToken=f"stop-{args.execution}".ljust(32, "0"),
    )
    p.log("stop_execution", f"{args.account} stops {args.execution}")


class RetryExecutionArgs(StepArgs):
    account: Annotated[str, ACCOUNT]
    execution: Annotated[str, EXECUTION]


def _retry_execution(p: Player, args: RetryExecutionArgs) -> None:
    account = p.account(args.account)
    p.stack.client(account, "sagemaker").retry_pipeline_execution(
        PipelineExecutionArn=p.executions[args.execution],
        ClientRequestToken=f"retry-{args.execution}".ljust(32, "0"),
    )
    p.log("retry_execution", f"{args.account} retries {args.execution}")


class OwnerCloudTrailCopyArgs(StepArgs):
    enabled: bool = True


def _owner_cloudtrail_copy(p: Player, args: OwnerCloudTrailCopyArgs) -> None:
    p.stack.sagemaker.owner_cloudtrail_copy = args.enabled
    p.log("owner_cloudtrail_copy", f"owner-account copies of cross-account CloudTrail records: {args.enabled}")


class ExpectExecutionArgs(StepArgs):
    owner: Annotated[str, DEPLOYED]
    execution: Annotated[str, EXECUTION]
    source: str | None = None
    initiator: Annotated[str | None, ACCOUNT] = None
    status: str | None = None
    candidates: Annotated[list[str] | None, ACCOUNT] = None


def _expect_execution(p: Player, args: ExpectExecutionArgs) -> None:
    owner = p.account(args.owner)
    label = args.execution
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
    given = {
        "source": args.source,
        "initiator": args.initiator,
        "status": args.status,
        "candidates": sorted(args.candidates) if args.candidates is not None else None,
    }
    wanted = {k: v for k, v in given.items() if v is not None}
    ok = bool(item) and all(checks[k] == v for k, v in wanted.items())
    text = f"{args.owner} records {label} with " + ", ".join(f"{k} {v}" for k, v in wanted.items())
    p.report.expectations.append({"ok": ok, "text": text, "actual": checks})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {checks}"))


class ExpectAlertsArgs(StepArgs):
    owner: Annotated[str, DEPLOYED]
    execution: Annotated[str | None, EXECUTION] = None  # none: every execution
    action: str | None = None
    attempt: int | None = None
    event: str | None = None
    consumer: Annotated[str | None, ACCOUNT] = None
    count: Count = 1


def _alert_matches(p: Player, args: ExpectAlertsArgs, message: Any, execution: str) -> bool:
    return (
        isinstance(message, dict)
        and str(message.get("schema", "")).startswith("pipeshare.owner.execution-alert")
        and (not execution or message.get("execution_arn", "").lower() == execution.lower())
        and (args.action is None or message.get("action") == args.action)
        and (args.attempt is None or message.get("attempt") == args.attempt)
        and (args.event is None or message.get("event") == args.event)
        and (args.consumer is None or message.get("consumer_account") == p.account(args.consumer))
    )


def _expect_alerts(p: Player, args: ExpectAlertsArgs) -> None:
    owner = p.account(args.owner)
    execution = p.executions.get(args.execution or "", "")
    alerts = [n for n in p.stack.read_notifications(owner) if _alert_matches(p, args, n["message"], execution)]
    ok = len(alerts) == args.count
    text = (
        f"{args.owner} got {args.count} execution alert(s)"
        + (f" for {args.execution}" if args.execution is not None else "")
        + (f" ({args.action})" if args.action is not None else "")
        + (f" attempt {args.attempt}" if args.attempt is not None else "")
        + (f" event {args.event}" if args.event is not None else "")
        + (f" naming {args.consumer}" if args.consumer is not None else "")
    )
    p.report.expectations.append({"ok": ok, "text": text, "actual": len(alerts)})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {len(alerts)}"))


class ExpectDeniedArgs(StepArgs):
    execution: Annotated[str, EXECUTION]  # the `as` of the start that was refused
    code: str = "AccessDeniedException"


def _expect_denied(p: Player, args: ExpectDeniedArgs) -> None:
    label = args.execution
    codes = [code for name, code in p.denied if name == label]
    ok = codes == [args.code] and label not in p.executions
    text = f"the start of {label} was refused with {args.code}"
    p.report.expectations.append({"ok": ok, "text": text, "actual": codes})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {codes}"))


InstanceGroup = Annotated[tuple[str, int], BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)]


class PipelineStepArgs(StepArgs):
    """One step of define_steps: the fields of `pipeshare_local.sagemaker.StepSpec`, checked by StepSpec itself."""

    name: str
    type: str = "Processing"
    duration_seconds: int = 300
    instance_type: str | None = "ml.m5.xlarge"
    instance_count: int = 1
    outcome: Literal["Succeeded", "Failed"] = "Succeeded"
    spot: bool = False
    spot_saving: float = 0.6
    instance_groups: list[InstanceGroup] = Field(default_factory=list)
    volume_gb: int = 30
    cache_hit: bool = False
    max_runtime_seconds: int | None = None

    @model_validator(mode="after")
    def _valid_spec(self) -> PipelineStepArgs:
        self.spec()  # StepSpec's own checks (name pattern, durations, job options) at load time
        return self

    def spec(self) -> StepSpec:
        """The StepSpec of the keys given (StepSpec's defaults for the others)."""
        given = {k: getattr(self, k) for k in self.model_fields_set}
        if "instance_groups" in given:
            given["instance_groups"] = tuple(given["instance_groups"])
        return StepSpec(**given)


class DefineStepsArgs(StepArgs):
    account: Annotated[str, ACCOUNT]
    pipeline: Annotated[str, OWN_PIPELINE]
    steps: list[PipelineStepArgs]

    @field_validator("steps")
    @classmethod
    def _unique_names(cls, steps: list[PipelineStepArgs]) -> list[PipelineStepArgs]:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique: {names}")
        return steps


def _define_steps(p: Player, args: DefineStepsArgs) -> None:
    account = p.account(args.account)
    specs = [step.spec() for step in args.steps]
    p.stack.sagemaker.define_steps(account, p.stack.region, args.pipeline, specs)
    p.log(
        "define_steps",
        f"{args.pipeline} runs "
        + ", ".join(
            f"{s.name} ({s.type}{', cached' if s.cache_hit else ''}{', spot' if s.spot else ''}"
            + (f", max {s.max_runtime_seconds} s" if s.max_runtime_seconds else "")  # the step's job limit
            + ")"
            for s in specs
        ),
    )


class SetBudgetPolicyArgs(StepArgs):
    account: Annotated[str, DEPLOYED]
    policy: Any  # the budget policy (a mapping, stored as JSON) or its text: not checked here, the owner side does


def _set_budget_policy(p: Player, args: SetBudgetPolicyArgs) -> None:
    account = p.account(args.account)
    name = p.stack.deployments[account].parameters.get("BudgetPolicyParameterName") or "/pipeshare/budgets"
    value = args.policy if isinstance(args.policy, str) else json.dumps(args.policy)
    p.stack.client(account, "ssm").put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    p.log("set_budget_policy", f"{args.account} sets its budget policy in SSM {name} (no redeploy)")


def _owner_items(p: Player, owner: str) -> list[dict[str, Any]]:
    return p.stack.table_items(p.account(owner), "OwnerTable")


class ExpectEstimateArgs(StepArgs):
    owner: Annotated[str, DEPLOYED]
    execution: Annotated[str, EXECUTION]
    final: bool | None = None
    complete: bool | None = None
    attempt: int | None = None  # the last attempt finalised
    min_usd: Usd | None = None
    max_usd: Usd | None = None
    unpriced: list[str] | None = None  # the instance types nobody could price


def _expect_estimate(p: Player, args: ExpectEstimateArgs) -> None:
    """An execution's estimate: `final`, `complete`, `attempt` (the last attempt finalised), total within `min_usd` /
    `max_usd`, and `unpriced` (the instance types nobody could price)."""
    execution = p.executions.get(args.execution, "").lower()
    items = {i["sk"]: i for i in _owner_items(p, args.owner) if i["pk"] == f"EXECUTION#{execution}"}
    estimate = items.get("ESTIMATE", {})
    total = Decimal(str(estimate.get("total", 0)))
    checks = {
        "final": lambda: estimate.get("final") is args.final,
        "complete": lambda: estimate.get("complete") is args.complete,
        "attempt": lambda: int(estimate.get("attempt") or 0) == args.attempt,
        "min_usd": lambda: total >= args.min_usd,
        "max_usd": lambda: total <= args.max_usd,
        "unpriced": lambda: sorted(estimate.get("unpriced") or []) == sorted(args.unpriced or []),
    }
    shown = {k: v for k in checks if (v := getattr(args, k)) is not None}
    ok = bool(estimate) and all(checks[key]() for key in shown)
    text = f"{args.owner} estimates {args.execution} " + json.dumps(shown, sort_keys=True, default=str)
    actual = {
        "total": str(total),
        "final": estimate.get("final"),
        "complete": estimate.get("complete"),
        "attempt": str(estimate.get("attempt")),
        "unpriced": estimate.get("unpriced"),
    }
    p.report.expectations.append({"ok": ok, "text": text, "actual": actual})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + f" (estimate {json.dumps(actual, default=str)})")


class SetEmulationArgs(StepArgs):
    """Emulation settings changed from now on: the blocks as at the top level, only the keys given."""

    cloudtrail: ScenarioCloudTrail | None = None
    sagemaker: SageMakerSettings | None = None
    ram: RamSettings | None = None

    def given(self) -> dict[str, dict[str, Any]]:
        """Each block given -> the keys given in it."""
        return {
            block: values.model_dump(include=values.model_fields_set)
            for block in ("cloudtrail", "sagemaker", "ram")
            if (values := getattr(self, block)) is not None
        }

    def references(self) -> Iterator[tuple[FieldPath, Ref, str]]:
        yield from super().references()
        if self.cloudtrail is not None and "trails" in self.cloudtrail.model_fields_set:
            yield from ((("cloudtrail", "trails", key), ACCOUNT, key) for key in self.cloudtrail.trails)


def _set_emulation(p: Player, args: SetEmulationArgs) -> None:
    """Change emulation settings from now on (blocks as at the top level; trails keyed by alias or account ID)."""
    given = args.given()
    for block, values in given.items():
        target = getattr(p.stack.settings, block)
        for key, value in values.items():
            if block == "cloudtrail" and key == "trails":
                value = {**target.trails, **{p.account(k): v for k, v in value.items()}}
            setattr(target, key, value)  # validated on assignment
    p.log("set_emulation", "emulation settings from now on: " + json.dumps(given, sort_keys=True))


def _spend(p: Player, owner: str, consumer: str) -> Decimal:
    items = [i for i in _owner_items(p, owner) if i["pk"].startswith("SPEND#") and i["sk"] == f"CONSUMER#{consumer}"]
    return sum((Decimal(str(i.get("total", 0))) for i in items), Decimal(0))


class ExpectSpendArgs(StepArgs):
    owner: Annotated[str, DEPLOYED]
    consumer: Annotated[str, ACCOUNT]
    min_usd: Usd | None = None
    max_usd: Usd | None = None
    unchanged_since: Annotated[str | None, SPEND_MARK] = None
    above: Annotated[str | None, SPEND_MARK] = None
    mark: Annotated[str | None, Creates("spend_mark")] = Field(default=None, alias="as")


def _expect_spend(p: Player, args: ExpectSpendArgs) -> None:
    """The consumer's month-to-date spend (every month): within min_usd / max_usd, and/or the same as (or `above`)
    what it was when the expectation labelled `unchanged_since` was checked; `as` labels this one."""
    consumer = p.account(args.consumer)
    spend = _spend(p, args.owner, consumer)
    low = args.min_usd if args.min_usd is not None else Decimal("-Infinity")
    high = args.max_usd if args.max_usd is not None else Decimal("Infinity")
    ok = low <= spend <= high
    if args.unchanged_since is not None:
        ok = ok and spend == p.spend_marks[args.unchanged_since]
    if args.above is not None:
        ok = ok and spend > p.spend_marks[args.above]
    if args.mark is not None:
        p.spend_marks[args.mark] = spend
    bounds = [f"{k.split('_')[0]} USD {v}" for k in ("min_usd", "max_usd") if (v := getattr(args, k)) is not None]
    if args.unchanged_since is not None:
        bounds.append(f"unchanged since {args.unchanged_since}")
    if args.above is not None:
        bounds.append(f"above what it was at {args.above}")
    text = f"{args.owner} counts {args.consumer}'s spend " + ", ".join(bounds)
    p.report.expectations.append({"ok": ok, "text": text, "actual": str(spend)})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + f" (USD {spend:.4f})")


class ExpectGrantsArgs(StepArgs):
    owner: Annotated[str, DEPLOYED]
    consumer: Annotated[str, ACCOUNT]
    pipeline: Annotated[str, PIPELINE]
    count: Count | None = None
    allow_execution: bool | None = None


def _expect_grants(p: Player, args: ExpectGrantsArgs) -> None:
    """The owner's inventory: how many grants a consumer holds on a pipeline, and whether one allows execution."""
    consumer = p.account(args.consumer)
    pipeline = p.resource_arn(f"pipeline:{args.pipeline}").lower()
    grants = [
        i
        for i in _owner_items(p, args.owner)
        if i.get("item_type") == "grant" and i["consumer"] == consumer and i["pipeline_arn"].lower() == pipeline
    ]
    actual = {"count": len(grants), "allow_execution": any(g.get("allow_execution") for g in grants)}
    wanted = {k: v for k in ("count", "allow_execution") if (v := getattr(args, k)) is not None}
    ok = all(actual[k] == v for k, v in wanted.items())
    text = f"{args.owner} lists {args.consumer} on {args.pipeline} with " + ", ".join(
        f"{k} {v}" for k, v in wanted.items()
    )
    p.report.expectations.append({"ok": ok, "text": text, "actual": actual})
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {actual}"))


OwnerMessageKind = Literal["finish", "threshold", "enforcement", "alert"]
_OWNER_MESSAGE_SCHEMAS: dict[str, str] = {
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


class ExpectOwnerMessagesArgs(StepArgs):
    owner: Annotated[str, DEPLOYED]
    kind: OwnerMessageKind
    execution: Annotated[str | None, EXECUTION] = None
    consumer: Annotated[str | None, ACCOUNT] = None
    subject_contains: str | None = None
    where: dict[str, Any] | None = None  # {dotted.path: value} in the message body
    count: Count = 1


def _owner_message_matches(n: dict[str, Any], schema: str, execution: str, consumer: str | None, args: Any) -> bool:
    message = n["message"]
    return (
        isinstance(message, dict)
        and str(message.get("schema", "")).startswith(schema)
        and (not execution or execution in json.dumps(message).lower())
        and (consumer is None or message.get("consumer_account") == consumer)
        and (args.subject_contains or "") in str(n.get("subject") or "")
        and all(_path(message, k) == v for k, v in (args.where or {}).items())
    )


def _expect_owner_messages(p: Player, args: ExpectOwnerMessagesArgs) -> None:
    """Owner messages of one kind (finish | threshold | enforcement | alert), optionally only those about one
    `execution` (alias) or `consumer` (alias), whose subject contains `subject_contains`, and whose body has the
    values in `where` ({dotted.path: value}); `count` of them (default 1)."""
    owner = p.account(args.owner)
    schema = _OWNER_MESSAGE_SCHEMAS[args.kind]
    execution = p.executions.get(args.execution or "", args.execution or "").lower()
    consumer = p.account(args.consumer) if args.consumer is not None else None
    where = dict(args.where or {})
    found = [
        n for n in p.stack.read_notifications(owner) if _owner_message_matches(n, schema, execution, consumer, args)
    ]
    ok = len(found) == args.count
    text = (
        f"{args.owner} got {args.count} {args.kind} message(s)"
        + (f" about {args.execution}" if args.execution is not None else "")
        + (f" naming {args.consumer}" if consumer else "")
        + (f" with subject containing {args.subject_contains!r}" if args.subject_contains is not None else "")
        + (f" where {json.dumps(where, sort_keys=True)}" if where else "")
    )
    p.report.expectations.append(
        {"ok": ok, "text": text, "actual": len(found), "subjects": [n.get("subject") for n in found]}
    )
    p.log("expect", ("PASS " if ok else "FAIL ") + text + ("" if ok else f" - found {len(found)}"))


# ---------------------------------------------------------------------- registry
@dataclass(frozen=True)
class StepKind:
    """A step kind: the model of its arguments and the function that plays it."""

    model: type[StepArgs]
    play: Callable[[Player, Any], None]

    def __call__(self, player: Player, args: StepArgs | Mapping[str, Any]) -> None:
        """Play the step; a mapping is validated by the model first (references are checked as the step plays)."""
        self.play(player, args if isinstance(args, self.model) else self.model.model_validate(args))


STEP_KINDS: dict[str, StepKind] = {
    "note": StepKind(NoteArgs, _note),
    "create_pipeline": StepKind(CreatePipelineArgs, _create_pipeline),
    "create_subnet": StepKind(CreateSubnetArgs, _create_subnet),
    "share": StepKind(ShareArgs, _share),
    "drop_events": StepKind(DropEventsArgs, _drop_events),
    "put_event": StepKind(PutEventArgs, _put_event),
    "redeliver_events": StepKind(RedeliverEventsArgs, _redeliver_events),
    "advance": StepKind(AdvanceArgs, _advance),
    "sweep": StepKind(SweepArgs, _sweep),
    "set_trust_policy": StepKind(SetTrustPolicyArgs, _set_trust_policy),
    "expect": StepKind(ExpectArgs, _expect),
    "expect_notification": StepKind(ExpectNotificationArgs, _expect_notification),
    "start_execution": StepKind(StartExecutionArgs, _start_execution),
    "stop_execution": StepKind(StopExecutionArgs, _stop_execution),
    "retry_execution": StepKind(RetryExecutionArgs, _retry_execution),
    "owner_cloudtrail_copy": StepKind(OwnerCloudTrailCopyArgs, _owner_cloudtrail_copy),
    "expect_execution": StepKind(ExpectExecutionArgs, _expect_execution),
    "expect_alerts": StepKind(ExpectAlertsArgs, _expect_alerts),
    "expect_denied": StepKind(ExpectDeniedArgs, _expect_denied),
    "define_steps": StepKind(DefineStepsArgs, _define_steps),
    "set_budget_policy": StepKind(SetBudgetPolicyArgs, _set_budget_policy),
    "expect_estimate": StepKind(ExpectEstimateArgs, _expect_estimate),
    "expect_owner_messages": StepKind(ExpectOwnerMessagesArgs, _expect_owner_messages),
    "set_emulation": StepKind(SetEmulationArgs, _set_emulation),
    "expect_spend": StepKind(ExpectSpendArgs, _expect_spend),
    "expect_grants": StepKind(ExpectGrantsArgs, _expect_grants),
}


class ScenarioStepBase(BaseModel):
    """One entry of `steps:`, a one-key mapping {kind: arguments}; one subclass per kind (ScenarioStep)."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _no_arguments(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.kind in data and data[cls.kind] is None:
            return {cls.kind: {}}  # `- sweep:` with nothing after it: no arguments
        return data

    @property
    def args(self) -> StepArgs:
        return getattr(self, self.kind)


def _step_entry(kind: str, step: StepKind) -> type[ScenarioStepBase]:
    name = "".join(part.title() for part in kind.split("_")) + "Step"
    entry = create_model(name, __base__=ScenarioStepBase, **{kind: (step.model, ...)})  # type: ignore[call-overload]
    entry.kind = kind
    return entry


def _step_tag(value: Any) -> str | None:
    if isinstance(value, ScenarioStepBase):
        return value.kind
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in STEP_KINDS:
        return str(next(iter(value)))
    return None


ScenarioStep = Annotated[
    Union[tuple(Annotated[_step_entry(kind, step), Tag(kind)] for kind, step in STEP_KINDS.items())],  # type: ignore[valid-type]  # noqa: UP007
    Discriminator(
        _step_tag,
        custom_error_type="step_kind",
        custom_error_message="a step is a one-key mapping {kind: arguments}, kind one of: " + ", ".join(STEP_KINDS),
    ),
]


# ---------------------------------------------------------------------- validation at load time
def _account_id(scenario: Scenario, ref: str) -> str | None:
    """The account ID an account reference names (an alias under `accounts:` or a 12-digit ID), else None."""
    if ref in scenario.accounts:
        return scenario.accounts[ref].id
    return ref if re.fullmatch(r"[0-9]{12}", ref) else None


def _listed(names: Iterator[str] | list[str] | set[str]) -> str:
    names = sorted(names)
    return ", ".join(names) if names else "none yet"


def _suggest(word: str, choices: Iterator[str] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _account_problem(scenario: Scenario, value: str) -> str | None:
    if _account_id(scenario, value) is not None:
        return None
    return (
        f"unknown account {value!r} (accounts: {', '.join(scenario.accounts)}; or a 12-digit account ID"
        f"{_suggest(value, list(scenario.accounts))})"
    )


class _Known:
    """What a scenario declares at the top, and what its steps have created so far (steps are checked in order)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.deployed = {_account_id(scenario, spec.account) for spec in scenario.deploy} - {None}
        self.resources: dict[str, str | None] = {}  # alias (pipeline:NAME ...) -> the ID of the account creating it
        self.executions: set[str] = set()
        self.default_labels = False  # a start_execution without `as` labels its run run-N
        self.spend_marks: set[str] = set()

    def problem(self, ref: Ref, value: str, args: StepArgs) -> str | None:
        check: Callable[[str, StepArgs], str | None] = getattr(self, f"_{ref.kind}")
        return check(value, args)

    def record(self, args: StepArgs) -> None:
        for creates, value in args.creations():
            if creates.kind == "resource" and value is not None:
                self.resources[creates.prefix + value] = _account_id(self.scenario, getattr(args, "account", ""))
            elif creates.kind == "execution":
                if value is None:
                    self.default_labels = True
                else:
                    self.executions.add(value)
            elif value is not None:
                self.spend_marks.add(value)

    def _account(self, value: str, args: StepArgs) -> str | None:
        return _account_problem(self.scenario, value)

    def _deployed(self, value: str, args: StepArgs) -> str | None:
        problem = self._account(value, args)
        if problem is None and _account_id(self.scenario, value) not in self.deployed:
            deployed = [spec.account for spec in self.scenario.deploy]
            return f"account {value!r} has no pipeshare deployment (deploy: lists {_listed(deployed)})"
        return problem

    def _resource(self, value: str, args: StepArgs) -> str | None:
        if value.startswith("arn:") or value in self.resources:
            return None
        return (
            f"unknown resource {value!r}: no earlier step creates it (so far: {_listed(self.resources)}; or an ARN"
            f"{_suggest(value, list(self.resources))})"
        )

    def _pipeline(self, value: str, args: StepArgs) -> str | None:
        if f"pipeline:{value}" in self.resources:
            return None
        pipelines = [alias.split(":", 1)[1] for alias in self.resources if alias.startswith("pipeline:")]
        return (
            f"unknown pipeline {value!r}: no earlier create_pipeline creates it (so far: {_listed(pipelines)}"
            f"{_suggest(value, pipelines)})"
        )

    def _own_pipeline(self, value: str, args: StepArgs) -> str | None:
        problem = self._pipeline(value, args)
        creator = self.resources.get(f"pipeline:{value}")
        account = _account_id(self.scenario, getattr(args, "account", ""))
        if problem is None and None not in (creator, account) and creator != account:
            return f"pipeline {value!r} is created by account {creator}, not by {getattr(args, 'account', '')!r}"
        return problem

    def _execution(self, value: str, args: StepArgs) -> str | None:
        if value in self.executions or (self.default_labels and re.fullmatch(r"run-[0-9]+", value)):
            return None
        return (
            f"unknown execution {value!r}: no earlier start_execution has `as: {value}` (so far: "
            f"{_listed(self.executions)}{_suggest(value, list(self.executions))})"
        )

    def _spend_mark(self, value: str, args: StepArgs) -> str | None:
        if value in self.spend_marks:
            return None
        return (
            f"unknown spend mark {value!r}: no earlier expect_spend has `as: {value}` (so far: "
            f"{_listed(self.spend_marks)}{_suggest(value, list(self.spend_marks))})"
        )


@functools.cache
def _template_parameters() -> dict[str, Any]:
    """template.yaml's Parameters, as the local stack reads them."""
    return dict(load_template().get("Parameters", {}))


def _deploy_problems(scenario: Scenario) -> Iterator[tuple[FieldPath, str]]:
    declared = _template_parameters()
    for index, spec in enumerate(scenario.deploy):
        account = _account_problem(scenario, spec.account)
        if account:
            yield ("deploy", index, "account"), account
        unknown = [name for name in spec.parameters if name not in declared]
        for name in unknown:
            yield (
                ("deploy", index, "parameters", name),
                f"unknown template parameter {name!r} (not in template.yaml's Parameters{_suggest(name, declared)})",
            )
        if not unknown:
            try:  # the values, as the deployment will check them (AllowedValues, AllowedPattern, Min/MaxValue)
                Resolver._parameters({"Parameters": declared}, spec.template_parameters())
            except ValueError as exc:
                yield ("deploy", index, "parameters"), str(exc)


def reference_problems(scenario: Scenario) -> list[tuple[FieldPath, str]]:
    """Every reference a scenario makes to something not declared at the top or not created by an earlier step,
    and every deploy parameter template.yaml does not declare: (where, what) pairs, in file order."""
    problems = list(_deploy_problems(scenario))
    known = _Known(scenario)
    for index, step in enumerate(scenario.steps):
        for path, ref, value in step.args.references():
            problem = known.problem(ref, value, step.args)
            if problem:
                problems.append((("steps", index, step.kind, *path), problem))
        known.record(step.args)
    return problems


def where(loc: FieldPath) -> str:
    """A location as a YAML path: steps[3].advance.minute, deploy[0].parameters.Mode."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text or "(top level)"


class ScenarioError(ValueError):
    """A scenario that cannot be played: one line per problem, each `FILE[:LINE]: WHERE: WHAT`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _parse(text: str) -> tuple[Any, dict[FieldPath, int]]:
    """The YAML document and the line (1-based) of every key and list item in it, by YAML path."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: dict[FieldPath, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _index_lines(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value if isinstance(key, yaml.ScalarNode) else str(key.value))
            lines.setdefault(sub, key.start_mark.line + 1)
            _index_lines(value, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def _unwrap(annotation: Any) -> Any:
    """Annotated[X, ...] and X | None -> X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType) and type(None) in get_args(annotation):
            others = [a for a in get_args(annotation) if a is not type(None)]
            if len(others) != 1:
                return annotation
            annotation = others[0]
        else:
            return annotation


def _model_at(loc: FieldPath) -> type[BaseModel] | None:
    """The model whose keys live at `loc` (a YAML path), when there is one."""
    current: Any = Scenario
    rest = loc
    if loc[:1] == ("steps",) and len(loc) >= 3 and loc[2] in STEP_KINDS:
        current, rest = STEP_KINDS[str(loc[2])].model, loc[3:]
    for part in rest:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {info.alias or name: info for name, info in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[str(part)].annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _what(error: Any, loc: FieldPath) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1])
        if owner is None:
            return f"unknown key {loc[-1]!r}"
        keys = _keys_of(owner)
        owner_name = loc[-2] if len(loc) >= 2 and isinstance(loc[-2], str) else "each item"
        return f"unknown key {loc[-1]!r} ({owner_name} takes {', '.join(keys)}{_suggest(str(loc[-1]), keys)})"
    if kind == "missing":
        return "missing (required)"
    if kind == "step_kind":
        value = error["input"]
        if isinstance(value, dict) and len(value) == 1:
            name = str(next(iter(value)))
            return f"unknown step kind {name!r}{_suggest(name, list(STEP_KINDS))} (kinds: {', '.join(STEP_KINDS)})"
        got = list(value) if isinstance(value, dict) else type(value).__name__
        return f"a step is a one-key mapping {{kind: arguments}}, got {got}"
    if kind == "value_error":  # a validator's own words, which name the value
        return str(error["msg"]).removeprefix("Value error, ")
    message = str(error["msg"])
    value = error.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        message += f" (got {value!r})"
    return message


def _problems(exc: ValidationError, lines: dict[FieldPath, int]) -> list[tuple[int | None, FieldPath, str]]:
    found: dict[FieldPath, list[str]] = {}
    for error in exc.errors():
        if error["type"] == "scenario_reference":
            for loc, what in error["ctx"]["problems"]:
                found.setdefault(tuple(loc), []).append(what)
            continue
        loc = tuple(error["loc"])
        if loc[:1] == ("steps",) and len(loc) >= 4 and loc[2] == loc[3]:
            loc = loc[:3] + loc[4:]  # the union's tag, then the kind's key: the key once
        known = max((n for n in range(len(loc) + 1) if loc[:n] in lines), default=0)
        shown = loc if error["type"] == "missing" else loc[: max(known, 1 if loc else 0)]
        what = _what(error, shown)
        if what not in found.setdefault(shown, []):
            found[shown].append(what)
    out = []
    for loc, whats in found.items():
        line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
        out.append((line, loc, " or ".join(whats)))
    return sorted(out, key=lambda problem: problem[0] or 0)


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; nothing runs. Raises ScenarioError with one line per problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ScenarioError([f"{path}: no such scenario file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{path}: cannot read the scenario file ({exc})"]) from None
    try:
        data, lines = _parse(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}" if mark is not None else ""
        context = f" ({exc.context})" if exc.context else ""
        raise ScenarioError([f"{path}{at}: YAML syntax error: {exc.problem}{context}"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{path}: YAML syntax error: {exc}"]) from None
    if not isinstance(data, dict):
        raise ScenarioError([f"{path}:1: a scenario is a YAML mapping (name, accounts, deploy, steps ...)"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}{f':{line}' if line else ''}: {where(loc)}: {what}" for line, loc, what in _problems(exc, lines)
        ]
        raise ScenarioError(problems) from None


def run_scenario(scenario: Scenario) -> Report:
    with LocalStack(region=scenario.region, start=scenario.start, settings=scenario.emulation_settings()) as stack:
        return Player(scenario, stack).run()


Scenario.model_rebuild()
