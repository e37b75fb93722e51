"""Architecture rules, checked on the source with `ast` (the modules are parsed, not imported)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from pipeshare.adapters import ports
from tests import fakes
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("socket_disabled")

PACKAGE = ROOT / "layers" / "common" / "pipeshare"
HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))
HANDLER_MAX_LINES = 40
HANDLER_ALLOWED_ROOTS = {"pipeshare", "aws_lambda_powertools", "__future__", "typing", "datetime"}
AWS_SDK = {"boto3", "botocore"}
PURE = sorted([*(PACKAGE / "logic").glob("*.py"), *(PACKAGE / "models").glob("*.py")])
OUTSIDE_ADAPTERS = sorted(p for p in PACKAGE.rglob("*.py") if "adapters" not in p.relative_to(PACKAGE).parts)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def imported_modules(source: str) -> set[str]:
    """Every module an import statement names, wherever it is (function bodies, TYPE_CHECKING blocks...)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import stays inside its package
                modules.add("." * node.level + (node.module or ""))
            else:
                modules.add(node.module or "")
    return modules


def dynamic_imports(source: str) -> set[str]:
    """Modules named as string literals in importlib.import_module(...) / __import__(...) calls."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
            found.add(node.args[0].value)
    return found


def roots(modules: set[str]) -> set[str]:
    """Top-level package of each module; "." for any relative import."""
    return {"." if m.startswith(".") else m.split(".")[0] for m in modules}


def environment_reads(source: str) -> list[str]:
    """os.environ / os.getenv uses, `from os import environ|getenv`, and the `environ` name once imported."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb", "getenvb"):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found.extend(
                f"line {node.lineno}: from os import {a.name}"
                for a in node.names
                if a.name in ("environ", "getenv", "environb", "getenvb", "*")
            )
    return found


# ---------------------------------------------------------------------------------------------- the scanners


def test_layering_import_scanner_sees_every_import_form() -> None:
    # Given source with top-level, nested, from-, TYPE_CHECKING and relative imports
    source = (
        "import boto3.session as s\n"
        "from botocore.exceptions import ClientError\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import mypy_boto3_ram\n"
        "def f():\n    import json\n"
        "from . import sibling\n"
    )

    # When / Then
    assert roots(imported_modules(source)) == {"boto3", "botocore", "typing", "mypy_boto3_ram", "json", "."}


def test_layering_dynamic_import_scanner_sees_import_module() -> None:
    # Given / When / Then
    assert dynamic_imports("import importlib\nimportlib.import_module('boto3')\n__import__('botocore')\n") == {
        "boto3",
        "botocore",
    }


def test_layering_environment_scanner_sees_every_form() -> None:
    # Given source reading the environment three ways, and one that does not
    source = "import os\nos.environ['A']\nos.getenv('B')\nfrom os import environ\n"

    # When / Then
    assert len(environment_reads(source)) == 3
    assert environment_reads("import os\nos.path.join('a', 'b')\n") == []


def test_layering_finds_the_files_it_checks() -> None:
    # Given / When / Then: the rules below are not vacuous
    assert {p.parent.name for p in HANDLERS} >= {
        "accept_invitations",
        "notify_decisions",
        "owner_inventory",
        "notify_owner",
    }
    assert {p.name for p in PURE} >= {"accept.py", "policy.py", "notify.py", "domain.py", "events.py", "errors.py"}
    assert (PACKAGE / "dependencies.py") in OUTSIDE_ADAPTERS
    assert not any("adapters" in p.parts for p in OUTSIDE_ADAPTERS)


# ---------------------------------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("path", HANDLERS, ids=rel)
def test_layering_handlers_import_only_pipeshare_and_powertools(path: Path) -> None:
    # Given a Lambda handler module
    source = path.read_text()

    # When its imports are listed
    modules = imported_modules(source) | dynamic_imports(source)

    # Then they are all from the allowed roots (no boto3, no os, no adapters by hand)
    assert roots(modules) - HANDLER_ALLOWED_ROOTS == set(), rel(path)


@pytest.mark.parametrize("path", HANDLERS, ids=rel)
def test_layering_handler_functions_are_short(path: Path) -> None:
    # Given a Lambda handler module
    tree = ast.parse(path.read_text())

    # When its top-level functions are measured (decorators included)
    lengths = {
        node.name: node.end_lineno - min([node.lineno, *(d.lineno for d in node.decorator_list)]) + 1
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None
    }

    # Then there is a lambda_handler and no function is longer than the limit
    assert "lambda_handler" in lengths
    assert {name: n for name, n in lengths.items() if n > HANDLER_MAX_LINES} == {}, rel(path)


@pytest.mark.parametrize("path", OUTSIDE_ADAPTERS, ids=rel)
def test_layering_only_adapters_import_the_aws_sdk(path: Path) -> None:
    # Given a pipeshare module outside pipeshare/adapters (dependencies.py included)
    source = path.read_text()

    # When / Then it imports neither boto3 nor botocore
    assert roots(imported_modules(source) | dynamic_imports(source)) & AWS_SDK == set(), rel(path)


@pytest.mark.parametrize("path", PURE, ids=rel)
def test_layering_logic_and_models_do_not_read_the_environment(path: Path) -> None:
    # Given a logic or model module
    source = path.read_text()

    # When / Then it never reads os.environ (configuration reaches it as arguments)
    assert environment_reads(source) == [], rel(path)
    assert "pipeshare.config" not in imported_modules(source), rel(path)


@pytest.mark.parametrize("path", sorted((PACKAGE / "logic").glob("*.py")), ids=rel)
def test_layering_logic_uses_only_the_ports_of_the_adapters(path: Path) -> None:
    # Given a logic module
    modules = imported_modules(path.read_text())

    # When / Then it may know the ports, never an adapter implementation or the wiring
    adapters = {m for m in modules if m.startswith("pipeshare.adapters")}
    assert adapters <= {"pipeshare.adapters.ports"}, rel(path)
    assert "pipeshare.dependencies" not in modules, rel(path)


# ---------------------------------------------------------------------------------------- fakes follow the ports


@pytest.mark.parametrize(
    ("port", "fake"),
    [
        (ports.InvitationGateway, fakes.FakeInvitationGateway),
        (ports.ShareRepository, fakes.FakeShareRepository),
        (ports.PolicySource, fakes.FakePolicySource),
        (ports.Notifier, fakes.FakeNotifier),
        (ports.OwnerShareGateway, fakes.FakeOwnerShareGateway),
        (ports.GrantRepository, fakes.FakeGrantRepository),
        (ports.CostDataGateway, fakes.FakeCostDataGateway),
        (ports.BudgetSource, fakes.FakeBudgetSource),
        (ports.BudgetLedger, fakes.FakeBudgetLedger),
        (ports.RunningExecutions, fakes.FakeRunningExecutions),
        (ports.SpendSource, fakes.FakeSpendSource),
        (ports.EnforcementGateway, fakes.FakeEnforcementGateway),
    ],
    ids=lambda p: p.__name__,
)
def test_layering_fakes_implement_every_port_method_with_its_signature(port: type, fake: type) -> None:
    # Given a port (Protocol) and its in-memory fake
    methods = [n for n, v in vars(port).items() if inspect.isfunction(v) and not n.startswith("_")]

    # When / Then the fake has each method, with the same parameter names and kinds
    assert methods
    for name in methods:
        expected = [(p.name, p.kind) for p in inspect.signature(getattr(port, name)).parameters.values()]
        actual = [(p.name, p.kind) for p in inspect.signature(getattr(fake, name)).parameters.values()]
        assert actual == expected, f"{fake.__name__}.{name}"


# ------------------------------------------------------------------------- the product never needs the local stack


def test_layering_product_never_imports_the_local_stack() -> None:
    # Given every module of the product: the layer's package and the handlers (what `sam build` ships; the local
    # stack, pipeshare_local, is dev tooling packaged apart in local/pyproject.toml)
    product = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "functions").rglob("*.py")])
    assert len(product) > len(HANDLERS)

    # When their imports are listed (import statements, importlib/__import__ calls) and their string constants read
    offenders = []
    for path in product:
        tree = ast.parse(path.read_text())
        modules = imported_modules(path.read_text()) | dynamic_imports(path.read_text())
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        if "pipeshare_local" in roots(modules) or any(s.split(".")[0] == "pipeshare_local" for s in strings):
            offenders.append(rel(path))

    # Then none names pipeshare_local (not even as a module name handed to importlib.util.find_spec & co)
    assert offenders == []
