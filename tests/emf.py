"""What pipeshare's metrics code writes, read back: Powertools writes each metric set as one CloudWatch embedded metric
format (EMF) JSON line on stdout; `capture` runs a callable, flushes the invocation's metric set as `@log_metrics` does
at the end of an invocation, and returns every metric of every EMF line written."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EmittedMetric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # (name, value), sorted by name
    value: float
    unit: str

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.dimensions)

    def dimension(self, name: str) -> str:
        return dict(self.dimensions)[name]


def parse(output: str) -> list[EmittedMetric]:
    """Every metric of every EMF line in `output` (other lines are ignored)."""
    found: list[EmittedMetric] = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        record: dict[str, Any] = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for names in directive["Dimensions"]:
                dimensions = tuple(sorted((name, str(record[name])) for name in names))
                for metric in directive["Metrics"]:
                    values = record[metric["Name"]]
                    for value in values if isinstance(values, list) else [values]:
                        found.append(
                            EmittedMetric(directive["Namespace"], metric["Name"], dimensions, value, metric["Unit"])
                        )
    return found


def capture(action: Callable[[], Any]) -> list[EmittedMetric]:
    """The metrics `action` emits: written at once (single metrics), or added to the invocation's set (flushed here)."""
    from pipeshare.observability import metrics

    out = io.StringIO()
    with redirect_stdout(out):
        action()
        metrics.flush_metrics()
    return parse(out.getvalue())
