"""Shared by the bulk goal and SWE-task importers: bounded file reading, JSON records, located row errors.

Bulk imports never stop at a bad row: invalid rows come back as RowErrors located by line, column or
field, collected in an ImportReport next to the created / updated / unchanged counts.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.core.exceptions import ValidationError

from trajectories.formats.base import RawRecord, RecordError
from trajectories.formats.reading import iter_json_array, iter_jsonl, loads_located, sniff_container

MAX_FILE_BYTES = 64 << 20


# ---------------------------------------------------------------- reports


@dataclass(slots=True)
class RowError:
    where: str  # "line 4", "element 2 (line 9)"
    line: int | None
    message: str
    field: str = ""  # the column or key, with a path inside it where useful ("expected_actions/1/name")
    column: int | None = None  # CSV only: 1-based column number

    def as_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "line": self.line,
            "field": self.field,
            "column": self.column,
            "message": self.message,
        }

    def __str__(self) -> str:
        place = self.where
        if self.column is not None:
            place += f", column {self.column}"
        if self.field:
            place += f" ({self.field})"
        return f"{place}: {self.message}"


@dataclass(slots=True)
class ImportReport:
    kind: str  # "goals" | "SWE tasks"
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    flagged: int = 0  # SWE tasks matching a leak list
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        """Rows rejected (a row can have several errors)."""
        return len({(e.where, e.line) for e in self.errors})

    def summary(self) -> str:
        text = f"{self.created} {self.kind} created, {self.updated} updated, {self.unchanged} unchanged, {self.rejected} rejected"
        return text + (f", {self.flagged} flagged as contaminated" if self.flagged else "")


# ---------------------------------------------------------------- reading files


def read_bounded(stream: IO[bytes]) -> bytes:
    data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError(f"the file is larger than {MAX_FILE_BYTES >> 20} MB")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if not data.strip():
        raise ValidationError("the file is empty")
    return data


def json_records(data: bytes) -> Iterator[tuple[RawRecord | RecordError, Any]]:
    """(record, parsed value) for a JSON array or JSONL file; a RecordError with None where it fails."""
    container = sniff_container(data[:4096])
    if container not in {"array", "jsonl"}:
        raise ValidationError("expected a JSON array ('[' …) or JSON Lines (one object per line)")
    reader = iter_json_array if container == "array" else iter_jsonl
    for record in reader(io.BytesIO(data)):
        if isinstance(record, RecordError):
            yield record, None
            continue
        if record.value is not None:
            yield record, record.value
            continue
        try:
            yield record, loads_located(record.raw, record.where, record.line)
        except RecordError as exc:
            yield exc, None


def located(record: RawRecord | RecordError, message: str, name: str = "") -> RowError:
    return RowError(where=record.where, line=record.line, message=message, field=name)


def errors_of(record: RawRecord, errors: dict[str, str]) -> list[RowError]:
    return [located(record, message, name) for name, message in errors.items()]


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    return False
