"""pipeshare.adapters.price_list: live SageMaker rates from the Price List API (botocore Stubber, offline)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pipeshare.adapters.price_list import PriceListGateway
from pipeshare.logic.estimate import parse_price_table
from pipeshare.models.errors import AccessDeniedError, TransientError

pytestmark = pytest.mark.usefixtures("socket_disabled")

REGION = "us-east-1"


def product(
    plato: str,
    usd: str,
    *,
    instance: str = "ml.m5.xlarge",
    unit: str = "Hrs",
    component: str | None = None,
    sku: str = "ABCDEFGHIJKLMNOP",
) -> str:
    """One PriceList item as GetProducts returns it: a JSON string (documented shape, illustrative values)."""
    attributes = {
        "regionCode": REGION,
        "location": "US East (N. Virginia)",
        "instanceName": instance,
        "instanceType": instance,
        "platoinstancetype": plato,
        "servicecode": "AmazonSageMaker",
        "usagetype": f"USE1-{plato}:{instance}",
    }
    if component is not None:
        attributes["component"] = component
    term = f"{sku}.JRTCKXETXF"
    return json.dumps(
        {
            "product": {"productFamily": "ML Instance", "attributes": attributes, "sku": sku},
            "serviceCode": "AmazonSageMaker",
            "terms": {
                "OnDemand": {
                    term: {
                        "offerTermCode": "JRTCKXETXF",
                        "sku": sku,
                        "effectiveDate": "2024-05-01T00:00:00Z",
                        "priceDimensions": {
                            f"{term}.6YS6EN2CT7": {
                                "unit": unit,
                                "description": f"${usd} per {plato} {instance} hour",
                                "pricePerUnit": {"USD": usd},
                                "rateCode": f"{term}.6YS6EN2CT7",
                            }
                        },
                        "termAttributes": {},
                    }
                }
            },
            "version": "20240501000000",
            "publicationDate": "2024-05-01T00:00:00Z",
        }
    )


def request(instance: str = "ml.m5.xlarge", token: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "ServiceCode": "AmazonSageMaker",
        "Filters": [
            {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "ML Instance"},
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": REGION},
            {"Type": "TERM_MATCH", "Field": "instanceName", "Value": instance},
        ],
    }
    if token:
        params["NextToken"] = token
    return params


def page(*items: str, token: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": list(items)}
    if token:
        response["NextToken"] = token
    return response


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> Any:
    return boto3.client("pricing", region_name="us-east-1")


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(client: Any, clock: Clock) -> PriceListGateway:
    return PriceListGateway(client, ttl_seconds=60, clock=clock)


def test_rate_is_the_on_demand_hourly_usd_of_the_component_across_pages(
    gateway: PriceListGateway, stubber: Stubber
) -> None:
    # Given two pages: hosting and spot training on the first, training on the second
    stubber.add_response(
        "get_products",
        page(product("Hosting", "0.2300000000"), product("SpotTraining", "0.0690000000"), token="t1"),
        request(),
    )
    stubber.add_response("get_products", page(product("Training", "0.2300000000")), request(token="t1"))

    # When the training rate is looked up
    rate = gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge")

    # Then it is the training product's hourly USD price, exact
    assert rate == Decimal("0.23")
    assert str(rate) == "0.23"


def test_transform_matches_the_batch_transform_product(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given a hosting product and a batch transform product at different rates
    stubber.add_response(
        "get_products", page(product("Hosting", "0.2400000000"), product("BatchTransform", "0.2300000000")), request()
    )

    # When / Then
    assert gateway.usd_per_hour(REGION, "transform", "ml.m5.xlarge") == Decimal("0.23")


def test_component_attribute_is_matched_too(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given a product naming its component in the `component` attribute
    stubber.add_response("get_products", page(product("Other", "0.2300000000", component="Processing")), request())

    # When / Then
    assert gateway.usd_per_hour(REGION, "processing", "ml.m5.xlarge") == Decimal("0.23")


def test_no_matching_product_gives_none(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given only products of other components
    stubber.add_response("get_products", page(product("Hosting", "0.2300000000")), request())

    # When / Then the caller keeps the shipped rate
    assert gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge") is None


def test_disagreeing_products_give_none(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given two training products with different hourly rates
    stubber.add_response(
        "get_products",
        page(product("Training", "0.2300000000", sku="A"), product("Training", "0.2500000000", sku="B")),
        request(),
    )

    # When / Then no single rate is trusted
    assert gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge") is None


def test_non_hourly_and_zero_dimensions_are_ignored(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given a per-GB-month dimension and a zero (free tier) hourly one
    stubber.add_response(
        "get_products",
        page(
            product("Training", "0.1400000000", unit="GB-Mo", sku="A"),
            product("Training", "0.0000000000", sku="B"),
        ),
        request(),
    )

    # When / Then
    assert gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge") is None


def test_answers_are_cached_within_the_ttl(gateway: PriceListGateway, stubber: Stubber, clock: Clock) -> None:
    # Given one stubbed answer
    stubber.add_response("get_products", page(product("Training", "0.2300000000")), request())

    # When the same rate is asked twice within the TTL
    first = gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge")
    clock.now += 59
    second = gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge")

    # Then one call answered both (the Stubber would fail on a second call)
    assert first == second == Decimal("0.23")


def test_none_is_cached_too(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given an empty answer
    stubber.add_response("get_products", page(), request())

    # When / Then the second lookup does not call again
    assert gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge") is None
    assert gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge") is None


def test_cache_expires_after_the_ttl(gateway: PriceListGateway, stubber: Stubber, clock: Clock) -> None:
    # Given two answers, the price changing in between
    stubber.add_response("get_products", page(product("Training", "0.2300000000")), request())
    stubber.add_response("get_products", page(product("Training", "0.2100000000")), request())

    # When the rate is asked, then again after the TTL
    first = gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge")
    clock.now += 61
    second = gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge")

    # Then the second answer is fresh
    assert (first, second) == (Decimal("0.23"), Decimal("0.21"))


def test_throttling_is_transient_and_not_cached(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given a throttled call, then a good one
    stubber.add_client_error("get_products", "ThrottlingException", "Rate exceeded", 400, expected_params=request())
    stubber.add_response("get_products", page(product("Training", "0.2300000000")), request())

    # When / Then the first lookup raises a TransientError, and the next one calls again
    with pytest.raises(TransientError, match="ThrottlingException"):
        gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge")
    assert gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge") == Decimal("0.23")


def test_access_denied_is_translated(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given a role without pricing:GetProducts
    stubber.add_client_error("get_products", "AccessDeniedException", "not authorized", 400, expected_params=request())

    # When / Then
    with pytest.raises(AccessDeniedError):
        gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge")


def test_unknown_component_is_refused_without_a_call(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given / When / Then (no response is stubbed: a call would fail the test)
    with pytest.raises(ValueError, match="unknown component"):
        gateway.usd_per_hour(REGION, "hosting", "ml.m5.xlarge")


def test_override_document_merges_into_a_price_table(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given a live training rate for one type and none for another
    stubber.add_response("get_products", page(product("Training", "0.2100000000")), request())
    stubber.add_response("get_products", page(), request("ml.c5.xlarge"))
    table = parse_price_table(
        {
            "source": "shipped",
            "as_of": "2024-05-01",
            "regions": {REGION: {"training": {"ml.m5.xlarge": "0.23", "ml.c5.xlarge": "0.204"}}},
        }
    )

    # When the override is built and merged
    override = gateway.override(REGION, [("training", "ml.m5.xlarge"), ("training", "ml.c5.xlarge")])
    merged = table.merge(override)

    # Then the live rate replaces the shipped one, and the other is kept
    assert override["regions"] == {REGION: {"training": {"ml.m5.xlarge": "0.21"}}}
    assert merged.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.21")
    assert merged.price(REGION, "training", "ml.c5.xlarge") == Decimal("0.204")
    assert merged.source.startswith("AWS Price List API")
