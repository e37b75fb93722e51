"""The CLI's AWS path (`--profile/--region/--regions/--stack`), through the same product adapters as the local
stack, on botocore Stubber answers in the AWS API shapes: stack outputs and parameters, caller identity, RAM accept,
the share table's transaction, errors mapped to exit codes. Plus the output helpers."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import ANY, Stubber

from pipeshare.adapters.dynamodb_common import item
from pipeshare.logic.accept import client_token
from pipeshare.models.domain import Action, TrustPolicy
from pipeshare_local.cli import main
from pipeshare_local.ops.consumer import allowed_types
from pipeshare_local.ops.output import Result, Section, bar, emit, merge
from pipeshare_local.ops.target import template_outputs

ACCOUNT, OWNER, STRANGER = "222222222222", "111111111111", "333333333333"
TABLE = "pipeshare-ShareTable-1A2B3C"
INVITATION = f"arn:aws:ram:eu-west-1:{STRANGER}:resource-share-invitation/7f6c1e9e-1b0e-4a57-9d3c-1f0f2a3b4c5d"
SHARE = f"arn:aws:ram:eu-west-1:{STRANGER}:resource-share/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
PIPELINE = f"arn:aws:sagemaker:eu-west-1:{STRANGER}:pipeline/free-gpu-hours"
STACK_ID = "5b1a2c3d-0000-4000-8000-000000000000"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/Operator/alice"


class StubbedSession:
    """Stands for boto3.Session: one stubbed client per (service, region)."""

    region_name = "eu-west-1"

    def __init__(self, **_: Any) -> None:
        self._core = botocore.session.Session()
        self.clients: dict[tuple[str, str], Any] = {}
        self.stubbers: dict[tuple[str, str], Stubber] = {}

    def stub(self, service: str, region: str = "eu-west-1") -> Stubber:
        key = (service, region)
        if key not in self.clients:
            client = self._core.create_client(
                service,
                region_name=region,
                aws_access_key_id="AKIDEXAMPLE",
                aws_secret_access_key="secret",
            )
            self.clients[key] = client
            self.stubbers[key] = Stubber(client)
            self.stubbers[key].activate()
        return self.stubbers[key]

    def client(self, service: str, region_name: str | None = None) -> Any:
        key = (service, region_name or self.region_name)
        self.stub(*key)
        return self.clients[key]

    def verify(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> StubbedSession:
    stubbed = StubbedSession()
    monkeypatch.setattr(boto3, "Session", lambda **kwargs: stubbed)
    return stubbed


def _stack(session: StubbedSession, region: str = "eu-west-1", **parameters: str) -> None:
    """DescribeStacks for a consumer stack: its outputs and parameters (the AWS API shape)."""
    session.stub("cloudformation", region).add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "pipeshare",
                    "StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/pipeshare/{STACK_ID}",
                    "CreationTime": datetime(2026, 5, 1, tzinfo=UTC),
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [
                        {"OutputKey": "ShareTableName", "OutputValue": TABLE},
                        {"OutputKey": "ConsumerTopicArn", "OutputValue": f"arn:aws:sns:{region}:{ACCOUNT}:pipeshare-c"},
                    ],
                    "Parameters": [
                        {"ParameterKey": "Mode", "ParameterValue": "consumer"},
                        {"ParameterKey": "TrustedOwnerAccountIds", "ParameterValue": OWNER},
                        {"ParameterKey": "AllowedResourceTypes", "ParameterValue": "sagemaker:Pipeline"},
                        {"ParameterKey": "UntrustedAction", "ParameterValue": "hold"},
                        {"ParameterKey": "DisallowedResourceAction", "ParameterValue": "hold"},
                        {"ParameterKey": "TrustPolicyParameterName", "ParameterValue": ""},
                        {"ParameterKey": "HistoryRetentionDays", "ParameterValue": "400"},
                        *({"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()),
                    ],
                }
            ]
        },
        {"StackName": "pipeshare"},
    )


def _state(status: str = "HELD", resources: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "pk": f"INVITATION#{INVITATION}",
        "sk": "STATE",
        "item_type": "invitation",
        "invitation_arn": INVITATION,
        "share_arn": SHARE,
        "share_name": "stranger-share",
        "sender_account_id": STRANGER,
        "receiver_account_id": ACCOUNT,
        "region": "eu-west-1",
        "status": status,
        "decision": "hold",
        "rule": "untrusted-owner",
        "reason": f"sender {STRANGER} is not a trusted owner",
        "invited_at": "2026-05-01T08:00:00Z",
        "first_seen_at": "2026-05-01T08:00:05Z",
        "decided_at": "2026-05-01T08:00:05Z",
        "last_seen_at": "2026-05-01T08:00:05Z",
        "resources": resources or [],
    }


def _ram_invitation(status: str = "PENDING") -> dict[str, Any]:
    return {
        "resourceShareInvitationArn": INVITATION,
        "resourceShareName": "stranger-share",
        "resourceShareArn": SHARE,
        "senderAccountId": STRANGER,
        "receiverAccountId": ACCOUNT,
        "invitationTimestamp": datetime(2026, 5, 1, 8, tzinfo=UTC),
        "status": status,
    }


def _get_state(session: StubbedSession, state: dict[str, Any]) -> None:
    session.stub("dynamodb").add_response(
        "get_item",
        {"Item": item(state)},
        {"TableName": TABLE, "Key": item({"pk": f"INVITATION#{INVITATION}", "sk": "STATE"}), "ConsistentRead": True},
    )


def _ram_lists(session: StubbedSession, status: str = "PENDING") -> None:
    session.stub("ram").add_response(
        "get_resource_share_invitations",
        {"resourceShareInvitations": [_ram_invitation(status)]},
        {"resourceShareInvitationArns": [INVITATION]},
    )


def test_approve_on_aws_accepts_through_ram_and_records_the_caller(
    session: StubbedSession, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stack whose outputs name the share table, a held invitation and RAM showing it pending
    _stack(session)
    _get_state(session, _state())
    _ram_lists(session)
    session.stub("ram").add_response(
        "list_pending_invitation_resources",
        {"resources": [{"arn": PIPELINE, "type": "sagemaker:Pipeline", "resourceShareArn": SHARE}]},
        {"resourceShareInvitationArn": INVITATION},
    )
    session.stub("sts").add_response(
        "get_caller_identity", {"UserId": "AROAEXAMPLE:alice", "Account": ACCOUNT, "Arn": CALLER}, {}
    )
    session.stub("ram").add_response(
        "accept_resource_share_invitation",
        {
            "resourceShareInvitation": _ram_invitation("ACCEPTED"),
            "clientToken": client_token(INVITATION, Action.ACCEPT),
        },
        {"resourceShareInvitationArn": INVITATION, "clientToken": client_token(INVITATION, Action.ACCEPT)},
    )
    written: list[Any] = []
    session.stub("dynamodb").add_response("transact_write_items", {}, {"TransactItems": ANY})
    session.clients[("dynamodb", "eu-west-1")].meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems", lambda params, **_: written.append(params)
    )
    # When the operator approves it
    code = main(["consumer", "approve", INVITATION, "--reason", "vetted partner", "--region", "eu-west-1", "--json"])
    document = json.loads(capsys.readouterr().out)
    # Then RAM accepted it (deterministic client token) and one transition was written with the caller and reason
    assert code == 0
    session.verify()
    assert document["target"] == f"stack pipeshare ({ACCOUNT}, eu-west-1)"
    assert document["answer"][0]["by"] == CALLER
    (params,) = written
    update, history = params["TransactItems"]
    values = update["Update"]["ExpressionAttributeValues"]
    assert update["Update"]["TableName"] == TABLE
    assert values[":status"] == {"S": "ACCEPTED"}
    assert values[":rule"] == {"S": "manual-approval"}
    assert values[":reason"] == {"S": f"approved by {CALLER}: vetted partner"}
    assert "#status IN" in update["Update"]["ConditionExpression"]  # only from a predecessor (HELD / PENDING)
    assert history["Put"]["Item"]["sk"]["S"].endswith("#ACCEPTED")
    assert history["Put"]["Item"]["rule"] == {"S": "manual-approval"}


def test_approve_on_aws_refuses_an_expired_invitation_without_answering_ram(
    session: StubbedSession, capsys: pytest.CaptureFixture[str]
) -> None:
    _stack(session)
    _get_state(session, _state())
    _ram_lists(session, status="EXPIRED")
    code = main(["consumer", "approve", INVITATION, "--reason", "late", "--region", "eu-west-1"])
    assert code == 4
    assert "RAM shows the invitation EXPIRED" in capsys.readouterr().err
    session.verify()  # no accept, no write: no response was left for them


def test_reject_on_aws_refuses_an_answered_record(session: StubbedSession, capsys: pytest.CaptureFixture[str]) -> None:
    _stack(session)
    _get_state(session, _state(status="ACCEPTED"))
    code = main(["consumer", "reject", INVITATION, "--reason", "no", "--region", "eu-west-1"])
    assert code == 4
    assert "recorded as ACCEPTED" in capsys.readouterr().err


def test_invitations_across_regions_in_one_view(session: StubbedSession, capsys: pytest.CaptureFixture[str]) -> None:
    for region in ("eu-west-1", "us-east-1"):
        _stack(session, region)
        state = _state() | {"region": region, "share_name": f"share-{region}"}
        session.stub("dynamodb", region).add_response(
            "query",
            {"Items": [item(state)], "Count": 1, "ScannedCount": 1},
            {
                "TableName": TABLE,
                "IndexName": "by_status",
                "KeyConditionExpression": "#s = :s",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":s": {"S": "HELD"}},
            },
        )
    code = main(["consumer", "invitations", "--status", "HELD", "--regions", "eu-west-1,us-east-1", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(r["region"], r["share_name"]) for r in document["invitations"]] == [
        ("eu-west-1", "share-eu-west-1"),
        ("us-east-1", "share-us-east-1"),
    ]
    assert document["target"].count("stack pipeshare") == 2
    session.verify()


def test_a_missing_stack_is_an_aws_error_and_a_missing_output_a_usage_error(
    session: StubbedSession, capsys: pytest.CaptureFixture[str]
) -> None:
    session.stub("cloudformation").add_client_error(
        "describe_stacks", "ValidationError", "Stack with id nope does not exist", 400
    )
    assert main(["owner", "grants", "--stack", "nope", "--region", "eu-west-1"]) == 3
    assert "Stack with id nope does not exist" in capsys.readouterr().err
    _stack(session)  # a consumer stack: no OwnerTableName output
    assert main(["owner", "grants", "--region", "eu-west-1"]) == 2
    assert "no OwnerTableName output" in capsys.readouterr().err


def test_local_and_stack_options_do_not_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["owner", "spend", "--local", "scenarios/demo.yaml", "--region", "eu-west-1"]) == 2
    assert main(["owner", "grants", "--account", OWNER, "--region", "eu-west-1"]) == 2
    with pytest.raises(SystemExit) as exc:  # argparse: --regions is for read commands only
        main(["consumer", "approve", INVITATION, "--reason", "x", "--regions", "eu-west-1,us-east-1"])
    assert exc.value.code == 2


# ------------------------------------------------------------------------------------------------------ helpers


def test_template_outputs_follow_conditions_refs_and_attributes() -> None:
    template = {
        "Outputs": {
            "OwnerTableName": {"Condition": "IsOwner", "Value": {"Ref": "OwnerTable"}},
            "ShareTableName": {"Condition": "IsConsumer", "Value": {"Ref": "ShareTable"}},
            "OwnerEventBusArn": {"Condition": "IsOwner", "Value": {"Fn::GetAtt": ["OwnerBus", "Arn"]}},
            "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
        }
    }
    deployment = SimpleNamespace(
        conditions={"IsOwner": True, "IsConsumer": False},
        refs={"OwnerTable": "pipeshare-OwnerTable", "ShareTable": "x", "AlarmTopic": "arn:aws:sns:r:1:a"},
        attributes={("OwnerBus", "Arn"): "arn:aws:events:r:1:event-bus/pipeshare-owner"},
    )
    assert template_outputs(template, deployment) == {
        "OwnerTableName": "pipeshare-OwnerTable",
        "OwnerEventBusArn": "arn:aws:events:r:1:event-bus/pipeshare-owner",
        "AlarmTopicArn": "arn:aws:sns:r:1:a",
    }


def test_allowed_types_for_a_trusted_and_an_untrusted_sender() -> None:
    policy = TrustPolicy.model_validate(
        {
            "version": 1,
            "owners": [
                {"account_id": OWNER, "allowed_resource_types": ["sagemaker:Pipeline"]},
                {"account_id": "444444444444", "allowed_resource_types": ["glue:Table"]},
            ],
        }
    )
    assert allowed_types(policy, OWNER) == ["sagemaker:Pipeline"]
    assert allowed_types(policy, STRANGER) == ["glue:Table", "sagemaker:Pipeline"]  # what it allows from anyone


def test_bar_and_merge() -> None:
    from decimal import Decimal

    assert bar(Decimal("0")) == "░" * 20
    assert bar(Decimal("50")) == "█" * 10 + "░" * 10
    assert bar(Decimal("250")) == "█" * 20 + " !"
    assert bar(None) == ""
    one = Result([Section("rows", "Rows", [("a", "A")], [{"a": 1}])])
    empty = Result([Section("rows", "Rows", [("a", "A")], [])], code=1)
    merged = merge([("x", "eu-west-1", one), ("y", "us-east-1", empty)])
    assert merged.code == 0  # something found in one region
    assert merged.section("rows").rows == [{"region": "eu-west-1", "a": 1}]
    assert merged.section("rows").columns[0] == ("region", "Region")


def test_an_invalid_scenario_is_a_usage_error_and_nothing_runs(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: bad\nsteps:\n  - no_such_step: {}\n")
    assert main(["owner", "grants", "--local", str(scenario)]) == 2
    assert "no_such_step" in capsys.readouterr().err


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["consumer", "--help"], ["owner", "--help"], ["owner", "budget", "check", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("invitations", "approve", "reject", "policy", "grants", "executions", "explain", "spend", "prices"):
        assert command in out


@pytest.mark.parametrize("columns", ["80", "100", "160"])
def test_identifiers_are_never_cut_in_a_narrow_table(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a pipe as wide as COLUMNS (80 under pytest-xdist) and a table wider than that
    monkeypatch.setenv("COLUMNS", columns)
    headers = ["Pipeline", "Status", "Started", "Source", "Started by", "Attempt", "Estimate USD", "Final", "Reason"]
    keys = ["pipeline", "status", "started_at", "attribution_source", "initiator_account", "attempt", "usd", "final"]
    row = {
        "execution": "nf4555xl5vo0",
        "pipeline": "churn-train-with-a-long-name",
        "status": "Succeeded",
        "started_at": "2026-05-01T08:00:05Z",
        "attribution_source": "cloudtrail-owner-copy",
        "initiator_account": "222222222222",
        "attempt": 1,
        "usd": "0.078611",
        "final": True,
        "reason": "a long explanation that may fold over several lines of its cell",
    }
    section = Section(
        "executions", "Executions", [("execution", "Execution"), *zip([*keys, "reason"], headers, strict=True)], [row]
    )

    # When it is printed as a table
    out = io.StringIO()
    emit(Result([section]), as_json=False, target="t", out=out)

    # Then every identifier is whole on one line (a table cell folded over lines would split it)
    text = out.getvalue()
    for identifier in ("nf4555xl5vo0", "222222222222", "churn-train-with-a-long-name"):
        assert identifier in text
