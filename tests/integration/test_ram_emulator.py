"""The local RAM emulator, driven by real boto3 clients over HTTP (botocore's RAM model is the contract).

Every successful response the emulator builds is validated against its operation's output shape (see the
`stack` fixture); errors are asserted as the modelled exception classes botocore raises.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from pipeshare_local.ram import RamEmulator, StrictParamValidator, ram_service_model, serve
from tests.integration.emulator_helpers import Clock, client_config, output_checker

OWNER, RECEIVER, THIRD = "111111111111", "222222222222", "333333333333"
KEYS = {"AKIAOWNER00000000001": OWNER, "AKIARECEIVER00000002": RECEIVER, "AKIATHIRD00000000003": THIRD}
AKID = {account: akid for akid, account in KEYS.items()}
REGION = "us-east-1"
START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
READ_ONLY = "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"
ALLOW_EXECUTION = "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution"


def pipeline(name: str, account: str = OWNER, region: str = REGION) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:pipeline/{name}"


assert_valid_output = output_checker(ram_service_model, StrictParamValidator)


@dataclass
class Stack:
    url: str
    clock: Clock
    events: list[dict] = field(default_factory=list)
    responses: list[tuple[str, dict]] = field(default_factory=list)
    emulator: RamEmulator | None = None
    install: Callable[[RamEmulator], None] | None = None

    def build(self, **kwargs: Any) -> RamEmulator:
        emulator = RamEmulator(
            account_for_access_key=KEYS.__getitem__, clock=self.clock, emit=self.events.append, **kwargs
        )
        emulator.response_observer = lambda op, response: self.responses.append((op, response))
        self.emulator = emulator
        assert self.install is not None
        self.install(emulator)
        return emulator


def make_client(url: str, account: str, *, region: str = REGION, validate: bool = True) -> BaseClient:
    return boto3.client(
        "ram",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=AKID[account],
        aws_secret_access_key="local-secret",
        config=client_config(validate=validate),
    )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, RamEmulator]]]:
    current: dict[str, RamEmulator] = {}
    url, shutdown = serve(lambda environ, start_response: current["app"](environ, start_response))
    yield url, current
    shutdown()


@pytest.fixture(scope="module")
def clients(server: tuple[str, dict]) -> dict[str, BaseClient]:
    url, _ = server
    return {
        "owner": make_client(url, OWNER),
        "receiver": make_client(url, RECEIVER),
        "third": make_client(url, THIRD),
        "receiver_west": make_client(url, RECEIVER, region="us-west-2"),
        "receiver_raw": make_client(url, RECEIVER, validate=False),
    }


@pytest.fixture
def stack(server: tuple[str, dict]) -> Iterator[Stack]:
    url, current = server
    result = Stack(url=url, clock=Clock(START))
    result.install = lambda emulator: current.__setitem__("app", emulator)
    result.build()
    yield result
    for operation, response in result.responses:
        assert_valid_output(operation, response)


@pytest.fixture
def owner(clients: dict[str, BaseClient]) -> BaseClient:
    return clients["owner"]


@pytest.fixture
def receiver(clients: dict[str, BaseClient]) -> BaseClient:
    return clients["receiver"]


def share(owner: BaseClient, *names: str, principals: tuple[str, ...] = (RECEIVER,), **kwargs: Any) -> dict:
    return owner.create_resource_share(
        name=kwargs.pop("name", "pipelines"),
        resourceArns=[pipeline(n) for n in names],
        principals=list(principals),
        **kwargs,
    )["resourceShare"]


def invitations(client: BaseClient, **kwargs: Any) -> list[dict]:
    return client.get_resource_share_invitations(**kwargs)["resourceShareInvitations"]


def only_invitation(client: BaseClient) -> dict:
    (invitation,) = invitations(client)
    return invitation


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


# ------------------------------------------------------------------------------------------------- invitations


def test_invitation_is_visible_to_receiver_with_model_fields(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    created = share(owner, "train", name="ml-pipelines")

    # When
    response = receiver.get_resource_share_invitations()

    # Then
    assert_valid_output("GetResourceShareInvitations", response)
    (invitation,) = response["resourceShareInvitations"]
    assert invitation["resourceShareInvitationArn"].startswith(
        f"arn:aws:ram:{REGION}:{OWNER}:resource-share-invitation/"
    )
    assert invitation["resourceShareArn"] == created["resourceShareArn"]
    assert invitation["resourceShareName"] == "ml-pipelines"
    assert invitation["senderAccountId"] == OWNER
    assert invitation["receiverAccountId"] == RECEIVER
    assert invitation["status"] == "PENDING"
    assert invitation["invitationTimestamp"] == START
    assert "nextToken" not in response


def test_invitation_is_invisible_to_other_accounts(stack: Stack, owner: BaseClient, clients: dict[str, BaseClient]):
    # Given
    share(owner, "train")

    # When
    seen_by_third = invitations(clients["third"])
    seen_by_owner = invitations(owner)

    # Then
    assert seen_by_third == []
    assert seen_by_owner == []


def test_invitation_is_regional(stack: Stack, owner: BaseClient, clients: dict[str, BaseClient]):
    # Given
    share(owner, "train")

    # When
    seen_in_other_region = invitations(clients["receiver_west"])

    # Then
    assert seen_in_other_region == []


def test_create_share_emits_pending_to_receiver_and_associating_to_owner(stack: Stack, owner: BaseClient, receiver):
    # Given / When
    created = share(owner, "train")

    # Then
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    summary = [(e["account"], e["detail"], e["resources"]) for e in stack.events]
    assert summary == [
        (RECEIVER, {"event": "Resource Share Invitation", "status": "pending"}, [invitation_arn]),
        (OWNER, {"event": "Resource Share Association", "status": "associating"}, [created["resourceShareArn"]]),
    ]
    envelope = stack.events[0]
    assert envelope["version"] == "0"
    assert envelope["source"] == "aws.ram"
    assert envelope["detail-type"] == "Resource Sharing State Change"
    assert envelope["region"] == REGION
    assert envelope["time"] == "2025-06-01T12:00:00Z"
    assert len(envelope["id"]) == 36


def test_accept_emits_accepted_to_both_sides_and_associated_to_owner(stack: Stack, owner: BaseClient, receiver):
    # Given
    created = share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    stack.events.clear()
    stack.clock.advance(timedelta(minutes=5))

    # When
    receiver.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn)

    # Then
    summary = [(e["account"], e["detail"], e["resources"]) for e in stack.events]
    assert summary == [
        (RECEIVER, {"event": "Resource Share Invitation", "status": "accepted"}, [invitation_arn]),
        (OWNER, {"event": "Resource Share Invitation", "status": "accepted"}, [invitation_arn]),
        (OWNER, {"event": "Resource Share Association", "status": "associated"}, [created["resourceShareArn"]]),
    ]
    assert {e["time"] for e in stack.events} == {"2025-06-01T12:05:00Z"}


def test_reject_marks_invitation_rejected_and_emits_rejected(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    stack.events.clear()

    # When
    response = receiver.reject_resource_share_invitation(resourceShareInvitationArn=invitation_arn)

    # Then
    assert response["resourceShareInvitation"]["status"] == "REJECTED"
    assert only_invitation(receiver)["status"] == "REJECTED"
    assert [
        (e["account"], e["detail"]["status"]) for e in stack.events if e["detail"]["event"].endswith("Invitation")
    ] == [
        (RECEIVER, "rejected"),
        (OWNER, "rejected"),
    ]


def test_accept_makes_share_visible_as_other_accounts(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    created = share(owner, "train", "score")
    receiver.accept_resource_share_invitation(
        resourceShareInvitationArn=only_invitation(receiver)["resourceShareInvitationArn"]
    )

    # When
    shares = receiver.get_resource_shares(resourceOwner="OTHER-ACCOUNTS")["resourceShares"]
    resources = receiver.list_resources(resourceOwner="OTHER-ACCOUNTS", resourceType="sagemaker:Pipeline")["resources"]

    # Then
    assert [s["resourceShareArn"] for s in shares] == [created["resourceShareArn"]]
    assert shares[0]["owningAccountId"] == OWNER
    assert sorted(r["arn"] for r in resources) == [pipeline("score"), pipeline("train")]
    assert {r["type"] for r in resources} == {"sagemaker:Pipeline"}


def test_pending_share_is_not_in_other_accounts_view(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")

    # When
    shares = receiver.get_resource_shares(resourceOwner="OTHER-ACCOUNTS")["resourceShares"]
    resources = receiver.list_resources(resourceOwner="OTHER-ACCOUNTS")["resources"]

    # Then
    assert shares == []
    assert resources == []


def test_principal_association_goes_from_associating_to_associated(stack: Stack, owner: BaseClient, receiver):
    # Given
    created = share(owner, "train")

    def principal_status() -> str:
        (association,) = owner.get_resource_share_associations(
            associationType="PRINCIPAL", resourceShareArns=[created["resourceShareArn"]]
        )["resourceShareAssociations"]
        assert association["associatedEntity"] == RECEIVER
        return association["status"]

    before = principal_status()

    # When
    receiver.accept_resource_share_invitation(
        resourceShareInvitationArn=only_invitation(receiver)["resourceShareInvitationArn"]
    )

    # Then
    assert (before, principal_status()) == ("ASSOCIATING", "ASSOCIATED")


# ------------------------------------------------------------------------------------------------ answer errors


def test_repeat_accept_raises_already_accepted(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    receiver.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn)

    # When / Then
    with pytest.raises(receiver.exceptions.ResourceShareInvitationAlreadyAcceptedException) as exc:
        receiver.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_accept_after_reject_raises_already_rejected(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    receiver.reject_resource_share_invitation(resourceShareInvitationArn=invitation_arn)

    # When / Then
    with pytest.raises(receiver.exceptions.ResourceShareInvitationAlreadyRejectedException):
        receiver.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn)


def test_accept_after_expiry_raises_expired(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    stack.clock.advance(timedelta(hours=12, seconds=1))

    # When / Then
    with pytest.raises(receiver.exceptions.ResourceShareInvitationExpiredException):
        receiver.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn)
    assert only_invitation(receiver)["status"] == "EXPIRED"


def test_invitation_is_still_pending_exactly_at_ttl(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")
    stack.clock.advance(timedelta(hours=12))

    # When
    status = only_invitation(receiver)["status"]

    # Then
    assert status == "PENDING"


def test_accept_by_non_receiver_raises_arn_not_found(stack: Stack, owner: BaseClient, receiver, clients):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    third = clients["third"]

    # When / Then
    with pytest.raises(third.exceptions.ResourceShareInvitationArnNotFoundException):
        third.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn)
    assert only_invitation(receiver)["status"] == "PENDING"


def test_concurrent_accepts_succeed_exactly_once(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    outcomes: list[str] = []

    def accept() -> None:
        try:
            receiver.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn)
            outcomes.append("accepted")
        except ClientError as err:
            outcomes.append(err.response["Error"]["Code"])

    # When
    threads = [threading.Thread(target=accept) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then
    assert sorted(outcomes) == ["ResourceShareInvitationAlreadyAcceptedException"] * 5 + ["accepted"]


# ------------------------------------------------------------------------------------------------- idempotency


def test_accept_client_token_replay_returns_same_response(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    first = receiver.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn, clientToken="tok-1")
    events_after_first = len(stack.events)

    # When
    replay = receiver.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn, clientToken="tok-1")

    # Then
    assert replay["resourceShareInvitation"] == first["resourceShareInvitation"]
    assert replay["clientToken"] == "tok-1"
    assert len(stack.events) == events_after_first


def test_accept_client_token_reused_for_other_invitation_raises_mismatch(stack: Stack, owner: BaseClient, receiver):
    # Given
    share(owner, "train", name="first")
    share(owner, "score", name="second")
    first_arn, second_arn = (i["resourceShareInvitationArn"] for i in invitations(receiver))
    receiver.accept_resource_share_invitation(resourceShareInvitationArn=first_arn, clientToken="tok-1")

    # When / Then
    with pytest.raises(receiver.exceptions.IdempotentParameterMismatchException):
        receiver.accept_resource_share_invitation(resourceShareInvitationArn=second_arn, clientToken="tok-1")


def test_create_share_client_token_replay_returns_same_share(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    first = share(owner, "train", clientToken="create-1")

    # When
    again = share(owner, "train", clientToken="create-1")

    # Then
    assert again["resourceShareArn"] == first["resourceShareArn"]
    assert len(owner.get_resource_shares(resourceOwner="SELF")["resourceShares"]) == 1
    assert len(invitations(receiver)) == 1


def test_create_share_client_token_with_other_params_raises_mismatch(stack: Stack, owner: BaseClient):
    # Given
    share(owner, "train", clientToken="create-1")

    # When / Then
    with pytest.raises(owner.exceptions.IdempotentParameterMismatchException):
        share(owner, "score", clientToken="create-1")


# ------------------------------------------------------------------------------------------------- pagination


def test_invitations_paginate_with_boto3_paginator(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    created = [share(owner, f"p{i}", name=f"share-{i}")["resourceShareArn"] for i in range(7)]
    page_sizes = []

    # When
    collected = []
    for page in receiver.get_paginator("get_resource_share_invitations").paginate(PaginationConfig={"PageSize": 3}):
        page_sizes.append(len(page["resourceShareInvitations"]))
        collected += page["resourceShareInvitations"]

    # Then
    assert page_sizes == [3, 3, 1]
    assert [i["resourceShareArn"] for i in collected] == created


def test_default_page_size_applies_without_max_results(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    stack.build(page_size=2)
    for i in range(3):
        share(owner, f"p{i}", name=f"share-{i}")

    # When
    first = receiver.get_resource_share_invitations()

    # Then
    assert len(first["resourceShareInvitations"]) == 2
    assert "nextToken" in first


def test_pending_resources_paginate_with_next_token_loop(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    names = [f"pipe-{i}" for i in range(5)]
    share(owner, *names)
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]

    # When
    collected, pages, token = [], 0, None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = receiver.list_pending_invitation_resources(
            resourceShareInvitationArn=invitation_arn, maxResults=2, **kwargs
        )
        pages += 1
        collected += page["resources"]
        token = page.get("nextToken")
        if not token:
            break

    # Then
    assert pages == 3
    assert [r["arn"] for r in collected] == [pipeline(n) for n in names]
    assert {r["status"] for r in collected} == {"AVAILABLE"}


def test_injected_empty_page_carries_next_token(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")
    stack.emulator.inject_empty_pages(1)

    # When
    empty = receiver.get_resource_share_invitations()
    resumed = receiver.get_resource_share_invitations(nextToken=empty["nextToken"])

    # Then
    assert empty["resourceShareInvitations"] == []
    assert len(resumed["resourceShareInvitations"]) == 1
    assert "nextToken" not in resumed


def test_paginator_collects_everything_across_injected_empty_pages(stack: Stack, owner: BaseClient, receiver):
    # Given
    for i in range(3):
        share(owner, f"p{i}", name=f"share-{i}")
    stack.emulator.inject_empty_pages(3)

    # When
    collected = (
        receiver.get_paginator("get_resource_share_invitations")
        .paginate(PaginationConfig={"PageSize": 2})
        .build_full_result()["resourceShareInvitations"]
    )

    # Then
    assert len(collected) == 3


def test_garbage_next_token_raises_invalid_next_token(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")

    # When / Then
    with pytest.raises(receiver.exceptions.InvalidNextTokenException):
        receiver.get_resource_share_invitations(nextToken="not-a-token")


def test_next_token_from_another_query_is_rejected(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    stack.build(page_size=1)
    share(owner, "a", "b", name="first")
    share(owner, "c", name="second")
    first = receiver.get_resource_share_invitations()
    invitation_arn = first["resourceShareInvitations"][0]["resourceShareInvitationArn"]

    # When / Then
    with pytest.raises(receiver.exceptions.InvalidNextTokenException):
        receiver.list_pending_invitation_resources(
            resourceShareInvitationArn=invitation_arn, nextToken=first["nextToken"]
        )


# ------------------------------------------------------------------------------------------- pending resources


def test_pending_resources_of_rejected_invitation_raise_already_rejected(stack: Stack, owner: BaseClient, receiver):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    receiver.reject_resource_share_invitation(resourceShareInvitationArn=invitation_arn)

    # When / Then
    with pytest.raises(receiver.exceptions.ResourceShareInvitationAlreadyRejectedException):
        receiver.list_pending_invitation_resources(resourceShareInvitationArn=invitation_arn)


def test_pending_resources_of_expired_invitation_raise_expired(stack: Stack, owner: BaseClient, receiver):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    stack.clock.advance(timedelta(days=1))

    # When / Then
    with pytest.raises(receiver.exceptions.ResourceShareInvitationExpiredException):
        receiver.list_pending_invitation_resources(resourceShareInvitationArn=invitation_arn)


def test_pending_resources_are_private_to_the_receiver(stack: Stack, owner: BaseClient, receiver, clients):
    # Given
    share(owner, "train")
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]
    third = clients["third"]

    # When / Then
    with pytest.raises(third.exceptions.ResourceShareInvitationArnNotFoundException):
        third.list_pending_invitation_resources(resourceShareInvitationArn=invitation_arn)


# ------------------------------------------------------------------------------------------------- permissions


def test_share_gets_the_resource_type_default_permission(stack: Stack, owner: BaseClient):
    # Given
    created = share(owner, "train")

    # When
    permissions = owner.list_resource_share_permissions(resourceShareArn=created["resourceShareArn"])["permissions"]

    # Then
    assert [(p["arn"], p["resourceType"], p["isResourceTypeDefault"]) for p in permissions] == [
        (READ_ONLY, "sagemaker:Pipeline", True)
    ]


def test_permission_swaps_to_allow_execution_and_back(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    arn = share(owner, "train")["resourceShareArn"]

    def current() -> list[str]:
        return [p["arn"] for p in owner.list_resource_share_permissions(resourceShareArn=arn)["permissions"]]

    # When
    owner.associate_resource_share_permission(resourceShareArn=arn, permissionArn=ALLOW_EXECUTION, replace=True)
    swapped = current()
    seen_by_invitee = receiver.list_resource_share_permissions(resourceShareArn=arn)["permissions"]
    filtered = owner.get_resource_shares(resourceOwner="SELF", permissionArn=ALLOW_EXECUTION)["resourceShares"]
    owner.associate_resource_share_permission(resourceShareArn=arn, permissionArn=READ_ONLY, replace=True)

    # Then
    assert swapped == [ALLOW_EXECUTION]
    assert [p["arn"] for p in seen_by_invitee] == [ALLOW_EXECUTION]
    assert [s["resourceShareArn"] for s in filtered] == [arn]
    assert current() == [READ_ONLY]


def test_permission_swap_without_replace_is_refused(stack: Stack, owner: BaseClient):
    # Given
    arn = share(owner, "train")["resourceShareArn"]

    # When / Then
    with pytest.raises(owner.exceptions.InvalidParameterException):
        owner.associate_resource_share_permission(resourceShareArn=arn, permissionArn=ALLOW_EXECUTION)


def test_share_created_with_allow_execution_permission(stack: Stack, owner: BaseClient):
    # Given / When
    arn = share(owner, "train", permissionArns=[ALLOW_EXECUTION])["resourceShareArn"]

    # Then
    permissions = owner.list_resource_share_permissions(resourceShareArn=arn)["permissions"]
    assert [p["arn"] for p in permissions] == [ALLOW_EXECUTION]


def test_unknown_permission_raises_unknown_resource(stack: Stack, owner: BaseClient):
    # When / Then
    with pytest.raises(owner.exceptions.UnknownResourceException):
        share(owner, "train", permissionArns=["arn:aws:ram::aws:permission/AWSRAMNoSuchPermission"])


def test_list_permissions_for_sagemaker_pipeline(stack: Stack, owner: BaseClient):
    # When
    permissions = owner.list_permissions(resourceType="sagemaker:pipeline")["permissions"]

    # Then
    assert {(p["arn"], p["isResourceTypeDefault"]) for p in permissions} == {
        (READ_ONLY, True),
        (ALLOW_EXECUTION, False),
    }


# ------------------------------------------------------------------------------------------ share validation


def test_unsupported_resource_type_raises_malformed_arn(stack: Stack, owner: BaseClient):
    # When / Then
    with pytest.raises(owner.exceptions.MalformedArnException) as exc:
        owner.create_resource_share(name="s", resourceArns=[f"arn:aws:s3:::bucket-{OWNER}"])
    assert "cannot share the selected resource type" in exc.value.response["Error"]["Message"]


def test_resource_of_another_account_raises_unknown_resource(stack: Stack, owner: BaseClient):
    # When / Then
    with pytest.raises(owner.exceptions.UnknownResourceException):
        owner.create_resource_share(name="s", resourceArns=[pipeline("train", account=THIRD)])


def test_missing_resource_raises_unknown_resource(stack: Stack, owner: BaseClient):
    # Given
    stack.build(resource_exists=lambda account, region, arn: arn.endswith("/exists"))

    # When / Then
    with pytest.raises(owner.exceptions.UnknownResourceException):
        owner.create_resource_share(name="s", resourceArns=[pipeline("missing")])


def test_other_supported_resource_types_are_typed_from_the_arn(stack: Stack, owner: BaseClient):
    # Given
    arns = {
        f"arn:aws:ec2:{REGION}:{OWNER}:subnet/subnet-0abc": "ec2:Subnet",
        f"arn:aws:glue:{REGION}:{OWNER}:database/sales": "glue:Database",
        f"arn:aws:license-manager:{REGION}:{OWNER}:license-configuration:lic-0123": (
            "license-manager:LicenseConfiguration"
        ),
    }
    owner.create_resource_share(name="mixed", resourceArns=list(arns))

    # When
    resources = owner.list_resources(resourceOwner="SELF")["resources"]

    # Then
    assert {r["arn"]: r["type"] for r in resources} == arns


def test_external_principal_with_external_sharing_disabled_is_not_permitted(stack: Stack, owner: BaseClient):
    # When / Then
    with pytest.raises(owner.exceptions.OperationNotPermittedException):
        share(owner, "train", allowExternalPrincipals=False)


# --------------------------------------------------------------------------------------------- input validation


def test_missing_required_parameter_raises_modelled_exception(stack: Stack, clients: dict[str, BaseClient]):
    # Given
    raw = clients["receiver_raw"]

    # When / Then
    with pytest.raises(raw.exceptions.MissingRequiredParameterException):
        raw.accept_resource_share_invitation()


@pytest.mark.parametrize("max_results", [0, 501])
def test_out_of_range_max_results_raises_invalid_max_results(stack: Stack, clients, max_results: int):
    # Given
    raw = clients["receiver_raw"]

    # When / Then
    with pytest.raises(raw.exceptions.InvalidMaxResultsException):
        raw.get_resource_share_invitations(maxResults=max_results)


def test_bad_enum_value_raises_invalid_parameter(stack: Stack, clients: dict[str, BaseClient]):
    # Given
    raw = clients["receiver_raw"]

    # When / Then
    with pytest.raises(raw.exceptions.InvalidParameterException):
        raw.get_resource_shares(resourceOwner="EVERYONE")


def test_malformed_invitation_arn_raises_malformed_arn(stack: Stack, receiver: BaseClient):
    # When / Then
    with pytest.raises(receiver.exceptions.MalformedArnException):
        receiver.accept_resource_share_invitation(resourceShareInvitationArn="not-an-arn")


def test_unknown_invitation_arn_in_filter_raises_not_found(stack: Stack, receiver: BaseClient):
    # Given
    unknown = f"arn:aws:ram:{REGION}:{OWNER}:resource-share-invitation/00000000-0000-0000-0000-000000000000"

    # When / Then
    with pytest.raises(receiver.exceptions.ResourceShareInvitationArnNotFoundException):
        receiver.get_resource_share_invitations(resourceShareInvitationArns=[unknown])


def test_unemulated_operation_raises_not_implemented(stack: Stack, owner: BaseClient):
    # When
    with pytest.raises(ClientError) as exc:
        owner.get_permission(permissionArn=READ_ONLY)

    # Then
    assert error_code(exc) == "NotImplemented"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


# ------------------------------------------------------------------------------------------ association changes


def test_associating_a_new_principal_sends_it_an_invitation(stack: Stack, owner: BaseClient, clients):
    # Given
    arn = share(owner, "train")["resourceShareArn"]

    # When
    response = owner.associate_resource_share(resourceShareArn=arn, principals=[THIRD])

    # Then
    assert [(a["associatedEntity"], a["status"]) for a in response["resourceShareAssociations"]] == [
        (THIRD, "ASSOCIATING")
    ]
    assert [i["resourceShareArn"] for i in invitations(clients["third"])] == [arn]


def test_disassociating_a_pending_principal_withdraws_its_invitation(stack: Stack, owner: BaseClient, receiver):
    # Given
    arn = share(owner, "train")["resourceShareArn"]
    invitation_arn = only_invitation(receiver)["resourceShareInvitationArn"]

    # When
    owner.disassociate_resource_share(resourceShareArn=arn, principals=[RECEIVER])

    # Then
    assert invitations(receiver) == []
    with pytest.raises(receiver.exceptions.ResourceShareInvitationArnNotFoundException):
        receiver.accept_resource_share_invitation(resourceShareInvitationArn=invitation_arn)


def test_deleting_a_share_marks_it_deleted_and_drops_pending_invitations(stack: Stack, owner: BaseClient, receiver):
    # Given
    arn = share(owner, "train")["resourceShareArn"]

    # When
    response = owner.delete_resource_share(resourceShareArn=arn)

    # Then
    assert response["returnValue"] is True
    (deleted,) = owner.get_resource_shares(resourceOwner="SELF", resourceShareArns=[arn])["resourceShares"]
    assert deleted["status"] == "DELETED"
    assert invitations(receiver) == []


def test_rejected_principal_can_be_invited_again(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    arn = share(owner, "train")["resourceShareArn"]
    receiver.reject_resource_share_invitation(
        resourceShareInvitationArn=only_invitation(receiver)["resourceShareInvitationArn"]
    )

    # When
    owner.associate_resource_share(resourceShareArn=arn, principals=[RECEIVER])

    # Then
    assert [i["status"] for i in invitations(receiver)] == ["REJECTED", "PENDING"]


# ---------------------------------------------------------------------------------------------- wire & plumbing


def test_wire_timestamps_are_epoch_seconds(stack: Stack, owner: BaseClient):
    # Given
    client = make_client(stack.url, RECEIVER)
    share(owner, "train")
    bodies: list[bytes] = []
    client.meta.events.register(
        "before-parse.ram.GetResourceShareInvitations", lambda response_dict, **_: bodies.append(response_dict["body"])
    )

    # When
    client.get_resource_share_invitations()

    # Then
    (invitation,) = json.loads(bodies[0])["resourceShareInvitations"]
    assert invitation["invitationTimestamp"] == START.timestamp()


def test_moto_account_header_overrides_the_access_key(stack: Stack, owner: BaseClient):
    # Given
    client = make_client(stack.url, THIRD)
    client.meta.events.register(
        "before-sign.ram", lambda request, **_: request.headers.__setitem__("x-moto-account-id", RECEIVER)
    )
    share(owner, "train")

    # When
    seen = invitations(client)

    # Then
    assert [i["receiverAccountId"] for i in seen] == [RECEIVER]


def test_is_ram_request_reads_the_credential_scope(stack: Stack):
    # Given
    def environ(service: str) -> dict[str, str]:
        scope = f"AKIAOWNER00000000001/20250601/{REGION}/{service}/aws4_request"
        return {"HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=abc"}

    # When / Then
    assert stack.emulator.is_ram_request(environ("ram"))
    assert not stack.emulator.is_ram_request(environ("sagemaker"))
    assert not stack.emulator.is_ram_request({})


def test_snapshot_is_json_serialisable(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")
    receiver.accept_resource_share_invitation(
        resourceShareInvitationArn=only_invitation(receiver)["resourceShareInvitationArn"]
    )

    # When
    snapshot = json.loads(json.dumps(stack.emulator.snapshot()))

    # Then
    assert [i["status"] for i in snapshot["invitations"]] == ["ACCEPTED"]
    assert [p["status"] for p in snapshot["shares"][0]["principals"]] == ["ASSOCIATED"]


def test_reset_forgets_everything(stack: Stack, owner: BaseClient, receiver: BaseClient):
    # Given
    share(owner, "train")

    # When
    stack.emulator.reset()

    # Then
    assert invitations(receiver) == []
    assert owner.get_resource_shares(resourceOwner="SELF")["resourceShares"] == []
