"""Projection at start: what a consumer-started execution may cost at most, and what the pipeline's runs usually cost.

Pure, no I/O; `project_start` reads through ports passed as arguments.

**Worst case** (`worst_case`): from the pipeline definition the execution runs (DescribePipelineDefinitionForExecution,
the JSON schema of docs/aws-facts.md §4.6) and its parameter values, every job step counts
`instances x MaxRuntimeInSeconds x on-demand rate` (+ ML storage over the same time when the price table prices it):
- Training: `ResourceConfig` (`InstanceType`/`InstanceCount`, or `InstanceGroups`), `StoppingCondition.
  MaxRuntimeInSeconds` (absent: the 1-day default AWS documents), plus `KeepAlivePeriodInSeconds` (warm pool);
- Processing, QualityCheck, ClarifyCheck: `ProcessingResources.ClusterConfig`, `StoppingCondition.
  MaxRuntimeInSeconds` (absent: unbounded, AWS documents no default for processing jobs);
- Transform: always unbounded (CreateTransformJob has no runtime limit);
- Tuning: `ResourceLimits.MaxNumberOfTrainingJobs` x the largest worst case of its training definition(s);
- both branches of every Condition count (an upper bound); Condition, Fail, RegisterModel and Model steps run no
  job; any other step type (Lambda, Callback, EMR, AutoML, endpoints, ...) is unbounded: pipeshare does not price it;
- retries: a job step counts `1 + the sum of MaxAttempts over its RetryPolicies` attempts (an upper bound: every
  policy is taken to retry the whole job, whatever its exception types); a policy bounded by `ExpireAfterMin` only
  leaves the number of attempts unbounded.
A value that cannot be resolved before the run (a step property, `Std:JsonGet`, a parameter without a value), a
missing runtime or an unknown rate makes that step unbounded, with the reason: never a guess. Managed spot is
counted at the on-demand rate (its billable time is at most MaxRuntimeInSeconds).

**Typical** (`typical`): the median of the last (at most 10) complete final estimates of the pipeline's runs.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NamedTuple

from pipeshare.logic.budgets import month_of
from pipeshare.logic.estimate import LOCAL_STORAGE_FAMILIES, SECONDS_PER_HOUR, SECONDS_PER_MONTH
from pipeshare.models.errors import BudgetPolicyInvalidError, PipeshareError
from pipeshare.models.estimates import CENT, ZERO, Component, PriceTable
from pipeshare.models.projections import Projection, StartProjection, StepWorstCase, UnboundedStep

if TYPE_CHECKING:
    from pipeshare.adapters.ports import BudgetSource, PipelineDefinitionGateway, PriceLookup, RunHistory

# botocore sagemaker model, StoppingCondition.MaxRuntimeInSeconds: "The default value is 1 day." (aws-facts §4.6)
DEFAULT_TRAINING_MAX_RUNTIME = 86400
TYPICAL_RUNS = 10  # the last finished runs the typical cost is the median of
MAX_LISTED_STEPS = 20  # steps itemised in the alert's projection block (largest first)
STORED = Decimal("0.000001")  # precision of the worst case stored on the execution record
UNAVAILABLE = "projection unavailable"

_NO_JOB = {
    "Condition": "a condition is evaluated by the pipeline service",
    "Fail": "a fail step runs no job",
    "RegisterModel": "registering a model package runs no job",
    "Model": "creating a model runs no job",
}
_PROCESSING_TYPES = frozenset({"Processing", "QualityCheck", "ClarifyCheck"})
_NOT_PROJECTED = {
    "Lambda": "runs an AWS Lambda function, billed by Lambda: not projected",
    "Callback": "work done outside SageMaker by whoever handles the callback: not projected",
    "EMR": "runs on an Amazon EMR cluster, billed by EMR: not projected",
    "AutoML": "an AutoML job launches its own jobs, with no per-job limits in the definition",
    "Endpoint": "an endpoint is billed by the hour for as long as it exists, beyond this execution",
    "EndpointConfig": "configures an endpoint, billed by the hour for as long as it exists",
}
METHOD = (
    "Worst case: every job step at its instances x StoppingCondition.MaxRuntimeInSeconds x the on-demand rate "
    "(+ ML storage), times 1 + the MaxAttempts of its retry policies; both branches of every condition; transform "
    "jobs and steps whose type, count, runtime or rate is not known before the run are unbounded (listed). "
    "Typical: the median of the last complete final estimates of this pipeline's runs (at most 10)."
)


# ------------------------------------------------------------------------------------------------ value resolution


class _Unbounded(Exception):
    """Raised inside a step's evaluation: the step cannot be bounded (the message says why)."""


class _Values:
    """Resolves definition values: literals, {"Get": "Parameters.X"}, {"Std:Join": {"On", "Values"}}."""

    def __init__(self, definition: Mapping[str, Any], given: Mapping[str, str]) -> None:
        self.parameters: dict[str, Any] = {}
        declared = definition.get("Parameters")
        for parameter in declared if isinstance(declared, list) else []:
            if isinstance(parameter, Mapping) and isinstance(parameter.get("Name"), str):
                self.parameters[parameter["Name"]] = parameter.get("DefaultValue")
        self.parameters.update({name: value for name, value in given.items() if name in self.parameters})

    def text(self, value: Any, what: str) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, Mapping) and set(value) == {"Get"}:
            return self.text(self._get(value["Get"], what), what)
        if isinstance(value, Mapping) and set(value) == {"Std:Join"}:
            join = value["Std:Join"] if isinstance(value["Std:Join"], Mapping) else {}
            parts = join.get("Values")
            if not isinstance(parts, list):
                raise _Unbounded(f"{what}: Std:Join without a Values list")
            return str(join.get("On", "")).join(self.text(part, what) for part in parts)
        if isinstance(value, Mapping) and len(value) == 1:
            raise _Unbounded(f"{what} is computed at run time ({next(iter(value))})")
        raise _Unbounded(f"{what} is missing" if value is None else f"{what} is not a value: {value!r}")

    def integer(self, value: Any, what: str) -> int:
        """A whole number >= 0 (a literal, a parameter's default or given value, a numeric string)."""
        if isinstance(value, int) and not isinstance(value, bool):
            number = Decimal(value)
        else:
            try:
                number = Decimal(self.text(value, what).strip())
            except InvalidOperation:
                number = Decimal("NaN")
        if not number.is_finite() or number != number.to_integral_value() or number < 0:
            raise _Unbounded(f"{what} is not a whole number >= 0: {value!r}")
        return int(number)

    def _get(self, path: Any, what: str) -> Any:
        if not isinstance(path, str) or not path.startswith("Parameters."):
            raise _Unbounded(f"{what} takes its value at run time ({path})")
        name = path.removeprefix("Parameters.")
        if name not in self.parameters:
            raise _Unbounded(f"{what} names parameter {name}, which the definition does not declare")
        if self.parameters[name] is None:
            raise _Unbounded(f"{what}: parameter {name} has no default and no value was given at start")
        return self.parameters[name]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _family(instance_type: str) -> str:
    parts = instance_type.split(".")
    return parts[1] if len(parts) == 3 else ""


# ------------------------------------------------------------------------------------------------------ step costs


class _Pricing:
    """Rates of one region, and what the table lacks (for a live lookup and for the notes)."""

    def __init__(self, prices: PriceTable, region: str) -> None:
        self.prices, self.region = prices, region
        self.used: dict[tuple[str, str], None] = {}
        self.missing: dict[tuple[str, str], None] = {}
        self.notes: dict[str, None] = {}

    def compute(self, component: Component, groups: Sequence[tuple[str, int]], seconds: int) -> Decimal:
        total = ZERO
        for instance_type, count in groups:
            rate = self.prices.price(self.region, component, instance_type)
            self.used[(component.value, instance_type)] = None
            if rate is None:
                self.missing[(component.value, instance_type)] = None
                raise _Unbounded(f"no {component.value} rate for {instance_type} in {self.region} in the price table")
            total += count * Decimal(seconds) * rate / SECONDS_PER_HOUR
        return total

    def storage(self, size_gb: int | None, groups: Sequence[tuple[str, int]], seconds: int) -> Decimal:
        """One volume per instance, none for instance families with local NVMe storage."""
        billed = sum(count for instance_type, count in groups if _family(instance_type) not in LOCAL_STORAGE_FAMILIES)
        if not size_gb or not billed:
            return ZERO
        rate = self.prices.storage_price(self.region)
        if rate is None:
            self.notes[f"ML storage not counted: the price table has no storage price for {self.region}"] = None
            return ZERO
        return Decimal(size_gb) * billed * Decimal(seconds) * rate / SECONDS_PER_MONTH


class _Job(NamedTuple):
    component: Component
    groups: list[tuple[str, int]]
    seconds: int
    volume_gb: int | None


def _groups(config: Mapping[str, Any], values: _Values, where: str) -> list[tuple[str, int]]:
    """(instance type, count) per instance group of a ResourceConfig / ClusterConfig / TransformResources."""
    groups = config.get("InstanceGroups")
    if isinstance(groups, list) and groups:
        return [
            (
                values.text(_mapping(g).get("InstanceType"), f"{where}.InstanceGroups[{i}].InstanceType"),
                _count(values, _mapping(g).get("InstanceCount"), f"{where}.InstanceGroups[{i}].InstanceCount"),
            )
            for i, g in enumerate(groups)
        ]
    if config.get("InstanceType") is None and (config.get("InstancePreferences") or config.get("InstanceConfigs")):
        raise _Unbounded(f"{where}: SageMaker chooses the instance type at run time")
    return [
        (
            values.text(config.get("InstanceType"), f"{where}.InstanceType"),
            _count(values, config.get("InstanceCount"), f"{where}.InstanceCount"),
        )
    ]


def _count(values: _Values, raw: Any, what: str) -> int:
    count = values.integer(raw, what)
    if count < 1:
        raise _Unbounded(f"{what} is {count}")
    return count


def _runtime(arguments: Mapping[str, Any], values: _Values, default: int | None, kind: str) -> int:
    raw = _mapping(arguments.get("StoppingCondition")).get("MaxRuntimeInSeconds")
    if raw is None:
        if default is None:
            raise _Unbounded(f"no StoppingCondition.MaxRuntimeInSeconds, and AWS documents no default for {kind} jobs")
        return default
    seconds = values.integer(raw, "StoppingCondition.MaxRuntimeInSeconds")
    if seconds < 1:
        raise _Unbounded(f"StoppingCondition.MaxRuntimeInSeconds is {seconds}")
    return seconds


def _volume(config: Mapping[str, Any], values: _Values, where: str) -> int | None:
    raw = config.get("VolumeSizeInGB")
    return None if raw is None else values.integer(raw, f"{where}.VolumeSizeInGB")


def _training_job(definition: Mapping[str, Any], values: _Values) -> _Job:
    """A training job request (a Training step's Arguments, or a tuning job's training definition)."""
    config = _mapping(definition.get("ResourceConfig") or definition.get("HyperParameterTuningResourceConfig"))
    seconds = _runtime(definition, values, DEFAULT_TRAINING_MAX_RUNTIME, "training")
    keep_alive = config.get("KeepAlivePeriodInSeconds")
    if keep_alive is not None:  # a warm pool keeps (and bills) the instances after the job
        seconds += values.integer(keep_alive, "ResourceConfig.KeepAlivePeriodInSeconds")
    return _Job(
        Component.TRAINING,
        _groups(config, values, "ResourceConfig"),
        seconds,
        _volume(config, values, "ResourceConfig"),
    )


def _cost(job: _Job, pricing: _Pricing) -> Decimal:
    return pricing.compute(job.component, job.groups, job.seconds) + pricing.storage(
        job.volume_gb, job.groups, job.seconds
    )


def _describe(job: _Job) -> str:
    used = " + ".join(f"{count} x {instance_type}" for instance_type, count in job.groups)
    return f"{used} x {job.seconds} s ({job.component.value})"


def _tuning(arguments: Mapping[str, Any], values: _Values, pricing: _Pricing) -> tuple[Decimal, str]:
    limits = _mapping(_mapping(arguments.get("HyperParameterTuningJobConfig")).get("ResourceLimits"))
    if limits.get("MaxNumberOfTrainingJobs") is None:
        raise _Unbounded(
            "tuning: no ResourceLimits.MaxNumberOfTrainingJobs, the number of training jobs is not bounded"
        )
    jobs = values.integer(limits["MaxNumberOfTrainingJobs"], "ResourceLimits.MaxNumberOfTrainingJobs")
    definitions = [arguments["TrainingJobDefinition"]] if arguments.get("TrainingJobDefinition") else []
    many = arguments.get("TrainingJobDefinitions")
    definitions += [d for d in many if isinstance(d, Mapping)] if isinstance(many, list) else []
    if not definitions:
        raise _Unbounded("tuning: no TrainingJobDefinition")
    costs = [(_cost(job, pricing), job) for job in (_training_job(_mapping(d), values) for d in definitions)]
    most, job = max(costs, key=lambda item: item[0])
    return jobs * most, f"{jobs} training jobs x at most {_describe(job)}"


def _attempts(step: Mapping[str, Any], values: _Values) -> int:
    """1 + the sum of MaxAttempts over the step's retry policies (an upper bound on the jobs it may start)."""
    policies = step.get("RetryPolicies")
    attempts = 1
    for index, policy in enumerate(policies if isinstance(policies, list) else []):
        policy = _mapping(policy)
        if policy.get("MaxAttempts") is None:
            raise _Unbounded(f"RetryPolicies[{index}] has no MaxAttempts: the number of attempts is not bounded")
        attempts += values.integer(policy["MaxAttempts"], f"RetryPolicies[{index}].MaxAttempts")
    return attempts


def _job_step(kind: str, arguments: Mapping[str, Any], values: _Values, pricing: _Pricing) -> tuple[Decimal, str]:
    if kind == "Training":
        job = _training_job(arguments, values)
    elif kind in _PROCESSING_TYPES:
        cluster = _mapping(_mapping(arguments.get("ProcessingResources")).get("ClusterConfig"))
        job = _Job(
            Component.PROCESSING,
            _groups(cluster, values, "ClusterConfig"),
            _runtime(arguments, values, None, "processing"),
            _volume(cluster, values, "ClusterConfig"),
        )
    elif kind == "Transform":
        raise _Unbounded("a transform job has no runtime limit (CreateTransformJob takes none)")
    else:
        return _tuning(arguments, values, pricing)
    return _cost(job, pricing), _describe(job)


def _step(step: Any, name: str, values: _Values, pricing: _Pricing) -> StepWorstCase | None:
    """One step's worst case (None: it runs no job). Raises _Unbounded."""
    if isinstance(step, _Invalid):
        raise _Unbounded(f"{step.where} is not a list of steps: {step.found!r:.80}")
    if not isinstance(step, Mapping):
        raise _Unbounded(f"not a step object: {step!r:.80}")
    kind = str(step.get("Type", ""))
    if kind in _NO_JOB:
        return None
    if kind in _NOT_PROJECTED or kind not in {"Training", "Transform", "Tuning", *_PROCESSING_TYPES}:
        raise _Unbounded(f"step type {kind or '(none)'}: {_NOT_PROJECTED.get(kind, 'not projected by pipeshare')}")
    attempts = _attempts(step, values)
    usd, detail = _job_step(kind, _mapping(step.get("Arguments")), values, pricing)
    return StepWorstCase(step=name, type=kind, usd=usd * attempts, attempts=attempts, detail=detail)


class _Invalid(NamedTuple):
    """A place where a list of steps was expected and something else was found."""

    where: str
    found: Any


def _flatten(steps: Any, found: list[Any], where: str) -> None:
    """Every step, the steps of both branches of every Condition included (an upper bound)."""
    if not isinstance(steps, list):
        found.append(_Invalid(where, steps))
        return
    for step in steps:
        found.append(step)
        if isinstance(step, Mapping) and step.get("Type") == "Condition":
            arguments = _mapping(step.get("Arguments"))
            for branch in ("IfSteps", "ElseSteps"):
                if branch in arguments:
                    _flatten(arguments[branch], found, f"{step.get('Name')}.{branch}")


def _name(step: Any, index: int) -> str:
    if isinstance(step, _Invalid):
        return step.where
    name = step.get("Name") if isinstance(step, Mapping) else None
    return str(name) if isinstance(name, str) and name else f"#{index + 1}"


def worst_case(definition: Any, parameters: Mapping[str, str], prices: PriceTable, region: str) -> Projection:
    """The worst case of an execution of `definition` (the parsed pipeline definition JSON) with the parameter values
    given at its start (`parameters`: name -> value). Never raises on a bad definition: it is reported as unbounded."""
    pricing = _Pricing(prices, region)
    if not isinstance(definition, Mapping):
        reason = "the pipeline definition is not a JSON object"
        return Projection(
            region=region,
            price_source=prices.source,
            prices_as_of=prices.as_of,
            unbounded=(UnboundedStep(step="(definition)", reason=reason),),
        )
    found: list[Any] = []
    _flatten(definition.get("Steps"), found, "Steps")
    values = _Values(definition, parameters)
    steps: list[StepWorstCase] = []
    unbounded: list[UnboundedStep] = []
    for index, step in enumerate(found):
        name = _name(step, index)
        try:
            cost = _step(step, name, values, pricing)
        except _Unbounded as why:
            unbounded.append(UnboundedStep(step=name, reason=str(why)))
            continue
        if cost is not None:
            steps.append(cost)
    return Projection(
        region=region,
        price_source=prices.source,
        prices_as_of=prices.as_of,
        steps=tuple(steps),
        unbounded=tuple(unbounded),
        notes=tuple(pricing.notes),
        rates_used=tuple(pricing.used),
        missing_rates=tuple(pricing.missing),
    )


def uses_parameters(definition: Any) -> bool:
    """Whether the definition declares parameters (then their values at start are worth reading)."""
    return isinstance(definition, Mapping) and bool(definition.get("Parameters"))


# --------------------------------------------------------------------------------------------------------- typical


def typical(totals: Sequence[Decimal]) -> Decimal | None:
    """The median of the last (at most TYPICAL_RUNS) final estimates, newest first; None when there are none."""
    recent = list(totals[:TYPICAL_RUNS])
    return statistics.median(recent) if recent else None


# ------------------------------------------------------------------------------------------ the block in the alert


def _cents(value: Decimal | None, rounding: str = ROUND_HALF_UP) -> str | None:
    return None if value is None else str(value.quantize(CENT, rounding))


def _summary(worst: Projection | None, exceeds: bool | None) -> str | None:
    """A short phrase for the alert's subject."""
    if worst is None:
        return None
    text = f"worst case USD {_cents(worst.total, ROUND_CEILING)}" if worst.complete else "worst case unbounded"
    return text + (" > budget left" if exceeds else "")


def projection_block(
    worst: Projection | None,
    *,
    typical_total: Decimal | None,
    typical_runs: int,
    remaining: Decimal | None,
    unavailable: Sequence[str] = (),
) -> StartProjection:
    """The `projection` block of a start alert. Amounts are strings in cents (the worst case rounded up);
    `exceeds_remaining` is None when unknown (no budget, or an unbounded worst case whose bounded part fits)."""
    exceeds = None
    if worst is not None and remaining is not None:
        exceeds = True if worst.total > remaining else (False if worst.complete else None)
    listed = sorted(worst.steps, key=lambda s: s.usd, reverse=True)[:MAX_LISTED_STEPS] if worst else []
    block: dict[str, Any] = {
        "currency": "USD",
        "worst_case": _cents(worst.total, ROUND_CEILING) if worst else None,
        "worst_case_complete": worst.complete if worst else False,
        "unbounded_steps": [u.model_dump() for u in worst.unbounded] if worst else [],
        "typical": _cents(typical_total),
        "typical_runs": typical_runs,
        "remaining_budget": _cents(remaining),
        "exceeds_remaining": exceeds,
        "summary": _summary(worst, exceeds),
        "unavailable": f"{UNAVAILABLE}: {'; '.join(unavailable)}" if unavailable else None,
        "steps": [
            {
                "step": s.step,
                "type": s.type,
                "worst_case": _cents(s.usd, ROUND_CEILING),
                "attempts": s.attempts,
                "detail": s.detail,
            }
            for s in listed
        ],
        "steps_not_listed": max(len(worst.steps) - MAX_LISTED_STEPS, 0) if worst else 0,
        "price_source": worst.price_source if worst else None,
        "prices_as_of": worst.prices_as_of.isoformat() if worst else None,
        "notes": list(worst.notes) if worst else [],
        "method": METHOD,
    }
    stored = worst.total.quantize(STORED, ROUND_CEILING) if worst else None
    return StartProjection(block, stored, worst.complete if worst else None, tuple(unavailable))


def unavailable_projection(reason: str) -> StartProjection:
    """The block when nothing could be projected at all."""
    return projection_block(None, typical_total=None, typical_runs=0, remaining=None, unavailable=[reason])


# ----------------------------------------------------------------------------------------------- reading the inputs


def _why(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _worst(
    execution_arn: str,
    definitions: PipelineDefinitionGateway,
    prices: Callable[[], PriceTable],
    price_lookup: Callable[[], PriceLookup] | None,
) -> Projection:
    definition = json.loads(definitions.definition_for_execution(execution_arn), parse_float=Decimal)
    given = definitions.parameters_for_execution(execution_arn) if uses_parameters(definition) else {}
    region = execution_arn.split(":")[3]
    table = prices()
    projection = worst_case(definition, given, table, region)
    if projection.rates_used and price_lookup is not None:
        # the rates the estimator will use: the Price List's (PriceLookup.fill) for every instance type the jobs use
        try:
            table = price_lookup().fill(table, region, list(projection.rates_used))
        except PipeshareError as exc:
            note = f"live price lookup failed: {_why(exc)}"
            return projection.model_copy(update={"notes": (*projection.notes, note)})
        projection = worst_case(definition, given, table, region)
    return projection


def project_start(
    execution_arn: str,
    pipeline_arn: str,
    consumer: str | None,
    *,
    definitions: PipelineDefinitionGateway,
    history: RunHistory,
    budgets: BudgetSource,
    prices: Callable[[], PriceTable],
    price_lookup: Callable[[], PriceLookup] | None,
    now: datetime,
) -> StartProjection:
    """The projection of a consumer-started execution. Each part (worst case, typical, remaining budget) that cannot
    be read is reported in `unavailable` with the reason; the others are still given."""
    unavailable: list[str] = []
    worst: Projection | None = None
    try:
        worst = _worst(execution_arn, definitions, prices, price_lookup)
    except (PipeshareError, ValueError) as exc:  # ValueError: the definition is not JSON
        unavailable.append(f"worst case: {_why(exc)}")
    totals: list[Decimal] = []
    try:
        totals = [run.total for run in history.recent_runs(pipeline_arn, TYPICAL_RUNS) if run.complete]
    except PipeshareError as exc:
        unavailable.append(f"typical: {_why(exc)}")
    remaining = None
    if consumer is not None:
        try:
            policy = budgets.load()
            budget = policy.budget_for(consumer) if policy is not None else None
            if budget is not None:
                remaining = budget.monthly_limit - history.month_spend(month_of(now), consumer)
        except BudgetPolicyInvalidError:
            unavailable.append("remaining budget: the budget policy is invalid")
        except PipeshareError as exc:
            unavailable.append(f"remaining budget: {_why(exc)}")
    return projection_block(
        worst, typical_total=typical(totals), typical_runs=len(totals), remaining=remaining, unavailable=unavailable
    )
