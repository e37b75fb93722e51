"""Read template.yaml (CloudFormation YAML tags included) and resolve intrinsics for one local deployment.

The local stack is built from the template itself: parameters, conditions, tables, topics, queues, rule patterns,
schedules, stream mappings and function environment all come from here, never from a second copy.

AWS::LanguageExtensions: `Fn::ForEach` loops (Conditions, Resources, Outputs) are expanded by the SAM CLI's own
language-extensions library (`samcli.lib.cfn_language_extensions`, what `sam build --language-extensions` runs), with
parameter values: `load_template` expands them for the template's defaults (so every reader sees plain resources)
and keeps the loops as written; a `Resolver` expands them again with its deployment's parameters.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

NO_VALUE = object()

LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
FOREACH_PREFIX = "Fn::ForEach::"
_LOOP_SECTIONS = ("Conditions", "Resources", "Outputs")
_LIST_TYPES = ("CommaDelimitedList",)


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


class CfnTemplate(dict[str, Any]):
    """A template as `load_template` returns it: `Fn::ForEach` loops expanded for the default parameter values.

    `loops` keeps each section's loops as written and `expanded` the keys their default expansion produced, so that
    `expand_language_extensions` can expand them again for other values (copies keep both).
    """

    loops: dict[str, dict[str, Any]]
    expanded: dict[str, frozenset[str]]


def load_template(path: Path = TEMPLATE_PATH) -> CfnTemplate:
    with path.open() as fh:
        raw = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with intrinsic tags only
    template = CfnTemplate(raw)
    if uses_language_extensions(raw):
        template.loops = _loops(raw)
        values = parameter_values(raw.get("Parameters", {}), {})
        expanded = _expand_loops(raw.get("Parameters", {}), template.loops, values)
        template.expanded = {section: frozenset(entries) for section, entries in expanded.items()}
        template.update(_merge(raw, expanded, produced={}))
    return template


def uses_language_extensions(template: Mapping[str, Any]) -> bool:
    transform = template.get("Transform")
    return LANGUAGE_EXTENSIONS in (transform if isinstance(transform, list) else [transform])


def parameter_values(declared: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values as a stack sees them: given, else the default; a CommaDelimitedList is a list ("" is [])."""
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name not in given and "Default" not in spec:
            continue
        value = given.get(name, spec.get("Default"))
        text = ",".join(value) if isinstance(value, list) else str(value)
        values[name] = (text.split(",") if text else []) if spec.get("Type") in _LIST_TYPES else text
    return values


def expand_language_extensions(template: Mapping[str, Any], values: Mapping[str, Any]) -> Mapping[str, Any]:
    """The template with its `Fn::ForEach` loops expanded for these parameter values (typed: parameter_values).

    A template from `load_template` has its default expansion replaced; one written with the loops in place (a plain
    mapping) has them expanded; a template without the transform is returned as it is.
    """
    loops = getattr(template, "loops", None)
    produced: dict[str, frozenset[str]] = getattr(template, "expanded", {})
    if loops is None:
        if not uses_language_extensions(template):
            return template
        loops = _loops(template)
    expanded = _expand_loops(template.get("Parameters", {}), loops, values)
    return {**template, **_merge(template, expanded, produced=produced)}


def _loops(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        section: {k: v for k, v in (template.get(section) or {}).items() if k.startswith(FOREACH_PREFIX)}
        for section in _LOOP_SECTIONS
    }


def _expand_loops(
    declared: Mapping[str, Any], loops: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Each section's loops expanded by the SAM CLI's Fn::ForEach processor (collections resolved from `values`)."""
    from samcli.lib.cfn_language_extensions.api import create_default_intrinsic_resolver
    from samcli.lib.cfn_language_extensions.exceptions import InvalidTemplateException
    from samcli.lib.cfn_language_extensions.models import ResolutionMode, TemplateProcessingContext
    from samcli.lib.cfn_language_extensions.processors import ForEachProcessor, TemplateParsingProcessor

    fragment = {"Parameters": copy.deepcopy(dict(declared)), "Resources": {}}
    fragment.update({section: copy.deepcopy(dict(entries)) for section, entries in loops.items() if entries})
    context = TemplateProcessingContext(
        fragment=fragment, parameter_values=dict(values), resolution_mode=ResolutionMode.PARTIAL
    )
    try:
        TemplateParsingProcessor().process_template(context)
        ForEachProcessor(intrinsic_resolver=create_default_intrinsic_resolver(context)).process_template(context)
    except InvalidTemplateException as exc:
        raise ValueError(f"Fn::ForEach: {exc}") from exc
    return {section: dict(context.fragment.get(section) or {}) for section in _LOOP_SECTIONS}


def _merge(
    template: Mapping[str, Any], expanded: Mapping[str, Mapping[str, Any]], *, produced: Mapping[str, frozenset[str]]
) -> dict[str, Any]:
    """The loop sections: what was written outside the loops (less an earlier expansion), plus this expansion."""
    out: dict[str, Any] = {}
    for section in _LOOP_SECTIONS:
        written = {
            k: v
            for k, v in (template.get(section) or {}).items()
            if not k.startswith(FOREACH_PREFIX) and k not in produced.get(section, frozenset())
        }
        clash = sorted(written.keys() & expanded[section].keys())
        if clash:
            raise ValueError(f"Fn::ForEach in {section} produces {clash}, already declared")
        if section in template or expanded[section]:
            out[section] = {**written, **expanded[section]}
    return out


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
        self.pseudo = pseudo
        self.refs = refs
        self.attrs = attrs
        self.parameters = self._parameters(template, parameters)
        self.values = parameter_values(template.get("Parameters", {}), self.parameters)
        self.template = expand_language_extensions(template, self.values)  # Fn::ForEach for these parameters
        self.conditions: dict[str, bool] = {}
        for name in self.template.get("Conditions", {}):
            self.condition(name)

    @staticmethod
    def _parameters(template: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        declared = template.get("Parameters", {})
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
            # a CommaDelimitedList's pattern applies to each value of the list
            items = (value.split(",") if value else []) if spec.get("Type") in _LIST_TYPES else [value]
            if "AllowedPattern" in spec and not all(re.fullmatch(spec["AllowedPattern"], v) for v in items):
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
            if key == "Fn::GetAtt":  # AWS::LanguageExtensions allows an intrinsic for the logical ID
                return self.attrs(str(self.resolve(arg[0])), arg[1])
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
            return self.values[name]  # a CommaDelimitedList is a list
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
                target = arg[0]
                written = target.get("Fn::Sub") if isinstance(target, Mapping) else None
                if isinstance(written, str) and "${" not in written:
                    target = written  # a logical ID written with Fn::Sub (AWS::LanguageExtensions), loop expanded
                found |= {target} if isinstance(target, str) else references(target)
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
