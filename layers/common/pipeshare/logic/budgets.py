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
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeshare.logic.attribution import GrantView, candidate_of
from pipeshare.logic.policy import fingerprint
from pipeshare.models.domain import AccountId
from pipeshare.models.errors import PipeshareError

SUBJECT_MAX = 100  # SNS limit
DEFAULT_THRESHOLDS = (50, 80, 100)
MAX_THRESHOLDS = 20  # per budget line; all of them fit one DynamoDB transaction (100 items) with the message
ENFORCE_AT = 100  # enforcement applies from the budget's lowest threshold at or above 100 % of the limit
HOLDING_STATUSES = frozenset({"ASSOCIATED", "ASSOCIATING"})  # a grant in these states gives (or will give) access
# attribution sources enforcement acts on: evidence of who started the run (inferred only with count_inferred;
# ambiguous and unknown never)
ENFORCEABLE_SOURCES = frozenset({"forwarded", "cloudtrail-owner-copy", "owner"})
INFERRED = "inferred"

Month = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
Threshold = Annotated[int, Strict(), Field(ge=1, le=1000)]
Money = Annotated[Decimal, Field(allow_inf_nan=False)]
Flag = Annotated[bool, Strict()]
Limit = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]

PIPELINE_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")  # SageMaker's PipelineName pattern
PIPELINE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:pipeline/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")

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
    """What to do about a consumer over its budget. All off: alert only.

    `switch_to_read_only: true` is the deprecated spelling of remove_from_share + downgrade_to_read_only."""

    stop_executions: Flag = False
    remove_from_share: Flag = False
    downgrade_to_read_only: Flag = False
    stop_when_worst_case_exceeds_remaining: Flag = False
    switch_to_read_only: Flag = False

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("switch_to_read_only") is not True:
            return data
        conflicts = [k for k in ("remove_from_share", "downgrade_to_read_only") if data.get(k) is False]
        if conflicts:
            raise ValueError(
                "switch_to_read_only (deprecated) means remove_from_share + downgrade_to_read_only; it conflicts "
                f"with {', '.join(conflicts)}: false"
            )
        return {**data, "remove_from_share": True, "downgrade_to_read_only": True}

    @model_validator(mode="after")
    def _downgrade_needs_removal(self) -> Enforcement:
        if self.downgrade_to_read_only and not self.remove_from_share:
            raise ValueError("downgrade_to_read_only requires remove_from_share (it replaces what was removed)")
        return self

    @property
    def at_limit(self) -> bool:
        """Something applies while the consumer is over its budget."""
        return self.stop_executions or self.remove_from_share

    @property
    def any(self) -> bool:
        return self.at_limit or self.stop_when_worst_case_exceeds_remaining


class _Line(_Frozen):
    """A monthly limit with thresholds (percentages of it)."""

    monthly_limit: Limit
    thresholds: tuple[Threshold, ...] = Field(default=DEFAULT_THRESHOLDS, min_length=1, max_length=MAX_THRESHOLDS)

    @field_validator("thresholds")
    @classmethod
    def _sorted_unique(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        duplicates = sorted({t for t in value if value.count(t) > 1})
        if duplicates:
            raise ValueError(f"thresholds must be unique; repeated: {', '.join(map(str, duplicates))}")
        return tuple(sorted(value))

    def amount(self, threshold: int) -> Decimal:
        """The spend at which `threshold` (a percentage of the limit) is reached."""
        return self.monthly_limit * threshold / 100

    def percent_used(self, spend: Decimal) -> Decimal:
        """Spend as a percentage of the limit, rounded down to 0.1 (so it never shows a threshold not yet reached)."""
        return (_money(spend) * 100 / self.monthly_limit).quantize(Decimal("0.1"), rounding=ROUND_FLOOR)


class Budget(_Line):
    """One consumer's monthly budget on estimated spend (in the policy's currency)."""

    enforce: Enforcement = Field(default_factory=Enforcement)
    dry_run: Flag = False
    count_inferred: Flag = False
    unpriced: Literal["alert", "stop"] = "alert"

    @model_validator(mode="after")
    def _enforcement_reachable(self) -> Budget:
        if self.enforce.at_limit and self.limit_threshold is None:
            raise ValueError(
                f"enforce is set but no threshold is >= {ENFORCE_AT}, so it would never apply; add {ENFORCE_AT}"
            )
        return self

    @property
    def limit_threshold(self) -> int | None:
        """The threshold from which enforcement applies: the lowest at or above 100 %."""
        return min((t for t in self.thresholds if t >= ENFORCE_AT), default=None)

    @property
    def enforced_on(self) -> Literal["total", "confirmed"]:
        return "total" if self.count_inferred else "confirmed"


class UnattributedLine(_Line):
    """A monthly line for one pipeline's spend that no single consumer is charged for (alerts only)."""


class UnattributedPolicy(_Frozen):
    """Lines for unattributed / ambiguous spend, per pipeline (by name or ARN), else the default."""

    default: UnattributedLine | None = None
    pipelines: dict[str, UnattributedLine] = Field(default_factory=dict, max_length=5000)

    @field_validator("pipelines")
    @classmethod
    def _pipeline_keys(cls, value: dict[str, UnattributedLine]) -> dict[str, UnattributedLine]:
        bad = sorted(k for k in value if not (PIPELINE_NAME.match(k) or PIPELINE_ARN.match(k)))
        lowered = [k.lower() for k in value]
        repeated = sorted({k for k in value if lowered.count(k.lower()) > 1})
        problems = [f"not a pipeline name or pipeline ARN: {', '.join(bad)}"] if bad else []
        if repeated:
            problems.append(f"pipelines named twice (names and ARNs compare case-insensitively): {', '.join(repeated)}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def line_for(self, pipeline_arn: str) -> tuple[UnattributedLine | None, str]:
        """The line for a pipeline and how it was found: its ARN, else its name, else the default."""
        by_key = {k.lower(): line for k, line in self.pipelines.items()}
        if pipeline_arn.lower() in by_key:
            return by_key[pipeline_arn.lower()], "arn"
        name = pipeline_arn.rsplit("/", 1)[-1].lower()
        if name in by_key:
            return by_key[name], "name"
        return self.default, "default"


class BudgetPolicy(_Frozen):
    """The owner's budget policy. A consumer listed in `consumers` has that budget, any other the `default` (if any)."""

    version: Literal[1]
    currency: Literal["USD"] = "USD"
    default: Budget | None = None
    consumers: dict[AccountId, Budget] = Field(default_factory=dict, max_length=5000)
    unattributed: UnattributedPolicy | None = None
    source: str = Field(default="", exclude=True)
    fingerprint: str = Field(default="", exclude=True)

    def budget_for(self, consumer: str) -> Budget | None:
        """The consumer's budget: its own entry, else the default, else None (no budget)."""
        return self.consumers.get(consumer, self.default)

    def unattributed_line(self, pipeline_arn: str) -> tuple[UnattributedLine | None, str]:
        return (None, "none") if self.unattributed is None else self.unattributed.line_for(pipeline_arn)


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


class ConsumerSpend(_Frozen):
    """A consumer's month-to-date estimated spend: in all, and the part attributed by evidence."""

    consumer: AccountId
    month: Month
    total: Money = Decimal(0)
    confirmed_total: Money = Decimal(0)  # forwarded / CloudTrail owner copy only (absent on older items: none)

    def enforced(self, budget: Budget) -> Decimal:
        """The spend enforcement counts: all of it with count_inferred, else the confirmed part only."""
        return self.total if budget.count_inferred else min(self.confirmed_total, self.total)

    @property
    def inferred(self) -> Decimal:
        return max(self.total - self.confirmed_total, Decimal(0))


class LineSpend(_Frozen):
    """A pipeline's month-to-date spend that no single consumer is charged for (unattributed / ambiguous)."""

    pipeline_arn: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    month: Month
    total: Money = Decimal(0)


class MonthSpend(_Frozen):
    """Every spend item of one month, as one Query of `SPEND#<month>` returns them."""

    month: Month
    consumers: tuple[ConsumerSpend, ...] = ()
    consumer_pipelines: dict[str, dict[str, Money]] = Field(default_factory=dict)  # consumer -> pipeline ARN -> spend
    unattributed: tuple[LineSpend, ...] = ()


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


class RunView(_Frozen):
    """An execution as the owner table lists it (STATE item, or the by_initiator index)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    execution_arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:sagemaker:", max_length=2048)]
    pipeline_arn: str = ""
    attempt: Annotated[int, Field(ge=1)] = 1
    attribution_source: str | None = None
    initiator_account: str | None = None
    open_status: str | None = None
    worst_case_usd: Money | None = None
    worst_case_complete: bool | None = None

    @property
    def owner_account(self) -> str:
        return self.execution_arn.split(":")[4]

    @property
    def pipeline_name(self) -> str:
        return (self.pipeline_arn or self.execution_arn.split("/execution/")[0]).rsplit("/", 1)[-1]

    def enforceable(self, budget: Budget) -> bool:
        """Started by a consumer (not the owner account) on evidence; inferred too with count_inferred."""
        if self.initiator_account is None or self.initiator_account == self.owner_account:
            return False
        sources = ENFORCEABLE_SOURCES | ({INFERRED} if budget.count_inferred else set())
        return self.attribution_source in sources


StopReason = Literal["over-budget", "worst-case", "unpriced"]


def _dry(dry_run: bool) -> str:
    return "DRYRUN#" if dry_run else ""


class StopOrder(_Frozen):
    """Stop one attempt of one execution, and why."""

    run: RunView
    reason: StopReason
    dry_run: bool = False
    unpriced: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Ledger key: one stop (or one dry-run report) per execution attempt per month."""
        return f"{_dry(self.dry_run)}STOP#{self.run.execution_arn.lower()}#{self.run.attempt}"


class ShareRemoval(_Frozen):
    """Take one principal of the consumer (its account, or an IAM role/user of it) off one share."""

    share_arn: str
    share_name: str
    principal: str
    pipelines: tuple[str, ...]
    dry_run: bool = False

    @property
    def key(self) -> str:
        """Ledger key: one removal per share per principal per month."""
        return f"{_dry(self.dry_run)}SHARE#{self.share_arn.lower()}#{self.principal.lower()}"


class GroupShare(_Frozen):
    """A share through which the consumer may hold allow-execution but cannot be taken off by pipeshare: it grants to
    an organization / OU (one account cannot be removed from it), or to an IAM role / user of the consumer
    (pipeshare removes account principals only)."""

    share_arn: str
    share_name: str
    principals: tuple[str, ...]
    pipelines: tuple[str, ...]
    kind: Literal["organization", "iam-principal"] = "organization"

    @property
    def key(self) -> str:
        return f"NOTE#SHARE#{self.share_arn.lower()}"


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
    notes: dict[str, tuple[str, set[str], set[str], str]] = {}
    for grant in (g for g in grants if _holding(g)):
        holder = candidate_of(grant.consumer)
        if grant.consumer == consumer:
            mine.setdefault(grant.share_arn, (grant.share_name, set()))[1].add(grant.pipeline_arn)
        elif holder == consumer or not holder.isdigit():
            kind = "iam-principal" if holder == consumer else "organization"
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


def _cents(value: Decimal) -> str:
    """Rounded for people: to the cent."""
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _budget_block(budget: Budget, spend: Decimal, currency: str, *, cents: bool = False) -> dict[str, Any]:
    """The budget as messages show it. `cents`: the limit rounded for people (the finish message keeps it exact)."""
    return {
        "currency": currency,
        "monthly_limit": (_cents if cents else _amount)(budget.monthly_limit),
        "percent_used": _amount(budget.percent_used(spend)),
        "thresholds": list(budget.thresholds),
        "enforce": {
            "at_percent": budget.limit_threshold,
            "stop_executions": budget.enforce.stop_executions,
            "remove_from_share": budget.enforce.remove_from_share,
            "downgrade_to_read_only": budget.enforce.downgrade_to_read_only,
            "stop_when_worst_case_exceeds_remaining": budget.enforce.stop_when_worst_case_exceeds_remaining,
            "switch_to_read_only": budget.enforce.switch_to_read_only,  # deprecated alias, as written
            "dry_run": budget.dry_run,
        },
        "count_inferred": budget.count_inferred,
        "unpriced": budget.unpriced,
    }


def top_spend(per_pipeline: Mapping[str, Decimal], limit: int) -> list[tuple[str, Decimal]]:
    """The largest `limit` (pipeline, spend) pairs, largest first (ties by pipeline)."""
    ranked = sorted(((name, _money(cost)) for name, cost in per_pipeline.items()), key=lambda i: (-i[1], i[0]))
    return ranked[:limit]
