"""SageMaker on-demand rates from the AWS Price List API (`pricing:GetProducts`), cached in-process and in the owner
table, laid over the price table (docs/aws-facts.md §4.5).

Order of the sources, for every (component, instance type) pair a job uses and for the region's ML storage: a rate
from the SSM override stays; otherwise the Price List's rate, when it has exactly one hourly on-demand rate; otherwise
the shipped table's rate. The Price List's errors (throttling, access denied, ...) never fail the estimate: they are
logged, counted (`PriceListErrors`) and the next source is used; they are not cached.

Instance rates: GetProducts with `productFamily` = "ML Instance", `regionCode` and `instanceName`; a product is a
component's when its `component` or `platoinstancetype` attribute names it, or its `usagetype` has the component's
usage segment (`USE1-Train:ml.m5.large`); spot training (`SpotTraining`, `TrSpt`), hosting and the rest match none.
ML storage [U]: GetProducts with `regionCode` and `volumeType` = "General Purpose"; the rate is the GB-Mo dimension
described as "... Training Job ML storage" (the wording of SageMaker's invoice lines). Neither the storage product's
attributes nor that wording are documented: when nothing matches, the storage rate stays the table's (or none).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from aws_lambda_powertools.metrics import MetricUnit

from pipeshare.adapters.aws_errors import translated
from pipeshare.models.errors import PipeshareError
from pipeshare.observability import logger, metrics

if TYPE_CHECKING:
    from mypy_boto3_pricing import PricingClient
    from mypy_boto3_pricing.type_defs import FilterTypeDef

    from pipeshare.models.estimates import PriceTable

SERVICE_CODE = "AmazonSageMaker"
PRICING_REGION = "us-east-1"  # the Price List API endpoints are us-east-1, eu-central-1 and ap-south-1
PRODUCT_FAMILY = "ML Instance"
# component -> the `component` / `platoinstancetype` values that name it, and its `usagetype` segment (aws-facts §4.5)
COMPONENT_NAMES: dict[str, frozenset[str]] = {
    "training": frozenset({"Training"}),
    "processing": frozenset({"Processing"}),
    "transform": frozenset({"BatchTransform"}),
}
USAGE_SEGMENTS: dict[str, str] = {"training": "Train", "processing": "Processing", "transform": "Tsform"}
SPOT_SEGMENT = "TrSpt"  # managed spot training's usage type segment
STORAGE = "storage"
STORAGE_KEY = "storage#training-job-ml-storage"  # the cache key of a region's ML storage rate
STORAGE_FILTER = ("volumeType", "General Purpose")  # [U] see the module docstring
STORAGE_DESCRIPTION = "training job ml storage"
# How long a Price List answer (a rate, or "no single rate") is reused. A setting (PRICE_CACHE_SECONDS); AWS states no
# update frequency for the Price List that pipeshare could rely on, so this is a choice, not a figure from AWS.
DEFAULT_TTL_SECONDS = 24 * 3600
ErrorReporter = Callable[[str, str, Exception], None]


def component_of(attributes: Mapping[str, Any]) -> str | None:
    """The component (training, processing, transform) a product's attributes name, or None (hosting, spot, ...)."""
    names = {str(attributes.get("component", "")), str(attributes.get("platoinstancetype", ""))}
    operation = str(attributes.get("usagetype", "")).split(":", 1)[0]
    segment = operation.split("-", 1)[1] if "-" in operation else operation  # USE1-Train -> Train
    if any("spot" in n.lower() for n in names) or segment == SPOT_SEGMENT:
        return None
    for component, known in COMPONENT_NAMES.items():
        if names & known or segment == USAGE_SEGMENTS[component]:
            return component
    return None


def _usd(text: Any) -> Decimal | None:
    try:
        rate = Decimal(str(text))
    except InvalidOperation:
        return None
    if not rate.is_finite() or rate <= 0:
        return None
    return rate.quantize(Decimal(1)) if rate == rate.to_integral_value() else rate.normalize()  # "0.2300" -> 0.23


def _dimensions(product: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for offer in (product.get("terms", {}).get("OnDemand") or {}).values():
        yield from (offer.get("priceDimensions") or {}).values()


def hourly_usd(product: Mapping[str, Any]) -> set[Decimal]:
    """Every positive hourly USD rate in a product's on-demand terms."""
    rates = {
        _usd(d.get("pricePerUnit", {}).get("USD"))
        for d in _dimensions(product)
        if str(d.get("unit", "")).lower().startswith("hr")
    }
    return {r for r in rates if r is not None}


def storage_usd(product: Mapping[str, Any]) -> set[Decimal]:
    """Every positive USD per GB-month rate described as training job ML storage (warm pools excluded)."""
    rates = set()
    for d in _dimensions(product):
        text = str(d.get("description", "")).lower()
        if str(d.get("unit", "")).lower() == "gb-mo" and STORAGE_DESCRIPTION in text and "warm pool" not in text:
            rates.add(_usd(d.get("pricePerUnit", {}).get("USD")))
    return {r for r in rates if r is not None}


class PriceListGateway:
    """USD rates of SageMaker on-demand products, looked up in the Price List (no cache: see PriceListLookup)."""

    def __init__(self, client: PricingClient | None = None) -> None:
        # built on first use: most estimates find every rate in the in-process or the table cache and never ask
        self._client = client

    @property
    def _pricing(self) -> PricingClient:
        if self._client is None:
            self._client = boto3.client("pricing", region_name=PRICING_REGION)
        return self._client

    def usd_per_hour(self, region: str, component: str, instance_type: str) -> Decimal | None:
        """The on-demand rate, or None when the Price List has no single hourly rate for it."""
        if component not in COMPONENT_NAMES:
            raise ValueError(f"unknown component {component!r} (expected one of {', '.join(COMPONENT_NAMES)})")
        filters = {"productFamily": PRODUCT_FAMILY, "regionCode": region, "instanceName": instance_type}
        found: set[Decimal] = set()
        for product in self._products(filters):
            if component_of(product.get("product", {}).get("attributes", {})) == component:
                found |= hourly_usd(product)
        return found.pop() if len(found) == 1 else None

    def storage_usd_per_gb_month(self, region: str) -> Decimal | None:
        """The ML storage rate of training jobs, or None when the Price List has no single one."""
        found: set[Decimal] = set()
        for product in self._products({"regionCode": region, STORAGE_FILTER[0]: STORAGE_FILTER[1]}):
            found |= storage_usd(product)
        return found.pop() if len(found) == 1 else None

    def _products(self, filters: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        request: list[FilterTypeDef] = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()]
        with translated():
            for page in self._pricing.get_paginator("get_products").paginate(ServiceCode=SERVICE_CODE, Filters=request):
                for item in page.get("PriceList", []):
                    product = json.loads(item) if isinstance(item, str) else item
                    if isinstance(product, dict):
                        yield product


class RateCache(Protocol):
    """Where Price List answers are kept between containers (adapters/price_cache.py)."""

    def get_many(self, region: str, keys: list[str], *, now: float) -> dict[str, Decimal | None]: ...

    def put(self, region: str, key: str, rate: Decimal | None, *, now: float, ttl_seconds: int) -> None: ...


def report_error(source: str, what: str, exc: Exception) -> None:
    """Log and count an error of a price source (the estimate goes on with the next source)."""
    metric = "PriceListErrors" if source == "price-list" else "PriceCacheErrors"
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    logger.error(
        "price source failed: the next source is used",
        extra={"price_source": source, "lookup": what, "error_type": type(exc).__name__, "error": str(exc)[:500]},
    )


class PriceListLookup:
    """Implements ports.PriceLookup: answers cached in-process and in `cache` (the owner table) for `ttl_seconds`;
    one cache read (BatchGetItem) per fill for what the process does not hold, GetProducts only for what neither
    holds, one cache write per new answer."""

    def __init__(
        self,
        gateway: PriceListGateway | None = None,
        cache: RateCache | None = None,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        on_error: ErrorReporter = report_error,
    ) -> None:
        self._gateway = gateway or PriceListGateway()
        self._cache = cache
        self._ttl = ttl_seconds
        self._clock = clock
        self._on_error = on_error
        self._memory: dict[tuple[str, str], tuple[float, Decimal | None]] = {}

    def fill(self, prices: PriceTable, region: str, wanted: list[tuple[str, str]]) -> PriceTable:
        keys = [f"{c}#{t}" for c, t in dict.fromkeys(wanted) if c in COMPONENT_NAMES and t]
        keys = [k for k in keys if prices.origin(region, *k.split("#", 1)) != "override"]
        if prices.origin(region, STORAGE) != "override":
            keys.append(STORAGE_KEY)
        answers = self._answers(region, keys)
        rates: dict[tuple[str, str], Decimal] = {}
        for key, rate in answers.items():
            if rate is not None and key != STORAGE_KEY:
                component, instance_type = key.split("#", 1)
                rates[(component, instance_type)] = rate
        return prices.with_price_list(region, rates, storage_gb_month=answers.get(STORAGE_KEY))

    def _answers(self, region: str, keys: Iterable[str]) -> dict[str, Decimal | None]:
        now = self._clock()
        answers, missing = {}, []
        for key in keys:
            held = self._memory.get((region, key))
            if held is not None and now < held[0]:
                answers[key] = held[1]
            else:
                missing.append(key)
        answers.update(self._from_cache(region, missing, now))
        answers.update(self._from_price_list(region, [k for k in missing if k not in answers], now))
        return answers

    def _from_cache(self, region: str, keys: list[str], now: float) -> dict[str, Decimal | None]:
        if not keys or self._cache is None:
            return {}
        try:
            found = self._cache.get_many(region, keys, now=now)
        except PipeshareError as exc:
            self._on_error("cache", f"{region}: {len(keys)} rate(s)", exc)
            return {}
        for key, rate in found.items():
            self._memory[(region, key)] = (now + self._ttl, rate)
        return found

    def _from_price_list(self, region: str, keys: list[str], now: float) -> dict[str, Decimal | None]:
        answers: dict[str, Decimal | None] = {}
        for key in keys:
            try:
                rate = self._ask(region, key)
            except PipeshareError as exc:
                self._on_error("price-list", f"{region} {key}", exc)
                break  # throttled or denied: the rest would fail the same way; the table's rates are used
            answers[key] = rate
            self._memory[(region, key)] = (now + self._ttl, rate)
            self._remember(region, key, rate, now)
        return answers

    def _ask(self, region: str, key: str) -> Decimal | None:
        if key == STORAGE_KEY:
            return self._gateway.storage_usd_per_gb_month(region)
        component, instance_type = key.split("#", 1)
        return self._gateway.usd_per_hour(region, component, instance_type)

    def _remember(self, region: str, key: str, rate: Decimal | None, now: float) -> None:
        if self._cache is None:
            return
        try:
            self._cache.put(region, key, rate, now=now, ttl_seconds=self._ttl)
        except PipeshareError as exc:
            self._on_error("cache", f"{region} {key}", exc)
