"""Whose spend an execution counts toward: its consumer (confirmed or inferred), the owner, or nobody yet."""

from __future__ import annotations

from pipeshare.models.executions import AttributionSource, ExecutionRecord
from pipeshare.models.owner import OWNER_HOLDER, UNATTRIBUTED, SpendHolder


def consumer_of(record: ExecutionRecord | None, owner_account: str) -> str | None:
    """The consumer account whose spend an execution counts toward (None: the owner's own, or not attributable to
    one consumer: ambiguous or unknown)."""
    if record is None or record.source not in _SPEND_SOURCES:
        return None
    account = record.initiator_account
    return account if account and account != owner_account else None


_SPEND_SOURCES = frozenset({AttributionSource.FORWARDED, AttributionSource.OWNER_COPY, AttributionSource.INFERRED})
CONFIRMED_SOURCES = frozenset({AttributionSource.OWNER, AttributionSource.FORWARDED, AttributionSource.OWNER_COPY})


def spend_holder(record: ExecutionRecord | None, owner_account: str) -> SpendHolder:
    """Whose spend an execution counts toward: its consumer (confirmed unless inferred), the owner (its own run), or
    nobody yet (unattributed: no record, not attributed yet, or ambiguous between several consumers)."""
    if record is None:
        return UNATTRIBUTED
    account = record.initiator_account
    if record.source == AttributionSource.OWNER or (account == owner_account and record.source in CONFIRMED_SOURCES):
        return OWNER_HOLDER
    consumer = consumer_of(record, owner_account)
    if consumer is None:
        return UNATTRIBUTED
    return SpendHolder("consumer", consumer, record.source in CONFIRMED_SOURCES)
