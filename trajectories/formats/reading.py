"""Streaming readers: memory stays bounded by the largest record, whatever the file size.

JSONL is read line by line. A JSON array is read in chunks and cut into elements with the C
JSON scanner (`raw_decode`), so each element's original bytes are kept exactly. Bytes that are
not UTF-8 are carried through `surrogateescape` and reported against the record they are in.
"""

from __future__ import annotations

import codecs
import gzip
import json
from collections.abc import Iterator
from typing import IO, Any

import orjson

from trajectories.formats.base import RawRecord, RecordError

CHUNK = 1 << 20
MAX_RECORD_BYTES = 64 << 20
_decoder = json.JSONDecoder()
_WS = " \t\r\n"


def open_maybe_gzip(stream: IO[bytes]) -> IO[bytes]:
    """The stream itself, or a decompressing view of it when it starts with the gzip magic."""
    head = stream.read(2)
    stream.seek(0)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def utf8_error(raw: bytes, where: str, line: int) -> RecordError | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_in = raw.count(b"\n", 0, exc.start)
        return RecordError(
            f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start} of the record",
            where=where,
            line=line + line_in,
        )
    return None


def loads_located(raw: bytes, where: str, line: int) -> Any:
    """orjson.loads, with a failure turned into a RecordError naming line and column."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        bad = utf8_error(raw, where, line)
        if bad is not None:
            raise bad from None
        text = raw.decode("utf-8")
        pos = min(exc.pos, len(text))
        line_in = text.count("\n", 0, pos)
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        reason = exc.msg.split(":")[0] if exc.msg else "malformed JSON"
        raise RecordError(
            f"malformed JSON: {reason} (line {line + line_in}, column {col})", where=where, line=line + line_in
        ) from None


def iter_jsonl(stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
    index = 0
    for number, line in enumerate(stream, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if number == 1 and stripped.startswith(codecs.BOM_UTF8):
            stripped = stripped[len(codecs.BOM_UTF8) :]
        if len(stripped) > MAX_RECORD_BYTES:
            yield RecordError(f"record is larger than {MAX_RECORD_BYTES >> 20} MB", where=f"line {number}", line=number)
            continue
        yield RawRecord(raw=stripped, where=f"line {number}", line=number, index=index)
        index += 1


def iter_json_array(stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
    """The elements of a top-level JSON array, each parsed once, with their exact bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    buf = ""
    pos = 0
    line = 1  # line number at `pos`
    eof = False

    def fill(need_more: bool) -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        data = stream.read(CHUNK)
        if not data:
            eof = True
            buf = buf[pos:] + decoder.decode(b"", final=True)
            pos = 0
            return need_more
        buf = buf[pos:] + decoder.decode(data)
        pos = 0
        return True

    def skip_ws() -> None:
        nonlocal pos, line
        while True:
            while pos < len(buf) and buf[pos] in _WS:
                if buf[pos] == "\n":
                    line += 1
                pos += 1
            if pos < len(buf) or not fill(True):
                return

    skip_ws()
    if buf[pos : pos + 1] == "\ufeff":
        pos += 1
        skip_ws()
    if buf[pos : pos + 1] != "[":
        yield RecordError("expected a JSON array ('[') at the start of the file", where="line 1", line=1)
        return
    pos += 1
    index = 0
    while True:
        skip_ws()
        if pos >= len(buf):
            after = f"after element {index - 1}" if index else "before its first element"
            yield RecordError(f"the file ends inside the array, {after} (truncated?)", where=f"line {line}", line=line)
            return
        if buf[pos] == "]":
            pos += 1
            skip_ws()
            if pos < len(buf):
                yield RecordError("unexpected data after the closing ']'", where=f"line {line}", line=line)
            return
        if index > 0:
            if buf[pos] != ",":
                yield RecordError(
                    f"expected ',' or ']' after element {index - 1}, found {buf[pos]!r}",
                    where=f"line {line}",
                    line=line,
                )
                return
            pos += 1
            skip_ws()
            if pos >= len(buf):
                yield RecordError(
                    f"the file ends inside the array, after element {index - 1} and a ',' (truncated?)",
                    where=f"line {line}",
                    line=line,
                )
                return
        start_line = line
        where = f"element {index} (line {start_line})"
        while True:
            try:
                value, end = _decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                # More data can only help when the fault is at the end of what has been read.
                at_end = exc.msg.startswith("Unterminated string") or not buf[exc.pos :].strip()
                incomplete = not eof and (at_end or exc.pos >= len(buf) - 64)
                if eof and at_end:
                    yield RecordError(
                        f"the file ends inside element {index} (truncated?): {exc.msg}", where=where, line=start_line
                    )
                    return
                if not incomplete:
                    line_at = start_line + buf.count("\n", pos, exc.pos)
                    col = exc.pos - (buf.rfind("\n", 0, exc.pos) + 1) + 1
                    yield RecordError(
                        f"malformed JSON: {exc.msg} (line {line_at}, column {col}); the rest of the file cannot be read",
                        where=where,
                        line=line_at,
                    )
                    return
                if len(buf) - pos > MAX_RECORD_BYTES:
                    yield RecordError(
                        f"record is larger than {MAX_RECORD_BYTES >> 20} MB", where=where, line=start_line
                    )
                    return
                fill(True)
        text = buf[pos:end]
        line = start_line + text.count("\n")
        pos = end
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogateescape")
            bad = utf8_error(raw, where, start_line)
            yield bad or RecordError("not valid UTF-8", where=where, line=start_line)
            index += 1
            continue
        yield RawRecord(raw=raw, where=where, line=start_line, index=index, value=value)
        index += 1
        if pos > CHUNK:
            buf = buf[pos:]
            pos = 0


def sniff_container(head: bytes) -> str:
    """'array', 'jsonl', 'document' or '' from the first bytes of a file."""
    text = head.lstrip(codecs.BOM_UTF8).lstrip()
    if text.startswith(b"["):
        return "array"
    if text.startswith(b"{"):
        first_line = text.split(b"\n", 1)[0].strip()
        try:
            orjson.loads(first_line)
        except orjson.JSONDecodeError:
            return "document"
        return "jsonl"
    return ""


def iter_document(stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
    """A file that is one JSON document (e.g. a SWE-agent .traj): one record, size-bounded."""
    data = stream.read(MAX_RECORD_BYTES + 1)
    if len(data) > MAX_RECORD_BYTES:
        yield RecordError(f"the document is larger than {MAX_RECORD_BYTES >> 20} MB", where="line 1", line=1)
        return
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if not data.strip():
        yield RecordError("the file is empty", where="line 1", line=1)
        return
    yield RawRecord(raw=data, where="document", line=1, index=0)
