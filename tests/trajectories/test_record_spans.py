"""The span scanners (reading.scan_jsonl, reading.scan_json_array) cut a file exactly as the streaming
readers do: the same records, the same located errors, whatever the strings hold and wherever the
scanner's chunks end. A span the scanner cannot vouch for hands the rest to iter_json_array."""

from __future__ import annotations

import codecs
import io
import itertools
import json
import os
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from trajectories.formats import reading
from trajectories.formats.base import RawRecord, RecordError
from trajectories.formats.reading import (
    RecordSpan,
    SerialFrom,
    element_from_span,
    iter_json_array,
    iter_jsonl,
    record_from_span,
    scan_json_array,
    scan_jsonl,
)

PROPERTIES = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def read_by_spans(data: bytes, *, array: bool, grow: int = 0) -> list[RawRecord | RecordError]:
    """What the parallel import reads: spans parsed on their own, iter_json_array from a doubt on.

    With `grow`, the file is written as the scanner asks for it, `grow` bytes at a time (as the import unpacks
    it while scanning), and the scanner is given no size; no span may reach beyond what is written."""
    with tempfile.TemporaryFile() as f:
        fd = f.fileno()
        written = 0

        def ready(end: int) -> None:
            nonlocal written
            while written < min(end, len(data)):
                written += os.pwrite(fd, data[written : written + grow], written)

        scan = scan_json_array if array else scan_jsonl
        if grow:
            items = scan(fd, 1 << 62, ready)
        else:
            f.write(data)
            f.flush()
            items = scan(fd, len(data))
        out: list[RawRecord | RecordError] = []
        for item in items:
            serial_from = None
            if isinstance(item, SerialFrom):
                serial_from = item.count
            elif isinstance(item, RecordError):
                out.append(item)
            else:
                assert not grow or item.end <= written, (item, written)
                raw = os.pread(fd, item.end - item.start, item.start)
                record = element_from_span(raw, item) if array else record_from_span(raw, item)
                if record is None:
                    serial_from = item.index
                else:
                    out.append(record)
            if serial_from is not None:
                if grow:
                    ready(len(data))  # the serial reader reads the whole file
                f.seek(0)
                return out + list(itertools.islice(iter_json_array(f), serial_from, None))
        return out


def _seen(items: list[RawRecord | RecordError]) -> list[tuple[Any, ...]]:
    return [
        ("error", i.message, i.where, i.line)
        if isinstance(i, RecordError)
        else ("record", i.raw, i.where, i.line, i.index, json.dumps(i.value))
        for i in items
    ]


def assert_read_alike(data: bytes, *, array: bool = True, grow: int = 0) -> None:
    serial = list((iter_json_array if array else iter_jsonl)(io.BytesIO(data)))
    assert _seen(read_by_spans(data, array=array, grow=grow)) == _seen(serial)


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks of a few bytes, so that every kind of byte falls on a chunk's edge somewhere."""
    monkeypatch.setattr(reading, "SCAN_CHUNK", 5)


ARRAYS = [
    b"[]",
    b" \n[\n  ]\n",
    b"[1]",
    b'[1,2,"three",null,true,{"a":[]}]',
    b'[{"a":"]"},"\\"",[["x"]],"\\\\","\\\\\\"]"]',
    b'[{"k":"}\\\\"},{"k":"\\\\\\\\\\""}]',
    b'[\n  {"a": 1},\n\n  {"b": [1, 2, {"c": "}"}]}\n]\n',
    b"\xef\xbb\xbf[1]",
    b' \xef\xbb\xbf [ "bom after whitespace" ]',
    b"[NaN, 1e400, 123456789012345678901234567890]",  # only the stdlib scanner takes these
    b'["\\ud800"]',
    b'[{"a":"\xff"}, 2, {"b": "\xc3"}]',  # not UTF-8: that element alone is rejected
    # one element a line, and indented: cut at the lines that start as the first element's does
    b'[\n{"a": 1},\n{"b": "x,\\n{y"},\n\n{"c": [1,\n2]}\n]\n',
    b'[\n  {\n    "a": 1\n  },\n  {\n    "b": [\n      {"c": 2},\n      {"d": 3}\n    ]\n  }\n]',
    b"[\n  [1, 2],  \n  [3],\n  []\n]",
    b'[\n  {"a": 1}\n, {"b": 2}\n, {"c": 3}\n]',  # commas that lead a line: no line cuts
    b'[\n{"a": [\n{"x": 1},\n{"y": 2}\n]},\n{"b": 2}\n]',  # a line inside an element looks like an element's
    b'[\n{"a": 1},\n{"b": 2},\n]',
    b'[\n{"a": 1},\n{"b": 2}\n',
    b'[\n{"a": 1},\n{"b": 2}\n] x',
]
BROKEN_ARRAYS = [
    b"",
    b"x",
    b"{}",
    b"[",
    b"[1",
    b'["abc',
    b'[{"a":1},',
    b'[{"a":1}, ',
    b"[1,]",
    b"[,1]",
    b"[1,,2]",
    b"[1 2]",
    b"[1}",
    b"[}",
    b"[tru]",
    b'[{"a":1} x]',
    b"[1] x",
    b"[1]]",
    b"[\xff]",
    b'[{"a": 1}, {"b": tru}, {"c": 3}]',
    b'[{"a": "x\\q"}]',
    b'[{"a": "tab\there"}]',
    b'[1, \\"2"]',
]


@pytest.mark.parametrize("data", ARRAYS + BROKEN_ARRAYS)
def test_arrays_read_alike(data: bytes) -> None:
    assert_read_alike(data)


@pytest.mark.parametrize("data", ARRAYS + BROKEN_ARRAYS)
def test_arrays_read_alike_whatever_the_chunks(data: bytes, tiny_chunks) -> None:
    assert_read_alike(data)


LINES = [
    b"",
    b"\n",
    b'{}\n\n  \n{"a":1}',
    b'\xef\xbb\xbf{"a":1}\n{}',
    b" {}\n{x}\n",
    b"{}\r\n{}\r\n",
    b"\xef\xbb\xbf\n{}",
]


@pytest.mark.parametrize("data", LINES)
def test_json_lines_read_alike_whatever_the_chunks(data: bytes, monkeypatch) -> None:
    assert_read_alike(data, array=False)
    monkeypatch.setattr(reading, "SCAN_CHUNK", 3)
    assert_read_alike(data, array=False)


@pytest.mark.parametrize("grow", [1, 5, 64])
@pytest.mark.parametrize(("data", "array"), [(d, True) for d in ARRAYS + BROKEN_ARRAYS] + [(d, False) for d in LINES])
def test_a_file_still_being_written_reads_alike(data: bytes, array: bool, grow: int, monkeypatch) -> None:
    """Scanned as it is unpacked (the import does not wait for the whole file): the same records and errors."""
    assert_read_alike(data, array=array, grow=grow)
    monkeypatch.setattr(reading, "SCAN_CHUNK", 3)
    monkeypatch.setattr(reading, "LINE_CHUNK", 4)
    assert_read_alike(data, array=array, grow=grow)


def test_a_line_or_element_over_the_size_limit_is_located_as_before(monkeypatch) -> None:
    monkeypatch.setattr(reading, "MAX_RECORD_BYTES", 64)
    monkeypatch.setattr(reading, "CHUNK", 16)
    long = b'{"a": "' + b"x" * 100 + b'"}'
    assert_read_alike(b"{}\n" + long + b"\n{}\n", array=False)
    assert_read_alike(b"[{}, " + long + b", {}]")


# Strings full of what a scanner can trip on: quotes, backslashes, brackets and commas.
tricky_text = st.text(alphabet=st.sampled_from(list('"\\[]{},: \n\tab\u00e9\u2028😀')), max_size=12)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), tricky_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(tricky_text, inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def array_files(draw) -> bytes:
    elements = draw(st.lists(values, max_size=6))
    indent = draw(st.sampled_from([None, 0, 2]))
    data = json.dumps(elements, indent=indent, ensure_ascii=draw(st.booleans())).encode()
    if draw(st.booleans()):  # cut short, or one byte changed: the scanner must defer to the reader
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if draw(st.booleans()):
            data = data[:at]
        else:
            data = data[:at] + draw(st.sampled_from([b'"', b"\\", b"]", b"}", b",", b"[", b" ", b"x"])) + data[at + 1 :]
    return data


@PROPERTIES
@given(data=array_files(), chunk=st.sampled_from([1, 2, 3, 7, 64, 4 << 20]))
def test_any_array_reads_alike(data: bytes, chunk: int) -> None:
    original = reading.SCAN_CHUNK
    reading.SCAN_CHUNK = chunk
    try:
        assert_read_alike(data)
    finally:
        reading.SCAN_CHUNK = original


@PROPERTIES
@given(
    data=array_files(),
    chunk=st.sampled_from([1, 2, 3, 7, 64, 4 << 20]),
    span_limit=st.sampled_from([8, 64, 4 << 20]),
)
def test_any_array_reads_alike_whatever_the_line_cuts_chunks(data: bytes, chunk: int, span_limit: int) -> None:
    """The line cuts (one element a line, or indented) with their chunks ending anywhere, and handing over
    to the bracket scanner at any span length."""
    originals = reading.LINE_CHUNK, reading.LINE_SPAN_BYTES
    reading.LINE_CHUNK, reading.LINE_SPAN_BYTES = chunk, span_limit
    try:
        assert_read_alike(data)
    finally:
        reading.LINE_CHUNK, reading.LINE_SPAN_BYTES = originals


@st.composite
def jsonl_files(draw) -> bytes:
    lines = [json.dumps(v, ensure_ascii=draw(st.booleans())).encode() for v in draw(st.lists(values, max_size=6))]
    lines = [line if draw(st.integers(0, 5)) else draw(st.sampled_from([b"", b"  ", b"{x", b"\r"])) for line in lines]
    data = b"\n".join(lines) + draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    return (codecs.BOM_UTF8 if draw(st.integers(0, 5)) == 0 else b"") + data


@PROPERTIES
@given(
    data=st.one_of(array_files(), jsonl_files()),
    grow=st.sampled_from([1, 2, 7, 64, 4096]),
    chunk=st.sampled_from([1, 3, 64, 4 << 20]),
)
def test_any_file_still_being_written_reads_alike(data: bytes, grow: int, chunk: int) -> None:
    originals = reading.SCAN_CHUNK, reading.LINE_CHUNK
    reading.SCAN_CHUNK = reading.LINE_CHUNK = chunk
    try:
        assert_read_alike(data, array=data.lstrip(codecs.BOM_UTF8 + b" \n")[:1] == b"[", grow=grow)
    finally:
        reading.SCAN_CHUNK, reading.LINE_CHUNK = originals


@pytest.mark.parametrize("indent", [None, 2])
def test_a_line_structured_array_is_cut_by_its_lines(indent: int | None, monkeypatch) -> None:
    """One element a line, or indented: the bracket scanner only sees the last element (after it, the
    closing bracket); every other cut is a line's."""
    elements = [{"id": i, "text": "a,\n{b}", "nested": [{"x": [i]}, {"y": {}}]} for i in range(50)]
    if indent is None:
        data = b"[\n" + b",\n".join(json.dumps(e).encode() for e in elements) + b"\n]\n"
    else:
        data = json.dumps(elements, indent=indent).encode()
    started_at: list[int] = []
    bracket_spans = reading._bracket_spans

    def watched(fd: int, size: int, seg_start: int, seg_line: int, index: int) -> Any:
        started_at.append(index)
        return bracket_spans(fd, size, seg_start, seg_line, index)

    monkeypatch.setattr(reading, "_bracket_spans", watched)
    assert_read_alike(data)
    assert started_at == [49]
    compact = b"[" + b",".join(json.dumps(e).encode() for e in elements) + b"]"
    started_at.clear()
    assert_read_alike(compact)
    assert started_at == [0]  # no lines to cut by


def test_spans_cover_the_elements_bytes() -> None:
    data = b'[ {"a": "x,y"} ,\n"\\"]", 3 ]'
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        spans = list(scan_json_array(f.fileno(), len(data)))
    assert all(isinstance(s, RecordSpan) for s in spans)
    assert [data[s.start : s.end].strip() for s in spans if isinstance(s, RecordSpan)] == [
        b'{"a": "x,y"}',
        b'"\\"]"',
        b"3",
    ]


# ---------------------------------------------------------------- element values: orjson where it agrees with json

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits too: orjson would read a float
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_literals = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e400", '"\\ud800"', '"\\udc00x"', "18446744073709551616", "-0", "-0.0"]
)


@PROPERTIES
@given(value=_json_values, literal=_literals, where=st.integers(min_value=0, max_value=2))
def test_an_element_s_value_is_json_s_value(value: Any, literal: str, where: int) -> None:
    """The value an element span gets is exactly json's (integers beyond 64 bits stay integers,
    the literals orjson refuses are read), whichever parser read it."""
    text = json.dumps(value)
    if where == 1:
        text = f"[{text}, {literal}]"
    elif where == 2:
        text = f'{{"x": {literal}, "y": {text}}}'
    raw = text.encode("utf-8", "surrogatepass")
    try:
        expected = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return  # a lone surrogate in a str: not UTF-8, a located error either way
    record = element_from_span(raw, RecordSpan(0, len(raw), 1, 0, element=True))
    assert isinstance(record, RawRecord)
    assert repr(record.value) == repr(expected)  # repr: float vs int, -0.0, nan alike
