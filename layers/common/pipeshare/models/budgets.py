"""Budgets: the owner's budget policy, month spend and run views, and the enforcement orders built from them."""

from __future__ import annotations

import re
from decimal import ROUND_FLOOR, Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
    model_validator,
)

from pipeshare.models.base import Model
from pipeshare.models.types import AccountId, Money, Month

DEFAULT_THRESHOLDS = (50, 80, 100)


MAX_THRESHOLDS = 20  # per budget line; all of them fit one DynamoDB transaction (100 items) with the message


ENFORCE_AT = 100  # enforcement applies from the budget's lowest threshold at or above 100 % of the limit


# attribution sources enforcement acts on: evidence of who started the run (inferred only with count_inferred;
# ambiguous and unknown never)
ENFORCEABLE_SOURCES = frozenset({"forwarded", "cloudtrail-owner-copy", "owner"})


INFERRED = "inferred"


Threshold = Annotated[int, Strict(), Field(ge=1, le=1000)]


Flag = Annotated[bool, Strict()]


Limit = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]


PIPELINE_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")  # SageMaker's PipelineName pattern


PIPELINE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:pipeline/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")


class _Frozen(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
