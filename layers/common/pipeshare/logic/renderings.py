"""What people read: the e-mail text and the chat notification of every message pipeshare publishes. Pure, no I/O.

Each message is published once with SNS `MessageStructure=json` (aws-facts §15): `default` and the machine protocols
carry the JSON body as before; `email` carries the plain text rendered here; with chat notifications on, the key
chosen (`https`) carries an Amazon Q Developer (AWS Chatbot) custom notification rendered here.

A message kind is one entry of RENDERERS: its key is the body's `event` (with the action for budget enforcement,
`kind_of`), its value a small function from the JSON body to a `Reading` (title, facts, next steps, the command to
run). The e-mail text and the chat notification are both made from the Reading. Renderers read the JSON body only,
so a body composed earlier (an outbox alert) renders the same at publish time. Only the notifiers import this
module (cold start).
"""

from __future__ import annotations

import json
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pipeshare.models.notification import Reading

# aws-facts §2.3: an invitation to share resources not on RAM's seven-day list (sagemaker:Pipeline is not) expires
# 12 hours after it was sent.
INVITATION_WINDOW: Final = timedelta(hours=12)
PIPELINE_TYPE: Final = "sagemaker:Pipeline"

# The message attribute names every message kind uses (README "Messages emitted"): one name per meaning.
ATTRIBUTE_NAMES: Final = frozenset(
    {
        "event",
        "status",
        "action",
        "outcome",
        "reason",
        "source",
        "dry_run",
        "month",
        "threshold",
        "thresholds",
        "attempt",
        "consumer_account",
        "owner_account",
        "pipeline_name",
    }
)
# names older outbox items were composed with -> the common name (an alert stored before the rename publishes right)
_RENAMED: Final = {"consumer_account_id": "consumer_account", "sender_account_id": "owner_account"}

CHAT_KEYS: Final = ("https",)  # where a chat notification may go (aws-facts §15.3): the `ChatNotifications` choices
CHAT_SUMMARY_MAX: Final = 100


def common_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """The attributes under the common names (an item composed before the rename keeps its values)."""
    return {_RENAMED.get(name, name): value for name, value in attributes.items()}


# --------------------------------------------------------------------------------------------------------- helpers


def _s(value: Any, default: str = "?") -> str:
    return default if value is None or value == "" else str(value)


def _name(arn: Any) -> str:
    return _s(arn).rsplit("/", 1)[-1]


def _dry(message: Mapping[str, Any], title: str) -> str:
    return f"DRY RUN (nothing was done): {title}" if message.get("dry_run") is True else title


def _money(block: Mapping[str, Any] | None, amount_key: str = "total") -> str:
    if not block:
        return "?"
    return f"est. {_s(block.get('currency'), 'USD')} {_s(block.get(amount_key))}"


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def accept_by(message: Mapping[str, Any]) -> tuple[datetime | None, bool]:
    """When a held invitation expires (sent time + INVITATION_WINDOW), and whether that window is confirmed for all
    its resource types (only sagemaker:Pipeline is: aws-facts §2.3)."""
    sent = _parse_time(message.get("invited_at"))
    types = {r.get("type") for r in message.get("resources") or [] if isinstance(r, Mapping)}
    return (None if sent is None else sent + INVITATION_WINDOW), types <= {PIPELINE_TYPE}


# ---------------------------------------------------------------------------------------------- consumer messages


def _invitation_facts(m: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    resources = ", ".join(f"{_name(r.get('arn'))} ({_s(r.get('type'))})" for r in m.get("resources") or [])
    return (
        ("Owner account (sender)", _s(m.get("sender_account_id"))),
        ("This account", _s(m.get("receiver_account_id"))),
        ("Share", f"{_s(m.get('share_name'))} ({_s(m.get('share_arn'))})"),
        ("Resources", resources or "none listed"),
        ("Invitation", _s(m.get("invitation_arn"))),
        ("Decision", f"{_s(m.get('decision'))} by rule {_s(m.get('rule'))}: {_s(m.get('reason'))}"),
        ("Policy", _s(m.get("policy_source"))),
    )


def _accepted(m: Mapping[str, Any]) -> Reading:
    return Reading(
        title=f"Accepted share {_s(m.get('share_name'))!r} from trusted owner account {_s(m.get('sender_account_id'))}",
        facts=_invitation_facts(m),
        next_steps=("Nothing to do: the shared pipelines are usable from this account now.",),
    )


def _held(m: Mapping[str, Any]) -> Reading:
    sender, invitation = _s(m.get("sender_account_id")), _s(m.get("invitation_arn"))
    expires, confirmed = accept_by(m)
    if expires is None:
        until = "unknown (the invitation's time was not recorded): RAM invitations last 12 hours or more"
    else:
        until = f"{_utc(expires)} (12 hours after it was sent, {_s(m.get('invited_at'))})"
        if not confirmed:
            until += "; some resource types other than sagemaker:Pipeline allow 7 days"
    return Reading(
        title=f"HELD: share {_s(m.get('share_name'))!r} from account {sender} needs your review",
        facts=(*_invitation_facts(m), ("Can be accepted until", until)),
        next_steps=(
            f"If you trust account {sender} for this share, approve it before it expires (the command below).",
            "To accept every share from this account from now on, add it to the trust policy's trusted owners.",
            "Otherwise do nothing: the invitation expires unanswered and nothing is accepted.",
        ),
        command=f'pipeshare consumer approve {invitation} --reason "<why this share is trusted>"',
    )


def _rejected(m: Mapping[str, Any]) -> Reading:
    sender = _s(m.get("sender_account_id"))
    return Reading(
        title=f"Rejected share {_s(m.get('share_name'))!r} from account {sender}",
        facts=_invitation_facts(m),
        next_steps=(
            f"Nothing to do if account {sender} is not expected to share with you.",
            "If it is, fix the trust policy and ask the owner to share again (a rejected invitation cannot be "
            "accepted).",
        ),
    )


def _expired(m: Mapping[str, Any]) -> Reading:
    return Reading(
        title=f"Invitation to share {_s(m.get('share_name'))!r} from account {_s(m.get('sender_account_id'))} "
        "expired unanswered",
        facts=_invitation_facts(m),
        next_steps=("If the share is still wanted, ask the owner to share again.",),
    )


def _digest_facts(m: Mapping[str, Any], announced: str) -> tuple[tuple[str, str], ...]:
    """A sweep's digest (held invitations, or reminders): who sent them, which shares, how many went one by one."""
    senders = ", ".join(f"{acct} ({n})" for acct, n in (m.get("senders") or {}).items())
    if m.get("other_senders"):
        senders += f" and {m['other_senders']} other accounts"
    return (
        ("Senders (held invitations)", senders or "?"),
        ("Shares", ", ".join(map(str, m.get("share_names") or [])) or "?"),
        (announced, _s(m.get("threshold"))),
    )


def _digest(m: Mapping[str, Any]) -> Reading:
    return Reading(
        title=f"{_s(m.get('count'))} more invitations HELD from untrusted senders",
        facts=_digest_facts(m, "Announced one by one before this digest"),
        next_steps=(
            "Nothing was accepted. Review the held invitations (share table, status HELD, rule untrusted-owner).",
            "Approve the ones you trust before they expire (12 hours after they were sent): "
            'pipeshare consumer approve INVITATION_ARN --reason "..."',
        ),
    )


def _reminder(m: Mapping[str, Any]) -> Reading:
    sender, invitation = _s(m.get("sender_account_id")), _s(m.get("invitation_arn"))
    return Reading(
        title=f"REMINDER: HELD share {_s(m.get('share_name'))!r} from account {sender} expires at "
        f"{_s(m.get('accept_by'))}",
        facts=(
            ("Owner account (sender)", sender),
            ("This account", _s(m.get("receiver_account_id"))),
            ("Share", f"{_s(m.get('share_name'))} ({_s(m.get('share_arn'))})"),
            ("Invitation", invitation),
            ("Sent", _s(m.get("invited_at"))),
            ("Can be accepted until", _s(m.get("accept_by"))),
        ),
        next_steps=(
            f"If you trust account {sender} for this share, approve it before then (the command below).",
            "Otherwise do nothing: RAM expires the invitation unanswered and nothing is accepted.",
        ),
        command=f'pipeshare consumer approve {invitation} --reason "<why this share is trusted>"',
    )


def _reminder_digest(m: Mapping[str, Any]) -> Reading:
    return Reading(
        title=f"{_s(m.get('count'))} more HELD invitations expire soon, the first at {_s(m.get('accept_by'))}",
        facts=_digest_facts(m, "Reminded one by one before this digest"),
        next_steps=(
            "Review the held invitations (pipeshare consumer invitations --status HELD) and approve the ones you "
            'trust before they expire: pipeshare consumer approve INVITATION_ARN --reason "..."',
        ),
    )


def _disallowed(m: Mapping[str, Any]) -> Reading:
    types = ", ".join(map(str, m.get("new_types") or [])) or "?"
    return Reading(
        title=f"Accepted share from account {_s(m.get('owner_account_id'))} now carries {types}",
        facts=(
            ("Owner account", _s(m.get("owner_account_id"))),
            ("Share", _s(m.get("share_arn"))),
            ("New resource types", types),
            ("Not allowed by the trust policy", ", ".join(map(str, m.get("disallowed_types") or [])) or "?"),
        ),
        next_steps=(_s(m.get("effect")),),
    )


def _policy_invalid(m: Mapping[str, Any]) -> Reading:
    return Reading(
        title="Trust policy INVALID: no invitation will be accepted",
        facts=(("Policy", _s(m.get("policy_source"))), ("Errors", "; ".join(map(str, m.get("errors") or [])))),
        next_steps=(
            _s(m.get("effect")),
            "Fix the policy: pending invitations are decided at the next sweep, if they have not expired by then.",
        ),
    )


# ------------------------------------------------------------------------------------------------- owner messages


def _inventory(m: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return (
        ("Consumer account", _s(m.get("consumer_account_id"))),
        ("Pipeline", f"{_name(m.get('pipeline_arn'))} ({_s(m.get('pipeline_arn'))})"),
        ("Share", f"{_s(m.get('share_name'))} ({_s(m.get('share_arn'))})"),
        ("Permission", _s(m.get("permission_arn"))),
        ("Cost", _s(m.get("cost_statement"))),
    )


def _inventory_reading(what: str, steps: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Reading]:
    def render(m: Mapping[str, Any]) -> Reading:
        title = what.format(consumer=_s(m.get("consumer_account_id")), pipeline=_name(m.get("pipeline_arn")))
        holds = m.get("consumer_holds")
        facts = _inventory(m)
        if isinstance(holds, Mapping) and holds.get("share_arn") != m.get("share_arn"):
            can = "can still run it" if holds.get("cost_bearing") else "can still read it"
            facts += (("Through another share", f"{_s(holds.get('share_name'))}: {can}"),)
        return Reading(title=title, facts=facts, next_steps=steps)

    return render


def _execution_facts(m: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    who = m.get("consumer_account") or " or ".join(map(str, m.get("candidates") or [])) or "the owner account"
    return (
        ("Consumer account", _s(who)),
        ("Pipeline", f"{_s(m.get('pipeline_name'))} ({_s(m.get('pipeline_arn'))})"),
        ("Execution", _s(m.get("execution_arn"))),
        ("Owner account (pays)", _s(m.get("owner_account"))),
    )


def _explain(m: Mapping[str, Any]) -> str:
    return f"pipeshare owner explain {_s(m.get('execution_arn'))}"


_VERBS = {"start": "started", "stop": "stopped", "retry": "retried"}


def _alert(m: Mapping[str, Any]) -> Reading:
    attribution = m.get("attribution") or {}
    if m.get("consumer_account"):
        inferred = attribution.get("source") == "inferred"
        actor = f"Consumer {m['consumer_account']}" + (" (inferred)" if inferred else "")
    elif m.get("candidates"):
        actor = "One of " + ", ".join(map(str, m["candidates"]))
    else:
        actor = "The owner account"
    verb = _VERBS.get(str(m.get("action")), _s(m.get("action")))
    facts = (*_execution_facts(m), ("Evidence", f"{_s(attribution.get('source'))}: {_s(attribution.get('evidence'))}"))
    if attribution.get("caveat"):
        facts += (("Caveat", str(attribution["caveat"])),)
    projection = m.get("projection")
    if isinstance(projection, Mapping) and projection.get("summary"):
        facts += (("Cost at most", str(projection["summary"])),)
    title = f"{actor} {verb} a run of {_s(m.get('pipeline_name'))} (owner account pays)"
    if m.get("event") == "execution.attribution-corrected":
        title = f"Correction: {title}"
    return Reading(
        title=title,
        facts=facts,
        next_steps=("Check who ran it and what it will cost (the command below).",),
        command=_explain(m),
    )


def _finished(m: Mapping[str, Any]) -> Reading:
    estimate, mtd, execution = m.get("estimate") or {}, m.get("month_to_date") or {}, m.get("execution") or {}
    budget = mtd.get("budget") or {}
    cost = f"{_money(estimate, 'attempt_total')} this attempt, {_money(estimate)} the execution"
    if estimate.get("lower_bound") or estimate.get("complete") is False:
        cost += " (at least: some steps or instance types are not priced)"
    spend = f"{_s(mtd.get('consumer_spend'))} in {_s(mtd.get('month'))}"
    if budget:
        spend += f": {_s(budget.get('percent_used'))}% of its {_s(budget.get('monthly_limit'))} budget"
    who = _s(m.get("consumer_account") or " or ".join(map(str, m.get("candidates") or [])))
    return Reading(
        title=f"Run of {_s(m.get('pipeline_name'))} by {who} {_s(execution.get('status'))}",
        facts=(
            *_execution_facts(m),
            ("Attempt", _s(execution.get("attempt"))),
            ("Cost", cost),
            ("Consumer's month to date", spend),
        ),
        next_steps=("An estimate, not the bill. See the cost per step with the command below.",),
        command=_explain(m),
    )


def _threshold(m: Mapping[str, Any]) -> Reading:
    spend, budget, enforcement = m.get("spend") or {}, m.get("budget") or {}, m.get("enforcement") or {}
    top = ", ".join(f"{p.get('pipeline')} {p.get('spend')}" for p in m.get("top_pipelines") or [])
    return Reading(
        title=f"Consumer {_s(m.get('consumer_account'))} reached {_s(m.get('threshold'))}% of its "
        f"{_s(m.get('month'))} budget",
        facts=(
            ("Consumer account", _s(m.get("consumer_account"))),
            ("Spend", f"{_money(spend)} of {_s(budget.get('monthly_limit'))} ({_s(budget.get('percent_used'))}%)"),
            ("Top pipelines", top or "none"),
            ("Enforcement", _s(enforcement.get("statement"))),
        ),
        next_steps=(
            "Talk to the consumer, or change its budget in the budget policy if the spend is expected.",
            "Estimates, not the bill: paid by the owner account.",
        ),
    )


def _unattributed(m: Mapping[str, Any]) -> Reading:
    line = m.get("line") or {}
    return Reading(
        title=f"Unattributed runs of {_s(m.get('pipeline_name'))} reached {_s(m.get('threshold'))}% of their "
        f"{_s(m.get('month'))} line",
        facts=(
            ("Pipeline", f"{_s(m.get('pipeline_name'))} ({_s(m.get('pipeline_arn'))})"),
            (
                "Spend",
                f"est. {_s(line.get('currency'), 'USD')} {_s(m.get('spend'))} of {_s(line.get('monthly_limit'))}",
            ),
        ),
        next_steps=(_s(m.get("statement")), "Find who ran them: check the consumers' CloudTrail records."),
    )


def _enforcement_facts(m: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    spend, budget = m.get("spend") or {}, m.get("budget") or {}
    return (
        ("Consumer account", _s(m.get("consumer_account"))),
        ("Outcome", _s(m.get("outcome")) + (f" ({m['detail']})" if m.get("detail") else "")),
        ("Why", _s(m.get("why"))),
        ("Spend", f"{_money(spend)} of {_s(budget.get('monthly_limit'))} in {_s(m.get('month'))}"),
    )


def _stop(m: Mapping[str, Any]) -> Reading:
    execution = m.get("execution") or {}
    outcome, consumer, name = m.get("outcome"), _s(m.get("consumer_account")), _s(execution.get("pipeline_name"))
    title = {
        "not-run": f"would stop the run of {name} by {consumer}",
        "failed": f"FAILED to stop the run of {name} by {consumer}",
        "skipped": f"the run of {name} by {consumer} had already ended",
    }.get(str(outcome), f"stopped the run of {name} by {consumer}")
    facts = (*_enforcement_facts(m), ("Execution", _s(execution.get("execution_arn"))))
    return Reading(
        title=_dry(m, f"Budget enforcement: {title}"),
        facts=facts + tuple(("Note", str(n)) for n in m.get("notes") or []),
        next_steps=("See the run and its cost with the command below.",),
        command=f"pipeshare owner explain {_s(execution.get('execution_arn'))}",
    )


def _remove(m: Mapping[str, Any]) -> Reading:
    share, read_only = m.get("share") or {}, m.get("read_only")
    consumer, name = _s(m.get("consumer_account")), _s(share.get("share_name"))
    title = {
        "not-run": f"would remove {consumer} from share {name}",
        "failed": f"FAILED to remove {consumer} from share {name}",
        "skipped": f"{consumer} was already off share {name}",
    }.get(str(m.get("outcome")), f"removed {consumer} from share {name}")
    facts = (
        *_enforcement_facts(m),
        ("Share", f"{name} ({_s(share.get('share_arn'))})"),
        ("Pipelines", ", ".join(map(_name, share.get("pipelines") or [])) or "?"),
    )
    if isinstance(read_only, Mapping):
        facts += (("Read-only access to the same pipelines", _s(read_only.get("outcome"))),)
    return Reading(
        title=_dry(m, f"Budget enforcement: {title}"),
        facts=facts + tuple(("Note", str(n)) for n in m.get("notes") or []),
        next_steps=("To give the consumer its access back, share the pipelines again once its budget allows.",),
    )


def _cannot_remove(m: Mapping[str, Any]) -> Reading:
    share = m.get("share") or {}
    return Reading(
        title=_dry(
            m,
            f"Budget enforcement: cannot remove {_s(m.get('consumer_account'))} from share "
            f"{_s(share.get('share_name'))}",
        ),
        facts=(
            *_enforcement_facts(m),
            ("Share", f"{_s(share.get('share_name'))} ({_s(share.get('share_arn'))})"),
            ("Principals", ", ".join(map(str, share.get("principals") or []))),
        ),
        next_steps=tuple(str(n) for n in m.get("notes") or []) or ("Remove it from the share by hand.",),
    )


def _lost_allow_execution(m: Mapping[str, Any]) -> Reading:
    again = m.get("read_only_before") is True
    what = "is read-only again on {pipeline}" if again else "is now read-only on {pipeline} (was allow-execution)"
    return _inventory_reading("Consumer {consumer} " + what, ("Nothing to do: it can no longer run it.",))(m)


def _notice(m: Mapping[str, Any]) -> Reading:
    owner, spend = _s(m.get("owner_account_id")), m.get("spend") or {}
    pipelines = ", ".join(_name(a) for a in m.get("pipeline_arns") or []) or "?"
    if m.get("action") == "stop_execution":
        done = f"stopped your run of {pipelines}"
        facts: tuple[tuple[str, str], ...] = (("Execution", _s(m.get("execution_arn"))),)
        steps = ("Your next runs of these pipelines are stopped too while you are over the budget this month.",)
    else:
        done = f"took you off its share {_s(m.get('share_name'))} ({pipelines})"
        facts = (("Share", _s(m.get("share_arn"))), ("Read-only share", _s(m.get("read_only_share_arn"), "none")))
        steps = ("You can no longer run these pipelines this month; ask the owner to raise the budget if needed.",)
    if m.get("dry_run"):
        done = "would have " + done.replace("took", "taken")
        steps = ("Nothing was done: the owner's budget enforcement is a dry run. It would act this way if enabled.",)
    figure = f"{_s(spend.get('counted'))} of {_s(spend.get('monthly_limit'))} {_s(spend.get('currency'), 'USD')}"
    return Reading(
        title=_dry(m, f"Owner account {owner} {done}: your spend is over its budget for you"),
        facts=(
            ("Owner account", owner),
            ("This account", _s(m.get("consumer_account_id"))),
            ("Month", _s(m.get("month"))),
            ("Spend counted against the budget", figure),
            ("Reason", _s(m.get("reason"))),
            *facts,
        ),
        next_steps=(*steps, f"Contact the owner account {owner} about the budget (its owning team)."),
    )


RENDERERS: Final[dict[str, Callable[[Mapping[str, Any]], Reading]]] = {
    # consumer (NotifyDecisionsFunction)
    "invitation.accepted": _accepted,
    "invitation.held": _held,
    "invitation.rejected": _rejected,
    "invitation.expired": _expired,
    "invitation.held.digest": _digest,
    "invitation.reminder": _reminder,
    "invitation.reminder.digest": _reminder_digest,
    "share.disallowed-resource": _disallowed,
    "policy.invalid": _policy_invalid,
    # owner (NotifyOwnerFunction)
    "inventory.accepted": _inventory_reading(
        "Consumer {consumer} now holds {pipeline}",
        ("If it can run the pipeline (allow-execution), make sure its budget is set: the owner account pays.",),
    ),
    "inventory.gained-allow-execution": _inventory_reading(
        "Consumer {consumer} can now RUN {pipeline} (owner account pays)",
        ("Make sure the consumer has a budget in the budget policy: everything it runs is billed to this account.",),
    ),
    "inventory.lost-allow-execution": _lost_allow_execution,
    "inventory.revoked": _inventory_reading(
        "Consumer {consumer} no longer holds {pipeline} through this share", ("Nothing to do.",)
    ),
    "execution.start": _alert,
    "execution.stop": _alert,
    "execution.retry": _alert,
    "execution.attribution-corrected": _alert,
    "execution.finished": _finished,
    "budget.threshold": _threshold,
    "budget.unattributed-threshold": _unattributed,
    "budget.enforcement.stop_execution": _stop,
    "budget.enforcement.remove_from_share": _remove,
    "budget.enforcement.cannot_remove_from_share": _cannot_remove,
    # consumer (RelayNoticesFunction): an owner's enforcement notice
    "notice.stop_execution": _notice,
    "notice.remove_from_share": _notice,
}


NOTICE_SCHEMA_PREFIX: Final = "pipeshare.consumer.enforcement-notice/"


def kind_of(message: Mapping[str, Any]) -> str:
    """The RENDERERS key of a body: its event, and for budget enforcement its action (an owner's enforcement notice
    relayed to the consumer: `notice.<action>`)."""
    if str(message.get("schema", "")).startswith(NOTICE_SCHEMA_PREFIX):
        return f"notice.{_s(message.get('action'))}"
    event = _s(message.get("event"))
    return f"{event}.{_s(message.get('action'))}" if event == "budget.enforcement" else event


def _event(message: Mapping[str, Any]) -> str:
    """The body's event; an owner's notice, relayed as sent, has none: its kind names it."""
    return str(message["event"]) if message.get("event") else kind_of(message)


def reading(subject: str, message: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> Reading:
    """The Reading of a body. `context`: facts the notifier knows that the body does not carry (read by the renderers
    beside the body, never published). A kind without a renderer reads as its subject (tests make sure none is)."""
    render = RENDERERS.get(kind_of(message))
    fallback = Reading(title=_dry(message, subject.removeprefix("pipeshare: ")))
    if render is None:
        return fallback
    try:
        return render(ChainMap(dict(context or {}), dict(message)))
    except (AttributeError, TypeError, KeyError, ValueError):  # a body not of its kind's shape: the subject still reads
        return fallback


# --------------------------------------------------------------------------------------------------------- outputs


def email_text(subject: str, message: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> str:
    """The plain-text e-mail: what happened, the facts, what to do next, the command; account IDs in full."""
    read = reading(subject, message, context)
    width = max((len(label) for label, _ in read.facts), default=0)
    lines = [read.title, ""]
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in read.facts]
    if read.next_steps:
        lines += ["", "What to do next:"] + [f"- {step}" for step in read.next_steps]
    if read.command:
        lines += ["", "Run:", f"  {read.command}"]
    lines += [
        "",
        f"-- pipeshare, {_event(message)} ({_s(message.get('schema'))}). The full JSON message goes to "
        "email-json, sqs, lambda, http(s) and firehose subscriptions.",
    ]
    return "\n".join(lines) + "\n"


def _arns(message: Mapping[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and value.startswith("arn:") and value not in found:
            found.append(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(message)
    return found[:10]


def _accounts(read: Reading) -> list[str]:
    return [v for label, v in read.facts if "account" in label.lower() and v.isdigit() and len(v) == 12]


def chat_notification(
    subject: str, message: Mapping[str, Any], context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An Amazon Q Developer in chat applications (AWS Chatbot) custom notification (aws-facts §15.2)."""
    read = reading(subject, message, context)
    steps = list(read.next_steps) + ([f"Run `{read.command}`"] if read.command else [])
    keywords: Iterable[str] = dict.fromkeys([_event(message), *_accounts(read), *read.keywords])
    return {
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": read.title,
            "description": "\n".join(f"*{label}:* {value}" for label, value in read.facts),
            "nextSteps": steps,
            "keywords": list(keywords),
        },
        "metadata": {
            "summary": subject[:CHAT_SUMMARY_MAX],
            "eventType": _event(message),
            "relatedResources": _arns(message),
            "additionalContext": {"schema": _s(message.get("schema"))},
        },
    }


def protocol_texts(
    subject: str, message: Mapping[str, Any], context: Mapping[str, Any] | None = None, *, chat: str = ""
) -> dict[str, str]:
    """The per-protocol texts that replace the JSON body (`MessageStructure=json`): `email`, and with `chat` (one of
    CHAT_KEYS) the chat notification under that key. Raises ValueError for an unknown chat key."""
    if chat and chat not in CHAT_KEYS:
        raise ValueError(f"chat notifications go under one of {CHAT_KEYS}, not {chat!r}")
    texts = {"email": email_text(subject, message, context)}
    if chat:
        texts[chat] = json.dumps(chat_notification(subject, message, context), sort_keys=True)
    return texts
