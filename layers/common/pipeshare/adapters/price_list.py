"""Live SageMaker on-demand rates from the AWS Price List API (optional; the shipped table is the default).

The query filters on `productFamily` = "ML Instance", `regionCode` and `instanceName`, and the products returned are
matched to the component on their `component` or `platoinstancetype` attribute (the spelling for batch transform is
not documented, so the match is done here rather than in the filter). A rate is the `pricePerUnit.USD` of an hourly
`terms.OnDemand.*.priceDimensions.*`. No product, or products that disagree, give None: the caller keeps the
shipped table's rate. Answers (None included) are cached in-process for `ttl_seconds`; errors are not cached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeshare.adapters.aws_errors import translate

if TYPE_CHECKING:
    from mypy_boto3_pricing import PricingClient

SERVICE_CODE = "AmazonSageMaker"
PRICING_REGION = "us-east-1"  # the Price List API endpoints are us-east-1, eu-central-1 and ap-south-1
PRODUCT_FAMILY = "ML Instance"
# component -> the attribute values that name it (`component` / `platoinstancetype`); spot training is excluded.
COMPONENT_NAMES: dict[str, frozenset[str]] = {
    "training": frozenset({"Training"}),
    "processing": frozenset({"Processing"}),
    "transform": frozenset({"BatchTransform", "Batch Transform", "Transform"}),
}
DEFAULT_TTL_SECONDS = 6 * 3600


class PriceListGateway:
    """USD per instance-hour of a SageMaker component, looked up live and cached."""

    def __init__(
        self,
        client: PricingClient | None = None,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pricing = client or boto3.client("pricing", region_name=PRICING_REGION)
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, Decimal | None]] = {}

    def usd_per_hour(self, region: str, component: str, instance_type: str) -> Decimal | None:
        """The on-demand rate, or None when the Price List has no single hourly rate for it."""
        if component not in COMPONENT_NAMES:
            raise ValueError(f"unknown component {component!r} (expected one of {', '.join(COMPONENT_NAMES)})")
        key = (region, component, instance_type)
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        rate = self._lookup(region, component, instance_type)
        self._cache[key] = (self._clock() + self._ttl, rate)
        return rate

    def override(self, region: str, wanted: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """A PriceTable override document with the live rates found for (component, instance type) in `region`."""
        rates: dict[str, dict[str, str]] = {}
        for component, instance_type in wanted:
            rate = self.usd_per_hour(region, component, instance_type)
            if rate is not None:
                rates.setdefault(component, {})[instance_type] = str(rate)
        return {
            "source": "AWS Price List API (GetProducts, AmazonSageMaker, on-demand)",
            "as_of": datetime.now(UTC).date().isoformat(),
            "regions": {region: rates} if rates else {},
        }

    def _lookup(self, region: str, component: str, instance_type: str) -> Decimal | None:
        names = COMPONENT_NAMES[component]
        found: set[Decimal] = set()
        try:
            for product in self._products(region, instance_type):
                attributes = product.get("product", {}).get("attributes", {})
                if {attributes.get("component"), attributes.get("platoinstancetype")} & names:
                    found.update(_hourly_usd(product))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return found.pop() if len(found) == 1 else None

    def _products(self, region: str, instance_type: str) -> Iterator[dict[str, Any]]:
        filters = [
            {"Type": "TERM_MATCH", "Field": "productFamily", "Value": PRODUCT_FAMILY},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "instanceName", "Value": instance_type},
        ]
        paginator = self._pricing.get_paginator("get_products")
        for page in paginator.paginate(ServiceCode=SERVICE_CODE, Filters=filters):
            for item in page.get("PriceList", []):
                product = json.loads(item) if isinstance(item, str) else item
                if isinstance(product, dict):
                    yield product


def _hourly_usd(product: dict[str, Any]) -> set[Decimal]:
    """Every positive hourly USD rate in a product's on-demand terms."""
    rates: set[Decimal] = set()
    for offer in (product.get("terms", {}).get("OnDemand") or {}).values():
        for dimension in (offer.get("priceDimensions") or {}).values():
            if not str(dimension.get("unit", "")).lower().startswith("hr"):
                continue
            text = str(dimension.get("pricePerUnit", {}).get("USD", ""))
            try:
                rate = Decimal(text.rstrip("0").rstrip(".") if "." in text else text)
            except InvalidOperation:
                continue
            if rate.is_finite() and rate > 0:
                rates.add(rate)
    return rates


class PriceListLookup:
    """Implements ports.PriceLookup on top of PriceListGateway (entries merged over the table, cached)."""

    def __init__(self, gateway: PriceListGateway | None = None) -> None:
        self._gateway = gateway or PriceListGateway()

    def fill(self, prices: Any, region: str, wanted: list[tuple[str, str]]) -> Any:
        document = self._gateway.override(region, wanted)
        return prices.merge(document) if document.get("regions") else prices
