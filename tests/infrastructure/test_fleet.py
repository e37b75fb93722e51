"""Fleet rollout (docs/fleet.md): deploy/consumer-stackset.yaml is a lint-clean, service-managed, auto-deploying
StackSet of the consumer side, and tools/stackset_template.py turns a packaged template.yaml into a template such a
StackSet can deploy (service-managed StackSets take no transform: docs/aws-facts.md §13.1)."""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from pipeshare_local.template import TEMPLATE_PATH, load_template

ROOT = TEMPLATE_PATH.parent
STACKSET_PATH = ROOT / "deploy" / "consumer-stackset.yaml"
sys.path.insert(0, str(ROOT / "tools"))
import stackset_template  # noqa: E402 - tools/ is not a package

BUCKET = "pipeshare-artifacts-us-east-1"


@functools.cache
def stackset() -> dict[str, Any]:
    return dict(load_template(STACKSET_PATH))


def stackset_resource() -> dict[str, Any]:
    (resource,) = (r for r in stackset()["Resources"].values() if r["Type"] == "AWS::CloudFormation::StackSet")
    return dict(resource["Properties"])


def packaged(tmp_path: Path) -> Path:
    """template.yaml as `sam package` leaves it: each CodeUri / ContentUri an s3:// URI, everything else as written."""
    text = TEMPLATE_PATH.read_text()
    count = 0

    def upload(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"{match.group(1)}: s3://{BUCKET}/{count:032x}"

    text = re.sub(r"^(\s+(?:CodeUri|ContentUri)): (\S+)$", upload, text, flags=re.MULTILINE)
    assert count >= 2  # the functions and the layer
    path = tmp_path / "packaged.yaml"
    path.write_text(text)
    return path


@functools.cache
def translated_once() -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        return stackset_template.stackset_template(packaged(Path(directory)))


# ---------------------------------------------------------------------------------------------- the StackSet


def test_the_stackset_template_is_cfn_lint_clean() -> None:
    assert [str(m) for m in lint_file(STACKSET_PATH, config=ManualArgs())] == []


def test_the_stackset_is_service_managed_auto_deployed_to_ous_and_regions_given_as_parameters() -> None:
    props = stackset_resource()
    assert props["PermissionModel"] == "SERVICE_MANAGED"
    assert props["AutoDeployment"]["Enabled"] is True
    assert props["CallAs"] == {"Ref": "CallAs"}
    assert stackset()["Parameters"]["CallAs"]["AllowedValues"] == ["SELF", "DELEGATED_ADMIN"]
    assert props["TemplateURL"] == {"Ref": "TemplateURL"}
    (group,) = props["StackInstancesGroup"]
    assert group["DeploymentTargets"] == {"OrganizationalUnitIds": {"Ref": "OrganizationalUnitIds"}}
    assert group["Regions"] == {"Ref": "Regions"}
    assert stackset()["Parameters"]["OrganizationalUnitIds"]["Type"] == "CommaDelimitedList"
    preferences = props["OperationPreferences"]
    assert {"FailureTolerancePercentage", "MaxConcurrentPercentage", "RegionConcurrencyType"} <= set(preferences)


def test_the_stackset_acknowledges_iam_and_no_macro() -> None:
    # service-managed StackSets reject macros even with CAPABILITY_AUTO_EXPAND: the template it deploys has none
    assert stackset_resource()["Capabilities"] == ["CAPABILITY_IAM"]


def _passed(entry: Any) -> dict[str, Any]:
    """A Parameters entry, written plainly or as !If [condition, entry, AWS::NoValue]."""
    return entry["Fn::If"][1] if "Fn::If" in entry else entry


def test_every_parameter_the_stackset_passes_is_declared_by_its_template_and_mode_is_consumer() -> None:
    passed = {_passed(p)["ParameterKey"]: _passed(p)["ParameterValue"] for p in stackset_resource()["Parameters"]}
    declared = translated_once()["Parameters"]
    assert set(passed) <= set(declared)
    assert passed["Mode"] == "consumer"
    assert {"TrustedOwnerAccountIds", "OwnerEventBusArn", stackset_template.ARTIFACT_PARAMETER} <= set(passed)
    # the consumer parameters keep template.yaml's constraints, so a bad value fails before any account is touched
    source = load_template()["Parameters"]
    for name in ("TrustedOwnerAccountIds", "OwnerEventBusArn", "TrustPolicyParameterName"):
        assert stackset()["Parameters"][name]["AllowedPattern"].removeprefix("^$|") == source[name][
            "AllowedPattern"
        ].removeprefix("^$|")


# ------------------------------------------------------------------------------ the StackSet's template (tool)


def test_the_tool_leaves_plain_cloudformation_with_the_consumer_side() -> None:
    template = translated_once()
    assert "Transform" not in template
    text = json.dumps(template)
    assert "Fn::ForEach" not in text
    types = {r["Type"] for r in template["Resources"].values()}
    assert not {t for t in types if t.startswith("AWS::Serverless::")}
    for logical in ("AcceptInvitationsFunction", "AuditSharesFunction", "NotifyDecisionsFunction"):
        assert template["Resources"][logical]["Type"] == "AWS::Lambda::Function"
    assert template["Resources"]["ConsumerDashboard"]["Type"] == "AWS::CloudWatch::Dashboard"
    assert "Mode" in template["Parameters"]


def test_every_function_and_layer_reads_its_own_regions_artifact_bucket() -> None:
    resources = translated_once()["Resources"]
    artifacts = [
        spec["Properties"][stackset_template.ARTIFACT_PROPERTIES[spec["Type"]]]
        for spec in resources.values()
        if spec["Type"] in stackset_template.ARTIFACT_PROPERTIES
    ]
    functions = [s for s in resources.values() if s["Type"] == "AWS::Lambda::Function"]
    assert len(artifacts) == len(functions) + 1  # and the layer
    assert all(a["S3Bucket"] == {"Fn::Sub": "${ArtifactBucketPrefix}-${AWS::Region}"} for a in artifacts)
    assert all(a["S3Key"] for a in artifacts)  # the keys sam package wrote, unchanged
    assert BUCKET not in json.dumps(resources)


def test_the_tools_output_is_cfn_lint_clean(tmp_path: Path) -> None:
    path = tmp_path / "stackset.json"
    assert stackset_template.main([str(packaged(tmp_path)), "-o", str(path)]) == 0
    assert [str(m) for m in lint_file(path, config=ManualArgs())] == []


def test_the_tool_refuses_a_template_that_was_not_packaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stackset_template.main([str(TEMPLATE_PATH), "-o", str(tmp_path / "out.json")]) == 1
    assert "not an s3:// URI: run sam package first" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
