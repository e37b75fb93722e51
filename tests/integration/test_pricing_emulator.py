"""The local Price List emulation (`pricing:GetProducts`) over the wire, with real boto3 clients through the local
stack's endpoint: filters, pagination, errors, IAM as the template grants it, and pipeshare's gateway, lookup and
owner-table cache on top of it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pipeshare.adapters.price_cache import DynamoDbPriceCache
from pipeshare.adapters.price_list import STORAGE_KEY, PriceListGateway, PriceListLookup
from pipeshare.logic.estimate import load_shipped_prices
from pipeshare.models.errors import AccessDeniedError, TransientError
from pipeshare.models.estimates import STORAGE
from pipeshare_local.stack import LocalStack
from pipeshare_local.wire import StrictParamValidator, service_model
from tests.integration.emulator_helpers import output_checker

pytestmark = pytest.mark.local_stack

OWNER = "111111111111"
REGION = "us-east-1"
assert_valid_output = output_checker(lambda: service_model("pricing"), StrictParamValidator)


def _pricing(stack: LocalStack, *, validate: bool = True) -> Any:
    creds = stack.credentials(OWNER, "tooling")
    return boto3.session.Session().client(
        "pricing",
        endpoint_url=stack.endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
        config=Config(parameter_validation=validate, retries={"mode": "standard", "total_max_attempts": 1}),
    )


def _term(field: str, value: str, kind: str = "TERM_MATCH") -> dict[str, str]:
    return {"Type": kind, "Field": field, "Value": value}


def _all(client: Any, filters: list[dict[str, str]], **kwargs: Any) -> list[dict[str, Any]]:
    products = []
    for page in client.get_paginator("get_products").paginate(ServiceCode="AmazonSageMaker", Filters=filters, **kwargs):
        assert_valid_output("GetProducts", page)
        products += [json.loads(item) for item in page["PriceList"]]
    return products


def _usage(products: list[dict[str, Any]]) -> set[str]:
    return {p["product"]["attributes"]["usagetype"] for p in products}


# ---------------------------------------------------------------------------------------------- the emulation


def test_term_match_filters_select_the_products_in_the_documented_format(stack: LocalStack) -> None:
    # Given / When the products of one instance type in one region are asked for
    client = _pricing(stack)
    response = client.get_products(
        ServiceCode="AmazonSageMaker",
        Filters=[
            _term("productFamily", "ML Instance"),
            _term("regionCode", REGION),
            _term("instanceName", "ml.m5.xlarge"),
        ],
    )

    # Then the answer is aws_v1, each product a JSON string {product, serviceCode, terms, version, publicationDate}
    assert_valid_output("GetProducts", response)
    assert response["FormatVersion"] == "aws_v1"
    products = [json.loads(item) for item in response["PriceList"]]
    assert _usage(products) == {"USE1-Train:ml.m5.xlarge", "USE1-Processing:ml.m5.xlarge"}
    assert all(set(p) == {"product", "serviceCode", "terms", "version", "publicationDate"} for p in products)
    assert "NextToken" not in response


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([_term("usagetype", "USE1-Tsform:ml.m5.xlarge", "EQUALS")], set()),
        ([_term("usagetype", "EU-Tsform:ml.m5.xlarge", "EQUALS")], {"EU-Tsform:ml.m5.xlarge"}),
        ([_term("usagetype", "Host:", "CONTAINS")], {"USE1-Host:ml.m5.large", "EU-Host:ml.m5.xlarge"}),
        (
            [_term("instanceName", "ml.g5.2xlarge,ml.m5.4xlarge", "ANY_OF"), _term("component", "Training")],
            {"USE1-Train:ml.g5.2xlarge", "USE1-Train:ml.m5.4xlarge"},
        ),
        (
            [_term("regionCode", "eu-west-1"), _term("platoinstancetype", "Training,Processing,Hosting", "NONE_OF")],
            {"EU-Tsform:ml.m5.xlarge"},
        ),
        ([_term("regionCode", "eu-west-1"), _term("volumeType", "General Purpose")], {"EU-Train:VolumeUsage.gp2"}),
        ([_term("ServiceCode", "AmazonSageMaker"), _term("instanceName", "ml.p4d.24xlarge")], set()),
    ],
)
def test_every_filter_type_is_applied_and_all_must_hold(
    stack: LocalStack, filters: list[dict[str, str]], expected: set[str]
) -> None:
    # Given / When / Then (a product without the filtered field, like storage for platoinstancetype, never matches)
    assert _usage(_all(_pricing(stack), filters)) == expected


def test_term_match_case_sensitivity_is_a_setting(stack: LocalStack) -> None:
    # Given a value in another case
    client, filters = _pricing(stack), [_term("instanceName", "ML.M5.LARGE")]

    # When / Then exact by default, matched when the setting says insensitive
    assert _all(client, filters) == []
    stack.settings.pricing.term_match_case = "insensitive"
    assert _usage(_all(client, filters)) == {
        "USE1-Train:ml.m5.large",
        "USE1-Processing:ml.m5.large",
        "USE1-Host:ml.m5.large",
    }


def test_pages_follow_max_results_and_next_token(stack: LocalStack) -> None:
    # Given every product of the fixture, in one page and in pages of 4
    client = _pricing(stack)
    everything = client.get_products(ServiceCode="AmazonSageMaker")["PriceList"]
    pages = list(
        client.get_paginator("get_products").paginate(ServiceCode="AmazonSageMaker", PaginationConfig={"PageSize": 4})
    )

    # Then the pages hold at most 4 each, in order, and together the same products once each
    assert all(len(p["PriceList"]) <= 4 for p in pages)
    assert [item for p in pages for item in p["PriceList"]] == everything
    assert "NextToken" not in pages[-1]
    assert len(pages) == -(-len(everything) // 4)


def test_the_page_size_without_max_results_is_a_setting(stack: LocalStack) -> None:
    # Given a default page size of 3
    stack.settings.pricing.default_max_results = 3

    # When / Then one page holds 3 products and a token
    response = _pricing(stack).get_products(ServiceCode="AmazonSageMaker")
    assert len(response["PriceList"]) == 3
    assert response["NextToken"]


def test_a_token_of_another_query_is_invalid(stack: LocalStack) -> None:
    # Given a token for all products
    client = _pricing(stack)
    token = client.get_products(ServiceCode="AmazonSageMaker", MaxResults=1)["NextToken"]

    # When / Then it does not continue another query
    with pytest.raises(client.exceptions.InvalidNextTokenException):
        client.get_products(ServiceCode="AmazonSageMaker", Filters=[_term("regionCode", REGION)], NextToken=token)
    with pytest.raises(client.exceptions.InvalidNextTokenException):
        client.get_products(ServiceCode="AmazonSageMaker", NextToken="not-a-token")


@pytest.mark.parametrize(
    "params",
    [
        {"MaxResults": 101},
        {"FormatVersion": "aws_v2"},
        {"Filters": [_term("regionCode", REGION, "STARTS_WITH")]},
        {"Filters": [_term("regionCode", REGION)] * 51},
    ],
)
def test_invalid_requests_are_refused_as_invalid_parameters(stack: LocalStack, params: dict[str, Any]) -> None:
    # Given a client that lets invalid input reach the service
    client = _pricing(stack, validate=False)

    # When / Then
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.get_products(ServiceCode="AmazonSageMaker", **params)


def test_a_service_code_without_products_follows_the_setting(stack: LocalStack) -> None:
    # Given / When / Then: an empty answer by default, NotFoundException when the setting says so
    client = _pricing(stack)
    assert client.get_products(ServiceCode="AmazonEC2")["PriceList"] == []
    stack.settings.pricing.unknown_service_code = "NotFoundException"
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_products(ServiceCode="AmazonEC2")


def test_throttling_is_answered_as_the_api_shapes_it(stack: LocalStack) -> None:
    # Given one throttled call pending
    client = _pricing(stack)
    stack.pricing.fail_next("ThrottlingException")

    # When / Then the error arrives as botocore's modelled exception, once
    with pytest.raises(client.exceptions.ThrottlingException):
        client.get_products(ServiceCode="AmazonSageMaker", MaxResults=1)
    assert client.get_products(ServiceCode="AmazonSageMaker", MaxResults=1)["PriceList"]


# -------------------------------------------------------------------------------------- IAM as the template says


def test_the_estimator_may_call_get_products_and_a_function_without_live_prices_may_not(stack: LocalStack) -> None:
    # Given an owner stack (the Price List on by default)
    stack.deploy(OWNER, {"Mode": "owner"})

    # When the cost estimator and the inventory function call GetProducts with their own roles
    allowed = stack.function_client(OWNER, "EstimateCostFunction", "pricing")
    assert allowed.get_products(ServiceCode="AmazonSageMaker", MaxResults=1)["PriceList"]
    denied = stack.function_client(OWNER, "OwnerInventoryFunction", "pricing")
    with pytest.raises(ClientError) as info:
        denied.get_products(ServiceCode="AmazonSageMaker", MaxResults=1)

    # Then only the second is refused, as AWS answers it, on "*" (GetProducts has no resource type)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    (denial,) = [d for d in stack.iam.denials if d.action == "pricing:GetProducts"]
    assert (denial.function, denial.resource, denial.reason) == ("OwnerInventoryFunction", "*", "implicit-deny")


def test_with_the_price_list_off_the_estimator_is_denied(stack: LocalStack) -> None:
    # Given an owner stack with UsePriceListApi=false (no LivePrices statement)
    stack.deploy(OWNER, {"Mode": "owner", "UsePriceListApi": "false"})

    # When / Then
    client = stack.function_client(OWNER, "EstimateCostFunction", "pricing")
    with pytest.raises(ClientError, match="AccessDeniedException"):
        client.get_products(ServiceCode="AmazonSageMaker", MaxResults=1)


# ------------------------------------------------------------------------ pipeshare's gateway, lookup and cache


def test_the_gateway_reads_the_rates_over_the_wire(stack: LocalStack) -> None:
    # Given the gateway on the local endpoint
    gateway = PriceListGateway(_pricing(stack))

    # When / Then each component's rate, the training job storage rate; hosting never; ml.p4d.24xlarge unpriced
    assert gateway.usd_per_hour(REGION, "training", "ml.m5.xlarge") == Decimal("0.23")
    assert gateway.usd_per_hour(REGION, "processing", "ml.m5.large") == Decimal("0.115")
    assert gateway.usd_per_hour("eu-west-1", "transform", "ml.m5.xlarge") == Decimal("0.257")
    assert gateway.storage_usd_per_gb_month("eu-west-1") == Decimal("0.154")
    assert gateway.usd_per_hour(REGION, "transform", "ml.m5.large") is None
    assert gateway.usd_per_hour(REGION, "training", "ml.p4d.24xlarge") is None


@pytest.mark.parametrize(
    ("code", "error"), [("ThrottlingException", TransientError), ("AccessDeniedException", AccessDeniedError)]
)
def test_the_gateway_translates_the_api_errors(stack: LocalStack, code: str, error: type[Exception]) -> None:
    # Given / When / Then
    stack.pricing.fail_next(code)
    with pytest.raises(error):
        PriceListGateway(_pricing(stack)).usd_per_hour(REGION, "training", "ml.m5.xlarge")


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _owner_lookup(stack: LocalStack, clock: _Clock, reports: list[str] | None = None) -> PriceListLookup:
    """A lookup as the estimator builds it (a new container): its own clients, signed as EstimateCostFunction."""
    table = stack.deployments[OWNER].refs["OwnerTable"]
    return PriceListLookup(
        PriceListGateway(stack.function_client(OWNER, "EstimateCostFunction", "pricing")),
        DynamoDbPriceCache(table, stack.function_client(OWNER, "EstimateCostFunction", "dynamodb")),
        ttl_seconds=3600,
        clock=clock,
        on_error=lambda source, what, exc: (reports if reports is not None else []).append(source),
    )


WANTED = [("training", "ml.m5.xlarge"), ("processing", "ml.m5.xlarge"), ("training", "ml.p4d.24xlarge")]


def test_answers_are_cached_in_the_owner_table_across_containers_until_they_expire(stack: LocalStack) -> None:
    # Given an owner stack, and the estimator's first container
    stack.deploy(OWNER, {"Mode": "owner"})
    clock, before = _Clock(), len(stack.calls(OWNER, functions_only=True))

    # When it fills the shipped table for three pairs
    table = _owner_lookup(stack, clock).fill(load_shipped_prices(), REGION, WANTED)

    # Then one cache read, GetProducts for each pair and the storage rate, one write per answer ("none" included)
    calls = [c[2] for c in stack.calls(OWNER, functions_only=True)[before:]]
    assert calls == ["BatchGetItem", *(["GetProducts", "PutItem"] * 4)]
    assert table.origin(REGION, "training", "ml.m5.xlarge") == "price-list"
    assert table.price(REGION, "training", "ml.p4d.24xlarge") is None
    assert (table.storage_price(REGION), table.origin(REGION, STORAGE)) == (Decimal("0.14"), "price-list")
    items = [i for i in stack.table_items(OWNER, "OwnerTable") if i["pk"] == f"PRICE#{REGION}"]
    assert {i["sk"]: (i["found"], str(i.get("rate"))) for i in items} == {
        "training#ml.m5.xlarge": (True, "0.23"),
        "processing#ml.m5.xlarge": (True, "0.23"),
        "training#ml.p4d.24xlarge": (False, "None"),
        STORAGE_KEY: (True, "0.14"),
    }
    assert {int(i["expires_at"]) for i in items} == {int(clock.now) + 3600}

    # When a new container fills the same pairs within the hour
    before = len(stack.calls(OWNER, functions_only=True))
    again = _owner_lookup(stack, clock).fill(load_shipped_prices(), REGION, WANTED)

    # Then one BatchGetItem answered everything, and the rates are the same
    assert [c[2] for c in stack.calls(OWNER, functions_only=True)[before:]] == ["BatchGetItem"]
    assert again.price(REGION, "training", "ml.m5.xlarge") == Decimal("0.23")

    # When the items have expired (DynamoDB's TTL deletion is lazy: they are still in the table)
    clock.now += 3601
    before = len(stack.calls(OWNER, functions_only=True))
    _owner_lookup(stack, clock).fill(load_shipped_prices(), REGION, WANTED)

    # Then the Price List is asked again
    assert [c[2] for c in stack.calls(OWNER, functions_only=True)[before:]].count("GetProducts") == 4


def test_a_throttled_price_list_leaves_the_shipped_rates_and_is_reported(stack: LocalStack) -> None:
    # Given an owner stack and a throttled Price List
    stack.deploy(OWNER, {"Mode": "owner"})
    stack.pricing.fail_next("ThrottlingException", count=5)
    reports: list[str] = []

    # When the estimator fills the table
    table = _owner_lookup(stack, _Clock(), reports).fill(load_shipped_prices(), REGION, WANTED)

    # Then the shipped rate stands, the rest are unpriced, one error is reported, nothing is cached
    assert (table.price(REGION, "processing", "ml.m5.xlarge"), table.origin(REGION, "processing", "ml.m5.xlarge")) == (
        Decimal("0.23"),
        "shipped",
    )
    assert table.price(REGION, "training", "ml.m5.xlarge") is None
    assert reports == ["price-list"]
    assert not [i for i in stack.table_items(OWNER, "OwnerTable") if i["pk"] == f"PRICE#{REGION}"]
