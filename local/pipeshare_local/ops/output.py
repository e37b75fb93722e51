"""What a command answers: named sections of rows, shown as rich tables (default) or one JSON document (`--json`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

BAR_WIDTH = 20


@dataclass
class Section:
    """One table: `key` names it in the JSON document; columns are (row key, header)."""

    key: str
    title: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Result:
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # printed under the tables; "notes" in the JSON document
    code: int = 0
    facts: dict[str, Any] = field(default_factory=dict)  # top-level JSON values (e.g. "valid": true)

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)


def plain(value: Any) -> Any:
    """A JSON-able value: Decimals as strings (exact), times as ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def merge(results: list[tuple[str, str, Result]]) -> Result:
    """Several targets' results (label, region, result) as one: each row gains `region` (and its column)."""
    if len(results) == 1:
        return results[0][2]
    merged = Result(code=max(r.code for _, _, r in results))
    for label, region, result in results:
        merged.notes += [f"{label}: {n}" for n in result.notes]
        for section in result.sections:
            existing = next((s for s in merged.sections if s.key == section.key), None)
            if existing is None:
                existing = Section(section.key, section.title, [("region", "Region"), *section.columns])
                merged.sections.append(existing)
            existing.rows += [{"region": region, **row} for row in section.rows]
    if any(r.code == 0 for _, _, r in results) and all(r.code in (0, 1) for _, _, r in results):
        merged.code = 0 if any(s.rows for s in merged.sections) else 1
    return merged


def bar(percent: Decimal | None) -> str:
    """A text bar of a share used (full at 100 %; beyond it, the bar is full and marked)."""
    if percent is None:
        return ""
    filled = min(int(percent * BAR_WIDTH / 100), BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled) + (" !" if percent >= 100 else "")


_ISO_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|\+00:00)$")
NO_WRAP = frozenset({"bar", "invitation", "status", "share_name"})  # kept on one line
# identifiers an operator copies (account IDs, execution and invitation IDs, names): never folded or cut, whatever the
# width (a pipe's width is COLUMNS, 80 under pytest-xdist): the column is at least as wide as its longest cell
IDENTIFIERS = frozenset(
    {"account", "consumer", "execution", "initiator_account", "invitation", "job", "pipeline", "region"}
    | {"sender_account_id", "share_name", "subject", "event_id", "instance_type"}
)
WIDE = frozenset({"reason", "would_reason", "origin", "summary", "by", "value", "principal"})  # wrapped at 48


def _cell(value: Any) -> str:
    """A table cell: times to the second (UTC), lists comma-separated, mappings as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = plain(value)
    if isinstance(value, str):
        return _ISO_TIME.sub(r"\1 \2", value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    value = plain(value)
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def _columns() -> int:
    """The width of tables written to a file or a pipe: COLUMNS when set, else 160."""
    try:
        return int(os.environ.get("COLUMNS", "160"))
    except ValueError:
        return 160


def emit(result: Result, *, as_json: bool, target: str, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if as_json:
        document: dict[str, Any] = {"target": target, **plain(result.facts)}
        document |= {s.key: plain(s.rows) for s in result.sections}
        document["notes"] = result.notes
        out.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
        return
    width = shutil.get_terminal_size((160, 24)).columns if out.isatty() else _columns()
    console = Console(file=out, width=max(width, 100), highlight=False, soft_wrap=False)
    console.print(f"[dim]{target}[/dim]")
    for section in result.sections:
        table = Table(title=section.title, title_justify="left", show_lines=False)
        cells = [[_cell(row.get(key)) for key, _ in section.columns] for row in section.rows]
        for index, (key, header) in enumerate(section.columns):
            whole = max((len(row[index]) for row in cells), default=0) if key in IDENTIFIERS else None
            table.add_column(
                header,
                overflow="fold",
                max_width=48 if key in WIDE else None,
                min_width=whole,
                no_wrap=key in NO_WRAP or key in IDENTIFIERS,
            )
        for row in cells:
            table.add_row(*row)
        if not section.rows:
            table.caption = "(none)"
        console.print(table)
    for note in result.notes:
        console.print(note, markup=False)
