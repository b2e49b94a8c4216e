"""Parquet beside each JSONL export: the same rows, one column per top-level key, written in row groups
so memory does not grow with the batch. Strings, numbers, booleans and lists of them keep their types;
a ShareGPT conversation is a list of {from, value} and a preference pair's chosen / rejected turn one
{from, value}; any other nested value (chat messages, tool
schemas) is a column of its canonical JSON text — readers decode it with one json.loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP = 2000
TURN = pa.struct([("from", pa.string()), ("value", pa.string())])
_STEPWISE = [
    "format",
    "version",
    "goal",
    "task",
    "model",
    "scaffold",
    "rollout_id",
    "trial",
    "steps",
    "final_answer",
    "outcome",
    "metadata",
    "source",
    "labels",
    "consensus",
    "evidence",
]
SCHEMAS: dict[str, pa.Schema] = {
    "stepwise": pa.schema([(k, pa.int64() if k in ("version", "trial") else pa.string()) for k in _STEPWISE]),
    "openai_sft": pa.schema([("messages", pa.string()), ("tools", pa.string())]),
    "sharegpt": pa.schema([("conversations", pa.list_(TURN)), ("system", pa.string()), ("tools", pa.string())]),
    "trl_prm": pa.schema(
        [
            ("prompt", pa.string()),
            ("completions", pa.list_(pa.string())),
            ("labels", pa.list_(pa.bool_())),
            ("first_failing_step", pa.int64()),
        ]
    ),
    "trl_dpo": pa.schema(
        [
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("chosen_trajectory", pa.string()),
            ("rejected_trajectory", pa.string()),
            ("pair", pa.string()),
        ]
    ),
    "llamafactory_dpo": pa.schema(
        [
            ("conversations", pa.list_(TURN)),
            ("chosen", TURN),
            ("rejected", TURN),
            ("system", pa.string()),
            ("tools", pa.string()),
            ("chosen_trajectory", pa.string()),
            ("rejected_trajectory", pa.string()),
            ("pair", pa.string()),
        ]
    ),
}


class ParquetRows:
    """Collects rows and writes them as row groups of a fixed schema."""

    def __init__(self, path: Path, format: str) -> None:
        self.schema = SCHEMAS[format]
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.pending: list[dict[str, Any]] = []

    def _cell(self, field: pa.Field, value: Any) -> Any:
        if pa.types.is_string(field.type) and not isinstance(value, str) and value is not None:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        return value

    def add(self, row: dict[str, Any]) -> None:
        self.pending.append({f.name: self._cell(f, row.get(f.name)) for f in self.schema})
        if len(self.pending) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_pylist(self.pending, schema=self.schema))
            self.pending = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def convert(jsonl: Path, format: str, out: Path) -> None:
    """Read a JSONL export line by line and write its Parquet twin."""
    rows = ParquetRows(out, format)
    with jsonl.open("rb") as lines:
        for line in lines:
            rows.add(orjson.loads(line))
    rows.close()


if __name__ == "__main__":  # run by exports.services.jobs in a child process: pyarrow's threads stay there
    import sys

    convert(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
