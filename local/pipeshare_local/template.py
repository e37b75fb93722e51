"""Read template.yaml (CloudFormation YAML tags included) and resolve intrinsics for one local deployment.

The local stack is built from the template itself: parameters, conditions, tables, topics, queues, rule patterns,
schedules, stream mappings and function environment all come from here, never from a second copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

NO_VALUE = object()


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands !Ref, !GetAtt, !Sub, !If ... (short-form intrinsics)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open() as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with intrinsic tags only


class UnresolvedError(Exception):
    """A reference the local deployment cannot resolve (yet)."""


class Resolver:
    """Evaluates parameters, conditions and intrinsic functions against a local deployment's state."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, str],
        refs: Mapping[str, Any],
        attrs: Callable[[str, str], Any],
    ) -> None:
        self.template = template
        self.pseudo = pseudo
        self.refs = refs
        self.attrs = attrs
        self.parameters = self._parameters(parameters)
        self.conditions: dict[str, bool] = {}
        for name in template.get("Conditions", {}):
            self.condition(name)

    def _parameters(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        declared = self.template.get("Parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise ValueError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                value = overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise ValueError(f"template parameter {name} has no default and was not given")
            value = ",".join(value) if isinstance(value, list) else str(value)
            if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
                raise ValueError(f"parameter {name}={value!r} is not one of {spec['AllowedValues']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
                raise ValueError(f"parameter {name}={value!r} does not match {spec['AllowedPattern']}")
            if spec.get("Type") == "Number":
                number = float(value)
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    raise ValueError(f"parameter {name}={value} is below {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    raise ValueError(f"parameter {name}={value} is above {spec['MaxValue']}")
            values[name] = value
        return values

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def enabled(self, resource: Mapping[str, Any]) -> bool:
        cond = resource.get("Condition")
        return True if cond is None else self.condition(cond)

    def resolve(self, value: Any) -> Any:  # noqa: C901 - one branch per intrinsic
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                return self.attrs(arg[0], arg[1])
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key.startswith("Fn::"):
                raise UnresolvedError(f"intrinsic {key} is not supported by the local stack")
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise UnresolvedError(f"Ref {name}")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and token.split(".", 1)[0] not in self.pseudo:
                logical, attr = token.split(".", 1)
                return str(self.attrs(logical, attr))
            return str(self._ref(token))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def references(value: Any) -> set[str]:
    """Logical IDs a template fragment refers to (Ref, GetAtt, Sub), for ordering creation."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                found |= {t.split(".", 1)[0] for t in re.findall(r"\$\{([^}!]+)\}", text)}
                if not isinstance(arg, str):
                    found |= references(arg[1])
            else:
                found |= references(arg)
    return found


def event_pattern_json(pattern: Any) -> str:
    """A rule pattern as EventBridge stores it (JSON text)."""
    return pattern if isinstance(pattern, str) else json.dumps(pattern)
