"""Parquet beside each JSONL export: the same rows, one column per top-level key, written in row groups
of at most ROW_GROUP rows or ROW_GROUP_BYTES of JSON, so memory grows neither with the batch nor with its
rows' size. Strings, numbers, booleans and lists of them keep their types;
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
ROW_GROUP_BYTES = 8 << 20
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
        self.columns: dict[str, list[Any]] = {f.name: [] for f in self.schema}
        self.texts = [f.name for f in self.schema if pa.types.is_string(f.type)]
        self.rows = self.bytes = 0

    def add(self, row: dict[str, Any], size: int = 0) -> None:
        """A row (`size`: its JSON's length, what the row group's limit counts)."""
        for name, values in self.columns.items():
            values.append(row.get(name))
        for name in self.texts:
            value = self.columns[name][-1]
            if value is not None and not isinstance(value, str):
                self.columns[name][-1] = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        self.rows += 1
        self.bytes += size
        if self.rows >= ROW_GROUP or self.bytes >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pydict(self.columns, schema=self.schema))
            self.columns = {name: [] for name in self.columns}
            self.rows = self.bytes = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


def convert(jsonl: Path, format: str, out: Path) -> None:
    """Read a JSONL export line by line and write its Parquet twin."""
    rows = ParquetRows(out, format)
    sft = _SftLines() if format == "openai_sft" else None
    with jsonl.open("rb") as lines:
        for line in lines:
            rows.add((sft.row(line) if sft else None) or orjson.loads(line), len(line))
    rows.close()


class _SftLines:
    """An SFT line is {"messages":M,"tools":T} in canonical JSON, T the same on every line: M is the messages'
    canonical text as it stands, taken without parsing it and writing it again."""

    HEAD = b'{"messages":'

    def __init__(self) -> None:
        self.tail = b""  # ,"tools":T} once the first line has shown T
        self.tools = ""

    def row(self, line: bytes) -> dict[str, Any] | None:
        body = line.rstrip(b"\n")
        if not self.tail:
            self.tools = orjson.dumps(orjson.loads(body).get("tools"), option=orjson.OPT_SORT_KEYS).decode()
            self.tail = b',"tools":' + self.tools.encode() + b"}"
        if body.startswith(self.HEAD) and body.endswith(self.tail):
            return {"messages": body[len(self.HEAD) : -len(self.tail)].decode(), "tools": self.tools}
        return None  # not the usual shape: parsed


if __name__ == "__main__":  # run by exports.services.jobs in a child process: pyarrow's threads stay there
    import sys

    convert(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
