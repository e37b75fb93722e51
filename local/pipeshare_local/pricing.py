"""Local emulation of the AWS Price List Query API's GetProducts (service `pricing`, JSON 1.1, target prefix
`AWSPriceListService.`), served by the local stack on its one endpoint, from a fixture in the API's own response format.

Written from the API reference (botocore's `pricing` model and its documentation; docs/aws-facts.md §4.5):
* the request is validated against the model (ServiceCode required, at most 50 Filters, MaxResults 1-100, enums);
  a model violation answers InvalidParameterException; a FormatVersion other than `aws_v1` too;
* every filter must hold ("only products that match all filters are returned"): `TERM_MATCH` ("match both the given
  filter field and the given value"), `EQUALS` (exactly matching value), `CONTAINS` (substring), `ANY_OF` / `NONE_OF`
  (the value is / is not one of the listed values). Field is `ServiceCode` or an attribute name; `productFamily` (a
  product-level key in the answer) is filterable too, as pipeshare and public clients use it. A product without the
  field matches no filter on it;
* PriceList is a list of JSON strings (the fixture's strings, verbatim), FormatVersion `aws_v1`, NextToken while more
  remain; a token not made for the same request answers InvalidNextTokenException (tokens never expire here);
* errors as the JSON protocol shapes them: `{"__type": <code>, "Message": ...}`.
What the reference does not say is a setting (pipeshare_local.settings.PricingSettings): the page size without
MaxResults, TERM_MATCH's case sensitivity, how ANY_OF / NONE_OF list several values in one string, and the answer for
a ServiceCode without products. IAM is the stack's (iam.py): `pricing:GetProducts` has no resource type, so it is
authorized on "*".

The fixture (data/pricing-products.json) is sample data for the local stack (data/README.md says where each figure
comes from); it never prices ml.p4d.24xlarge, which scenarios use as the type nobody prices.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

from botocore.model import OperationModel

from pipeshare_local import wire
from pipeshare_local.settings import EmulationSettings

logger = logging.getLogger(__name__)

__all__ = ["FIXTURE", "PricingEmulator", "PricingError", "load_price_list"]

FIXTURE = Path(__file__).parent / "data" / "pricing-products.json"
_TARGET_PREFIX = "AWSPriceListService."
OPERATIONS = frozenset({"GetProducts"})
FORMAT_VERSION = "aws_v1"


class PricingError(wire.ServiceError):
    """An error answered as the Price List API does (JSON 1.1: `__type` and `Message`; 400 unless noted)."""

    modelled_in = "pricing"
    unmodelled_status = {
        "UnrecognizedClientException": 403,
        "MissingAuthenticationTokenException": 403,
        "UnknownOperationException": 400,
    }


def _bad_body(message: str) -> PricingError:
    return PricingError("SerializationException", message)


@dataclass(frozen=True)
class _Product:
    text: str  # the PriceList string, returned verbatim
    document: dict[str, Any]

    def value(self, field: str) -> str | None:
        product = self.document.get("product") or {}
        if field.lower() == "servicecode":
            return _text(self.document.get("serviceCode"))
        attributes = product.get("attributes") or {}
        if field in attributes:
            return _text(attributes[field])
        return _text(product.get(field)) if field in ("productFamily", "sku") else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def load_price_list(path: Path = FIXTURE) -> list[str]:
    """The PriceList strings of a fixture in GetProducts' response format ({"FormatVersion", "PriceList"})."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("FormatVersion") != FORMAT_VERSION or not isinstance(document.get("PriceList"), list):
        raise ValueError(f"{path}: not a GetProducts response ({FORMAT_VERSION}, PriceList)")
    return [str(item) for item in document["PriceList"]]


class PricingEmulator(wire.WireEmulator):
    """WSGI app answering GetProducts from the fixture's products (or `price_list`, JSON strings in that format).

    fail_next(code, count) makes the next `count` GetProducts calls answer that error (ThrottlingException,
    AccessDeniedException, InternalErrorException...), as AWS would under load or without the permission.
    The other keyword arguments are wire.Wiring's (account_for_access_key, clock, emit, page_size).
    """

    error = PricingError
    label = "Price List emulator"

    def __init__(
        self,
        *,
        settings: EmulationSettings | None = None,
        price_list: Iterable[str] | None = None,
        **wiring: Unpack[wire.Wiring],
    ) -> None:
        super().__init__(wire.service_model("pricing"), **wiring)
        self.settings = settings if settings is not None else EmulationSettings()
        self._initial = list(price_list) if price_list is not None else load_price_list()
        self.reset()

    def reset(self) -> None:
        """Back to the constructor's products; no failure pending."""
        with self._lock:
            self._products = [_Product(text, json.loads(text)) for text in self._initial]
            self._failures: list[tuple[str, str]] = []

    def set_price_list(self, price_list: Iterable[str]) -> None:
        """Serve these products from now on (JSON strings in GetProducts' PriceList format)."""
        with self._lock:
            self._products = [_Product(text, json.loads(text)) for text in price_list]

    def fail_next(self, code: str, count: int = 1, message: str = "Rate exceeded") -> None:
        with self._lock:
            self._failures += [(code, message)] * count

    def handles(self, environ: dict) -> bool:
        return environ.get("HTTP_X_AMZ_TARGET", "").startswith(_TARGET_PREFIX)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        op_name = environ.get("HTTP_X_AMZ_TARGET", "")[len(_TARGET_PREFIX) :]
        try:
            if op_name not in OPERATIONS:
                raise PricingError("UnknownOperationException", f"{op_name} is not emulated by the local stack.")
            op_model = self._model.operation_model(op_name)
            self._signer(environ)
            params = wire.read_params(op_model, environ, _bad_body)
            self._validate(op_model, params)
            with self._lock:
                result = self._get_products(params)
            self._observe(op_name, result)
            response = wire.success_response(op_model, result)
        except PricingError as err:
            response = wire.error_response(self._model, err)
        except Exception:  # the client must get an answer; the traceback goes to the log
            logger.exception("Price List emulator failed")
            response = wire.error_response(
                self._model, PricingError("InternalErrorException", "Internal error in the emulator.", 500)
            )
        return wire.finish(start_response, response, request_id)

    # ------------------------------------------------------------------------------------------------ GetProducts

    def _validate(self, op_model: OperationModel, params: dict[str, Any]) -> None:
        report = wire.StrictParamValidator().validate(params, op_model.input_shape)
        if report.has_errors():
            raise PricingError("InvalidParameterException", report.generate_report())
        if params.get("FormatVersion", FORMAT_VERSION) != FORMAT_VERSION:
            raise PricingError("InvalidParameterException", f"FormatVersion must be {FORMAT_VERSION}.")

    def _get_products(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._failures:
            code, message = self._failures.pop(0)
            raise PricingError(code, message)
        service = str(params["ServiceCode"])
        products = [p for p in self._products if p.value("ServiceCode") == service]
        if not products and self.settings.pricing.unknown_service_code == "NotFoundException":
            raise PricingError("NotFoundException", f"Service code {service} was not found.")
        filters = [self._filter(f) for f in params.get("Filters") or []]
        matching = [p.text for p in products if all(test(p) for test in filters)]
        pages = wire.Pages(
            "NextToken",
            "MaxResults",
            lambda: PricingError("InvalidNextTokenException", "The pagination token is invalid."),
        )
        page = pages.page(["GetProducts"], params, matching, "PriceList", self.settings.pricing.default_max_results)
        return {"FormatVersion": FORMAT_VERSION, **page}

    def _filter(self, spec: Mapping[str, Any]) -> Callable[[_Product], bool]:
        kind, field, value = str(spec["Type"]), str(spec["Field"]), str(spec["Value"])
        insensitive = kind == "TERM_MATCH" and self.settings.pricing.term_match_case == "insensitive"
        listed = {v.strip() for v in value.split(self.settings.pricing.list_separator)}

        def test(product: _Product) -> bool:
            actual = product.value(field)
            if actual is None:
                return False
            if kind == "TERM_MATCH":
                return actual.lower() == value.lower() if insensitive else actual == value
            if kind == "EQUALS":
                return actual == value
            if kind == "CONTAINS":
                return value in actual
            if kind == "ANY_OF":
                return actual in listed
            return actual not in listed  # NONE_OF (the model's enum allows nothing else)

        return test
