"""The owner table: the grant inventory (pk GRANTS) and its change outbox (CHANGE# items, notified from the stream).

Keys: pk = "GRANTS", sk = "GRANT#<pipeline arn>#<consumer>#<share arn>" |
"CHANGE#<iso time>#<pipeline arn>#<consumer>#<share arn>#<kind>", the ARNs and the consumer lower-case (`Grant.key`:
ARNs compare case-insensitively); the items keep them as RAM gave them. A consumer holding a pipeline through two
shares has two grants. A change is one transaction (grant upsert or delete guarded by the previous fingerprint +
change insert): a concurrent or repeated reconcile writes it once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.adapters.dynamodb_common import deserialize_value, transact
from pipeshare.adapters.dynamodb_common import iso as _iso
from pipeshare.adapters.dynamodb_common import item as _item
from pipeshare.models.owner import Grant, GrantChange

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

GRANTS = "GRANTS"


def grant_sk(grant: Grant) -> str:
    return f"GRANT#{grant.key}"


class DynamoDbGrantRepository:
    """Implements ports.GrantRepository."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._ddb = client or boto3.client("dynamodb")

    def grants(self, pipeline_arn: str | None = None) -> dict[str, Grant]:
        """Every grant (all shares), or one pipeline's (its ARN in any case), by `Grant.key`."""
        prefix = f"GRANT#{pipeline_arn.lower()}#" if pipeline_arn else "GRANT#"
        found: dict[str, Grant] = {}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": _item({":pk": GRANTS, ":prefix": prefix}),
            "ConsistentRead": True,
        }
        with translated():
            while True:
                page = self._ddb.query(**kwargs)
                for raw in page.get("Items", []):
                    grant = Grant.model_validate({k: deserialize_value(v) for k, v in raw.items()})
                    found[grant.key] = grant
                if "LastEvaluatedKey" not in page:
                    return found
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def apply(self, change: GrantChange, *, history_expires_at: int) -> bool:
        grant = change.grant
        key = _item({"pk": GRANTS, "sk": grant_sk(grant)})
        if change.before is None:
            guard: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            guard = {
                "ConditionExpression": "fingerprint = :before",
                "ExpressionAttributeValues": _item({":before": change.before.fingerprint}),
            }
        if change.after is None or change.kind == "revoked":
            write: dict[str, Any] = {"Delete": {"TableName": self._table, "Key": key, **guard}}
        else:
            after = change.after
            item = {
                "pk": GRANTS,
                "sk": grant_sk(after),
                "item_type": "grant",
                **after.model_dump(mode="json"),
                "allow_execution": after.allow_execution,
                "cost_bearing": after.cost_bearing,
                "fingerprint": after.fingerprint,
                "updated_at": _iso(change.at),
            }
            write = {"Put": {"TableName": self._table, "Item": _item(item), **guard}}
        outbox = {
            "pk": GRANTS,
            "sk": f"CHANGE#{_iso(change.at)}#{grant.key}#{change.kind}",
            "item_type": "change",
            "kind": change.kind,
            "notable": change.notable,
            "at": _iso(change.at),
            "before": change.before.model_dump(mode="json") if change.before else None,
            "after": change.after.model_dump(mode="json") if change.after else None,
            # the consumer's hold on the pipeline after the change, through any share (allow-execution wins)
            "holding": change.holding.model_dump(mode="json") if change.holding else None,
            "cost_bearing": bool(change.holding and change.holding.cost_bearing),
            "expires_at": history_expires_at,
        }
        put = {
            "Put": {"TableName": self._table, "Item": _item(outbox), "ConditionExpression": "attribute_not_exists(pk)"}
        }
        return transact(self._ddb, [write, put])
