"""Translate botocore errors into pipeshare errors (the only place that knows AWS error codes).

Adapters wrap their AWS calls in `translated(...)`, as a decorator or as a context manager:

    @translated(returning={"ConflictException": False})   # the execution had already ended
    def stop_execution(self, execution_arn: str) -> bool: ...

    with translated(raising={"ResourceNotFound": lambda error: ExecutionNotFoundError(...)}):
        page = self._sagemaker.list_pipeline_execution_steps(**kwargs)

A botocore error raised inside becomes the pipeshare error `translate` gives for it (chained `from` the botocore
error); the special cases of a call site are data: `returning` maps an error code to the value the decorated
function returns instead (a decorator only: a `with` block cannot return), `raising` maps a code to a factory of the
error to raise instead. Besides plain codes, two keys name a kind of DynamoDB refusal: CONDITION_FAILED (a conditional
write refused, alone or as the only reason a transaction was cancelled) and TRANSIENT_CANCELLATION (a transaction
cancelled only for transient reasons). `unwrapping` names exception types that wrap a botocore error (Powertools'
GetParameterError): their botocore cause is translated, chained from the wrapper. Any other exception passes through
untouched.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Generic, Never, ParamSpec, TypeVar, overload

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

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

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


# ------------------------------------------------------------------------------------ DynamoDB refusals, by kind

CONDITION_FAILED: Final = "ConditionalCheckFailedException"
"""A conditional write refused: the code itself, or a transaction cancelled by conditions only."""
TRANSIENT_CANCELLATION: Final = "TransactionCanceledException:transient"
"""A transaction cancelled only for transient reasons (another transaction held an item, throttling): the same
request may succeed."""

# cancellation reasons worth trying again at once: another transaction held an item, or the table was throttled
TRANSIENT_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


def _code(exc: ClientError) -> str | None:
    return exc.response.get("Error", {}).get("Code")


def _reasons(exc: ClientError) -> list[str | None]:
    return [r.get("Code") for r in exc.response.get("CancellationReasons", [])]


def _condition_failed(exc: ClientError) -> bool:
    code = _code(exc)
    if code == CONDITION_FAILED:
        return True
    if code == "TransactionCanceledException":
        reasons = _reasons(exc)
        return "ConditionalCheckFailed" in reasons and all(
            r in ("None", "ConditionalCheckFailed", None) for r in reasons
        )
    return False


def _cancelled_transiently(exc: ClientError) -> bool:
    if _code(exc) != "TransactionCanceledException":
        return False
    codes = set(_reasons(exc)) - {"None", None}
    return bool(codes) and codes <= TRANSIENT_REASONS


_KINDS: dict[str, Callable[[ClientError], bool]] = {
    CONDITION_FAILED: _condition_failed,
    TRANSIENT_CANCELLATION: _cancelled_transiently,
}


def _matches(key: str, exc: ClientError) -> bool:
    kind = _KINDS.get(key)
    return kind(exc) if kind is not None else _code(exc) == key


# -------------------------------------------------------------------------------------------------- translated


@dataclass(frozen=True)
class ErrorDetail:
    """What a `raising` factory gets to build its error from: the code and the message (None: AWS sent none)."""

    code: str
    message: str | None


ErrorFactory = Callable[[ErrorDetail], Exception]
_AWS = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class _Return(Generic[R]):
    value: R


class Translation(Generic[R]):
    """What `translated(...)` gives: a decorator, and (without `returning`) a context manager."""

    def __init__(
        self,
        returning: Mapping[str, R],
        raising: Mapping[str, ErrorFactory],
        unwrapping: tuple[type[Exception], ...],
    ) -> None:
        both = returning.keys() & raising.keys()
        if both:
            raise ValueError(f"error codes both returned and raised: {sorted(both)}")
        self._returning = dict(returning)
        self._raising = dict(raising)
        self._unwrapping = unwrapping

    def _aws_error(self, caught: Exception) -> ClientError | BotoCoreError | None:
        if isinstance(caught, _AWS):
            return caught
        if self._unwrapping and isinstance(caught, self._unwrapping):
            cause = caught.__cause__ or caught.__context__
            if isinstance(cause, _AWS):
                return cause
        return None

    def _reaction(self, caught: Exception) -> _Return[R] | Exception | None:
        """The value to return or the error to raise for `caught`; None when it is no AWS error of ours."""
        error = self._aws_error(caught)
        if error is None:
            return None
        if isinstance(error, ClientError):
            for key, value in self._returning.items():
                if _matches(key, error):
                    return _Return(value)
            for key, factory in self._raising.items():
                if _matches(key, error):
                    return factory(
                        ErrorDetail(_code(error) or "Unknown", error.response.get("Error", {}).get("Message"))
                    )
        return translate(error)

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T | R]:
        if inspect.isgeneratorfunction(fn):  # its body runs after the call returned: wrap it with `with` inside
            raise TypeError(f"{fn.__qualname__} is a generator: use `with translated(...)` in its body")

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T | R:
            try:
                return fn(*args, **kwargs)
            except Exception as caught:
                reaction = self._reaction(caught)
                if reaction is None:
                    raise
                if isinstance(reaction, _Return):
                    return reaction.value
                raise reaction from caught

        return wrapper

    def __enter__(self: Translation[Never]) -> None:
        if self._returning:
            raise TypeError("a `with` block cannot return a value: use translated(returning=...) as a decorator")

    def __exit__(
        self: Translation[Never],
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not isinstance(exc, Exception):
            return
        reaction = self._reaction(exc)
        if isinstance(reaction, Exception):
            raise reaction from exc


@overload
def translated(
    *, raising: Mapping[str, ErrorFactory] = ..., unwrapping: tuple[type[Exception], ...] = ...
) -> Translation[Never]: ...


@overload
def translated(
    *,
    returning: Mapping[str, R],
    raising: Mapping[str, ErrorFactory] = ...,
    unwrapping: tuple[type[Exception], ...] = ...,
) -> Translation[R]: ...


def translated(
    *,
    returning: Mapping[str, Any] | None = None,
    raising: Mapping[str, ErrorFactory] | None = None,
    unwrapping: tuple[type[Exception], ...] = (),
) -> Translation[Any]:
    """Botocore errors raised inside become pipeshare errors (`translate`), chained from them.

    returning: error code (or kind) -> the value the decorated function returns instead (checked first);
    raising: error code (or kind) -> a factory of the error raised instead;
    unwrapping: exception types whose botocore cause (__cause__, else __context__) is translated in their place.
    """
    return Translation(returning or {}, raising or {}, unwrapping)
