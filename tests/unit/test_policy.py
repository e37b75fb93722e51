"""pipeshare.logic.policy: validation of the trust policy (fail closed) and the decision for one invitation."""

from __future__ import annotations

from typing import Any

import pytest

from pipeshare.logic.policy import decide, parse_policy, policy_from_parameters
from pipeshare.models.domain import Action, Invitation, PendingResource, ShareStatus, TrustPolicy
from pipeshare.models.errors import PolicyInvalidError
from pipeshare.models.types import fingerprint
from tests.fakes import OWNER, STRANGER, raw_invitation, raw_resource

pytestmark = pytest.mark.usefixtures("socket_disabled")

OTHER_OWNER = "444444444444"


def valid_document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": 1,
        "untrusted_action": "hold",
        "disallowed_resource_action": "hold",
        "owners": [{"account_id": OWNER, "allowed_resource_types": ["sagemaker:Pipeline"], "description": "ml"}],
    }
    document.update(overrides)
    return document


def make_policy(**overrides: Any) -> TrustPolicy:
    return parse_policy(valid_document(**overrides), source="test")


def invitation(sender: str = OWNER) -> Invitation:
    return Invitation.model_validate(raw_invitation("churn", sender=sender))


def resources(*types: str, owner: str = OWNER) -> list[PendingResource]:
    return [
        PendingResource.model_validate(raw_resource(f"r{i}", owner=owner, resource_type=t)) for i, t in enumerate(types)
    ]


def policy_errors(document: Any) -> list[str]:
    with pytest.raises(PolicyInvalidError) as info:
        parse_policy(document, source="ssm:/pipeshare/policy")
    return info.value.errors


# ------------------------------------------------------------------------------------------------------ parse_policy


def test_parse_policy_accepts_a_valid_document() -> None:
    # Given a complete, valid document
    document = valid_document(untrusted_action="reject", disallowed_resource_action="reject")

    # When it is parsed
    policy = parse_policy(document, source="ssm:/pipeshare/policy")

    # Then every value is carried over, with the source and the document's fingerprint
    assert policy.untrusted_action == Action.REJECT
    assert policy.disallowed_resource_action == Action.REJECT
    assert [(o.account_id, o.allowed_resource_types, o.description) for o in policy.owners] == [
        (OWNER, ["sagemaker:Pipeline"], "ml")
    ]
    assert policy.source == "ssm:/pipeshare/policy"
    assert policy.fingerprint == fingerprint(document)


def test_parse_policy_defaults_to_hold_and_pipelines_only() -> None:
    # Given a minimal document: one owner, nothing else
    document = {"version": 1, "owners": [{"account_id": OWNER}]}

    # When it is parsed
    policy = parse_policy(document, source="test")

    # Then the safe defaults apply
    assert policy.untrusted_action == Action.HOLD
    assert policy.disallowed_resource_action == Action.HOLD
    assert policy.owners[0].allowed_resource_types == ["sagemaker:Pipeline"]


def test_parse_policy_empty_owner_list_is_valid_and_trusts_nobody() -> None:
    # Given a policy listing no owners
    policy = make_policy(owners=[])

    # When an invitation from the usual owner is decided
    decision = decide(invitation(OWNER), resources("sagemaker:Pipeline"), policy)

    # Then it is valid but nobody is trusted
    assert policy.owners == []
    assert decision.rule == "untrusted-owner"
    assert decision.action == Action.HOLD


@pytest.mark.parametrize("document", [[], "policy", None, 1, [valid_document()]], ids=repr)
def test_parse_policy_rejects_a_document_that_is_not_an_object(document: Any) -> None:
    # Given / When / Then: anything but a JSON object fails closed with one clear error
    assert policy_errors(document) == ["the policy must be a JSON object"]


@pytest.mark.parametrize(
    "account_id", ["11111111111", "1111111111111", "11111111111a", "abcdefghijkl", "", 111111111111]
)
def test_parse_policy_rejects_a_bad_account_id(account_id: Any) -> None:
    # Given an owner whose account id is not 12 digits
    document = valid_document(owners=[{"account_id": account_id}])

    # When / Then the error names the owner's account_id
    errors = policy_errors(document)
    assert len(errors) == 1
    assert errors[0].startswith("owners.0.account_id:")


@pytest.mark.parametrize("key", ["untrusted_action", "disallowed_resource_action"])
@pytest.mark.parametrize("value", ["accept", "HOLD", "", "ignore"])
def test_parse_policy_rejects_an_unknown_action(key: str, value: str) -> None:
    # Given an action that is not hold / reject (accept is never a valid fallback)
    document = valid_document(**{key: value})

    # When / Then the error names the field
    errors = policy_errors(document)
    assert len(errors) == 1
    assert errors[0].startswith(f"{key}:")


def test_parse_policy_rejects_an_unknown_resource_type() -> None:
    # Given a well-formed but unknown resource type
    document = valid_document(owners=[{"account_id": OWNER, "allowed_resource_types": ["sagemaker:Pipelines"]}])

    # When / Then it is refused by name
    assert policy_errors(document) == [
        f"owners[{OWNER}].allowed_resource_types: unknown resource type 'sagemaker:Pipelines'"
    ]


def test_parse_policy_rejects_a_malformed_resource_type() -> None:
    # Given a resource type that is not service:Type
    document = valid_document(owners=[{"account_id": OWNER, "allowed_resource_types": ["*"]}])

    # When / Then the type's pattern is enforced
    errors = policy_errors(document)
    assert len(errors) == 1
    assert errors[0].startswith("owners.0.allowed_resource_types.0:")


def test_parse_policy_rejects_an_owner_with_no_allowed_type() -> None:
    # Given an owner whose list of allowed types is empty
    document = valid_document(owners=[{"account_id": OWNER, "allowed_resource_types": []}])

    # When / Then
    errors = policy_errors(document)
    assert len(errors) == 1
    assert errors[0].startswith("owners.0.allowed_resource_types:")


def test_parse_policy_rejects_a_duplicate_owner() -> None:
    # Given the same owner twice
    document = valid_document(owners=[{"account_id": OWNER}, {"account_id": OWNER}])

    # When / Then
    assert policy_errors(document) == [f"owners: account {OWNER} is listed twice"]


@pytest.mark.parametrize(
    ("document", "location"),
    [
        (valid_document(trust_everyone=True), "trust_everyone"),
        (valid_document(owners=[{"account_id": OWNER, "allowed_types": ["sagemaker:Pipeline"]}]), "owners.0"),
    ],
    ids=["top-level", "owner"],
)
def test_parse_policy_rejects_extra_keys(document: dict[str, Any], location: str) -> None:
    # Given a key the schema does not know (a typo must not be silently ignored)
    # When / Then
    errors = policy_errors(document)
    assert any(e.startswith(location) and "Extra inputs are not permitted" in e for e in errors), errors


@pytest.mark.parametrize("version", [2, 0, "1", "v1", None])
def test_parse_policy_rejects_a_wrong_version(version: Any) -> None:
    # Given a version other than 1
    document = valid_document(version=version)

    # When / Then
    errors = policy_errors(document)
    assert len(errors) == 1
    assert errors[0].startswith("version:")


def test_parse_policy_reports_every_problem_at_once() -> None:
    # Given a document with three independent problems
    document = valid_document(version=2, untrusted_action="accept", owners=[{"account_id": "1"}])

    # When / Then all three are reported
    errors = policy_errors(document)
    assert sorted(e.split(":")[0] for e in errors) == ["owners.0.account_id", "untrusted_action", "version"]


def test_parse_policy_error_carries_source_and_fingerprint() -> None:
    # Given an invalid document
    document = valid_document(version=2)

    # When it is parsed
    with pytest.raises(PolicyInvalidError) as info:
        parse_policy(document, source="ssm:/pipeshare/policy")

    # Then the error identifies where it came from and which document it was
    assert info.value.source == "ssm:/pipeshare/policy"
    assert info.value.fingerprint == fingerprint(document)
    assert "ssm:/pipeshare/policy" in str(info.value)


# ------------------------------------------------------------------------------------------------------- fingerprint


def test_fingerprint_ignores_key_order() -> None:
    # Given the same document written with its keys in two orders
    first = {"version": 1, "owners": [{"account_id": OWNER, "allowed_resource_types": ["sagemaker:Pipeline"]}]}
    second = {"owners": [{"allowed_resource_types": ["sagemaker:Pipeline"], "account_id": OWNER}], "version": 1}

    # When / Then the fingerprints are equal, short and hex
    assert fingerprint(first) == fingerprint(second)
    assert len(fingerprint(first)) == 16
    int(fingerprint(first), 16)


def test_fingerprint_changes_with_content() -> None:
    # Given two documents that differ in one trusted owner
    first = valid_document()
    second = valid_document(owners=[{"account_id": OTHER_OWNER}])

    # When / Then
    assert fingerprint(first) != fingerprint(second)


def test_fingerprint_is_stable_across_parses() -> None:
    # Given one document parsed twice
    # When / Then the policy fingerprint is the same both times
    assert make_policy().fingerprint == make_policy().fingerprint == fingerprint(valid_document())


# -------------------------------------------------------------------------------------------- policy_from_parameters


def test_policy_from_parameters_splits_comma_lists_with_spaces_and_empties() -> None:
    # Given comma lists with spaces and empty items (as a hand-edited parameter may have)
    # When
    policy = policy_from_parameters(
        trusted_owner_ids=f" {OWNER} ,, {OTHER_OWNER},",
        allowed_resource_types="sagemaker:Pipeline , ,glue:Database",
        untrusted_action="reject",
        disallowed_resource_action="hold",
    )

    # Then every owner gets every type, and the actions are kept
    assert [o.account_id for o in policy.owners] == [OWNER, OTHER_OWNER]
    assert all(o.allowed_resource_types == ["sagemaker:Pipeline", "glue:Database"] for o in policy.owners)
    assert policy.untrusted_action == Action.REJECT
    assert policy.disallowed_resource_action == Action.HOLD
    assert policy.source == "parameters"


def test_policy_from_parameters_empty_trusted_list_trusts_nobody() -> None:
    # Given no trusted owner (the template's default)
    # When
    policy = policy_from_parameters(
        trusted_owner_ids="",
        allowed_resource_types="sagemaker:Pipeline",
        untrusted_action="hold",
        disallowed_resource_action="hold",
    )

    # Then the policy is valid and owns nobody
    assert policy.owners == []
    assert policy.owner(OWNER) is None


def test_policy_from_parameters_invalid_action_fails_closed() -> None:
    # Given an action the template would refuse
    # When / Then
    with pytest.raises(PolicyInvalidError) as info:
        policy_from_parameters(
            trusted_owner_ids=OWNER,
            allowed_resource_types="sagemaker:Pipeline",
            untrusted_action="accept",
            disallowed_resource_action="hold",
        )
    assert info.value.source == "parameters"


# ------------------------------------------------------------------------------------------------------------ decide


def test_decide_trusted_owner_with_allowed_types_is_accepted() -> None:
    # Given a trusted owner sharing two pipelines
    # When
    decision = decide(invitation(OWNER), resources("sagemaker:Pipeline", "sagemaker:Pipeline"), make_policy())

    # Then
    assert (decision.action, decision.status, decision.rule) == (Action.ACCEPT, ShareStatus.ACCEPTED, "trusted-owner")
    assert "2 resource(s)" in decision.reason


@pytest.mark.parametrize(
    ("untrusted_action", "action", "status"),
    [("hold", Action.HOLD, ShareStatus.HELD), ("reject", Action.REJECT, ShareStatus.REJECTED)],
)
def test_decide_untrusted_owner_follows_untrusted_action(
    untrusted_action: str, action: Action, status: ShareStatus
) -> None:
    # Given a policy that does not trust the sender (and the opposite disallowed_resource_action)
    policy = make_policy(
        untrusted_action=untrusted_action,
        disallowed_resource_action="reject" if untrusted_action == "hold" else "hold",
    )

    # When
    decision = decide(invitation(STRANGER), resources("sagemaker:Pipeline", owner=STRANGER), policy)

    # Then
    assert (decision.action, decision.status, decision.rule) == (action, status, "untrusted-owner")
    assert STRANGER in decision.reason


@pytest.mark.parametrize(
    ("disallowed_action", "action", "status"),
    [("hold", Action.HOLD, ShareStatus.HELD), ("reject", Action.REJECT, ShareStatus.REJECTED)],
)
def test_decide_trusted_owner_with_a_disallowed_type_follows_disallowed_resource_action(
    disallowed_action: str, action: Action, status: ShareStatus
) -> None:
    # Given a trusted owner sharing a pipeline and a subnet in one invitation
    policy = make_policy(
        disallowed_resource_action=disallowed_action,
        untrusted_action="reject" if disallowed_action == "hold" else "hold",
    )

    # When
    decision = decide(invitation(OWNER), resources("sagemaker:Pipeline", "ec2:Subnet"), policy)

    # Then the whole invitation is refused, and the reason names the offending type only
    assert (decision.action, decision.status, decision.rule) == (action, status, "resource-type-not-allowed")
    assert "ec2:Subnet" in decision.reason
    assert "resource type(s) ec2:Subnet not allowed" in decision.reason


def test_decide_trusted_owner_with_no_resources_is_held() -> None:
    # Given a trusted owner and an invitation listing nothing, under a reject policy
    policy = make_policy(untrusted_action="reject", disallowed_resource_action="reject")

    # When
    decision = decide(invitation(OWNER), [], policy)

    # Then it is held, never accepted blind (nor rejected)
    assert (decision.action, decision.status, decision.rule) == (Action.HOLD, ShareStatus.HELD, "no-resources")


def test_decide_resource_type_match_is_case_insensitive() -> None:
    # Given a resource whose type differs in case from the policy's "sagemaker:Pipeline"
    # (built without validation: PendingResource's pattern requires a lowercase service prefix)
    resource = PendingResource.model_construct(
        arn=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/churn", type="SageMaker:pipeline"
    )

    # When
    decision = decide(invitation(OWNER), [resource], make_policy())

    # Then decide() still matches it
    assert decision.action == Action.ACCEPT


def test_decide_policy_type_in_other_case_matches() -> None:
    # Given the policy spells the type name in another case than RAM does
    policy = make_policy(owners=[{"account_id": OWNER, "allowed_resource_types": ["sagemaker:PIPELINE"]}])

    # When
    decision = decide(invitation(OWNER), resources("sagemaker:Pipeline"), policy)

    # Then
    assert decision.action == Action.ACCEPT


@pytest.mark.parametrize(
    ("sender", "resource_type", "expected"),
    [
        (OWNER, "sagemaker:Pipeline", Action.ACCEPT),
        (OWNER, "glue:Database", Action.REJECT),
        (OTHER_OWNER, "glue:Database", Action.ACCEPT),
        (OTHER_OWNER, "sagemaker:Pipeline", Action.REJECT),
    ],
)
def test_decide_uses_the_allowed_types_of_the_sending_owner(sender: str, resource_type: str, expected: Action) -> None:
    # Given two owners trusted for different resource types
    policy = make_policy(
        disallowed_resource_action="reject",
        owners=[
            {"account_id": OWNER, "allowed_resource_types": ["sagemaker:Pipeline"]},
            {"account_id": OTHER_OWNER, "allowed_resource_types": ["glue:Database"]},
        ],
    )

    # When
    decision = decide(invitation(sender), resources(resource_type, owner=sender), policy)

    # Then only the sender's own list counts
    assert decision.action == expected
