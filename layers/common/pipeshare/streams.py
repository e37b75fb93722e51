"""The skeleton of a DynamoDB-stream handler (Powertools batch processing, partial failures): refuse a malformed
batch, count the records received, process each; a record that raises is reported in batchItemFailures and retried
(with the records after it) while the others are not. Imported by the stream handlers only: the rule targets never
load the batch utilities.

Import order matters for cold start: Powertools' batch utility loads its parser's record models (SQS, DynamoDB,
Kinesis, Kafka: about 25 pydantic classes pipeshare never uses) when pydantic is already imported
(`aws_lambda_powertools/utilities/batch/types.py`, `has_pydantic`). So a stream handler imports
`PartialItemFailureResponse` from `aws_lambda_powertools.utilities.batch.types` among its first imports, before anything
of pipeshare (which imports pydantic); tests/unit/test_observability.py checks that none of those models is loaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
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
) -> PartialItemFailureResponse:
    """One batch of stream records through `record_handler`; `received_metric` counts the records received."""
    if not batch_or_reject(event, processor.event_type):
        return {"batchItemFailures": []}
    metrics.add_metric(name=received_metric, unit=MetricUnit.Count, value=len(event["Records"]))
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
