"""Where the trust policy comes from: template parameters, or a JSON document in SSM (Powertools Parameters, cached)."""

from __future__ import annotations

import json
from enum import Enum

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from pipeshare.adapters.aws_errors import translated
from pipeshare.config.consumer import TrustPolicySettings
from pipeshare.logic.policy import parse_policy, policy_from_parameters
from pipeshare.models.domain import TrustPolicy
from pipeshare.models.errors import PolicyInvalidError, TransientError
from pipeshare.models.types import fingerprint


class ParametersPolicySource:
    """The simple case: trusted owners and actions from template parameters (environment)."""

    def __init__(self, settings: TrustPolicySettings) -> None:
        self._settings = settings

    def load(self) -> TrustPolicy:
        return policy_from_parameters(
            trusted_owner_ids=self._settings.trusted_owner_account_ids,
            allowed_resource_types=self._settings.allowed_resource_types,
            untrusted_action=self._settings.untrusted_action,
            disallowed_resource_action=self._settings.disallowed_resource_action,
        )


class _Missing(Enum):
    PARAMETER = "no such parameter"


# Powertools raises GetParameterError inside the botocore error's handler: the botocore error is its context
@translated(returning={"ParameterNotFound": _Missing.PARAMETER}, unwrapping=(GetParameterError,))
def _get(name: str, max_age: int) -> str:
    return parameters.get_parameter(name, max_age=max_age)


class SsmPolicySource:
    """A JSON policy document in an SSM String parameter; changes apply within max_age seconds, without a redeploy."""

    def __init__(self, parameter_name: str, *, max_age: int) -> None:
        self._name = parameter_name
        self._max_age = max_age

    def load(self) -> TrustPolicy:
        source = f"ssm:{self._name}"
        try:
            raw = _get(self._name, self._max_age)
        except GetParameterError as exc:  # no AWS error under it
            raise TransientError(f"reading {source}: {exc}") from exc
        if raw is _Missing.PARAMETER:
            raise PolicyInvalidError(source, ["the parameter does not exist"], fingerprint(None))
        try:
            document = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise PolicyInvalidError(source, [f"not valid JSON: {exc}"], fingerprint(str(raw))) from None
        return parse_policy(document, source=source)
