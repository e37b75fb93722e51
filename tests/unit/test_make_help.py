"""`make help` names every target the Makefile defines."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.conftest import ROOT

MAKEFILE = ROOT / "Makefile"
# a rule's target: a name at the start of a line, then `:` (not `:=` / `::=`, which are assignments)
_RULE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?!:?=)", re.MULTILINE)


def makefile_targets(text: str) -> set[str]:
    """Every target a rule defines, and every name declared .PHONY (variables such as $(STAMP) are files, not
    targets a person runs)."""
    targets = set(_RULE.findall(text))
    for declared in re.findall(r"^\.PHONY\s*:(.*)$", text, re.MULTILINE):
        targets |= set(declared.split())
    return {t for t in targets if not t.startswith(".")}


def test_the_parser_finds_rules_and_phony_names_but_not_assignments() -> None:
    text = "X := 1\nY ?= 2\nZ::=3\n.PHONY: a b\na: dev\n\t@echo\n$(STAMP): x\n\ttouch $@\nc:\nd : a\n"
    assert makefile_targets(text) == {"a", "b", "c", "d"}


def test_make_help_names_every_makefile_target() -> None:
    # Given the Makefile's targets
    targets = makefile_targets(MAKEFILE.read_text())
    assert {"help", "dev", "demo", "test", "lint", "format", "cfn-lint", "validate", "clean", "prices"} <= targets
    # When `make help` runs
    make = shutil.which("make")
    assert make is not None, "GNU make runs every task of this repository"
    shown = subprocess.run(  # noqa: S603 - a fixed command line
        [make, "--no-print-directory", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    # Then each target is named as `make <target>`
    named = set(re.findall(r"\bmake ([A-Za-z0-9][A-Za-z0-9_.-]*)", shown))
    assert sorted(targets - named) == []
