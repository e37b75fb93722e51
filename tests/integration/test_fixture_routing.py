"""Every fixture in events/ goes, unchanged, through the deployed rules to the function(s) its index entry names.

events/sources.json gives, per fixture, the template rules it must match (`routes_to`) and what the handlers must make
of it (`expect`). Deployment, as the index's `about` says: every account runs pipeshare with Mode=both, the owner
(111111111111) admits the consumer (222222222222) on its bus and names its budget policy parameter, and the consumer
forwards its own pipeline calls there.
A fixture is put on the default bus of its own `account` (documentation examples keep theirs, e.g. 123456789012),
or, when its entry names a `bus_arn`, on that bus (the consumer's notice bus: every account is deployed with
ConsumerNoticeBusName=pipeshare-notices).

- parsed: the event matches exactly `routes_to` (a Schedule route is handed to its target by the schedule: it never
  matches on a bus), each route's function is invoked, and nothing refuses it: no `invalid`/`rejected` status, no
  InvalidEvent metric, no error. A forwarded event must also be admitted and handled on the owner's bus.
- invalid: whatever the rules let through, and every EventBridge-triggered handler invoked directly, refuses it with
  one InvalidEvent metric, without a retry, an AWS call, a table write or a message.
- stream-record: the records are handed to each deployed stream-triggered function whose filters they pass, which
  handles them without a failure (a record that passes no filter, like the Lambda docs example, reaches nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeshare_local.runtime import Invocation
from pipeshare_local.stack import LocalStack
from tests.conftest import load_event, load_fixture_index
from tests.integration.stackhelpers import CONSUMER, OWNER

pytestmark = pytest.mark.local_stack

OWNER_BUS_ARN = f"arn:aws:events:us-east-1:{OWNER}:event-bus/pipeshare-owner"
DELIVERED = {"aws-docs", "aws-docs-adapted", "emulator-output", "synthetic"}
REFUSED_STATUSES = {"invalid", "rejected"}
RULE_EVENT_TYPES = {"EventBridgeRule", "Schedule"}

INDEX = load_fixture_index()
ROUTED = {Path(e["file"]).stem: e for e in INDEX if e["origin"] in DELIVERED and e["routes_to"]}
INVALID = {Path(e["file"]).stem: e for e in INDEX if e["expect"] == "invalid"}
STREAM = {Path(e["file"]).stem: e for e in INDEX if e["expect"] == "stream-record"}


NOTICE_BUS = "pipeshare-notices"


def _parameters(account: str) -> dict[str, str]:
    parameters = {"Mode": "both", "TrustedOwnerAccountIds": OWNER, "ConsumerNoticeBusName": NOTICE_BUS}
    if account == OWNER:
        parameters["ForwarderAccountIds"] = CONSUMER
        parameters["BudgetPolicyParameterName"] = "/pipeshare/budgets"
    if account == CONSUMER:
        parameters["OwnerEventBusArn"] = OWNER_BUS_ARN
    return parameters


def _deploy_for(stack: LocalStack, account: str) -> None:
    """The fixture's account, and the owner first when the consumer forwards to it."""
    for each in dict.fromkeys([OWNER, account] if account == CONSUMER else [account]):
        stack.deploy(each, _parameters(each))
    stack.deliver()  # whatever deploying emitted (nothing is shared here) is out of the way


def _account_of(event: Any) -> str:
    account = event.get("account") if isinstance(event, dict) else None
    return account if isinstance(account, str) and account.isdigit() and len(account) == 12 else CONSUMER


def _rule_name(route: str) -> str:
    """The deployed rule of a route: `Fn:Event` -> `FnEvent` (the local stack's SAM naming), a standalone rule as is."""
    return route.replace(":", "")


def _template_event(stack: LocalStack, route: str) -> dict[str, Any] | None:
    if ":" not in route:
        return None
    function, event = route.split(":")
    return dict(stack.template["Resources"][function]["Properties"]["Events"][event])


def _is_schedule(stack: LocalStack, route: str) -> bool:
    spec = _template_event(stack, route)
    return spec is not None and spec["Type"] == "Schedule"


def _event_functions(stack: LocalStack, account: str) -> list[str]:
    """The deployed functions EventBridge invokes (rule or schedule targets): the ones an event can reach."""
    resources = stack.template["Resources"]
    return sorted(
        name
        for name in stack.deployments[account].functions
        if any(e["Type"] in RULE_EVENT_TYPES for e in resources[name]["Properties"].get("Events", {}).values())
    )


def _state(stack: LocalStack, account: str) -> dict[str, Any]:
    """What a handler could have changed in an account: its tables and the messages published so far."""
    deployment = stack.deployments[account]
    tables = {t: stack.table_items(account, t) for t in ("ShareTable", "OwnerTable") if t in deployment.refs}
    return {"tables": tables, "messages": len(stack.read_notifications(account))}


def _problems(invocations: list[Invocation]) -> Iterator[str]:
    for i in invocations:
        where = f"{i.account} {i.function} ({i.trigger}, attempt {i.attempt})"
        if i.error is not None:
            yield f"{where}: error {i.error[:500]}"
        if i.metrics.get("InvalidEvent"):
            yield f"{where}: InvalidEvent metric"
        if isinstance(i.result, dict) and i.result.get("status") in REFUSED_STATUSES:
            yield f"{where}: status {i.result['status']!r} ({i.result.get('reason')})"


@pytest.mark.parametrize("name", sorted(ROUTED))
def test_fixture_reaches_exactly_its_rules_and_is_handled(stack: LocalStack, name: str) -> None:
    # Given pipeshare deployed in the fixture's own account (and the owner it forwards to)
    entry = ROUTED[name]
    event = load_event(name)
    bus_arn = entry.get("bus_arn")
    account = bus_arn.split(":")[4] if bus_arn else _account_of(event)
    bus = bus_arn.rsplit("/", 1)[1] if bus_arn else "default"
    _deploy_for(stack, account)
    on_bus = [r for r in entry["routes_to"] if not _is_schedule(stack, r)]
    by_schedule = [r for r in entry["routes_to"] if _is_schedule(stack, r)]
    first = len(stack.delivered)

    # When the raw fixture is put on the account's default bus and delivered (and, for a scheduled event, handed by
    # each schedule to its target, as EventBridge does)
    stack.put_event(account, event, bus=bus)
    invocations = stack.deliver()
    rules = {rule.name: rule for rule in stack.deployments[account].rules}
    for route in by_schedule:
        rule = rules[_rule_name(route)]
        assert rule.function is not None
        assert rule.schedule is not None, f"{route} is not a deployed schedule"
        invocations += rule.function.invoke_async(load_event(name), trigger=f"schedule:{rule.name}")
    invocations += stack.deliver()

    # Then it matched exactly the listed rules on its account's default bus (or its bus_arn), unchanged
    delivered = stack.delivered[first]
    assert (delivered.account, delivered.bus, delivered.dropped) == (account, bus, False)
    assert delivered.event == load_event(name), "the fixture was changed on its way"
    assert sorted(delivered.matched) == sorted(_rule_name(r) for r in on_bus)
    # and every listed rule's target got it: its function, or the bus it forwards to (admitted, and handled there)
    for route in entry["routes_to"]:
        rule = rules[_rule_name(route)]
        if rule.forward_to is not None:
            assert delivered.refused is None, delivered.refused
            target_account, target_bus = rule.forward_to.split(":")[4], rule.forward_to.rsplit("/", 1)[1]
            [forwarded] = [
                d for d in stack.delivered[first + 1 :] if (d.account, d.bus) == (target_account, target_bus)
            ]
            assert forwarded.event == load_event(name)
            assert forwarded.matched, f"the forwarded event matches no rule on {target_bus}"
            for target_rule in forwarded.matched:
                assert any(i.account == target_account and i.trigger == f"rule:{target_rule}" for i in invocations), (
                    f"{target_rule} in {target_account} was not invoked"
                )
        else:
            assert rule.function is not None
            trigger = f"{'schedule' if rule.schedule else 'rule'}:{rule.name}"
            assert any(
                i.account == account and i.function == rule.function.logical_id and i.trigger == trigger
                for i in invocations
            ), f"{route} did not invoke {rule.function.logical_id}"
    # and nothing refused it: no invalid/rejected status, no InvalidEvent metric, no error
    assert invocations
    assert list(_problems(invocations)) == []


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_fixture_is_refused_without_side_effect(stack: LocalStack, name: str) -> None:
    # Given pipeshare deployed in the account the fixture names (the consumer when it names none that is valid)
    event = load_event(name)
    account = _account_of(event)
    _deploy_for(stack, account)
    before = {a: _state(stack, a) for a in stack.deployments}
    calls = len(stack.calls(functions_only=True))

    # When the raw fixture goes through the deployed rules
    stack.put_event(account, event)
    routed = stack.deliver()
    # and straight to every handler EventBridge can invoke, as if a rule had let it through
    direct = {
        function: stack.deployments[account].functions[function].invoke_async(load_event(name), trigger="test")
        for function in _event_functions(stack, account)
    }
    routed += stack.deliver()

    # Then every handler that got it refused it once: status invalid, one InvalidEvent metric, one error line
    for invocation in [*routed, *(i for attempts in direct.values() for i in attempts)]:
        where = f"{invocation.function} ({invocation.trigger})"
        assert invocation.error is None, f"{where}: {invocation.error}"
        assert invocation.result == {"status": "invalid"}, where
        assert invocation.metrics.get("InvalidEvent") == 1, where
        assert len([line for line in invocation.logs if line.get("level") == "ERROR"]) == 1, where
    assert all(len(attempts) == 1 for attempts in direct.values()), "a refused event must not be retried"
    assert len({(i.function, i.trigger) for i in routed}) == len(routed), "a refused event must not be retried"
    # and nothing happened: no AWS call by a function, no table write, no message
    assert stack.calls(functions_only=True)[calls:] == []
    assert {a: _state(stack, a) for a in stack.deployments} == before


@pytest.mark.parametrize("name", sorted(STREAM))
def test_stream_record_fixture_is_handled_by_the_functions_whose_filters_it_passes(
    stack: LocalStack, name: str
) -> None:
    # Given pipeshare deployed for the owner and the consumer
    _deploy_for(stack, CONSUMER)
    records = load_event(name)["Records"]

    # When the records are handed to each stream-triggered function whose filters they pass (Lambda's filtering)
    invocations: list[Invocation] = []
    for deployment in stack.deployments.values():
        for mapping in deployment.streams:
            passing = [r for r in records if not mapping.filters or any(f.matches_event(r) for f in mapping.filters)]
            if passing:
                batch = {"Records": copy.deepcopy(passing)}
                invocations.append(mapping.function.invoke_once(batch, trigger="stream"))

    # Then none fails, reports a batch item failure or counts an invalid record
    for invocation in invocations:
        assert invocation.error is None, invocation.error
        assert invocation.result == {"batchItemFailures": []}
        assert not invocation.metrics.get("InvalidEvent")
