"""The deployer: template.yaml -> one account's resources on the local stack (what `sam deploy` would create).

`Deployer.deploy` reads the template (pipeshare_local.template: parameters, conditions, Fn::ForEach, intrinsics),
orders the enabled resources by their references (`_creation_order`) and creates them in three steps, with the names
a deployment gets here (`<stack>-<LogicalId>`; rules: their logical ID):
1. the resources created by hand that depend neither on a CLOUDFORMATION_TYPES resource nor on a function (KMS key,
   tables, event bus, its policies, the RAM share, the forwarder role), through the AWS APIs at the stack's endpoint;
2. the CLOUDFORMATION_TYPES resources (topics, queues, log groups, the template's rules) in ONE moto CloudFormation
   stack named as the deployment (`create_stack` at the endpoint, with the account's credentials). Their properties
   are resolved here first (the Resolver), so every Ref/GetAtt is a literal: to step 1's resources by their real ids,
   to the functions and to each other by predicted names and ARNs (`_predict`: all deterministic). Each is given its
   explicit name (without one, moto appends a random suffix). Refs and attributes are then read back from the stack
   (`describe_stack_resources`) and checked against the predictions (a mismatch fails the deployment);
3. the rest by hand, in reference order: functions (served in-process by pipeshare_local.runtime; their events become
   the stack's rules, queue and stream mappings, and EventBridge rules in moto), SNS subscriptions;
then it installs the IAM roles SAM translates the template into (pipeshare_local.iam). What it creates is recorded in
a `Deployment` (refs, GetAtt attributes, functions, rules, stream and queue mappings, tap queues); running them (event
delivery, schedules, queue and stream polling, invocation, credentials) is pipeshare_local.stack's part.

Resource types (moto 5.2.5's CloudFormation was tried for each; the table: local/README.md, "moto's CloudFormation"):
- Through moto's CloudFormation, faithful with explicit names (DescribeQueueAttributes, GetTopicAttributes,
  ListSubscriptionsByTopic, DescribeLogGroups as the hand-made creation gave them): AWS::SNS::Topic (DisplayName,
  KmsMasterKeyId; the stack adds a tap queue subscribed to it), AWS::SQS::Queue (VisibilityTimeout, retention,
  SqsManagedSseEnabled, RedrivePolicy; the Ref is the URL the endpoint serves, as CreateQueue gives it: moto's
  physical id is the public https://sqs.<region>.amazonaws.com/... form), AWS::Logs::LogGroup (RetentionInDays is
  given as an integer, the conversion CloudFormation makes: moto's would keep the parameter's text, "30"),
  AWS::Events::Rule (pattern, state, description, targets with role, retry policy and dead-letter queue; moto stores
  the pattern re-serialized by json.dumps; the stack runs the event-bus targets itself).
- AWS::IAM::Role: CreateRole + PutRolePolicy. moto's CloudFormation puts an inline policy given as an object (the
  template's shape) with str(): GetRolePolicy then returns a Python repr ("{'Version': ...}"), not JSON; and a role
  without Description gets "". (Functions' roles are SAM's, installed in the IAM emulation, not created in moto.)
- AWS::DynamoDB::Table: CreateTable + UpdateTimeToLive. moto's CloudFormation drops TimeToLiveSpecification (TTL stays
  DISABLED) and passes SSESpecification through in its template shape ({"SSEEnabled": true}), which moto's
  CreateTable reads as no SSE (no SSEDescription).
- AWS::KMS::Key: CreateKey + EnableKeyRotation. moto's CloudFormation keeps KeyPolicy as a dict, and every later call
  that checks the key policy (DescribeKey, Encrypt, ...) then fails inside moto (TypeError: json.loads of a dict).
- AWS::Events::EventBus: CreateEventBus. moto's CloudFormation creates it with an empty physical id, so `!Ref OwnerBus`
  (the bus policies' EventBusName) would be "" where CloudFormation gives the bus name.
- AWS::SNS::Subscription, AWS::Events::EventBusPolicy, AWS::RAM::ResourceShare: not supported by moto's
  CloudFormation (warning "No Moto CloudFormation support"). Bus policies are the stack's own state (bus_admits,
  bus_statements: what cross-account forwarding is checked against); shares are served by the RAM emulation.
- AWS::Serverless::Function: SAM's, not moto's: served in-process by the Lambda runtime.
- AWS::CloudWatch::Dashboard: moto's CloudFormation would create it (moto 5.2.5 maps the type to PutDashboard), but
  it is skipped on purpose (NOT_DEPLOYED, with the reason in Deployment.skipped): its body names the alarms' ARNs,
  and the local stack creates no alarms and turns no EMF into CloudWatch metrics, so it would draw nothing and name
  alarms that do not exist. tests/infrastructure/test_dashboards.py checks the body against the code's metrics.
- Anything else (alarms, queue policies, layers, ...) is recorded in Deployment.skipped.
The hand-made creators of the CLOUDFORMATION_TYPES (`_create_topic`, `_create_queue`, `_create_log_group`,
`_create_rule`) stay, for a type taken out of CLOUDFORMATION_TYPES: they create what the stack does, except that
`_create_rule` puts no targets and no description in moto (the stack runs the targets from the Deployment's rules).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from moto.events.models import EventPattern

from pipeshare_local.iam import LocalIam, sam_translate, translated_resolver
from pipeshare_local.runtime import LocalFunction
from pipeshare_local.template import Resolver, UnresolvedError, event_pattern_json, references

# created through moto's CloudFormation (one stack per deployment); see the module docstring for the other types
CLOUDFORMATION_TYPES = frozenset({"AWS::SNS::Topic", "AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::Events::Rule"})
# skipped on purpose, with the reason recorded in Deployment.skipped (the module docstring)
NOT_DEPLOYED = {
    "AWS::CloudWatch::Dashboard": "not deployed locally: it draws metrics and alarms the local stack has not",
}

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")


def schedule_period(expression: str) -> timedelta:
    match = _RATE.match(expression.strip())
    if not match:
        raise ValueError(f"the local stack runs rate(...) schedules only, not {expression!r}")
    amount, unit = int(match.group(1)), match.group(2).rstrip("s")
    return timedelta(**{f"{unit}s": amount})


@dataclass
class Rule:
    name: str
    function: LocalFunction | None  # None for a rule whose target is another event bus
    pattern: EventPattern | None = None
    schedule: timedelta | None = None
    next_fire: datetime | None = None
    dead_letter_arn: str | None = None
    bus: str = "default"
    forward_to: str | None = None  # target event bus ARN (cross-account forwarding)


@dataclass
class StreamMapping:
    function: LocalFunction
    stream_arn: str
    filters: list[EventPattern]
    batch_size: int
    max_retries: int
    on_failure_arn: str | None
    iterators: dict[str, str] = field(default_factory=dict)


@dataclass
class QueueMapping:
    """An SQS event source mapping (SAM `SQS` event): batches of available messages, ReportBatchItemFailures."""

    function: LocalFunction
    queue_arn: str
    batch_size: int
    report_failures: bool
    queue_url: str = ""  # looked up once


@dataclass
class Deployment:
    account: str
    region: str
    stack_name: str
    parameters: dict[str, str]
    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    streams: list[StreamMapping] = field(default_factory=list)
    queues: list[QueueMapping] = field(default_factory=list)
    taps: dict[str, str] = field(default_factory=dict)  # topic logical id -> tap queue url
    skipped: list[str] = field(default_factory=list)
    conditions: dict[str, bool] = field(default_factory=dict)


class _Clock(Protocol):
    def now(self) -> datetime: ...


class Host(Protocol):
    """What the deployer needs of the running stack (LocalStack): its clients, region, template and clock, the IAM it
    installs roles into, the bus policy state it fills, and the hooks a deployed function runs with."""

    region: str
    template: dict[str, Any]
    clock: _Clock
    bus_admits: dict[tuple[str, str], set[str]]
    bus_statements: dict[tuple[str, str], list[dict[str, Any]]]

    @property
    def iam(self) -> LocalIam: ...

    def client(self, account: str, service: str) -> Any: ...

    def function_credentials(self, account: str, logical: str) -> dict[str, str]: ...

    def send_to_queue(self, account: str, queue_arn: str, body: dict[str, Any]) -> None: ...

    def enter_function(self, function: LocalFunction) -> None: ...

    def watch_changes(self, function: LocalFunction) -> Callable[[], dict[str, int]]: ...


class Deployer:
    """Deploys template.yaml into one account of a running stack (`stack.deploy` calls it)."""

    def __init__(self, stack: Host) -> None:
        self.stack = stack

    def deploy(
        self, account: str, parameters: dict[str, Any] | None = None, *, stack_name: str = "pipeshare"
    ) -> Deployment:
        """Create every resource of the template enabled by these parameters' conditions in `account`, in reference
        order, then install the roles SAM would create. The caller (LocalStack.deploy) registers the deployment."""
        deployment = Deployment(
            account, self.stack.region, stack_name, {k: str(v) for k, v in (parameters or {}).items()}
        )
        resolver = Resolver(
            self.stack.template,
            parameters=parameters or {},
            pseudo={
                "AWS::AccountId": account,
                "AWS::Region": self.stack.region,
                "AWS::Partition": "aws",
                "AWS::StackName": stack_name,
                "AWS::URLSuffix": "amazonaws.com",
            },
            refs=deployment.refs,
            attrs=lambda logical, attr: self._attribute(deployment, logical, attr),
        )
        deployment.conditions = dict(resolver.conditions)
        deployment.parameters = dict(resolver.parameters)
        resources = resolver.template["Resources"]  # Fn::ForEach expanded for this deployment's parameters
        enabled = [name for name, spec in resources.items() if resolver.enabled(spec)]
        order = _creation_order(enabled, resources)
        stacked = [n for n in order if resources[n]["Type"] in CLOUDFORMATION_TYPES]
        functions = [n for n in order if resources[n]["Type"] == "AWS::Serverless::Function"]
        # what the stack's resources may reference is created first: everything created here that depends neither
        # on them nor on a function (functions are created after the stack; their names and ARNs are known ahead)
        later = _dependents(order, resources, {*stacked, *functions})
        first = [n for n in order if n not in later and n not in stacked and n not in functions]
        for logical in first:
            self._create(deployment, resolver, logical, resources[logical])
        predicted = self._create_stack(deployment, resolver, stacked, functions, resources) if stacked else {}
        for logical in order:
            if logical not in first and logical not in stacked:
                self._create(deployment, resolver, logical, resources[logical])
        _check_predictions(deployment, predicted, functions)
        self._install_roles(deployment, resolver)
        return deployment

    def _attribute(self, deployment: Deployment, logical: str, attr: str) -> Any:
        key = (logical, attr)
        if key not in deployment.attributes:
            raise UnresolvedError(f"GetAtt {logical}.{attr}")
        return deployment.attributes[key]

    def _create(self, deployment: Deployment, resolver: Resolver, logical: str, spec: dict[str, Any]) -> None:
        kind = spec["Type"]
        creator = {
            "AWS::DynamoDB::Table": self._create_table,
            "AWS::SNS::Topic": self._create_topic,
            "AWS::SNS::Subscription": self._create_subscription,
            "AWS::SQS::Queue": self._create_queue,
            "AWS::Logs::LogGroup": self._create_log_group,
            "AWS::KMS::Key": self._create_key,
            "AWS::RAM::ResourceShare": self._create_resource_share,
            "AWS::Events::EventBus": self._create_event_bus,
            "AWS::Events::EventBusPolicy": self._create_event_bus_policy,
            "AWS::Events::Rule": self._create_rule,
            "AWS::IAM::Role": self._create_role,
            "AWS::Serverless::Function": self._create_function,
        }.get(kind)
        if creator is None:
            reason = NOT_DEPLOYED.get(kind)
            deployment.skipped.append(f"{logical} ({kind})" + (f": {reason}" if reason else ""))
            return
        try:
            props = resolver.resolve(spec.get("Properties", {})) if kind != "AWS::Serverless::Function" else spec
        except UnresolvedError as exc:
            deployment.skipped.append(f"{logical} ({kind}): unresolved {exc}")
            return
        creator(deployment, resolver, logical, props)

    def _name(self, deployment: Deployment, logical: str) -> str:
        return f"{deployment.stack_name}-{logical}"

    # ------------------------------------------------------------------ through moto's CloudFormation
    def _create_stack(
        self,
        d: Deployment,
        resolver: Resolver,
        stacked: list[str],
        functions: list[str],
        resources: dict[str, Any],
    ) -> dict[tuple[str, str], str]:
        """The CLOUDFORMATION_TYPES resources in one moto CloudFormation stack (named as the deployment), their
        properties resolved here, with explicit names (those the hand-made creators give), then read back from the
        stack. Returns the predictions (`_predict`) the stack's resources were resolved with."""
        predicted = self._predict(d, stacked, functions, resources)
        body: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {}}
        for logical in stacked:
            kind = resources[logical]["Type"]
            try:
                props = resolver.resolve(resources[logical].get("Properties", {}))
            except UnresolvedError as exc:
                d.skipped.append(f"{logical} ({kind}): unresolved {exc}")
                d.refs.pop(logical, None)  # not created: nothing may refer to it
                for key in [k for k in d.attributes if k[0] == logical]:
                    del d.attributes[key]
                continue
            body["Resources"][logical] = {"Type": kind, "Properties": self._stack_properties(d, logical, kind, props)}
        if not body["Resources"]:
            return predicted
        cloudformation = self.stack.client(d.account, "cloudformation")
        cloudformation.create_stack(StackName=d.stack_name, TemplateBody=json.dumps(body))
        status = cloudformation.describe_stacks(StackName=d.stack_name)["Stacks"][0]["StackStatus"]
        if status != "CREATE_COMPLETE":
            raise RuntimeError(f"moto CloudFormation stack {d.stack_name} in {d.account}: {status}")
        physical = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cloudformation.describe_stack_resources(StackName=d.stack_name)["StackResources"]
        }
        queue_urls: dict[str, str] = {}
        if any(spec["Type"] == "AWS::SQS::Queue" for spec in body["Resources"].values()):
            listed = self.stack.client(d.account, "sqs").list_queues(QueueNamePrefix=f"{d.stack_name}-")
            queue_urls = {url.rsplit("/", 1)[1]: url for url in listed.get("QueueUrls", [])}
        for logical, spec in body["Resources"].items():
            self._read_back(d, logical, spec["Type"], spec["Properties"], physical[logical], queue_urls)
        _check_predictions(d, predicted, list(body["Resources"]))
        return predicted

    def _predict(
        self, d: Deployment, stacked: list[str], functions: list[str], resources: dict[str, Any]
    ) -> dict[tuple[str, str], str]:
        """The names and ARNs the stack's resources and the functions will have, known before either is created
        (references run both ways: log groups name functions, functions name queues and topics)."""
        region, account = self.stack.region, d.account
        predicted: dict[tuple[str, str], str] = {}
        for logical in functions:
            name = self._name(d, logical)
            predicted |= {
                (logical, "Ref"): name,
                (logical, "Arn"): f"arn:aws:lambda:{region}:{account}:function:{name}",
            }
        for logical in stacked:
            kind, name = resources[logical]["Type"], self._name(d, logical)
            if kind == "AWS::SNS::Topic":
                arn = f"arn:aws:sns:{region}:{account}:{name}"
                predicted |= {(logical, "Ref"): arn, (logical, "TopicArn"): arn, (logical, "TopicName"): name}
            elif kind == "AWS::SQS::Queue":
                predicted |= {(logical, "QueueName"): name, (logical, "Arn"): f"arn:aws:sqs:{region}:{account}:{name}"}
            elif kind == "AWS::Events::Rule":  # named by its logical ID, as the deployer always named rules
                predicted[(logical, "Ref")] = logical
                bus = resources[logical].get("Properties", {}).get("EventBusName", "default")
                if isinstance(bus, str):  # a bus given by reference: its ARN is known once the stack is created
                    path = logical if bus == "default" else f"{bus}/{logical}"
                    predicted[(logical, "Arn")] = f"arn:aws:events:{region}:{account}:rule/{path}"
        for (logical, attr), value in predicted.items():
            if attr == "Ref":
                d.refs[logical] = value
            else:
                d.attributes[(logical, attr)] = value
        return predicted

    def _stack_properties(self, d: Deployment, logical: str, kind: str, props: dict[str, Any]) -> dict[str, Any]:
        """A resource's resolved properties for the stack, with the explicit name it gets here (without one, moto
        appends a random suffix)."""
        name = self._name(d, logical)
        if kind == "AWS::SNS::Topic":
            return {**props, "TopicName": name}
        if kind == "AWS::SQS::Queue":
            return {**props, "QueueName": name}
        if kind == "AWS::Events::Rule":  # moto's CloudFormation JSON-encodes EventPattern itself: an object
            return {**props, "Name": logical, "EventPattern": json.loads(event_pattern_json(props["EventPattern"]))}
        # AWS::Logs::LogGroup: LogGroupName is in the template. CloudFormation converts RetentionInDays (a Ref to a
        # Number parameter: text) to the property's Integer type; moto's passes it on as given (DescribeLogGroups
        # then returns retentionInDays "30")
        return {**props, "RetentionInDays": int(props["RetentionInDays"])} if "RetentionInDays" in props else props

    def _read_back(
        self,
        d: Deployment,
        logical: str,
        kind: str,
        props: dict[str, Any],
        physical_id: str,
        queue_urls: dict[str, str],
    ) -> None:
        """A stack resource's Ref and attributes from its physical id, and what the local stack adds to it."""
        region, account = self.stack.region, d.account
        if kind == "AWS::SNS::Topic":
            d.refs[logical] = physical_id
            d.attributes[(logical, "TopicArn")] = physical_id
            d.attributes[(logical, "TopicName")] = physical_id.rsplit(":", 1)[1]
            self._tap(d, logical, physical_id)
        elif kind == "AWS::SQS::Queue":
            # moto's physical id is the queue's public URL (https://sqs.<region>.amazonaws.com/...); the Ref is the
            # URL the endpoint serves the queue at, as CreateQueue gave it before
            name = props["QueueName"]
            d.refs[logical] = queue_urls[name]
            d.attributes[(logical, "QueueName")] = name
            d.attributes[(logical, "Arn")] = f"arn:aws:sqs:{region}:{account}:{name}"
        elif kind == "AWS::Logs::LogGroup":
            d.refs[logical] = physical_id
        elif kind == "AWS::Events::Rule":
            bus = props.get("EventBusName", "default")
            path = physical_id if bus == "default" else f"{bus}/{physical_id}"
            d.refs[logical] = physical_id
            d.attributes[(logical, "Arn")] = f"arn:aws:events:{region}:{account}:rule/{path}"
            self._run_rule(d, physical_id, props)

    def _tap(self, d: Deployment, logical: str, topic_arn: str) -> None:
        """A tap queue subscribed to every topic, so scenarios and tests read what was published through the APIs."""
        sqs = self.stack.client(d.account, "sqs")
        url = sqs.create_queue(QueueName=f"{self._name(d, logical)}-tap")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.stack.client(d.account, "sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        d.taps[logical] = url

    def _run_rule(self, d: Deployment, name: str, props: dict[str, Any]) -> None:
        """The stack runs a template rule's event-bus targets (cross-account forwarding)."""
        bus = props.get("EventBusName", "default")
        pattern = event_pattern_json(props["EventPattern"])
        for target in props.get("Targets", []):
            if ":event-bus/" not in target["Arn"]:
                d.skipped.append(f"{name} target {target['Id']} (only event-bus targets are emulated)")
                continue
            d.rules.append(
                Rule(
                    name,
                    None,
                    pattern=EventPattern.load(pattern),
                    bus=bus,
                    forward_to=target["Arn"],
                    dead_letter_arn=target.get("DeadLetterConfig", {}).get("Arn"),
                )
            )

    def _create_table(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        ddb = self.stack.client(d.account, "dynamodb")
        name = self._name(d, logical)
        args = {
            k: props[k]
            for k in (
                "AttributeDefinitions",
                "KeySchema",
                "BillingMode",
                "GlobalSecondaryIndexes",
                "StreamSpecification",
                "SSESpecification",
            )
            if k in props
        }
        if "StreamSpecification" in args:
            args["StreamSpecification"] = {"StreamEnabled": True, **args["StreamSpecification"]}
        if "SSESpecification" in args:
            args["SSESpecification"] = {"Enabled": bool(args["SSESpecification"].get("SSEEnabled"))}
        table = ddb.create_table(TableName=name, **args)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
            )
        d.refs[logical] = name
        d.attributes[(logical, "Arn")] = table["TableArn"]
        if "LatestStreamArn" in table:
            d.attributes[(logical, "StreamArn")] = table["LatestStreamArn"]

    def _create_topic(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        sns = self.stack.client(d.account, "sns")
        attributes = {k: str(props[k]) for k in ("DisplayName", "KmsMasterKeyId") if k in props}
        arn = sns.create_topic(Name=self._name(d, logical), Attributes=attributes)["TopicArn"]
        d.refs[logical] = arn
        d.attributes[(logical, "TopicArn")] = arn
        d.attributes[(logical, "TopicName")] = arn.rsplit(":", 1)[1]
        self._tap(d, logical, arn)

    def _create_subscription(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        self.stack.client(d.account, "sns").subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
        )
        d.refs[logical] = f"{props['TopicArn']}:{logical}"

    def _create_queue(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        sqs = self.stack.client(d.account, "sqs")
        attributes = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in props.items()
            if k in ("MessageRetentionPeriod", "SqsManagedSseEnabled", "VisibilityTimeout")
        }
        if "RedrivePolicy" in props:  # SettleQueue -> SettleDlq after maxReceiveCount receives (moto moves them)
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        name = self._name(d, logical)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        d.refs[logical] = url
        d.attributes[(logical, "QueueName")] = name
        d.attributes[(logical, "Arn")] = f"arn:aws:sqs:{self.stack.region}:{d.account}:{name}"

    def _create_key(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        kms = self.stack.client(d.account, "kms")
        key = kms.create_key(Description=props.get("Description", logical), Policy=json.dumps(props["KeyPolicy"]))
        key_id = key["KeyMetadata"]["KeyId"]
        if props.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key_id)
        d.refs[logical] = key_id
        d.attributes[(logical, "Arn")] = key["KeyMetadata"]["Arn"]
        d.attributes[(logical, "KeyId")] = key_id

    def _create_resource_share(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        request = {
            "name": props["Name"],
            "resourceArns": props.get("ResourceArns", []),
            "principals": props.get("Principals", []),
            "allowExternalPrincipals": bool(props.get("AllowExternalPrincipals", True)),
        }
        if props.get("PermissionArns"):
            request["permissionArns"] = props["PermissionArns"]
        arn = self.stack.client(d.account, "ram").create_resource_share(**request)["resourceShare"]["resourceShareArn"]
        d.refs[logical] = arn
        d.attributes[(logical, "Arn")] = arn

    def _create_event_bus(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        arn = self.stack.client(d.account, "events").create_event_bus(Name=props["Name"])["EventBusArn"]
        d.refs[logical] = props["Name"]
        d.attributes[(logical, "Arn")] = arn
        d.attributes[(logical, "Name")] = props["Name"]

    def _create_event_bus_policy(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        statement = props["Statement"]
        principal = statement.get("Principal", {})
        accounts = principal.get("AWS", []) if isinstance(principal, dict) else []
        accounts = [accounts] if isinstance(accounts, str) else accounts
        # organization-wide policies (aws:PrincipalOrgID) are not emulated: the local stack has no organization
        admitted = self.stack.bus_admits.setdefault((d.account, props["EventBusName"]), set())
        admitted.update(a.split(":")[4] if a.startswith("arn:") else a for a in accounts)
        # the statement without its principal, to evaluate its Action, Resource and Condition for each event
        policy = {k: v for k, v in statement.items() if k not in ("Principal", "NotPrincipal")}
        self.stack.bus_statements.setdefault((d.account, props["EventBusName"]), []).append(policy)
        d.refs[logical] = props["StatementId"]

    def _create_rule(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        events = self.stack.client(d.account, "events")
        arn = events.put_rule(
            Name=logical,
            EventPattern=event_pattern_json(props["EventPattern"]),
            State=props.get("State", "ENABLED"),
            EventBusName=props.get("EventBusName", "default"),
        )["RuleArn"]
        self._run_rule(d, logical, props)
        d.refs[logical] = logical
        d.attributes[(logical, "Arn")] = arn

    def _create_role(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        iam = self.stack.client(d.account, "iam")
        name = f"{d.stack_name}-{logical}"[:64]
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
            )
        d.refs[logical] = name
        d.attributes[(logical, "Arn")] = role["Role"]["Arn"]

    def _create_log_group(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        logs = self.stack.client(d.account, "logs")
        logs.create_log_group(logGroupName=props["LogGroupName"])
        logs.put_retention_policy(logGroupName=props["LogGroupName"], retentionInDays=int(props["RetentionInDays"]))
        d.refs[logical] = props["LogGroupName"]

    def _create_function(self, d: Deployment, resolver: Resolver, logical: str, spec: dict[str, Any]) -> None:
        globals_ = self.stack.template.get("Globals", {}).get("Function", {})
        props = spec["Properties"]
        env = {
            **resolver.resolve(globals_.get("Environment", {}).get("Variables", {})),
            **resolver.resolve(props.get("Environment", {}).get("Variables", {})),
        }
        invoke_config = resolver.resolve(props.get("EventInvokeConfig", {}))
        on_failure = invoke_config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        name = self._name(d, logical)
        function = LocalFunction(
            logical_id=logical,
            name=name,
            account=d.account,
            region=self.stack.region,
            code_uri=props["CodeUri"],
            handler=props["Handler"],
            environment={k: str(v) for k, v in env.items()},
            identity=lambda: self.stack.function_credentials(d.account, logical),
            max_retries=int(invoke_config.get("MaximumRetryAttempts", 2)),
            on_failure=functools.partial(self.stack.send_to_queue, d.account, on_failure) if on_failure else None,
            before_invoke=self.stack.enter_function,
            watch_changes=self.stack.watch_changes,
        )
        d.functions[logical] = function
        d.refs[logical] = name
        d.attributes[(logical, "Arn")] = function.arn
        events = self.stack.client(d.account, "events")
        for event_name, event in props.get("Events", {}).items():
            eprops = resolver.resolve(event.get("Properties", {}))
            rule_name = f"{logical}{event_name}"
            if event["Type"] == "EventBridgeRule":
                pattern = event_pattern_json(eprops["Pattern"])
                bus = eprops.get("EventBusName", "default")
                arn = events.put_rule(Name=rule_name, EventPattern=pattern, State="ENABLED", EventBusName=bus)[
                    "RuleArn"
                ]
                d.rules.append(
                    Rule(
                        rule_name,
                        function,
                        pattern=EventPattern.load(pattern),
                        dead_letter_arn=eprops.get("DeadLetterConfig", {}).get("Arn"),
                        bus=bus,
                    )
                )
            elif event["Type"] == "Schedule":
                expression = eprops["Schedule"]
                arn = events.put_rule(Name=rule_name, ScheduleExpression=expression, State="ENABLED")["RuleArn"]
                period = schedule_period(expression)
                d.rules.append(Rule(rule_name, function, schedule=period, next_fire=self.stack.clock.now() + period))
            elif event["Type"] == "SQS":
                d.queues.append(
                    QueueMapping(
                        function=function,
                        queue_arn=eprops["Queue"],
                        batch_size=int(eprops.get("BatchSize", 10)),
                        report_failures="ReportBatchItemFailures" in eprops.get("FunctionResponseTypes", []),
                    )
                )
                continue
            elif event["Type"] == "DynamoDB":
                filters = [EventPattern.load(f["Pattern"]) for f in eprops.get("FilterCriteria", {}).get("Filters", [])]
                d.streams.append(
                    StreamMapping(
                        function=function,
                        stream_arn=eprops["Stream"],
                        filters=filters,
                        batch_size=int(eprops.get("BatchSize", 100)),
                        max_retries=int(eprops.get("MaximumRetryAttempts", -1)),
                        on_failure_arn=eprops.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"),
                    )
                )
                continue
            else:
                d.skipped.append(f"{logical}.{event_name} ({event['Type']} event)")
                continue
            d.refs[rule_name] = rule_name
            d.attributes[(rule_name, "Arn")] = arn

    def _install_roles(self, deployment: Deployment, resolver: Resolver) -> None:
        """The roles `sam deploy` creates (SAM's translation of the template), resolved with this deployment's
        parameters, conditions and resources: what each function's calls are authorized against."""
        translated = sam_translate(resolver.template)
        self.stack.iam.install(deployment.account, translated, translated_resolver(translated, resolver))


def _check_predictions(d: Deployment, predicted: dict[tuple[str, str], str], created: list[str]) -> None:
    """The names and ARNs the stack's resources were resolved with are those of what was created."""
    for (logical, attr), value in predicted.items():
        actual = d.refs.get(logical) if attr == "Ref" else d.attributes.get((logical, attr))
        if logical in created and actual != value:
            raise RuntimeError(f"{logical}.{attr}: predicted {value!r}, created as {actual!r}")


def _dependents(order: list[str], resources: dict[str, Any], roots: set[str]) -> set[str]:
    """The resources (in `order`) that reference one of `roots`, directly or through others."""
    found: set[str] = set()
    for name in order:  # reference order: a resource's references come before it
        if references(resources[name].get("Properties", {})) & (roots | found):
            found.add(name)
    return found


def _creation_order(enabled: list[str], resources: dict[str, Any]) -> list[str]:
    """Topological order over Ref/GetAtt/Sub references (unknown IDs, e.g. SAM-generated rules, are ignored)."""
    pending = set(enabled)
    order: list[str] = []
    deps = {name: references(resources[name].get("Properties", {})) & pending for name in enabled}
    # SAM-generated resources (rules) are created with their function: map them to it
    while pending:
        ready = sorted(n for n in pending if not (deps[n] & pending))
        if not ready:  # a cycle (should not happen in a valid template): create the rest in template order
            ready = [n for n in enabled if n in pending]
        for name in ready:
            order.append(name)
            pending.discard(name)
    return order
