"""The start projection in the tracker (logic/track.py): computed when, and only when, the start alert of a start
attributed to a consumer is due; in the alert's body and subject, and kept on the record; a failure never costs the
alert. Logic with fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pipeshare.logic.attribution import alert_message
from pipeshare.logic.estimate import parse_price_table
from pipeshare.logic.track import ProjectionSources, Settle, settle_attribution, track_event
from pipeshare.models.errors import AccessDeniedError
from pipeshare.models.estimates import PriceTable
from pipeshare.models.executions import AlertKey, ExecutionRecord
from pipeshare.models.messages import OwnerAlert
from pipeshare.models.owner_events import PipelineApiCallEvent, PipelineExecutionStatusEvent
from pipeshare.models.projections import FinishedRun
from pipeshare.models.settle import SettleRequest
from pipeshare.models.types import PipelineAction
from tests.conftest import load_event

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER = "111111111111", "222222222222"
PIPELINE = "arn:aws:sagemaker:us-east-1:111111111111:pipeline/churn-train"
EXECUTION = f"{PIPELINE}/execution/p4jn9xou8a8s"
T0 = datetime(2024, 5, 1, 9, 30, 2, tzinfo=UTC)
RATE = Decimal("1.5")  # a test table
PRICES = parse_price_table(
    {"source": "test", "as_of": "2024-05-01", "regions": {"us-east-1": {"training": {"ml.m5.4xlarge": str(RATE)}}}}
)
DEFINITION = {
    "Version": "2020-12-01",
    "Steps": [
        {
            "Name": "Train",
            "Type": "Training",
            "Arguments": {
                "ResourceConfig": {"InstanceType": "ml.m5.4xlarge", "InstanceCount": 2},
                "StoppingCondition": {"MaxRuntimeInSeconds": 10800},
            },
        }
    ],
}
WORST = 2 * Decimal(10800) * RATE / 3600  # 9.00


class Executions:
    """ports.ExecutionRepository in memory; the first `conflicts` saves lose the race."""

    def __init__(self, conflicts: int = 0) -> None:
        self.records: dict[str, tuple[ExecutionRecord, int]] = {}
        self.alerts: dict[str, OwnerAlert] = {}
        self.worst_cases: list[tuple[Decimal, bool] | None] = []
        self.conflicts = conflicts

    def get(self, execution_arn: str) -> tuple[ExecutionRecord | None, int]:
        return self.records.get(execution_arn.lower(), (None, 0))

    def save(
        self,
        record: ExecutionRecord,
        *,
        version: int,
        alerts: list[tuple[AlertKey, OwnerAlert]],
        at: datetime,
        worst_case: tuple[Decimal, bool] | None = None,
    ) -> bool:
        if self.conflicts:
            self.conflicts -= 1
            return False
        self.records[record.key] = (record, version + 1)
        self.alerts.update({key.item_key: alert for key, alert in alerts})
        self.worst_cases.append(worst_case)
        return True


class NoGrants:
    def grants(self, pipeline_arn: str | None = None) -> dict[str, Any]:
        return {}

    def apply(self, change: Any, *, history_expires_at: int) -> bool:  # pragma: no cover - not used here
        raise NotImplementedError


class Spend:
    def move_spend(self, execution_arn: str, **_: Any) -> Decimal | None:
        return None


class SageMaker:
    def describe_execution(self, execution_arn: str) -> dict[str, Any] | None:
        return {"PipelineArn": PIPELINE, "PipelineExecutionArn": execution_arn}


class Definitions:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.reads = 0

    def definition_for_execution(self, execution_arn: str) -> str:
        self.reads += 1
        if self.error:
            raise self.error
        return json.dumps(DEFINITION)

    def parameters_for_execution(self, execution_arn: str) -> dict[str, str]:  # pragma: no cover - no parameters
        return {}


class History:
    def recent_runs(self, pipeline_arn: str, limit: int) -> list[FinishedRun]:
        return [FinishedRun(Decimal("4"), True), FinishedRun(Decimal("6"), True)]

    def month_spend(self, month: str, consumer: str) -> Decimal:
        return Decimal("95")


class Budgets:
    def load(self) -> Any:
        from pipeshare.logic.budgets import parse_budget_policy

        return parse_budget_policy({"version": 1, "consumers": {CONSUMER: {"monthly_limit": "100"}}}, source="t")


def _never() -> Any:
    raise AssertionError("built although no consumer start alert was due")


def sources(definitions: Definitions | None = None) -> ProjectionSources:
    chosen = definitions or Definitions()

    def prices() -> PriceTable:
        return PRICES

    return ProjectionSources(
        definitions=lambda: chosen, history=History, budgets=Budgets, prices=prices, price_lookup=None
    )


IDLE = ProjectionSources(definitions=_never, history=_never, budgets=_never, prices=_never, price_lookup=_never)


def track(
    executions: Executions,
    event: dict[str, Any],
    projection: ProjectionSources | None,
    *,
    alert_on_owner: bool = False,
    settle: Settle | None = None,
) -> Any:
    model = PipelineExecutionStatusEvent if "Status Change" in event["detail-type"] else PipelineApiCallEvent
    return track_event(
        model.model_validate(event),
        owner_account=OWNER,
        executions=executions,
        grants=NoGrants(),
        sagemaker=SageMaker(),
        alert_on_owner=alert_on_owner,
        settle=settle,
        spend=Spend(),
        now=T0,
        projection=projection,
    )


def status(current: str, at: datetime, previous: str | None = None) -> dict[str, Any]:
    event = load_event("sagemaker_execution_status_executing", time=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    event["detail"]["currentPipelineExecutionStatus"] = current
    event["detail"].pop("previousPipelineExecutionStatus", None)
    if previous:
        event["detail"]["previousPipelineExecutionStatus"] = previous
    if current == "Failed":
        event["detail"]["executionEndTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def test_a_forwarded_consumer_start_alert_carries_the_projection_and_the_record_keeps_the_worst_case() -> None:
    executions = Executions()
    # When the consumer's forwarded start record makes the start alert due
    outcome = track(executions, load_event("cloudtrail_start_pipeline_execution_consumer"), sources())
    # Then the alert's body has the projection, its subject the worst case, the save the worst case to keep
    alert = executions.alerts["ALERT#start"]
    projection = alert.message["projection"]
    assert (projection["worst_case"], projection["typical"], projection["remaining_budget"]) == ("9.00", "5.00", "5.00")
    assert projection["exceeds_remaining"] is True
    assert projection["summary"] == "worst case USD 9.00 > budget left"
    # (the subject takes the summary's first clause: the whole would pass 100 characters)
    assert alert.subject == f"pipeshare: consumer {CONSUMER} started churn-train (owner pays) - worst case USD 9.00"
    assert executions.worst_cases == [(WORST, True)]
    assert (outcome.projection, outcome.projection_unavailable) == ("computed", False)
    assert outcome.response()["projection"] == "computed"


def test_nothing_is_projected_when_no_start_alert_is_due() -> None:
    # Given a status event nobody has claimed (the start settles later), and the owner's own start (not alerted)
    executions = Executions()
    settle = Settle(scheduler=type("S", (), {"schedule": lambda self, request, delay_seconds: None})(), seconds=600)
    outcomes = [
        track(executions, status("Executing", T0), IDLE, settle=settle),
        track(Executions(), load_event("cloudtrail_start_pipeline_execution_owner"), IDLE),
    ]
    # Then no projection input was even built, and nothing is stored
    assert [o.projection for o in outcomes] == [None, None]
    assert executions.worst_cases == [None]


def test_the_owners_own_start_alerted_on_request_carries_no_projection() -> None:
    executions = Executions()
    outcome = track(executions, load_event("cloudtrail_start_pipeline_execution_owner"), IDLE, alert_on_owner=True)
    assert "projection" not in executions.alerts["ALERT#start"].message
    assert outcome.alerts == ["start"]
    assert outcome.projection is None


def test_a_retry_alert_carries_no_projection() -> None:
    # Given a consumer start (projected once), then a failure and the consumer's retry
    definitions = Definitions()
    executions = Executions()
    track(executions, load_event("cloudtrail_start_pipeline_execution_consumer"), sources(definitions))
    for event in (status("Executing", T0), status("Failed", T0 + timedelta(minutes=10), "Executing")):
        track(executions, event, sources(definitions))
    retry = load_event("cloudtrail_retry_pipeline_execution_consumer")
    retry["detail"]["eventTime"] = (T0 + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
    track(executions, retry, sources(definitions))
    outcome = track(executions, status("Executing", T0 + timedelta(minutes=16), "Failed"), sources(definitions))
    # Then the retry is alerted without a projection, and the definition was read for the start only
    assert outcome.alerts == ["retry#2"]
    assert "projection" not in executions.alerts["ALERT#retry#2"].message
    assert definitions.reads == 1
    assert outcome.projection is None


def test_a_failed_projection_never_costs_the_alert() -> None:
    # Given a definition read denied, and (separately) a projection that fails unexpectedly
    denied = Executions()
    outcome = track(
        denied, load_event("cloudtrail_start_pipeline_execution_consumer"), sources(Definitions(AccessDeniedError("x")))
    )
    broken = Executions()
    crashing = ProjectionSources(
        definitions=lambda: (_ for _ in ()).throw(RuntimeError("bug")),
        history=History,
        budgets=Budgets,
        prices=lambda: PRICES,
    )
    crashed = track(broken, load_event("cloudtrail_start_pipeline_execution_consumer"), crashing)
    # Then both alerts are written, saying why; no worst case is stored; the outcome says it was unavailable
    assert denied.alerts["ALERT#start"].message["projection"]["unavailable"] == (
        "projection unavailable: worst case: x"
    )
    assert denied.alerts["ALERT#start"].message["projection"]["typical"] == "5.00"  # the other parts still given
    assert broken.alerts["ALERT#start"].message["projection"]["unavailable"] == (
        "projection unavailable: RuntimeError: bug"
    )
    assert denied.worst_cases == broken.worst_cases == [None]
    assert (outcome.projection_unavailable, crashed.projection_unavailable) == (True, True)
    assert outcome.projection == "unavailable: worst case: x"


def test_a_conflicting_save_retries_without_projecting_again() -> None:
    definitions = Definitions()
    executions = Executions(conflicts=2)
    outcome = track(executions, load_event("cloudtrail_start_pipeline_execution_consumer"), sources(definitions))
    assert outcome.status == "recorded"
    assert definitions.reads == 1
    assert executions.worst_cases == [(WORST, True)]


def test_an_inferred_start_is_projected_when_the_settler_is_given_the_sources() -> None:
    # Given an unclaimed start whose settle period has passed, one allow-execution consumer
    from pipeshare.models.owner import Grant

    grant = Grant.model_validate(
        {
            "pipeline_arn": PIPELINE,
            "consumer": CONSUMER,
            "association_status": "ASSOCIATED",
            "share_arn": "arn:aws:ram:us-east-1:111111111111:resource-share/s1",
            "share_name": "churn-share",
            "permission_name": "AWSRAMPermissionSageMakerPipelineAllowExecution",
        }
    )
    grants = type("G", (), {"grants": lambda self, pipeline_arn=None: {"g": grant}})()
    executions = Executions()
    track(executions, status("Executing", T0), IDLE)
    trail = type("T", (), {"owner_calls_recorded": lambda self, region: True})()
    # When it settles with the projection's sources
    outcome = settle_attribution(
        SettleRequest(execution_arn=EXECUTION, action=PipelineAction.START, attempt=0),
        owner_account=OWNER,
        executions=executions,
        grants=grants,
        trail=trail,
        alert_on_owner=False,
        spend=Spend(),
        now=T0 + timedelta(minutes=10),
        projection=sources(),
    )
    # Then the inferred start alert carries it too
    assert outcome.alerts == ["start"]
    assert executions.alerts["ALERT#start"].message["projection"]["worst_case"] == "9.00"


def test_the_subject_gets_the_summary_only_when_it_fits_whole() -> None:
    executions = Executions()
    track(executions, load_event("cloudtrail_start_pipeline_execution_consumer"), None)
    record, _ = executions.get(EXECUTION)
    assert record is not None
    block = {"summary": "worst case USD 9.00"}
    fits = alert_message(record, PipelineAction.START, None, projection=block)
    assert fits.subject == f"pipeshare: consumer {CONSUMER} started churn-train (owner pays) - worst case USD 9.00"
    assert fits.message["projection"] == block
    # a summary too long whole ends the subject with its first clause; one that fits goes whole
    over = alert_message(
        record, PipelineAction.START, None, projection={"summary": "worst case USD 9.00 > budget left"}
    )
    assert over.subject == fits.subject
    short = record.model_copy(
        update={"execution_arn": "arn:aws:sagemaker:us-east-1:111111111111:pipeline/p/execution/x"}
    )
    whole = alert_message(
        short, PipelineAction.START, None, projection={"summary": "worst case USD 9.00 > budget left"}
    )
    assert whole.subject.endswith("started p (owner pays) - worst case USD 9.00 > budget left")
    # a pipeline name long enough to be shortened leaves no room: the subject is as without a projection
    long_name = record.model_copy(update={"execution_arn": f"{PIPELINE}{'x' * 60}/execution/p4jn9xou8a8s"})
    shortened = alert_message(long_name, PipelineAction.START, None, projection=block)
    assert shortened.subject == alert_message(long_name, PipelineAction.START, None).subject
    assert len(shortened.subject) == 100
    assert CONSUMER in shortened.subject
