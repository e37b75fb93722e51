"""Cost estimate of a pipeline execution: the price table, the cost of one job, the cost of every step. Pure, no I/O
beyond reading the shipped price table from the package.

Formulas (USD; `rate` is the on-demand price per instance-hour of the job's component in the execution's region):
- training: `BillableTimeInSeconds * InstanceCount * rate / 3600`; a heterogeneous cluster (`InstanceGroups`) sums
  this per group, each with its own type and count and the same billable time. Managed spot: BillableTimeInSeconds
  already carries the saving, which is reported as `(1 - Billable / TrainingTimeInSeconds) * 100`. A finished job
  without BillableTimeInSeconds falls back to TrainingTimeInSeconds, then to end - start (each with an issue). A
  warm pool adds `ResourceRetainedBillableTimeInSeconds * InstanceCount * rate / 3600`;
- processing: `(ProcessingEndTime - ProcessingStartTime) * InstanceCount * rate / 3600`;
- transform: `(TransformEndTime - TransformStartTime) * InstanceCount * rate / 3600`;
- tuning: `ConsumedResources.RuntimeInSeconds * InstanceCount * rate / 3600` (training definition's ResourceConfig);
- a running job (InProgress / Stopping): its cost so far, with `now - start` as the billable time;
- storage: `VolumeSizeInGB * InstanceCount * seconds * storage_gb_month / (30 * 24 * 3600)` (one volume per instance),
  none for instance families with local NVMe storage (SageMaker provisions no EBS volume for them).
Durations that are missing, negative or inconsistent count 0, with an issue: a cost is never negative, never a silent
zero. Money is `Decimal`, kept exact; `Estimate.total_display` is the total rounded to cents.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any

from pipeshare.models.errors import PriceTableError
from pipeshare.models.estimates import (
    CENT,
    ZERO,
    Component,
    Estimate,
    InstanceUse,
    JobCost,
    JobKind,
    Origin,
    PriceTable,
    StepCost,
    StepState,
    _CostFields,
    _validated,
)

SECONDS_PER_HOUR = Decimal(3600)
SECONDS_PER_MONTH = Decimal(30 * 24 * 3600)  # the GB-month of the storage price
MICRO_USD = Decimal("0.000001")  # the precision of every stored cost: sums stay far inside DynamoDB's 38 digits


def quantize_usd(amount: Decimal) -> Decimal:
    """A cost as stored and summed: rounded half-up to 1e-6 USD (unbounded decimals could exceed DynamoDB's number
    precision once ADDed to a running total)."""
    return amount.quantize(MICRO_USD, rounding=ROUND_HALF_UP)


JOB_KINDS: tuple[JobKind, ...] = ("training", "processing", "transform", "tuning")
RUNNING_STATUSES = frozenset({"InProgress", "Stopping"})
ENDED_STEP_STATUSES = frozenset({"Succeeded", "Failed", "Stopped"})
ENDED_EXECUTION_STATUSES = ENDED_STEP_STATUSES
# Instance families with local NVMe storage: SageMaker mounts it instead of an EBS volume (no ML storage charge).
LOCAL_STORAGE_FAMILIES = frozenset(
    {"g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e", "m5d", "c5d", "r5d", "m6id", "c6id", "r6id", "trn1"}
)


# ----------------------------------------------------------------------------------------------------- price table

ORIGINS: tuple[Origin, ...] = ("override", "price-list", "shipped")


def parse_price_table(document: Any) -> PriceTable:
    """Validate a full price table document. Raises PriceTableError with every problem found."""
    if not isinstance(document, Mapping):
        raise PriceTableError(["<root>: the price table must be a JSON object"])
    return _validated(PriceTable, document)


@cache
def load_shipped_prices() -> PriceTable:
    """The price table shipped in the package (pipeshare/data/prices.json), validated."""
    text = resources.files("pipeshare.data").joinpath("prices.json").read_text(encoding="utf-8")
    return parse_price_table(json.loads(text, parse_float=Decimal))


# ------------------------------------------------------------------------------------------------------ job costs


class _Builder:
    """Accumulates the lines, costs and issues of one job."""

    def __init__(self, *, region: str, prices: PriceTable, component: Component) -> None:
        self.region, self.prices, self.component = region, prices, component
        self.lines: list[InstanceUse] = []
        self.storage = ZERO
        self.issues: list[str] = []
        self.missing: list[str] = []  # what makes the job incomplete

    def compute(
        self, groups: Sequence[tuple[str | None, str, int]], seconds: Decimal, *, warm_pool: bool = False
    ) -> None:
        for name, instance_type, count in groups:
            rate = self.prices.price(self.region, self.component, instance_type)
            if rate is None:
                self.missing.append(self._no_price(instance_type))
            cost = ZERO if rate is None else seconds * count * rate / SECONDS_PER_HOUR
            self.lines.append(
                InstanceUse(
                    label=name,
                    warm_pool=warm_pool,
                    instance_type=instance_type,
                    count=count,
                    seconds=seconds,
                    usd_per_hour=rate,
                    compute_cost=cost,
                )
            )

    def _no_price(self, instance_type: str) -> str:
        if self.region not in self.prices.regions:
            return f"the price table ({self.prices.source}) has no prices for region {self.region}"
        return f"unknown instance type: no {self.component.value} price for {instance_type} in {self.region}"

    def add_storage(self, volume_gb: Any, groups: Sequence[tuple[str | None, str, int]], seconds: Decimal) -> None:
        size = _number(volume_gb)
        if volume_gb is None or seconds == 0:
            return
        if size is None or size < 0:
            self.missing.append(f"VolumeSizeInGB is not a valid size: {volume_gb!r}")
            return
        billed = [(t, c) for _, t, c in groups if _family(t) not in LOCAL_STORAGE_FAMILIES]
        if not billed or size == 0:
            return
        rate = self.prices.storage_price(self.region)
        if rate is None:
            self.missing.append(f"no storage price (storage_gb_month) for region {self.region}")
            return
        self.storage += sum((size * c * seconds * rate / SECONDS_PER_MONTH for _, c in billed), ZERO)

    def job(self, kind: JobKind, response: Mapping[str, Any], arn_key: str, status_key: str, **extra: Any) -> JobCost:
        main = [line for line in self.lines if not line.warm_pool]
        state = StepState.INCOMPLETE if self.missing else StepState.ESTIMATED
        return JobCost(
            kind=kind,
            job_arn=_text(response.get(arn_key)),
            status=_text(response.get(status_key)),
            component=self.component,
            state=state,
            instances=tuple(self.lines),
            billable_seconds=max((line.seconds for line in main), default=ZERO),
            instance_seconds=sum((line.seconds * line.count for line in self.lines), ZERO),
            compute_cost=sum((line.compute_cost for line in self.lines), ZERO),
            storage_cost=self.storage,
            reason="; ".join(dict.fromkeys(self.missing)) or None,
            issues=tuple(dict.fromkeys([*self.missing, *self.issues])),
            **extra,
        )


def job_cost(
    kind: str, describe_response: Mapping[str, Any], *, region: str, prices: PriceTable, now: datetime
) -> JobCost:
    """The cost of one job from its Describe* response (`kind`: training, processing, transform or tuning)."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r} (expected one of {', '.join(JOB_KINDS)})")
    now = _aware(now)
    if kind == "training":
        return _training(describe_response, region=region, prices=prices, now=now)
    if kind == "processing":
        return _processing(describe_response, region=region, prices=prices, now=now)
    if kind == "transform":
        return _transform(describe_response, region=region, prices=prices, now=now)
    return _tuning(describe_response, region=region, prices=prices)


def _training(d: Mapping[str, Any], *, region: str, prices: PriceTable, now: datetime) -> JobCost:
    b = _Builder(region=region, prices=prices, component=Component.TRAINING)
    status = _text(d.get("TrainingJobStatus"))
    running = status in RUNNING_STATUSES
    config = _mapping(d.get("ResourceConfig"))
    groups = _instance_groups(config, b.missing)
    spot = d.get("EnableManagedSpotTraining") is True
    savings: Decimal | None = None
    if running:
        seconds = _so_far(d.get("TrainingStartTime"), now, b.issues, "TrainingStartTime")
        if spot:
            b.issues.append("managed spot: the running cost is at the on-demand rate for the time so far (upper bound)")
    else:
        seconds = _training_seconds(d, status, b)
        billable, trained = _number(d.get("BillableTimeInSeconds")), _number(d.get("TrainingTimeInSeconds"))
        if spot and billable is not None and trained and trained > 0 and 0 <= billable <= trained:
            savings = ((1 - billable / trained) * 100).quantize(CENT, ROUND_HALF_UP)
    b.compute(groups, seconds)
    b.add_storage(config.get("VolumeSizeInGB"), groups, seconds)
    retained = _number(_mapping(d.get("WarmPoolStatus")).get("ResourceRetainedBillableTimeInSeconds"))
    if retained is not None and retained > 0:
        b.compute(groups, retained, warm_pool=True)
    return b.job("training", d, "TrainingJobArn", "TrainingJobStatus", running=running, spot_savings_percent=savings)


def _training_seconds(d: Mapping[str, Any], status: str | None, b: _Builder) -> Decimal:
    """Seconds a finished training job is billed: Billable-, else TrainingTimeInSeconds, else end - start."""
    for key in ("BillableTimeInSeconds", "TrainingTimeInSeconds"):
        raw = d.get(key)
        if raw is None:
            continue
        value = _number(raw)
        if value is None or value < 0:
            b.missing.append(f"{key} is not a valid duration: {raw!r}")
            return ZERO
        if key != "BillableTimeInSeconds":
            b.issues.append(
                "BillableTimeInSeconds missing: TrainingTimeInSeconds used instead (no managed spot saving applied)"
            )
        return value
    seconds = _ended(d.get("TrainingStartTime"), d.get("TrainingEndTime"), status, b, "Training")
    if seconds:
        b.issues.append(
            "BillableTimeInSeconds and TrainingTimeInSeconds missing: TrainingEndTime - TrainingStartTime used"
        )
    return seconds


def _instance_groups(config: Mapping[str, Any], missing: list[str]) -> list[tuple[str | None, str, int]]:
    """(group name, instance type, count) per group: InstanceGroups, else the selected or the single type."""
    raw_groups = config.get("InstanceGroups")
    if isinstance(raw_groups, list) and raw_groups:
        groups: list[tuple[str | None, str, int]] = []
        for index, group in enumerate(raw_groups):
            group = _mapping(group)
            name = _text(group.get("InstanceGroupName")) or f"group {index + 1}"
            found = _type_and_count(group.get("InstanceType"), group.get("InstanceCount"), missing, f"{name}: ")
            if found:
                groups.append((name, *found))
        return groups
    instance_type = config.get("SelectedInstanceType") or config.get("InstanceType")
    count = config.get("SelectedInstanceCount") or config.get("InstanceCount")
    if instance_type is None and config.get("InstancePreferences"):
        missing.append("the instance type is not selected yet (InstancePreferences without SelectedInstanceType)")
        return []
    found = _type_and_count(instance_type, count, missing, "")
    return [(None, *found)] if found else []


def _type_and_count(instance_type: Any, count: Any, missing: list[str], where: str) -> tuple[str, int] | None:
    if not isinstance(instance_type, str) or not instance_type:
        missing.append(f"{where}instance type missing")
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        missing.append(f"{where}instance count missing or invalid: {count!r}")
        return None
    return instance_type, count


def _processing(d: Mapping[str, Any], *, region: str, prices: PriceTable, now: datetime) -> JobCost:
    b = _Builder(region=region, prices=prices, component=Component.PROCESSING)
    status = _text(d.get("ProcessingJobStatus"))
    running = status in RUNNING_STATUSES
    cluster = _mapping(_mapping(d.get("ProcessingResources")).get("ClusterConfig"))
    groups = _instance_groups(cluster, b.missing)
    start, end = d.get("ProcessingStartTime"), d.get("ProcessingEndTime")
    seconds = (
        _so_far(start, now, b.issues, "ProcessingStartTime") if running else _ended(start, end, status, b, "Processing")
    )
    b.compute(groups, seconds)
    b.add_storage(cluster.get("VolumeSizeInGB"), groups, seconds)
    return b.job("processing", d, "ProcessingJobArn", "ProcessingJobStatus", running=running)


def _transform(d: Mapping[str, Any], *, region: str, prices: PriceTable, now: datetime) -> JobCost:
    b = _Builder(region=region, prices=prices, component=Component.TRANSFORM)
    status = _text(d.get("TransformJobStatus"))
    running = status in RUNNING_STATUSES
    groups = _instance_groups(_mapping(d.get("TransformResources")), b.missing)
    start, end = d.get("TransformStartTime"), d.get("TransformEndTime")
    seconds = (
        _so_far(start, now, b.issues, "TransformStartTime") if running else _ended(start, end, status, b, "Transform")
    )
    b.compute(groups, seconds)
    return b.job("transform", d, "TransformJobArn", "TransformJobStatus", running=running)


def _tuning(d: Mapping[str, Any], *, region: str, prices: PriceTable) -> JobCost:
    arn, status = _text(d.get("HyperParameterTuningJobArn")), _text(d.get("HyperParameterTuningJobStatus"))
    running = status in RUNNING_STATUSES
    definition = _mapping(d.get("TrainingJobDefinition"))
    definitions = d.get("TrainingJobDefinitions")
    if not definition and isinstance(definitions, list) and len(definitions) == 1:
        definition = _mapping(definitions[0])
    config = _mapping(definition.get("ResourceConfig") or definition.get("HyperParameterTuningResourceConfig"))
    runtime = _number(_mapping(d.get("ConsumedResources")).get("RuntimeInSeconds"))
    reason = None
    if not definition:
        reason = "tuning job: no single TrainingJobDefinition to take the instance type from"
    elif config.get("InstanceConfigs") and not config.get("InstanceType"):
        reason = "tuning job: InstanceConfigs let SageMaker choose the instance type per training job"
    elif not config.get("InstanceType"):
        reason = "tuning job: the training definition has no ResourceConfig.InstanceType"
    elif runtime is None or runtime < 0:
        reason = "tuning job: ConsumedResources.RuntimeInSeconds is missing or invalid"
    if reason or runtime is None:
        return JobCost(
            kind="tuning", job_arn=arn, status=status, running=running, state=StepState.NOT_ESTIMATED, reason=reason
        )
    b = _Builder(region=region, prices=prices, component=Component.TRAINING)
    groups = _instance_groups(config, b.missing)
    b.compute(groups, runtime)
    b.add_storage(config.get("VolumeSizeInGB"), groups, runtime)
    parallel = _mapping(_mapping(d.get("HyperParameterTuningJobConfig")).get("ResourceLimits")).get(
        "MaxParallelTrainingJobs"
    )
    b.issues.append(
        "tuning job: estimated as RuntimeInSeconds * InstanceCount (the tuning job's wall-clock time): training jobs "
        f"run in parallel (MaxParallelTrainingJobs = {parallel if parallel is not None else 'unknown'}) may cost up "
        "to that many times more"
    )
    if definition.get("EnableManagedSpotTraining") is True:
        b.issues.append("tuning job: managed spot saving not reflected (on-demand rate used)")
    return b.job("tuning", d, "HyperParameterTuningJobArn", "HyperParameterTuningJobStatus", running=running)


# --------------------------------------------------------------------------------------------------------- helpers


def _so_far(start: Any, now: datetime, issues: list[str], name: str) -> Decimal:
    """Seconds a running job has been billed for so far (0 until it starts on its instances)."""
    started = _time(start)
    if started is None:
        return ZERO
    seconds = _seconds(now - started)
    if seconds < 0:
        issues.append(f"{name} is after now ({_iso(started)} > {_iso(now)}): counted as 0 so far")
        return ZERO
    return seconds


def _ended(start: Any, end: Any, status: str | None, b: _Builder, prefix: str) -> Decimal:
    """Seconds a finished job ran: end - start. Missing or inconsistent times count 0 (with an issue)."""
    started, ended = _time(start), _time(end)
    if started is None:
        if status in ("Failed", "Stopped"):
            b.issues.append(f"{prefix}StartTime missing: the job {status.lower()} before starting, counted as 0")
        else:
            b.missing.append(f"{prefix}StartTime missing on a job with status {status}: its duration is unknown")
        return ZERO
    if ended is None:
        b.missing.append(f"{prefix}EndTime missing on a job with status {status}: its duration is unknown")
        return ZERO
    seconds = _seconds(ended - started)
    if seconds < 0:
        b.missing.append(f"{prefix}EndTime ({_iso(ended)}) is before {prefix}StartTime ({_iso(started)}): counted as 0")
        return ZERO
    return seconds


def _seconds(delta: timedelta) -> Decimal:
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, str):
        try:
            return _aware(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def _aware(value: datetime) -> datetime:
    """API times are UTC: a naive datetime is read as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _family(instance_type: str) -> str:
    parts = instance_type.split(".")
    return parts[1] if len(parts) == 3 else ""


# ----------------------------------------------------------------------------------------------------- step costs


_JOB_KEYS: dict[str, JobKind] = {
    "TrainingJob": "training",
    "ProcessingJob": "processing",
    "TransformJob": "transform",
    "TuningJob": "tuning",
}
_KIND_COMPONENT: dict[str, Component] = {
    "training": Component.TRAINING,
    "processing": Component.PROCESSING,
    "transform": Component.TRANSFORM,
    "tuning": Component.TRAINING,
}
_CHECK_KEYS = ("QualityCheck", "ClarifyCheck")
_ARN_KINDS: dict[str, JobKind] = {
    "training-job": "training",
    "processing-job": "processing",
    "transform-job": "transform",
    "hyper-parameter-tuning-job": "tuning",
}
_NO_COMPUTE = {
    "Condition": "a condition is evaluated by the pipeline service: no job",
    "RegisterModel": "registering a model package runs no job",
    "Fail": "a fail step runs no job",
    "Model": "creating a model runs no job",
}
_NOT_PRICED = {
    "EMR": "runs on an Amazon EMR cluster, billed by EMR",
    "EMRServerless": "runs on Amazon EMR Serverless, billed by EMR",
    "Lambda": "runs an AWS Lambda function, billed by Lambda",
    "Callback": "work done outside SageMaker by whoever handles the callback",
    "AutoMLJob": "an AutoML job launches its own training and processing jobs, not priced",
    "Endpoint": "an endpoint is billed by the hour for as long as it exists, beyond this execution",
    "EndpointConfig": "configures an endpoint, which is billed by the hour for as long as it exists",
    "InferenceComponent": "an inference component is billed with its endpoint, beyond this execution",
    "Athena": "runs an Amazon Athena query, billed by Athena",
}


def _classify(step: Mapping[str, Any]) -> tuple[str | None, JobKind | None, str | None, StepState | None, str | None]:
    """(step type, job kind, job ARN, state, reason) from a step's Metadata; state None when a job is to be priced."""
    metadata = _mapping(step.get("Metadata"))
    for key, kind in _JOB_KEYS.items():
        if key in metadata:
            return key, kind, _text(_mapping(metadata[key]).get("Arn")), None, None
    for key in _CHECK_KEYS:
        if key in metadata:
            arn = _text(_mapping(metadata[key]).get("CheckJobArn"))
            if arn:
                return key, "processing", arn, None, None
            return key, None, None, StepState.NO_COMPUTE, f"{key} without a CheckJobArn ran no job"
    if "Job" in metadata:
        arn = _text(_mapping(metadata["Job"]).get("Arn"))
        job_kind = _ARN_KINDS.get(arn.split(":")[5].split("/")[0]) if arn and arn.count(":") >= 5 else None
        if job_kind:
            return "Job", job_kind, arn, None, None
        return "Job", None, arn, StepState.NOT_ESTIMATED, f"step type Job ({arn or 'no ARN'}) is not priced"
    for key, reason in _NO_COMPUTE.items():
        if key in metadata:
            return key, None, None, StepState.NO_COMPUTE, reason
    for key in metadata:
        reason = _NOT_PRICED.get(key) or (
            "billed by Amazon Bedrock" if key.startswith("Bedrock") else "pipeshare does not price this step type"
        )
        return key, None, None, StepState.NOT_ESTIMATED, f"step type {key} is not estimated: {reason}"
    return None, None, None, None, None


def jobs_to_describe(steps: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(kind, job ARN) for each job to describe: steps not cached, with a job. Deduplicated, in step order."""
    wanted: dict[str, tuple[str, str]] = {}
    for step in steps:
        if step.get("CacheHitResult"):
            continue
        _, kind, arn, state, _ = _classify(step)
        if state is None and kind and arn:
            wanted.setdefault(arn.lower(), (kind, arn))
    return list(wanted.values())


def step_costs(
    steps: Sequence[Mapping[str, Any]],
    jobs: Mapping[str, tuple[str, Mapping[str, Any]]],
    *,
    region: str,
    prices: PriceTable,
    now: datetime,
    execution_status: str | None = None,
) -> Estimate:
    """The estimate of an execution from its steps (every page of ListPipelineExecutionSteps) and the Describe*
    responses of their jobs (`jobs`: ARN -> (kind, response), as `jobs_to_describe` lists them)."""
    now = _aware(now)
    described = {arn.lower(): value for arn, value in jobs.items()}
    counted: dict[str, str] = {}  # job ARN (lower-case) -> the step it is counted under
    results: list[StepCost] = []
    reasons: list[str] = []
    complete, final, waiting = True, bool(steps), False
    for step in steps:
        cost, awaiting = _step_cost(step, described, counted, region=region, prices=prices, now=now)
        results.append(cost)
        waiting = waiting or awaiting
        name = cost.step_name
        if cost.state in (StepState.NOT_ESTIMATED, StepState.INCOMPLETE):
            complete = False
            reasons.append(f"{name}: {cost.state.value}: {cost.reason}")
        attempts = step.get("AttemptCount")
        if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts > 1 and cost.job_arn:
            complete = False
            reasons.append(f"{name}: {attempts} attempts: the jobs of earlier attempts are not listed, not counted")
        if cost.running:
            final = False
            reasons.append(f"{name}: running: cost so far as of {_iso(now)}")
        elif cost.status not in ENDED_STEP_STATUSES:
            final = False
            reasons.append(f"{name}: step status {cost.status}: not ended")
    if not steps:
        reasons.append("no steps listed yet")
    if waiting:
        final = False
    if execution_status is not None and execution_status not in ENDED_EXECUTION_STATUSES:
        final = False
        reasons.append(f"execution status {execution_status}: more steps may run")
    return Estimate(
        region=region,
        price_source=prices.source,
        prices_as_of=prices.as_of,
        computed_at=now,
        steps=tuple(results),
        total=sum((r.total for r in results), ZERO),
        complete=complete,
        final=final,
        reasons=tuple(reasons),
    )


def _step_cost(
    step: Mapping[str, Any],
    described: Mapping[str, tuple[str, Mapping[str, Any]]],
    counted: dict[str, str],
    *,
    region: str,
    prices: PriceTable,
    now: datetime,
) -> tuple[StepCost, bool]:
    """One step's cost, and whether it waits for data (a job not described, a job not recorded yet)."""
    name = _text(step.get("StepName")) or "<unnamed step>"
    status = _text(step.get("StepStatus"))
    step_type, kind, arn, state, reason = _classify(step)
    base: dict[str, Any] = {
        "step_name": name,
        "status": status,
        "step_type": step_type,
        "job_arn": arn,
        "kind": kind,
        "component": _KIND_COMPONENT.get(kind) if kind else None,
    }
    cache_hit = _mapping(step.get("CacheHitResult"))
    if step.get("CacheHitResult"):
        source = _text(cache_hit.get("SourcePipelineExecutionArn")) or "an earlier execution"
        return StepCost(**base, state=StepState.CACHED, reason=f"cache hit: billed once, in {source}"), False
    if step_type is None:
        if status in ENDED_STEP_STATUSES:
            return StepCost(**base, state=StepState.NO_COMPUTE, reason="the step ended without recording a job"), False
        return _incomplete(base, "the step has not recorded its job yet"), True
    if state is not None:
        return StepCost(**base, state=state, reason=reason), False
    if not arn:
        return _incomplete(base, f"{step_type} metadata has no job ARN"), True
    if arn.lower() in counted:
        first = counted[arn.lower()]
        issue = f"job {arn} is also the job of step {first!r}: counted once, there"
        return StepCost(**base, state=StepState.ESTIMATED, reason=issue, issues=(issue,)), False
    entry = described.get(arn.lower())
    if entry is None:
        if kind == "tuning":
            why = "the tuning job was not described: tuning is not estimated without its data"
            return StepCost(**base, state=StepState.NOT_ESTIMATED, reason=why), False
        return _incomplete(base, f"job {arn} was not described"), True
    described_kind, response = entry
    if described_kind != kind:
        why = f"job {arn} was described as {described_kind!r} but the step is a {kind} step"
        return _incomplete(base, why), False
    counted[arn.lower()] = name
    job = job_cost(kind, response, region=region, prices=prices, now=now)
    fields = {key: getattr(job, key) for key in _CostFields.model_fields}
    return StepCost(**{**base, **fields}), False


def _incomplete(base: Mapping[str, Any], reason: str) -> StepCost:
    return StepCost(**base, state=StepState.INCOMPLETE, reason=reason, issues=(reason,))
