"""tools/build_price_table.py on a sample offer file, the shipped table's citations, and the local stack's Price List
fixture (consistent with the shipped table, never pricing ml.p4d.24xlarge)."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pipeshare.adapters.price_list import component_of, hourly_usd, storage_usd
from pipeshare.logic.estimate import load_shipped_prices, parse_price_table
from pipeshare.models.estimates import STORAGE
from pipeshare_local.pricing import FIXTURE, load_price_list
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("socket_disabled")

SAMPLE = ROOT / "tests" / "fixtures" / "pricing" / "sagemaker-offer-sample.json"
SHIPPED_JSON = ROOT / "layers" / "common" / "pipeshare" / "data" / "prices.json"
RETRIEVED = date(2026, 10, 1)
SOURCE = "aws-offer-20260924235900"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_price_table", ROOT / "tools" / "build_price_table.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_price_table", module)
    spec.loader.exec_module(module)
    return module


tool = _tool()


def _offer() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text())


def _write(tmp_path: Path, name: str, document: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


# ------------------------------------------------------------------------------------------------------ the tool


def test_the_sample_offer_keeps_training_processing_transform_and_storage_of_commercial_regions() -> None:
    # Given the sample offer file (one product of each kind)
    # When the table is built
    table, report = tool.build([SAMPLE], retrieved=RETRIEVED)

    # Then the on-demand rates of the three components and the training job storage are kept, per region
    east = table.regions["us-east-1"]
    assert east.training == {"ml.m5.xlarge": Decimal("0.23")}
    assert east.processing == {"ml.m5.xlarge": Decimal("0.23")}
    assert east.transform == {"ml.m5.xlarge": Decimal("0.23")}
    assert east.storage_gb_month == Decimal("0.14")
    assert table.regions["eu-west-1"].training == {"ml.m5.xlarge": Decimal("0.257")}
    # And GovCloud is not a region of the table
    assert set(table.regions) == {"us-east-1", "eu-west-1"}
    # And what was dropped, and why, is reported: hosting, spot, GovCloud, no terms, two rates for one figure
    assert report == [
        "skipped 1 product(s): component 'Hosting'",
        "skipped 1 product(s): component 'SpotTraining'",
        "skipped 1 product(s): no on-demand hourly USD rate",
        "skipped 1 product(s): not a commercial AWS Region",
        "dropped us-east-1 training ml.p3.2xlarge: the files give 2 rates (3.825, 3.9)",
    ]


def test_the_table_records_the_file_as_its_source_and_date_and_cites_it_for_every_figure() -> None:
    # Given / When
    table, _ = tool.build([SAMPLE], retrieved=RETRIEVED)

    # Then source and as_of are the file's version and publication date; every figure cites the file
    assert table.as_of == date(2026, 9, 24)
    assert "AmazonSageMaker version 20260924235900" in table.source
    source = table.sources[SOURCE]
    assert (source.published, source.retrieved, source.authoritative) == (date(2026, 9, 24), RETRIEVED, True)
    assert (
        source.url
        == "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/20260924235900/index.json"
    )
    assert table.cited_by("us-east-1", "transform", "ml.m5.xlarge") == (SOURCE,)
    assert table.cited_by("us-east-1", STORAGE) == (SOURCE,)
    assert table.uncited() == []  # AWS's own file is enough on its own


def test_main_writes_a_table_that_loads_back_identical(tmp_path: Path) -> None:
    # Given / When the tool runs as `make prices` runs it
    output = tmp_path / "prices.json"
    code = tool.main([str(SAMPLE), "-o", str(output), "--retrieved", "2026-10-01"])

    # Then it wrote the table: figures as exact strings, loadable by pipeshare
    assert code == 0
    document = json.loads(output.read_text())
    assert document["regions"]["us-east-1"]["training"] == {"ml.m5.xlarge": "0.23"}
    assert document["currency"] == "USD"
    assert (
        parse_price_table(json.loads(output.read_text(), parse_float=Decimal))
        == tool.build([SAMPLE], retrieved=RETRIEVED)[0]
    )


def test_two_files_agreeing_cite_both_and_disagreeing_drop_the_figure(tmp_path: Path) -> None:
    # Given a second file (another version) agreeing on one figure and disagreeing on another
    second = _offer()
    second["version"], second["publicationDate"] = "20261001000000", "2026-10-01T00:00:00Z"
    for terms in second["terms"]["OnDemand"]["SAMPLETRAINEUW1A"].values():
        for dimension in terms["priceDimensions"].values():
            dimension["pricePerUnit"]["USD"] = "0.2600000000"

    # When both are built
    table, report = tool.build([SAMPLE, _write(tmp_path, "second.json", second)], retrieved=RETRIEVED)

    # Then the agreed figure cites both files, the disputed one is dropped and reported; as_of is the latest
    assert table.cited_by("us-east-1", "training", "ml.m5.xlarge") == (SOURCE, "aws-offer-20261001000000")
    assert "eu-west-1" not in table.regions
    assert "dropped eu-west-1 training ml.m5.xlarge: the files give 2 rates (0.257, 0.26)" in report
    assert table.as_of == date(2026, 10, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(offerCode="AmazonEC2"), "offer 'AmazonEC2', expected AmazonSageMaker"),
        (lambda d: d.pop("terms"), "missing terms"),
        (lambda d: d.update(publicationDate="yesterday"), "is not a date"),
        (lambda d: d.update(products=[]), "products and terms must be JSON objects"),
    ],
)
def test_a_file_that_is_not_a_sagemaker_offer_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, message: str
) -> None:
    # Given a damaged offer file
    document = _offer()
    change(document)
    output = tmp_path / "prices.json"

    # When / Then the tool exits 2 with the reason, writing nothing
    assert tool.main([str(_write(tmp_path, "bad.json", document)), "-o", str(output)]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_a_file_that_is_not_json_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given / When / Then
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert tool.main([str(bad), "-o", str(tmp_path / "out.json")]) == 2
    assert "cannot read a JSON offer file" in capsys.readouterr().err


def test_an_outposts_location_is_not_a_region() -> None:
    # Given a training product located on an Outpost (locationType other than "AWS Region")
    document = _offer()
    product = copy.deepcopy(document["products"]["SAMPLETRAINEUW1A"])
    product["attributes"]["locationType"] = "AWS Outposts"
    found = tool.Collected()

    # When / Then it is dropped with its reason
    assert tool._keep(product, document["terms"]["OnDemand"]["SAMPLETRAINEUW1A"], SOURCE, found) == (
        "not a commercial AWS Region"
    )


# ------------------------------------------------------------------------------------------- the shipped table


def test_every_shipped_figure_is_backed_by_two_sources_and_nothing_is_indicative() -> None:
    # Given the table shipped in the layer
    table = load_shipped_prices()
    text = SHIPPED_JSON.read_text()

    # Then each figure cites at least two sources (or AWS's own offer file), each source is dated and addressed
    assert table.uncited() == []
    cited = {i for c in table.citations.values() for ids in [*c.training.values(), *c.processing.values()] for i in ids}
    assert cited <= set(table.sources)
    for source in table.sources.values():
        assert source.url.startswith("https://")
        assert source.published is None or source.published <= source.retrieved
        assert source.authoritative or source.quote, "a hand-read source carries the words that hold the figures"
    # And no figure is called indicative
    assert "indicative" not in text.lower()


def test_the_shipped_figures_are_in_the_quotes_of_their_sources() -> None:
    # Given the shipped table
    table = load_shipped_prices()

    # When / Then every figure appears in each cited source's quote (trailing zeros aside)
    for region, prices in table.regions.items():
        for component in ("training", "processing", "transform"):
            for instance_type, rate in getattr(prices, component).items():
                for source_id in table.cited_by(region, component, instance_type):
                    quote = table.sources[source_id].quote or ""
                    assert any(Decimal(word) == rate for word in _numbers(quote)), (source_id, instance_type, rate)


def _numbers(text: str) -> list[str]:
    words = text.replace("$", " ").replace("/", " ").replace("|", " ").split()
    return [w for w in words if w.replace(".", "", 1).isdigit()]


# ---------------------------------------------------------------------------- the local stack's Price List fixture


def _fixture_rates() -> dict[tuple[str, str, str], Decimal]:
    rates: dict[tuple[str, str, str], Decimal] = {}
    for text in load_price_list(FIXTURE):
        product = json.loads(text)
        attributes = product["product"]["attributes"]
        component = component_of(attributes) if product["product"]["productFamily"] == "ML Instance" else None
        for rate in hourly_usd(product) if component else storage_usd(product):
            rates[(attributes["regionCode"], component or STORAGE, attributes.get("instanceName", ""))] = rate
    return rates


def test_the_local_price_list_fixture_is_a_get_products_response() -> None:
    # Given / When the fixture is read
    document = json.loads(FIXTURE.read_text())

    # Then it is GetProducts' response format: aws_v1, PriceList of JSON strings of the documented keys
    assert document["FormatVersion"] == "aws_v1"
    for text in document["PriceList"]:
        product = json.loads(text)
        assert set(product) == {"product", "serviceCode", "terms", "version", "publicationDate"}
        assert set(product["product"]) == {"productFamily", "attributes", "sku"}
        assert product["serviceCode"] == "AmazonSageMaker"


def test_the_local_price_list_agrees_with_the_shipped_table_where_both_price() -> None:
    # Given the fixture's rates and the shipped table
    rates, table = _fixture_rates(), load_shipped_prices()

    # When / Then every shipped figure the fixture also prices is the same figure
    overlap = 0
    for region, prices in table.regions.items():
        for component in ("training", "processing", "transform"):
            for instance_type, rate in getattr(prices, component).items():
                if (region, component, instance_type) in rates:
                    overlap += 1
                    assert rates[(region, component, instance_type)] == rate, (region, component, instance_type)
    assert overlap == 2  # us-east-1 processing ml.t3.medium and ml.m5.xlarge


def test_the_local_price_list_prices_ml_p4d_24xlarge_nowhere() -> None:
    # Given / When / Then (scenarios use it as the type nobody prices)
    assert "ml.p4d.24xlarge" not in FIXTURE.read_text()
    assert not [key for key in _fixture_rates() if key[2] == "ml.p4d.24xlarge"]
