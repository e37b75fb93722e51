"""RAM as seen by the owner account: its shares, their principals, pipelines and permissions (all pages)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated

if TYPE_CHECKING:
    from mypy_boto3_ram import RAMClient


def _pages(call: Callable[..., Mapping[str, Any]], key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = call(**kwargs, **({"nextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("nextToken")
        if not token:
            return


class RamOwnerGateway:
    """Implements ports.OwnerShareGateway."""

    def __init__(self, client: RAMClient | None = None) -> None:
        self._ram = client or boto3.client("ram")

    @translated()
    def _read(self, call: Callable[..., Mapping[str, Any]], key: str, **kwargs: Any) -> list[dict[str, Any]]:
        return list(_pages(call, key, **kwargs))

    def owned_shares(self) -> list[dict[str, Any]]:
        return self._read(
            self._ram.get_resource_shares, "resourceShares", resourceOwner="SELF", resourceShareStatus="ACTIVE"
        )

    def share_pipelines(self, share_arn: str) -> list[dict[str, Any]]:
        return self._read(
            self._ram.list_resources,
            "resources",
            resourceOwner="SELF",
            resourceShareArns=[share_arn],
            resourceType="sagemaker:Pipeline",
        )

    def share_principals(self, share_arn: str) -> list[dict[str, Any]]:
        return self._read(
            self._ram.get_resource_share_associations,
            "resourceShareAssociations",
            associationType="PRINCIPAL",
            resourceShareArns=[share_arn],
        )

    def share_permissions(self, share_arn: str) -> list[dict[str, Any]]:
        return self._read(self._ram.list_resource_share_permissions, "permissions", resourceShareArn=share_arn)
