"""Whether the owner's own pipeline calls reach EventBridge: a CloudTrail trail logging its management events."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import boto3

from pipeshare.adapters.aws_errors import translated
from pipeshare.models.errors import PipeshareError
from pipeshare.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_cloudtrail import CloudTrailClient


def _logs_writes(selectors: dict[str, Any]) -> bool:
    """Management write events are logged by basic selectors (IncludeManagementEvents, ReadWriteType All/WriteOnly)
    or by an advanced selector on eventCategory Management (aws-facts §5)."""
    basic, advanced = selectors.get("EventSelectors") or [], selectors.get("AdvancedEventSelectors") or []
    if not basic and not advanced:
        return True  # a trail without selectors logs every management event (CloudTrail's default)
    for selector in basic:
        if selector.get("IncludeManagementEvents", True) and selector.get("ReadWriteType", "All") in (
            "All",
            "WriteOnly",
        ):
            return True
    for selector in advanced:
        fields = {f.get("Field"): f for f in selector.get("FieldSelectors", [])}
        category = fields.get("eventCategory", {}).get("Equals") or []
        read_only = fields.get("readOnly", {}).get("Equals") or []
        if "Management" in category and "true" not in read_only:
            return True
    return False


class CloudTrailStatusGateway:
    """Implements ports.TrailStatusGateway with DescribeTrails (shadow trails included: organization and
    multi-region trails count), GetTrailStatus and GetEventSelectors. The answer is cached per region for
    `max_age` seconds in a warm container; an error answers False (fail closed: the owner stays a candidate)."""

    def __init__(self, client: CloudTrailClient | None = None, *, max_age: int = 900) -> None:
        self._cloudtrail = client or boto3.client("cloudtrail")
        self._max_age = max_age
        self._cache: dict[str, tuple[float, bool]] = {}

    def owner_calls_recorded(self, region: str) -> bool:
        cached = self._cache.get(region)
        if cached is not None and time.monotonic() - cached[0] < self._max_age:
            return cached[1]
        answer = self._look_up(region)
        self._cache[region] = (time.monotonic(), answer)
        return answer

    def _look_up(self, region: str) -> bool:
        try:
            return self._logged(region)
        except (PipeshareError, KeyError) as exc:  # the AWS error's own text is logged, as before translation
            logger.warning(
                "trail status unknown: the owner stays a candidate", extra={"error": str(exc.__cause__ or exc)[:500]}
            )
            return False

    @translated()
    def _logged(self, region: str) -> bool:
        """Whether a trail of the region (or a multi-region one) is logging the owner's management writes."""
        for trail in self._cloudtrail.describe_trails(includeShadowTrails=True).get("trailList", []):
            if trail.get("HomeRegion") != region and not trail.get("IsMultiRegionTrail"):
                continue
            arn = trail["TrailARN"]
            if not self._cloudtrail.get_trail_status(Name=arn).get("IsLogging"):
                continue
            if _logs_writes(dict(self._cloudtrail.get_event_selectors(TrailName=arn))):
                return True
        return False
