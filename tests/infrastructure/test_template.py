"""Infrastructure tests for template.yaml: lint, failure handling, least privilege, encryption, modes, rule patterns.

The template is read with the same loader the local stack uses (`pipeshare_local.template.load_template`), conditions
and intrinsics are evaluated with its `Resolver`, and rule/filter patterns are checked against the fixtures in
events/ (the single fixture source) with moto's EventBridge pattern matcher.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from moto.events.models import EventPattern
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pipeshare_local.template import TEMPLATE_PATH, Resolver, event_pattern_json, load_template, references
from tests.conftest import load_event

ROOT = TEMPLATE_PATH.parent
TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]
GLOBAL_FUNCTION: dict[str, Any] = TEMPLATE.get("Globals", {}).get("Function", {})

SERVERLESS_RULES = "cfn_lint_serverless.rules"
PSEUDO = {
    "AWS::AccountId": "222222222222",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::StackName": "pipeshare",
    "AWS::URLSuffix": "amazonaws.com",
}

ACCEPTOR = "AcceptInvitationsFunction"
ACCEPTOR_RAM_EVENT = "RamStateChange"
ACCEPT_ACTION = "ram:AcceptResourceShareInvitation"
NOTIFIER = "NotifyDecisionsFunction"
NOTIFIER_STREAM_EVENT = "DecisionHistory"
CONSUMER_TOPIC = "ConsumerTopic"

RULE_EVENT_TYPES = frozenset({"EventBridgeRule", "Schedule", "ScheduleV2", "CloudWatchEvent"})
ASYNC_EVENT_TYPES = RULE_EVENT_TYPES | {"SNS", "S3"}
STREAM_EVENT_TYPES = frozenset({"DynamoDB", "Kinesis"})
MAX_ASYNC_RETRIES = 2
MAX_STREAM_RETRIES = 10

# Actions that have no resource-level permissions (Service Authorization Reference), so `Resource: "*"` is the only
# way to grant them. Anything else with `Resource: "*"` is over-broad.
# Service Authorization Reference: these RAM actions support no resource type, so they need Resource "*"
ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS = frozenset(
    {
        "ram:GetResourceShareInvitations",
        "ram:GetResourceShares",
        "ram:ListResources",
        "ram:GetResourceShareAssociations",
        "ram:CreateResourceShare",
        "pricing:GetProducts",
        "cloudtrail:DescribeTrails",
    }
)
BROAD_MANAGED_POLICY = re.compile(r"CrudPolicy|FullAccess|AdministratorAccess|PowerUserAccess", re.IGNORECASE)

MODES = ("consumer", "owner", "both")
CONSUMER_MODES = {"consumer": True, "owner": False, "both": True}
# Deployed whatever the mode; everything wired to the consumer seeds (except these) is a consumer resource.
# deployed in every mode (no Condition); InvalidEventAlarm is on both sides' dashboards
SHARED_RESOURCES = frozenset({"CommonLayer", "AlarmTopic", "InvalidEventAlarm"})
CONSUMER_SEEDS = frozenset({ACCEPTOR, NOTIFIER, "ShareTable", CONSUMER_TOPIC})
# Turn on every optional consumer feature, so a consumer resource is off only because of the mode.
OPTIONAL_FEATURES_ON = {
    "NotificationEmail": "ops@example.com",
    "TrustPolicyParameterName": "/pipeshare/trust-policy",
    "OwnerEventBusArn": "arn:aws:events:us-east-1:111111111111:event-bus/pipeshare-owner",
    "ConsumerNoticeBusName": "pipeshare-notices",
    "TrustedOwnerAccountIds": "111111111111",
}


# ---------------------------------------------------------------------------------------------------- helpers


def _ids(resource_type: str) -> list[str]:
    return sorted(lid for lid, res in RESOURCES.items() if res["Type"] == resource_type)


def _props(logical_id: str) -> dict[str, Any]:
    return RESOURCES[logical_id].get("Properties", {})


def _events(function_id: str, types: frozenset[str]) -> dict[str, dict[str, Any]]:
    events = _props(function_id).get("Events", {})
    return {name: ev.get("Properties", {}) for name, ev in events.items() if ev["Type"] in types}


def _resolver(**parameters: str) -> Resolver:
    return Resolver(TEMPLATE, parameters=parameters, pseudo=PSEUDO, refs={}, attrs=lambda *_: "x")


@functools.cache
def _mode_resolver(mode: str) -> Resolver:
    return _resolver(Mode=mode, **OPTIONAL_FEATURES_ON)


def _alternatives(value: Any) -> Iterator[Any]:
    """Every value a fragment can take: both branches of each Fn::If, with AWS::NoValue dropped."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        yield from _alternatives(yes)
        yield from _alternatives(no)
    elif value != {"Ref": "AWS::NoValue"}:
        yield value


def _items(value: Any) -> Iterator[Any]:
    """Items of a list-valued property (a bare value counts as a one-item list), through Fn::If on either level."""
    for alternative in _alternatives(value):
        if isinstance(alternative, list):
            for item in alternative:
                yield from _alternatives(item)
        else:
            yield alternative


def _strings(value: Any) -> list[str]:
    return [v for v in _items(value) if isinstance(v, str)]


def _actions(statement: dict[str, Any]) -> list[str]:
    return _strings(statement.get("Action", []))


def _grants(statement: dict[str, Any], action: str) -> bool:
    """Whether the statement names the action (IAM action names are case-insensitive)."""
    return action.lower() in {a.lower() for a in _actions(statement)}


def _statement_resources(statement: dict[str, Any]) -> list[Any]:
    return list(_items(statement.get("Resource", [])))


def _function_policy_items(function_id: str) -> list[Any]:
    return list(_items(_props(function_id).get("Policies", [])))


def _function_inline_statements(function_id: str) -> list[dict[str, Any]]:
    documents = [p for p in _function_policy_items(function_id) if isinstance(p, dict) and "Statement" in p]
    return [s for doc in documents for s in _items(doc["Statement"])]


def _is_managed_policy(item: Any) -> bool:
    """A managed policy name or ARN: a string or an intrinsic (!Sub arn:...:policy/...)."""
    return isinstance(item, str) or (isinstance(item, dict) and any(k == "Ref" or k.startswith("Fn::") for k in item))


def _sam_policy_templates(function_id: str) -> list[dict[str, Any]]:
    """SAM policy templates ({SNSPublishMessagePolicy: {...}}) attached to the function."""
    return [
        p
        for p in _function_policy_items(function_id)
        if isinstance(p, dict) and "Statement" not in p and not _is_managed_policy(p)
    ]


def _resource_policy_documents(props: dict[str, Any]) -> Iterator[Any]:
    for key in ("PolicyDocument", "AssumeRolePolicyDocument"):
        if key in props:
            yield from _alternatives(props[key])
    for policy in _items(props.get("Policies", [])):
        if isinstance(policy, dict) and "PolicyDocument" in policy:
            yield from _alternatives(policy["PolicyDocument"])


def _all_statements() -> list[tuple[str, dict[str, Any]]]:
    """(owner logical ID, statement) for every function's inline policies and every IAM / resource policy."""
    found = [(fn, s) for fn in _ids("AWS::Serverless::Function") for s in _function_inline_statements(fn)]
    for lid, res in RESOURCES.items():
        if res["Type"].startswith("AWS::IAM::") or res["Type"] in {"AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"}:
            for document in _resource_policy_documents(res.get("Properties", {})):
                found += [(lid, s) for s in _items(document.get("Statement", []))]
    return found


def _managed_policy_names() -> list[tuple[str, str]]:
    """(owner, name) for managed policies and SAM policy templates attached anywhere in the template."""
    found: list[tuple[str, str]] = []
    for fn in _ids("AWS::Serverless::Function"):
        found += [(fn, name) for template in _sam_policy_templates(fn) for name in template]
        found += [(fn, json.dumps(item)) for item in _function_policy_items(fn) if _is_managed_policy(item)]
    for lid, res in RESOURCES.items():
        if res["Type"].startswith("AWS::IAM::"):
            found += [(lid, json.dumps(arn)) for arn in _items(res.get("Properties", {}).get("ManagedPolicyArns", []))]
    return found


def _sqs_queue_target(value: Any) -> str | None:
    """The logical ID of the template's SQS queue that `value` (a !GetAtt Queue.Arn) points to, else None."""
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        logical_id, attribute = value["Fn::GetAtt"]
        if attribute == "Arn" and RESOURCES.get(logical_id, {}).get("Type") == "AWS::SQS::Queue":
            return logical_id
    return None


def _function_log_groups() -> dict[str, str]:
    """Function logical ID -> LogGroup logical ID, for log groups named !Sub /aws/lambda/${Function}."""
    found: dict[str, str] = {}
    for lid in _ids("AWS::Logs::LogGroup"):
        name = _props(lid).get("LogGroupName")
        if isinstance(name, dict) and isinstance(name.get("Fn::Sub"), str):
            match = re.fullmatch(r"/aws/lambda/\$\{([A-Za-z0-9]+)\}", name["Fn::Sub"])
            if match and match.group(1) in RESOURCES:
                found[match.group(1)] = lid
    return found


def _depends_on(resource: dict[str, Any]) -> set[str]:
    depends = resource.get("DependsOn", [])
    return {depends} if isinstance(depends, str) else set(depends)


def _owning_resource(name: str) -> str | None:
    """A logical ID in the template; SAM-generated IDs (AcceptInvitationsFunctionSweep) map to their function."""
    if name in RESOURCES:
        return name
    return next((fn for fn in _ids("AWS::Serverless::Function") if name.startswith(fn)), None)


def _consumer_resources() -> set[str]:
    """Everything connected to the consumer seeds by a reference in either direction, shared resources excepted."""
    neighbours: dict[str, set[str]] = defaultdict(set)
    for lid, res in RESOURCES.items():
        for name in references(res) | _depends_on(res):
            other = _owning_resource(name)
            if other is not None and other != lid:
                neighbours[lid].add(other)
                neighbours[other].add(lid)
    found: set[str] = set()
    todo = list(CONSUMER_SEEDS)
    while todo:
        lid = todo.pop()
        if lid in found or lid in SHARED_RESOURCES:
            continue
        found.add(lid)
        todo.extend(neighbours[lid])
    return found


CONSUMER_RESOURCES = sorted(_consumer_resources())
FUNCTIONS = _ids("AWS::Serverless::Function")
ASYNC_FUNCTIONS = [fn for fn in FUNCTIONS if _events(fn, ASYNC_EVENT_TYPES)]
STREAM_EVENTS = [(fn, name) for fn in FUNCTIONS for name in _events(fn, STREAM_EVENT_TYPES)]
RULE_EVENTS = [(fn, name) for fn in FUNCTIONS for name in _events(fn, RULE_EVENT_TYPES)]


def _rule_pattern(function_id: str, event_name: str) -> EventPattern:
    pattern = _resolver().resolve(_events(function_id, RULE_EVENT_TYPES)[event_name]["Pattern"])
    return EventPattern.load(event_pattern_json(pattern))


def _passes_stream_filters(function_id: str, event_name: str, record: dict[str, Any]) -> bool:
    """Lambda's event filtering: no filters pass everything, otherwise a record passes if any filter matches."""
    criteria = _events(function_id, STREAM_EVENT_TYPES)[event_name].get("FilterCriteria", {})
    patterns = [EventPattern.load(event_pattern_json(f["Pattern"])) for f in criteria.get("Filters", [])]
    return not patterns or any(p.matches_event(record) for p in patterns)


@functools.cache
def _decision_event() -> dict[str, Any]:
    return load_event("ddb_stream_decision_accepted")


def _decision_record() -> dict[str, Any]:
    """A deep copy of the decision record in events/ddb_stream_decision_accepted.json, safe to modify."""
    return copy.deepcopy(_decision_event()["Records"][0])


def _requirement_lines(path: Path) -> list[str]:
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in _requirement_lines(path):
        if not line.startswith("-"):
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return pins


# ---------------------------------------------------------------------------------------------------- 1. cfn-lint


def test_cfn_lint_with_serverless_rules_is_clean() -> None:
    # Given the template and the serverless rules plugin
    config = ManualArgs(append_rules=[SERVERLESS_RULES])

    # When cfn-lint runs as `cfn-lint template.yaml -a cfn_lint_serverless.rules`
    matches = lint_file(TEMPLATE_PATH, config=config)

    # Then nothing is reported
    assert not matches, "cfn-lint findings:\n" + "\n".join(str(m) for m in matches)


def test_cfn_lint_serverless_rules_are_active(tmp_path: Path) -> None:
    # Given a queue without a redrive policy (serverless rule ES6000), so a clean lint above is not vacuous
    canary = tmp_path / "canary.yaml"
    canary.write_text(
        'AWSTemplateFormatVersion: "2010-09-09"\n'
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n    Properties:\n      SqsManagedSseEnabled: true\n"
    )

    # When it is linted with the same configuration
    matches = lint_file(canary, config=ManualArgs(append_rules=[SERVERLESS_RULES]))

    # Then the serverless rule fires
    assert [m.rule.id for m in matches] == ["ES6000"]


# ---------------------------------------------------------------------------------------------------- 2. functions


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_function_has_log_group_named_after_it(function_id: str) -> None:
    # Given the log groups named !Sub /aws/lambda/${Function}
    log_groups = _function_log_groups()

    # When looking up the function's log group
    log_group = log_groups.get(function_id)

    # Then it exists
    assert log_group is not None, f"no AWS::Logs::LogGroup named !Sub /aws/lambda/${{{function_id}}}"


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_function_log_group_has_retention(function_id: str) -> None:
    # Given the function's log group
    log_group = _function_log_groups()[function_id]

    # When its retention is resolved with the default parameters
    retention = _resolver().resolve(_props(log_group).get("RetentionInDays"))

    # Then logs expire
    assert retention is not None, f"{log_group} has no RetentionInDays"
    assert int(retention) > 0


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_function_log_group_shares_the_function_condition(function_id: str) -> None:
    # Given the function and its log group
    log_group = _function_log_groups()[function_id]

    # When comparing their conditions
    # Then the log group exists exactly when the function does
    assert RESOURCES[log_group].get("Condition") == RESOURCES[function_id].get("Condition")


@pytest.mark.parametrize("function_id", ASYNC_FUNCTIONS)
def test_async_function_sends_failures_to_a_template_queue(function_id: str) -> None:
    # Given a function invoked asynchronously (EventBridge rule / schedule)
    on_failure = _props(function_id).get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure", {})

    # When reading its on-failure destination
    queue = _sqs_queue_target(on_failure.get("Destination"))

    # Then failed invocations land in an SQS queue defined in this template
    assert on_failure.get("Type") == "SQS", f"{function_id}: EventInvokeConfig.DestinationConfig.OnFailure is not SQS"
    assert queue is not None, f"{function_id}: OnFailure destination is not !GetAtt <template SQS queue>.Arn"


@pytest.mark.parametrize("function_id", ASYNC_FUNCTIONS)
def test_async_function_retries_are_bounded(function_id: str) -> None:
    # Given a function invoked asynchronously
    invoke_config = _props(function_id).get("EventInvokeConfig", {})

    # When reading its retry budget
    retries = invoke_config.get("MaximumRetryAttempts")

    # Then it is explicit and at most 2
    assert isinstance(retries, int), f"{function_id}: EventInvokeConfig.MaximumRetryAttempts is not set"
    assert 0 <= retries <= MAX_ASYNC_RETRIES


@pytest.mark.parametrize(("function_id", "event_name"), STREAM_EVENTS)
def test_stream_event_sends_failures_to_a_template_queue(function_id: str, event_name: str) -> None:
    # Given a stream event source
    on_failure = _events(function_id, STREAM_EVENT_TYPES)[event_name].get("DestinationConfig", {}).get("OnFailure", {})

    # When reading its on-failure destination
    queue = _sqs_queue_target(on_failure.get("Destination"))

    # Then discarded batches are recorded in an SQS queue defined in this template
    assert queue is not None, f"{function_id}.{event_name}: no OnFailure destination to a template SQS queue"


@pytest.mark.parametrize(("function_id", "event_name"), STREAM_EVENTS)
def test_stream_event_isolates_poison_records(function_id: str, event_name: str) -> None:
    # Given a stream event source
    stream = _events(function_id, STREAM_EVENT_TYPES)[event_name]

    # When reading how failed batches are retried
    retries = stream.get("MaximumRetryAttempts")

    # Then one bad record cannot block the shard: bisect, partial batch responses, bounded retries
    assert stream.get("BisectBatchOnFunctionError") is True
    assert stream.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
    assert isinstance(retries, int), f"{function_id}.{event_name}: MaximumRetryAttempts is not set (-1 = forever)"
    assert 0 <= retries <= MAX_STREAM_RETRIES


@pytest.mark.parametrize(("function_id", "event_name"), RULE_EVENTS)
def test_rule_event_has_dead_letter_queue_and_retry_policy(function_id: str, event_name: str) -> None:
    # Given an EventBridge rule or schedule target
    rule = _events(function_id, RULE_EVENT_TYPES)[event_name]

    # When reading its delivery settings
    dead_letter_queue = _sqs_queue_target(rule.get("DeadLetterConfig", {}).get("Arn"))

    # Then undeliverable events go to a template queue after an explicit retry policy
    assert dead_letter_queue is not None, f"{function_id}.{event_name}: no DeadLetterConfig to a template SQS queue"
    assert isinstance(rule.get("RetryPolicy", {}).get("MaximumRetryAttempts"), int), "no RetryPolicy"


# ---------------------------------------------------------------------------------------------------- 3. IAM


def test_no_policy_grants_wildcard_actions() -> None:
    # Given every statement of every function policy and IAM / resource policy
    statements = _all_statements()
    assert statements, "no policy statements found: the walker is broken"

    # When looking for `*`, `service:*`, `s3:Get*` ... or NotAction
    offenders = [
        (owner, s.get("Sid"), action)
        for owner, s in statements
        for action in [*_actions(s), *(["NotAction"] if "NotAction" in s else [])]
        if "*" in action or "?" in action or action == "NotAction"
    ]

    # Then every action is spelled out
    assert not offenders, offenders


def test_no_broad_managed_policies() -> None:
    # Given every managed policy and SAM policy template attached in the template
    attached = _managed_policy_names()

    # When looking for DynamoDBCrudPolicy, *FullAccess and admin policies
    offenders = [(owner, name) for owner, name in attached if BROAD_MANAGED_POLICY.search(name)]

    # Then there are none
    assert not offenders, offenders


def test_accept_invitation_is_conditioned_on_trusted_owners() -> None:
    # Given every statement that allows accepting a RAM invitation
    statements = [(o, s) for o, s in _all_statements() if _grants(s, ACCEPT_ACTION)]
    assert ACCEPTOR in {owner for owner, _ in statements}, f"{ACCEPTOR} cannot accept invitations"

    # When reading the owner condition of each
    conditions = [s.get("Condition", {}).get("StringEquals", {}).get("ram:ShareOwnerAccountId") for _, s in statements]

    # Then each is a StringEquals on ram:ShareOwnerAccountId built from TrustedOwnerAccountIds
    resolver = _resolver(TrustedOwnerAccountIds="111111111111,333333333333")
    for condition in conditions:
        assert condition is not None, "ram:AcceptResourceShareInvitation without StringEquals ram:ShareOwnerAccountId"
        assert "TrustedOwnerAccountIds" in references(condition)
        assert resolver.resolve(condition) == ["111111111111", "333333333333"]


def test_accept_invitation_condition_fails_closed_by_default() -> None:
    # Given the acceptor's accept statement
    statement = next(s for s in _function_inline_statements(ACCEPTOR) if _grants(s, ACCEPT_ACTION))
    condition = statement["Condition"]["StringEquals"]["ram:ShareOwnerAccountId"]

    # When it is resolved with the default (empty) trusted owner list
    owners = _resolver().resolve(condition)

    # Then it names no account at all
    assert not [owner for owner in owners if re.fullmatch(r"[0-9]{12}", owner)], owners


def test_resource_star_only_for_actions_without_resource_level_permissions() -> None:
    # Given every policy statement
    statements = _all_statements()

    # When looking at those granting on any resource
    offenders = [
        (owner, s.get("Sid"), _actions(s))
        for owner, s in statements
        if "NotResource" in s
        or ("*" in _statement_resources(s) and not set(_actions(s)) <= ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS)
    ]

    # Then they only carry actions that cannot be scoped to a resource
    assert not offenders, offenders


def test_notify_function_publishes_only_to_the_consumer_topic() -> None:
    # Given the notify function's policies
    sns_templates = [t for t in _sam_policy_templates(NOTIFIER) if any(name.upper().startswith("SNS") for name in t)]
    inline_sns_actions = [
        a for s in _function_inline_statements(NOTIFIER) for a in _actions(s) if a.lower().startswith("sns:")
    ]
    managed_sns = [
        p for p in _function_policy_items(NOTIFIER) if _is_managed_policy(p) and "sns" in json.dumps(p).lower()
    ]

    # When comparing them with the consumer topic
    expected = [{"SNSPublishMessagePolicy": {"TopicName": {"Fn::GetAtt": [CONSUMER_TOPIC, "TopicName"]}}}]

    # Then SNS access is exactly SNSPublishMessagePolicy on that topic
    assert RESOURCES[CONSUMER_TOPIC]["Type"] == "AWS::SNS::Topic"
    assert sns_templates == expected
    assert not inline_sns_actions, inline_sns_actions
    assert not managed_sns, managed_sns


# ---------------------------------------------------------------------------------------------------- 4. encryption


@pytest.mark.parametrize("table_id", _ids("AWS::DynamoDB::Table"))
def test_table_is_encrypted(table_id: str) -> None:
    # Given a DynamoDB table
    sse = _props(table_id).get("SSESpecification", {})

    # When reading its server-side encryption
    # Then it is on
    assert sse.get("SSEEnabled") is True


@pytest.mark.parametrize("table_id", _ids("AWS::DynamoDB::Table"))
def test_table_has_point_in_time_recovery(table_id: str) -> None:
    # Given a DynamoDB table
    pitr = _props(table_id).get("PointInTimeRecoverySpecification", {})

    # When reading its backup settings
    # Then point-in-time recovery is on
    assert pitr.get("PointInTimeRecoveryEnabled") is True


@pytest.mark.parametrize("topic_id", _ids("AWS::SNS::Topic"))
def test_topic_is_encrypted(topic_id: str) -> None:
    # Given an SNS topic
    key = _props(topic_id).get("KmsMasterKeyId")

    # When reading its KMS key
    # Then there is one
    assert key, f"{topic_id} has no KmsMasterKeyId"


@pytest.mark.parametrize("queue_id", _ids("AWS::SQS::Queue"))
def test_queue_is_encrypted(queue_id: str) -> None:
    # Given an SQS queue
    props = _props(queue_id)

    # When reading its encryption
    # Then SQS-managed SSE or a KMS key is set
    assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId"), f"{queue_id} is not encrypted"


def test_topics_notified_by_alarms_do_not_use_the_aws_managed_sns_key() -> None:
    # Given the topics CloudWatch alarms publish to
    alarm_topics = {
        name
        for lid in _ids("AWS::CloudWatch::Alarm")
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions")
        for name in references(_props(lid).get(key, []))
        if RESOURCES.get(name, {}).get("Type") == "AWS::SNS::Topic"
    }
    assert alarm_topics, "no alarm publishes to a template topic"

    # When reading their KMS keys
    aws_managed = sorted(t for t in alarm_topics if _props(t).get("KmsMasterKeyId") == "alias/aws/sns")

    # Then none uses the AWS managed key, whose policy does not let CloudWatch encrypt messages
    assert not aws_managed, aws_managed


# ---------------------------------------------------------------------------------------------------- 5. globals


def test_globals_pin_runtime_architecture_and_tracing() -> None:
    # Given the function globals
    # When reading runtime, architecture and tracing
    settings = {key: GLOBAL_FUNCTION.get(key) for key in ("Runtime", "Architectures", "Tracing")}

    # Then they are python3.13 on arm64 with active tracing
    assert settings == {"Runtime": "python3.13", "Architectures": ["arm64"], "Tracing": "Active"}


def test_globals_set_explicit_timeout_and_memory() -> None:
    # Given the function globals
    timeout, memory = GLOBAL_FUNCTION.get("Timeout"), GLOBAL_FUNCTION.get("MemorySize")

    # When reading timeout and memory
    # Then both are explicit and within Lambda's limits
    assert isinstance(timeout, int), "Globals.Function.Timeout is not set (Lambda defaults to 3 s)"
    assert 1 <= timeout <= 900
    assert isinstance(memory, int), "Globals.Function.MemorySize is not set"
    assert 128 <= memory <= 10240


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_function_keeps_global_runtime_architecture_and_tracing(function_id: str) -> None:
    # Given a function
    props = _props(function_id)

    # When reading its effective runtime, architecture and tracing
    effective = {key: props.get(key, GLOBAL_FUNCTION.get(key)) for key in ("Runtime", "Architectures", "Tracing")}

    # Then it does not override the globals
    assert effective == {"Runtime": "python3.13", "Architectures": ["arm64"], "Tracing": "Active"}


@pytest.mark.parametrize("layer_id", _ids("AWS::Serverless::LayerVersion"))
def test_layer_is_built_for_python313_on_arm64(layer_id: str) -> None:
    # Given a layer
    metadata = RESOURCES[layer_id].get("Metadata", {})

    # When reading its sam build settings
    build = {key: metadata.get(key) for key in ("BuildMethod", "BuildArchitecture")}

    # Then it is built by its Makefile, for the function runtime (3.13 wheels and bytecode) and architecture
    assert build == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    makefile = (ROOT / props_content_uri(layer_id) / "Makefile").read_text()
    assert f"build-{layer_id}:" in makefile
    assert "--python-version 3.13" in makefile
    assert "manylinux2014_aarch64" in makefile
    assert "compileall" in makefile


def props_content_uri(layer_id: str) -> str:
    return str(_props(layer_id)["ContentUri"])


def test_layer_leaves_the_sdk_to_the_runtime() -> None:
    # Given the layer's dependency list
    names = {
        line.split("==")[0].strip().lower()
        for line in (ROOT / "layers/common/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    # Then the runtime's boto3/botocore are not shadowed by a second copy
    assert names.isdisjoint({"boto3", "botocore", "s3transfer"})


@pytest.mark.parametrize("layer_id", _ids("AWS::Serverless::LayerVersion"))
def test_layer_declares_the_function_runtime_and_architecture(layer_id: str) -> None:
    # Given a layer
    props = _props(layer_id)

    # When reading its compatibility lists
    # Then they include python3.13 and arm64
    assert "python3.13" in props.get("CompatibleRuntimes", [])
    assert "arm64" in props.get("CompatibleArchitectures", [])


# ---------------------------------------------------------------------------------------------------- 6. modes


def test_mode_allows_exactly_consumer_owner_both() -> None:
    # Given the Mode parameter
    allowed = PARAMETERS["Mode"].get("AllowedValues", [])

    # When reading its allowed values
    # Then they are exactly consumer, owner and both
    assert sorted(allowed) == sorted(MODES)


def test_consumer_resources_are_discovered() -> None:
    # Given the resources found from the consumer seeds
    found = set(CONSUMER_RESOURCES)

    # When comparing with resources that are consumer-only by construction
    expected = CONSUMER_SEEDS | {"AcceptInvitationsDlq", "NotifyDecisionsDlq", "RuleTargetDlq", "ConsumerTopicEmail"}
    expected |= {"AcceptInvitationsLogGroup", "NotifyDecisionsLogGroup", "RuleTargetDlqPolicy"}

    # Then the discovery is not vacuous and never claims a shared resource
    assert expected <= found, sorted(expected - found)
    assert not found & SHARED_RESOURCES


@pytest.mark.parametrize("resource_id", CONSUMER_RESOURCES)
def test_consumer_resource_is_deployed_only_in_consumer_modes(resource_id: str) -> None:
    # Given a consumer resource and a deployment per mode (optional features on)
    resource = RESOURCES[resource_id]
    assert "Condition" in resource, f"{resource_id} has no Condition"

    # When its condition is evaluated for each mode
    deployed = {mode: _mode_resolver(mode).enabled(resource) for mode in MODES}

    # Then it exists for consumer and both, never for owner
    assert deployed == CONSUMER_MODES


@pytest.mark.parametrize(
    "output_id",
    sorted(o for o, spec in TEMPLATE.get("Outputs", {}).items() if references(spec) & set(CONSUMER_RESOURCES)),
)
def test_consumer_output_is_emitted_only_in_consumer_modes(output_id: str) -> None:
    # Given an output referring to a consumer resource
    output = TEMPLATE["Outputs"][output_id]

    # When its condition is evaluated for each mode
    emitted = {mode: _mode_resolver(mode).enabled(output) for mode in MODES}

    # Then it exists exactly when the resource does
    assert emitted == CONSUMER_MODES


# ---------------------------------------------------------------------------------------------------- 7. patterns


@pytest.mark.parametrize("fixture", ["ram_invitation_pending", "ram_association_failed", "ram_no_resources"])
def test_ram_rule_matches_ram_state_changes(fixture: str) -> None:
    # Given the acceptor's RAM rule pattern
    pattern = _rule_pattern(ACCEPTOR, ACCEPTOR_RAM_EVENT)

    # When a RAM state change arrives
    matched = pattern.matches_event(load_event(fixture))

    # Then the acceptor is invoked
    assert matched


@pytest.mark.parametrize("fixture", ["invalid_wrong_source", "scheduled_sweep"])
def test_ram_rule_ignores_other_events(fixture: str) -> None:
    # Given the acceptor's RAM rule pattern
    pattern = _rule_pattern(ACCEPTOR, ACCEPTOR_RAM_EVENT)

    # When an event from another source arrives
    matched = pattern.matches_event(load_event(fixture))

    # Then the rule does not fire
    assert not matched


def test_decision_filter_passes_history_inserts() -> None:
    # Given a stream record inserting a decision history item
    record = _decision_record()

    # When it is filtered
    passed = _passes_stream_filters(NOTIFIER, NOTIFIER_STREAM_EVENT, record)

    # Then the notifier receives it
    assert passed


def test_decision_filter_drops_state_items() -> None:
    # Given the same record for the current-state item
    record = _decision_record()
    record["dynamodb"]["Keys"]["sk"]["S"] = "STATE"
    record["dynamodb"]["NewImage"]["sk"]["S"] = "STATE"

    # When it is filtered
    passed = _passes_stream_filters(NOTIFIER, NOTIFIER_STREAM_EVENT, record)

    # Then the notifier never sees it
    assert not passed


@pytest.mark.parametrize("event_name", ["MODIFY", "REMOVE"])
def test_decision_filter_drops_non_inserts(event_name: str) -> None:
    # Given the same history record as an update or a TTL removal
    record = _decision_record()
    record["eventName"] = event_name

    # When it is filtered
    passed = _passes_stream_filters(NOTIFIER, NOTIFIER_STREAM_EVENT, record)

    # Then the notifier never sees it (one notification per decision)
    assert not passed


# ---------------------------------------------------------------------------------------------------- 8. parameters


def test_trusted_owners_default_to_nobody() -> None:
    # Given the TrustedOwnerAccountIds parameter
    # When deployed without a value
    default = PARAMETERS["TrustedOwnerAccountIds"].get("Default")

    # Then no owner is trusted
    assert default == ""


@pytest.mark.parametrize("value", ["1234", "111111111111,", "11111111111a", "111111111111, 222222222222", ","])
def test_trusted_owners_pattern_rejects_malformed_lists(value: str) -> None:
    # Given the TrustedOwnerAccountIds pattern (CloudFormation matches the whole value)
    pattern = PARAMETERS["TrustedOwnerAccountIds"]["AllowedPattern"]

    # When a malformed value is given
    # Then the deployment is refused
    assert re.fullmatch(pattern, value) is None


@pytest.mark.parametrize("value", ["", "111111111111", "111111111111,222222222222"])
def test_trusted_owners_pattern_accepts_account_lists(value: str) -> None:
    # Given the TrustedOwnerAccountIds pattern
    pattern = PARAMETERS["TrustedOwnerAccountIds"]["AllowedPattern"]

    # When an empty list or comma-separated account IDs are given
    # Then they are accepted
    assert re.fullmatch(pattern, value) is not None


@pytest.mark.parametrize("parameter", ["UntrustedAction", "DisallowedResourceAction"])
def test_untrusted_invitations_are_held_by_default(parameter: str) -> None:
    # Given an action parameter for invitations that are not accepted
    spec = PARAMETERS[parameter]

    # When deployed without a value
    # Then the invitation is held (reversible), not rejected
    assert spec.get("Default") == "hold"
    assert "hold" in spec.get("AllowedValues", [])


# ---------------------------------------------------------------------------------------------------- 9. pins


def test_layer_requirements_are_pinned() -> None:
    # Given the layer's requirements
    lines = _requirement_lines(ROOT / "layers/common/requirements.txt")
    assert lines, "layers/common/requirements.txt lists nothing"

    # When parsing each line
    offenders = []
    for line in lines:
        try:
            specifiers = list(Requirement(line).specifier)
        except InvalidRequirement:
            offenders.append(line)
            continue
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            offenders.append(line)

    # Then every one pins an exact version
    assert not offenders, offenders


def test_layer_pins_match_dev_pins() -> None:
    # Given the layer and development pins, by normalised name
    layer = _pins(ROOT / "layers/common/requirements.txt")
    dev = _pins(ROOT / "requirements-dev.txt")

    # When comparing them
    mismatches = {name: (pin, dev.get(name)) for name, pin in layer.items() if dev.get(name) != pin}

    # Then tests run against the versions that ship
    assert layer
    assert not mismatches, mismatches
