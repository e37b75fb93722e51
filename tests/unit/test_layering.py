"""Architecture rules, checked on the source with `ast` (the modules are parsed, not imported)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Protocol

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
    assert not any(m == "pipeshare.config" or m.startswith("pipeshare.config.") for m in imported_modules(source))


@pytest.mark.parametrize("path", sorted((PACKAGE / "logic").glob("*.py")), ids=rel)
def test_layering_logic_uses_only_the_ports_of_the_adapters(path: Path) -> None:
    # Given a logic module
    modules = imported_modules(path.read_text())

    # When / Then it may know the ports, never an adapter implementation or the wiring
    adapters = {m for m in modules if m.startswith("pipeshare.adapters")}
    assert adapters <= {"pipeshare.adapters.ports"}, rel(path)
    assert "pipeshare.dependencies" not in modules, rel(path)


# ---------------------------------------------------------------------------------------- fakes follow the ports


def port_protocols() -> list[type]:
    """Every port: a Protocol class defined in pipeshare.adapters.ports."""
    return [
        value
        for value in vars(ports).values()
        if inspect.isclass(value) and value.__module__ == ports.__name__ and getattr(value, "_is_protocol", False)
    ]


def fake_classes() -> list[type]:
    """Every class of tests/fakes.py named Fake* (defined there, not imported)."""
    return [
        value
        for name, value in vars(fakes).items()
        if name.startswith("Fake") and inspect.isclass(value) and value.__module__ == fakes.__name__
    ]


def port_methods(port: type) -> dict[str, inspect.Signature]:
    """The public methods of a port, those of the ports it extends included (CostDataGateway's describe_execution)."""
    found: dict[str, inspect.Signature] = {}
    for base in reversed(port.__mro__):
        if base in PORTS:
            found |= {n: inspect.signature(v) for n, v in vars(base).items() if inspect.isfunction(v) and n[0] != "_"}
    return found


def _annotation(value: object) -> object:
    """An annotation as written (`from __future__ import annotations`: text), spaces ignored."""
    return value.replace(" ", "") if isinstance(value, str) else value


def signature_differences(expected: inspect.Signature, actual: inspect.Signature) -> list[str]:
    """How `actual` differs from `expected`: parameter names and kinds, defaults, annotations, return annotation."""
    differences: list[str] = []
    want, have = list(expected.parameters.values()), list(actual.parameters.values())
    if [(p.name, p.kind) for p in want] != [(p.name, p.kind) for p in have]:
        return [f"parameters {[(p.name, p.kind.name) for p in have]} != {[(p.name, p.kind.name) for p in want]}"]
    for port_param, fake_param in zip(want, have, strict=True):
        if port_param.default != fake_param.default:
            differences.append(f"{port_param.name}: default {fake_param.default!r} != {port_param.default!r}")
        if _annotation(port_param.annotation) != _annotation(fake_param.annotation):
            differences.append(f"{port_param.name}: {fake_param.annotation} != {port_param.annotation}")
    if _annotation(expected.return_annotation) != _annotation(actual.return_annotation):
        differences.append(f"returns {actual.return_annotation} != {expected.return_annotation}")
    return differences


PORTS = port_protocols()
FAKES = fake_classes()
PAIRS = [(port, fake) for fake in FAKES for port in fakes.ports_of(fake)]


def test_layering_finds_the_ports_and_the_fakes() -> None:
    # Given / When / Then: the checks below are not vacuous
    assert {p.__name__ for p in PORTS} >= {"InvitationGateway", "CostDataGateway", "PipelineExecutionGateway"}
    assert {f.__name__ for f in FAKES} >= {"FakeInvitationGateway", "FakeCostRepository", "FakeEnforcementGateway"}


@pytest.mark.parametrize("fake", FAKES, ids=lambda f: f.__name__)
def test_layering_every_fake_declares_the_ports_it_implements(fake: type) -> None:
    # Given a Fake* class of tests/fakes.py
    declared = fakes.ports_of(fake)

    # When / Then it declares (@implements) at least one port, and only ports
    assert declared, f"{fake.__name__} declares no port: decorate it with @implements(ports.<Port>)"
    assert [p for p in declared if p not in PORTS] == [], fake.__name__


def test_layering_every_port_has_a_fake() -> None:
    # Given every port and the ports the fakes declare
    faked = {port for port, _ in PAIRS}

    # When / Then each port can be played in memory (a port extended by another counts as faked with it)
    extended = {base for port in faked for base in port.__mro__}
    assert sorted(p.__name__ for p in PORTS if p not in faked | extended) == []


@pytest.mark.parametrize(("port", "fake"), PAIRS, ids=lambda p: p.__name__)
def test_layering_fakes_implement_every_port_method_with_its_signature(port: type, fake: type) -> None:
    # Given a port (Protocol, with the ports it extends) and a fake declaring it
    methods = port_methods(port)

    # When / Then the fake defines each method itself, with the same parameters (names, kinds, defaults,
    # annotations) and return annotation
    assert methods, port.__name__
    for name, expected in methods.items():
        owner = next((c for c in fake.__mro__ if name in vars(c)), None)
        assert owner is not None, f"{fake.__name__} has no {name}"
        assert owner not in PORTS, f"{fake.__name__}.{name} is the port's own stub"
        actual = inspect.signature(getattr(fake, name))
        assert signature_differences(expected, actual) == [], f"{fake.__name__}.{name}"


def test_layering_the_signature_check_sees_each_kind_of_difference() -> None:
    # Given a port method and variants of it
    class Port(Protocol):
        def save(self, item: str, *, version: int = 0) -> bool: ...

    def renamed(self, thing: str, *, version: int = 0) -> bool: ...
    def positional(self, item: str, version: int = 0) -> bool: ...
    def defaulted(self, item: str, *, version: int = 1) -> bool: ...
    def annotated(self, item: bytes, *, version: int = 0) -> bool: ...
    def returning(self, item: str, *, version: int = 0) -> None: ...
    def same(self, item: str, *, version: int = 0) -> bool: ...

    # When / Then each difference is found, and the same signature passes
    expected = inspect.signature(Port.save)
    for variant in (renamed, positional, defaulted, annotated, returning):
        assert signature_differences(expected, inspect.signature(variant)) != [], variant.__name__
    assert signature_differences(expected, inspect.signature(same)) == []


LOGIC = sorted((PACKAGE / "logic").glob("*.py"))
MODELS = sorted((PACKAGE / "models").glob("*.py"))
_MODEL_BASES = {"BaseModel", "Model", "Exception", "NamedTuple", "StrEnum", "Enum", "IntEnum", "TypedDict"}


def _base_names(node: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else b.attr for b in node.bases if isinstance(b, ast.Name | ast.Attribute)}


def _is_dataclass(node: ast.ClassDef) -> bool:
    return any("dataclass" in ast.unparse(d) for d in node.decorator_list)


def test_layering_ports_import_only_models() -> None:
    """The ports talk in models: they import pipeshare.models (and the standard library), never logic or adapters."""
    modules = imported_modules((PACKAGE / "adapters" / "ports.py").read_text())
    ours = {m for m in modules if m.split(".")[0] == "pipeshare"}
    assert ours, "the ports name no pipeshare model: the scanner is blind"
    assert {m for m in ours if not m.startswith("pipeshare.models")} == set()


def test_layering_models_do_not_import_logic_or_adapters() -> None:
    for path in MODELS:
        found = {
            m for m in imported_modules(path.read_text()) if m.startswith(("pipeshare.logic", "pipeshare.adapters"))
        }
        assert found == set(), rel(path)


def models_defined(source: str) -> list[str]:
    """The classes of `source` that are models, data contracts or errors: any pydantic model; a public error, enum,
    named tuple, typed dict or dataclass (a private class holding one invocation's working state is allowed)."""

    def is_model(node: ast.ClassDef) -> bool:
        bases = _base_names(node)
        if bases & {"BaseModel", "Model"}:
            return True
        public = not node.name.startswith("_")
        return public and bool(bases & _MODEL_BASES or any(b.endswith("Error") for b in bases) or _is_dataclass(node))

    return [node.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef) and is_model(node)]


@pytest.mark.parametrize("path", LOGIC, ids=rel)
def test_layering_logic_defines_no_models(path: Path) -> None:
    """Every model, data contract and error lives in models/."""
    offenders = models_defined(path.read_text())
    assert offenders == [], f"{rel(path)} defines {offenders}: move them to pipeshare.models"


def test_layering_logic_model_scanner_sees_each_kind() -> None:
    source = (
        "class A(BaseModel): ...\nclass B(PipeshareError): ...\n@dataclass\nclass C: ...\n"
        "class D(NamedTuple): ...\n@dataclass\nclass _E: ...\nclass _F(BaseModel): ...\n"
    )
    assert models_defined(source) == ["A", "B", "C", "D", "_F"]


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


# ------------------------------------------------------------------------------------------------ function length

FUNCTION_MAX_LINES = 60


def test_layering_no_function_of_the_product_is_longer_than_60_lines() -> None:
    # Given every module of the product: the layer's package and the handlers
    product = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "functions").rglob("*.py")])
    assert len(product) > len(HANDLERS)

    # When every function and method is measured, from its `def` line (decorators aside) to its last line
    functions = [
        (f"{rel(path)}::{node.name}", node.end_lineno - node.lineno + 1)
        for path in product
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None
    ]
    assert len(functions) > 100

    # Then none is longer than FUNCTION_MAX_LINES: a longer one is split into well-named pieces
    assert [(name, length) for name, length in functions if length > FUNCTION_MAX_LINES] == []
