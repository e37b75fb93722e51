"""In-process emulation of AWS Resource Access Manager (RAM), spoken to over its real wire protocol.

moto has no RAM invitation APIs, so the local stack answers RAM requests here. The contract is botocore's
``ram`` 2018-01-04 service model (protocol rest-json):

* requests are routed by each operation's ``http.method`` + ``http.requestUri`` taken from the model;
* request parameters are read according to each input member's ``location`` (body / querystring / header / uri)
  and validated against the input shape (botocore's ``ParamValidator`` plus enum and ``max`` checks, which
  botocore itself does not enforce);
* responses are serialised from the output shape (timestamps as epoch seconds unless the model sets a
  ``timestampFormat``);
* errors carry the modelled HTTP status, an ``x-amzn-ErrorType`` header and a ``{"message": ...}`` body, which
  is what botocore's rest-json error parser turns into ``client.exceptions.<Code>``.

Behaviour that AWS does not document precisely is marked ``[unverified]`` where it is decided.
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack
from urllib.parse import unquote

from botocore.model import OperationModel, ServiceModel

from pipeshare_local import wire
from pipeshare_local.settings import EmulationSettings
from pipeshare_local.wire import StrictParamValidator, serve

__all__ = [
    "MANAGED_PERMISSIONS",
    "RamEmulator",
    "RamError",
    "StrictParamValidator",
    "ram_event",
    "ram_service_model",
    "resource_type_of",
    "serve",
]

logger = logging.getLogger(__name__)

PARTITION = "aws"

# Invitation statuses (ResourceShareInvitationStatus).
PENDING = "PENDING"
ACCEPTED = "ACCEPTED"
REJECTED = "REJECTED"
EXPIRED = "EXPIRED"

# Association statuses (ResourceShareAssociationStatus).
ASSOCIATING = "ASSOCIATING"
ASSOCIATED = "ASSOCIATED"
DISASSOCIATED = "DISASSOCIATED"

# Share statuses (ResourceShareStatus).
ACTIVE = "ACTIVE"
DELETED = "DELETED"

_REJECTED_MESSAGE = "The invitation was rejected by the principal."
_EXPIRED_MESSAGE = "The invitation expired before the principal accepted it."
_WITHDRAWN_MESSAGE = "The principal was removed from the resource share."
_SHARE_DELETED_MESSAGE = "The resource share was deleted."
_EXTERNAL_NOT_ALLOWED = (
    "The resource you are attempting to share can only be shared within your AWS Organization. This error may "
    "also occur if you have not enabled sharing with your AWS organization, or that onboarding process is still "
    "in progress."
)


def ram_service_model() -> ServiceModel:
    """botocore's RAM service model (the installed botocore's copy)."""
    return wire.service_model("ram")


# --------------------------------------------------------------------------------------------------------------
# Catalogue: shareable resource types and the AWS managed permissions the emulator knows.
# --------------------------------------------------------------------------------------------------------------

# (ARN service, first segment of the ARN resource part) -> RAM resource type.
_RESOURCE_TYPES: dict[tuple[str, str], str] = {
    ("sagemaker", "pipeline"): "sagemaker:Pipeline",
    ("ec2", "subnet"): "ec2:Subnet",
    ("ec2", "transit-gateway"): "ec2:TransitGateway",
    ("glue", "database"): "glue:Database",
    ("glue", "table"): "glue:Table",
    ("license-manager", "license-configuration"): "license-manager:LicenseConfiguration",
}
_RESOURCE_TYPES_BY_LOWER = {t.lower(): t for t in _RESOURCE_TYPES.values()}


def resource_type_of(arn: str) -> str | None:
    """The RAM resource type of a shareable resource's ARN (the emulator's catalogue), else None."""
    match = _ARN_RE.match(arn) if isinstance(arn, str) else None
    if match is None:
        return None
    return _RESOURCE_TYPES.get((match["service"], re.split(r"[/:]", match["resource"], maxsplit=1)[0]))


@dataclass(frozen=True)
class ManagedPermission:
    """An AWS managed RAM permission (version 1 only)."""

    name: str
    resource_type: str
    is_resource_type_default: bool

    @property
    def arn(self) -> str:
        return f"arn:{PARTITION}:ram::aws:permission/{self.name}"


MANAGED_PERMISSIONS: tuple[ManagedPermission, ...] = (
    ManagedPermission("AWSRAMDefaultPermissionSageMakerPipeline", "sagemaker:Pipeline", True),
    ManagedPermission("AWSRAMPermissionSageMakerPipelineAllowExecution", "sagemaker:Pipeline", False),
    ManagedPermission("AWSRAMDefaultPermissionSubnet", "ec2:Subnet", True),
    ManagedPermission("AWSRAMDefaultPermissionTransitGateway", "ec2:TransitGateway", True),
    ManagedPermission("AWSRAMDefaultPermissionGlueDatabase", "glue:Database", True),
    ManagedPermission("AWSRAMDefaultPermissionGlueTable", "glue:Table", True),
    ManagedPermission("AWSRAMDefaultPermissionLicenseConfiguration", "license-manager:LicenseConfiguration", True),
)
_PERMISSIONS_BY_ARN = {p.arn: p for p in MANAGED_PERMISSIONS}
_DEFAULT_PERMISSION = {p.resource_type: p for p in MANAGED_PERMISSIONS if p.is_resource_type_default}
# Managed permissions predate any scenario; a fixed creation time keeps responses deterministic.
_MANAGED_PERMISSION_TIME = datetime(2023, 1, 1, tzinfo=UTC)

_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
    r"(?P<account>\d{12}|aws)?:(?P<resource>.+)$"
)
_SHARE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:ram:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):resource-share/[\w-]+$")
_INVITATION_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:ram:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):resource-share-invitation/[\w-]+$"
)
_PERMISSION_ARN_RE = re.compile(r"^arn:aws[a-z-]*:ram::(?:aws|\d{12}):permission/[\w+=,.@-]+$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")


# --------------------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------------------


def ram_event(*, account: str, region: str, time: datetime, resources: list[str], event: str, status: str) -> dict:
    """One EventBridge envelope for a RAM state change. [unverified] shapes.

    event is "Resource Share Invitation" or "Resource Share Association"; status is lower case
    ("pending", "accepted", "rejected", "associating", "associated", "disassociated"). account is the account
    that receives the event (AWS sends RAM events both to the share owner and to the principals).
    """
    return wire.event_envelope(
        source="aws.ram",
        detail_type="Resource Sharing State Change",
        account=account,
        region=region,
        time=time,
        resources=resources,
        detail={"event": event, "status": status},
    )


INVITATION_EVENT = "Resource Share Invitation"
ASSOCIATION_EVENT = "Resource Share Association"


# --------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------

# Codes the model does not define but that AWS (or the emulator) answers with.
_UNMODELLED_STATUS = {
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "MissingAuthenticationTokenException": 403,
    "UnknownOperationException": 404,
    "NotImplemented": 501,
}


class RamError(wire.ServiceError):
    """An error answered to the client as RAM would: HTTP status, x-amzn-ErrorType and {"message": ...}.

    Without an explicit status: the unmodelled codes' status, else the error shape's httpStatusCode, else 400.
    """

    unmodelled_status = _UNMODELLED_STATUS
    modelled_in = "ram"


def _not_found_share(arn: str) -> RamError:
    return RamError("UnknownResourceException", f"ResourceShare {arn} could not be found.")


def _not_found_invitation(arn: str) -> RamError:
    return RamError("ResourceShareInvitationArnNotFoundException", f"ResourceShareInvitation {arn} could not be found.")


# --------------------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Association:
    entity: str
    kind: str  # PRINCIPAL | RESOURCE
    status: str
    created: datetime
    updated: datetime
    resource_type: str | None = None
    status_message: str | None = None

    def set_status(self, status: str, now: datetime, message: str | None = None) -> None:
        self.status = status
        self.updated = now
        self.status_message = message


@dataclass
class _PermissionLink:
    permission: ManagedPermission
    created: datetime
    updated: datetime


@dataclass
class _Share:
    arn: str
    name: str
    owner: str
    region: str
    allow_external: bool
    tags: list[dict[str, str]]
    created: datetime
    updated: datetime
    configuration: dict[str, Any] | None = None
    status: str = ACTIVE
    resources: dict[str, _Association] = field(default_factory=dict)
    principals: dict[str, _Association] = field(default_factory=dict)
    permissions: dict[str, _PermissionLink] = field(default_factory=dict)  # resource type -> permission


@dataclass
class _Invitation:
    arn: str
    share_arn: str
    sender: str
    receiver: str
    region: str
    created: datetime
    status: str = PENDING
    answered: datetime | None = None
    withdrawn: bool = False  # the owner removed the principal / deleted the share while it was pending


@dataclass
class _Ctx:
    account: str
    region: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    events: list[dict] = field(default_factory=list)
    resource_types: dict[str, str] = field(default_factory=dict)  # pre-checked resource ARN -> type


# --------------------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------------------


def _bad_body(message: str) -> RamError:
    return RamError("InvalidParameterException", message)


def _invalid_token() -> RamError:
    return RamError(
        "InvalidNextTokenException",
        "The specified value for NextToken is not valid. You must specify a value you received in the NextToken "
        "response of a previous call to this operation.",
    )


_PAGES = wire.Pages(next_member="nextToken", limit_member="maxResults", invalid_token=_invalid_token)


def _parse_arn(arn: str) -> re.Match[str]:
    match = _ARN_RE.match(arn) if isinstance(arn, str) else None
    if match is None:
        raise RamError("MalformedArnException", f"The specified ARN {arn} is not valid.")
    return match


# --------------------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------------------


_ANSWERED_ERRORS = {
    "ACCEPTED": ("ResourceShareInvitationAlreadyAcceptedException", "has already been accepted."),
    "REJECTED": ("ResourceShareInvitationAlreadyRejectedException", "has already been rejected."),
    "EXPIRED": ("ResourceShareInvitationExpiredException", "has expired."),
}


def _raise_if_answered(invitation: _Invitation, statuses: tuple[str, ...]) -> None:
    """The modelled error for an invitation that is no longer pending, for the statuses the operation refuses."""
    if invitation.status in statuses:
        code, text = _ANSWERED_ERRORS[invitation.status]
        raise RamError(code, f"ResourceShareInvitation {invitation.arn} {text}")


class RamEmulator(wire.WireEmulator):
    """WSGI app answering AWS RAM requests; state is kept in memory, per (account, region).

    Keyword arguments: wire.Wiring's (account_for_access_key, clock, emit, page_size), settings (the emulation
    settings, pipeshare_local.settings.EmulationSettings: its ``ram`` block, read at every use; reset() restores the
    constructor's values: pending invitations expire after ram.invitation_ttl_hours) and resource_exists
    ((account, region, resource ARN) -> whether it exists).
    ``response_observer`` (optional, attribute) is called with (operation name, response dict) for every
    successful response before it is serialised; tests use it to validate responses against output shapes.
    """

    error = RamError
    label = "RAM emulator"

    def __init__(
        self,
        *,
        settings: EmulationSettings | None = None,
        resource_exists: Callable[[str, str, str], bool] | None = None,
        **wiring: Unpack[wire.Wiring],
    ) -> None:
        super().__init__(ram_service_model(), **wiring)
        self.settings = settings if settings is not None else EmulationSettings()
        self._initial_settings = self.settings.model_copy(deep=True)
        self._resource_exists = resource_exists
        self._routes: list[tuple[str, re.Pattern[str], dict[str, str], str]] = []
        for op_name in self._model.operation_names:
            http = self._model.operation_model(op_name).http
            regex, groups = wire.uri_regex(http["requestUri"].split("?", 1)[0])
            self._routes.append((http["method"].upper(), regex, groups, op_name))
        self.reset()

    # ---------------------------------------------------------------------------------------------- public API

    def reset(self) -> None:
        with self._lock:
            self._shares: dict[str, _Share] = {}
            self._invitations: dict[str, _Invitation] = {}
            self._idempotency: dict[tuple[str, str, str, str], tuple[str, dict]] = {}
            self._empty_pages = 0
            self.settings.restore(self._initial_settings)

    @property
    def _ttl(self) -> timedelta:
        """The invitation window (settings.ram.invitation_ttl_hours)."""
        return self.settings.ram.invitation_ttl

    def invitation_owner(self, invitation_arn: str) -> tuple[str, str] | None:
        """(owner account, share name) of an invitation: the ram:ShareOwnerAccountId and ram:ResourceShareName of
        requests naming it. IAM itself is the local stack's (pipeshare_local.iam), evaluated before the request
        reaches the emulator."""
        with self._lock:
            invitation = self._invitations.get(invitation_arn)
            if invitation is None:
                return None
            return invitation.sender, self._shares[invitation.share_arn].name

    def share_facts(self, share_arn: str) -> tuple[str, bool] | None:
        """(name, allowExternalPrincipals) of a share: the ram:ResourceShareName and ram:AllowsExternalPrincipals of
        requests naming it (for the local IAM, as invitation_owner)."""
        with self._lock:
            share = self._shares.get(share_arn)
            return None if share is None else (share.name, share.allow_external)

    def inject_empty_pages(self, n: int) -> None:
        """The next n paginated list calls (any operation with nextToken) answer an empty page with a nextToken.

        The token resumes exactly where the caller was, so a correct client loses nothing.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._empty_pages = n

    def snapshot(self) -> dict:
        """JSON-serialisable dump of shares and invitations (statuses as of clock())."""
        with self._lock:
            now = self._now()
            self._expire(now)
            shares = [
                {
                    "arn": s.arn,
                    "name": s.name,
                    "owner": s.owner,
                    "region": s.region,
                    "status": s.status,
                    "allowExternalPrincipals": s.allow_external,
                    "createdAt": wire.iso(s.created),
                    "tags": [dict(t) for t in s.tags],
                    "permissions": {t: link.permission.arn for t, link in s.permissions.items()},
                    "resources": [
                        {"arn": a.entity, "type": a.resource_type, "status": a.status} for a in s.resources.values()
                    ],
                    "principals": [
                        {"id": a.entity, "status": a.status, "statusMessage": a.status_message}
                        for a in s.principals.values()
                    ],
                }
                for s in self._shares.values()
            ]
            invitations = [
                {
                    "arn": i.arn,
                    "shareArn": i.share_arn,
                    "shareName": self._shares[i.share_arn].name,
                    "sender": i.sender,
                    "receiver": i.receiver,
                    "region": i.region,
                    "status": i.status,
                    "withdrawn": i.withdrawn,
                    "invitedAt": wire.iso(i.created),
                    "expiresAt": wire.iso(i.created + self._ttl),
                    "answeredAt": wire.iso(i.answered) if i.answered else None,
                }
                for i in self._invitations.values()
            ]
            return {"now": wire.iso(now), "shares": shares, "invitations": invitations}

    def grant(self, principal_account: str, resource_arn: str) -> str | None:
        """The permission ARN under which principal_account currently holds resource_arn, else None.

        Held means: an ACTIVE share owned by the resource's account (in the resource's region), the principal's
        association ASSOCIATED (invitation accepted) and the resource ASSOCIATED. The ARN is compared
        case-insensitively. When several shares grant the resource, a non-default (extended) permission wins over
        the resource type's default one (the principal holds the union); ties go to the smallest ARN.
        """
        match = _ARN_RE.match(resource_arn) if isinstance(resource_arn, str) else None
        if match is None:
            return None
        wanted = resource_arn.lower()
        found: list[ManagedPermission] = []
        with self._lock:
            for share in self._shares.values():
                if share.status != ACTIVE or share.owner != match["account"] or share.region != match["region"]:
                    continue
                if share.principals.get(principal_account, _NO_ASSOCIATION).status != ASSOCIATED:
                    continue
                for association in share.resources.values():
                    if association.status != ASSOCIATED or association.entity.lower() != wanted:
                        continue
                    link = share.permissions.get(association.resource_type or "")
                    if link is not None:
                        found.append(link.permission)
        if not found:
            return None
        return min(found, key=lambda p: (p.is_resource_type_default, p.arn)).arn

    def is_ram_request(self, environ: dict) -> bool:
        """True when the SigV4 credential scope (Authorization header or X-Amz-Credential) names service "ram"."""
        return wire.signing_service(environ) == "ram"

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        events: list[dict] = []
        try:
            op_model, labels = self._route(environ)
            signer = self._signer(environ)
            ctx = _Ctx(account=signer.account, region=signer.region)
            params = wire.read_params(op_model, environ, _bad_body, labels)
            self._validate_input(op_model, params)
            handler = getattr(self, f"_op_{op_model.name}", None)
            if handler is None:
                raise RamError(
                    "NotImplemented", f"Operation {op_model.name} is not emulated by the local RAM emulator."
                )
            self._precheck(op_model.name, ctx, params)
            with self._lock:
                ctx.now = self._now()
                self._expire(ctx.now)
                result = self._run_idempotent(op_model, ctx, params, handler)
            events = ctx.events
            self._observe(op_model.name, result)
            response = wire.success_response(op_model, result)
        except RamError as err:
            response = wire.error_response(self._model, err)
        except Exception:  # the client must get an answer; the traceback goes to the log
            logger.exception("RAM emulator failed")
            response = wire.error_response(
                self._model, RamError("ServerInternalException", "Internal error in RAM emulator.")
            )
        self._emit_all(events)
        return wire.finish(start_response, response, request_id)

    # ------------------------------------------------------------------------------------------------ plumbing

    def _route(self, environ: dict) -> tuple[OperationModel, dict[str, str]]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        for route_method, regex, groups, op_name in self._routes:
            match = regex.match(path)
            if match and route_method == method:
                labels = {groups[g]: unquote(v) for g, v in match.groupdict().items()}
                return self._model.operation_model(op_name), labels
        raise RamError("UnknownOperationException", f"No RAM operation matches {method} {path}.")

    def _validate_input(self, op_model: OperationModel, params: dict[str, Any]) -> None:
        if op_model.input_shape is None:
            return
        report = StrictParamValidator().validate(params, op_model.input_shape)
        if not report.has_errors():
            return
        message = report.generate_report()
        if any(kind == "missing required field" for kind, _, _ in report.errors):
            raise RamError("MissingRequiredParameterException", message)
        modelled = {e.name for e in op_model.error_shapes}
        if "InvalidMaxResultsException" in modelled and any(name == ".maxResults" for _, name, _ in report.errors):
            raise RamError("InvalidMaxResultsException", message)
        raise RamError("InvalidParameterException", message)

    def _run_idempotent(
        self, op_model: OperationModel, ctx: _Ctx, params: dict[str, Any], handler: Callable[[_Ctx, dict], dict]
    ) -> dict[str, Any]:
        """clientToken semantics for every operation whose input has one: replay -> the stored response;
        the same token with different parameters -> IdempotentParameterMismatchException."""
        takes_token = "clientToken" in op_model.input_shape.members
        token = params.get("clientToken") if takes_token else None
        key = (ctx.account, ctx.region, op_model.name, token or "")
        request = wire.fingerprint({k: v for k, v in params.items() if k != "clientToken"})
        if token:
            stored = self._idempotency.get(key)
            if stored is not None:
                if stored[0] != request:
                    raise RamError(
                        "IdempotentParameterMismatchException",
                        f"The client token {token} was already used with different parameters.",
                    )
                return copy.deepcopy(stored[1])
        result = handler(ctx, params)
        if "clientToken" in op_model.output_shape.members:
            result["clientToken"] = token or str(uuid.uuid4())
        if token:
            self._idempotency[key] = (request, copy.deepcopy(result))
        return result

    def _precheck(self, op_name: str, ctx: _Ctx, params: dict[str, Any]) -> None:
        """Resource ARN checks that may call out (resource_exists) — done before taking the lock."""
        if op_name not in ("CreateResourceShare", "AssociateResourceShare"):
            return
        for arn in params.get("resourceArns", []):
            match = _parse_arn(arn)
            resource_type = _RESOURCE_TYPES.get((match["service"], re.split(r"[/:]", match["resource"], maxsplit=1)[0]))
            if resource_type is None:
                raise RamError("MalformedArnException", "You cannot share the selected resource type.")
            if match["account"] != ctx.account or match["region"] != ctx.region:
                # [unverified] RAM looks the resource up in the caller's account and region.
                raise RamError("UnknownResourceException", f"The resource {arn} could not be found.")
            if self._resource_exists is not None and not self._resource_exists(ctx.account, ctx.region, arn):
                raise RamError("UnknownResourceException", f"The resource {arn} could not be found.")
            ctx.resource_types[arn] = resource_type

    def _expire(self, now: datetime) -> None:
        """Lazily move PENDING invitations past their TTL to EXPIRED. [unverified] the principal association
        becomes DISASSOCIATED (no event is emitted for expiry)."""
        for invitation in self._invitations.values():
            if invitation.status == PENDING and not invitation.withdrawn and now > invitation.created + self._ttl:
                invitation.status = EXPIRED
                association = self._shares[invitation.share_arn].principals.get(invitation.receiver)
                if association is not None and association.status == ASSOCIATING:
                    association.set_status(DISASSOCIATED, invitation.created + self._ttl, _EXPIRED_MESSAGE)

    def _paginate(self, ctx: _Ctx, op_name: str, params: dict[str, Any], items: list[Any], key: str) -> dict[str, Any]:
        scope = [op_name, ctx.account, ctx.region]
        return _PAGES.page(scope, params, items, key, self._page_size, hold=self._hold_page)

    def _hold_page(self) -> bool:
        """Whether to answer an injected empty page (inject_empty_pages)."""
        if self._empty_pages > 0:
            self._empty_pages -= 1
            return True
        return False

    def _notify(self, ctx: _Ctx, share: _Share, account: str, event: str, status: str, resource: str) -> None:
        # [unverified] what `resources` holds: settings.ram.event_resources
        resources = [resource] if self.settings.ram.event_resources == "arn" else []
        ctx.events.append(
            ram_event(
                account=account, region=share.region, time=ctx.now, resources=resources, event=event, status=status
            )
        )

    # --------------------------------------------------------------------------------------------- lookups

    @staticmethod
    def _is_receiver(ctx: _Ctx, invitation: _Invitation) -> bool:
        return invitation.receiver == ctx.account and invitation.region == ctx.region and not invitation.withdrawn

    def _received_invitation(self, ctx: _Ctx, arn: str) -> _Invitation:
        """The caller's invitation. [unverified] another account's invitation answers "not found" (it is not
        visible to the caller through GetResourceShareInvitations either)."""
        if _INVITATION_ARN_RE.match(arn) is None:
            raise RamError("MalformedArnException", f"The specified ARN {arn} is not a valid invitation ARN.")
        invitation = self._invitations.get(arn)
        if invitation is None or not self._is_receiver(ctx, invitation):
            raise _not_found_invitation(arn)
        return invitation

    def _share(self, ctx: _Ctx, arn: str) -> _Share:
        """A share in the caller's region, whoever owns it."""
        if _SHARE_ARN_RE.match(arn) is None:
            raise RamError("MalformedArnException", f"The specified ARN {arn} is not a valid resource share ARN.")
        share = self._shares.get(arn)
        if share is None or share.region != ctx.region:
            raise _not_found_share(arn)
        return share

    def _owned_share(self, ctx: _Ctx, arn: str, *, active: bool = True) -> _Share:
        share = self._share(ctx, arn)
        if share.owner != ctx.account:
            raise _not_found_share(arn)
        if active and share.status != ACTIVE:
            raise RamError("InvalidStateTransitionException", f"ResourceShare {arn} is in state {share.status}.")
        return share

    @staticmethod
    def _in_view(ctx: _Ctx, share: _Share, resource_owner: str) -> bool:
        """SELF: shares the caller owns; OTHER-ACCOUNTS: shares the caller is an ASSOCIATED principal of."""
        if share.region != ctx.region:
            return False
        if resource_owner == "SELF":
            return share.owner == ctx.account
        return share.owner != ctx.account and share.principals.get(ctx.account, _NO_ASSOCIATION).status == ASSOCIATED

    @staticmethod
    def _check_share_arns(arns: list[str]) -> None:
        for arn in arns:
            if _SHARE_ARN_RE.match(arn) is None:
                raise RamError("MalformedArnException", f"The specified ARN {arn} is not a valid resource share ARN.")

    @staticmethod
    def _permission(arn: str) -> ManagedPermission:
        if _PERMISSION_ARN_RE.match(arn) is None:
            raise RamError("MalformedArnException", f"The specified ARN {arn} is not a valid permission ARN.")
        permission = _PERMISSIONS_BY_ARN.get(arn)
        if permission is None:
            raise RamError("UnknownResourceException", f"Permission {arn} could not be found.")
        return permission

    @staticmethod
    def _resource_type_filter(value: str | None) -> str | None:
        """Resource type filters are case-insensitive (per the RAM docs)."""
        if value is None:
            return None
        resource_type = _RESOURCE_TYPES_BY_LOWER.get(value.lower())
        if resource_type is None:
            raise RamError("InvalidResourceTypeException", f"The resource type {value} is not valid.")
        return resource_type

    def _principals(self, ctx: _Ctx, principals: list[str], *, allow_external: bool) -> list[str]:
        """Validate principals; only 12-digit account IDs are emulated (all are outside any organization)."""
        accounts: list[str] = []
        for principal in principals:
            if _ACCOUNT_RE.match(principal):
                if principal == ctx.account:
                    raise RamError("InvalidParameterException", "The resource share owner cannot be a principal.")
                if principal not in accounts:
                    accounts.append(principal)
            elif principal.startswith("arn:") or principal.endswith(".amazonaws.com"):
                raise RamError(
                    "NotImplemented",
                    f"Principal {principal}: only AWS account IDs are emulated by the local RAM emulator.",
                )
            else:
                raise RamError(
                    "InvalidParameterException", f"Principal ID {principal} is malformed. Verify the ID and try again."
                )
        if accounts and not allow_external:
            # Without Organizations every account is external.
            raise RamError("OperationNotPermittedException", _EXTERNAL_NOT_ALLOWED)
        return accounts

    # --------------------------------------------------------------------------------------------- views

    @staticmethod
    def _share_view(share: _Share) -> dict[str, Any]:
        view: dict[str, Any] = {
            "resourceShareArn": share.arn,
            "name": share.name,
            "owningAccountId": share.owner,
            "allowExternalPrincipals": share.allow_external,
            "status": share.status,
            "tags": [dict(t) for t in share.tags],
            "creationTime": share.created,
            "lastUpdatedTime": share.updated,
            "featureSet": "STANDARD",
        }
        if share.configuration is not None:
            view["resourceShareConfiguration"] = dict(share.configuration)
        return view

    def _invitation_view(self, invitation: _Invitation) -> dict[str, Any]:
        return {
            "resourceShareInvitationArn": invitation.arn,
            "resourceShareName": self._shares[invitation.share_arn].name,
            "resourceShareArn": invitation.share_arn,
            "senderAccountId": invitation.sender,
            "receiverAccountId": invitation.receiver,
            "invitationTimestamp": invitation.created,
            "status": invitation.status,
        }

    @staticmethod
    def _association_view(share: _Share, association: _Association) -> dict[str, Any]:
        view: dict[str, Any] = {
            "resourceShareArn": share.arn,
            "resourceShareName": share.name,
            "associatedEntity": association.entity,
            "associationType": association.kind,
            "status": association.status,
            "creationTime": association.created,
            "lastUpdatedTime": association.updated,
            # No Organizations: every account principal is external to the owner's organization.
            "external": association.kind == "PRINCIPAL",
        }
        if association.status_message:
            view["statusMessage"] = association.status_message
        return view

    @staticmethod
    def _resource_view(share: _Share, association: _Association) -> dict[str, Any]:
        return {
            "arn": association.entity,
            "type": association.resource_type,
            "resourceShareArn": share.arn,
            "status": "AVAILABLE",
            "creationTime": association.created,
            "lastUpdatedTime": association.updated,
            "resourceRegionScope": "REGIONAL",
        }

    @staticmethod
    def _permission_view(
        permission: ManagedPermission, *, status: str, created: datetime, updated: datetime
    ) -> dict[str, Any]:
        return {
            "arn": permission.arn,
            "version": "1",
            "defaultVersion": True,
            "name": permission.name,
            "resourceType": permission.resource_type,
            "status": status,
            "creationTime": created,
            "lastUpdatedTime": updated,
            "isResourceTypeDefault": permission.is_resource_type_default,
            "permissionType": "AWS_MANAGED",
            "featureSet": "STANDARD",
        }

    # --------------------------------------------------------------------------------------------- mutations

    def _attach_resources(self, ctx: _Ctx, share: _Share, arns: list[str]) -> list[_Association]:
        touched = []
        for arn in arns:
            resource_type = ctx.resource_types[arn]
            association = share.resources.get(arn)
            if association is None:
                association = _Association(arn, "RESOURCE", ASSOCIATED, ctx.now, ctx.now, resource_type=resource_type)
                share.resources[arn] = association
            elif association.status != ASSOCIATED:
                association.set_status(ASSOCIATED, ctx.now)
            if resource_type not in share.permissions:
                share.permissions[resource_type] = _PermissionLink(_DEFAULT_PERMISSION[resource_type], ctx.now, ctx.now)
            touched.append(association)
        return touched

    def _invite(self, ctx: _Ctx, share: _Share, accounts: list[str]) -> list[_Association]:
        """Principal associations for accounts; new (or previously dropped) ones get a PENDING invitation."""
        touched = []
        for account in accounts:
            association = share.principals.get(account)
            if association is not None and association.status in (ASSOCIATING, ASSOCIATED):
                touched.append(association)
                continue
            if association is None:
                association = _Association(account, "PRINCIPAL", ASSOCIATING, ctx.now, ctx.now)
                share.principals[account] = association
            else:
                association.set_status(ASSOCIATING, ctx.now)
            invitation = _Invitation(
                arn=f"arn:{PARTITION}:ram:{share.region}:{share.owner}:resource-share-invitation/{uuid.uuid4()}",
                share_arn=share.arn,
                sender=share.owner,
                receiver=account,
                region=share.region,
                created=ctx.now,
            )
            self._invitations[invitation.arn] = invitation
            self._notify(ctx, share, account, INVITATION_EVENT, "pending", invitation.arn)
            self._notify(ctx, share, share.owner, ASSOCIATION_EVENT, "associating", share.arn)
            touched.append(association)
        return touched

    def _drop_principal(self, ctx: _Ctx, share: _Share, association: _Association, message: str) -> None:
        was_associated = association.status == ASSOCIATED
        association.set_status(DISASSOCIATED, ctx.now, message)
        for invitation in self._invitations.values():
            same_receiver = invitation.share_arn == share.arn and invitation.receiver == association.entity
            if same_receiver and invitation.status == PENDING:
                invitation.withdrawn = True
        self._notify(ctx, share, share.owner, ASSOCIATION_EVENT, "disassociated", share.arn)
        if was_associated:
            self._notify(ctx, share, association.entity, ASSOCIATION_EVENT, "disassociated", share.arn)

    # --------------------------------------------------------------------------------------------- operations

    def _op_CreateResourceShare(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        for unsupported in ("sources", "permissionTemplateParameters"):
            if params.get(unsupported):
                raise RamError("NotImplemented", f"{unsupported} is not emulated by the local RAM emulator.")
        allow_external = params.get("allowExternalPrincipals", True)
        accounts = self._principals(ctx, params.get("principals", []), allow_external=allow_external)
        chosen: dict[str, ManagedPermission] = {}
        for arn in params.get("permissionArns", []):
            permission = self._permission(arn)
            if chosen.get(permission.resource_type, permission) != permission:
                raise RamError(
                    "InvalidParameterException",
                    f"Only one permission per resource type is allowed ({permission.resource_type}).",
                )
            chosen[permission.resource_type] = permission
        share = _Share(
            arn=f"arn:{PARTITION}:ram:{ctx.region}:{ctx.account}:resource-share/{uuid.uuid4()}",
            name=params["name"],
            owner=ctx.account,
            region=ctx.region,
            allow_external=allow_external,
            tags=[dict(t) for t in params.get("tags", [])],
            created=ctx.now,
            updated=ctx.now,
            configuration=params.get("resourceShareConfiguration"),
        )
        share.permissions = {t: _PermissionLink(p, ctx.now, ctx.now) for t, p in chosen.items()}
        self._shares[share.arn] = share
        self._attach_resources(ctx, share, list(dict.fromkeys(params.get("resourceArns", []))))
        self._invite(ctx, share, accounts)
        return {"resourceShare": self._share_view(share)}

    def _op_GetResourceShares(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        arns = params.get("resourceShareArns")
        if arns:
            for arn in arns:
                self._share(ctx, arn)  # malformed / unknown
        permission_arn = params.get("permissionArn")
        if permission_arn is not None and _PERMISSION_ARN_RE.match(permission_arn) is None:
            raise RamError(
                "MalformedArnException", f"The specified ARN {permission_arn} is not a valid permission ARN."
            )
        items = [
            self._share_view(share)
            for share in self._shares.values()
            if self._in_view(ctx, share, params["resourceOwner"]) and _share_matches(share, params)
        ]
        return self._paginate(ctx, "GetResourceShares", params, items, "resourceShares")

    def _op_GetResourceShareInvitations(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        visible = {i.arn: i for i in self._invitations.values() if self._is_receiver(ctx, i)}
        wanted = params.get("resourceShareInvitationArns")
        if wanted:
            for arn in wanted:
                self._received_invitation(ctx, arn)  # malformed / not found
        share_arns = params.get("resourceShareArns")
        if share_arns:
            self._check_share_arns(share_arns)
        items = [
            self._invitation_view(i)
            for i in visible.values()
            if (not wanted or i.arn in wanted) and (not share_arns or i.share_arn in share_arns)
        ]
        return self._paginate(ctx, "GetResourceShareInvitations", params, items, "resourceShareInvitations")

    def _answer(self, ctx: _Ctx, params: dict[str, Any], accept: bool) -> dict[str, Any]:
        invitation = self._received_invitation(ctx, params["resourceShareInvitationArn"])
        _raise_if_answered(invitation, (ACCEPTED, REJECTED, EXPIRED))
        share = self._shares[invitation.share_arn]
        association = share.principals[invitation.receiver]
        invitation.answered = ctx.now
        if accept:
            invitation.status = ACCEPTED
            association.set_status(ASSOCIATED, ctx.now)
            status = "accepted"
        else:
            invitation.status = REJECTED
            # [unverified] the owner then sees the principal association DISASSOCIATED.
            association.set_status(DISASSOCIATED, ctx.now, _REJECTED_MESSAGE)
            status = "rejected"
        self._notify(ctx, share, invitation.receiver, INVITATION_EVENT, status, invitation.arn)
        self._notify(ctx, share, share.owner, INVITATION_EVENT, status, invitation.arn)
        self._notify(ctx, share, share.owner, ASSOCIATION_EVENT, "associated" if accept else "disassociated", share.arn)
        return {"resourceShareInvitation": self._invitation_view(invitation)}

    def _op_AcceptResourceShareInvitation(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        return self._answer(ctx, params, accept=True)

    def _op_RejectResourceShareInvitation(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        return self._answer(ctx, params, accept=False)

    def _op_ListPendingInvitationResources(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        invitation = self._received_invitation(ctx, params["resourceShareInvitationArn"])
        _raise_if_answered(invitation, (REJECTED, EXPIRED))
        # [unverified] ACCEPTED: the model lists no "already accepted" error here, so the resources are listed.
        share = self._shares[invitation.share_arn]
        items = []
        if params.get("resourceRegionScope", "ALL") != "GLOBAL":
            items = [self._resource_view(share, a) for a in share.resources.values() if a.status == ASSOCIATED]
        return self._paginate(ctx, "ListPendingInvitationResources", params, items, "resources")

    def _op_AssociateResourceShare(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("sources"):
            raise RamError("NotImplemented", "sources is not emulated by the local RAM emulator.")
        share = self._owned_share(ctx, params["resourceShareArn"])
        accounts = self._principals(ctx, params.get("principals", []), allow_external=share.allow_external)
        touched = self._attach_resources(ctx, share, list(dict.fromkeys(params.get("resourceArns", []))))
        touched += self._invite(ctx, share, accounts)
        share.updated = ctx.now
        return {"resourceShareAssociations": [self._association_view(share, a) for a in touched]}

    def _op_DisassociateResourceShare(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("sources"):
            raise RamError("NotImplemented", "sources is not emulated by the local RAM emulator.")
        share = self._owned_share(ctx, params["resourceShareArn"])
        resources, principals = [], []
        for arn in dict.fromkeys(params.get("resourceArns", [])):
            _parse_arn(arn)
            association = share.resources.get(arn)
            if association is None or association.status != ASSOCIATED:
                raise RamError("UnknownResourceException", f"The resource {arn} is not associated with {share.arn}.")
            resources.append(association)
        for principal in dict.fromkeys(params.get("principals", [])):
            association = share.principals.get(principal)
            if association is None or association.status not in (ASSOCIATING, ASSOCIATED):
                # [unverified] what RAM answers for a principal that is not associated: settings.ram
                if self.settings.ram.disassociate_unassociated == "no_op":
                    continue
                raise RamError(
                    "UnknownResourceException", f"The principal {principal} is not associated with {share.arn}."
                )
            principals.append(association)
        for association in resources:
            association.set_status(DISASSOCIATED, ctx.now)
        for association in principals:
            self._drop_principal(ctx, share, association, _WITHDRAWN_MESSAGE)
        share.updated = ctx.now
        return {"resourceShareAssociations": [self._association_view(share, a) for a in resources + principals]}

    def _op_DeleteResourceShare(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        share = self._owned_share(ctx, params["resourceShareArn"])
        share.status = DELETED
        share.updated = ctx.now
        for association in share.resources.values():
            if association.status != DISASSOCIATED:
                association.set_status(DISASSOCIATED, ctx.now, _SHARE_DELETED_MESSAGE)
        for association in share.principals.values():
            if association.status in (ASSOCIATING, ASSOCIATED):
                self._drop_principal(ctx, share, association, _SHARE_DELETED_MESSAGE)
        return {"returnValue": True}

    def _op_GetResourceShareAssociations(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        kind = params["associationType"]
        if kind == "PRINCIPAL" and params.get("resourceArn") is not None:
            raise RamError(
                "InvalidParameterException", "resourceArn cannot be specified with associationType PRINCIPAL."
            )
        if kind == "RESOURCE" and params.get("principal") is not None:
            raise RamError("InvalidParameterException", "principal cannot be specified with associationType RESOURCE.")
        share_arns = params.get("resourceShareArns")
        if share_arns:
            self._check_share_arns(share_arns)
        if params.get("resourceArn") is not None:
            _parse_arn(params["resourceArn"])
        items = [
            self._association_view(share, association)
            for share in self._shares.values()
            if share.region == ctx.region and (not share_arns or share.arn in share_arns)
            for association in self._visible_associations(ctx, share, kind)
            if _association_matches(association, params)
        ]
        return self._paginate(ctx, "GetResourceShareAssociations", params, items, "resourceShareAssociations")

    @staticmethod
    def _visible_associations(ctx: _Ctx, share: _Share, kind: str) -> list[_Association]:
        """The owner sees every association; a principal with access sees its own principal association and the
        shared resources. Sources are not emulated, so there are none."""
        if kind == "SOURCE":
            return []
        if share.owner == ctx.account:
            return list(share.principals.values() if kind == "PRINCIPAL" else share.resources.values())
        mine = share.principals.get(ctx.account, _NO_ASSOCIATION)
        if mine.status != ASSOCIATED:
            return []
        return [mine] if kind == "PRINCIPAL" else list(share.resources.values())

    def _op_ListResources(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        resource_type = self._resource_type_filter(params.get("resourceType"))
        for arn in params.get("resourceArns", []):
            _parse_arn(arn)
        share_arns = params.get("resourceShareArns")
        if share_arns:
            self._check_share_arns(share_arns)
        items = []
        if params.get("resourceRegionScope", "ALL") == "GLOBAL":
            return self._paginate(ctx, "ListResources", params, items, "resources")
        for share in self._shares.values():
            if share.status != ACTIVE or (share_arns and share.arn not in share_arns):
                continue
            if not self._in_view(ctx, share, params["resourceOwner"]) or not _principal_matches(share, params):
                continue
            items += [
                self._resource_view(share, association)
                for association in share.resources.values()
                if association.status == ASSOCIATED
                and (resource_type is None or association.resource_type == resource_type)
                and (not params.get("resourceArns") or association.entity in params["resourceArns"])
            ]
        return self._paginate(ctx, "ListResources", params, items, "resources")

    def _op_ListResourceSharePermissions(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        share = self._share(ctx, params["resourceShareArn"])
        mine = share.principals.get(ctx.account, _NO_ASSOCIATION)
        # [unverified] the owner, and principals with access or a pending invitation, may list the permissions.
        if share.owner != ctx.account and mine.status not in (ASSOCIATING, ASSOCIATED):
            raise _not_found_share(share.arn)
        items = [
            self._permission_view(link.permission, status="ASSOCIATED", created=link.created, updated=link.updated)
            for link in share.permissions.values()
        ]
        return self._paginate(ctx, "ListResourceSharePermissions", params, items, "permissions")

    def _op_AssociateResourceSharePermission(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("permissionTemplateParameters"):
            raise RamError("NotImplemented", "permissionTemplateParameters is not emulated by the local RAM emulator.")
        share = self._owned_share(ctx, params["resourceShareArn"])
        permission = self._permission(params["permissionArn"])
        if params.get("permissionVersion") not in (None, 1):
            raise RamError(
                "InvalidParameterException",
                f"Permission {permission.arn} has no version {params['permissionVersion']}.",
            )
        current = share.permissions.get(permission.resource_type)
        if current is not None and current.permission != permission and not params.get("replace", False):
            # [unverified] error code: the docs only say "the operation returns an error".
            raise RamError(
                "InvalidParameterException",
                f"ResourceShare {share.arn} already has a permission for {permission.resource_type}; "
                "set replace to true to replace it.",
            )
        if current is None or current.permission != permission:
            created = current.created if current is not None else ctx.now
            share.permissions[permission.resource_type] = _PermissionLink(permission, created, ctx.now)
            share.updated = ctx.now
        return {"returnValue": True}

    def _op_ListPermissions(self, ctx: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
        wanted_type = params.get("resourceType")
        items = []
        if params.get("permissionType", "ALL") != "CUSTOMER_MANAGED" and params.get("permissionStatus") in (
            None,
            "ATTACHABLE",
        ):
            items = [
                self._permission_view(
                    p, status="ATTACHABLE", created=_MANAGED_PERMISSION_TIME, updated=_MANAGED_PERMISSION_TIME
                )
                for p in MANAGED_PERMISSIONS
                if wanted_type is None or p.resource_type.lower() == wanted_type.lower()
            ]
        return self._paginate(ctx, "ListPermissions", params, items, "permissions")


_NO_ASSOCIATION = _Association(
    "", "PRINCIPAL", "NONE", datetime.min.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC)
)


def _association_matches(association: _Association, params: dict[str, Any]) -> bool:
    """GetResourceShareAssociations filters: principal / resourceArn (per association type) and status."""
    entity_filter = params.get("principal") if association.kind == "PRINCIPAL" else params.get("resourceArn")
    return entity_filter in (None, association.entity) and params.get("associationStatus") in (
        None,
        association.status,
    )


def _principal_matches(share: _Share, params: dict[str, Any]) -> bool:
    """ListResources principal filter. SELF: shares associated (or associating) with that principal.
    [unverified] OTHER-ACCOUNTS: the sharing (owner) account."""
    principal = params.get("principal")
    if principal is None:
        return True
    if params["resourceOwner"] == "SELF":
        return share.principals.get(principal, _NO_ASSOCIATION).status in (ASSOCIATING, ASSOCIATED)
    return principal == share.owner


def _share_matches(share: _Share, params: dict[str, Any]) -> bool:
    """GetResourceShares filters other than resourceOwner."""
    permission_arn = params.get("permissionArn")
    return (
        (not params.get("resourceShareArns") or share.arn in params["resourceShareArns"])
        and params.get("resourceShareStatus") in (None, share.status)
        and params.get("name") in (None, share.name)
        and (permission_arn is None or permission_arn in {link.permission.arn for link in share.permissions.values()})
        and params.get("permissionVersion") in (None, 1)
        and all(_tag_matches(share.tags, f) for f in params.get("tagFilters", []))
    )


def _tag_matches(tags: list[dict[str, str]], tag_filter: dict[str, Any]) -> bool:
    values = tag_filter.get("tagValues")
    return any(t.get("key") == tag_filter.get("tagKey") and (not values or t.get("value") in values) for t in tags)
