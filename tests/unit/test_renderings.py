"""pipeshare.logic.renderings: the e-mail text and the chat notification of every message kind, built from the real
message builders; subjects that never cut account IDs; the common attribute names; the per-protocol SNS message."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_args

import pytest

from pipeshare.adapters.sns_notifier import MACHINE_PROTOCOLS, MAX_MESSAGE_BYTES, structured
from pipeshare.logic import notify, owner_notify
from pipeshare.logic.attribution import alert_message, merge
from pipeshare.logic.budget_messages import (
    group_share_message,
    share_message,
    stop_message,
    threshold_message,
    unattributed_message,
)
from pipeshare.logic.budgets import share_removals
from pipeshare.logic.consumer_notices import notice_message
from pipeshare.logic.cost_messages import finish_message
from pipeshare.logic.inventory import diff
from pipeshare.logic.notify import SUBJECT_MAX, build_notification, notify_decision
from pipeshare.logic.owner_notify import inventory_change_notification, owner_notification
from pipeshare.logic.renderings import (
    ATTRIBUTE_NAMES,
    RENDERERS,
    accept_by,
    chat_notification,
    email_text,
    kind_of,
    protocol_texts,
    reading,
)
from pipeshare.models.budgets import LineSpend, StopOrder, UnattributedLine
from pipeshare.models.consumer_notices import EnforcementNotice
from pipeshare.models.executions import ExecutionRecord
from pipeshare.models.outbox import DecisionHistoryItem
from pipeshare.models.owner import Grant
from pipeshare.models.types import PipelineAction
from tests.conftest import ROOT
from tests.fakes import FakeNotifier
from tests.unit.test_attribution import at, consumer_call, executing, fold, forwarded_start, inferred, status_at
from tests.unit.test_attribution import grant as alert_grant
from tests.unit.test_budgets import budget, enforcing, run, spend

pytestmark = pytest.mark.usefixtures("socket_disabled")

OWNER, CONSUMER, OTHER = "111111111111", "222222222222", "333333333333"
SHORT, LONG = "churn-train", "p" + "-x" * 120  # SageMaker and RAM names go up to 256 characters
ALLOW = "AWSRAMPermissionSageMakerPipelineAllowExecution"
READ = "AWSRAMDefaultPermissionSageMakerPipeline"
INVITATION = f"arn:aws:ram:us-east-1:{OWNER}:resource-share-invitation/7f3c1a2b-0000-4000-8000-000000000001"

Sample = tuple[str, dict[str, Any], dict[str, str], dict[str, Any]]  # subject, body, attributes, context


# -------------------------------------------------------------------------------------------- one sample per kind


def _history(name: str, **fields: Any) -> DecisionHistoryItem:
    base = {
        "pk": f"INVITATION#{INVITATION}",
        "sk": "HIST#2026-05-01T08:56:26Z#1",
        "kind": "invitation",
        "at": "2026-05-01T08:56:26Z",
        "invitation_arn": INVITATION,
        "share_arn": f"arn:aws:ram:us-east-1:{OWNER}:resource-share/c4506c70",
        "share_name": name,
        "sender_account_id": OWNER,
        "receiver_account_id": CONSUMER,
        "region": "us-east-1",
        "resources": [{"arn": f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/{name}", "type": "sagemaker:Pipeline"}],
        "decision": "hold",
        "rule": "untrusted-owner",
        "reason": "sender not in trusted owners",
        "invited_at": "2026-05-01T08:56:24.977000Z",
        "policy_source": "parameters",
    }
    return DecisionHistoryItem.model_validate({**base, **fields})


def _consumer(item: DecisionHistoryItem) -> Sample:
    notification = build_notification(item)
    assert notification is not None
    return notification.subject, notification.message, notification.attributes, notification.context


def _invitation(status: str) -> Callable[[str], Sample]:
    return lambda name: _consumer(_history(name, to_status=status))


def _digest(name: str) -> Sample:
    return _consumer(
        _history(
            name,
            kind="digest",
            to_status="HELD",
            count=7,
            threshold=5,
            senders={OTHER: 6, "444444444444": 1},
            share_names=[name],
        )
    )


def _reminder(name: str, *, count: int | None = None) -> Sample:
    digest = {"count": count, "threshold": 5, "senders": {OTHER: count}, "share_names": [name]} if count else {}
    return _consumer(
        _history(name, kind="reminder", to_status="HELD", accept_by="2026-05-01T20:56:24Z", notice=None, **digest)
    )


def _notice(action: str, *, dry_run: bool = False) -> Callable[[str], Sample]:
    """An owner's enforcement notice as the consumer's relay publishes it (events/ fixture, renamed pipeline)."""

    def build(name: str) -> Sample:
        detail = json.loads((ROOT / "events" / "eventbridge_enforcement_notice.json").read_text())["detail"]
        name = re.sub(r"[^A-Za-z0-9-]", "x", name).strip("-")  # a notice carries valid pipeline ARNs only
        arn = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/{name}"
        detail.update(pipeline_arns=[arn], execution_arn=f"{arn}/execution/p4jn9xou8a8s", dry_run=dry_run)
        detail["outcome"] = "not-run" if dry_run else "done"
        if action == "remove_from_share":
            detail.update(
                action=action,
                execution_arn=None,
                attempt=None,
                share_arn=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/c4506c70",
                share_name=name,
            )
        message = notice_message(EnforcementNotice.model_validate(detail))
        return message.subject, message.message, message.attributes, {}

    return build


def _audit(name: str) -> Sample:
    types = [f"glue:{name}", "sagemaker:Model"]
    return _consumer(
        _history(
            name,
            kind="audit",
            to_status="DISALLOWED_RESOURCE",
            owner_account_id=OWNER,
            new_types=types,
            disallowed_types=types,
        )
    )


def _policy(name: str) -> Sample:
    return _consumer(_history(name, kind="policy", to_status="POLICY_INVALID", errors=[f"bad account {name}"]))


def _grant(name: str, permission: str = ALLOW, **fields: Any) -> Grant:
    return Grant(
        pipeline_arn=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/{name}",
        consumer=CONSUMER,
        share_arn=f"arn:aws:ram:us-east-1:{OWNER}:resource-share/{name}",
        share_name=name,
        association_status="ASSOCIATED",
        permission_arn=f"arn:aws:ram::aws:permission/{permission}",
        permission_name=permission,
        **fields,
    )


def _change(kind: str, before: Grant | None, after: Grant | None) -> Sample:
    item = {
        "item_type": "change",
        "kind": kind,
        "notable": True,
        "before": None if before is None else before.model_dump(mode="json"),
        "after": None if after is None else after.model_dump(mode="json"),
        "at": "2026-05-01T09:00:00Z",
    }
    notification = inventory_change_notification(item)
    assert notification is not None
    return notification.subject, notification.message, notification.attributes, notification.context


def _alert(action: PipelineAction, corrected: bool = False) -> Callable[[str], Sample]:
    def build(name: str) -> Sample:
        calls = [executing(), forwarded_start()]
        attempt = 0
        if action != PipelineAction.START:  # a stop, or a retry after a failure, by the consumer
            retried = [status_at("Failed", at(9, 39)), status_at("Executing", at(9, 41))]
            calls += [*(retried if action == PipelineAction.RETRY else []), consumer_call(action, CONSUMER, at(9, 40))]
            attempt = 2 if action == PipelineAction.RETRY else 0
        record = fold(calls)
        if name != SHORT:  # the same record on a pipeline of that name (ExecutionArn admits ASCII names only)
            name = re.sub("[^A-Za-z0-9-]", "x", name).strip("-")
            dump = json.dumps(record.model_dump(mode="json")).replace("pipeline/churn-train", f"pipeline/{name}")
            record = ExecutionRecord.model_validate(json.loads(dump))
        corrects = merge(None, inferred(OTHER)).entry(PipelineAction.START) if corrected else None
        grant = alert_grant() if name == SHORT else None
        alert = alert_message(record, action, grant, attempt=attempt, corrects=corrects)
        return alert.subject, alert.message, alert.attributes, {}

    return build


def _finish(name: str) -> Sample:
    alert = finish_message(
        execution_arn=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/{name}/execution/abc123",
        consumer=CONSUMER,
        status="Succeeded",
        started_at=datetime(2026, 5, 3, 10, 0, tzinfo=UTC),
        ended_at=datetime(2026, 5, 3, 11, 30, tzinfo=UTC),
        estimate_breakdown=[{"step": "Train", "type": "Training", "state": "Succeeded", "cost": Decimal("10.5")}],
        total=Decimal("10.5"),
        month="2026-05",
        consumer_month_to_date=Decimal("125"),
        budget=budget(),
        unpriced={"ml.p5.48xlarge": Decimal("2")},
    )
    return alert.subject, alert.message, alert.attributes, {}


def _threshold(name: str) -> Sample:
    alert = threshold_message(spend("212.4"), [50, 80], budget(), {f"arn:aws:sagemaker:::pipeline/{name}": Decimal(9)})
    return alert.subject, alert.message, alert.attributes, {}


def _unattributed(name: str) -> Sample:
    line = LineSpend(pipeline_arn=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/{name}", month="2026-05", total=12)
    alert = unattributed_message(line, [100], UnattributedLine(monthly_limit=Decimal("10")), matched_by="default")
    return alert.subject, alert.message, alert.attributes, {}


def _stop(dry_run: bool) -> Callable[[str], Sample]:
    def build(name: str) -> Sample:
        execution = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/{name}/execution/x"
        order = StopOrder(run=run(execution_arn=execution, pipeline_arn=""), reason="over-budget", dry_run=dry_run)
        outcome = "not-run" if dry_run else "done"
        alert = stop_message(order, spend("300"), enforcing(dry_run=dry_run), outcome=outcome)
        return alert.subject, alert.message, alert.attributes, {}

    return build


def _remove(dry_run: bool) -> Callable[[str], Sample]:
    def build(name: str) -> Sample:
        [removal], _ = share_removals(CONSUMER, [_grant(name)])
        outcome = "not-run" if dry_run else "done"
        alert = share_message(
            removal, spend("300"), enforcing(dry_run=dry_run), outcome=outcome, read_only_outcome=outcome
        )
        return alert.subject, alert.message, alert.attributes, {}

    return build


def _cannot_remove(name: str) -> Sample:
    org = f"arn:aws:organizations::{OWNER}:organization/o-abcdef1234"
    _, [group] = share_removals(CONSUMER, [_grant(name).model_copy(update={"consumer": org})])
    alert = group_share_message(group, spend("300"), enforcing())
    return alert.subject, alert.message, alert.attributes, {}


# every kind a notifier can publish, each with the builder that makes it (kind_of the body is checked below)
SAMPLES: dict[str, Callable[[str], Sample]] = {
    **{f"invitation.{status.lower()}": _invitation(status) for status in notify._HEADLINES},
    "invitation.held.digest": _digest,
    "invitation.reminder": _reminder,
    "invitation.reminder.digest": lambda name: _reminder(name, count=7),
    "share.disallowed-resource": _audit,
    "policy.invalid": _policy,
    "inventory.accepted": lambda name: _change("accepted", None, _grant(name)),
    "inventory.gained-allow-execution": lambda name: _change(
        "gained-allow-execution", _grant(name, READ), _grant(name)
    ),
    "inventory.lost-allow-execution": lambda name: _change("lost-allow-execution", _grant(name), _grant(name, READ)),
    "inventory.revoked": lambda name: _change("revoked", _grant(name), None),
    **{f"execution.{action.value}": _alert(action) for action in PipelineAction},
    "execution.attribution-corrected": _alert(PipelineAction.START, corrected=True),
    "execution.finished": _finish,
    "budget.threshold": _threshold,
    "budget.unattributed-threshold": _unattributed,
    "budget.enforcement.stop_execution": _stop(dry_run=False),
    "budget.enforcement.remove_from_share": _remove(dry_run=False),
    "budget.enforcement.cannot_remove_from_share": _cannot_remove,
    "notice.stop_execution": _notice("stop_execution"),
    "notice.remove_from_share": _notice("remove_from_share"),
}
DRY_RUNS = {"stop_execution": _stop(dry_run=True), "remove_from_share": _remove(dry_run=True)}
KINDS = sorted(SAMPLES)


def test_every_kind_a_notifier_publishes_has_a_sample_and_a_renderer() -> None:
    # Given the kinds the builders make: every invitation status and owner change headline has a sample
    published = {f"invitation.{s.lower()}" for s in notify._HEADLINES}
    published |= {f"inventory.{k}" for k in owner_notify._HEADLINES}
    published |= {f"execution.{a.value}" for a in PipelineAction}

    # Then a kind without a sample, or a sample without a renderer (a new kind added without its rendering), fails
    assert published <= set(SAMPLES)
    assert set(SAMPLES) == set(RENDERERS)


def test_every_kind_of_history_item_and_outbox_item_has_a_sample() -> None:
    # Given the kinds of consumer history items and owner outbox items the notifiers read (a new one, e.g. a reminder
    # of a held invitation, is added to these Literals)
    history_kinds = set(get_args(DecisionHistoryItem.model_fields["kind"].annotation))
    statuses = set(get_args(DecisionHistoryItem.model_fields["to_status"].annotation))

    # Then each has its sample (so its rendering is tested), or is one the notifier never announces
    sampled = {"invitation", "digest", "audit", "policy", "reminder"}
    assert history_kinds == sampled, f"add a sample and a renderer for {history_kinds - sampled}"
    announced = {s for s in statuses if f"invitation.{s.lower()}" in SAMPLES}
    assert statuses - announced == {"PENDING", "POLICY_INVALID", "DISALLOWED_RESOURCE"}  # kinds policy / audit


@pytest.mark.parametrize("kind", KINDS)
def test_each_sample_is_of_its_kind_and_renders_with_its_own_renderer(kind: str) -> None:
    # Given / When
    subject, body, _, context = SAMPLES[kind](SHORT)

    # Then the body's kind is the sample's, and its reading is not the fallback (the subject)
    assert kind_of(body) == kind
    assert reading(subject, body, context).title != subject.removeprefix("pipeshare: ")


@pytest.mark.parametrize("kind", KINDS)
def test_email_text_says_what_who_and_what_next_with_account_ids_whole(kind: str) -> None:
    # Given a message with a long name
    subject, body, _, context = SAMPLES[kind](LONG)

    # When
    text = email_text(subject, body, context)

    # Then plain text (no JSON), with a title, facts, next steps, and every account ID of the subject in full
    assert not text.lstrip().startswith("{")
    assert "What to do next:" in text
    for account in (OWNER, CONSUMER, OTHER):
        if account in subject:
            assert account in text
    assert body.get("event", kind_of(body)) in text  # the footer names the event (a relayed notice: its kind)


@pytest.mark.parametrize("kind", KINDS)
def test_chat_notification_follows_the_custom_notification_schema(kind: str) -> None:
    # Given / When
    subject, body, _, context = SAMPLES[kind](SHORT)
    chat = chat_notification(subject, body, context)

    # Then the documented schema (aws-facts §15.2): version 1.0, source custom, the content, the metadata
    assert (chat["version"], chat["source"]) == ("1.0", "custom")
    assert set(chat["content"]) == {"textType", "title", "description", "nextSteps", "keywords"}
    assert chat["content"]["textType"] == "client-markdown"
    assert chat["content"]["title"]
    assert all(isinstance(step, str) and step for step in chat["content"]["nextSteps"])
    assert body.get("event", kind_of(body)) in chat["content"]["keywords"]
    assert chat["metadata"]["eventType"] == body.get("event", kind_of(body))
    assert all(arn.startswith("arn:") for arn in chat["metadata"]["relatedResources"])
    json.dumps(chat)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", [SHORT, LONG, "données-" * 32])
def test_subjects_fit_are_ascii_and_never_cut_an_account_id(kind: str, name: str) -> None:
    # Given / When a message with a short, a long, or a long non-ASCII share / pipeline name
    subject, _, attributes, _ = SAMPLES[kind](name)

    # Then the subject fits SNS (printable ASCII, at most 100), and the account the message is about is whole in
    # it: the sender (the share's owner) of a consumer message, the consumer of an owner message
    assert len(subject) <= SUBJECT_MAX
    assert subject.isascii()
    assert subject.isprintable()
    assert "  " not in subject  # no name shortened away to nothing
    consumer_side = kind.startswith(("invitation.", "share.", "policy.", "notice."))
    account = attributes.get("owner_account" if consumer_side else "consumer_account")
    if account and account != "ambiguous":
        assert account in subject, f"{account} cut from {subject!r}"


@pytest.mark.parametrize("kind", KINDS)
def test_attributes_use_only_the_common_names(kind: str) -> None:
    # Given / When
    _, body, attributes, _ = SAMPLES[kind](SHORT)

    # Then (no consumer_account_id here and consumer_account there)
    assert set(attributes) <= ATTRIBUTE_NAMES, set(attributes) - ATTRIBUTE_NAMES
    # an owner's enforcement notice is relayed as the owner sent it (no `event` in it): its event names its action
    assert attributes["event"] == body.get("event", f"enforcement.{body.get('action')}")


def test_an_alert_composed_with_the_old_names_is_published_with_the_common_names() -> None:
    # Given an execution alert stored in the outbox before the rename
    item = {
        "item_type": "alert",
        "subject": "pipeshare: consumer 222222222222 started churn-train",
        "message": {"event": "execution.start", "execution_arn": "arn:x"},
        "attributes": {"event": "execution.start", "consumer_account_id": CONSUMER, "sender_account_id": OWNER},
    }

    # When
    notification = owner_notification(item)

    # Then
    assert notification is not None
    assert notification.attributes == {"event": "execution.start", "consumer_account": CONSUMER, "owner_account": OWNER}


# ------------------------------------------------------------------------------------------------ wording vs state


@pytest.mark.parametrize("kind", sorted(DRY_RUNS))
def test_a_dry_run_says_dry_run_first_in_subject_and_text(kind: str) -> None:
    # Given a dry-run enforcement action
    subject, body, _, context = DRY_RUNS[kind](SHORT)

    # When
    text = email_text(subject, body, context)

    # Then both say so first, and the text says nothing was done
    assert subject.startswith("pipeshare: DRY RUN: ")
    assert text.startswith("DRY RUN (nothing was done): ")
    assert chat_notification(subject, body, context)["content"]["title"].startswith("DRY RUN")


def test_every_enforcement_message_of_a_dry_run_budget_says_dry_run() -> None:
    # Given a dry-run budget, a stop whose run had already ended and a share that cannot lose the consumer
    org = f"arn:aws:organizations::{OWNER}:organization/o-abcdef1234"
    _, [group] = share_removals(CONSUMER, [_grant(SHORT).model_copy(update={"consumer": org})])
    dry = enforcing(dry_run=True)
    order = StopOrder(run=run(), reason="over-budget", dry_run=True)

    # When
    alerts = [
        stop_message(order, spend("300"), dry, outcome="skipped"),
        group_share_message(group, spend("300"), dry),
    ]

    # Then
    for alert in alerts:
        assert alert.subject.startswith("pipeshare: DRY RUN: "), alert.subject
        assert email_text(alert.subject, alert.message).startswith("DRY RUN")


def _lost(history: list[str]) -> Sample:
    """The lost-allow-execution message of a grant whose permissions were `history` (READ / ALLOW), as the
    inventory records them one change after another."""
    stored: dict[str, Grant] = {}
    changes = []
    for permission in history:
        [change] = diff(stored, [_grant(SHORT, permission)], at=datetime(2026, 5, 1, tzinfo=UTC))
        stored = {change.grant.key: change.after} if change.after else {}
        changes.append(change)
    last = changes[-1]
    assert last.kind == "lost-allow-execution"
    return _change(last.kind, last.before, last.after)


def test_read_only_again_only_when_the_grant_was_read_only_before() -> None:
    # Given a consumer shared read-only, then given allow-execution, then read-only again
    subject, body, _, context = _lost([READ, ALLOW, READ])

    # Then the subject and the text say "again"
    assert subject == f"pipeshare: consumer {CONSUMER} is read-only again on {SHORT}"
    assert "is read-only again" in email_text(subject, body, context)


def test_a_consumer_shared_allow_execution_from_the_start_is_now_read_only_not_again() -> None:
    # Given a consumer shared with allow-execution from the start, then downgraded
    subject, body, _, context = _lost([ALLOW, READ])

    # Then no "again": it was never read-only before
    assert subject == f"pipeshare: consumer {CONSUMER} is now read-only on {SHORT} (was allow-execution)"
    text = email_text(subject, body, context)
    assert "again" not in text
    assert "is now read-only" in text


# ------------------------------------------------------------------------------------------------ held invitations


def test_a_held_invitation_says_until_when_and_how_to_approve_it() -> None:
    # Given a held invitation sent at 08:56:24Z
    subject, body, _, context = _invitation("HELD")(SHORT)

    # When
    text = email_text(subject, body, context)
    chat = chat_notification(subject, body, context)

    # Then it can be accepted until 12 hours later (aws-facts §2.3), with the approve command
    assert re.search(r"Can be accepted until: +2026-05-01 20:56 UTC \(12 hours after it was sent", text)
    command = f'pipeshare consumer approve {INVITATION} --reason "<why this share is trusted>"'
    assert command in text
    assert any(command in step for step in chat["content"]["nextSteps"])
    assert OWNER in chat["content"]["keywords"]


def test_the_accept_by_time_is_confirmed_for_pipelines_only() -> None:
    # Given / When
    pipeline = accept_by({"invited_at": "2026-05-01T08:00:00Z", "resources": [{"type": "sagemaker:Pipeline"}]})
    other = accept_by({"invited_at": "2026-05-01T08:00:00Z", "resources": [{"type": "ec2:TransitGateway"}]})
    unknown = accept_by({"invited_at": None, "resources": []})

    # Then
    assert pipeline == (datetime(2026, 5, 1, 20, 0, tzinfo=UTC), True)
    assert other == (datetime(2026, 5, 1, 20, 0, tzinfo=UTC), False)
    assert unknown == (None, True)


def test_owner_execution_messages_name_the_explain_command() -> None:
    # Given / When
    for kind in ("execution.start", "execution.finished", "budget.enforcement.stop_execution"):
        subject, body, _, context = SAMPLES[kind](SHORT)
        execution = body.get("execution_arn") or body["execution"]["execution_arn"]

        # Then
        assert f"pipeshare owner explain {execution}" in email_text(subject, body, context)


# ------------------------------------------------------------------------------------------- the SNS message sent


def test_notify_decision_publishes_json_by_default_and_text_for_email() -> None:
    # Given
    notifier = FakeNotifier()

    # When chat notifications are off
    notify_decision(_history(SHORT, to_status="HELD"), notifier=notifier)

    # Then the JSON body is unchanged, e-mail gets the text, https nothing of its own
    [sent] = notifier.published
    assert sent.message["event"] == "invitation.held"
    assert set(sent.texts) == {"email"}
    assert sent.texts["email"].startswith(f"HELD: share '{SHORT}' from account {OWNER}")


def test_chat_notifications_go_under_https_when_on() -> None:
    # Given / When
    texts = protocol_texts(*SAMPLES["execution.finished"](SHORT)[:2], chat="https")

    # Then
    assert json.loads(texts["https"])["source"] == "custom"
    with pytest.raises(ValueError, match="chat notifications go under"):
        protocol_texts(*SAMPLES["execution.finished"](SHORT)[:2], chat="email")


def test_the_structured_message_keeps_the_json_body_for_default_and_machine_protocols() -> None:
    # Given a JSON body and the texts
    body = json.dumps({"event": "invitation.held", "n": 1})

    # When
    message = json.loads(structured(body, {"email": "text"}, {"event": "invitation.held"}) or "{}")

    # Then
    assert message["default"] == body
    assert all(message[p] == body for p in MACHINE_PROTOCOLS)
    assert message["email"] == "text"


def test_a_structured_message_too_large_drops_the_copies_then_the_texts() -> None:
    # Given a body that fits once but not eight times, and one that fits only alone
    middling = json.dumps({"blob": "x" * (MAX_MESSAGE_BYTES // 6)})
    huge = json.dumps({"blob": "x" * (MAX_MESSAGE_BYTES - 1000)})

    # When / Then
    message = json.loads(structured(middling, {"email": "text"}, {}) or "{}")
    assert set(message) == {"default", "email"}
    assert structured(huge, {"email": "t" * 2000}, {}) is None


def test_only_the_notifiers_load_the_renderings() -> None:
    # Given every module of the layer and every function
    from tests.conftest import ROOT

    importers = {
        path.relative_to(ROOT).as_posix()
        for path in [*ROOT.glob("layers/common/pipeshare/**/*.py"), *ROOT.glob("functions/*/app.py")]
        if re.search(r"pipeshare\.logic(\.renderings| import .*\brenderings\b)", path.read_text())
    }
    notifier_logic = {
        "layers/common/pipeshare/logic/notify.py",
        "layers/common/pipeshare/logic/owner_notify.py",
        "layers/common/pipeshare/logic/consumer_notices.py",  # the notice relay's texts (imported where they are made)
    }
    users = {
        path.relative_to(ROOT).as_posix()
        for path in [*ROOT.glob("layers/common/pipeshare/**/*.py"), *ROOT.glob("functions/*/app.py")]
        if re.search(r"pipeshare\.logic\.(owner_)?notify\b|logic import .*\b(owner_)?notify\b", path.read_text())
    }

    # Then (cold start) only the notifiers' logic imports the renderings, and only the notifiers import that
    assert importers == notifier_logic
    assert users - notifier_logic == {"functions/notify_decisions/app.py", "functions/notify_owner/app.py"}


@pytest.mark.parametrize(("types", "ending"), [(1, "unpriced: ml.p5.48xlarge"), (4, "4 type(s) unpriced")])
def test_a_finish_subject_keeps_the_pipeline_name_before_the_month_to_date(types: int, ending: str) -> None:
    # Given a run with a budget and unpriced instance types
    alert = finish_message(
        execution_arn=f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/gpu-train/execution/abc123",
        consumer=CONSUMER,
        status="Succeeded",
        started_at=datetime(2026, 5, 3, 10, 0, tzinfo=UTC),
        ended_at=datetime(2026, 5, 3, 11, 30, tzinfo=UTC),
        estimate_breakdown=[{"step": "Train", "cost": None}],
        total=Decimal("123.45"),
        month="2026-05",
        consumer_month_to_date=Decimal("40"),
        budget=budget(),
        unpriced={f"ml.p{5 + i}.48xlarge": Decimal("1") for i in range(types)},
    )

    # Then the name and the account stay whole; the types are listed when they fit, counted otherwise
    assert alert.subject.startswith(f"pipeshare: run of gpu-train by {CONSUMER} Succeeded: est. >= USD 123.45, ")
    assert alert.subject.endswith(ending)
    assert len(alert.subject) <= SUBJECT_MAX
