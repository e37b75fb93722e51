"""The skeleton of a DynamoDB-stream handler (Powertools batch processing, partial failures): refuse a malformed
batch, count the records received, process each; a record that raises is reported in batchItemFailures and retried
(with the records after it) while the others are not. Imported by the stream handlers only: the rule targets never
load the batch utilities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeshare.observability import metrics
from pipeshare.validation import batch_or_reject

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def process_stream(
    event: Any,
    context: LambdaContext,
    record_handler: Callable[[DynamoDBRecord], None],
    *,
    received_metric: str,
) -> dict[str, Any]:
    """One batch of stream records through `record_handler`; `received_metric` counts the records received."""
    if not batch_or_reject(event, processor.event_type):
        return {"batchItemFailures": []}
    metrics.add_metric(name=received_metric, unit=MetricUnit.Count, value=len(event["Records"]))
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
