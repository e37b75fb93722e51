"""`pipeshare consumer ...` and `pipeshare owner ...`: the argument parsers, the targets, the exit codes.

Target: `--stack NAME` (default pipeshare) with `--profile` / `--region` (the session's otherwise), or `--regions
r1,r2` for one view of the read commands across regions; or `--local SCENARIO.yaml`: the scenario is played on the
local stack first, then the command answers from its state (`--account` picks the account when several deploy the
side the command needs). `--json` prints one JSON document instead of tables. Exit codes: pipeshare_local.ops.target.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from pipeshare.models.errors import PipeshareError
from pipeshare_local.ops import consumer, owner
from pipeshare_local.ops.output import Result, emit, merge
from pipeshare_local.ops.target import (
    EXIT_AWS,
    CliError,
    Target,
    local_targets,
    pick,
    stack_target,
    usage,
)

Command = Callable[[Target, argparse.Namespace], Result]


def _target_options(*, read: bool) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("target")
    group.add_argument("--stack", default="pipeshare", help="the CloudFormation stack's name (default: pipeshare)")
    group.add_argument("--profile", help="AWS profile (default: the default session)")
    group.add_argument("--region", help="AWS region (default: the profile's)")
    if read:
        group.add_argument("--regions", help="comma-separated regions: one view across them (the stack in each)")
    group.add_argument("--local", metavar="SCENARIO", help="play this scenario on the local stack, then answer from it")
    group.add_argument("--account", help="with --local: the account (ID or scenario alias) to answer for")
    options.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    return options


def _command(sub: Any, name: str, help_text: str, run: Command, *, side: str, read: bool = True) -> Any:
    parser = sub.add_parser(name, help=help_text, parents=[_target_options(read=read)])
    parser.set_defaults(handler=lambda args: execute(args, run, side=side, read=read))
    return parser


def add_parsers(sub: Any) -> None:
    """Register `pipeshare consumer` and `pipeshare owner` on the CLI's subcommands."""
    side = sub.add_parser("consumer", help="the consumer side: invitations and the trust policy")
    commands = side.add_subparsers(dest="command", required=True)
    p = _command(commands, "invitations", "the invitations on record", _invitations, side="consumer")
    p.add_argument("--status", help="only this recorded status (PENDING, HELD, ACCEPTED, REJECTED, EXPIRED)")
    for name, verb in (("approve", "accept a held invitation by hand"), ("reject", "reject an invitation by hand")):
        p = _command(commands, name, verb, _approve if name == "approve" else _reject, side="consumer", read=False)
        p.add_argument("invitation", help="the invitation's ARN")
        p.add_argument("--reason", required=True, help="why (recorded with your identity, and notified)")
    policy = commands.add_parser("policy", help="the trust policy")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    p = _command(
        policy_commands, "check", "validate a trust policy; show what it would decide", _policy_check, side="consumer"
    )
    p.add_argument("file", help="a trust policy JSON document")

    side = sub.add_parser("owner", help="the owner side: grants, executions, costs, budgets, prices")
    commands = side.add_subparsers(dest="command", required=True)
    _command(commands, "grants", "who holds which pipeline", lambda t, a: owner.grants(t), side="owner")
    p = _command(commands, "executions", "the executions recorded", _executions, side="owner")
    p.add_argument("--consumer", help="only those started by this account")
    p.add_argument("--since", help="only those started at or after this date/time (ISO 8601, UTC when no offset)")
    p = _command(commands, "explain", "an execution's evidence, cost lines and budget state", _explain, side="owner")
    p.add_argument("execution", help="the execution's ARN (or its ID)")
    p = _command(commands, "spend", "month-to-date estimated spend per consumer and pipeline", _spend, side="owner")
    p.add_argument("--month", help="YYYY-MM (default: this month, UTC)")
    budget = commands.add_parser("budget", help="the budget policy")
    budget_commands = budget.add_subparsers(dest="budget_command", required=True)
    p = _command(
        budget_commands,
        "check",
        "validate a budget policy; show what it would do this month",
        _budget_check,
        side="owner",
    )
    p.add_argument("file", help="a budget policy JSON document")
    _command(commands, "prices", "each price and where it comes from", lambda t, a: owner.prices(t), side="owner")


def _invitations(t: Target, a: argparse.Namespace) -> Result:
    return consumer.invitations(t, a.status)


def _approve(t: Target, a: argparse.Namespace) -> Result:
    return consumer.approve(t, a.invitation, _reason(a.reason))


def _reject(t: Target, a: argparse.Namespace) -> Result:
    return consumer.reject(t, a.invitation, _reason(a.reason))


def _reason(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise usage("--reason must say why")
    if len(text) > 500:
        raise usage("--reason is limited to 500 characters")
    return text


def _policy_check(t: Target, a: argparse.Namespace) -> Result:
    return consumer.policy_check(t, a.file)


def _executions(t: Target, a: argparse.Namespace) -> Result:
    return owner.executions(t, a.consumer, a.since)


def _explain(t: Target, a: argparse.Namespace) -> Result:
    return owner.explain(t, a.execution)


def _spend(t: Target, a: argparse.Namespace) -> Result:
    return owner.spend(t, a.month)


def _budget_check(t: Target, a: argparse.Namespace) -> Result:
    return owner.budget_check(t, a.file)


_OUTPUT = {"consumer": consumer.TABLE_OUTPUT, "owner": owner.TABLE_OUTPUT}


@contextmanager
def targets(args: argparse.Namespace, *, side: str) -> Iterator[list[Target]]:
    """The targets a command runs on (several only with --regions)."""
    regions = [r.strip() for r in (getattr(args, "regions", None) or "").split(",") if r.strip()]
    if args.local:
        if args.profile or args.region or regions or args.stack != "pipeshare":
            raise usage("--local plays a scenario: --stack, --profile, --region and --regions do not apply")
        with local_targets(args.local) as run:
            by_alias = {name: account for account, name in run.aliases.items()}
            account = by_alias.get(args.account, args.account) if args.account else None
            yield [pick(run.targets, _OUTPUT[side], side, account)]
        return
    if args.account:
        raise usage("--account applies to --local (a stack target is the account of your credentials)")
    if args.region and regions:
        raise usage("give --region or --regions, not both")
    import boto3

    try:
        session = boto3.Session(profile_name=args.profile) if args.profile else boto3.Session()
    except ProfileNotFound as exc:
        raise usage(str(exc)) from None
    regions = regions or [args.region or session.region_name or ""]
    if not regions[0]:
        raise usage("no region: give --region (or set one in the profile)")
    yield [stack_target(session, args.stack, region) for region in regions]


def execute(args: argparse.Namespace, run: Command, *, side: str, read: bool = True) -> int:
    """Run one command on its target(s); print the result; return the exit code."""
    try:
        with targets(args, side=side) as found:
            results = [(t.label, t.region, run(t, args)) for t in found]
        label = "; ".join(label for label, _, _ in results)
        result = merge(results)
    except CliError as exc:
        sys.stderr.write(f"pipeshare: {exc}\n")
        return exc.code
    except (ClientError, BotoCoreError, PipeshareError) as exc:
        sys.stderr.write(f"pipeshare: AWS error: {type(exc).__name__}: {exc}\n")
        return EXIT_AWS
    emit(result, as_json=args.json, target=label)
    return result.code
