"""events/sources.json says where every fixture in events/ comes from, which template rules it must match and what the
handlers must make of it. Routing itself is checked on the local stack (tests/integration/test_fixture_routing.py)."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from pipeshare_local.template import load_template
from tests.conftest import EVENTS, load_fixture_index

INDEX_FILE = "sources.json"
ORIGINS = {"aws-docs", "aws-docs-adapted", "emulator-output", "synthetic-invalid", "synthetic"}
EXPECTS = {"parsed", "invalid", "stream-record"}
DOCUMENTED = {"aws-docs", "aws-docs-adapted"}
REQUIRED_KEYS = {"file", "origin", "source", "notes", "routes_to", "expect"}
# awsdocs: "<owner/repo> <path> @ <commit> (...)"; bus_arn: the bus the fixture is put on (not its default bus)
OPTIONAL_KEYS = {"awsdocs", "awsdocs_also", "see_also", "bus_arn"}
DOCS_URL = re.compile(r"^https://docs\.aws\.amazon\.com/\S+$")
AWSDOCS = re.compile(r"^awsdocs/[A-Za-z0-9._-]+ \S+\.md @ [0-9a-f]{40}\b")
ACCOUNT = re.compile(r"^[0-9]{12}$")
RULE_EVENT_TYPES = {"EventBridgeRule", "Schedule"}

INDEX = load_fixture_index()
ENTRIES = {entry["file"]: entry for entry in INDEX}
RESOURCES: dict[str, dict[str, Any]] = load_template()["Resources"]


def _route_targets() -> set[str]:
    """Every rule a fixture can be routed by: `<Function>:<Event>` for a function's EventBridgeRule or Schedule event,
    and the logical id of a standalone AWS::Events::Rule (the consumer's forwarder)."""
    targets = {name for name, spec in RESOURCES.items() if spec["Type"] == "AWS::Events::Rule"}
    for name, spec in RESOURCES.items():
        if spec["Type"] == "AWS::Serverless::Function":
            events = spec["Properties"].get("Events", {})
            targets |= {f"{name}:{event}" for event, e in events.items() if e["Type"] in RULE_EVENT_TYPES}
    return targets


ROUTE_TARGETS = _route_targets()


def _fixture(entry: dict[str, Any]) -> Any:
    return json.loads((EVENTS / entry["file"]).read_text())


def test_every_file_in_events_is_indexed_and_every_entry_names_a_file() -> None:
    # Given the files in events/ and the index entries
    files = {p.name for p in EVENTS.iterdir() if p.is_file()} - {INDEX_FILE}
    indexed = [entry["file"] for entry in INDEX]

    # When comparing both ways
    missing = sorted(files - set(indexed))
    stale = sorted(set(indexed) - files)
    duplicates = sorted(name for name, count in Counter(indexed).items() if count > 1)

    # Then every fixture has exactly one entry and every entry names a fixture
    assert not missing, f"fixtures without an entry in events/{INDEX_FILE}: {missing}"
    assert not stale, f"entries naming no file in events/: {stale}"
    assert not duplicates, duplicates


def test_index_is_an_object_with_an_about_text_and_the_fixtures() -> None:
    # Given the index file (JSON cannot carry comments: the explanation is a field)
    index = json.loads((EVENTS / INDEX_FILE).read_text())

    # Then it has exactly the explanation and the entries
    assert set(index) == {"about", "fixtures"}
    assert isinstance(index["about"], str)
    assert index["about"].strip()
    assert isinstance(index["fixtures"], list)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_entry_fields_are_valid(name: str) -> None:
    # Given one index entry
    entry = ENTRIES[name]

    # Then it has the required fields (and only known optional ones), each of the right kind
    assert set(entry) >= REQUIRED_KEYS, f"missing {sorted(REQUIRED_KEYS - set(entry))}"
    assert set(entry) <= REQUIRED_KEYS | OPTIONAL_KEYS, f"unknown {sorted(set(entry) - REQUIRED_KEYS - OPTIONAL_KEYS)}"
    assert entry["file"].endswith(".json")
    assert entry["origin"] in ORIGINS
    assert entry["expect"] in EXPECTS
    for key in ("source", "notes"):
        assert isinstance(entry[key], str)
        assert entry[key].strip(), f"empty {key}"
    assert isinstance(entry["routes_to"], list)
    assert len(set(entry["routes_to"])) == len(entry["routes_to"]), "duplicate routes"
    unknown = [route for route in entry["routes_to"] if route not in ROUTE_TARGETS]
    assert not unknown, f"routes_to names no rule of template.yaml: {unknown} (known: {sorted(ROUTE_TARGETS)})"


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if e["origin"] in DOCUMENTED))
def test_documented_entry_cites_the_aws_documentation(name: str) -> None:
    # Given an entry whose shape comes from the AWS documentation
    entry = ENTRIES[name]

    # Then its source is a docs.aws.amazon.com page, and every further reference is one too
    assert DOCS_URL.match(entry["source"]), f"source is not a https://docs.aws.amazon.com URL: {entry['source']!r}"
    for url in entry.get("see_also", []):
        assert DOCS_URL.match(url), url
    for reference in [*([entry["awsdocs"]] if "awsdocs" in entry else []), *entry.get("awsdocs_also", [])]:
        assert AWSDOCS.match(reference), f"not '<awsdocs/repo> <path>.md @ <commit>': {reference!r}"


@pytest.mark.parametrize("name", sorted(n for n, e in ENTRIES.items() if e["origin"] not in DOCUMENTED))
def test_project_entry_does_not_claim_a_documentation_source(name: str) -> None:
    # Given an entry written by the project (synthetic) or produced by an emulator
    entry = ENTRIES[name]

    # Then its source does not pass for a documentation page; documentation it follows is cited in see_also
    assert not entry["source"].startswith("http"), entry["source"]
    assert "awsdocs_also" not in entry
    for url in entry.get("see_also", []):
        assert DOCS_URL.match(url), url


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_expectation_is_consistent_with_origin_routes_and_shape(name: str) -> None:
    # Given one entry and its fixture
    entry = ENTRIES[name]
    fixture = _fixture(entry)

    # Then: invalid inputs are the synthetic-invalid ones, and neither they nor stream records name a rule
    assert (entry["origin"] == "synthetic-invalid") == (entry["expect"] == "invalid")
    if entry["expect"] in {"invalid", "stream-record"}:
        assert entry["routes_to"] == []
    # stream records are a Lambda stream batch
    if entry["expect"] == "stream-record":
        assert isinstance(fixture, dict)
        assert isinstance(fixture.get("Records"), list)
        assert fixture["Records"]
        assert all(r.get("eventSource") == "aws:dynamodb" for r in fixture["Records"])
    # a bus_arn names a custom bus: the routes' rules are on it (the template's EventBusName)
    if "bus_arn" in entry:
        assert re.fullmatch(r"arn:aws:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9._-]+", entry["bus_arn"])
        for route in entry["routes_to"]:
            function, event = route.split(":")
            assert "EventBusName" in RESOURCES[function]["Properties"]["Events"][event]["Properties"]
    # a parsed fixture is an EventBridge event routed somewhere, put on the default bus of its own account (or bus_arn)
    if entry["expect"] == "parsed":
        assert entry["routes_to"], "a valid EventBridge fixture must name the rule(s) it reaches"
        assert isinstance(fixture, dict)
        assert ACCOUNT.match(str(fixture.get("account"))), fixture.get("account")
        assert {"version", "id", "detail-type", "source", "detail"} <= set(fixture)
