"""Price tables and the cost estimates built from them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    computed_field,
    model_validator,
)

from pipeshare.models.base import Model
from pipeshare.models.errors import PriceTableError

CENT = Decimal("0.01")


ZERO = Decimal(0)


JobKind = Literal["training", "processing", "transform", "tuning"]


Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


Rate = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]


InstanceType = Annotated[str, StringConstraints(pattern=r"^ml\.[a-z0-9-]+\.[a-z0-9-]+$", max_length=64)]


Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$", max_length=32)]


class Component(StrEnum):
    """The price-list component a job is billed under."""

    TRAINING = "training"
    PROCESSING = "processing"
    TRANSFORM = "transform"


class StepState(StrEnum):
    ESTIMATED = "estimated"
    CACHED = "cached"  # CacheHitResult: the work was billed in an earlier execution
    NO_COMPUTE = "no-compute"
    NOT_ESTIMATED = "not-estimated"  # a step type pipeshare does not price (reason given)
    INCOMPLETE = "incomplete"  # missing data or an unknown price (reason given)


class _Frozen(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


Origin = Literal["override", "price-list", "shipped"]


STORAGE = "storage"  # the component name under which origin() and citations know `storage_gb_month`


SourceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


class RegionPrices(_Frozen):
    """USD per instance-hour by component and instance type, and USD per GB-month of ML storage."""

    training: dict[InstanceType, Rate] = Field(default_factory=dict)
    processing: dict[InstanceType, Rate] = Field(default_factory=dict)
    transform: dict[InstanceType, Rate] = Field(default_factory=dict)
    storage_gb_month: Money | None = None

    def rates(self, component: Component) -> dict[str, Decimal]:
        return {
            Component.TRAINING: self.training,
            Component.PROCESSING: self.processing,
            Component.TRANSFORM: self.transform,
        }[component]

    def with_rates(self, component: Component, rates: Mapping[str, Decimal]) -> RegionPrices:
        return self.model_copy(update={component.value: {**self.rates(component), **rates}})


class SourceRef(_Frozen):
    """A public source of figures: what it is, where, when it was read, and the words that carry the figures."""

    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    url: Annotated[str, StringConstraints(pattern=r"^https://", max_length=2000)]
    retrieved: date
    published: date | None = None  # the date the source gives for its figures, when it gives one
    quote: Annotated[str, StringConstraints(max_length=2000)] | None = None
    authoritative: bool = False  # AWS's own price list (an offer file the table was built from): enough on its own


class RegionCitations(_Frozen):
    """Which sources back each figure of a region (source ids of PriceTable.sources)."""

    training: dict[InstanceType, tuple[SourceId, ...]] = Field(default_factory=dict)
    processing: dict[InstanceType, tuple[SourceId, ...]] = Field(default_factory=dict)
    transform: dict[InstanceType, tuple[SourceId, ...]] = Field(default_factory=dict)
    storage_gb_month: tuple[SourceId, ...] = ()

    def of(self, component: str) -> dict[str, tuple[str, ...]]:
        return {"training": self.training, "processing": self.processing, "transform": self.transform}[component]


class PriceTable(_Frozen):
    """A price table. Each rate has an origin: `shipped` (this document), `override` (merged from an SSM override:
    `merge`) or `price-list` (the AWS Price List's, laid over the rest by `with_price_list`; an override stays)."""

    source: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    as_of: date
    currency: Literal["USD"] = "USD"
    notes: tuple[str, ...] = ()
    regions: dict[Region, RegionPrices]
    sources: dict[SourceId, SourceRef] = Field(default_factory=dict)
    citations: dict[Region, RegionCitations] = Field(default_factory=dict)
    # (region, component or STORAGE, instance type or "") -> origin, for the rates that are not `shipped`
    _origins: dict[tuple[str, str, str], Origin] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _citations_name_known_sources_and_rates(self) -> PriceTable:
        errors = [f"citations.{e}" for e in self._citation_errors()]
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _citation_errors(self) -> list[str]:
        errors: list[str] = []
        for region, cited in self.citations.items():
            prices = self.regions.get(region)
            for component in ("training", "processing", "transform"):
                for instance_type, ids in cited.of(component).items():
                    if prices is None or instance_type not in prices.rates(Component(component)):
                        errors.append(f"{region}.{component}.{instance_type}: no such rate in the table")
                    errors += [
                        f"{region}.{component}.{instance_type}: unknown source {i!r}"
                        for i in ids
                        if i not in self.sources
                    ]
            if cited.storage_gb_month and (prices is None or prices.storage_gb_month is None):
                errors.append(f"{region}.storage_gb_month: no such rate in the table")
            errors += [
                f"{region}.storage_gb_month: unknown source {i!r}"
                for i in cited.storage_gb_month
                if i not in self.sources
            ]
        return errors

    def price(self, region: str, component: Component | str, instance_type: str) -> Decimal | None:
        """USD per instance-hour, or None when the table does not know it."""
        prices = self.regions.get(region)
        return None if prices is None else prices.rates(Component(component)).get(instance_type)

    def storage_price(self, region: str) -> Decimal | None:
        """USD per GB-month of ML storage, or None when the table does not know it."""
        prices = self.regions.get(region)
        return None if prices is None else prices.storage_gb_month

    def origin(self, region: str, component: Component | str, instance_type: str = "") -> Origin | None:
        """Where a rate comes from (`component` STORAGE for storage_gb_month), or None when the table has none."""
        key = (region, str(component), "" if str(component) == STORAGE else instance_type)
        if str(component) == STORAGE:
            present = self.storage_price(region) is not None
        else:
            present = self.price(region, component, instance_type) is not None
        return self._origins.get(key, "shipped") if present else None

    def cited_by(self, region: str, component: Component | str, instance_type: str = "") -> tuple[str, ...]:
        """The ids of the sources backing a shipped rate (empty for an override or a Price List rate)."""
        cited = self.citations.get(region)
        if cited is None or self.origin(region, component, instance_type) != "shipped":
            return ()
        return cited.storage_gb_month if str(component) == STORAGE else cited.of(str(component)).get(instance_type, ())

    def uncited(self, minimum: int = 2) -> list[str]:
        """Every shipped figure backed neither by an authoritative source (an AWS offer file) nor by `minimum`
        independent sources (`region.component.instance type`)."""
        found = []
        for region, prices in self.regions.items():
            for component in Component:
                found += [
                    f"{region}.{component.value}.{t}"
                    for t in prices.rates(component)
                    if self.origin(region, component, t) == "shipped"
                    and not self._backed(self.cited_by(region, component, t), minimum)
                ]
            if self.origin(region, STORAGE) == "shipped" and not self._backed(self.cited_by(region, STORAGE), minimum):
                found.append(f"{region}.storage_gb_month")
        return found

    def _backed(self, ids: tuple[str, ...], minimum: int) -> bool:
        return len(set(ids)) >= minimum or any(self.sources[i].authoritative for i in ids)

    def merge(self, override: Any) -> PriceTable:
        """This table with an override document of the same shape (every key optional, no citations) laid over it.

        Rates are replaced or added one by one and recorded with origin `override`; `storage_gb_month`, `source` and
        `as_of` are replaced when given; notes are appended. Raises PriceTableError with every problem found.
        """
        if not isinstance(override, Mapping):
            raise PriceTableError(["<root>: the override must be a JSON object"])
        layer = _validated(_PriceOverride, override)
        regions, origins = dict(self.regions), dict(self._origins)
        for name, patch in layer.regions.items():
            base = regions.get(name, RegionPrices())
            for component in Component:
                base = base.with_rates(component, patch.rates(component))
                origins.update({(name, component.value, t): "override" for t in patch.rates(component)})
            if patch.storage_gb_month is not None:
                base = base.model_copy(update={"storage_gb_month": patch.storage_gb_month})
                origins[(name, STORAGE, "")] = "override"
            regions[name] = base
        table = self._rebuilt(
            source=layer.source or (f"{self.source} (with overrides)" if layer.regions else self.source),
            as_of=layer.as_of or self.as_of,
            notes=(*self.notes, *layer.notes),
            regions=regions,
        )
        table._origins = origins
        return table

    def with_price_list(
        self,
        region: str,
        rates: Mapping[tuple[str, str], Decimal],
        *,
        storage_gb_month: Decimal | None = None,
        source: str = "AWS Price List API (GetProducts, AmazonSageMaker, on-demand)",
    ) -> PriceTable:
        """This table with the Price List's rates for `region` ((component, instance type) -> USD per hour) laid over
        the shipped ones; a rate from an override is kept. Recorded with origin `price-list`."""
        prices, origins, used = self.regions.get(region, RegionPrices()), dict(self._origins), False
        for (component, instance_type), rate in sorted(rates.items()):
            if self.origin(region, component, instance_type) == "override":
                continue
            prices = prices.with_rates(Component(component), {instance_type: rate})
            origins[(region, component, instance_type)], used = "price-list", True
        if storage_gb_month is not None and self.origin(region, STORAGE) != "override":
            prices = prices.model_copy(update={"storage_gb_month": storage_gb_month})
            origins[(region, STORAGE, "")], used = "price-list", True
        if not used:
            return self
        table = self._rebuilt(
            source=self.source if source in self.source else f"{self.source}; {source}",
            regions={**self.regions, region: prices},
        )
        table._origins = origins
        return table

    def _rebuilt(self, **changes: Any) -> PriceTable:
        """A copy with `changes`, validated again; citations of rates no longer shipped are kept (cited_by ignores
        them) so that the table stays valid."""
        return PriceTable.model_validate({**{k: getattr(self, k) for k in type(self).model_fields}, **changes})


_M = TypeVar("_M", bound=BaseModel)


class _PriceOverride(_Frozen):
    source: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    as_of: date | None = None
    currency: Literal["USD"] | None = None
    notes: tuple[str, ...] = ()
    regions: dict[Region, RegionPrices] = Field(default_factory=dict)


def _validated(model: type[_M], document: Any) -> _M:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
        raise PriceTableError(errors) from None


class InstanceUse(_Frozen):
    """One line of a job's compute: `count` instances of `instance_type` billed for `seconds` each."""

    label: str | None = None  # the instance group name
    warm_pool: bool = False  # time the instances were kept in a warm pool after the job
    instance_type: str | None
    count: int = Field(ge=0)
    seconds: Money
    usd_per_hour: Decimal | None = None
    compute_cost: Money = ZERO


class _CostFields(_Frozen):
    component: Component | None = None
    state: StepState
    running: bool = False
    instances: tuple[InstanceUse, ...] = ()
    billable_seconds: Money = ZERO  # wall-clock seconds each instance is billed for
    instance_seconds: Money = ZERO  # sum over instances (warm pool included)
    compute_cost: Money = ZERO
    storage_cost: Money = ZERO
    spot_savings_percent: Decimal | None = None
    reason: str | None = None
    issues: tuple[str, ...] = ()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Decimal:
        return self.compute_cost + self.storage_cost


class JobCost(_CostFields):
    """The cost of one SageMaker job (so far, when `running`)."""

    kind: JobKind
    job_arn: str | None = None
    status: str | None = None


class StepCost(_CostFields):
    """The cost of one pipeline step (0 unless `state` is estimated or incomplete)."""

    step_name: str
    step_type: str | None = None  # the Metadata key (TrainingJob, Condition, EMR...), None when there is none
    status: str | None = None  # StepStatus
    job_arn: str | None = None
    kind: JobKind | None = None


class Estimate(_Frozen):
    """The cost of an execution's steps. `complete`: every step is priced or costs nothing; `final`: nothing listed
    is still running or waiting for data (pass the execution's status to `step_costs` to take it into account)."""

    region: str
    currency: Literal["USD"] = "USD"
    price_source: str
    prices_as_of: date
    computed_at: AwareDatetime
    steps: tuple[StepCost, ...]
    total: Money  # exact
    complete: bool
    final: bool
    reasons: tuple[str, ...] = ()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_display(self) -> Decimal:
        """The total rounded to cents."""
        return self.total.quantize(CENT, ROUND_HALF_UP)
