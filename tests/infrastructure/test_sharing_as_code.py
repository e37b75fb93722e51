"""Sharing as code with AWS::LanguageExtensions: the ShareLayout parameter, one share per consumer (Fn::ForEach), and
the local expansion the local stack relies on (pipeshare_local.template, with SAM CLI's language-extensions library).

The local stack deploying the per-consumer shares is tested in tests/integration/test_enforcement_ram.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from pipeshare_local.iam import sam_translate
from pipeshare_local.template import TEMPLATE_PATH, Resolver, expand_language_extensions, load_template

OWNER, CONSUMER_A, CONSUMER_B = "111111111111", "222222222222", "444444444444"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
PSEUDO = {
    "AWS::AccountId": OWNER,
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::StackName": "pipeshare",
    "AWS::URLSuffix": "amazonaws.com",
}
SHARING = {"Mode": "owner", "SharedPipelineArns": PIPELINE, "ShareConsumerAccountIds": f"{CONSUMER_A},{CONSUMER_B}"}


def resolver(parameters: dict[str, str], template: Any = None) -> Resolver:
    return Resolver(
        template if template is not None else load_template(),
        parameters=parameters,
        pseudo=PSEUDO,
        refs={},
        attrs=lambda logical, attribute: f"{logical}.{attribute}",
    )


def enabled_shares(r: Resolver) -> dict[str, dict[str, Any]]:
    return {
        name: r.resolve(spec["Properties"])
        for name, spec in r.template["Resources"].items()
        if spec["Type"] == "AWS::RAM::ResourceShare" and r.enabled(spec)
    }


def test_the_template_lists_language_extensions_before_sam() -> None:
    # Given the template's transforms / Then AWS::LanguageExtensions comes first (the SAM developer guide's order)
    assert load_template()["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


def test_the_consumer_loop_iterates_a_comma_delimited_list_parameter() -> None:
    # Given the per-consumer loop as written
    template = load_template()
    [(key, (identifier, collection, body))] = template.loops["Resources"].items()

    # Then its collection is a Ref to a CommaDelimitedList (a documented form), its identifier no parameter's name
    assert key == "Fn::ForEach::ConsumerShares"
    assert collection == {"Ref": "ShareConsumerAccountIds"}
    assert template["Parameters"]["ShareConsumerAccountIds"]["Type"] == "CommaDelimitedList"
    assert identifier not in template["Parameters"]
    assert list(body) == ["PipelineShareFor&{Consumer}"]


def test_the_defaults_expand_to_no_per_consumer_share() -> None:
    # Given the template as read (default parameters: no consumer)
    template = load_template()

    # Then no section holds a loop any more, and no per-consumer share or output was produced
    for section in ("Conditions", "Resources", "Outputs"):
        assert not [k for k in template.get(section, {}) if k.startswith("Fn::ForEach::")]
    assert not [k for k in template["Resources"] if k.startswith("PipelineShareFor")]
    assert "PipelineShare" in template["Resources"]


def test_per_consumer_layout_makes_one_share_per_consumer() -> None:
    # Given an owner deployment sharing one pipeline with two consumers, one share each
    r = resolver({**SHARING, "ShareLayout": "per-consumer"})

    # When the enabled shares are resolved
    shares = enabled_shares(r)

    # Then each consumer has its own share, named for it, with it as the only principal; the single share is off
    assert sorted(shares) == [f"PipelineShareFor{CONSUMER_A}", f"PipelineShareFor{CONSUMER_B}"]
    for consumer in (CONSUMER_A, CONSUMER_B):
        props = shares[f"PipelineShareFor{consumer}"]
        assert props["Name"] == f"pipeshare-pipelines-{consumer}"
        assert props["Principals"] == [consumer]
        assert props["ResourceArns"] == [PIPELINE]
    outputs = {k for k, v in r.template["Outputs"].items() if k.startswith("PipelineShareArn") and r.enabled(v)}
    assert outputs == {f"PipelineShareArnFor{CONSUMER_A}", f"PipelineShareArnFor{CONSUMER_B}"}
    assert r.resolve(r.template["Outputs"][f"PipelineShareArnFor{CONSUMER_B}"]["Value"]) == (
        f"PipelineShareFor{CONSUMER_B}.Arn"
    )


def test_single_layout_is_the_default_and_makes_one_share() -> None:
    # Given the same deployment without ShareLayout
    shares = enabled_shares(resolver(SHARING))

    # Then one share holds both consumers, as before the parameter existed
    assert list(shares) == ["PipelineShare"]
    assert shares["PipelineShare"]["Principals"] == [CONSUMER_A, CONSUMER_B]
    assert shares["PipelineShare"]["Name"] == "pipeshare-pipelines"


def test_per_consumer_layout_without_consumers_creates_no_share() -> None:
    # Given per-consumer sharing and no consumer
    r = resolver({"Mode": "owner", "SharedPipelineArns": PIPELINE, "ShareLayout": "per-consumer"})

    # Then no share at all
    assert enabled_shares(r) == {}


@pytest.mark.parametrize("consumers", ["22222222222", f"{CONSUMER_A},4444", f"{CONSUMER_A} ,{CONSUMER_B}"])
def test_each_consumer_id_must_match_the_pattern(consumers: str) -> None:
    # Given a list with one malformed account ID / Then the deployment is refused (the pattern applies per item)
    with pytest.raises(ValueError, match="ShareConsumerAccountIds"):
        resolver({**SHARING, "ShareConsumerAccountIds": consumers})


def test_an_edited_copy_keeps_its_edits_when_expanded_for_a_deployment() -> None:
    # Given a copy of the template with one resource edited (what tests do to remove a statement)
    template = copy.deepcopy(load_template())
    template["Resources"]["PipelineShare"]["Properties"]["Name"] = "edited"

    # When a deployment expands the loops for its parameters
    r = resolver({**SHARING, "ShareLayout": "single"}, template)

    # Then the edit is there and the loop was expanded for this deployment
    assert r.resolve(r.template["Resources"]["PipelineShare"]["Properties"])["Name"] == "edited"
    assert f"PipelineShareFor{CONSUMER_B}" in r.template["Resources"]


def test_a_loop_producing_a_declared_logical_id_is_refused() -> None:
    # Given a plain template whose loop produces a logical ID that is also declared
    template = {
        "Transform": "AWS::LanguageExtensions",
        "Parameters": {"Names": {"Type": "CommaDelimitedList", "Default": "A,B"}},
        "Resources": {
            "TopicA": {"Type": "AWS::SNS::Topic"},
            "Fn::ForEach::Topics": ["Name", {"Ref": "Names"}, {"Topic${Name}": {"Type": "AWS::SNS::Topic"}}],
        },
    }

    # When it is expanded / Then it is an error, as in CloudFormation
    with pytest.raises(ValueError, match="TopicA"):
        expand_language_extensions(template, {"Names": ["A", "B"]})


def test_a_malformed_loop_is_refused() -> None:
    # Given a loop without a body
    template = {"Transform": ["AWS::LanguageExtensions"], "Resources": {"Fn::ForEach::Bad": ["Name", ["A"]]}}

    # When it is expanded / Then it is an error naming the loop
    with pytest.raises(ValueError, match="Fn::ForEach::Bad"):
        expand_language_extensions(template, {})


def test_sam_translates_the_per_consumer_expansion() -> None:
    # Given the template expanded for two per-consumer shares
    r = resolver({**SHARING, "ShareLayout": "per-consumer"})

    # When SAM translates it (as the local stack does to build the roles)
    translated = sam_translate(r.template)

    # Then the shares pass through unchanged and every function still has its role
    assert translated["Resources"][f"PipelineShareFor{CONSUMER_A}"]["Type"] == "AWS::RAM::ResourceShare"
    assert "WatchBudgetsFunctionRole" in translated["Resources"]


def test_cfn_lint_is_clean_with_per_consumer_defaults(tmp_path: Path) -> None:
    # Given the template with per-consumer sharing of two consumers as its defaults
    text = TEMPLATE_PATH.read_text()
    for old, new in (
        (
            "    Default: single\n    AllowedValues: [single, per-consumer]",
            "    Default: per-consumer\n    AllowedValues: [single, per-consumer]",
        ),
        (
            '    Default: ""\n    AllowedPattern: ^$|^[0-9]{12}$\n',
            f'    Default: "{CONSUMER_A},{CONSUMER_B}"\n    AllowedPattern: ^$|^[0-9]{{12}}$\n',
        ),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    variant = tmp_path / "template.yaml"
    variant.write_text(text)

    # When cfn-lint runs with the serverless rules
    matches = lint_file(variant, config=ManualArgs(append_rules=["cfn_lint_serverless.rules"]))

    # Then nothing is reported
    assert not matches, "\n".join(str(m) for m in matches)
