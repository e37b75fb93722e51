"""What the local AWS emulators share to speak AWS wire protocols as botocore expects them.

One implementation each, parameterised by the botocore service model (and so its protocol: RAM is ``rest-json``,
SageMaker is ``json`` 1.1):

* the strict input validator: botocore's ``ParamValidator`` plus enum, ``max`` and (optionally) ``pattern`` checks,
  which botocore itself does not enforce, with the wording of those errors chosen per service;
* shape-driven (de)serialisation: JSON body values, query-string / header / uri text, timestamps and blobs;
* request parameters and responses per protocol: rest-json reads each input member from its ``location`` and
  writes header / status-code output members; json reads and writes the whole body;
* error responses: an ``x-amzn-ErrorType`` header and ``{"message": ...}`` (rest-json) or
  ``{"__type": <code>, "Message": ...}`` (json), which botocore turns into ``client.exceptions.<Code>``;
* SigV4 credential-scope parsing and the caller's account (``X-Moto-Account-Id`` or the access key);
* opaque nextToken pagination bound to the request that produced the token;
* WSGI plumbing (request id, status line, event emission) and ``serve``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache
from typing import Any, ClassVar, NotRequired, TypedDict
from urllib.parse import parse_qs

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.utils import parse_to_aware_datetime
from botocore.validate import ParamValidator, ValidationErrors

__all__ = [
    "BOTOCORE_MESSAGES",
    "CREDENTIAL_RE",
    "REASONS",
    "Pages",
    "Response",
    "ServiceError",
    "Signer",
    "StrictErrors",
    "StrictParamValidator",
    "WireEmulator",
    "Wiring",
    "decode_token",
    "encode_token",
    "error_response",
    "event_envelope",
    "event_time",
    "fingerprint",
    "finish",
    "from_text",
    "from_wire",
    "iso",
    "read_json_body",
    "read_params",
    "resolve_signer",
    "serve",
    "service_model",
    "signing_service",
    "success_response",
    "to_wire",
    "uri_regex",
    "utc",
]

logger = logging.getLogger(__name__)

# (status, headers, body) of one answer.
Response = tuple[int, list[tuple[str, str]], bytes]

CREDENTIAL_RE = re.compile(r"Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/")

REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


@cache
def service_model(name: str) -> ServiceModel:
    """botocore's model of service `name` (the installed botocore's copy)."""
    return botocore.session.get_session().get_service_model(name)


def _is_json(model: ServiceModel) -> bool:
    """json (x-amz-json, X-Amz-Target) rather than rest-json (routed by method and URI)."""
    return model.metadata["protocol"] == "json"


def _content_type(model: ServiceModel) -> str:
    return f"application/x-amz-json-{model.metadata['jsonVersion']}" if _is_json(model) else "application/json"


# --------------------------------------------------------------------------------------------------------------
# Time, events, fingerprints
# --------------------------------------------------------------------------------------------------------------


def utc(moment: datetime) -> datetime:
    """A clock reading in UTC (a naive reading is taken to be UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z (snapshots)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_time(moment: datetime) -> str:
    """EventBridge / CloudTrail time: UTC to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_envelope(
    *, source: str, detail_type: str, account: str, region: str, time: datetime, resources: list[str], detail: dict
) -> dict:
    """One EventBridge envelope; account is the account that receives the event."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": event_time(time),
        "region": region,
        "resources": list(resources),
        "detail": detail,
    }


def fingerprint(value: Any) -> str:
    """sha256 of the JSON of value (keys sorted; what JSON cannot hold as its str)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------------

# Wording of the errors StrictParamValidator adds, in botocore's own style. Templates are formatted with the
# error's keyword arguments plus name (the parameter's path); valid_values comes joined with ", ".
BOTOCORE_MESSAGES: Mapping[str, str] = {
    "invalid enum value": "Invalid value for parameter {name}, value: {param}, valid values: {valid_values}",
    "above max": "Invalid value for parameter {name}, value: {param}, valid max: {max_allowed}",
}


class StrictErrors(ValidationErrors):
    """botocore's ValidationErrors, with the (kind, name, details) list readable and the added kinds worded."""

    def __init__(self, messages: Mapping[str, str] = BOTOCORE_MESSAGES) -> None:
        super().__init__()
        self._messages = messages

    @property
    def errors(self) -> list[tuple[str, str, dict[str, Any]]]:
        return list(self._errors)

    def _format_error(self, error: tuple[str, str, dict[str, Any]]) -> str:
        kind, name, details = error
        template = self._messages.get(kind)
        if template is None:
            return super()._format_error(error)
        values = {**details, "name": self._get_name(name)}
        if "valid_values" in details:
            values["valid_values"] = ", ".join(details["valid_values"])
        return template.format(**values)


@cache
def _compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:
        return None


class StrictParamValidator(ParamValidator):
    """botocore's ParamValidator plus the constraints it skips: string enums and ``max`` (value or length).

    Subclasses may also check ``pattern`` (whole-value match, as the services apply it; ``check_pattern``) and
    word the added errors their own way (``messages``, see BOTOCORE_MESSAGES).
    """

    messages: ClassVar[Mapping[str, str]] = BOTOCORE_MESSAGES
    check_pattern: ClassVar[bool] = False

    def validate(self, params: Any, shape: Shape) -> StrictErrors:
        errors = StrictErrors(self.messages)
        self._validate(params, shape, errors, name="")
        return errors

    def _validate(self, params: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate(params, shape, errors, name)
        if shape.type_name == "string" and isinstance(params, str) and shape.enum and params not in shape.enum:
            errors.report(name, "invalid enum value", param=params, valid_values=list(shape.enum))
        _check_max(params, shape, errors, name)
        pattern = shape.metadata.get("pattern") if self.check_pattern and shape.type_name == "string" else None
        if pattern and isinstance(params, str):
            compiled = _compiled_pattern(pattern)
            if compiled is not None and compiled.fullmatch(params) is None:
                errors.report(name, "pattern mismatch", param=params, pattern=pattern)


def _check_max(params: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
    max_allowed = shape.metadata.get("max")
    if max_allowed is None:
        return
    if shape.type_name in ("integer", "long") and isinstance(params, int) and not isinstance(params, bool):
        size = params
    elif shape.type_name in ("string", "list", "map") and isinstance(params, str | list | tuple | dict):
        size = len(params)
    else:
        return
    if size > max_allowed:
        errors.report(name, "above max", param=params, max_allowed=max_allowed)


# --------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------


class ServiceError(Exception):
    """An error answered to the client: code, message and HTTP status.

    Without an explicit status: ``unmodelled_status`` (codes the model does not define), else the error shape's
    ``httpStatusCode`` in the model of service ``modelled_in`` (when set), else 400.
    """

    unmodelled_status: ClassVar[Mapping[str, int]] = {}
    modelled_in: ClassVar[str | None] = None

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else self.status_for(code)

    @classmethod
    def status_for(cls, code: str) -> int:
        if code in cls.unmodelled_status:
            return cls.unmodelled_status[code]
        if cls.modelled_in is not None:
            model = service_model(cls.modelled_in)
            if code in model.shape_names:
                return int(model.shape_for(code).metadata.get("error", {}).get("httpStatusCode", 400))
        return 400


def error_response(model: ServiceModel, err: ServiceError) -> Response:
    """The error as the model's protocol answers it."""
    headers = [("Content-Type", _content_type(model)), ("x-amzn-ErrorType", err.code)]
    body = {"__type": err.code, "Message": err.message} if _is_json(model) else {"message": err.message}
    return err.status, headers, json.dumps(body).encode()


# --------------------------------------------------------------------------------------------------------------
# (De)serialisation
# --------------------------------------------------------------------------------------------------------------


def from_wire(shape: Shape, value: Any) -> Any:
    """JSON body value -> Python value per the shape. Mismatched types are left for the validator to report."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        wire_to_name = {m.serialization.get("name", n): n for n, m in shape.members.items()}
        out = {}
        for key, item in value.items():
            name = wire_to_name.get(key, key)
            out[name] = from_wire(shape.members[name], item) if name in shape.members else item
        return out
    if kind == "list" and isinstance(value, list):
        return [from_wire(shape.member, item) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {k: from_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp" and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return parse_to_aware_datetime(value)
        except (TypeError, ValueError):
            return value
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value
    return value


def from_text(shape: Shape, text: str) -> Any:
    """Query-string / header / uri text -> Python value per the shape."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            return text
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    if kind == "timestamp":
        return from_wire(shape, text)
    return text


def to_wire(shape: Shape, value: Any) -> Any:
    """Python value -> JSON value per the shape (timestamps as epoch seconds unless the model sets a
    ``timestampFormat``)."""
    kind = shape.type_name
    if kind == "structure":
        return {m.serialization.get("name", n): to_wire(m, value[n]) for n, m in shape.members.items() if n in value}
    if kind == "list":
        return [to_wire(shape.member, item) for item in value]
    if kind == "map":
        return {k: to_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "unixtimestamp")
        moment = value.astimezone(UTC)
        if fmt == "iso8601":
            return moment.isoformat().replace("+00:00", "Z")
        if fmt == "rfc822":
            return format_datetime(moment, usegmt=True)
        return moment.timestamp()
    if kind == "blob":
        return base64.b64encode(value).decode()
    return value


def uri_regex(uri: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """Regex for a rest requestUri template; returns it and {regex group: label}."""
    out, groups = [], {}
    for i, part in enumerate(re.split(r"(\{[^}]+\})", uri)):
        if part.startswith("{") and part.endswith("}"):
            label = part[1:-1]
            greedy = label.endswith("+")
            group = f"g{i}"
            groups[group] = label.rstrip("+")
            out.append(f"(?P<{group}>{'.+' if greedy else '[^/]+'})")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out).rstrip("/") + "/?$"), groups


def read_json_body(environ: dict, bad_body: Callable[[str], Exception]) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); bad_body(message) is raised for anything else."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_body(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_body("The request body must be a JSON object.")
    return body


def read_params(
    op_model: OperationModel,
    environ: dict,
    bad_body: Callable[[str], Exception],
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Request parameters per the input shape: json reads the body; rest-json reads each member from its
    ``location`` (body / querystring / header / uri; labels are the uri's). Unknown members are kept for the
    validator to report."""
    if _is_json(op_model.service_model):
        return from_wire(op_model.input_shape, read_json_body(environ, bad_body))  # type: ignore[no-any-return]
    shape = op_model.input_shape
    if shape is None:
        return {}
    body = read_json_body(environ, bad_body)
    text_sources: dict[str, dict[str, list[str]]] = {
        "querystring": parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
        "header": {k[5:].replace("_", "-").lower(): [v] for k, v in environ.items() if k.startswith("HTTP_")},
        "uri": {k: [v] for k, v in (labels or {}).items()},
    }
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location is None:
            if wire in body:
                params[name] = from_wire(member, body.pop(wire))
            continue
        values = text_sources.get(location, {}).get(wire.lower() if location == "header" else wire)
        if values:
            is_list = member.type_name == "list"
            params[name] = [from_text(member.member, v) for v in values] if is_list else from_text(member, values[-1])
    params.update({k: v for k, v in body.items() if k not in params})
    return params


def success_response(op_model: OperationModel, result: dict[str, Any]) -> Response:
    """The result serialised from the output shape: json writes the body; rest-json also the header and
    status-code members (and the operation's modelled responseCode)."""
    model = op_model.service_model
    shape = op_model.output_shape
    headers = [("Content-Type", _content_type(model))]
    if _is_json(model):
        return 200, headers, json.dumps(to_wire(shape, result)).encode()
    status = int(op_model.http.get("responseCode", 200))
    body: dict[str, Any] = {}
    for name, value in result.items():
        member = shape.members[name]
        location = member.serialization.get("location")
        if location == "header":
            headers.append((member.serialization.get("name", name), str(to_wire(member, value))))
        elif location == "statusCode":
            status = int(value)
        else:
            body[member.serialization.get("name", name)] = to_wire(member, value)
    return status, headers, json.dumps(body).encode()


# --------------------------------------------------------------------------------------------------------------
# Callers (SigV4 credential scope)
# --------------------------------------------------------------------------------------------------------------


def signing_service(environ: dict) -> str | None:
    """The service named by the SigV4 credential scope (Authorization header or X-Amz-Credential), if any."""
    match = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0]
        match = CREDENTIAL_RE.search("Credential=" + credential)
    return match["service"] if match is not None else None


@dataclass(frozen=True)
class Signer:
    """Who signed a request: account, region of the credential scope and access key (None with only an override)."""

    account: str
    region: str
    access_key: str | None


def resolve_signer(environ: dict, account_for_access_key: Callable[[str], str], error: type[ServiceError]) -> Signer:
    """The caller: X-Moto-Account-Id when given, else the account of the Authorization header's access key.

    The region is the credential scope's (us-east-1 without one). No credentials at all answer
    MissingAuthenticationTokenException, an unknown access key UnrecognizedClientException (both as `error`).
    """
    match = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    override = environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    if match is None and not override:
        raise error("MissingAuthenticationTokenException", "Missing Authentication Token")
    region = match["region"] if match else "us-east-1"
    access_key = match["akid"] if match else None
    account = override
    if not account and access_key:
        try:
            account = account_for_access_key(access_key)
        except Exception:  # any lookup failure is an unknown key
            account = None
    if not account:
        raise error("UnrecognizedClientException", "The security token included in the request is invalid.")
    return Signer(account=account, region=region, access_key=access_key)


# --------------------------------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------------------------------


def encode_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint, "n": secrets.token_hex(4)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_token(token: str, fingerprint: str, invalid: Callable[[], Exception]) -> int:
    """The offset in a token made by encode_token for the same fingerprint; invalid() is raised otherwise."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        offset = data["o"]
        valid = isinstance(offset, int) and offset >= 0 and data["f"] == fingerprint
    except (ValueError, TypeError, KeyError, UnicodeError):
        valid = False
    if not valid:
        raise invalid()
    return offset  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Pages:
    """Offset pagination with opaque tokens bound to the request: the scope (operation, caller, ...) and every
    parameter but the token and the page size. next_member / limit_member are the input (and output) member names;
    invalid_token() is raised for a token not made for the request; blank_token_is_none: an empty token starts
    over (else it is an invalid token)."""

    next_member: str
    limit_member: str
    invalid_token: Callable[[], Exception]
    blank_token_is_none: bool = False

    def page(
        self,
        scope: list[Any],
        params: dict[str, Any],
        items: list[Any],
        key: str,
        page_size: int,
        hold: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """The page of items (under key) the request asks for, with a token when more follow. hold() (asked once the
        token is known to be valid) answers an empty page whose token resumes where the caller is."""
        query = {k: v for k, v in params.items() if k not in (self.next_member, self.limit_member)}
        bound = fingerprint([*scope, query])[:16]
        token = params.get(self.next_member)
        given = bool(token) if self.blank_token_is_none else token is not None
        offset = decode_token(token, bound, self.invalid_token) if given else 0
        if hold is not None and hold():
            return {key: [], self.next_member: encode_token(offset, bound)}
        limit = params.get(self.limit_member) or page_size
        result: dict[str, Any] = {key: items[offset : offset + limit]}
        if offset + limit < len(items):
            result[self.next_member] = encode_token(offset + limit, bound)
        return result


# --------------------------------------------------------------------------------------------------------------
# WSGI plumbing
# --------------------------------------------------------------------------------------------------------------


def finish(start_response: Callable, response: Response, request_id: str) -> list[bytes]:
    """Send a response with its request id and length."""
    status, headers, body = response
    headers = [*headers, ("x-amzn-RequestId", request_id), ("Content-Length", str(len(body)))]
    start_response(f"{status} {REASONS.get(status, 'Status')}", headers)
    return [body]


class Wiring(TypedDict):
    """The keyword arguments every emulator takes (``**wiring: Unpack[Wiring]``).

    account_for_access_key: the account of an access key (raises, or answers nothing, for an unknown key);
    clock: the current time (naive readings are UTC); emit: the sink of the events the emulator sends;
    page_size: items per page of list operations when the request sets no maximum (>= 1, default 50).
    """

    account_for_access_key: Callable[[str], str]
    clock: Callable[[], datetime]
    emit: Callable[[dict], None]
    page_size: NotRequired[int]


class WireEmulator:
    """What every emulator's WSGI app holds: the service model, the Wiring (caller lookup, clock, event sink, page
    size), a state lock and ``response_observer`` (optional, attribute: called with (operation name, response dict)
    for every successful response before it is serialised; tests validate responses against output shapes).

    Subclasses set ``error`` (their ServiceError) and ``label`` (how their log lines name them); they log to the
    logger of their module.
    """

    error: ClassVar[type[ServiceError]] = ServiceError
    label: ClassVar[str] = "emulator"

    def __init__(
        self,
        model: ServiceModel,
        *,
        account_for_access_key: Callable[[str], str],
        clock: Callable[[], datetime],
        emit: Callable[[dict], None],
        page_size: int = 50,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self._model = model
        self._account_for_access_key = account_for_access_key
        self._clock = clock
        self._emit = emit
        self._page_size = page_size
        self._lock = threading.Lock()
        self.response_observer: Callable[[str, dict], None] | None = None

    def _now(self) -> datetime:
        return utc(self._clock())

    def _signer(self, environ: dict) -> Signer:
        return resolve_signer(environ, self._account_for_access_key, self.error)

    def _observe(self, op_name: str, result: dict[str, Any]) -> None:
        if self.response_observer is not None:
            self.response_observer(op_name, copy.deepcopy(result))

    def _emit_all(self, events: Iterable[dict]) -> None:
        for event in events:
            try:
                self._emit(event)
            except Exception:  # the API call (or the tick) has happened whatever the event sink does
                logging.getLogger(type(self).__module__).exception(
                    "%s: emit failed for %s", self.label, event.get("id")
                )


def serve(app: Callable, host: str = "127.0.0.1", port: int = 0) -> tuple[str, Callable[[], None]]:
    """Serve a WSGI app with werkzeug (threaded) in a daemon thread. Returns (endpoint_url, shutdown)."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class _QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            logger.debug("%s %s -> %s", self.command, self.path, code)

    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        daemon=True,
        name=f"wsgi-{host}:{server.server_port}",
    )
    thread.start()

    def shutdown() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return f"http://{host}:{server.server_port}", shutdown
