"""Translate botocore errors into pipeshare errors (the only place that knows AWS error codes)."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from pipeshare.models.errors import (
    AccessDeniedError,
    InvitationAlreadyAcceptedError,
    InvitationAlreadyRejectedError,
    InvitationExpiredError,
    InvitationNotFoundError,
    PipeshareError,
    TransientError,
    UnexpectedApiError,
)

_BY_CODE: dict[str, type[PipeshareError]] = {
    "ResourceShareInvitationAlreadyAcceptedException": InvitationAlreadyAcceptedError,
    "ResourceShareInvitationAlreadyRejectedException": InvitationAlreadyRejectedError,
    "ResourceShareInvitationExpiredException": InvitationExpiredError,
    "ResourceShareInvitationArnNotFoundException": InvitationNotFoundError,
    "AccessDeniedException": AccessDeniedError,
    "AccessDenied": AccessDeniedError,
    "OperationNotPermittedException": AccessDeniedError,
}
_TRANSIENT = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ServiceUnavailableException",
    "ServerInternalException",
    "InternalServerError",
    "InternalFailure",
}


def translate(exc: ClientError | BotoCoreError) -> PipeshareError:
    if isinstance(exc, BotoCoreError):  # connection errors, timeouts
        return TransientError(str(exc))
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _BY_CODE:
        return _BY_CODE[code](f"{code}: {message}")
    if code in _TRANSIENT or status >= 500 or status == 429:
        return TransientError(f"{code}: {message}")
    return UnexpectedApiError(code, message)
