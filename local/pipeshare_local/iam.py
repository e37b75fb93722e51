"""Local IAM: the execution roles `sam deploy` would create, enforced on every AWS call a function makes.

Roles. The template goes through SAM's own translator (``samtranslator.translator.transform``, what ``sam deploy``
runs): policy templates such as ``SNSPublishMessagePolicy`` are expanded, the EventInvokeConfig and event-source
OnFailure SQS permissions are added, each function gets its generated ``<Function>Role``. The translation is cached per
template text; each deployment then resolves the ``AWS::IAM::Role`` resources' inline policies with its own parameters,
conditions and resource attributes (``template.Resolver``).

Requests. A call becomes one or more authorizations (action, resource ARNs, condition context). The action is
``<service>:<Operation>``. Which resource types an action needs, their ARN formats and the condition keys that apply
come from parliament's shipped IAM definition database (a scrape of the Service Authorization Reference), never typed
in here. Written by hand are only REQUEST_RESOURCES (how each operation's request parameters fill the ARN format
variables, including the per-item actions of DynamoDB transactions) and the condition values the local stack can
supply (``ram:ShareOwnerAccountId``, ``ram:ResourceShareName``, ``ram:PermissionArn``, ``kms:ViaService``, ...).

Evaluation. Identity-based policies only: explicit Deny > Allow > implicit deny; Action/NotAction,
Resource/NotResource with ``*``/``?`` wildcards (actions case-insensitive); condition operators String*, Arn*, Bool,
Null with ``IfExists`` and ``ForAnyValue``/``ForAllValues``. Everything it cannot evaluate denies (fail closed) with
a message saying why: an action the database does not know, an operation without a parameter mapping, an operator it
does not implement, a condition key that applies to the request but that the local stack cannot supply.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from pipeshare_local import wire
from pipeshare_local.ram import resource_type_of
from pipeshare_local.template import Resolver, UnresolvedError

logger = logging.getLogger(__name__)

__all__ = [
    "ActionDefinition",
    "Context",
    "Decision",
    "Denial",
    "IamDefinitions",
    "LocalIam",
    "Lookups",
    "MappingError",
    "Need",
    "NoLookups",
    "Principal",
    "Request",
    "StackLookups",
    "Target",
    "denial_response",
    "evaluate",
    "function_roles",
    "iam_definitions",
    "read_request",
    "request_needs",
    "role_policies",
    "sam_translate",
    "translated_resolver",
]


# --------------------------------------------------------------------------------------------------------------
# The IAM definition database (parliament's iam_definition.json)
# --------------------------------------------------------------------------------------------------------------


def _definition_path() -> Path:
    """parliament's shipped database, found without importing parliament (its import loads the file eagerly)."""
    spec = importlib.util.find_spec("parliament")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("parliament is not installed (requirements-dev.txt pins it)")
    return Path(next(iter(spec.submodule_search_locations))) / "iam_definition.json"


_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_BASE_VARIABLES = frozenset({"Partition", "Region", "Account"})


@dataclass(frozen=True)
class ResourceType:
    """One resource type of a service: its ARN format (with ${Variables}) and the condition keys it supports."""

    service: str
    name: str
    arn_format: str
    condition_keys: frozenset[str]  # lower case

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """Matches concrete ARNs of this type: a variable is one ARN segment ([^:/]+); the last one, ending the
        format, takes the rest (ResourcePath, a parameter name with slashes, ...)."""
        parts = _VARIABLE.split(self.arn_format)  # literal, name, literal, name, ..., literal
        out = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                out.append(re.escape(part))
            else:
                out.append(".+" if i == len(parts) - 2 and parts[-1] == "" else "[^:/]+")
        return re.compile("^" + "".join(out) + "$")

    @functools.cached_property
    def variables(self) -> frozenset[str]:
        """The format's variables other than Partition, Region and Account."""
        return frozenset(_VARIABLE.findall(self.arn_format)) - _BASE_VARIABLES

    @functools.cached_property
    def specificity(self) -> int:
        return len(_VARIABLE.sub("", self.arn_format))

    def build(self, variables: Mapping[str, str]) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                raise MappingError(f"no value for ${{{name}}} of {self.service} resource type {self.name}")
            return variables[name]

        return _VARIABLE.sub(value, self.arn_format)


@dataclass(frozen=True)
class ActionDefinition:
    """One action as the Service Authorization Reference lists it."""

    action: str  # as the database spells it, e.g. "ram:AcceptResourceShareInvitation"
    required: frozenset[str]  # resource types marked * (each must be allowed)
    optional: frozenset[str]
    condition_keys: frozenset[str]  # lower case, from the action's rows

    @property
    def resource_types(self) -> frozenset[str]:
        return self.required | self.optional


class IamDefinitions:
    """Actions, resource types (ARN formats) and condition keys per service prefix."""

    def __init__(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self._actions: dict[str, ActionDefinition] = {}
        self._resources: dict[tuple[str, str], ResourceType] = {}
        for entry in entries:  # a prefix may appear more than once (several service pages): merge them
            prefix = entry["prefix"]
            for resource in entry.get("resources", []):
                self._resources.setdefault(
                    (prefix, resource["resource"]),
                    ResourceType(
                        prefix,
                        resource["resource"],
                        resource["arn"],
                        frozenset(k.lower() for k in resource.get("condition_keys", [])),
                    ),
                )
            for privilege in entry.get("privileges", []):
                required, optional, keys = set(), set(), set()
                for row in privilege.get("resource_types", []):
                    keys.update(k.lower() for k in row.get("condition_keys", []))
                    name = row.get("resource_type", "")
                    if name.endswith("*"):
                        required.add(name[:-1])
                    elif name:
                        optional.add(name)
                action = f"{prefix}:{privilege['privilege']}"
                self._actions.setdefault(
                    action.lower(), ActionDefinition(action, frozenset(required), frozenset(optional), frozenset(keys))
                )

    def action(self, action: str) -> ActionDefinition | None:
        return self._actions.get(action.lower())

    def resource_type(self, service: str, name: str) -> ResourceType:
        try:
            return self._resources[(service, name)]
        except KeyError:
            raise MappingError(f"the IAM definition database has no {service} resource type {name!r}") from None

    def applicable_keys(self, action: ActionDefinition, resource_types: Sequence[ResourceType]) -> frozenset[str]:
        """Condition keys AWS puts in the request context for this action on these resources (lower case)."""
        keys = set(action.condition_keys)
        for resource_type in resource_types:
            keys |= resource_type.condition_keys
        return frozenset(keys)


@functools.cache
def iam_definitions() -> IamDefinitions:
    with _definition_path().open() as fh:
        return IamDefinitions(json.load(fh))


# --------------------------------------------------------------------------------------------------------------
# Requests and what they need authorized
# --------------------------------------------------------------------------------------------------------------


class MappingError(Exception):
    """The local stack cannot tell which resources (or conditions) a request involves: it is denied."""


@dataclass(frozen=True)
class Request:
    """One AWS API call as the endpoint received it."""

    service: str  # the SigV4 signing name, which is the IAM prefix for every service pipeshare calls
    operation: str
    params: Mapping[str, Any]
    account: str  # the caller's
    region: str
    protocol: str  # json | query | rest-json
    content_type: str = ""


@dataclass(frozen=True)
class Target:
    """A resource a request names: an ARN as given, or the values of an ARN format's variables."""

    types: tuple[str, ...]  # the resource types (database names) this parameter may name
    arn: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    account: str | None = None  # for variables: the resource's account when not the caller's (an SQS queue URL)


@dataclass(frozen=True)
class Need:
    """One authorization a request needs: an action on every one of its resources, with extra context values."""

    action: str
    targets: tuple[Target, ...] = ()
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # lower-case key -> values
    # keys AWS leaves out of this request context (lower case; ${...} templates allowed): absent, not unknown
    absent: frozenset[str] = frozenset()


class Lookups(Protocol):
    """What the local stack knows that a request's context needs."""

    def invitation(self, arn: str) -> tuple[str, str] | None:
        """(owner account, share name) of a RAM invitation, if it exists."""

    def topic_key(self, topic_arn: str) -> str | None:
        """The KMS key ARN an SNS topic encrypts with (server-side encryption), if any."""

    def share(self, arn: str) -> tuple[str, bool] | None:
        """(name, allows external principals) of a RAM resource share, if it exists."""


class NoLookups:
    def invitation(self, arn: str) -> tuple[str, str] | None:
        return None

    def topic_key(self, topic_arn: str) -> str | None:
        return None

    def share(self, arn: str) -> tuple[str, bool] | None:
        return None


class StackLookups:
    """Lookups in the local stack's own state: the RAM emulation's invitations, moto's SNS topics and KMS keys (read
    in-process, so they are not calls at the endpoint)."""

    def __init__(
        self,
        invitation: Callable[[str], tuple[str, str] | None],
        share: Callable[[str], tuple[str, bool] | None] | None = None,
    ) -> None:
        self._invitation = invitation
        self._share = share

    def invitation(self, arn: str) -> tuple[str, str] | None:
        return self._invitation(arn)

    def share(self, arn: str) -> tuple[str, bool] | None:
        return self._share(arn) if self._share is not None else None

    def topic_key(self, topic_arn: str) -> str | None:
        from moto.kms.models import kms_backends
        from moto.sns.models import sns_backends

        parts = topic_arn.split(":")
        if len(parts) != 6:
            return None
        region, account = parts[3], parts[4]
        topic = sns_backends[account][region].topics.get(topic_arn)
        key_id = getattr(topic, "kms_master_key_id", "") if topic is not None else ""
        if not key_id:
            return None
        kms = kms_backends[account][region]
        alias = key_id.split(":", 5)[-1] if key_id.startswith("arn:") else key_id
        if alias.startswith("alias/aws/") and not kms.alias_exists(alias):
            # alias/aws/sns names the account's AWS managed key, which AWS creates on first use (moto knows the
            # aliases of some services' managed keys, not SNS's)
            managed = kms.create_key(None, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", f"Default key ({alias})", None)
            kms.create_alias(managed.id, alias)
        try:
            return str(kms.keys[kms.any_id_to_key_id(key_id)].arn)
        except Exception as exc:
            raise MappingError(f"cannot find the KMS key {key_id} of topic {topic_arn}: {exc}") from exc


def _text(params: Mapping[str, Any], name: str, operation: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise MappingError(f"{operation} request without {name}")
    return value


def _named(types: tuple[str, ...], variable: str, value: str) -> Target:
    """A parameter that takes a name or an ARN."""
    return Target(types, arn=value) if value.startswith("arn:") else Target(types, variables={variable: value})


def _table(params: Mapping[str, Any], operation: str) -> Target:
    """A DynamoDB table, or one of its indexes when the request names one (Query/Scan on an index are authorized on
    table/<name>/index/<index>)."""
    name = _text(params, "TableName", operation)
    index = params.get("IndexName")
    if name.startswith("arn:"):
        return Target(("table", "index"), arn=f"{name}/index/{index}" if index else name)
    return Target(("table", "index"), variables={"TableName": name, **({"IndexName": index} if index else {})})


def _dynamodb_item(request: Request, _: Lookups) -> list[Need]:
    return [Need(f"dynamodb:{request.operation}", (_table(request.params, request.operation),))]


def _dynamodb_batch(request: Request, _: Lookups) -> list[Need]:
    """BatchGetItem / BatchWriteItem: the batch action on every table of RequestItems."""
    tables = request.params.get("RequestItems") or {}
    targets = tuple(_table({"TableName": name}, request.operation) for name in tables)
    return [Need(f"dynamodb:{request.operation}", targets)]


# AWS documents transactions through the per-item actions: a Put needs dynamodb:PutItem on its table, etc.
_TRANSACT_ITEMS = {
    "TransactWriteItems": {
        "Put": "PutItem",
        "Update": "UpdateItem",
        "Delete": "DeleteItem",
        "ConditionCheck": "ConditionCheckItem",
    },
    "TransactGetItems": {"Get": "GetItem"},
}


def _dynamodb_transaction(request: Request, _: Lookups) -> list[Need]:
    kinds = _TRANSACT_ITEMS[request.operation]
    needs: list[Need] = []
    for item in request.params.get("TransactItems") or []:
        for kind, body in item.items():
            if kind not in kinds:
                raise MappingError(f"{request.operation} item kind {kind!r} has no IAM action mapping")
            context = {"dynamodb:enclosingoperation": (request.operation,)}
            needs.append(Need(f"dynamodb:{kinds[kind]}", (_table(body, request.operation),), context))
    if not needs:
        raise MappingError(f"{request.operation} request without items")
    return needs


def _sns_publish(request: Request, lookups: Lookups) -> list[Need]:
    """sns:Publish on the topic; for a topic with server-side encryption, SNS calls KMS with the caller's
    credentials: kms:GenerateDataKey and kms:Decrypt on the topic's key, with kms:ViaService sns.<region>."""
    arn = request.params.get("TopicArn") or request.params.get("TargetArn")
    if not isinstance(arn, str) or not arn:
        raise MappingError("Publish without TopicArn or TargetArn (SMS publishing has no mapping)")
    needs = [Need("sns:Publish", (Target(("topic",), arn=arn),))]
    key = lookups.topic_key(arn)
    if key:
        via = {
            "kms:viaservice": (f"sns.{request.region}.amazonaws.com",),
            "kms:calleraccount": (request.account,),
            "aws:calledvia": ("sns.amazonaws.com",),
            "aws:viaawsservice": ("true",),
        }
        needs += [Need(f"kms:{op}", (Target(("key",), arn=key),), via) for op in ("GenerateDataKey", "Decrypt")]
    return needs


# SQS batch operations are authorized as their single-message action
_SQS_ACTIONS = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}


def _sqs_queue(request: Request, _: Lookups) -> list[Need]:
    """QueueUrl (http://host/<account>/<name>) -> the queue ARN's variables."""
    path = urlsplit(_text(request.params, "QueueUrl", request.operation)).path.strip("/").split("/")
    if len(path) != 2:
        raise MappingError(f"{request.operation}: cannot read the account and queue name from QueueUrl")
    target = Target(("queue",), variables={"QueueName": path[1]}, account=path[0])
    return [Need(f"sqs:{_SQS_ACTIONS.get(request.operation, request.operation)}", (target,))]


def _ssm_parameters(request: Request, _: Lookups) -> list[Need]:
    names = request.params.get("Names") if request.operation == "GetParameters" else None
    names = names if isinstance(names, list) else [_text(request.params, "Name", request.operation)]
    targets = tuple(
        Target(("parameter",), arn=name)
        if name.startswith("arn:")
        else Target(("parameter",), variables={"ParameterNameWithoutLeadingSlash": name.removeprefix("/")})
        for name in names
    )
    return [Need(f"ssm:{request.operation}", targets)]


def _one(types: tuple[str, ...], parameter: str, variable: str | None = None) -> Callable[[Request, Lookups], list]:
    """The operation's own action on one resource named by `parameter` (an ARN, or the value of `variable`)."""

    def needs(request: Request, _: Lookups) -> list[Need]:
        value = _text(request.params, parameter, request.operation)
        target = _named(types, variable, value) if variable else Target(types, arn=value)
        return [Need(f"{request.service}:{request.operation}", (target,))]

    return needs


def _ram_invitation(request: Request, lookups: Lookups) -> list[Need]:
    arn = _text(request.params, "resourceShareInvitationArn", request.operation)
    found = lookups.invitation(arn)
    context = {"ram:shareowneraccountid": (found[0],), "ram:resourcesharename": (found[1],)} if found else {}
    return [Need(f"ram:{request.operation}", (Target(("resource-share-invitation",), arn=arn),), context)]


def _ram_share_permission(request: Request, _: Lookups) -> list[Need]:
    """AssociateResourceSharePermission & co: the share and the permission (AWS managed or customer managed)."""
    share = _text(request.params, "resourceShareArn", request.operation)
    permission = _text(request.params, "permissionArn", request.operation)
    targets = (
        Target(("resource-share",), arn=share),
        Target(("permission", "customer-managed-permission"), arn=permission),
    )
    return [Need(f"ram:{request.operation}", targets, {"ram:permissionarn": (permission,)})]


def _share_context(share_arn: str | None, lookups: Lookups) -> dict[str, tuple[str, ...]]:
    """The resource-share keys of a request naming an existing share (its name, whether it allows externals)."""
    found = lookups.share(share_arn) if share_arn else None
    if found is None:
        return {}
    return {"ram:resourcesharename": (found[0],), "ram:allowsexternalprincipals": (str(found[1]).lower(),)}


# a request's tags are all in its context (supplied values win): any other aws:RequestTag/<key> is absent
_TAG_KEYS = frozenset({"aws:requesttag/${tagkey}", "aws:tagkeys"})
_RESOURCE_KEYS = frozenset({"ram:requestedresourcetype", "ram:resourcearn"}) | _TAG_KEYS
_PRINCIPAL_KEYS = frozenset({"ram:principal"}) | _TAG_KEYS


def _ram_share_members(request: Request, lookups: Lookups) -> list[Need]:
    """Create/Associate/DisassociateResourceShare. RAM authorizes each principal and each resource of the request in
    a request context of its own: a principal's has ram:Principal and no ram:RequestedResourceType / ram:ResourceArn,
    a resource's the reverse (RAM user guide, example IAM policies). Create names no share (the action has no resource
    type); with tags it also authorizes ram:TagResource on the share it creates (the reference's API operations
    table), whose ARN RAM has not chosen yet: the local stack authorizes it on resource-share/*."""
    params = request.params
    share_arn = None if request.operation == "CreateResourceShare" else _text(params, "resourceShareArn", "RAM")
    targets = (Target(("resource-share",), arn=share_arn),) if share_arn else ()
    common = _ram_request_keys(request, share_arn, lookups)
    action = f"ram:{request.operation}"
    needs = [
        Need(action, targets, {**common, "ram:principal": (str(p),)}, _RESOURCE_KEYS)
        for p in _items(params, "principals")
    ]
    needs += [
        Need(action, targets, {**common, **_resource_keys(a)}, _PRINCIPAL_KEYS) for a in _items(params, "resourceArns")
    ]
    if not needs:  # nothing to associate: the share alone
        needs.append(Need(action, targets, common, _PRINCIPAL_KEYS | _RESOURCE_KEYS))
    if request.operation == "CreateResourceShare" and params.get("tags"):
        new_share = Target(("resource-share",), variables={"ResourcePath": "*"})
        needs.append(Need("ram:TagResource", (new_share,), common, _TAG_KEYS))
    return needs


def _items(params: Mapping[str, Any], name: str) -> list[str]:
    return [str(v) for v in params.get(name) or []]


def _resource_keys(arn: str) -> dict[str, tuple[str, ...]]:
    kind = resource_type_of(arn)
    return {"ram:resourcearn": (arn,), **({"ram:requestedresourcetype": (kind,)} if kind else {})}


def _ram_request_keys(request: Request, share_arn: str | None, lookups: Lookups) -> dict[str, tuple[str, ...]]:
    """The keys every context of the request has: the share's (an existing one), the request's tags, and for Create
    its allowExternalPrincipals."""
    tags = [t for t in request.params.get("tags") or [] if isinstance(t, Mapping) and "key" in t]
    keys = {**_share_context(share_arn, lookups)}
    keys |= {f"aws:requesttag/{t['key']}".lower(): (str(t.get("value", "")),) for t in tags}
    if tags:
        keys["aws:tagkeys"] = tuple(str(t["key"]) for t in tags)
    if request.operation == "CreateResourceShare":
        keys["ram:requestedallowsexternalprincipals"] = (
            str(request.params.get("allowExternalPrincipals", True)).lower(),
        )
    return keys


def event_bus_arn(name: str | None, *, account: str, region: str) -> str:
    """A PutEvents entry's EventBusName (a name, an ARN, or none: the default bus) as the bus's ARN."""
    name = name or "default"
    return name if name.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{name}"


def _events_put(request: Request, _: Lookups) -> list[Need]:
    """PutEvents: events:PutEvents on each entry's bus, with the entry's events:source and events:detail-type (a call
    from code, not a rule's delivery: events:eventBusInvocation false)."""
    entries = request.params.get("Entries") or []
    if not entries:
        raise MappingError("PutEvents without Entries")
    return [
        Need(
            "events:PutEvents",
            (
                Target(
                    ("event-bus",),
                    arn=event_bus_arn(e.get("EventBusName"), account=request.account, region=request.region),
                ),
            ),
            {
                "events:source": (str(e.get("Source", "")),),
                "events:detail-type": (str(e.get("DetailType", "")),),
                "events:eventbusinvocation": ("false",),
            },
        )
        for e in entries
    ]


_PIPELINE_EXECUTION = _one(("pipeline-execution",), "PipelineExecutionArn")
_PIPELINE = _one(("pipeline",), "PipelineName", "PipelineName")

# (service, operation) -> the authorizations its request needs. Only operations whose action has resource types need
# an entry: an action the database lists with no resource type is authorized on "*".
REQUEST_RESOURCES: dict[tuple[str, str], Callable[[Request, Lookups], list[Need]]] = {
    **{
        ("dynamodb", op): _dynamodb_item
        for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable")
    },
    ("dynamodb", "BatchGetItem"): _dynamodb_batch,
    ("dynamodb", "BatchWriteItem"): _dynamodb_batch,
    ("dynamodb", "TransactWriteItems"): _dynamodb_transaction,
    ("dynamodb", "TransactGetItems"): _dynamodb_transaction,
    ("sns", "Publish"): _sns_publish,
    ("events", "PutEvents"): _events_put,
    **{
        ("sqs", op): _sqs_queue
        for op in (
            "SendMessage",
            "SendMessageBatch",
            "ReceiveMessage",
            "DeleteMessage",
            "DeleteMessageBatch",
            "ChangeMessageVisibility",
            "GetQueueAttributes",
        )
    },
    ("ssm", "GetParameter"): _ssm_parameters,
    ("ssm", "GetParameters"): _ssm_parameters,
    **{
        ("sagemaker", op): _PIPELINE_EXECUTION
        for op in (
            "DescribePipelineExecution",
            "ListPipelineExecutionSteps",
            "StopPipelineExecution",
            "RetryPipelineExecution",
            "DescribePipelineDefinitionForExecution",
            "ListPipelineParametersForExecution",
        )
    },
    **{("sagemaker", op): _PIPELINE for op in ("StartPipelineExecution", "DescribePipeline", "ListPipelineExecutions")},
    ("sagemaker", "DescribeTrainingJob"): _one(("training-job",), "TrainingJobName", "TrainingJobName"),
    ("sagemaker", "DescribeProcessingJob"): _one(("processing-job",), "ProcessingJobName", "ProcessingJobName"),
    ("sagemaker", "DescribeTransformJob"): _one(("transform-job",), "TransformJobName", "TransformJobName"),
    ("sagemaker", "DescribeHyperParameterTuningJob"): _one(
        ("hyper-parameter-tuning-job",), "HyperParameterTuningJobName", "HyperParameterTuningJobName"
    ),
    **{
        ("ram", op): _ram_invitation
        for op in ("ListPendingInvitationResources", "AcceptResourceShareInvitation", "RejectResourceShareInvitation")
    },
    ("ram", "ListResourceSharePermissions"): _one(("resource-share",), "resourceShareArn"),
    ("ram", "AssociateResourceSharePermission"): _ram_share_permission,
    **{
        ("ram", op): _ram_share_members
        for op in ("CreateResourceShare", "AssociateResourceShare", "DisassociateResourceShare")
    },
    ("ram", "DisassociateResourceSharePermission"): _ram_share_permission,
    ("cloudtrail", "GetTrailStatus"): _one(("trail",), "Name", "TrailName"),
    ("cloudtrail", "GetEventSelectors"): _one(("trail",), "TrailName", "TrailName"),
}


def request_needs(request: Request, lookups: Lookups, definitions: IamDefinitions | None = None) -> list[Need]:
    """The authorizations a request needs (MappingError when the local stack cannot tell)."""
    definitions = definitions or iam_definitions()
    action = f"{request.service}:{request.operation}"
    mapper = REQUEST_RESOURCES.get((request.service, request.operation))
    if mapper is not None:
        return mapper(request, lookups)
    known = definitions.action(action)
    if known is not None and not known.resource_types:
        return [Need(known.action)]  # no resource type: authorized on "*"
    if known is None:
        return [Need(action)]  # evaluated as an unknown action: denied with that reason
    raise MappingError(
        f"no request-parameter mapping for {known.action} (resource types {sorted(known.resource_types)}): "
        "add it to pipeshare_local.iam.REQUEST_RESOURCES"
    )


# --------------------------------------------------------------------------------------------------------------
# Reading a request at the endpoint
# --------------------------------------------------------------------------------------------------------------


def _buffered_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for whoever reads it next."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


@functools.cache
def _rest_routes(service: str) -> list[tuple[str, re.Pattern[str], dict[str, str], str]]:
    model = wire.service_model(service)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        regex, groups = wire.uri_regex(http["requestUri"].split("?", 1)[0])
        routes.append((http["method"].upper(), regex, groups, name))
    return routes


def read_request(environ: dict[str, Any], *, service: str, account: str, region: str) -> Request:
    """The operation and parameters of a request: json (X-Amz-Target + JSON body), query (form body with Action) or
    rest-json (method + path routed with the botocore model; labels, body)."""
    content_type = environ.get("CONTENT_TYPE", "")
    body = _buffered_body(environ)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        params = json.loads(body) if body.strip() else {}
        return Request(service, target.rsplit(".", 1)[-1], params, account, region, "json", content_type)
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        return Request(service, form.pop("Action", ""), form, account, region, "query", content_type)
    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = environ.get("PATH_INFO", "") or "/"
    for route_method, regex, groups, name in _rest_routes(service):
        match = regex.match(path)
        if match and route_method == method:
            params = json.loads(body) if body.strip() else {}
            params.update({groups[g]: v for g, v in match.groupdict().items()})
            params.update({k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()})
            return Request(service, name, params, account, region, "rest-json", content_type)
    return Request(service, f"{method} {path}", {}, account, region, "rest-json", content_type)


def denial_response(request: Request, message: str) -> wire.Response:
    """AccessDenied in the request's protocol, so botocore raises the error the real service answers with."""
    if request.protocol == "query":  # SNS: AuthorizationError, 403
        body = (
            '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
            f"<Code>AuthorizationError</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        return 403, [("Content-Type", "text/xml")], body.encode()
    if request.protocol == "rest-json":  # RAM
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException")]
        return 403, headers, json.dumps({"message": message}).encode()
    headers = [("Content-Type", request.content_type or "application/x-amz-json-1.1")]
    return 400, headers, json.dumps({"__type": "AccessDeniedException", "message": message}).encode()


# --------------------------------------------------------------------------------------------------------------
# Policy evaluation
# --------------------------------------------------------------------------------------------------------------


class Unsupported(Exception):
    """Something in a policy or request the evaluator does not implement: the request is denied."""


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    if "${" in pattern:
        raise Unsupported(f"policy variable in {pattern!r}")
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _like(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _wildcard(pattern, ignore_case).match(value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike / ArnEquals: the six colon-separated parts, each with wildcards."""
    p, v = pattern.split(":", 5), value.split(":", 5)
    return len(p) == 6 and len(v) == 6 and all(_like(a, b) for a, b in zip(p, v, strict=True))


# base operator -> (comparison of one context value with one policy value, negated)
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (lambda c, p: c == p, False),
    "StringNotEquals": (lambda c, p: c == p, True),
    "StringEqualsIgnoreCase": (lambda c, p: c.casefold() == p.casefold(), False),
    "StringNotEqualsIgnoreCase": (lambda c, p: c.casefold() == p.casefold(), True),
    "StringLike": (lambda c, p: _like(p, c), False),
    "StringNotLike": (lambda c, p: _like(p, c), True),
    "ArnEquals": (lambda c, p: _arn_like(p, c), False),
    "ArnLike": (lambda c, p: _arn_like(p, c), False),
    "ArnNotEquals": (lambda c, p: _arn_like(p, c), True),
    "ArnNotLike": (lambda c, p: _arn_like(p, c), True),
    "Bool": (lambda c, p: c.lower() == p.lower(), False),
}


def _policy_values(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return ["true" if v is True else "false" if v is False else str(v) for v in values]


@dataclass(frozen=True)
class Context:
    """The request context of one authorization: values by lower-case key, and the keys AWS would supply for the
    action and resources (a policy naming one of those that the local stack did not supply cannot be evaluated)."""

    values: Mapping[str, tuple[str, ...]]
    applicable: frozenset[str] = frozenset()
    absent: frozenset[str] = frozenset()  # keys (database templates allowed) AWS leaves out of this context

    def lookup(self, key: str) -> tuple[str, ...] | None:
        lowered = key.lower()
        if lowered in self.values:
            return self.values[lowered]
        if any(_key_matches(k, lowered) for k in self.absent):
            return None
        if lowered.startswith("aws:") or any(_key_matches(k, lowered) for k in self.applicable):
            raise Unsupported(f"condition key {key} applies to this request but the local stack does not supply it")
        return None  # a key that does not apply to the request is absent from its context


def _key_matches(template: str, key: str) -> bool:
    """A database key such as aws:resourcetag/${tagkey} matches aws:resourcetag/team."""
    prefix, sep, _ = template.partition("${")
    return key.startswith(prefix) if sep else key == template


def _condition_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise Unsupported(f"condition operator {operator}")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base == "Null" and not (qualifier or if_exists):
        absent = not context.lookup(key)
        return any((p.lower() == "true") == absent for p in _policy_values(expected))
    if base not in _OPERATORS:
        raise Unsupported(f"condition operator {operator}")
    compare, negated = _OPERATORS[base]
    policy_values = _policy_values(expected)
    values = context.lookup(key)
    if values is None:
        if if_exists or qualifier == "ForAllValues":
            return True
        return False if qualifier == "ForAnyValue" else negated

    def holds(value: str) -> bool:
        matched = any(compare(value, p) for p in policy_values)
        return not matched if negated else matched

    if qualifier == "ForAnyValue":
        return any(holds(v) for v in values)
    if qualifier == "ForAllValues":
        return all(holds(v) for v in values)
    if len(values) != 1:
        raise Unsupported(f"multi-valued key {key} with single-valued operator {operator}")
    return holds(values[0])


def _listed(statement: Mapping[str, Any], positive: str, negative: str) -> tuple[list[str], bool]:
    if positive in statement and negative not in statement:
        value, negated = statement[positive], False
    elif negative in statement and positive not in statement:
        value, negated = statement[negative], True
    else:
        raise Unsupported(f"statement {statement.get('Sid', '')!r} needs exactly one of {positive} / {negative}")
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise Unsupported(f"statement {statement.get('Sid', '')!r}: {positive}/{negative} must be strings")
    return values, negated


def _statement_applies(statement: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    if "Principal" in statement or "NotPrincipal" in statement:
        raise Unsupported("Principal in an identity-based policy")
    actions, not_action = _listed(statement, "Action", "NotAction")
    if any(_like(a, action, ignore_case=True) for a in actions) == not_action:
        return False
    resources, not_resource = _listed(statement, "Resource", "NotResource")
    if any(_like(r, resource) for r in resources) == not_resource:
        return False
    conditions = statement.get("Condition", {})
    if not isinstance(conditions, Mapping):
        raise Unsupported("Condition must be an object")
    for operator, keys in conditions.items():
        if not isinstance(keys, Mapping):
            raise Unsupported(f"condition {operator} must map keys to values")
        for key, expected in keys.items():
            if not _condition_holds(operator, key, expected, context):
                return False
    return True


@dataclass(frozen=True)
class Verdict:
    effect: str  # Allow | Deny (explicit) | None (implicit deny) | Unsupported
    detail: str = ""


def evaluate(policies: Sequence[Mapping[str, Any]], action: str, resource: str, context: Context) -> Verdict:
    """The identity-based policies' verdict on one action on one resource."""
    allowed, problems = "", []
    for document in policies:
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            try:
                effect = statement.get("Effect")
                if effect not in ("Allow", "Deny"):
                    raise Unsupported(f"statement {statement.get('Sid', '')!r} has Effect {effect!r}")
                if not _statement_applies(statement, action, resource, context):
                    continue
            except Unsupported as exc:
                problems.append(str(exc))
                continue
            if effect == "Deny":
                return Verdict("Deny", statement.get("Sid", ""))
            allowed = allowed or statement.get("Sid", "") or "(no Sid)"
    if problems:
        return Verdict("Unsupported", "; ".join(problems))
    return Verdict("Allow", allowed) if allowed else Verdict("None")


# --------------------------------------------------------------------------------------------------------------
# Roles from SAM's translation
# --------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _translator_region() -> Iterator[None]:
    """The translator asks boto3 for a region (to fill pseudo parameters it does not need here)."""
    if os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        yield
        return
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        yield
    finally:
        os.environ.pop("AWS_DEFAULT_REGION", None)


def sam_transform(template: dict[str, Any], named_policy: Exception) -> dict[str, Any]:
    """SAM's own translator (`samtranslator.translator.transform`, what `sam deploy` runs), offline: a managed policy
    named by name would need IAM ListPolicies, so it raises `named_policy` (template.yaml names none)."""
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class OfflinePolicyLoader(ManagedPolicyLoader):
        def __init__(self) -> None:
            pass

        def load(self) -> dict[str, str]:
            raise named_policy

    with _translator_region():
        return transform(template, {}, OfflinePolicyLoader())  # type: ignore[no-any-return]


@functools.cache
def _translate(text: str) -> dict[str, Any]:
    template = json.loads(text)
    for spec in template.get("Resources", {}).values():  # what `sam package` does before `sam deploy`
        props = spec.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://pipeshare-local/{props[key].strip('/')}"
    no_network = RuntimeError("the local stack resolves no managed policy by name (no network, no AWS account)")
    return sam_transform(template, no_network)


def sam_translate(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template as `sam deploy` hands it to CloudFormation (cached per template text; do not mutate it)."""
    return _translate(json.dumps(template, sort_keys=True, default=str))


def _logical(value: Any) -> str | None:
    """The logical ID of a {"Fn::GetAtt": [X, "Arn"]} (or "X.Arn") reference."""
    if isinstance(value, Mapping) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else str(target).split(".", 1)[0])
    return None


def function_roles(translated: Mapping[str, Any]) -> dict[str, str]:
    """Function logical ID -> logical ID of the AWS::IAM::Role it runs as."""
    out = {}
    for name, spec in translated["Resources"].items():
        if spec["Type"] == "AWS::Lambda::Function":
            role = _logical(spec.get("Properties", {}).get("Role"))
            if role is not None:
                out[name] = role
    return out


def role_policies(translated: Mapping[str, Any], role: str, resolver: Resolver) -> list[dict[str, Any]]:
    """The inline policy documents of a role, resolved for one deployment.

    ManagedPolicyArns are ignored: SAM attaches AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess,
    AWSLambdaDynamoDBExecutionRole and AWSLambdaSQSQueueExecutionRole (logs, X-Ray traces, stream and queue polling),
    and the local stack routes none of those calls through functions (it pumps streams and queues itself, as the
    Lambda service does)."""
    props = translated["Resources"][role].get("Properties", {})
    return [entry["PolicyDocument"] for entry in resolver.resolve(props.get("Policies", []))]


def translated_resolver(translated: Mapping[str, Any], base: Resolver) -> Resolver:
    """A resolver over the translated template with a deployment's parameters, pseudo parameters and resources."""
    return Resolver(translated, parameters=base.parameters, pseudo=base.pseudo, refs=base.refs, attrs=base.attrs)


# --------------------------------------------------------------------------------------------------------------
# The local stack's IAM state and decisions
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """A function's identity: its role, and the STS session its credentials belong to."""

    account: str
    role: str  # logical ID of the role in the (translated) template
    role_arn: str
    session_arn: str  # arn:aws:sts::<account>:assumed-role/<role name>/<session>
    function: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    action: str = ""
    resource: str = ""
    reason: str = "allowed"  # allowed | explicit-deny | implicit-deny | unsupported
    message: str = ""


@dataclass(frozen=True)
class Denial:
    """A call (or an action on a function's behalf) the local IAM refused."""

    account: str
    principal: str  # session ARN
    function: str | None
    operation: str
    action: str
    resource: str
    reason: str
    message: str


class LocalIam:
    """Who each function credential is, what its role's policies say, and every refusal (``denials``)."""

    def __init__(self, definitions: IamDefinitions | None = None, lookups: Lookups | None = None) -> None:
        self._definitions = definitions
        self.lookups: Lookups = lookups or NoLookups()
        self.function_roles: dict[tuple[str, str], str] = {}  # (account, function) -> role logical ID
        self._principals: dict[str, Principal] = {}  # access key -> principal
        self._policies: dict[tuple[str, str], list[dict[str, Any]] | str] = {}  # (account, role) -> docs | problem
        self.rule_roles: dict[tuple[str, str, str], str] = {}  # (account, rule, target ARN) -> role logical ID
        self.sessions: dict[str, Any] = {}  # access key -> boto3 session of that function's container
        self.denials: list[Denial] = []

    @property
    def definitions(self) -> IamDefinitions:
        if self._definitions is None:
            self._definitions = iam_definitions()
        return self._definitions

    def forget(self) -> None:
        """A new world (moto reset): every credential, role and refusal is gone."""
        self._principals.clear()
        self._policies.clear()
        self.function_roles.clear()
        self.rule_roles.clear()
        self.sessions.clear()
        self.denials.clear()

    def bind(self, access_key: str, principal: Principal) -> None:
        self._principals[access_key] = principal

    def principal(self, access_key: str) -> Principal | None:
        return self._principals.get(access_key)

    def set_policies(self, account: str, role: str, policies: list[dict[str, Any]] | str) -> None:
        """A role's resolved policy documents, or why they could not be resolved (every call is then denied)."""
        self._policies[(account, role)] = policies

    def policies(self, account: str, role: str) -> list[dict[str, Any]] | str:
        return self._policies.get((account, role), f"role {role} of account {account} is not deployed")

    def install(self, account: str, translated: Mapping[str, Any], resolver: Resolver) -> None:
        """Resolve every enabled AWS::IAM::Role of a deployment, and which role each rule target delivers with."""
        for key in [k for k in self.rule_roles if k[0] == account]:
            del self.rule_roles[key]
        for function, role in function_roles(translated).items():
            self.function_roles[(account, function)] = role
        for name, spec in translated["Resources"].items():
            if not resolver.enabled(spec):
                continue
            if spec["Type"] == "AWS::IAM::Role":
                try:
                    self.set_policies(account, name, role_policies(translated, name, resolver))
                except UnresolvedError as exc:
                    self.set_policies(account, name, f"the policies of {name} could not be resolved: {exc}")
            elif spec["Type"] == "AWS::Events::Rule":
                for target in spec.get("Properties", {}).get("Targets", []):
                    role = _logical(target.get("RoleArn"))
                    if role is None:
                        continue
                    with contextlib.suppress(UnresolvedError):
                        self.rule_roles[(account, name, str(resolver.resolve(target["Arn"])))] = role

    def check_request(self, principal: Principal, request: Request) -> Decision:
        """Authorize one call at the endpoint."""
        try:
            needs = request_needs(request, self.lookups, self.definitions)
        except MappingError as exc:
            action = f"{request.service}:{request.operation}"
            return self._refuse(principal, request.operation, action, "*", "unsupported", str(exc))
        return self.check(principal, needs, region=request.region, operation=request.operation)

    def check(self, principal: Principal, needs: Sequence[Need], *, region: str, operation: str) -> Decision:
        """Authorize every need (all of them, on all of their resources, must be allowed)."""
        policies = self.policies(principal.account, principal.role)
        for need in needs:
            decision = self._check_need(principal, policies, need, region)
            if not decision.allowed:
                return self._refuse(
                    principal, operation, decision.action, decision.resource, decision.reason, decision.message
                )
        return Decision(True)

    def _check_need(
        self, principal: Principal, policies: list[dict[str, Any]] | str, need: Need, region: str
    ) -> Decision:
        definition = self.definitions.action(need.action)
        if definition is None:
            return Decision(False, need.action, "*", "unsupported", "the action is not in the IAM definition database")
        try:
            resources = self._resources(definition, need, principal, region)
        except MappingError as exc:
            return Decision(False, definition.action, "*", "unsupported", str(exc))
        if isinstance(policies, str):
            return Decision(False, definition.action, resources[0][0], "unsupported", policies)
        types = [t for _, t in resources if t is not None]
        context = Context(
            {
                "aws:principalaccount": (principal.account,),
                "aws:principalarn": (principal.role_arn,),
                "aws:requestedregion": (region,),
                **{k.lower(): tuple(v) for k, v in need.context.items()},
            },
            self.definitions.applicable_keys(definition, types),
            need.absent,
        )
        for arn, _ in resources:
            verdict = evaluate(policies, definition.action, arn, context)
            if verdict.effect != "Allow":
                reason = {"Deny": "explicit-deny", "None": "implicit-deny"}.get(verdict.effect, "unsupported")
                return Decision(False, definition.action, arn, reason, verdict.detail)
        return Decision(True, definition.action)

    def _resources(
        self, definition: ActionDefinition, need: Need, principal: Principal, region: str
    ) -> list[tuple[str, ResourceType | None]]:
        """The concrete ARNs (with their database resource type) the need names, checked against the database."""
        service = definition.action.split(":", 1)[0]
        if not definition.resource_types:
            if need.targets:
                raise MappingError(f"{definition.action} supports no resource type, but the mapping names resources")
            return [("*", None)]
        declared = {t for target in need.targets for t in target.types}
        missing = definition.required - declared
        if missing:
            raise MappingError(f"the mapping of {definition.action} does not name its required {sorted(missing)}")
        if not need.targets:
            raise MappingError(f"the {definition.action} request names no resource")
        out = []
        for target in need.targets:
            candidates = [self.definitions.resource_type(service, t) for t in target.types]
            if target.arn is not None:
                matching = [c for c in candidates if c.pattern.match(target.arn)]
                arn = target.arn
            else:
                given = frozenset(target.variables)
                matching = [c for c in candidates if c.variables == given]
                base = {"Partition": "aws", "Region": region, "Account": target.account or principal.account}
                arn = matching[0].build({**base, **target.variables}) if matching else ""
            if not matching:
                shown = target.arn or dict(target.variables)
                raise MappingError(f"{shown} is none of {definition.action}'s resource types {list(target.types)}")
            resource_type = max(matching, key=lambda c: c.specificity)
            if resource_type.name not in definition.resource_types:
                raise MappingError(f"{arn} is a {resource_type.name}, not a resource type of {definition.action}")
            out.append((arn, resource_type))
        return out

    def _refuse(
        self, principal: Principal, operation: str, action: str, resource: str, reason: str, detail: str
    ) -> Decision:
        who = f"User: {principal.session_arn} is not authorized to perform: {action} on resource: {resource}"
        if reason == "explicit-deny":
            message = f"{who} with an explicit deny in an identity-based policy"
        elif reason == "implicit-deny":
            message = f"{who} because no identity-based policy allows the {action} action"
        else:
            message = f"{who} because the local IAM evaluator cannot authorize it (fail closed): {detail}"
        denial = Denial(
            principal.account, principal.session_arn, principal.function, operation, action, resource, reason, message
        )
        self.denials.append(denial)
        logger.warning("IAM denied %s: %s", principal.function or principal.role, message)
        return Decision(False, action, resource, reason, message)
