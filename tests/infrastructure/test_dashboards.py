"""The CloudWatch dashboards of template.yaml (ConsumerDashboard, OwnerDashboard) draw only what exists.

The template is read as the local stack reads it (`load_template`, then a `Resolver` for each Mode: conditions, and
the `Fn::Sub` that builds each DashboardBody); the body is parsed as the JSON CloudWatch receives. Then every metric a
widget names (a metric array, or the schema and MetricName of a SEARCH expression) must be one pipeshare's code emits
- same namespace, name and dimension names - or the SQS depth of one of the template's queues; every alarm widget
names alarms of the template. What the code emits is read back from the EMF its reporting functions write for
outcomes that exercise every metric the dashboards use (tests/emf.py), not from a list kept by hand.
"""

from __future__ import annotations

import functools
import json
import re
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from pipeshare import reporting
from pipeshare.models.consumer_outcomes import AuditOutcome, InvitationOutcome, SweepOutcome
from pipeshare.models.owner_outcomes import BudgetOutcome, CostOutcome, TickOutcome, TrackOutcome
from pipeshare_local.template import Resolver, load_template
from tests.emf import EmittedMetric, capture

TEMPLATE = load_template()
ENVIRONMENT = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
NAMESPACE = ENVIRONMENT["POWERTOOLS_METRICS_NAMESPACE"]
SERVICE = ENVIRONMENT["POWERTOOLS_SERVICE_NAME"]
ACCOUNT, REGION, STACK = "222222222222", "us-east-1", "pipeshare"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::StackName": STACK,
    "AWS::URLSuffix": "amazonaws.com",
}
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
SQS_DEPTH = ("AWS/SQS", "ApproximateNumberOfMessagesVisible", frozenset({"QueueName"}))
DASHBOARDS = {
    "consumer": {"ConsumerDashboard"},
    "owner": {"OwnerDashboard"},
    "both": {"ConsumerDashboard", "OwnerDashboard"},
}
# SEARCH('{Namespace,DimensionName,...} MetricName="Name"', 'Stat', period): the form the dashboards use
SEARCH = re.compile(r"""^SEARCH\('\{([^}]+)\} MetricName="([A-Za-z0-9]+)"', '([A-Za-z]+)', (\d+)\)$""")


def _attribute(logical: str, attribute: str) -> str:
    kind = TEMPLATE["Resources"][logical]["Type"]
    if (kind, attribute) == ("AWS::CloudWatch::Alarm", "Arn"):
        return ALARM_ARN + logical
    if (kind, attribute) == ("AWS::SQS::Queue", "QueueName"):
        return f"{STACK}-{logical}"
    raise AssertionError(f"a dashboard uses {logical}.{attribute}: not an alarm ARN nor a queue name")


@functools.cache
def deployment(mode: str) -> tuple[Resolver, dict[str, dict[str, Any]]]:
    """The resolver of one Mode and the body of each dashboard it deploys, parsed."""
    resolver = Resolver(TEMPLATE, parameters={"Mode": mode}, pseudo=PSEUDO, refs={}, attrs=_attribute)
    bodies = {
        name: json.loads(resolver.resolve(spec["Properties"])["DashboardBody"])
        for name, spec in resolver.template["Resources"].items()
        if spec["Type"] == "AWS::CloudWatch::Dashboard" and resolver.enabled(spec)
    }
    return resolver, bodies


def enabled(resolver: Resolver, kind: str) -> set[str]:
    return {
        name for name, spec in resolver.template["Resources"].items() if spec["Type"] == kind and resolver.enabled(spec)
    }


@functools.cache
def emitted() -> frozenset[tuple[str, str, frozenset[str]]]:
    """(namespace, name, dimension names) of every metric the reporting functions write for these outcomes."""

    def invitation(status: str, *, changed: bool = True) -> InvitationOutcome:
        return InvitationOutcome(invitation_arn=f"arn:{status}", status=status, rule="r", reason="", changed=changed)

    statuses = ("ACCEPTED", "HELD", "REJECTED", "EXPIRED")
    attributed = {"source": "forwarded", "initiator_account": "333333333333"}
    outcomes: list[Any] = [
        lambda: reporting.report_sweep(
            SweepOutcome(
                mode="sweep",
                invitations=[invitation(s) for s in statuses],
                policy_valid=False,
                transient_failures=1,
                failures=1,
            )
        ),
        lambda: reporting.report_audit(AuditOutcome(status="policy-invalid", resources=1, alerted=["arn:share"])),
        lambda: reporting.report_notification(
            SimpleNamespace(pk="SHARE#1", to_status="ACCEPTED", sk="HIST#1"),  # type: ignore[arg-type]
            "message-1",
        ),
        *(
            lambda status=status: reporting.report_tracking(
                TrackOutcome(status=status, alerts=["start"], settling=["start"]), event_id="e"
            )
            for status in ("recorded", "duplicate", "ignored", "unverified")
        ),
        *(
            lambda change=change: reporting.report_tracking(
                TrackOutcome(status="recorded", attribution=change, **attributed), event_id="e"
            )
            for change in ("new", "changed")
        ),
        lambda: reporting.report_cost(
            CostOutcome(status="counted", added=Decimal("1.5"), unpriced=["ml.x"], budget_policy_invalid=True),
            event_id="e",
        ),
        lambda: reporting.report_tick(
            TickOutcome(executions=1, jobs_counted=1, added=Decimal(1), finish_alerts=1, pending_dropped=1)
        ),
        lambda: reporting.report_budget(
            BudgetOutcome(
                status="enforced",
                subject="month",
                month="2026-12",
                thresholds=["c:50"],
                actions={"a": "done", "b": "not-run", "c": "failed: x"},
                spend={"333333333333": (Decimal(5), Decimal(10))},
            )
        ),
        lambda: reporting.report_budget(BudgetOutcome(status="policy-invalid", subject="month", month="2026-12")),
    ]
    found: list[EmittedMetric] = []
    for report in outcomes:
        found.extend(capture(report))
    return frozenset((m.namespace, m.name, m.dimension_names) for m in found)


def widget_metrics(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, name, {dimension: value or "*" for a SEARCH}) of each metric a metric widget draws."""
    drawn: list[tuple[str, str, dict[str, str]]] = []
    for entry in widget["properties"]["metrics"]:
        head = entry[0]
        if isinstance(head, dict):  # an expression
            match = SEARCH.match(head["expression"])
            assert match, f"only SEARCH('{{schema}} MetricName=...') expressions are checked: {head['expression']}"
            namespace, *dimensions = (part.strip() for part in match.group(1).split(","))
            drawn.append((namespace, match.group(2), dict.fromkeys(dimensions, "*")))
            continue
        fields = [item for item in entry if not isinstance(item, dict)]
        assert "." not in fields, "a metric written in full, not with the '.' shorthand"
        namespace, name, *pairs = fields
        assert len(pairs) % 2 == 0, f"{name}: dimension names and values in pairs"
        drawn.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return drawn


@pytest.mark.parametrize("mode", sorted(DASHBOARDS))
def test_each_side_deploys_its_own_dashboard_named_per_region(mode: str) -> None:
    resolver, bodies = deployment(mode)
    assert set(bodies) == DASHBOARDS[mode]
    names = {resolver.resolve(resolver.template["Resources"][name]["Properties"]["DashboardName"]) for name in bodies}
    sides = [side for side in ("consumer", "owner") if f"{side.title()}Dashboard" in bodies]
    assert names == {f"{STACK}-{side}-{REGION}" for side in sides}


def test_the_metrics_the_code_writes_are_in_the_templates_namespace_with_its_service_dimension() -> None:
    assert {namespace for namespace, _, _ in emitted()} == {NAMESPACE}
    assert all("service" in dimensions for _, _, dimensions in emitted())


@pytest.mark.parametrize("dashboard", ["ConsumerDashboard", "OwnerDashboard"])
def test_every_widget_draws_a_metric_the_code_emits_or_a_queue_of_the_template(dashboard: str) -> None:
    resolver, bodies = deployment("both")
    queues = {f"{STACK}-{name}" for name in enabled(resolver, "AWS::SQS::Queue")}
    drawn = [m for w in bodies[dashboard]["widgets"] if w["type"] == "metric" for m in widget_metrics(w)]
    assert drawn
    for namespace, name, dimensions in drawn:
        if namespace == "AWS/SQS":
            assert (namespace, name, frozenset(dimensions)) == SQS_DEPTH
            assert dimensions["QueueName"] in queues
            continue
        assert (namespace, name, frozenset(dimensions)) in emitted(), f"{dashboard}: {name} {sorted(dimensions)}"
        assert dimensions["service"] in ("*", SERVICE)
    for widget in bodies[dashboard]["widgets"]:
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == REGION


@pytest.mark.parametrize("mode", ["consumer", "owner"])
def test_each_dashboard_shows_every_alarm_and_dead_letter_queue_of_its_side(mode: str) -> None:
    resolver, bodies = deployment(mode)
    (body,) = bodies.values()
    alarms = [arn for w in body["widgets"] if w["type"] == "alarm" for arn in w["properties"]["alarms"]]
    assert all(arn.startswith(ALARM_ARN) for arn in alarms)
    # every alarm named is one of the template's, enabled in this mode; and every such alarm is named
    assert sorted(arn.removeprefix(ALARM_ARN) for arn in alarms) == sorted(enabled(resolver, "AWS::CloudWatch::Alarm"))
    depths = {
        dimensions["QueueName"]
        for w in body["widgets"]
        if w["type"] == "metric"
        for namespace, _, dimensions in widget_metrics(w)
        if namespace == "AWS/SQS"
    }
    dead_letter_queues = {f"{STACK}-{name}" for name in enabled(resolver, "AWS::SQS::Queue") if name.endswith("Dlq")}
    assert depths == dead_letter_queues


@pytest.mark.parametrize("dashboard", ["ConsumerDashboard", "OwnerDashboard"])
def test_widgets_fit_the_24_column_grid_without_overlapping(dashboard: str) -> None:
    _, bodies = deployment("both")
    cells: set[tuple[int, int]] = set()
    for widget in bodies[dashboard]["widgets"]:
        x, y, width, height = (widget[k] for k in ("x", "y", "width", "height"))
        assert x >= 0
        assert x + width <= 24
        area = {(x + i, y + j) for i in range(width) for j in range(height)}
        assert not area & cells, f"{dashboard}: widget at {(x, y)} overlaps another"
        cells |= area
