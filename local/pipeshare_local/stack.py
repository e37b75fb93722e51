"""The embedded local stack: moto (server mode, several accounts) + the RAM emulation, one loopback endpoint.

Deployments are built from template.yaml: each enabled resource is created through the real AWS APIs (served by
moto), EventBridge rules are put with the template's own patterns, and functions run in-process with the template's
environment. moto cannot invoke Lambda targets, so the stack matches events with moto's own EventBridge matcher and
dispatches the full envelope to the handlers; it also pumps DynamoDB streams into stream-triggered functions.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import threading
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import boto3
import botocore.exceptions
import botocore.session
import time_machine
from aws_lambda_powertools.utilities.parameters import constants as parameter_constants
from botocore.config import Config
from moto.events.models import EventPattern
from moto.iam.models import get_account_id_from
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler

from pipeshare_local import moto_fixes
from pipeshare_local.ram import RamEmulator
from pipeshare_local.runtime import Invocation, LocalFunction
from pipeshare_local.sagemaker import SageMakerPipelineEmulator, moto_pipeline_exists
from pipeshare_local.template import Resolver, UnresolvedError, event_pattern_json, load_template, references
from pipeshare_local.wire import serve

DEFAULT_START = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
_CREDENTIALS_ROLE = "pipeshare-local"
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")


def schedule_period(expression: str) -> timedelta:
    match = _RATE.match(expression.strip())
    if not match:
        raise ValueError(f"the local stack runs rate(...) schedules only, not {expression!r}")
    amount, unit = int(match.group(1)), match.group(2).rstrip("s")
    return timedelta(**{f"{unit}s": amount})


class Clock:
    """Scenario time: real time flows, and can jump forward (time-machine patches the whole process)."""

    def __init__(self, start: datetime) -> None:
        self._traveller = time_machine.travel(start, tick=True)
        self._coordinates: Any = None

    def start(self) -> None:
        self._coordinates = self._traveller.start()

    def stop(self) -> None:
        self._traveller.stop()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def advance(self, delta: timedelta) -> None:
        self._coordinates.shift(delta)


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
    taps: dict[str, str] = field(default_factory=dict)  # topic logical id -> tap queue url
    skipped: list[str] = field(default_factory=list)
    conditions: dict[str, bool] = field(default_factory=dict)


@dataclass
class DeliveredEvent:
    account: str
    event: dict[str, Any]
    dropped: bool
    matched: list[str]
    bus: str = "default"
    refused: str | None = None  # why a forwarding target refused it


class LocalStack:
    """Start with `with LocalStack() as stack:`; deploy accounts; play events; read state back through the APIs."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        start: datetime = DEFAULT_START,
        invitation_ttl: timedelta = timedelta(hours=12),
    ) -> None:
        self.region = region
        self.clock = Clock(start)
        self.template = load_template()
        self.deployments: dict[str, Deployment] = {}
        self._credentials: dict[tuple[str, str], dict[str, str]] = {}
        self._pending: deque[tuple[str, str, dict[str, Any]]] = deque()  # (receiving account, bus, event)
        self.bus_admits: dict[tuple[str, str], set[str]] = {}  # (account, bus) -> accounts its policy admits
        self._drop_next: int = 0
        self.delivered: list[DeliveredEvent] = []
        self.notifications: list[dict[str, Any]] = []
        # (account, service, operation, caller) for every call at the endpoint; caller is "functions" or "tooling"
        self.aws_calls: list[tuple[str, str, str, str]] = []
        self._key_purpose: dict[str, str] = {}
        self._lock = threading.Lock()
        self.ram = RamEmulator(
            account_for_access_key=get_account_id_from,
            clock=self.clock.now,
            emit=self._emit,
            invitation_ttl=invitation_ttl,
            resource_exists=self._resource_exists,
        )
        self.sagemaker = SageMakerPipelineEmulator(
            account_for_access_key=get_account_id_from,
            clock=self.clock.now,
            emit=self._emit,
            ram=self.ram,
            pipeline_exists=moto_pipeline_exists,
        )
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._shutdown: Callable[[], None] | None = None
        self.endpoint = ""
        self._active_identity: tuple[str, str] | None = None
        self._sessions: dict[str, boto3.Session] = {}
        self._warm: dict[tuple[str, str], dict[str, Any]] = {}
        self._tool_session = boto3.Session()
        self._clients: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto_fixes.apply()
        self.clock.start()
        WSGIRequestHandler.protocol_version = "HTTP/1.1"  # keep-alive, as AWS endpoints do
        self.endpoint, self._shutdown = serve(self._app)
        # moto's backends are process-wide: a new stack starts from nothing (one stack in use at a time)
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).read()  # noqa: S310
        self.client("111111111111", "sts").get_caller_identity()  # warm moto's lazy backends

    def stop(self) -> None:
        if self._shutdown is not None:
            self._shutdown()
            self._shutdown = None
        self.clock.stop()

    def reset(self) -> None:
        """Forget every account, deployment and event (moto's reset endpoint and the emulation's own reset)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).read()  # noqa: S310 - loopback
        self.ram.reset()
        self.sagemaker.reset()
        self.deployments.clear()
        self._credentials.clear()
        self._clients.clear()
        self._sessions.clear()
        self._key_purpose.clear()
        self._warm.clear()
        self._pending.clear()
        self.bus_admits.clear()
        self._drop_next = 0
        self.delivered.clear()
        self.notifications.clear()
        with self._lock:
            self.aws_calls.clear()
        self._active_identity = None
        self.client("111111111111", "sts").get_caller_identity()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self._count_call(environ)
        if self.ram.is_ram_request(environ):
            return self.ram(environ, start_response)
        if self.sagemaker.handles(environ):
            return self.sagemaker(environ, start_response)
        return self._moto(environ, start_response)

    def _count_call(self, environ: dict[str, Any]) -> None:
        """Count each AWS call at the endpoint as (account, service, operation): JSON target, query Action or path."""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        match = re.search(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/", auth)
        if not match:
            return
        operation = environ.get("HTTP_X_AMZ_TARGET", "").split(".")[-1]
        if not operation and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            operation = parse_qs(body.decode()).get("Action", [""])[0]
        operation = operation or _rest_operation(match.group(2), environ.get("PATH_INFO", ""))
        key = match.group(1)
        with self._lock:
            self.aws_calls.append(
                (get_account_id_from(key), match.group(2), operation, self._key_purpose.get(key, "tooling"))
            )

    # ------------------------------------------------------------------ identities and clients
    def credentials(self, account: str, purpose: str = "functions") -> dict[str, str]:
        """Credentials bound to an account (moto STS assume-role), as Lambda's environment would carry them.

        Functions and the stack's own tooling (setup, reading state back) get different keys: calls can be told apart.
        """
        if (account, purpose) not in self._credentials:
            sts = self._tool_session.client(
                "sts",
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id="bootstrap",
                aws_secret_access_key="bootstrap",  # noqa: S106 - moto accepts any key; local only
            )
            creds = sts.assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/{_CREDENTIALS_ROLE}", RoleSessionName=f"pipeshare-{purpose}"
            )["Credentials"]
            self._key_purpose[creds["AccessKeyId"]] = purpose
            self._credentials[(account, purpose)] = {
                "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                "AWS_SESSION_TOKEN": creds["SessionToken"],
                "AWS_ENDPOINT_URL": self.endpoint,
            }
        return self._credentials[(account, purpose)]

    def client(self, account: str, service: str) -> Any:
        """A boto3 client bound to an account (cached; the stack's own session, apart from the functions')."""
        key = (account, service)
        if key not in self._clients:
            self._clients[key] = self._new_client(account, service)
        return self._clients[key]

    def _new_client(self, account: str, service: str) -> Any:
        creds = self.credentials(account, "tooling")
        return self._tool_session.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=creds["AWS_SESSION_TOKEN"],
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    def calls(self, account: str | None = None, *, functions_only: bool = False) -> list[tuple[str, str, str]]:
        """(account, service, operation) of the calls received, in order; optionally only the functions' calls."""
        with self._lock:
            return [
                c[:3]
                for c in self.aws_calls
                if (account is None or c[0] == account) and (not functions_only or c[3] == "functions")
            ]

    # ------------------------------------------------------------------ deploy from template.yaml
    def deploy(
        self, account: str, parameters: dict[str, Any] | None = None, *, stack_name: str = "pipeshare"
    ) -> Deployment:
        deployment = Deployment(account, self.region, stack_name, {k: str(v) for k, v in (parameters or {}).items()})
        resolver = Resolver(
            self.template,
            parameters=parameters or {},
            pseudo={
                "AWS::AccountId": account,
                "AWS::Region": self.region,
                "AWS::Partition": "aws",
                "AWS::StackName": stack_name,
                "AWS::URLSuffix": "amazonaws.com",
            },
            refs=deployment.refs,
            attrs=lambda logical, attr: self._attribute(deployment, logical, attr),
        )
        deployment.conditions = dict(resolver.conditions)
        deployment.parameters = dict(resolver.parameters)
        resources = self.template["Resources"]
        enabled = [name for name, spec in resources.items() if resolver.enabled(spec)]
        for logical in _creation_order(enabled, resources):
            self._create(deployment, resolver, logical, resources[logical])
        guard = resolver.parameters.get("TrustedOwnerAccountIds", "")
        if "AcceptInvitationsFunction" in deployment.functions:
            # the IAM condition ram:ShareOwnerAccountId from the template, enforced by the RAM emulation
            self.ram.set_accept_guard(account, {a for a in guard.split(",") if a})
        self.deployments[account] = deployment
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
            deployment.skipped.append(f"{logical} ({kind})")
            return
        try:
            props = resolver.resolve(spec.get("Properties", {})) if kind != "AWS::Serverless::Function" else spec
        except UnresolvedError as exc:
            deployment.skipped.append(f"{logical} ({kind}): unresolved {exc}")
            return
        creator(deployment, resolver, logical, props)

    def _name(self, deployment: Deployment, logical: str) -> str:
        return f"{deployment.stack_name}-{logical}"

    def _create_table(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        ddb = self.client(d.account, "dynamodb")
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
        sns = self.client(d.account, "sns")
        attributes = {k: str(props[k]) for k in ("DisplayName", "KmsMasterKeyId") if k in props}
        arn = sns.create_topic(Name=self._name(d, logical), Attributes=attributes)["TopicArn"]
        d.refs[logical] = arn
        d.attributes[(logical, "TopicArn")] = arn
        d.attributes[(logical, "TopicName")] = arn.rsplit(":", 1)[1]
        # a tap queue subscribed to every topic, so scenarios and tests read what was published through the APIs
        sqs = self.client(d.account, "sqs")
        url = sqs.create_queue(QueueName=f"{self._name(d, logical)}-tap")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
        d.taps[logical] = url

    def _create_subscription(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        self.client(d.account, "sns").subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
        )
        d.refs[logical] = f"{props['TopicArn']}:{logical}"

    def _create_queue(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        sqs = self.client(d.account, "sqs")
        attributes = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in props.items()
            if k in ("MessageRetentionPeriod", "SqsManagedSseEnabled", "VisibilityTimeout")
        }
        name = self._name(d, logical)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        d.refs[logical] = url
        d.attributes[(logical, "QueueName")] = name
        d.attributes[(logical, "Arn")] = f"arn:aws:sqs:{self.region}:{d.account}:{name}"

    def _create_key(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        kms = self.client(d.account, "kms")
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
        arn = self.client(d.account, "ram").create_resource_share(**request)["resourceShare"]["resourceShareArn"]
        d.refs[logical] = arn
        d.attributes[(logical, "Arn")] = arn

    def _create_event_bus(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        arn = self.client(d.account, "events").create_event_bus(Name=props["Name"])["EventBusArn"]
        d.refs[logical] = props["Name"]
        d.attributes[(logical, "Arn")] = arn
        d.attributes[(logical, "Name")] = props["Name"]

    def _create_event_bus_policy(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        statement = props["Statement"]
        principal = statement.get("Principal", {})
        accounts = principal.get("AWS", []) if isinstance(principal, dict) else []
        accounts = [accounts] if isinstance(accounts, str) else accounts
        # organization-wide policies (aws:PrincipalOrgID) are not emulated: the local stack has no organization
        admitted = self.bus_admits.setdefault((d.account, props["EventBusName"]), set())
        admitted.update(a.split(":")[4] if a.startswith("arn:") else a for a in accounts)
        d.refs[logical] = props["StatementId"]

    def _create_rule(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        events = self.client(d.account, "events")
        bus = props.get("EventBusName", "default")
        pattern = event_pattern_json(props["EventPattern"])
        arn = events.put_rule(
            Name=logical, EventPattern=pattern, State=props.get("State", "ENABLED"), EventBusName=bus
        )["RuleArn"]
        for target in props.get("Targets", []):
            if ":event-bus/" not in target["Arn"]:
                d.skipped.append(f"{logical} target {target['Id']} (only event-bus targets are emulated)")
                continue
            d.rules.append(
                Rule(
                    logical,
                    None,
                    pattern=EventPattern.load(pattern),
                    bus=bus,
                    forward_to=target["Arn"],
                    dead_letter_arn=target.get("DeadLetterConfig", {}).get("Arn"),
                )
            )
        d.refs[logical] = logical
        d.attributes[(logical, "Arn")] = arn

    def _create_role(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        iam = self.client(d.account, "iam")
        name = f"{d.stack_name}-{logical}"[:64]
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
            )
        d.refs[logical] = name
        d.attributes[(logical, "Arn")] = role["Role"]["Arn"]

    def _create_log_group(self, d: Deployment, _r: Resolver, logical: str, props: dict[str, Any]) -> None:
        logs = self.client(d.account, "logs")
        logs.create_log_group(logGroupName=props["LogGroupName"])
        logs.put_retention_policy(logGroupName=props["LogGroupName"], retentionInDays=int(props["RetentionInDays"]))
        d.refs[logical] = props["LogGroupName"]

    def _create_function(self, d: Deployment, resolver: Resolver, logical: str, spec: dict[str, Any]) -> None:
        globals_ = self.template.get("Globals", {}).get("Function", {})
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
            region=self.region,
            code_uri=props["CodeUri"],
            handler=props["Handler"],
            environment={k: str(v) for k, v in env.items()},
            identity=lambda: self.credentials(d.account),
            max_retries=int(invoke_config.get("MaximumRetryAttempts", 2)),
            on_failure=(lambda record, arn=on_failure: self._send_to_queue(d.account, arn, record))
            if on_failure
            else None,
            before_invoke=self._switch_container,
        )
        d.functions[logical] = function
        d.refs[logical] = name
        d.attributes[(logical, "Arn")] = function.arn
        events = self.client(d.account, "events")
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
                d.rules.append(Rule(rule_name, function, schedule=period, next_fire=self.clock.now() + period))
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

    def _switch_container(self, function: LocalFunction) -> None:
        """One process plays many accounts: a new identity is a new container (fresh clients and caches)."""
        identity = (function.account, function.logical_id)
        if identity != self._active_identity:
            from pipeshare import dependencies

            if self._active_identity is not None:  # keep the warm container's Powertools parameter cache
                self._warm[self._active_identity] = dict(parameter_constants.DEFAULT_PROVIDERS)
            dependencies.reset()
            parameter_constants.DEFAULT_PROVIDERS.update(self._warm.get(identity, {}))
            # boto3's default session caches the credentials it resolved: one session per account, as containers
            # of different accounts never share one (a session per account also keeps its loaded service models)
            if function.account not in self._sessions:
                self._sessions[function.account] = boto3.Session()
            boto3.DEFAULT_SESSION = self._sessions[function.account]
            self._active_identity = identity

    def _send_to_queue(self, account: str, queue_arn: str, body: dict[str, Any]) -> None:
        sqs = self.client(account, "sqs")
        url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body, default=str))

    def _resource_exists(self, account: str, region: str, arn: str) -> bool:
        if ":sagemaker:" in arn and ":pipeline/" in arn:
            sagemaker = self.client(account, "sagemaker")
            try:
                sagemaker.describe_pipeline(PipelineName=arn.rsplit("/", 1)[1])
            except sagemaker.exceptions.ResourceNotFound:
                return False
            except Exception:
                return False
        return True

    # ------------------------------------------------------------------ events
    def _emit(self, event: dict[str, Any], *, bus: str = "default", account: str | None = None) -> None:
        """An event reaches a bus: the default bus of its own account unless told otherwise."""
        with self._lock:
            self._pending.append((account or event["account"], bus, event))

    def put_event(self, account: str, event: dict[str, Any]) -> None:
        """Deliver an event as-is (e.g. from an events/ JSON file) to an account's default bus."""
        self._emit(event, account=account)

    def drop_next_events(self, count: int = 1) -> None:
        """RAM events are best effort: the next `count` events are lost."""
        self._drop_next += count

    def deliver(self) -> list[Invocation]:
        """Deliver pending events to matching rules (moto's matcher, the template's patterns), then pump streams.

        A rule whose target is another account's event bus forwards the event there when that bus's policy admits
        the sending account; otherwise the event goes to the rule's dead-letter queue, as EventBridge does.
        """
        invocations: list[Invocation] = []
        self.sagemaker.tick()
        while True:
            with self._lock:
                if not self._pending:
                    break
                account, bus, event = self._pending.popleft()
            if self._drop_next:
                self._drop_next -= 1
                self.delivered.append(DeliveredEvent(account, event, dropped=True, matched=[], bus=bus))
                continue
            deployment = self.deployments.get(account)
            matched = [
                r
                for r in (deployment.rules if deployment else [])
                if r.bus == bus and r.pattern and r.pattern.matches_event(event)
            ]
            delivered = DeliveredEvent(account, event, dropped=False, matched=[r.name for r in matched], bus=bus)
            self.delivered.append(delivered)
            for rule in matched:
                if rule.forward_to:
                    delivered.refused = self._forward(account, rule, event)
                elif rule.function is not None:
                    invocations += rule.function.invoke_async(event, trigger=f"rule:{rule.name}")
        for _ in range(10):  # stream-triggered functions may write items that trigger others (bounded)
            pumped = self.pump_streams()
            if not pumped:
                break
            invocations += pumped
        return invocations

    def _forward(self, account: str, rule: Rule, event: dict[str, Any]) -> str | None:
        target = rule.forward_to or ""
        target_account, target_bus = target.split(":")[4], target.rsplit("/", 1)[1]
        if account == target_account or account in self.bus_admits.get((target_account, target_bus), set()):
            self._emit(event, bus=target_bus, account=target_account)
            return None
        reason = f"event bus {target} does not admit account {account} (AccessDeniedException)"
        if rule.dead_letter_arn:
            self._send_to_queue(account, rule.dead_letter_arn, {"event": event, "error": reason, "rule": rule.name})
        return reason

    def run_schedule(self, account: str, rule_suffix: str = "Sweep") -> list[Invocation]:
        """Fire an account's scheduled rule now (the sweep)."""
        deployment = self.deployments[account]
        invocations: list[Invocation] = []
        for rule in deployment.rules:
            if rule.schedule and rule.name.endswith(rule_suffix):
                invocations += rule.function.invoke_async(
                    self._scheduled_event(account, rule), trigger=f"schedule:{rule.name}"
                )
        return invocations + self.deliver()

    def _scheduled_event(self, account: str, rule: Rule) -> dict[str, Any]:
        import uuid

        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [f"arn:aws:events:{self.region}:{account}:rule/{rule.name}"],
            "detail": {},
        }

    def advance(self, delta: timedelta) -> list[Invocation]:
        """Move scenario time forward, firing every schedule period crossed (in time order), then deliver."""
        target = self.clock.now() + delta
        invocations: list[Invocation] = []
        while True:
            due = [
                (r.next_fire, acct, r)
                for acct, d in self.deployments.items()
                for r in d.rules
                if r.schedule and r.next_fire and r.next_fire <= target
            ]
            if not due:
                break
            fire_at, account, rule = min(due, key=lambda x: x[0])
            now = self.clock.now()
            if fire_at > now:
                self.clock.advance(fire_at - now)
            self.sagemaker.tick()  # executions as of fire_at, before the scheduled function runs
            rule.next_fire = fire_at + rule.schedule  # type: ignore[operator]
            invocations += rule.function.invoke_async(
                self._scheduled_event(account, rule), trigger=f"schedule:{rule.name}"
            )
            invocations += self.deliver()
        now = self.clock.now()
        if target > now:
            self.clock.advance(target - now)
        return invocations + self.deliver()

    # ------------------------------------------------------------------ streams
    def pump_streams(self) -> list[Invocation]:
        invocations: list[Invocation] = []
        for deployment in self.deployments.values():
            for mapping in deployment.streams:
                invocations += self._pump(deployment, mapping)
        return invocations

    def _pump(self, d: Deployment, mapping: StreamMapping) -> list[Invocation]:
        streams = self.client(d.account, "dynamodbstreams")
        if not mapping.iterators:
            try:
                shards = streams.describe_stream(StreamArn=mapping.stream_arn)["StreamDescription"]["Shards"]
            except streams.exceptions.ResourceNotFoundException:
                return []  # the table is gone: Lambda disables such a mapping
            mapping.iterators = {shard["ShardId"]: "" for shard in shards}
        records: list[dict[str, Any]] = []
        for shard_id in list(mapping.iterators):
            iterator = (
                mapping.iterators.get(shard_id)
                or streams.get_shard_iterator(
                    StreamArn=mapping.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            while iterator:
                page = streams.get_records(ShardIterator=iterator, Limit=1000)
                mapping.iterators[shard_id] = page.get("NextShardIterator") or iterator
                if not page["Records"]:
                    break
                records += page["Records"]
                iterator = page.get("NextShardIterator")
        invocations: list[Invocation] = []
        selected = [self._stream_record(r, mapping) for r in records]
        selected = [r for r in selected if not mapping.filters or any(f.matches_event(r) for f in mapping.filters)]
        for start in range(0, len(selected), mapping.batch_size):
            invocations += self._invoke_batch(d, mapping, selected[start : start + mapping.batch_size])
        return invocations

    @staticmethod
    def _stream_record(record: dict[str, Any], mapping: StreamMapping) -> dict[str, Any]:
        record = json.loads(json.dumps(record, default=lambda v: v.timestamp() if isinstance(v, datetime) else str(v)))
        record["eventSourceARN"] = mapping.stream_arn
        return record

    def _invoke_batch(self, d: Deployment, mapping: StreamMapping, batch: list[dict[str, Any]]) -> list[Invocation]:
        invocations: list[Invocation] = []
        attempt = 0
        while batch:
            attempt += 1
            invocation = mapping.function.invoke_once({"Records": batch}, trigger="stream", attempt=attempt)
            invocations.append(invocation)
            if invocation.error is None:
                failures = {f["itemIdentifier"] for f in (invocation.result or {}).get("batchItemFailures", [])}
                if not failures:
                    return invocations
                first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failures)
                batch = batch[first:]
            if mapping.max_retries >= 0 and attempt > mapping.max_retries:
                if mapping.on_failure_arn:
                    self._send_to_queue(
                        d.account,
                        mapping.on_failure_arn,
                        {
                            "requestContext": {
                                "condition": "RetryAttemptsExhausted",
                                "functionArn": mapping.function.arn,
                                "approximateInvokeCount": attempt,
                            },
                            "DDBStreamBatchInfo": {
                                "streamArn": mapping.stream_arn,
                                "batchSize": len(batch),
                                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                            },
                        },
                    )
                return invocations
        return invocations

    # ------------------------------------------------------------------ reading state back
    def read_notifications(self, account: str) -> list[dict[str, Any]]:
        """Drain the tap queues of an account's topics; returns (and keeps) every message published so far."""
        deployment = self.deployments[account]
        sqs = self.client(account, "sqs")
        for logical, url in deployment.taps.items():
            while True:
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    envelope = json.loads(message["Body"])
                    try:
                        body: Any = json.loads(envelope["Message"])
                    except ValueError:
                        body = envelope["Message"]
                    self.notifications.append(
                        {
                            "account": account,
                            "topic": logical,
                            "subject": envelope.get("Subject"),
                            "message": body,
                            "attributes": {k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()},
                            "at": envelope.get("Timestamp"),
                        }
                    )
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [n for n in self.notifications if n["account"] == account]

    def table_items(self, account: str, logical: str = "ShareTable") -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        ddb = self.client(account, "dynamodb")
        items: list[dict[str, Any]] = []
        for page in ddb.get_paginator("scan").paginate(TableName=self.deployments[account].refs[logical]):
            items += [{k: _plain(deserializer.deserialize(v)) for k, v in item.items()} for item in page["Items"]]
        return sorted(items, key=lambda i: (i.get("pk", ""), i.get("sk", "")))

    def queue_messages(self, account: str, logical: str) -> list[dict[str, Any]]:
        sqs = self.client(account, "sqs")
        url = self.deployments[account].refs[logical]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def invocations(self, account: str | None = None) -> list[Invocation]:
        return [
            i
            for d in self.deployments.values()
            if account is None or d.account == account
            for f in d.functions.values()
            for i in f.invocations
        ]


@functools.cache
def _rest_paths(service: str) -> dict[str, str]:
    """requestUri -> operation name for a REST service (RAM), from botocore's service model."""
    try:
        model = botocore.session.get_session().get_service_model(service)
    except botocore.exceptions.UnknownServiceError:
        return {}
    uris = {name: model.operation_model(name).http.get("requestUri", "") for name in model.operation_names}
    return {uri.split("?", 1)[0].rstrip("/").lower(): name for name, uri in uris.items() if "{" not in uri}


def _rest_operation(service: str, path: str) -> str:
    return _rest_paths(service).get(path.rstrip("/").lower(), path)


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


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
