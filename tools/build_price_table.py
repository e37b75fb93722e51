"""Build pipeshare's price table (layers/common/pipeshare/data/prices.json) from AWS Price List bulk offer files.

    .venv/bin/python tools/build_price_table.py OFFER.json [OFFER2.json ...] -o layers/common/pipeshare/data/prices.json
    make prices OFFER=index.json

Input: the AmazonSageMaker offer file, whole-service or per region (`index.json` of
https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/index.json or of a region), in the
format the AWS Billing guide documents ("Reading the service price list file"): `formatVersion`, `offerCode`,
`version`, `publicationDate`, `products` {sku: {sku, productFamily, attributes}}, `terms.OnDemand` {sku: {term code:
{priceDimensions: {rate code: {unit, pricePerUnit.USD, description}}, effectiveDate}}}.

Kept: the on-demand hourly USD rate of every training, processing and batch transform product (`productFamily`
"ML Instance"; the component from `component` / `platoinstancetype` / `usagetype`, as the runtime lookup reads it:
pipeshare.adapters.price_list.component_of) for every instance type in every commercial region of the file, and the
region's ML storage rate (the GB-Mo dimension described as training job ML storage). Dropped: spot training, hosting,
notebooks and every other product; GovCloud and China regions and locations that are not AWS Regions (Outposts,
Local Zones); a figure the file gives several different rates for (reported). Every figure cites the offer file, and
the table's source and as_of are the file's version and publication date.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeshare.adapters.price_list import SERVICE_CODE, component_of, hourly_usd, storage_usd
from pipeshare.logic.estimate import parse_price_table
from pipeshare.models.errors import PriceTableError
from pipeshare.models.estimates import PriceTable

INSTANCE_FAMILY = "ML Instance"
INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9-]+$")
REGION_CODE = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
NON_COMMERCIAL_PREFIXES = ("us-gov-", "cn-")  # AWS GovCloud (US) and the China regions
OFFER_URL = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/{version}/index.json"
STORAGE = "storage_gb_month"


class OfferError(ValueError):
    """A file is not an AmazonSageMaker offer file in the documented format."""


@dataclass
class Collected:
    """Rates found in the offer files: (region, component, instance type) -> {rate: source ids}."""

    rates: dict[tuple[str, str, str], dict[Decimal, set[str]]] = field(default_factory=lambda: defaultdict(dict))
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    published: list[date] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)

    def add(self, key: tuple[str, str, str], rate: Decimal, source_id: str) -> None:
        self.rates[key].setdefault(rate, set()).add(source_id)


def load_offer(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OfferError(f"{path}: cannot read a JSON offer file ({exc})") from exc
    if not isinstance(document, dict):
        raise OfferError(f"{path}: an offer file is a JSON object")
    missing = [
        k
        for k in ("formatVersion", "offerCode", "version", "publicationDate", "products", "terms")
        if k not in document
    ]
    if missing:
        raise OfferError(f"{path}: not an offer file, missing {', '.join(missing)}")
    if document["offerCode"] != SERVICE_CODE:
        raise OfferError(f"{path}: offer {document['offerCode']!r}, expected {SERVICE_CODE}")
    if not isinstance(document["products"], dict) or not isinstance(document["terms"], dict):
        raise OfferError(f"{path}: products and terms must be JSON objects")
    return document


def _publication(document: Mapping[str, Any]) -> date:
    try:
        return datetime.fromisoformat(str(document["publicationDate"]).replace("Z", "+00:00")).date()
    except ValueError as exc:
        raise OfferError(f"publicationDate {document['publicationDate']!r} is not a date") from exc


def _region(attributes: Mapping[str, Any]) -> str | None:
    """The commercial AWS Region of a product, or None (GovCloud, China, Outposts, Local Zones, no region)."""
    region = str(attributes.get("regionCode", ""))
    location_type = attributes.get("locationType")
    if not REGION_CODE.match(region) or region.startswith(NON_COMMERCIAL_PREFIXES):
        return None
    if location_type is not None and location_type != "AWS Region":
        return None
    return region


def _instance_type(attributes: Mapping[str, Any]) -> str | None:
    """instanceName, else instanceType (seen as "ml.m5.xlarge-Processing"), else the usagetype's tail."""
    for candidate in (
        attributes.get("instanceName"),
        str(attributes.get("instanceType", "")).split("-", 1)[0],
        str(attributes.get("usagetype", "")).rsplit(":", 1)[-1],
    ):
        if candidate and INSTANCE_TYPE.match(str(candidate)):
            return str(candidate)
    return None


def collect(document: Mapping[str, Any], found: Collected, *, retrieved: date) -> None:
    """Add the kept rates of one offer file to `found` (and the file as a source)."""
    version, published = str(document["version"]), _publication(document)
    source_id = f"aws-offer-{version}"[:64].lower()
    found.sources[source_id] = {
        "title": f"AWS Price List bulk offer file {SERVICE_CODE}, version {version}",
        "url": OFFER_URL.format(version=version),
        "retrieved": retrieved.isoformat(),
        "published": published.isoformat(),
        "authoritative": True,
    }
    found.published.append(published)
    found.versions.append(version)
    on_demand = document["terms"].get("OnDemand") or {}
    for sku, product in document["products"].items():
        why = _keep(product, on_demand.get(sku), source_id, found)
        if why:
            found.skipped[why] += 1


def _keep(product: Any, terms: Any, source_id: str, found: Collected) -> str | None:
    """Record a product's rate; the reason it is dropped otherwise."""
    if not isinstance(product, dict) or not isinstance(product.get("attributes"), dict):
        return "malformed product"
    attributes = product["attributes"]
    region = _region(attributes)
    if region is None:
        return "not a commercial AWS Region"
    priced = {"terms": {"OnDemand": terms if isinstance(terms, dict) else {}}}
    storage = storage_usd(priced)
    if storage:
        for rate in storage:
            found.add((region, STORAGE, ""), rate, source_id)
        return None
    if product.get("productFamily") != INSTANCE_FAMILY:
        return f"product family {product.get('productFamily')!r}"
    component, instance_type = component_of(attributes), _instance_type(attributes)
    if component is None:
        return f"component {attributes.get('platoinstancetype') or attributes.get('component')!r}"
    if instance_type is None:
        return "no ml.* instance type"
    rates = hourly_usd(priced)
    if not rates:
        return "no on-demand hourly USD rate"
    for rate in rates:
        found.add((region, component, instance_type), rate, source_id)
    return None


def build(paths: Sequence[Path], *, retrieved: date) -> tuple[PriceTable, list[str]]:
    """The price table of the offer files, and what was dropped (one line each)."""
    found = Collected()
    for path in paths:
        collect(load_offer(path), found, retrieved=retrieved)
    regions: dict[str, dict[str, Any]] = defaultdict(dict)
    citations: dict[str, dict[str, Any]] = defaultdict(dict)
    report = [f"skipped {n} product(s): {why}" for why, n in sorted(found.skipped.items())]
    for (region, component, instance_type), by_rate in sorted(found.rates.items()):
        label = f"{region} {component} {instance_type}".strip()
        if len(by_rate) != 1:
            report.append(
                f"dropped {label}: the files give {len(by_rate)} rates ({', '.join(map(str, sorted(by_rate)))})"
            )
            continue
        ((rate, ids),) = by_rate.items()
        if component == STORAGE:
            regions[region][STORAGE] = str(rate)
            citations[region][STORAGE] = sorted(ids)
        else:
            regions[region].setdefault(component, {})[instance_type] = str(rate)
            citations[region].setdefault(component, {})[instance_type] = sorted(ids)
    document = {
        "source": "AWS Price List bulk offer file(s) "
        + ", ".join(f"{SERVICE_CODE} version {v}" for v in found.versions)
        + f"; built by tools/build_price_table.py on {retrieved.isoformat()}",
        "as_of": max(found.published).isoformat(),
        "currency": "USD",
        "notes": _notes(),
        "regions": dict(sorted(regions.items())),
        "sources": found.sources,
        "citations": dict(sorted(citations.items())),
    }
    return parse_price_table(document), report


def _notes() -> list[str]:
    return [
        "USD per instance-hour, on-demand (no Savings Plans, no free tier, no spot); storage: ML storage of training "
        "jobs, USD per GB-month.",
        "Generated by tools/build_price_table.py from the AWS Price List offer file(s) cited in `sources`; at run "
        "time an SSM price override and the AWS Price List API take precedence (README, Prices).",
    ]


def dump(table: PriceTable) -> str:
    """The table as prices.json holds it: figures as strings (exact decimals), stable key order."""
    document = table.model_dump(mode="json", exclude_defaults=True)
    ordered = {"source": document.pop("source"), "as_of": document.pop("as_of"), "currency": table.currency}
    return json.dumps(_strings({**ordered, **document}), indent=2) + "\n"


def _strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if isinstance(value, float | Decimal):
        return str(value)
    return value


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("offers", nargs="+", type=Path, help="AmazonSageMaker offer file(s) (index.json)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the price table")
    parser.add_argument(
        "--retrieved",
        type=date.fromisoformat,
        default=datetime.now(UTC).date(),
        help="the date the offer files were downloaded (default: today)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        table, report = build(args.offers, retrieved=args.retrieved)
    except (OfferError, PriceTableError) as exc:
        print(f"build_price_table: {exc}", file=sys.stderr)
        return 2
    args.output.write_text(dump(table), encoding="utf-8")
    kept = sum(len(p.training) + len(p.processing) + len(p.transform) for p in table.regions.values())
    print(
        f"wrote {args.output}: {kept} rate(s) in {len(table.regions)} region(s), as of {table.as_of}", file=sys.stderr
    )
    for line in report:
        print(f"  {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
