"""Price List answers kept in the owner table, shared by every container (implements price_list.RateCache).

Items: pk `PRICE#<region>`, sk `<component>#<instance type>` (the region's ML storage:
`storage#training-job-ml-storage`), `rate` (USD, a number) or `found` false (the Price List has no single rate: a
"none" marker, cached too), `fetched_at` (ISO time) and `expires_at` (epoch seconds, the table's TTL attribute).
DynamoDB deletes expired items lazily, so reads check `expires_at` themselves: an expired item is a miss.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.adapters.dynamodb_common import deserialize, iso, item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_LIMIT = 100  # keys per BatchGetItem request (DynamoDB's limit)


def price_pk(region: str) -> str:
    return f"PRICE#{region}"


class DynamoDbPriceCache:
    """Reads many answers with one BatchGetItem (per 100 keys), writes one answer with one PutItem."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._ddb = client or boto3.client("dynamodb")

    def get_many(self, region: str, keys: list[str], *, now: float) -> dict[str, Decimal | None]:
        """The unexpired answers held for `keys` (a key without one is left out). Keys DynamoDB leaves unprocessed
        are left out too: the caller asks the Price List for them."""
        found: dict[str, Decimal | None] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            chunk = unique[start : start + BATCH_GET_LIMIT]
            request = {self._table: {"Keys": [item({"pk": price_pk(region), "sk": k}) for k in chunk]}}
            with translated():
                response = self._ddb.batch_get_item(RequestItems=request)  # type: ignore[arg-type]
            for raw in response.get("Responses", {}).get(self._table, []):
                found.update(_answer(deserialize(raw), now))
        return found

    def put(self, region: str, key: str, rate: Decimal | None, *, now: float, ttl_seconds: int) -> None:
        values: dict[str, Any] = {
            "pk": price_pk(region),
            "sk": key,
            "kind": "price-list-answer",
            "rate": rate,
            "found": rate is not None,
            "fetched_at": iso(datetime.fromtimestamp(now, UTC)),
            "expires_at": int(now) + ttl_seconds,
        }
        with translated():
            self._ddb.put_item(TableName=self._table, Item=item(values))


def _answer(values: dict[str, Any], now: float) -> dict[str, Decimal | None]:
    """{sk: rate or None} for an unexpired, well-formed item; {} otherwise."""
    expires, key = values.get("expires_at"), values.get("sk")
    if not isinstance(expires, Decimal) or expires <= Decimal(str(now)) or not isinstance(key, str):
        return {}
    rate = values.get("rate")
    if values.get("found") is True and isinstance(rate, Decimal) and rate > 0:
        return {key: rate}
    return {key: None} if values.get("found") is False else {}
