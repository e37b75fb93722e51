"""Scenario files are input: every step's arguments have a model, and a bad scenario is refused when it is loaded,
before anything runs, with one line per problem naming the file, the line, the step and the field."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import pipeshare_local.scenario as scenario_module
from pipeshare_local.cli import main
from pipeshare_local.sagemaker import StepSpec
from pipeshare_local.scenario import (
    STEP_KINDS,
    AdvanceArgs,
    PipelineStepArgs,
    Scenario,
    ScenarioError,
    ShareArgs,
    StepArgs,
    load_scenario,
)
from pipeshare_local.template import load_template
from tests.conftest import ROOT

SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

HEAD = """\
name: checked
accounts:
  owner:    {id: "111111111111"}
  consumer: {id: "222222222222"}
  stranger: {id: "333333333333"}
deploy:
  - account: owner
    mode: owner
  - account: consumer
    parameters: {TrustedOwnerAccountIds: "111111111111"}
steps:
  - create_pipeline: {account: owner, name: churn-train}
"""  # steps[0] creates pipeline:churn-train; the steps a test adds are steps[1], steps[2] ...


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every LocalStack the scenario module starts (none may start for an invalid scenario)."""
    stacks: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        stacks.append((args, kwargs))
        raise AssertionError("a LocalStack was started")

    monkeypatch.setattr(scenario_module, "LocalStack", refuse)
    return stacks


def write(tmp_path: Path, *steps: str, head: str = HEAD) -> Path:
    path = tmp_path / "story.yaml"
    path.write_text(head + "".join(f"  - {step}\n" for step in steps))
    return path


def line_of(path: Path, text: str) -> int:
    """The (1-based) line of the first line of path containing text."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def refused(path: Path, started: list[Any]) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert started == []  # validation is at load: nothing ran
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# ------------------------------------------------------------------------------------------------ every step


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_shipped_scenario_loads(path: Path) -> None:
    # Given a scenario of scenarios/ / When it is loaded / Then every step has its typed arguments
    scenario = load_scenario(path)
    assert scenario.steps
    assert all(isinstance(step.args, STEP_KINDS[step.kind].model) for step in scenario.steps)


def test_the_shipped_scenarios_cover_most_step_kinds() -> None:
    # Given every shipped scenario / Then together they play almost every kind (the loads above check them)
    kinds = {step.kind for path in SCENARIOS for step in load_scenario(path).steps}
    assert set(STEP_KINDS) - kinds <= {"put_event", "set_trust_policy"}


@pytest.mark.parametrize("kind", sorted(STEP_KINDS))
def test_every_step_kind_has_a_strict_model_taken_by_its_function(kind: str) -> None:
    # Given a registered step kind
    step = STEP_KINDS[kind]
    # Then its arguments model refuses unknown keys, and its function takes that model, not a dict
    assert issubclass(step.model, StepArgs)
    assert step.model.model_config.get("extra") == "forbid"
    hints = typing.get_type_hints(step.play, vars(scenario_module))
    assert list(hints.values())[1] is step.model
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        step.model.model_validate({"surely_not_a_key": 1})


@pytest.mark.parametrize("kind", sorted(STEP_KINDS))
def test_every_step_kind_is_documented(kind: str) -> None:
    # Given docs/scenarios.md / Then its format block shows every step kind
    assert re.search(rf"^\s*- {kind}:", (ROOT / "docs" / "scenarios.md").read_text(), re.MULTILINE)


def test_define_steps_items_have_exactly_the_fields_and_defaults_of_stepspec() -> None:
    # Given StepSpec, what the SageMaker emulation runs / Then each define_steps item takes exactly its fields
    spec = {f.name: f.default for f in dataclasses.fields(StepSpec) if f.default is not dataclasses.MISSING}
    model = {name: info.default for name, info in PipelineStepArgs.model_fields.items() if not info.is_required()}
    assert set(PipelineStepArgs.model_fields) == {f.name for f in dataclasses.fields(StepSpec)}
    assert {k: v for k, v in model.items() if k != "instance_groups"} == {
        k: v for k, v in spec.items() if k != "instance_groups"
    }
    assert PipelineStepArgs(name="x").instance_groups == list(StepSpec(name="x").instance_groups)
    # and a step built from the keys given is the StepSpec of those keys
    item = PipelineStepArgs.model_validate(
        {"name": "Train", "type": "Training", "instance_groups": [["ml.m5.xlarge", 2]]}
    )
    assert item.spec() == StepSpec(name="Train", type="Training", instance_groups=(("ml.m5.xlarge", 2),))


def test_a_loaded_step_means_what_it_says() -> None:
    # Given the demo scenario / When it is loaded
    steps = load_scenario(ROOT / "scenarios" / "demo.yaml").steps
    # Then the arguments are typed values with the documented defaults
    advance = next(s.args for s in steps if s.kind == "advance")
    assert advance == AdvanceArgs(minutes=15)
    share = next(s.args for s in steps if s.kind == "share" and s.args.name == "fraud-share")
    assert share == ShareArgs(
        account="owner", name="fraud-share", resources=["pipeline:fraud-score"], principals=["consumer"]
    )
    assert (share.permission, share.allow_external_principals) == ("read-only", True)
    start = next(s.args for s in steps if s.kind == "start_execution")
    assert start.label == "consumer-run"  # `as:`


def test_a_step_played_from_a_mapping_is_validated_by_its_model() -> None:
    # Given a step function called with a mapping (as the bench does) / Then the mapping is validated first
    with pytest.raises(ValidationError, match="minute"):
        STEP_KINDS["advance"](object(), {"minute": 15})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ unknown keys


@pytest.mark.parametrize(
    ("step", "kind", "field", "suggestion"),
    [
        ("advance: {minute: 15}", "advance", "minute", "minutes"),
        (
            'share: {account: owner, name: s, resources: ["pipeline:churn-train"], principal: [consumer]}',
            "share",
            "principal",
            "principals",
        ),
        ("expect_alerts: {owner: owner, count: 0, acton: start}", "expect_alerts", "acton", "action"),
        ("drop_events: {cont: 2}", "drop_events", "cont", "count"),
        ("expect: {account: consumer, share: s, status: ACCEPTED, rules: trusted-owner}", "expect", "rules", "rule"),
    ],
)
def test_an_unknown_key_is_refused_naming_file_line_step_and_field(
    tmp_path: Path, started: list[Any], step: str, kind: str, field: str, suggestion: str
) -> None:
    # Given a scenario whose second step has a misspelt key
    path = write(tmp_path, "note: {text: before}", step)
    # When it is loaded / Then one line: the file, the step's line, the step (index and kind), the key
    [problem] = refused(path, started)
    assert problem.startswith(f"{path}:{line_of(path, step)}: steps[2].{kind}.{field}: unknown key '{field}' (")
    assert f"did you mean '{suggestion}'?" in problem


def test_an_unknown_key_inside_a_nested_mapping_is_refused(tmp_path: Path, started: list[Any]) -> None:
    # Given a define_steps item and a set_emulation block with a misspelt key, on their own lines
    path = write(
        tmp_path,
        "define_steps:\n      account: owner\n      pipeline: churn-train\n      steps:\n"
        "        - {name: Prep}\n        - {name: Train, durations_seconds: 60}",
        "set_emulation: {cloudtrail: {delay_minute: 20}}",
    )
    # When it is loaded / Then each names the exact line and field path
    assert refused(path, started) == [
        f"{path}:{line_of(path, 'durations_seconds')}: steps[1].define_steps.steps[1].durations_seconds: unknown key "
        "'durations_seconds' (each item takes name, type, duration_seconds, instance_type, instance_count, outcome, "
        "spot, spot_saving, instance_groups, volume_gb, cache_hit, max_runtime_seconds; did you mean "
        "'duration_seconds'?)",
        f"{path}:{line_of(path, 'delay_minute')}: steps[2].set_emulation.cloudtrail.delay_minute: unknown key "
        "'delay_minute' (cloudtrail takes delay_minutes, owner_trail, consumer_trail, trails, order; did you mean "
        "'delay_minutes'?)",
    ]


def test_an_unknown_step_kind_and_a_missing_key_are_refused(tmp_path: Path, started: list[Any]) -> None:
    # Given a misspelt step kind and a step without its required key
    path = write(tmp_path, "advnace: {minutes: 15}", "sweep: {}")
    # When it is loaded / Then both are reported, each on its line
    unknown, missing = refused(path, started)
    assert unknown.startswith(f"{path}:{line_of(path, 'advnace')}: steps[1]: unknown step kind 'advnace'; did you mean")
    assert missing == f"{path}:{line_of(path, 'sweep')}: steps[2].sweep.account: missing (required)"


# ------------------------------------------------------------------------------------------------ wrong types


@pytest.mark.parametrize(
    ("step", "kind", "field", "says"),
    [
        ('drop_events: {count: "3"}', "drop_events", "count", "Input should be a valid integer (got '3')"),
        ('advance: {minutes: "15"}', "advance", "minutes", "Input should be a valid number (got '15')"),
        ("advance: {hours: -1}", "advance", "hours", "Input should be greater than or equal to 0 (got -1)"),
        (
            "share: {account: owner, name: s, permission: allow_execution}",
            "share",
            "permission",
            "Input should be 'read-only' or 'allow-execution' (got 'allow_execution')",
        ),
        (
            'share: {account: owner, name: s, allow_external_principals: "no"}',
            "share",
            "allow_external_principals",
            "Input should be a valid boolean (got 'no')",
        ),
        (
            "share: {account: owner, name: s, principals: consumer}",
            "share",
            "principals",
            "Input should be a valid list",
        ),
        (
            "expect_spend: {owner: owner, consumer: consumer, max_usd: lots}",
            "expect_spend",
            "max_usd",
            "'lots' is not a USD amount",
        ),
    ],
)
def test_a_wrong_type_is_refused_naming_file_line_step_and_field(
    tmp_path: Path, started: list[Any], step: str, kind: str, field: str, says: str
) -> None:
    # Given a step with a value of the wrong type
    path = write(tmp_path, step)
    # When it is loaded / Then it is refused, naming where and what
    [problem] = refused(path, started)
    assert problem.startswith(f"{path}:{line_of(path, step)}: steps[1].{kind}.{field}: {says}")


def test_a_define_steps_item_is_checked_by_stepspec_at_load(tmp_path: Path, started: list[Any]) -> None:
    # Given a step that StepSpec refuses (spot on a processing step)
    path = write(tmp_path, "define_steps: {account: owner, pipeline: churn-train, steps: [{name: Prep, spot: true}]}")
    # When it is loaded / Then StepSpec's own reason is reported at load time
    assert refused(path, started) == [
        f"{path}:{line_of(path, 'define_steps')}: steps[1].define_steps.steps[0]: spot and instance_groups apply to "
        "Training and Tuning steps only"
    ]


# ------------------------------------------------------------------------------------------------ references


def test_an_unknown_account_alias_is_refused(tmp_path: Path, started: list[Any]) -> None:
    # Given steps naming an account that is not declared, directly and in a list
    path = write(
        tmp_path,
        'share: {account: owner, name: s, resources: ["pipeline:churn-train"], principals: [consumer, consumr]}',
        "expect: {account: cosumer, share: s, status: ACCEPTED}",
    )
    # When it is loaded / Then each reference is refused, naming its field
    assert refused(path, started) == [
        f"{path}:{line_of(path, 'consumr')}: steps[1].share.principals[1]: unknown account 'consumr' (accounts: "
        "owner, consumer, stranger; or a 12-digit account ID; did you mean 'consumer'?)",
        f"{path}:{line_of(path, 'cosumer')}: steps[2].expect.account: unknown account 'cosumer' (accounts: owner, "
        "consumer, stranger; or a 12-digit account ID; did you mean 'consumer'?)",
    ]


def test_an_account_without_a_deployment_is_refused_where_one_is_needed(tmp_path: Path, started: list[Any]) -> None:
    # Given a sweep in a declared account that runs no pipeshare
    path = write(tmp_path, "sweep: {account: stranger}")
    # When it is loaded / Then it is refused
    assert refused(path, started) == [
        f"{path}:{line_of(path, 'sweep')}: steps[1].sweep.account: account 'stranger' has no pipeshare deployment "
        "(deploy: lists consumer, owner)"
    ]


def test_a_twelve_digit_account_id_is_a_valid_account(tmp_path: Path) -> None:
    # Given a share with an undeclared account ID / When it is loaded / Then it is accepted (RAM takes IDs)
    path = write(
        tmp_path, 'share: {account: owner, name: s, resources: ["pipeline:churn-train"], principals: ["999999999999"]}'
    )
    assert load_scenario(path).steps[1].args.principals == ["999999999999"]


def test_a_resource_alias_must_be_created_by_an_earlier_step(tmp_path: Path, started: list[Any]) -> None:
    # Given a share of a misspelt pipeline, and a start of a pipeline created only by a LATER step
    path = write(
        tmp_path,
        'share: {account: owner, name: s, resources: ["pipeline:churn-trian", "arn:aws:sagemaker:us-east-1:1:x"]}',
        "start_execution: {account: owner, pipeline: nightly, as: run1}",
        "create_pipeline: {account: owner, name: nightly}",
        "start_execution: {account: owner, pipeline: nightly, as: run2}",
    )
    # When it is loaded / Then both are refused (an ARN is taken as it is; the later start is fine)
    assert refused(path, started) == [
        f"{path}:{line_of(path, 'churn-trian')}: steps[1].share.resources[0]: unknown resource 'pipeline:churn-trian':"
        " no earlier step creates it (so far: pipeline:churn-train; or an ARN; did you mean 'pipeline:churn-train'?)",
        f"{path}:{line_of(path, 'as: run1')}: steps[2].start_execution.pipeline: unknown pipeline 'nightly': no "
        "earlier create_pipeline creates it (so far: churn-train)",
    ]


def test_define_steps_names_a_pipeline_of_its_own_account(tmp_path: Path, started: list[Any]) -> None:
    # Given a pipeline created by the stranger, whose steps the owner defines
    path = write(
        tmp_path,
        "create_pipeline: {account: stranger, name: gpu}",
        "define_steps: {account: owner, pipeline: gpu, steps: [{name: Prep}]}",
    )
    # When it is loaded / Then it is refused
    assert refused(path, started) == [
        f"{path}:{line_of(path, 'pipeline: gpu')}: steps[2].define_steps.pipeline: pipeline 'gpu' is created by "
        "account 333333333333, not by 'owner'"
    ]


def test_execution_labels_and_spend_marks_must_come_from_earlier_steps(tmp_path: Path, started: list[Any]) -> None:
    # Given an alert expectation on a misspelt run, and a spend compared with a mark set only later
    path = write(
        tmp_path,
        "start_execution: {account: owner, pipeline: churn-train, as: run1}",
        "expect_alerts: {owner: owner, execution: rnu1, count: 1}",
        "expect_spend: {owner: owner, consumer: consumer, unchanged_since: later}",
        "expect_spend: {owner: owner, consumer: consumer, max_usd: '0', as: later}",
    )
    # When it is loaded / Then both are refused
    assert refused(path, started) == [
        f"{path}:{line_of(path, 'rnu1')}: steps[2].expect_alerts.execution: unknown execution 'rnu1': no earlier "
        "start_execution has `as: rnu1` (so far: run1; did you mean 'run1'?)",
        f"{path}:{line_of(path, 'unchanged_since')}: steps[3].expect_spend.unchanged_since: unknown spend mark "
        "'later': no earlier expect_spend has `as: later` (so far: none yet)",
    ]


def test_references_are_checked_for_scenarios_built_in_code() -> None:
    # Given a scenario built from a mapping (as tests build them) / Then the same checks refuse it
    with pytest.raises(ValidationError, match=r"steps\[0\]\.share\.principals\[0\]: unknown account 'nobody'"):
        Scenario.model_validate(
            {
                "name": "in-code",
                "accounts": {"owner": {"id": "111111111111"}},
                "steps": [{"share": {"account": "owner", "name": "s", "principals": ["nobody"]}}],
            }
        )


# ------------------------------------------------------------------------------------------------ the file itself


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path, started: list[Any]) -> None:
    # Given a flow mapping left open on the second added line
    path = write(tmp_path, "note: {text: fine}", "advance: {minutes: 15", "note: {text: after}")
    # When it is loaded / Then one line: the file, the line YAML reports, what YAML says
    [problem] = refused(path, started)
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: YAML syntax error: .+", problem)
    assert int(problem.split(":")[1]) >= line_of(path, "minutes: 15")


def test_a_missing_file_is_one_clear_line(tmp_path: Path, started: list[Any]) -> None:
    path = tmp_path / "nowhere.yaml"
    assert refused(path, started) == [f"{path}: no such scenario file"]


def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path, started: list[Any]) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- advance: {minutes: 1}\n")
    assert refused(path, started) == [f"{path}:1: a scenario is a YAML mapping (name, accounts, deploy, steps ...)"]


def test_an_unknown_template_parameter_is_one_clear_line(tmp_path: Path, started: list[Any]) -> None:
    # Given a deployment with a misspelt template parameter
    head = HEAD.replace("TrustedOwnerAccountIds:", "TrustedOwnerAccountId:")
    path = write(tmp_path, head=head)
    # When it is loaded / Then it is refused against template.yaml's own Parameters
    assert "TrustedOwnerAccountId" not in load_template()["Parameters"]
    assert refused(path, started) == [
        f"{path}:{line_of(path, 'TrustedOwnerAccountId')}: deploy[1].parameters.TrustedOwnerAccountId: unknown "
        "template parameter 'TrustedOwnerAccountId' (not in template.yaml's Parameters; did you mean "
        "'TrustedOwnerAccountIds'?)"
    ]


def test_a_template_parameter_value_is_checked_as_the_deployment_would(tmp_path: Path, started: list[Any]) -> None:
    # Given a value outside the parameter's AllowedValues in template.yaml
    assert "maybe" not in load_template()["Parameters"]["UntrustedAction"]["AllowedValues"]
    path = write(tmp_path, head=HEAD.replace('{TrustedOwnerAccountIds: "111111111111"}', "{UntrustedAction: maybe}"))
    [problem] = refused(path, started)
    assert problem.startswith(f"{path}:{line_of(path, 'UntrustedAction')}: deploy[1].parameters: parameter ")
    assert "UntrustedAction='maybe'" in problem


# ------------------------------------------------------------------------------------------------ the command


def test_the_cli_refuses_an_invalid_scenario_with_one_line_and_exit_2(
    tmp_path: Path, started: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a scenario whose clock never moves (advance: {minute: 15})
    path = write(tmp_path, "advance: {minute: 15}")
    # When `pipeshare local run` is given it
    code = main(["local", "run", str(path)])
    # Then it exits 2 with one line on stderr, no traceback, nothing on stdout, and no stack started
    out, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines() == [
        f"{path}:{line_of(path, 'minute')}: steps[1].advance.minute: unknown key 'minute' (advance takes hours, "
        "minutes; did you mean 'minutes'?)"
    ]
    assert "Traceback" not in err
    assert out == ""
    assert started == []


def test_the_cli_lists_a_long_list_of_problems_shortly(
    tmp_path: Path, started: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given 25 bad steps / When run / Then 20 lines and a count of the rest
    path = write(tmp_path, *["advance: {minute: 1}"] * 25)
    assert main(["local", "run", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 21
    assert err[-1] == f"{path}: ... and 5 more problem(s)"
    assert started == []


def test_the_cli_reports_a_missing_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "run", str(tmp_path / "nowhere.yaml")]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'nowhere.yaml'}: no such scenario file\n"


def test_models_are_pydantic_models_of_their_own() -> None:
    # Given the registry / Then no two kinds share a model (each kind's keys are its own)
    models: list[type[BaseModel]] = [step.model for step in STEP_KINDS.values()]
    assert len(set(models)) == len(models)
