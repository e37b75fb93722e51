"""RAM invitations as seen by the receiving account, through boto3."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated

if TYPE_CHECKING:
    from mypy_boto3_ram import RAMClient


class RamInvitationGateway:
    """Implements ports.InvitationGateway. Every list is read to its last page (nextToken), empty pages included."""

    def __init__(self, client: RAMClient | None = None) -> None:
        self._ram = client or boto3.client("ram")

    def get_invitations(self, arns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"resourceShareInvitationArns": list(arns)} if arns else {}
        with translated():
            paginator = self._ram.get_paginator("get_resource_share_invitations")
            pages = paginator.paginate(**kwargs)
            return [dict(invitation) for page in pages for invitation in page.get("resourceShareInvitations", [])]

    def list_pending_resources(self, invitation_arn: str) -> list[dict[str, Any]]:
        resources: list[dict[str, Any]] = []
        token: str | None = None
        with translated():
            while True:
                kwargs: dict[str, Any] = {"resourceShareInvitationArn": invitation_arn}
                if token:
                    kwargs["nextToken"] = token
                page = self._ram.list_pending_invitation_resources(**kwargs)
                resources.extend(dict(resource) for resource in page.get("resources", []))
                token = page.get("nextToken")
                if not token:
                    return resources

    def list_shared_resources(self) -> list[dict[str, Any]]:
        """Implements ports.SharedResourceGateway: ListResources with resourceOwner OTHER-ACCOUNTS (what accepted
        shares carry now), every page (its paginator follows nextToken through empty pages)."""
        with translated():
            paginator = self._ram.get_paginator("list_resources")
            pages = paginator.paginate(resourceOwner="OTHER-ACCOUNTS")
            return [dict(resource) for page in pages for resource in page.get("resources", [])]

    @translated()
    def accept(self, invitation_arn: str, client_token: str) -> None:
        self._ram.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn, clientToken=client_token)

    @translated()
    def reject(self, invitation_arn: str, client_token: str) -> None:
        self._ram.reject_resource_share_invitation(resourceShareInvitationArn=invitation_arn, clientToken=client_token)
