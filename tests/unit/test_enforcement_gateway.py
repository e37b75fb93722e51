"""The enforcement gateway's RAM side, offline (botocore Stubber: every request is validated against the botocore
model and compared with what the test expects):
- remove_principal takes one consumer off one share (DisassociateResourceShare, principals only), one client token per
  (share, consumer, month); UnknownResourceException means the consumer was not associated any more;
- grant_read_only finds the owner's read-only share for the consumer by name *and* permission, creates it when absent
  (CreateResourceShare with the read-only permission, a (consumer, month) token, tags), or associates only what it
  lacks; a token reused this month with other pipelines (IdempotentParameterMismatchException) completes the share;
- malformed input is an InvalidEventError before any call; AWS errors are translated."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pipeshare.adapters.enforcement import AwsEnforcementGateway, client_token, read_only_share_name
from pipeshare.models.errors import AccessDeniedError, InvalidEventError, TransientError, UnexpectedApiError

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "444444444444"
MONTH, NEXT_MONTH = "2026-05", "2026-06"
RUN_SHARE = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/run-0001"
READ_SHARE = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/read-0002"
NEWER_READ_SHARE = f"arn:aws:ram:us-east-1:{OWNER}:resource-share/read-0003"
TRAIN = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-train"
SCORE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn-score"
READ_ONLY = "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"
NAME = f"pipeshare-read-only-{CONSUMER}"
TAGS = [{"key": "pipeshare:purpose", "value": "budget-read-only"}, {"key": "pipeshare:consumer", "value": CONSUMER}]
CREATED = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def ram() -> Iterator[Stubber]:
    client = boto3.client("ram", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def gateway(ram: Stubber) -> AwsEnforcementGateway:
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    return AwsEnforcementGateway(sagemaker=sagemaker, ram=ram.client)


def lookup(ram: Stubber, shares: list[dict[str, Any]], *, name: str = NAME, permission: str = READ_ONLY) -> None:
    """GetResourceShares as grant_read_only asks it: the owner's ACTIVE shares of that name and of the read-only
    permission (the stub checks the parameters: a share of that name with another permission is never listed)."""
    expected = {"resourceOwner": "SELF", "name": name, "resourceShareStatus": "ACTIVE", "permissionArn": permission}
    ram.add_response("get_resource_shares", {"resourceShares": shares}, expected)


def share(arn: str, *, name: str = NAME, created: datetime = CREATED) -> dict[str, Any]:
    return {
        "resourceShareArn": arn,
        "name": name,
        "owningAccountId": OWNER,
        "status": "ACTIVE",
        "creationTime": created,
    }


def associations(ram: Stubber, kind: str, entities: dict[str, str], share_arn: str = READ_SHARE) -> None:
    items = [
        {"resourceShareArn": share_arn, "associatedEntity": e, "associationType": kind, "status": s}
        for e, s in entities.items()
    ]
    expected = {"associationType": kind, "resourceShareArns": [share_arn]}
    ram.add_response("get_resource_share_associations", {"resourceShareAssociations": items}, expected)


def create_request(pipelines: list[str], month: str = MONTH) -> dict[str, Any]:
    return {
        "name": NAME,
        "resourceArns": pipelines,
        "principals": [CONSUMER],
        "permissionArns": [READ_ONLY],
        "allowExternalPrincipals": True,
        "clientToken": client_token("read-only-share", CONSUMER, month),
        "tags": TAGS,
    }


# ------------------------------------------------------------------------------------------------ remove_principal


def test_remove_principal_disassociates_only_the_consumer(ram: Stubber, gateway: AwsEnforcementGateway) -> None:
    # Given RAM accepts the disassociation of exactly this consumer from this share
    expected = {
        "resourceShareArn": RUN_SHARE,
        "principals": [CONSUMER],
        "clientToken": client_token("remove-principal", RUN_SHARE, CONSUMER, MONTH),
    }
    ram.add_response("disassociate_resource_share", {"resourceShareAssociations": []}, expected)

    # When the consumer is removed
    done = gateway.remove_principal(RUN_SHARE, CONSUMER, month=MONTH)

    # Then it was done, with no resource in the request (the pipelines stay shared with the others)
    assert done is True


def test_remove_principal_token_is_the_same_within_a_month_and_new_each_month() -> None:
    # Given the token of a removal this month
    token = client_token("remove-principal", RUN_SHARE, CONSUMER, MONTH)

    # When it is derived again, for next month, for another consumer, for another share
    # Then only the same (share, consumer, month) gives the same request
    assert token == client_token("remove-principal", RUN_SHARE, CONSUMER, MONTH)
    assert token != client_token("remove-principal", RUN_SHARE, CONSUMER, NEXT_MONTH)
    assert token != client_token("remove-principal", RUN_SHARE, OTHER, MONTH)
    assert token != client_token("remove-principal", READ_SHARE, CONSUMER, MONTH)


def test_remove_principal_of_a_consumer_not_associated_is_false(ram: Stubber, gateway: AwsEnforcementGateway) -> None:
    # Given RAM knows no such association
    ram.add_client_error("disassociate_resource_share", "UnknownResourceException", "not associated", 400)

    # When the consumer is removed
    done = gateway.remove_principal(RUN_SHARE, CONSUMER, month=NEXT_MONTH)

    # Then it was not associated any more
    assert done is False


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("AccessDeniedException", 403, AccessDeniedError),
        ("ThrottlingException", 429, TransientError),
        ("InvalidStateTransitionException", 400, UnexpectedApiError),
        ("IdempotentParameterMismatchException", 400, UnexpectedApiError),
    ],
)
def test_remove_principal_translates_other_errors(
    ram: Stubber, gateway: AwsEnforcementGateway, code: str, status: int, error: type[Exception]
) -> None:
    # Given RAM refuses the disassociation
    ram.add_client_error("disassociate_resource_share", code, "refused", status)

    # When the consumer is removed / Then the pipeshare error says why
    with pytest.raises(error):
        gateway.remove_principal(RUN_SHARE, CONSUMER, month=MONTH)


@pytest.mark.parametrize(
    ("share_arn", "principal", "month"),
    [
        ("not-an-arn", CONSUMER, MONTH),
        (TRAIN, CONSUMER, MONTH),
        (RUN_SHARE, "22222222222", MONTH),
        (RUN_SHARE, f"arn:aws:organizations::{OWNER}:organization/o-abcdefghij", MONTH),
        (RUN_SHARE, CONSUMER, "2026-13"),
        (RUN_SHARE, CONSUMER, "May 2026"),
        (RUN_SHARE, None, MONTH),
    ],
)
def test_remove_principal_refuses_malformed_input_without_calling_ram(
    gateway: AwsEnforcementGateway, share_arn: str, principal: Any, month: str
) -> None:
    # Given no RAM response is stubbed (any call would fail the test)
    # When the input is malformed / Then a structured error is raised, nothing is sent
    with pytest.raises(InvalidEventError):
        gateway.remove_principal(share_arn, principal, month=month)


# ------------------------------------------------------------------------------------------------ grant_read_only


def test_grant_read_only_creates_the_share_when_absent(ram: Stubber, gateway: AwsEnforcementGateway) -> None:
    # Given no read-only share for the consumer, and RAM creating one
    lookup(ram, [])
    ram.add_response(
        "create_resource_share",
        {"resourceShare": share(READ_SHARE)},
        create_request([SCORE, TRAIN]),
    )

    # When read-only access is granted for two pipelines (one given twice, out of order)
    arn = gateway.grant_read_only(CONSUMER, [TRAIN, SCORE, TRAIN], month=MONTH)

    # Then the new share is returned: read-only permission, sorted pipelines, the consumer, tags, the month's token
    assert arn == READ_SHARE


def test_grant_read_only_on_a_complete_share_writes_nothing(ram: Stubber, gateway: AwsEnforcementGateway) -> None:
    # Given the consumer's read-only share already holds the pipeline and the consumer (invitation pending)
    lookup(ram, [share(READ_SHARE)])
    associations(ram, "RESOURCE", {TRAIN: "ASSOCIATED"})
    associations(ram, "PRINCIPAL", {CONSUMER: "ASSOCIATING"})

    # When read-only access is granted again (next month)
    arn = gateway.grant_read_only(CONSUMER, [TRAIN], month=NEXT_MONTH)

    # Then the same share is returned and nothing is created or associated (no stub for either)
    assert arn == READ_SHARE


def test_grant_read_only_associates_only_what_the_share_lacks(ram: Stubber, gateway: AwsEnforcementGateway) -> None:
    # Given two read-only shares of that name (the oldest is used), which lacks one pipeline and the consumer (it
    # rejected the invitation); the other pipeline is associated under another case
    lookup(ram, [share(NEWER_READ_SHARE, created=datetime(2026, 5, 2, tzinfo=UTC)), share(READ_SHARE)])
    associations(ram, "RESOURCE", {TRAIN.upper().replace("ARN:AWS:SAGEMAKER", "arn:aws:sagemaker"): "ASSOCIATED"})
    associations(ram, "PRINCIPAL", {CONSUMER: "DISASSOCIATED"})
    token = client_token("read-only-complete", READ_SHARE, CONSUMER, MONTH, "True", SCORE)
    expected = {"resourceShareArn": READ_SHARE, "resourceArns": [SCORE], "principals": [CONSUMER], "clientToken": token}
    ram.add_response("associate_resource_share", {"resourceShareAssociations": []}, expected)

    # When read-only access is granted for both pipelines
    arn = gateway.grant_read_only(CONSUMER, [TRAIN, SCORE], month=MONTH)

    # Then only the missing pipeline and the consumer are associated, to the oldest share
    assert arn == READ_SHARE


def test_grant_read_only_after_a_create_with_other_pipelines_this_month_completes_the_share(
    ram: Stubber, gateway: AwsEnforcementGateway
) -> None:
    # Given the lookup does not see the share yet, this month's create was made with one pipeline only
    lookup(ram, [])
    ram.add_client_error(
        "create_resource_share",
        "IdempotentParameterMismatchException",
        "token reused",
        400,
        expected_params=create_request([SCORE, TRAIN]),
    )
    # and the share is found on the second look
    lookup(ram, [share(READ_SHARE)])
    associations(ram, "RESOURCE", {TRAIN: "ASSOCIATED"})
    associations(ram, "PRINCIPAL", {CONSUMER: "ASSOCIATED"})
    token = client_token("read-only-complete", READ_SHARE, CONSUMER, MONTH, "False", SCORE)
    expected = {"resourceShareArn": READ_SHARE, "resourceArns": [SCORE], "clientToken": token}
    ram.add_response("associate_resource_share", {"resourceShareAssociations": []}, expected)

    # When read-only access is granted for both pipelines
    arn = gateway.grant_read_only(CONSUMER, [TRAIN, SCORE], month=MONTH)

    # Then the existing share is completed (no second share)
    assert arn == READ_SHARE


def test_grant_read_only_when_the_share_of_the_mismatch_is_not_visible_is_transient(
    ram: Stubber, gateway: AwsEnforcementGateway
) -> None:
    # Given this month's token was used with other pipelines, and the share is not visible (RAM lags, aws-facts §2.5)
    lookup(ram, [])
    ram.add_client_error("create_resource_share", "IdempotentParameterMismatchException", "token reused", 400)
    lookup(ram, [])

    # When read-only access is granted / Then a transient error asks for a retry, and no other share is created
    with pytest.raises(TransientError):
        gateway.grant_read_only(CONSUMER, [TRAIN], month=MONTH)


def test_grant_read_only_never_uses_a_share_of_another_name(ram: Stubber, gateway: AwsEnforcementGateway) -> None:
    # Given RAM lists a share of another name (the name filter is RAM's; the adapter checks it too)
    lookup(ram, [share(RUN_SHARE, name="pipeshare-pipelines")])
    ram.add_response("create_resource_share", {"resourceShare": share(READ_SHARE)}, create_request([TRAIN]))

    # When read-only access is granted
    arn = gateway.grant_read_only(CONSUMER, [TRAIN], month=MONTH)

    # Then a read-only share is created rather than using the other one
    assert arn == READ_SHARE


def test_grant_read_only_uses_the_pipelines_partition(ram: Stubber, gateway: AwsEnforcementGateway) -> None:
    # Given a pipeline in AWS GovCloud (US)
    pipeline = f"arn:aws-us-gov:sagemaker:us-gov-west-1:{OWNER}:pipeline/churn-train"
    permission = "arn:aws-us-gov:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"
    lookup(ram, [share(READ_SHARE)], permission=permission)
    associations(ram, "RESOURCE", {pipeline: "ASSOCIATED"})
    associations(ram, "PRINCIPAL", {CONSUMER: "ASSOCIATED"})

    # When read-only access is granted / Then the permission looked for is that partition's
    assert gateway.grant_read_only(CONSUMER, [pipeline], month=MONTH) == READ_SHARE


def test_grant_read_only_translates_errors(ram: Stubber, gateway: AwsEnforcementGateway) -> None:
    # Given IAM refuses the create
    lookup(ram, [])
    ram.add_client_error("create_resource_share", "AccessDeniedException", "denied", 403)

    # When read-only access is granted / Then the error is a pipeshare error
    with pytest.raises(AccessDeniedError):
        gateway.grant_read_only(CONSUMER, [TRAIN], month=MONTH)


@pytest.mark.parametrize(
    ("principal", "pipelines", "month"),
    [
        ("2222", [TRAIN], MONTH),
        (CONSUMER, [], MONTH),
        (CONSUMER, TRAIN, MONTH),
        (CONSUMER, [RUN_SHARE], MONTH),
        (CONSUMER, [TRAIN, "arn:aws:s3:::bucket"], MONTH),
        (CONSUMER, [TRAIN], "2026-5"),
    ],
)
def test_grant_read_only_refuses_malformed_input_without_calling_ram(
    gateway: AwsEnforcementGateway, principal: str, pipelines: Any, month: str
) -> None:
    # Given no RAM response is stubbed / When the input is malformed / Then a structured error, nothing sent
    with pytest.raises(InvalidEventError):
        gateway.grant_read_only(principal, pipelines, month=month)


def test_the_read_only_share_name_is_per_consumer() -> None:
    # Given two consumers / When their share names are derived / Then each has its own
    assert read_only_share_name(CONSUMER) == NAME
    assert read_only_share_name(OTHER) != NAME


def test_enforcement_gateway_builds_its_clients_only_when_it_acts(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given boto3.client counted (the budget watcher builds a gateway for every invocation; most enforce nothing)
    built: list[str] = []
    real = boto3.client

    def counted(service: str, *args: Any, **kwargs: Any) -> Any:
        built.append(service)
        return real(service, *args, region_name="us-east-1")

    monkeypatch.setattr(boto3, "client", counted)

    # When a gateway is made, then its RAM side is used
    gateway = AwsEnforcementGateway()
    assert built == []
    with Stubber(gateway._ram) as stub:
        stub.add_response("disassociate_resource_share", {"resourceShareAssociations": []})
        gateway.remove_principal(RUN_SHARE, CONSUMER, month=MONTH)

    # Then only the RAM client was built, once
    assert built == ["ram"]
