"""`pipeshare redrive QUEUE [--max N] [--dry-run]`: replay failed invocations from an on-failure / dead-letter queue.

Two kinds of message are replayed into their function with Lambda Invoke (InvocationType Event, the original payload):

* a Lambda on-failure destination record (asynchronous invocation): `requestContext.functionArn` and
  `requestPayload` (Lambda developer guide, "Capturing records of Lambda asynchronous invocations");
* an EventBridge rule target's dead-letter message: the event itself as the body, with the message attributes
  `RULE_ARN` and `TARGET_ARN` (EventBridge user guide, "Using dead-letter queues to process undelivered events"),
  when the target is a Lambda function.

A message is deleted only after its invoke succeeded; anything else (a stream batch record, which carries a stream
position and no payload; a target that is not a function; a failed invoke) stays in the queue and is made visible
again. One line is printed per message. Works against AWS (the default boto3 session) or any endpoint
(`--endpoint-url`, e.g. the local stack's).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

_VISIBILITY_SECONDS = 60  # how long a received message stays hidden while it is handled


@dataclass(frozen=True)
class Replay:
    function: str  # ARN (or name) to invoke
    payload: dict[str, Any]
    origin: str  # "on-failure record" | "rule dead letter"


def replay_of(message: dict[str, Any]) -> Replay | str:
    """What to invoke for a queue message, or why it cannot be replayed."""
    try:
        body = json.loads(message.get("Body", ""))
    except ValueError:
        return "body is not JSON"
    attributes = {k: v.get("StringValue", "") for k, v in (message.get("MessageAttributes") or {}).items()}
    if isinstance(body, dict) and isinstance(body.get("requestContext"), dict):
        function = str(body["requestContext"].get("functionArn") or "")
        if "requestPayload" not in body:
            return "no requestPayload (a stream batch record: read the batch from the stream position it names)"
        if not function:
            return "no requestContext.functionArn"
        return Replay(function, body["requestPayload"], "on-failure record")
    target = attributes.get("TARGET_ARN", "")
    if target:
        if ":lambda:" not in target or ":function:" not in target:
            return f"rule target {target} is not a Lambda function"
        if not isinstance(body, dict):
            return "the event is not a JSON object"
        return Replay(target, body, "rule dead letter")
    return "neither a Lambda on-failure record nor an EventBridge rule dead letter"


def queue_url(sqs: Any, queue: str) -> str:
    """A queue given by URL, ARN or name."""
    if queue.startswith(("https://", "http://")):
        return queue
    if queue.startswith("arn:"):
        parts = queue.split(":")
        return str(sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"])
    return str(sqs.get_queue_url(QueueName=queue)["QueueUrl"])


def redrive(
    sqs: Any, lambda_client: Any, queue: str, *, limit: int | None, dry_run: bool, out: Callable[[str], None]
) -> dict[str, int]:
    """Replay up to `limit` messages of the queue; returns the count per outcome."""
    url = queue_url(sqs, queue)
    counts = {"redriven": 0, "would redrive": 0, "kept": 0, "failed": 0}
    hidden: list[str] = []  # receipt handles to make visible again
    seen: set[str] = set()
    try:
        while limit is None or len(seen) < limit:
            batch = min(10, limit - len(seen)) if limit is not None else 10
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=batch,
                VisibilityTimeout=_VISIBILITY_SECONDS,
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            fresh = [m for m in messages if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                outcome = _handle(sqs, lambda_client, url, message, dry_run=dry_run, out=out)
                counts[outcome] += 1
                if outcome != "redriven":
                    hidden.append(message["ReceiptHandle"])
    finally:
        for handle in hidden:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return counts


def _handle(sqs: Any, lambda_client: Any, url: str, message: dict[str, Any], *, dry_run: bool, out: Any) -> str:
    replay = replay_of(message)
    if isinstance(replay, str):
        out(f"kept          {message['MessageId']}  {replay}")
        return "kept"
    if dry_run:
        out(f"would redrive {message['MessageId']}  {replay.origin} -> {replay.function}")
        return "would redrive"
    try:
        lambda_client.invoke(
            FunctionName=replay.function, InvocationType="Event", Payload=json.dumps(replay.payload).encode()
        )
    except (ClientError, BotoCoreError) as exc:
        out(f"failed        {message['MessageId']}  {replay.origin} -> {replay.function}: {exc}")
        return "failed"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    out(f"redriven      {message['MessageId']}  {replay.origin} -> {replay.function}")
    return "redriven"


def add_parser(sub: Any) -> None:
    """Register `pipeshare redrive` on the CLI's subcommands."""
    parser = sub.add_parser("redrive", help="replay failed invocations from an on-failure or dead-letter queue")
    parser.add_argument("queue", help="queue URL, ARN or name")
    parser.add_argument("--max", type=int, default=None, help="handle at most N messages")
    parser.add_argument("--dry-run", action="store_true", help="print what would be replayed; change nothing")
    parser.add_argument("--endpoint-url", help="an endpoint other than AWS's (e.g. the local stack)")
    parser.add_argument("--region", help="AWS region (default: the session's)")
    parser.add_argument("--profile", help="AWS profile (default: the default session)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.max is not None and args.max < 1:
        sys.stderr.write("--max must be at least 1\n")
        return 2
    options_session = {"region_name": args.region, "profile_name": args.profile}
    session = boto3.Session(**{k: v for k, v in options_session.items() if v})
    options = {"endpoint_url": args.endpoint_url} if args.endpoint_url else {}
    counts = redrive(
        session.client("sqs", **options),
        session.client("lambda", **options),
        args.queue,
        limit=args.max,
        dry_run=args.dry_run,
        out=lambda line: sys.stdout.write(line + "\n"),
    )
    sys.stdout.write(
        ", ".join(f"{n} {what}" for what, n in counts.items() if n)
        + ("\n" if any(counts.values()) else "queue empty\n")
    )
    return 1 if counts["failed"] else 0
