"""Where a command runs: a deployed CloudFormation stack, or an account of the local stack after a scenario.

A target knows the stack's outputs (table names, topic ARNs: template.yaml Outputs), its parameters (the trust
policy's and the owner's SSM parameter names), a boto3 client factory, and the time "now" (the scenario clock for
the local stack). Exit codes: EXIT_* below (documented in the README, "Operating pipeshare (CLI)").
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_OK = 0  # done; a check found nothing to report
EXIT_PROBLEMS = 1  # a check found problems, or nothing matched (an empty listing, an unknown execution)
EXIT_USAGE = 2  # usage or invalid input (a bad file, an unknown option, a target without what the command needs)
EXIT_AWS = 3  # an AWS call failed (credentials, permissions, throttling, a missing stack)
EXIT_REFUSED = 4  # approve / reject refused: a guardrail forbids it (nothing was changed)


class CliError(Exception):
    """An error the command reports on stderr, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def usage(message: str) -> CliError:
    return CliError(message, EXIT_USAGE)


@dataclass
class Target:
    """One stack in one account and region."""

    label: str  # how it is shown: "stack pipeshare (eu-west-1)" or "local consumer (222222222222)"
    account: str
    region: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    client: Callable[[str], Any]  # service name -> boto3 client
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def output(self, key: str, side: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise usage(f"{self.label}: no {key} output (is pipeshare deployed there in {side} mode?)")
        return value

    def has(self, key: str) -> bool:
        return bool(self.outputs.get(key))


def stack_target(session: Any, stack_name: str, region: str) -> Target:
    """A deployed stack: its Outputs and Parameters (CloudFormation DescribeStacks) and clients of the session."""
    cloudformation = session.client("cloudformation", region_name=region)
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    account = str(stack["StackId"].split(":")[4])
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, region_name=region)
        return clients[service]

    return Target(f"stack {stack_name} ({account}, {region})", account, region, outputs, parameters, client)


def template_outputs(template: dict[str, Any], deployment: Any) -> dict[str, str]:
    """template.yaml's Outputs evaluated against a local deployment (its conditions, Refs and attributes): the
    values CloudFormation's DescribeStacks would give for the same stack."""
    found: dict[str, str] = {}
    for key, spec in (template.get("Outputs") or {}).items():
        if not isinstance(spec, dict):
            continue
        condition = spec.get("Condition")
        if condition and not deployment.conditions.get(condition, False):
            continue
        value = spec.get("Value")
        resolved: Any = None
        if isinstance(value, dict) and "Ref" in value:
            resolved = deployment.refs.get(value["Ref"])
        elif isinstance(value, dict) and "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) else (None, None)
            resolved = deployment.attributes.get((logical, attribute)) if isinstance(logical, str) else None
        if isinstance(resolved, str) and resolved:
            found[key] = resolved
    return found


def template_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {k: str(v.get("Default", "")) for k, v in (template.get("Parameters") or {}).items() if isinstance(v, dict)}


def stack_targets(stack: Any, aliases: dict[str, str]) -> list[Target]:
    """One target per account deployed on a running local stack: the outputs CloudFormation would give (template.yaml
    Outputs), the parameters (template defaults under the deployment's), the stack's clients and clock."""
    defaults = template_defaults(stack.template)
    targets = []
    for account, deployment in stack.deployments.items():

        def client(service: str, _account: str = account) -> Any:
            return stack.client(_account, service)

        targets.append(
            Target(
                f"local {aliases.get(account, account)} ({account})",
                account,
                stack.region,
                template_outputs(stack.template, deployment),
                {**defaults, **{k: str(v) for k, v in deployment.parameters.items()}},
                client,
                stack.clock.now,
            )
        )
    return targets


@dataclass
class LocalRun:
    """A scenario played on the local stack: a target per deployed account, the scenario's account aliases (account
    ID -> name) and the running stack."""

    targets: list[Target]
    aliases: dict[str, str]
    stack: Any


@contextmanager
def local_targets(scenario_path: str) -> Iterator[LocalRun]:
    """Play the scenario on the local stack, then yield its targets. The stack stops when the block ends."""
    from pipeshare_local.scenario import Player, ScenarioError, load_scenario
    from pipeshare_local.stack import LocalStack

    try:
        scenario = load_scenario(Path(scenario_path))
    except ScenarioError as exc:
        raise usage("\n".join(exc.problems[:20])) from None
    stack = LocalStack(region=scenario.region, start=scenario.start, settings=scenario.emulation_settings())
    stack.start()
    try:
        with warnings.catch_warnings():  # Powertools warns of functions that published no metric: not the CLI's
            warnings.simplefilter("ignore", UserWarning)
            Player(scenario, stack).run()
        aliases = {spec.id: name for name, spec in scenario.accounts.items()}
        yield LocalRun(stack_targets(stack, aliases), aliases, stack)
    finally:
        stack.stop()


def pick(targets: list[Target], output_key: str, side: str, account: str | None) -> Target:
    """The local target a command runs on: the account named (`--account`, an ID or the scenario's alias, resolved
    by the caller), else the first deployment with the output the command needs."""
    if account:
        for target in targets:
            if target.account == account:
                target.output(output_key, side)
                return target
        raise usage(f"no deployment in account {account} (deployed: {', '.join(t.account for t in targets)})")
    for target in targets:
        if target.has(output_key):
            return target
    raise usage(f"no account deploys pipeshare in {side} mode in this scenario")
