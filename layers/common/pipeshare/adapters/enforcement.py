"""Budget enforcement actions in the owner account: stop an execution; take the offending consumer off a share; give
it a read-only share of the same pipelines.

RAM changes touch only the offender. A share's permission applies to every principal of the share, so it is never
changed: the consumer itself is disassociated from the (allow-execution) share, and read-only access comes from a
share of its own, `pipeshare-read-only-<account>` (aws-facts §10). Every RAM write carries a client token derived
from what it is about and the month: a retry within the month is the same request, a new month is a new one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.models.errors import InvalidEventError, TransientError
from pipeshare.models.owner import READ_ONLY

if TYPE_CHECKING:
    from mypy_boto3_ram import RAMClient
    from mypy_boto3_ram.literals import ResourceShareAssociationTypeType
    from mypy_boto3_ram.type_defs import ResourceShareTypeDef
    from mypy_boto3_sagemaker import SageMakerClient

_NAMESPACE = uuid.UUID("b7a1c3f0-52a4-4a46-9c1e-1f6f0a5d8e21")

READ_ONLY_SHARE_PREFIX = "pipeshare-read-only-"
PURPOSE_TAG_KEY = "pipeshare:purpose"
PURPOSE_TAG_VALUE = "budget-read-only"
CONSUMER_TAG_KEY = "pipeshare:consumer"

_ACCOUNT = re.compile(r"^[0-9]{12}$")
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_SHARE_ARN = re.compile(r"^arn:aws[a-z-]*:ram:[a-z0-9-]+:[0-9]{12}:resource-share/[\w-]+$")
_PIPELINE_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):sagemaker:[a-z0-9-]+:[0-9]{12}:pipeline/[A-Za-z0-9-]+$")
_HELD = ("ASSOCIATED", "ASSOCIATING")  # an association that grants (or is about to grant) access


def read_only_share_name(principal: str) -> str:
    """The name of the owner's pipeshare read-only share for one consumer account."""
    return f"{READ_ONLY_SHARE_PREFIX}{principal}"


def client_token(*parts: str) -> str:
    """A deterministic RAM clientToken (uuid5) for one request."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


class AwsEnforcementGateway:
    """Implements ports.EnforcementGateway."""

    def __init__(self, sagemaker: SageMakerClient | None = None, ram: RAMClient | None = None) -> None:
        # built on first use: most budget watcher invocations enforce nothing (a SageMaker client alone is ~20 MB)
        self._sagemaker_client = sagemaker
        self._ram_client = ram

    @property
    def _sagemaker(self) -> SageMakerClient:
        if self._sagemaker_client is None:
            self._sagemaker_client = boto3.client("sagemaker")
        return self._sagemaker_client

    @property
    def _ram(self) -> RAMClient:
        if self._ram_client is None:
            self._ram_client = boto3.client("ram")
        return self._ram_client

    @translated(returning={"ConflictException": False})  # it had already ended
    def stop_execution(self, execution_arn: str) -> bool:
        token = str(uuid.uuid5(_NAMESPACE, f"stop:{execution_arn}"))  # a retried stop is the same request
        self._sagemaker.stop_pipeline_execution(PipelineExecutionArn=execution_arn, ClientRequestToken=token)
        return True

    # RAM knows no such association (the consumer was removed already, left, or the share is gone): the consumer has
    # no access through this share. Terraform's AWS provider reads the code the same way.
    @translated(returning={"UnknownResourceException": False})
    def remove_principal(self, share_arn: str, principal: str, *, month: str) -> bool:
        _check(_SHARE_ARN, share_arn, "resource share ARN")
        _check(_ACCOUNT, principal, "consumer account ID")
        _check(_MONTH, month, "month (YYYY-MM)")
        self._ram.disassociate_resource_share(
            resourceShareArn=share_arn,
            principals=[principal],
            clientToken=client_token("remove-principal", share_arn, principal, month),
        )
        return True

    @translated()
    def grant_read_only(self, principal: str, pipeline_arns: Sequence[str], *, month: str) -> str:
        _check(_ACCOUNT, principal, "consumer account ID")
        _check(_MONTH, month, "month (YYYY-MM)")
        pipelines = _pipelines(pipeline_arns)
        permission = f"arn:{_partition(pipelines[0])}:ram::aws:permission/{READ_ONLY}"
        return self._ensure_read_only_share(principal, pipelines, permission, month)

    # ------------------------------------------------------------------------------------------ read-only share

    def _ensure_read_only_share(self, principal: str, pipelines: list[str], permission: str, month: str) -> str:
        share = self._find_read_only_share(principal, permission)
        if share is None:
            created = self._create_read_only_share(principal, pipelines, permission, month)
            if created is not None:
                return created
            share = self._find_read_only_share(principal, permission)  # created earlier this month
            if share is None:
                raise TransientError(f"the read-only share for {principal} was created this month, not visible yet")
        self._complete(share, principal, pipelines, month)
        return share

    def _find_read_only_share(self, principal: str, permission: str) -> str | None:
        """The owner's ACTIVE share named for the consumer that grants the read-only permission (the oldest if
        several); a share of that name with another permission is never used."""
        name = read_only_share_name(principal)
        found: list[ResourceShareTypeDef] = []
        for page in self._ram.get_paginator("get_resource_shares").paginate(
            resourceOwner="SELF", name=name, resourceShareStatus="ACTIVE", permissionArn=permission
        ):
            found += [s for s in page.get("resourceShares", []) if s.get("name") == name]
        if not found:
            return None
        oldest = min(found, key=lambda s: (str(s.get("creationTime", "")), str(s["resourceShareArn"])))
        return str(oldest["resourceShareArn"])

    @translated(returning={"IdempotentParameterMismatchException": None})
    def _create_read_only_share(self, principal: str, pipelines: list[str], permission: str, month: str) -> str | None:
        """CreateResourceShare, one request per (consumer, month). None when this month's request was made with other
        pipelines (IdempotentParameterMismatchException): the share exists already and the caller completes it."""
        created = self._ram.create_resource_share(
            name=read_only_share_name(principal),
            resourceArns=pipelines,
            principals=[principal],
            permissionArns=[permission],
            allowExternalPrincipals=True,
            clientToken=client_token("read-only-share", principal, month),
            tags=[
                {"key": PURPOSE_TAG_KEY, "value": PURPOSE_TAG_VALUE},
                {"key": CONSUMER_TAG_KEY, "value": principal},
            ],
        )
        return str(created["resourceShare"]["resourceShareArn"])

    def _complete(self, share_arn: str, principal: str, pipelines: list[str], month: str) -> None:
        """AssociateResourceShare for what the share lacks: pipelines not associated, the consumer not associated
        (it rejected the invitation, or was removed). Nothing when it lacks nothing."""
        held = self._held(share_arn, "RESOURCE")
        missing = [arn for arn in pipelines if arn.lower() not in held]
        invite = principal not in self._held(share_arn, "PRINCIPAL")
        if not missing and not invite:
            return
        request: dict[str, Any] = {"resourceShareArn": share_arn}
        if missing:
            request["resourceArns"] = missing
        if invite:
            request["principals"] = [principal]
        token = client_token("read-only-complete", share_arn, principal, month, str(invite), *missing)
        self._ram.associate_resource_share(**request, clientToken=token)

    def _held(self, share_arn: str, kind: ResourceShareAssociationTypeType) -> set[str]:
        """Entities (lower-case resource ARNs, or principals) associated or associating with the share."""
        held: set[str] = set()
        for page in self._ram.get_paginator("get_resource_share_associations").paginate(
            associationType=kind, resourceShareArns=[share_arn]
        ):
            held |= {
                str(a["associatedEntity"]).lower() if kind == "RESOURCE" else str(a["associatedEntity"])
                for a in page.get("resourceShareAssociations", [])
                if a.get("status") in _HELD
            }
        return held


def _check(pattern: re.Pattern[str], value: object, what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidEventError(f"not a {what}: {value!r}")


def _pipelines(pipeline_arns: Sequence[str]) -> list[str]:
    """The pipeline ARNs, validated, deduplicated and sorted (a retried request has the same parameters)."""
    if isinstance(pipeline_arns, str) or not pipeline_arns:
        raise InvalidEventError("grant_read_only needs a non-empty list of pipeline ARNs")
    for arn in pipeline_arns:
        _check(_PIPELINE_ARN, arn, "SageMaker pipeline ARN")
    return sorted(set(pipeline_arns))


def _partition(pipeline_arn: str) -> str:
    match = _PIPELINE_ARN.fullmatch(pipeline_arn)
    return match["partition"] if match else "aws"
