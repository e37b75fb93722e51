"""Turn the packaged template (`sam package` output) into the one a service-managed StackSet can deploy.

    .venv/bin/python tools/stackset_template.py .aws-sam/packaged.yaml -o .aws-sam/stackset.json
    make stackset-template PACKAGED=.aws-sam/packaged.yaml

Why (docs/fleet.md, docs/aws-facts.md §13): StackSets with service-managed permissions do not support macros in
templates, AWS::Serverless (SAM) and the other CloudFormation-hosted transforms included; CAPABILITY_AUTO_EXPAND does
not lift that. template.yaml uses two transforms, AWS::LanguageExtensions (Fn::ForEach) and AWS::Serverless. This tool
expands both offline, as CloudFormation would:
1. the Fn::ForEach loops, for the template's default parameter values, with the SAM CLI's own language-extensions
   library (`pipeshare_local.template.load_template`). The only loops are the owner's per-consumer shares and their
   outputs, over ShareConsumerAccountIds (default: none): a consumer deployment has nothing to expand;
2. the SAM transform, with the SAM translator the SAM CLI runs (`samtranslator`; no managed policy is named by name,
   so no IAM call is made);
3. each Lambda function's and layer's S3Bucket (one bucket, where `sam package` put the artifacts) becomes
   `${ArtifactBucketPrefix}-${AWS::Region}`: a function's code must come from a bucket in the function's own Region
   (the Lambda API: FunctionCode.S3Bucket), so every target Region needs its copy of the artifacts, same keys.
The output is plain CloudFormation (JSON): no Transform, no AWS::Serverless::* resource, one more parameter,
ArtifactBucketPrefix. It still takes Mode: the StackSet (deploy/consumer-stackset.yaml) passes Mode=consumer.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeshare_local.iam import sam_transform
from pipeshare_local.template import LANGUAGE_EXTENSIONS, load_template

SERVERLESS = "AWS::Serverless-2016-10-31"
ARTIFACT_PARAMETER = "ArtifactBucketPrefix"
REGIONAL_BUCKET = {"Fn::Sub": f"${{{ARTIFACT_PARAMETER}}}-${{AWS::Region}}"}
# where an artifact's bucket sits in each translated resource type
ARTIFACT_PROPERTIES = {"AWS::Lambda::Function": "Code", "AWS::Lambda::LayerVersion": "Content"}


class StacksetTemplateError(ValueError):
    """The packaged template cannot be made into a StackSet template (what is wrong is in the message)."""


def _sam_transform(template: dict[str, Any]) -> dict[str, Any]:
    return sam_transform(
        template, StacksetTemplateError("the template names a managed policy by name: give its ARN instead")
    )


def _check_packaged(template: dict[str, Any]) -> None:
    """Every artifact must already be in S3 (`sam package`): a local path cannot reach another account."""
    for name, spec in template.get("Resources", {}).items():
        props = spec.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if key in props and not (isinstance(props[key], str) and props[key].startswith("s3://")):
                raise StacksetTemplateError(f"{name}.{key} is {props[key]!r}, not an s3:// URI: run sam package first")


def _conditions_used(value: Any) -> set[str]:
    """Condition names a fragment uses: `Condition` keys (a resource's, an output's, a condition's) and Fn::If."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _conditions_used(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Condition" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::If" and isinstance(arg, list) and arg and isinstance(arg[0], str):
                found.add(arg[0])
            found |= _conditions_used(arg)
    return found


def _drop_unused_conditions(template: dict[str, Any]) -> None:
    """Conditions only a loop that expanded to nothing used (CreatePerConsumerShares, for no per-consumer share)."""
    conditions: dict[str, Any] = template.get("Conditions", {})
    while True:
        used = _conditions_used({k: v for k, v in template.items() if k != "Conditions"})
        used |= _conditions_used(list(conditions.values()))
        unused = set(conditions) - used
        if not unused:
            return
        for name in unused:
            del conditions[name]


def stackset_template(packaged: Path) -> dict[str, Any]:
    """The packaged template with its transforms expanded and its artifact buckets regional (the module docstring)."""
    loaded = load_template(packaged)
    template: dict[str, Any] = json.loads(json.dumps(dict(loaded), default=str))  # loops expanded, a plain copy
    transforms = template.get("Transform", [])
    transforms = transforms if isinstance(transforms, list) else [transforms]
    unknown = set(transforms) - {LANGUAGE_EXTENSIONS, SERVERLESS}
    if unknown:
        raise StacksetTemplateError(f"transform(s) this tool does not expand: {sorted(unknown)}")
    _check_packaged(template)
    template["Transform"] = [SERVERLESS]
    translated = _sam_transform(template)
    translated.pop("Transform", None)
    _drop_unused_conditions(translated)
    moved = 0
    for spec in translated["Resources"].values():
        key = ARTIFACT_PROPERTIES.get(spec["Type"])
        if key is not None:
            spec["Properties"][key]["S3Bucket"] = REGIONAL_BUCKET
            moved += 1
    if not moved:
        raise StacksetTemplateError("no Lambda function or layer found: is this pipeshare's packaged template?")
    translated["Parameters"][ARTIFACT_PARAMETER] = {
        "Type": "String",
        "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,40}$",
        "Description": (
            "Artifacts bucket name without its Region: each target Region reads <prefix>-<region> (Lambda takes code "
            "only from a bucket in its own Region); every such bucket holds the packaged artifacts, same keys."
        ),
    }
    return translated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("packaged", type=Path, help="the template sam package wrote (--output-template-file)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the StackSet template")
    args = parser.parse_args(argv)
    try:
        template = stackset_template(args.packaged)
    except (OSError, StacksetTemplateError) as exc:
        print(f"{args.packaged}: {exc}", file=sys.stderr)
        return 1
    args.output.write_text(json.dumps(template, indent=1, sort_keys=False) + "\n")
    print(f"{args.output}: {len(template['Resources'])} resources, parameter {ARTIFACT_PARAMETER} added")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
