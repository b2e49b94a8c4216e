"""Streaming readers: memory stays bounded by the largest record, whatever the file size.

JSONL is read line by line. A JSON array is read in chunks and cut into elements with the C
JSON scanner (`raw_decode`), so each element's original bytes are kept exactly. Bytes that are
not UTF-8 are carried through `surrogateescape` and reported against the record they are in.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------------------------
# Record spans: where each record is in a plain file, found without parsing it, so that parse
# workers (trajectories.services.import_workers) can read and parse the records in parallel.
# ---------------------------------------------------------------------------------------------

SCAN_CHUNK = 1 << 20
_JSON_WS = b" \t\r\n"  # JSON's whitespace (bytes.strip() takes \x0b and \x0c too)
_LINE_WS = b" \t\n\r\x0b\x0c"  # what bytes.strip() takes: iter_jsonl's notion of a blank line


@dataclass(slots=True)
class RecordSpan:
    """A record's byte range [start, end) in a plain file, and where it is.

    A line of JSON Lines (`element` false): the line as read, newline included; `line` is its
    number, `index` counts the records before it. An element of a JSON array (`element` true):
    the bytes between the separators around it, whitespace included; `line` is the line at
    `start`. `record_from_span` turns it into the RawRecord that iter_jsonl / iter_json_array
    would have read there.
    """

    start: int
    end: int
    line: int
    index: int
    element: bool


@dataclass(slots=True)
class SerialFrom:
    """The array scanner cannot vouch for the file from element `count` on (malformed, truncated,
    too large…): that part is to be read by iter_json_array, which says exactly what is wrong."""

    count: int


Pread = Callable[[int, int], bytes]  # (count, offset) → the file's bytes there, as os.pread reads them


def _reader(fd: int, ready: Callable[[int], None] | None) -> Pread:
    if ready is None:
        return lambda count, offset: os.pread(fd, count, offset)

    def pread(count: int, offset: int) -> bytes:
        ready(offset + count)
        return os.pread(fd, count, offset)

    return pread


def scan_jsonl(fd: int, size: int, ready: Callable[[int], None] | None = None) -> Iterator[RecordSpan | RecordError]:
    """The records of a JSON Lines file as spans, exactly as iter_jsonl cuts and numbers them.

    For a file that is still being written, `ready(end)` returns once the file's first `end` bytes are there
    to read, or it is complete (it may raise what stopped the writing); `size` is then at least its size."""
    pread = _reader(fd, ready)
    index = number = 0
    line_start = offset = 0
    while offset < size:
        chunk = pread(min(SCAN_CHUNK, size - offset), offset)
        if not chunk:
            break
        pos = 0
        while (nl := chunk.find(b"\n", pos)) >= 0:
            number += 1
            pos = nl + 1
            item = _line_span(pread, chunk, offset, line_start, offset + pos, number, index)
            line_start = offset + pos
            if item is not None:
                index += isinstance(item, RecordSpan)
                yield item
        offset += len(chunk)
    if line_start < offset:  # the last line, without a newline
        item = _line_span(pread, b"", offset, line_start, offset, number + 1, index)
        if item is not None:
            yield item


def _line_span(
    pread: Pread, chunk: bytes, offset: int, start: int, end: int, number: int, index: int
) -> RecordSpan | RecordError | None:
    """The line [start, end) as iter_jsonl sees it: a span, a size error, or None when blank."""
    first = chunk[start - offset] if start >= offset and start < offset + len(chunk) else pread(1, start)[0]
    if first not in _LINE_WS and end - start <= MAX_RECORD_BYTES:
        return RecordSpan(start, end, number, index, element=False)
    stripped = pread(end - start, start).strip()  # rare: a line that starts blank, or a huge one
    if not stripped:
        return None
    if number == 1 and stripped.startswith(codecs.BOM_UTF8):
        stripped = stripped[len(codecs.BOM_UTF8) :]
    if len(stripped) > MAX_RECORD_BYTES:
        return RecordError(f"record is larger than {MAX_RECORD_BYTES >> 20} MB", where=f"line {number}", line=number)
    return RecordSpan(start, end, number, index, element=False)


def scan_json_array(
    fd: int, size: int, ready: Callable[[int], None] | None = None
) -> Iterator[RecordSpan | SerialFrom]:
    """The elements of a top-level JSON array as spans, found without parsing them.

    Spans are found two ways. Neither validates anything inside the elements: each span is parsed
    on its own later, and when every span parses as one JSON value, the spans are exactly the
    elements iter_json_array reads, however they were found (a value is self-delimiting, so a span
    that starts where an element starts and parses whole ends where that element ends; by
    induction from the bracket, every cut is a separator).

    * An array written one element a line, or indented (`json.dump(…, indent=n)`), is cut where a
      line starts with the first element's indentation and opening bracket after a comma
      (`_line_spans`): a C search for those few bytes, about 20 times faster than the second way.
    * Anything else (and the rest of a file where those cuts stop) goes through a vectorised pass
      per chunk (numpy, `_bracket_spans`) that finds the quotes that are not escaped, hence which
      brackets and commas are outside strings, hence the commas at depth 1: the separators.

    Whatever the scanner or a parse cannot vouch for (no opening bracket, an element that does not
    end, data after the closing bracket, an element near the size limit, a span that does not
    parse) ends the spans with SerialFrom(n): from element n on, iter_json_array reads the file and
    locates the fault as it always has. `ready` is as for scan_jsonl.
    """
    pread = _reader(fd, ready)
    head = pread(min(SCAN_CHUNK, size), 0)
    pos = _skip_json_ws(head, 0)
    if head[pos : pos + 3] == codecs.BOM_UTF8:
        pos = _skip_json_ws(head, pos + 3)
    if head[pos : pos + 1] != b"[":
        yield SerialFrom(0)
        return
    yield from _line_spans(pread, size, head, pos + 1, 1 + head.count(b"\n", 0, pos))


LINE_SPAN_BYTES = 4 << 20  # a line-cut span longer than this is looked at by _bracket_spans instead
LINE_CHUNK = 4 << 20
_COMMA_BEFORE = 256  # how far before a cut's line its comma is looked for (blank lines, trailing blanks)


def _line_spans(pread: Pread, size: int, head: bytes, start: int, line: int) -> Iterator[RecordSpan | SerialFrom]:
    """The elements from `start` (just after the opening bracket; on `line`) on, cut where a line begins as
    the first element's line does ("\n", its indentation, "{" or "[") and a comma comes before it; from the
    first span it cannot cut this way on (no such lines, the last element, a large one), _bracket_spans."""
    first = _skip_json_ws(head, start)
    gap = head[start:first]
    opening = head[first : first + 1]
    if b"\n" not in gap or opening not in (b"{", b"["):
        yield from _bracket_spans(pread, size, start, line, 0)
        return
    marker = b"\n" + gap[gap.rfind(b"\n") + 1 :] + opening
    index = 0
    seg_start, seg_line = start, line
    counted, counted_line = start, line  # the line at file offset `counted`
    base, buf = 0, head  # the file's bytes [base, base + len(buf))
    at = first  # where the next search starts (a file offset)
    while True:
        found = _find_line(buf, marker, at - base)
        if found < 0:
            end = base + len(buf)
            if end >= size or end - seg_start > LINE_SPAN_BYTES:
                break
            # keep what a marker cut by the chunk's end, and the comma before one, may need
            keep = max(base, min(end - len(marker) - _COMMA_BEFORE, at))
            if keep > counted:
                counted_line += buf.count(b"\n", counted - base, keep - base)
                counted = keep
            more = pread(min(LINE_CHUNK, size - end), end)
            if not more:
                break  # the file ends before `size`
            buf = buf[keep - base :] + more
            base = keep
            at = max(at, end - len(marker) + 1)
            continue
        found += base
        at = found + 1
        low = max(seg_start, found - _COMMA_BEFORE, base)
        before = buf[low - base : found - base].rstrip(_JSON_WS)
        if not before.endswith(b","):
            continue  # a line inside an element that looks like the start of one
        comma = low + len(before) - 1
        if comma - seg_start > LINE_SPAN_BYTES:
            break
        yield RecordSpan(seg_start, comma, seg_line, index, element=True)
        index += 1
        counted_line += buf.count(b"\n", counted - base, comma - base)
        counted = comma
        seg_start, seg_line = comma + 1, counted_line
    yield from _bracket_spans(pread, size, seg_start, seg_line, index)


def _find_line(buf: bytes, marker: bytes, pos: int) -> int:
    """buf.find(marker, pos), where marker is "\n" and the line's first bytes: a line with no indentation
    is found by its newline (memchr, many times faster than a search for two bytes)."""
    if len(marker) > 2:
        return buf.find(marker, pos)
    opening = marker[1]
    found = buf.find(b"\n", pos)
    while found >= 0 and (found + 1 >= len(buf) or buf[found + 1] != opening):
        if found + 1 >= len(buf):
            return -1  # the line's first byte is in the next chunk: looked for again with it
        found = buf.find(b"\n", found + 1)
    return found


def _bracket_spans(
    pread: Pread, size: int, seg_start: int, seg_line: int, index: int
) -> Iterator[RecordSpan | SerialFrom]:
    """The elements from `seg_start` on (where an element starts: after the opening bracket or a separator,
    at depth 1, outside any string; `seg_line` is its line, `index` its number), by the vectorised pass."""
    import numpy as np  # only here: the rest of the module (and its importers) need no numpy

    depth, in_string, escape_next = 1, 0, False
    offset, chunk, scan_from = seg_start, pread(min(SCAN_CHUNK, size - seg_start), seg_start), 0
    line_base, counted = seg_line, 0  # the line at chunk[counted]
    while True:
        if not chunk:
            yield SerialFrom(index)  # the file ends inside the array
            return
        a = np.frombuffer(chunk, np.uint8)
        if scan_from:
            a = a[scan_from:]  # positions below are relative to scan_from
        # Quotes that are not escaped: a backslash escapes the next byte unless it is escaped
        # itself, so the odd-numbered backslashes of each run are the escaping ones.
        quotes = np.flatnonzero(a == 34)
        slashes = np.flatnonzero(a == 92)
        carried = escape_next  # the previous chunk ended on an escaping backslash: byte 0 is escaped
        escape_next = False
        if len(slashes) or carried:
            escaped = np.zeros(len(a) + 1, bool)
            escaped[0] = carried
            if len(slashes):
                run_start = np.ones(len(slashes), bool)
                run_start[1:] = np.diff(slashes) != 1
                first = np.maximum.accumulate(np.where(run_start, np.arange(len(slashes)), 0))
                number = np.arange(len(slashes)) - first  # 0 for the first of its run
                if carried and slashes[0] == 0:
                    number[first == 0] += 1  # that run's first backslash is the escaped byte
                escaping = slashes[number % 2 == 0]
                escaped[escaping + 1] = True
                escape_next = bool(escaped[len(a)])
            quotes = quotes[~escaped[quotes]]
        folded = a | 0x20  # '[' '{' → 0x7b, ']' '}' → 0x7d
        marks = np.flatnonzero((folded == 0x7B) | (folded == 0x7D) | (a == 0x2C))
        outside = (np.searchsorted(quotes, marks) + in_string) % 2 == 0
        marks = marks[outside]
        in_string = (in_string + len(quotes)) % 2
        kinds = a[marks]
        delta = np.where(kinds == 0x2C, 0, np.where((kinds | 0x20) == 0x7B, 1, -1))
        depths = depth + np.cumsum(delta)
        ends = np.flatnonzero(((kinds == 0x2C) & (depths == 1)) | (depths == 0))
        for k in ends.tolist():
            here = scan_from + int(marks[k])  # in the chunk
            at = offset + here
            closing = int(depths[k]) == 0
            if at - seg_start > MAX_RECORD_BYTES - CHUNK:
                yield SerialFrom(index)
                return
            if closing and chunk[here] != 0x5D:  # '}' closing the array
                yield SerialFrom(index)
                return
            if closing and index == 0 and _blank(pread, seg_start, at):
                seg_start = -1  # "[]": no elements
            if seg_start >= 0:
                yield RecordSpan(seg_start, at, seg_line, index, element=True)
                index += 1
            if closing:
                yield from _after_array(pread, size, at + 1, index)
                return
            line_base += chunk.count(b"\n", counted, here)
            counted = here
            seg_start, seg_line = at + 1, line_base
        depth = int(depths[-1]) if len(depths) else depth
        line_base += chunk.count(b"\n", counted)
        offset += len(chunk)
        counted = 0
        if offset - seg_start > MAX_RECORD_BYTES - CHUNK or offset >= size:
            yield SerialFrom(index)  # an element too large, or the file ends inside the array
            return
        chunk = pread(min(SCAN_CHUNK, size - offset), offset)
        scan_from = 0


def _after_array(pread: Pread, size: int, pos: int, index: int) -> Iterator[SerialFrom]:
    """SerialFrom(index) unless only whitespace follows the closing bracket."""
    while pos < size:
        chunk = pread(min(SCAN_CHUNK, size - pos), pos)
        if not chunk:
            return
        if chunk.strip(_JSON_WS):
            yield SerialFrom(index)
            return
        pos += len(chunk)


def _blank(pread: Pread, start: int, end: int) -> bool:
    """Is [start, end) of the file JSON whitespace only? (Read 64 KB at a time: it rarely is.)"""
    while start < end:
        data = pread(min(1 << 16, end - start), start)
        if not data or data.strip(_JSON_WS):
            return not data
        start += len(data)
    return True


def _skip_json_ws(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in _JSON_WS:
        pos += 1
    return pos


def record_from_span(raw: bytes, span: RecordSpan) -> RawRecord:
    """The RawRecord iter_jsonl would read for a line span (`raw` is the span's bytes)."""
    stripped = raw.strip()
    if span.line == 1 and stripped.startswith(codecs.BOM_UTF8):
        stripped = stripped[len(codecs.BOM_UTF8) :]
    return RawRecord(raw=stripped, where=f"line {span.line}", line=span.line, index=span.index)


def element_from_span(raw: bytes, span: RecordSpan) -> RawRecord | RecordError | None:
    """The record (or the UTF-8 error) iter_json_array would read for an element span, with the
    value its scanner (json) would parse; None when the span is not one valid JSON value, which
    only iter_json_array can locate exactly (see scan_json_array)."""
    element = raw.strip(_JSON_WS)
    line = span.line + raw.count(b"\n", 0, len(raw) - len(raw.lstrip(_JSON_WS)))
    where = f"element {span.index} (line {line})"
    try:
        text = element.decode("utf-8")
    except UnicodeDecodeError:
        try:
            json.loads(element.decode("utf-8", "surrogateescape"))
        except (ValueError, RecursionError):
            return None
        return utf8_error(element, where, line) or RecordError("not valid UTF-8", where=where, line=line)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return RawRecord(raw=element, where=where, line=line, index=span.index, value=value)
