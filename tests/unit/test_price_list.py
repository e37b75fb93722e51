"""The price sources: the AWS Price List gateway (botocore Stubber, offline), the order override > Price List > shipped
table, the in-process and owner-table caches, and an invalid SSM override (never breaks the estimate)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from pipeshare.adapters import owner_parameters, price_list
from pipeshare.adapters.price_cache import DynamoDbPriceCache
from pipeshare.adapters.price_list import STORAGE_KEY, PriceListGateway, PriceListLookup, component_of
from pipeshare.logic.estimate import load_shipped_prices, parse_price_table
from pipeshare.models.errors import AccessDeniedError, PipeshareError, PriceTableError, TransientError
from pipeshare.models.estimates import STORAGE, PriceTable

pytestmark = pytest.mark.usefixtures("socket_disabled")

REGION = "us-east-1"
TABLE_NAME = "pipeshare-OwnerTable"


def product(
    plato: str,
    usd: str,
    *,
    instance: str = "ml.m5.xlarge",
    unit: str = "Hrs",
    component: str | None = None,
    usage: str | None = None,
    sku: str = "ABCDEFGHIJKLMNOP",
    description: str | None = None,
    family: str = "ML Instance",
) -> str:
    """One PriceList item as GetProducts returns it: a JSON string (documented shape, illustrative values)."""
    attributes = {
        "regionCode": REGION,
        "location": "US East (N. Virginia)",
        "instanceName": instance,
        "instanceType": instance,
        "platoinstancetype": plato,
        "servicecode": "AmazonSageMaker",
        "usagetype": usage or f"USE1-{plato}:{instance}",
    }
    if component is not None:
        attributes["component"] = component
    term = f"{sku}.JRTCKXETXF"
    dimension = {
        "unit": unit,
        "description": description or f"${usd} per {plato} {instance} hour",
        "pricePerUnit": {"USD": usd},
        "rateCode": f"{term}.6YS6EN2CT7",
    }
    return json.dumps(
        {
            "product": {"productFamily": family, "attributes": attributes, "sku": sku},
            "serviceCode": "AmazonSageMaker",
            "terms": {"OnDemand": {term: {"sku": sku, "priceDimensions": {f"{term}.6YS6EN2CT7": dimension}}}},
            "version": "20260924235900",
            "publicationDate": "2026-09-24T23:59:00Z",
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


STORAGE_REQUEST = {
    "ServiceCode": "AmazonSageMaker",
    "Filters": [
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": REGION},
        {"Type": "TERM_MATCH", "Field": "volumeType", "Value": "General Purpose"},
    ],
}


def page(*items: str, token: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": list(items)}
    if token:
        response["NextToken"] = token
    return response


@pytest.fixture
def client() -> Any:
    return boto3.client("pricing", region_name="us-east-1")


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def gateway(client: Any) -> PriceListGateway:
    return PriceListGateway(client)


# ------------------------------------------------------------------------------------------------ the gateway


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
        "get_products",
        page(
            product("Hosting", "0.2400000000", sku="A"),
            product("BatchTransform", "0.2300000000", usage="USE1-Tsform:ml.m5.xlarge", sku="B"),
        ),
        request(),
    )

    # When / Then
    assert gateway.usd_per_hour(REGION, "transform", "ml.m5.xlarge") == Decimal("0.23")


@pytest.mark.parametrize(
    ("attributes", "component"),
    [
        ({"component": "Processing", "platoinstancetype": "Other"}, "processing"),
        ({"platoinstancetype": "Training"}, "training"),
        ({"usagetype": "USE1-Train:ml.m5.large"}, "training"),
        ({"usagetype": "EU-Processing:ml.m5.xlarge"}, "processing"),
        ({"usagetype": "USE1-Tsform:ml.c5.9xlarge"}, "transform"),
        ({"platoinstancetype": "BatchTransform"}, "transform"),
        ({"component": "Hosting", "usagetype": "USE1-Host:ml.m5.large"}, None),
        ({"platoinstancetype": "SpotTraining", "component": "Training"}, None),
        ({"component": "Training", "usagetype": "USE1-TrSpt:ml.m5.xlarge"}, None),
        ({"usagetype": "USE1-TrainingPlanUpfrontFee:ml.p4d.24xlarge"}, None),
        ({"usagetype": "USE1-Studio:JupyterLab-ml.t3.medium"}, None),
        ({}, None),
    ],
)
def test_component_of_reads_component_platoinstancetype_or_usage_type(
    attributes: dict[str, str], component: str | None
) -> None:
    # Given / When / Then: spot training, hosting, upfront fees and notebooks are no estimated component
    assert component_of(attributes) == component


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


@pytest.mark.parametrize(
    ("usd", "exact"), [("1.5000000000", "1.5"), ("10.0000000000", "10"), ("0.7364000000", "0.7364")]
)
def test_rates_are_exact_decimals_without_trailing_zeros(
    gateway: PriceListGateway, stubber: Stubber, usd: str, exact: str
) -> None:
    # Given a rate as the Price List writes it (10 decimals)
    stubber.add_response("get_products", page(product("Training", usd)), request())

    # When / Then it reads as the figure, written plainly
    assert str(gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge")) == exact


def test_storage_rate_is_the_training_job_ml_storage_dimension(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given storage products: training job, warm pool and endpoint ML storage
    def storage(usd: str, what: str, sku: str) -> str:
        text = f"${usd} per GB-Mo of {what} ML storage"
        return product("x", usd, unit="GB-Mo", description=text, sku=sku, family="Storage")

    stubber.add_response(
        "get_products",
        page(
            storage("0.1400000000", "Training Job", "A"),
            storage("0.1400000000", "Training Warm Pool Job", "B"),
            storage("0.1500000000", "Endpoint", "C"),
        ),
        STORAGE_REQUEST,
    )

    # When / Then the training job storage rate is the one
    assert gateway.storage_usd_per_gb_month(REGION) == Decimal("0.14")


def test_throttling_is_transient(gateway: PriceListGateway, stubber: Stubber) -> None:
    # Given a throttled call
    stubber.add_client_error("get_products", "ThrottlingException", "Rate exceeded", 400, expected_params=request())

    # When / Then
    with pytest.raises(TransientError, match="ThrottlingException"):
        gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge")


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


# --------------------------------------------------------------------------------------- the order of the sources


SHIPPED = parse_price_table(
    {
        "source": "shipped",
        "as_of": "2026-09-24",
        "regions": {
            REGION: {
                "training": {"ml.m5.xlarge": "0.23", "ml.c5.xlarge": "0.204"},
                "processing": {"ml.m5.xlarge": "0.23"},
                "storage_gb_month": "0.14",
            }
        },
    }
)


class FakeGateway:
    """Answers from `rates` ({cache key: rate or None}); raises `error` on every call when set; records the calls."""

    def __init__(self, rates: dict[str, Decimal | None] | None = None, error: PipeshareError | None = None) -> None:
        self.rates = dict(rates or {})
        self.error = error
        self.calls: list[str] = []

    def usd_per_hour(self, region: str, component: str, instance_type: str) -> Decimal | None:
        return self._answer(f"{component}#{instance_type}")

    def storage_usd_per_gb_month(self, region: str) -> Decimal | None:
        return self._answer(STORAGE_KEY)

    def _answer(self, key: str) -> Decimal | None:
        self.calls.append(key)
        if self.error is not None:
            raise self.error
        return self.rates.get(key)


class FakeCache:
    """A RateCache in memory: {(region, key): (expires_at, rate)}; raises `error` when set; records reads and writes."""

    def __init__(self, error: PipeshareError | None = None) -> None:
        self.items: dict[tuple[str, str], tuple[float, Decimal | None]] = {}
        self.error = error
        self.reads: list[list[str]] = []
        self.writes: list[tuple[str, Decimal | None]] = []

    def get_many(self, region: str, keys: list[str], *, now: float) -> dict[str, Decimal | None]:
        self.reads.append(list(keys))
        if self.error is not None:
            raise self.error
        held = {k: self.items.get((region, k)) for k in keys}
        return {k: v[1] for k, v in held.items() if v is not None and v[0] > now}

    def put(self, region: str, key: str, rate: Decimal | None, *, now: float, ttl_seconds: int) -> None:
        self.writes.append((key, rate))
        self.items[(region, key)] = (now + ttl_seconds, rate)


class Reports:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str, Exception]] = []

    def __call__(self, source: str, what: str, exc: Exception) -> None:
        self.errors.append((source, what, exc))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def lookup(
    gateway: FakeGateway, cache: FakeCache | None = None, clock: Clock | None = None, reports: Reports | None = None
) -> PriceListLookup:
    return PriceListLookup(
        gateway,  # type: ignore[arg-type]
        cache,
        ttl_seconds=3600,
        clock=clock or Clock(),
        on_error=reports or Reports(),
    )


def test_price_list_rate_replaces_the_shipped_rate_and_says_so() -> None:
    # Given the Price List's rate for one type, none for another, and a storage rate
    gateway = FakeGateway(
        {"training#ml.m5.xlarge": Decimal("0.25"), "training#ml.c5.xlarge": None, STORAGE_KEY: Decimal("0.15")}
    )

    # When the table is filled for both
    table = lookup(gateway).fill(SHIPPED, REGION, [("training", "ml.m5.xlarge"), ("training", "ml.c5.xlarge")])

    # Then the Price List's rate replaces the shipped one, the other stays shipped, and each says where it comes from
    assert table.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.25")
    assert table.origin(REGION, "training", "ml.m5.xlarge") == "price-list"
    assert table.price(REGION, "training", "ml.c5.xlarge") == Decimal("0.204")
    assert table.origin(REGION, "training", "ml.c5.xlarge") == "shipped"
    assert (table.storage_price(REGION), table.origin(REGION, STORAGE)) == (Decimal("0.15"), "price-list")
    assert table.source == "shipped; AWS Price List API (GetProducts, AmazonSageMaker, on-demand)"
    assert SHIPPED.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.23")  # the input table is unchanged


def test_an_override_rate_stays_and_is_not_looked_up() -> None:
    # Given an SSM override of one rate and of the storage rate
    overridden = SHIPPED.merge({"regions": {REGION: {"training": {"ml.m5.xlarge": "0.20"}, "storage_gb_month": "0.1"}}})
    gateway = FakeGateway({"training#ml.m5.xlarge": Decimal("0.25"), "processing#ml.m5.xlarge": Decimal("0.26")})

    # When the table is filled
    table = lookup(gateway).fill(overridden, REGION, [("training", "ml.m5.xlarge"), ("processing", "ml.m5.xlarge")])

    # Then the overridden rates stay (nobody asked the Price List for them); the other one is the Price List's
    assert (table.price(REGION, "training", "ml.m5.xlarge"), table.origin(REGION, "training", "ml.m5.xlarge")) == (
        Decimal("0.20"),
        "override",
    )
    assert (table.storage_price(REGION), table.origin(REGION, STORAGE)) == (Decimal("0.1"), "override")
    assert table.origin(REGION, "processing", "ml.m5.xlarge") == "price-list"
    assert gateway.calls == ["processing#ml.m5.xlarge"]


def test_the_price_list_prices_what_the_table_lacks_and_nothing_else_is_invented() -> None:
    # Given a type the table lacks, priced by the Price List, and one nobody prices
    gateway = FakeGateway({"transform#ml.g5.xlarge": Decimal("1.408")})

    # When
    table = lookup(gateway).fill(SHIPPED, REGION, [("transform", "ml.g5.xlarge"), ("training", "ml.p4d.24xlarge")])

    # Then
    assert table.price(REGION, "transform", "ml.g5.xlarge") == Decimal("1.408")
    assert table.price(REGION, "training", "ml.p4d.24xlarge") is None
    assert table.origin(REGION, "training", "ml.p4d.24xlarge") is None


def test_unknown_components_and_repeated_pairs_are_asked_once_or_not_at_all() -> None:
    # Given pairs with a hosting component, an empty type and a repeat
    gateway = FakeGateway()
    wanted = [("hosting", "ml.m5.xlarge"), ("training", ""), ("training", "ml.m5.xlarge"), ("training", "ml.m5.xlarge")]

    # When
    lookup(gateway).fill(SHIPPED, REGION, wanted)

    # Then the Price List is asked once for the one valid pair, and for the storage rate
    assert gateway.calls == ["training#ml.m5.xlarge", STORAGE_KEY]


@pytest.mark.parametrize(
    "error", [TransientError("ThrottlingException: Rate exceeded"), AccessDeniedError("AccessDeniedException: no")]
)
def test_price_list_errors_keep_the_table_are_reported_and_not_cached(error: PipeshareError) -> None:
    # Given a Price List that fails (throttled, or the role lacks pricing:GetProducts)
    gateway, cache, reports = FakeGateway(error=error), FakeCache(), Reports()
    prices = lookup(gateway, cache, reports=reports)

    # When the table is filled for two pairs
    table = prices.fill(SHIPPED, REGION, [("training", "ml.m5.xlarge"), ("training", "ml.c5.xlarge")])

    # Then the estimate goes on with the shipped rates; one error reported; the next pair was not tried
    assert table.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.23")
    assert table.origin(REGION, "training", "ml.m5.xlarge") == "shipped"
    assert [(source, type(exc)) for source, _, exc in reports.errors] == [("price-list", type(error))]
    assert gateway.calls == ["training#ml.m5.xlarge"]
    assert cache.writes == []
    # And the error was not cached: the next fill asks again
    gateway.error, gateway.rates = None, {"training#ml.m5.xlarge": Decimal("0.25")}
    again = prices.fill(SHIPPED, REGION, [("training", "ml.m5.xlarge")])
    assert again.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.25")


def test_answers_are_kept_in_process_for_the_ttl() -> None:
    # Given a lookup with a cache table and an answer (a "none" answer included)
    gateway, cache, clock = FakeGateway({"training#ml.m5.xlarge": Decimal("0.25")}), FakeCache(), Clock()
    prices = lookup(gateway, cache, clock)
    wanted = [("training", "ml.m5.xlarge"), ("training", "ml.c5.xlarge")]
    prices.fill(SHIPPED, REGION, wanted)

    # When the same pairs are filled again within the TTL
    clock.now += 3599
    table = prices.fill(SHIPPED, REGION, wanted)

    # Then neither the cache table nor the Price List was asked again
    assert table.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.25")
    assert len(cache.reads) == 1
    assert gateway.calls == ["training#ml.m5.xlarge", "training#ml.c5.xlarge", STORAGE_KEY]


def test_after_the_ttl_the_answers_are_asked_again() -> None:
    # Given a filled lookup without a cache table
    gateway, clock = FakeGateway({"training#ml.m5.xlarge": Decimal("0.25")}), Clock()
    prices = lookup(gateway, clock=clock)
    prices.fill(SHIPPED, REGION, [("training", "ml.m5.xlarge")])

    # When the TTL has passed and the price changed
    clock.now += 3601
    gateway.rates["training#ml.m5.xlarge"] = Decimal("0.21")
    table = prices.fill(SHIPPED, REGION, [("training", "ml.m5.xlarge")])

    # Then the new answer is used
    assert table.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.21")
    assert gateway.calls.count("training#ml.m5.xlarge") == 2


def test_one_cache_read_per_fill_the_price_list_only_for_misses_and_one_write_per_new_answer() -> None:
    # Given a cache table holding one answer (from another container) and a Price List for the rest
    clock, cache = Clock(), FakeCache()
    cache.items[(REGION, "training#ml.m5.xlarge")] = (clock.now + 100, Decimal("0.24"))
    gateway = FakeGateway({"processing#ml.m5.xlarge": Decimal("0.26")})

    # When a fresh container fills three pairs
    table = lookup(gateway, cache, clock).fill(
        SHIPPED, REGION, [("training", "ml.m5.xlarge"), ("processing", "ml.m5.xlarge"), ("training", "ml.c5.xlarge")]
    )

    # Then one cache read asked for every key; the Price List only for the misses; each new answer written once
    assert cache.reads == [["training#ml.m5.xlarge", "processing#ml.m5.xlarge", "training#ml.c5.xlarge", STORAGE_KEY]]
    assert gateway.calls == ["processing#ml.m5.xlarge", "training#ml.c5.xlarge", STORAGE_KEY]
    assert cache.writes == [
        ("processing#ml.m5.xlarge", Decimal("0.26")),
        ("training#ml.c5.xlarge", None),
        (STORAGE_KEY, None),
    ]
    assert table.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.24")


def test_an_expired_cache_item_is_a_miss() -> None:
    # Given a cache item whose expiry has passed (DynamoDB's TTL deletion is lazy)
    clock, cache = Clock(), FakeCache()
    cache.items[(REGION, "training#ml.m5.xlarge")] = (clock.now - 1, Decimal("0.24"))
    gateway = FakeGateway({"training#ml.m5.xlarge": Decimal("0.25")})

    # When / Then the Price List is asked
    table = lookup(gateway, cache, clock).fill(SHIPPED, REGION, [("training", "ml.m5.xlarge")])
    assert table.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.25")


def test_the_pricing_client_is_built_only_when_the_cache_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given boto3.client counted, and a cache that holds every rate an estimate asks for
    built: list[str] = []
    monkeypatch.setattr(boto3, "client", lambda service, *a, **k: built.append(service) or object())
    clock, cache = Clock(), FakeCache()
    for key in ("training#ml.m5.xlarge", STORAGE_KEY):
        cache.items[(REGION, key)] = (clock.now + 60, Decimal("0.25"))
    found = PriceListLookup(PriceListGateway(), cache, ttl_seconds=3600, clock=clock, on_error=Reports())

    # When the cache answers, then no Pricing client is built
    found.fill(SHIPPED, REGION, [("training", "ml.m5.xlarge")])
    assert built == []

    # When a rate is missing from the cache, then the Price List is asked: its client is built, once
    with pytest.raises(AttributeError):  # the counted stand-in client answers nothing
        found.fill(SHIPPED, REGION, [("processing", "ml.m5.xlarge")])
    assert built == ["pricing"]


def test_cache_errors_fall_through_to_the_price_list() -> None:
    # Given a cache table that cannot be read
    cache, reports = FakeCache(error=TransientError("ProvisionedThroughputExceededException")), Reports()
    gateway = FakeGateway({"training#ml.m5.xlarge": Decimal("0.25")})

    # When
    table = lookup(gateway, cache, reports=reports).fill(SHIPPED, REGION, [("training", "ml.m5.xlarge")])

    # Then the Price List answers, and the cache error is reported as such
    assert table.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.25")
    assert [source for source, _, _ in reports.errors] == ["cache"]


def test_report_error_logs_and_counts_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given captured metrics and logs
    counted: list[str] = []
    logged: list[dict[str, Any]] = []
    monkeypatch.setattr(price_list.metrics, "add_metric", lambda name, unit, value: counted.append(name))
    monkeypatch.setattr(price_list.logger, "error", lambda message, extra: logged.append(extra))

    # When a Price List error and a cache error are reported
    price_list.report_error("price-list", "us-east-1 training#ml.m5.xlarge", TransientError("ThrottlingException"))
    price_list.report_error("cache", "us-east-1: 2 rate(s)", TransientError("Throttled"))

    # Then each is counted under its metric and logged with its source
    assert counted == ["PriceListErrors", "PriceCacheErrors"]
    assert [e["price_source"] for e in logged] == ["price-list", "cache"]
    assert logged[0]["error_type"] == "TransientError"


# ------------------------------------------------------------------------------- the owner-table cache (DynamoDB)


@pytest.fixture
def dynamodb() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "PRICE#us-east-1"}, "sk": {"S": sk}}


def test_cache_reads_every_key_in_one_batch_get_and_skips_expired_items(dynamodb: tuple[Any, Stubber]) -> None:
    # Given items: a rate, a "none" answer, an expired rate
    client, stub = dynamodb
    now = 1_800_000_000
    keys = ["training#ml.m5.xlarge", "training#ml.c5.xlarge", "training#ml.g5.xlarge", STORAGE_KEY]
    items = [
        {**_key(keys[0]), "rate": {"N": "0.23"}, "found": {"BOOL": True}, "expires_at": {"N": str(now + 60)}},
        {**_key(keys[1]), "found": {"BOOL": False}, "expires_at": {"N": str(now + 60)}},
        {**_key(keys[2]), "rate": {"N": "1.4"}, "found": {"BOOL": True}, "expires_at": {"N": str(now - 1)}},
    ]
    stub.add_response(
        "batch_get_item",
        {"Responses": {TABLE_NAME: items}},
        {"RequestItems": {TABLE_NAME: {"Keys": [_key(k) for k in keys]}}},
    )

    # When
    found = DynamoDbPriceCache(TABLE_NAME, client).get_many("us-east-1", keys, now=now)

    # Then the expired item and the absent one are misses
    assert found == {keys[0]: Decimal("0.23"), keys[1]: None}


def test_cache_writes_the_rate_or_the_none_marker_with_its_expiry(dynamodb: tuple[Any, Stubber]) -> None:
    # Given / When a rate and a "none" answer are written
    client, stub = dynamodb
    now = 1_800_000_000
    expected = {
        "pk": {"S": "PRICE#us-east-1"},
        "sk": {"S": "training#ml.m5.xlarge"},
        "kind": {"S": "price-list-answer"},
        "rate": {"N": "0.23"},
        "found": {"BOOL": True},
        "fetched_at": {"S": "2027-01-15T08:00:00Z"},
        "expires_at": {"N": str(now + 86400)},
    }
    stub.add_response("put_item", {}, {"TableName": TABLE_NAME, "Item": expected})
    none = {k: v for k, v in expected.items() if k != "rate"} | {"found": {"BOOL": False}, "sk": {"S": STORAGE_KEY}}
    stub.add_response("put_item", {}, {"TableName": TABLE_NAME, "Item": none})
    cache = DynamoDbPriceCache(TABLE_NAME, client)

    # Then each is one PutItem of the documented item (the Stubber checks the requests)
    cache.put("us-east-1", "training#ml.m5.xlarge", Decimal("0.23"), now=now, ttl_seconds=86400)
    cache.put("us-east-1", STORAGE_KEY, None, now=now, ttl_seconds=86400)


def test_cache_reads_more_than_100_keys_in_chunks(dynamodb: tuple[Any, Stubber]) -> None:
    # Given 101 keys
    client, stub = dynamodb
    keys = [f"training#ml.k{i}.xlarge" for i in range(101)]
    stub.add_response("batch_get_item", {"Responses": {TABLE_NAME: []}}, {"RequestItems": ANY})
    stub.add_response("batch_get_item", {"Responses": {TABLE_NAME: []}}, {"RequestItems": ANY})

    # When / Then two requests (the limit is 100 keys)
    assert DynamoDbPriceCache(TABLE_NAME, client).get_many("us-east-1", keys, now=0) == {}


def test_cache_errors_are_translated(dynamodb: tuple[Any, Stubber]) -> None:
    # Given a throttled read
    client, stub = dynamodb
    stub.add_client_error("batch_get_item", "ProvisionedThroughputExceededException", "slow down", 400)

    # When / Then
    with pytest.raises(TransientError):
        DynamoDbPriceCache(TABLE_NAME, client).get_many("us-east-1", ["training#ml.m5.xlarge"], now=0)


# --------------------------------------------------------------------------------------------- the SSM override


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"metrics": [], "errors": []}
    monkeypatch.setattr(owner_parameters.metrics, "add_metric", lambda name, unit, value: seen["metrics"].append(name))
    monkeypatch.setattr(owner_parameters.logger, "error", lambda message, extra: seen["errors"].append(extra))
    return seen


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{not json", "<root>: not valid JSON"),
        ("[]", "<root>: the override must be a JSON object"),
        ('{"regions": {"us-east-1": {"training": {"ml.m5.xlarge": "-1"}}}}', "regions.us-east-1.training"),
        ('{"regions": {"us-east-1": {"hosting": {}}}}', "regions.us-east-1.hosting"),
    ],
)
def test_an_invalid_override_uses_the_shipped_prices_and_is_reported(
    monkeypatch: pytest.MonkeyPatch, captured: dict[str, list[Any]], text: str, error: str
) -> None:
    # Given an SSM override that is not a valid price table layer
    monkeypatch.setattr(owner_parameters, "_read", lambda name, max_age: text)

    # When the prices are loaded
    prices = owner_parameters.prices_with_override("/pipeshare/prices", max_age=60)

    # Then the shipped table is used, PriceOverrideInvalid is counted and one structured error names the problem
    assert prices is load_shipped_prices()
    assert captured["metrics"] == ["PriceOverrideInvalid"]
    (logged,) = captured["errors"]
    assert logged["parameter"] == "/pipeshare/prices"
    assert any(e.startswith(error) for e in logged["errors"])
    assert len(logged["fingerprint"]) == 16


def test_a_valid_override_is_merged_as_override(
    monkeypatch: pytest.MonkeyPatch, captured: dict[str, list[Any]]
) -> None:
    # Given a valid override
    monkeypatch.setattr(
        owner_parameters,
        "_read",
        lambda name, max_age: '{"regions": {"us-east-1": {"training": {"ml.c5.xlarge": 0.2}}}}',
    )

    # When / Then its rate is there, marked as an override, and nothing is reported
    prices = owner_parameters.prices_with_override("/pipeshare/prices", max_age=60)
    assert prices.price("us-east-1", "training", "ml.c5.xlarge") == Decimal("0.2")
    assert prices.origin("us-east-1", "training", "ml.c5.xlarge") == "override"
    assert captured == {"metrics": [], "errors": []}


def test_no_parameter_or_a_missing_one_is_the_shipped_table(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given / When / Then
    assert owner_parameters.prices_with_override("", max_age=60) is load_shipped_prices()
    monkeypatch.setattr(owner_parameters, "_read", lambda name, max_age: None)
    assert owner_parameters.prices_with_override("/pipeshare/prices", max_age=60) is load_shipped_prices()


def test_a_failed_read_still_raises_so_the_invocation_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given SSM throttling the read
    def throttled(name: str, max_age: int) -> str:
        raise TransientError("ThrottlingException")

    monkeypatch.setattr(owner_parameters, "_read", throttled)

    # When / Then (pricing without the owner's override would count costs that cannot be recounted)
    with pytest.raises(TransientError):
        owner_parameters.prices_with_override("/pipeshare/prices", max_age=60)


# ------------------------------------------------------------------------------------------ the table's origins


def test_merge_records_override_origins_and_keeps_citations_for_shipped_rates() -> None:
    # Given a cited table
    table = parse_price_table(
        {
            "source": "s",
            "as_of": "2026-09-24",
            "regions": {REGION: {"processing": {"ml.m5.xlarge": "0.23", "ml.t3.medium": "0.05"}}},
            "sources": {
                "a": {"title": "A", "url": "https://example.org/a", "retrieved": "2026-12-01"},
                "b": {"title": "B", "url": "https://example.org/b", "retrieved": "2026-12-01"},
            },
            "citations": {REGION: {"processing": {"ml.m5.xlarge": ["a", "b"], "ml.t3.medium": ["a"]}}},
        }
    )

    # When one rate is overridden
    merged = table.merge({"regions": {REGION: {"processing": {"ml.t3.medium": "0.06"}}}})

    # Then origins and citations follow: the overridden rate is no longer the cited one
    assert table.uncited() == [f"{REGION}.processing.ml.t3.medium"]
    assert merged.uncited() == []
    assert merged.cited_by(REGION, "processing", "ml.m5.xlarge") == ("a", "b")
    assert merged.cited_by(REGION, "processing", "ml.t3.medium") == ()
    assert merged.origin(REGION, "processing", "ml.t3.medium") == "override"
    assert merged.origin(REGION, STORAGE) is None


@pytest.mark.parametrize(
    ("citations", "problem"),
    [
        ({REGION: {"processing": {"ml.m5.xlarge": ["nobody"]}}}, "unknown source 'nobody'"),
        ({REGION: {"training": {"ml.m5.xlarge": ["a"]}}}, "no such rate in the table"),
        ({REGION: {"storage_gb_month": ["a"]}}, "storage_gb_month: no such rate"),
    ],
)
def test_citations_must_name_known_sources_and_rates(citations: dict[str, Any], problem: str) -> None:
    # Given / When / Then
    with pytest.raises(PriceTableError, match=problem):
        parse_price_table(
            {
                "source": "s",
                "as_of": "2026-09-24",
                "regions": {REGION: {"processing": {"ml.m5.xlarge": "0.23"}}},
                "sources": {"a": {"title": "A", "url": "https://example.org/a", "retrieved": "2026-12-01"}},
                "citations": citations,
            }
        )


def test_an_override_cannot_forge_citations_or_origins() -> None:
    # Given / When / Then (an override layer is rates only)
    with pytest.raises(PriceTableError, match="citations"):
        SHIPPED.merge({"citations": {}})
    assert isinstance(SHIPPED.merge({}), PriceTable)
