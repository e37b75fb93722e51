"""SSM Parameter Store's "Parameter Store Change" events, as AWS documents them, for the local stack.

Parameter Store sends an event to EventBridge (the account's default bus, best effort) when a parameter is created,
updated or deleted: `source` aws.ssm, `detail-type` "Parameter Store Change", `resources` the parameter's ARN, and
`detail` {operation: Create | Update | Delete, name, type, description}; `name` is the parameter's full name (a
hierarchical one with its leading slash: the documented event patterns match `/Project/Teamlead`). Sources: the
Systems Manager user guide, "Amazon EventBridge event examples for Systems Manager" (Parameter Store events) and
"Setting up notifications or triggering actions based on Parameter Store events" (the event patterns).

moto serves the SSM API but sends no events; the local stack intercepts a successful PutParameter (version 1:
Create, later versions: Update) and DeleteParameter and emits the event. [unverified] fixed details of the
emulation: the event `id` (a random UUID), `time` (the call's time, to the second) and `description` (only when the
parameter has one: every documented example has one). LabelParameterVersion and DeleteParameters send nothing here.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

PARAMETER_STORE_CHANGE = "Parameter Store Change"
WATCHED = {"AmazonSSM.PutParameter": "put", "AmazonSSM.DeleteParameter": "delete"}


def watched_operation(environ: dict[str, Any]) -> str | None:
    """`put` / `delete` for the SSM calls that change a parameter (JSON 1.1 X-Amz-Target), else None."""
    return WATCHED.get(environ.get("HTTP_X_AMZ_TARGET", ""))


def parameter_name(body: bytes) -> str | None:
    try:
        name = json.loads(body or b"{}").get("Name")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def parameter_arn(region: str, account: str, name: str) -> str:
    """The parameter's ARN: `parameter/` then the name without its leading slash (the ARN format of the Service
    Authorization Reference)."""
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def change_event(
    *, account: str, region: str, operation: str, name: str, parameter: Any, at: datetime
) -> dict[str, Any]:
    """The event for one change; `parameter` is moto's Parameter (after a put, before a delete)."""
    detail: dict[str, Any] = {"operation": operation, "name": name, "type": parameter.parameter_type}
    if parameter.description:
        detail["description"] = parameter.description
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": PARAMETER_STORE_CHANGE,
        "source": "aws.ssm",
        "account": account,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [parameter_arn(region, account, name)],
        "detail": detail,
    }
