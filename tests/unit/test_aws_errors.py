"""aws_errors.translated: botocore errors become pipeshare errors (chained from them), a call site's special cases are
data (`returning`, `raising`), anything else passes through untouched; as a decorator and as a context manager.
Also: the adapters' uses of it that no other unit test reaches (the transaction retry, the SSM and CloudTrail
readers), and a scan of the adapters' source: no adapter catches botocore errors itself."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Never

import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from pipeshare.adapters import aws_errors, cloudtrail_status, dynamodb_common, owner_parameters, policy_source
from pipeshare.adapters.aws_errors import (
    CONDITION_FAILED,
    TRANSIENT_CANCELLATION,
    ErrorDetail,
    Translation,
    translated,
)
from pipeshare.models.errors import (
    AccessDeniedError,
    ExecutionNotFoundError,
    InvitationAlreadyAcceptedError,
    PipeshareError,
    PolicyInvalidError,
    TransientError,
    UnexpectedApiError,
)

pytestmark = pytest.mark.usefixtures("socket_disabled")

ADAPTERS = Path(aws_errors.__file__).parent
# an adapter handling botocore errors itself: catching them, reading their error code, translating by hand
HANDLING = re.compile(
    r"except\s*\(?[^:]*\b(ClientError|BotoCoreError)\b|\.response\b.*\"Error\"|\btranslate\(|"
    r"from botocore\.exceptions import"
)


def client_error(code: str, message: str | None = "the message", status: int = 400, **extra: Any) -> ClientError:
    error: dict[str, Any] = {"Code": code}
    if message is not None:
        error["Message"] = message
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}, **extra}, "SomeOperation")  # type: ignore[arg-type]


def cancelled(*reasons: str) -> ClientError:
    return client_error("TransactionCanceledException", CancellationReasons=[{"Code": r} for r in reasons])


def raising(exc: BaseException) -> Callable[[], Never]:
    def call() -> Never:
        raise exc

    return call


# (error raised by the call, pipeshare error expected, its message)
TRANSLATIONS: list[tuple[Exception, type[PipeshareError], str]] = [
    (client_error("AccessDeniedException", "not allowed"), AccessDeniedError, "AccessDeniedException: not allowed"),
    (
        client_error("ResourceShareInvitationAlreadyAcceptedException"),
        InvitationAlreadyAcceptedError,
        "ResourceShareInvitationAlreadyAcceptedException: the message",
    ),
    (client_error("ThrottlingException", "Rate exceeded"), TransientError, "ThrottlingException: Rate exceeded"),
    (client_error("SomethingOdd", "down", status=503), TransientError, "SomethingOdd: down"),
    (client_error("SomethingOdd", "slow down", status=429), TransientError, "SomethingOdd: slow down"),
    (client_error("ValidationException", "bad"), UnexpectedApiError, "ValidationException: bad"),
    (EndpointConnectionError(endpoint_url="https://ram"), TransientError, "Could not connect"),
    (ReadTimeoutError(endpoint_url="https://ram"), TransientError, "Read timeout"),
]
IDS = ["mapped", "mapped-accepted", "transient-code", "5xx", "429", "other-code", "connection", "timeout"]


# ------------------------------------------------------------------------------------------------- as a decorator


@pytest.mark.parametrize(("error", "expected", "message"), TRANSLATIONS, ids=IDS)
def test_the_decorator_translates_an_aws_error_chained_from_it(
    error: Exception, expected: type[PipeshareError], message: str
) -> None:
    # Given a function that fails with a botocore error
    call = translated()(raising(error))
    # When it is called
    with pytest.raises(PipeshareError) as raised:
        call()
    # Then the pipeshare error for it is raised, chained from the botocore error
    assert type(raised.value) is expected
    assert message in str(raised.value)
    assert raised.value.__cause__ is error


def test_the_decorator_keeps_the_code_of_an_unexpected_error() -> None:
    with pytest.raises(UnexpectedApiError) as raised:
        translated()(raising(client_error("ValidationException", "bad")))()
    assert raised.value.code == "ValidationException"


def test_the_decorator_returns_what_the_function_returns_and_passes_its_arguments() -> None:
    @translated(returning={"ConflictException": False})
    def add(a: int, *, b: int) -> int:
        return a + b

    assert add(2, b=3) == 5
    assert add.__name__ == "add"  # functools.wraps


def test_a_returning_code_makes_the_decorated_function_return_its_value() -> None:
    # Given a call site that reads ConflictException as "already done"
    call = translated(returning={"ConflictException": "already done"})(raising(client_error("ConflictException")))
    # When / Then: the value is returned, nothing raised
    assert call() == "already done"


def test_a_returning_code_leaves_other_codes_translated() -> None:
    call = translated(returning={"ConflictException": False})(raising(client_error("ThrottlingException")))
    with pytest.raises(TransientError):
        call()


def test_a_raising_code_raises_the_call_sites_error_chained_from_the_aws_error() -> None:
    # Given a call site that reads ResourceNotFound as "the execution was deleted"
    error = client_error("ResourceNotFound", "no such execution")
    seen: list[ErrorDetail] = []

    def deleted(detail: ErrorDetail) -> Exception:
        seen.append(detail)
        return ExecutionNotFoundError(f"arn: {detail.message}")

    call = translated(raising={"ResourceNotFound": deleted})(raising(error))
    # When it fails with that code
    with pytest.raises(ExecutionNotFoundError, match="arn: no such execution") as raised:
        call()
    # Then the factory built the error from the code and message, chained from the botocore error
    assert seen == [ErrorDetail(code="ResourceNotFound", message="no such execution")]
    assert raised.value.__cause__ is error


def test_a_raising_factory_is_told_when_aws_sent_no_message() -> None:
    def deleted(detail: ErrorDetail) -> Exception:
        return ExecutionNotFoundError(f"arn: {'not found' if detail.message is None else detail.message}")

    call = translated(raising={"ResourceNotFound": deleted})(raising(client_error("ResourceNotFound", message=None)))
    with pytest.raises(ExecutionNotFoundError, match="arn: not found"):
        call()


def test_special_cases_do_not_apply_to_a_botocore_error_without_a_code() -> None:
    # a connection error has no code: it is transient whatever the call site maps
    call = translated(returning={"ConflictException": False}, raising={"ResourceNotFound": lambda d: ValueError()})(
        raising(EndpointConnectionError(endpoint_url="https://sagemaker"))
    )
    with pytest.raises(TransientError):
        call()


@pytest.mark.parametrize("error", [KeyError("x"), ValueError("y"), TransientError("already ours")])
def test_the_decorator_lets_any_other_exception_through_untouched(error: Exception) -> None:
    with pytest.raises(type(error)) as raised:
        translated(returning={"ConflictException": False})(raising(error))()
    assert raised.value is error
    assert raised.value.__cause__ is None


def test_the_decorator_refuses_a_generator_function() -> None:
    # its body runs after the call returned: the decorator could not see its errors
    def pages() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        translated()(pages)


def test_a_code_both_returned_and_raised_is_refused() -> None:
    with pytest.raises(ValueError, match="ConflictException"):
        translated(returning={"ConflictException": None}, raising={"ConflictException": lambda d: ValueError()})


def test_the_decorator_works_on_methods() -> None:
    class Gateway:
        def __init__(self, error: Exception) -> None:
            self.error = error

        @translated(returning={"UnknownResourceException": False})
        def remove(self, principal: str) -> bool:
            raise self.error

    assert Gateway(client_error("UnknownResourceException")).remove("111111111111") is False
    with pytest.raises(AccessDeniedError):
        Gateway(client_error("AccessDeniedException")).remove("111111111111")


# ------------------------------------------------------------------------------------------- as a context manager


@pytest.mark.parametrize(("error", "expected", "message"), TRANSLATIONS, ids=IDS)
def test_the_context_manager_translates_an_aws_error_chained_from_it(
    error: Exception, expected: type[PipeshareError], message: str
) -> None:
    with pytest.raises(PipeshareError) as raised, translated():
        raise error
    assert type(raised.value) is expected
    assert message in str(raised.value)
    assert raised.value.__cause__ is error


def test_the_context_manager_raises_the_call_sites_error_for_a_raising_code() -> None:
    error = client_error("ResourceNotFound", "gone")
    deleted = {"ResourceNotFound": lambda d: ExecutionNotFoundError(f"arn: {d.message}")}
    with pytest.raises(ExecutionNotFoundError, match="arn: gone") as raised, translated(raising=deleted):
        raise error
    assert raised.value.__cause__ is error
    with pytest.raises(TransientError), translated(raising=deleted):
        raise client_error("ThrottlingException")


@pytest.mark.parametrize("error", [KeyError("x"), ValueError("y"), TransientError("already ours")])
def test_the_context_manager_lets_any_other_exception_through_untouched(error: Exception) -> None:
    with pytest.raises(type(error)) as raised, translated():
        raise error
    assert raised.value is error
    assert raised.value.__cause__ is None


def test_the_context_manager_runs_its_block_and_stays_out_of_the_way() -> None:
    done = []
    with translated():
        done.append("called")
    assert done == ["called"]


def test_the_context_manager_translates_what_a_generator_raises_while_iterated() -> None:
    def pages() -> Iterator[int]:
        with translated():
            yield 1
            raise client_error("ProvisionedThroughputExceededException")

    with pytest.raises(TransientError):
        list(pages())


def test_a_with_block_cannot_return_a_value() -> None:
    returning: Translation[Any] = translated(returning={"ConflictException": False})
    with pytest.raises(TypeError, match="decorator"), returning:
        pass


# ------------------------------------------------------------------------------------------- DynamoDB refusals


@pytest.mark.parametrize(
    ("error", "condition_failed", "transient"),
    [
        (client_error("ConditionalCheckFailedException"), True, False),
        (cancelled("None", "ConditionalCheckFailed"), True, False),
        (cancelled("ConditionalCheckFailed", "ConditionalCheckFailed"), True, False),
        (cancelled("ConditionalCheckFailed", "TransactionConflict"), False, False),
        (cancelled("TransactionConflict", "None"), False, True),
        (cancelled("ThrottlingError", "ProvisionedThroughputExceeded"), False, True),
        (cancelled("None", "ValidationError"), False, False),
        (cancelled(), False, False),
        (client_error("TransactionConflictException"), False, False),
    ],
)
def test_the_kinds_of_dynamodb_refusal(error: ClientError, condition_failed: bool, transient: bool) -> None:
    outcome = translated(returning={CONDITION_FAILED: "refused", TRANSIENT_CANCELLATION: "again"})(raising(error))
    expected = "refused" if condition_failed else "again" if transient else None
    if expected is None:
        with pytest.raises(PipeshareError):
            outcome()
    else:
        assert outcome() == expected


class Transactions:
    """A DynamoDB client whose TransactWriteItems fails with the given errors, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def transact_write_items(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(dynamodb_common, "sleep", slept.append)
    return slept


def test_transact_writes_once_when_nothing_refuses(sleeps: list[float]) -> None:
    ddb = Transactions()
    assert dynamodb_common.transact(ddb, [{"Put": {}}]) is True  # type: ignore[arg-type]
    assert (ddb.calls, sleeps) == (1, [])


def test_transact_answers_false_when_a_condition_refuses(sleeps: list[float]) -> None:
    ddb = Transactions(cancelled("None", "ConditionalCheckFailed"))
    assert dynamodb_common.transact(ddb, [{"Put": {}}, {"Put": {}}]) is False  # type: ignore[arg-type]
    assert (ddb.calls, sleeps) == (1, [])


def test_transact_sends_a_transiently_cancelled_transaction_again_after_a_backoff(sleeps: list[float]) -> None:
    ddb = Transactions(cancelled("TransactionConflict", "None"), cancelled("ThrottlingError"))
    assert dynamodb_common.transact(ddb, [{"Put": {}}, {"Put": {}}]) is True  # type: ignore[arg-type]
    assert ddb.calls == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= dynamodb_common.BACKOFF_BASE_SECONDS
    assert 0 <= sleeps[1] <= 2 * dynamodb_common.BACKOFF_BASE_SECONDS


def test_transact_raises_when_every_attempt_was_cancelled_transiently(sleeps: list[float]) -> None:
    attempts = dynamodb_common.TRANSACT_ATTEMPTS
    ddb = Transactions(*[cancelled("TransactionConflict") for _ in range(attempts)])
    with pytest.raises(UnexpectedApiError, match="TransactionCanceledException"):
        dynamodb_common.transact(ddb, [{"Put": {}}])  # type: ignore[arg-type]
    assert (ddb.calls, len(sleeps)) == (attempts, attempts - 1)


def test_transact_answers_false_for_a_condition_refused_on_the_last_attempt(sleeps: list[float]) -> None:
    attempts = dynamodb_common.TRANSACT_ATTEMPTS
    errors = [cancelled("TransactionConflict") for _ in range(attempts - 1)]
    ddb = Transactions(*errors, client_error("ConditionalCheckFailedException"))
    assert dynamodb_common.transact(ddb, [{"Put": {}}]) is False  # type: ignore[arg-type]
    assert ddb.calls == attempts


@pytest.mark.parametrize(
    ("error", "expected"),
    [(client_error("AccessDeniedException"), AccessDeniedError), (ReadTimeoutError(endpoint_url="x"), TransientError)],
)
def test_transact_translates_other_errors_at_once(sleeps: list[float], error: Exception, expected: type) -> None:
    ddb = Transactions(error)
    with pytest.raises(expected):
        dynamodb_common.transact(ddb, [{"Put": {}}])  # type: ignore[arg-type]
    assert (ddb.calls, sleeps) == (1, [])


# ----------------------------------------------------------------------------- SSM through Powertools (unwrapping)


def powertools_failure(cause: Exception | None) -> Callable[..., Never]:
    """get_parameter as Powertools fails: a GetParameterError raised while handling the botocore error."""

    def get_parameter(*_: Any, **__: Any) -> Never:
        if cause is None:
            raise GetParameterError("transform failed")
        try:
            raise cause
        except Exception as exc:
            raise GetParameterError(str(exc))  # noqa: B904 (as Powertools does)

    return get_parameter


def test_a_budget_parameter_that_does_not_exist_reads_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parameters, "get_parameter", powertools_failure(client_error("ParameterNotFound")))
    assert owner_parameters.SsmBudgetSource("/pipeshare/budgets", max_age=60).load() is None


def test_a_policy_parameter_that_does_not_exist_is_an_invalid_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parameters, "get_parameter", powertools_failure(client_error("ParameterNotFound")))
    with pytest.raises(PolicyInvalidError, match="the parameter does not exist") as raised:
        policy_source.SsmPolicySource("/pipeshare/policy", max_age=60).load()
    assert raised.value.__cause__ is None


@pytest.mark.parametrize("read", ["budgets", "policy"])
@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (client_error("AccessDeniedException"), AccessDeniedError),
        (client_error("ThrottlingException"), TransientError),
        (EndpointConnectionError(endpoint_url="https://ssm"), TransientError),
        (None, TransientError),  # no botocore error under it
    ],
)
def test_a_failed_parameter_read_is_translated_chained_from_powertools_error(
    monkeypatch: pytest.MonkeyPatch, read: str, cause: Exception | None, expected: type[PipeshareError]
) -> None:
    monkeypatch.setattr(parameters, "get_parameter", powertools_failure(cause))
    load: Callable[[], object] = (
        owner_parameters.SsmBudgetSource("/pipeshare/budgets", max_age=60).load
        if read == "budgets"
        else policy_source.SsmPolicySource("/pipeshare/policy", max_age=60).load
    )
    with pytest.raises(expected) as raised:
        load()
    assert isinstance(raised.value.__cause__, GetParameterError)


# ------------------------------------------------------------------------------------------------------ CloudTrail


class Trails:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def describe_trails(self, **_: Any) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    "error", [client_error("AccessDeniedException", "no"), EndpointConnectionError(endpoint_url="https://ct")]
)
def test_a_trail_status_that_cannot_be_read_answers_false_and_logs_the_aws_error(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    logged: list[dict[str, Any]] = []
    monkeypatch.setattr(cloudtrail_status.logger, "warning", lambda message, extra: logged.append(extra))
    gateway = cloudtrail_status.CloudTrailStatusGateway(Trails(error))  # type: ignore[arg-type]
    assert gateway.owner_calls_recorded("us-east-1") is False
    assert logged == [{"error": str(error)}]


# ---------------------------------------------------------------------------------------------- the adapters' code


def test_no_adapter_but_aws_errors_handles_botocore_errors_itself() -> None:
    # Given every adapter module but aws_errors.py
    sources = {path.name: path.read_text() for path in sorted(ADAPTERS.glob("*.py")) if path.name != "aws_errors.py"}
    assert {"dynamodb_shares.py", "enforcement.py", "publish_once.py", "ram_invitations.py"} <= set(sources)
    # Then none catches a botocore error, reads its error code or translates it by hand: translated() does
    offending = {
        f"{name}:{number}": line.strip()
        for name, text in sources.items()
        for number, line in enumerate(text.splitlines(), 1)
        if HANDLING.search(line)
    }
    assert offending == {}


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("        except (ClientError, BotoCoreError) as exc:", True),
        ("    except ClientError as exc:", True),
        ("except BotoCoreError:", True),
        ("        except (KeyError, BotoCoreError, ValueError) as exc:", True),
        ('    if exc.response.get("Error", {}).get("Code") == "ConflictException":', True),
        ("            raise translate(exc) from exc", True),
        ("from botocore.exceptions import BotoCoreError, ClientError", True),
        ("    except PipeshareError as exc:", False),
        ("    @translated(returning={CONDITION_FAILED: False})", False),
        ("        with translated():", False),
    ],
)
def test_the_scan_sees_a_copied_handler(line: str, found: bool) -> None:
    # the pattern above is not vacuous (and lets the translated() forms through)
    assert bool(HANDLING.search(line)) is found
