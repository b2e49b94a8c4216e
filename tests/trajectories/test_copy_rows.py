"""The trajectory rows go to PostgreSQL in binary COPY format written by storage itself: each field
is what psycopg's binary dumpers write for it, and PostgreSQL reads back the values written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import adapt, pq
from psycopg._copy_base import format_row_binary

from trajectories.services.storage import _BINARY_SIGNATURE, _BINARY_TRAILER, _binary_value, _json_text

PROPERTIES = settings(max_examples=200, deadline=None, database=None, derandomize=True)
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
) | st.datetimes(timezones=st.just(timezone(timedelta(hours=5, minutes=30)))).filter(lambda d: 1 < d.year < 9999)


def _psycopg(kind: str, value: Any) -> bytes:
    with connection.cursor() as wrapper:
        tx = adapt.Transformer(wrapper.cursor)
    oid = wrapper.cursor.adapters.types.get_oid(kind)
    tx.set_dumper_types([oid], pq.Format.BINARY)
    out = bytearray()
    format_row_binary((value,), tx, out)
    return bytes(out[2:])  # without the row's field count


@pytest.mark.django_db
@PROPERTIES
@given(
    case=st.one_of(
        st.tuples(st.just("text"), _TEXT),
        st.tuples(st.just("int8"), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        st.tuples(st.just("int4"), st.integers(min_value=-(2**31), max_value=2**31 - 1)),
        st.tuples(st.just("float8"), st.floats()),
        st.tuples(st.just("bytea"), st.binary()),
        st.tuples(st.just("timestamptz"), _MOMENTS),
        st.tuples(st.sampled_from(["text", "int8", "int4", "float8", "bytea", "timestamptz"]), st.none()),
    )
)
def test_a_field_is_what_psycopg_writes(case: tuple[str, Any]) -> None:
    kind, value = case
    assert _binary_value(kind, value) == _psycopg(kind, value)


@pytest.mark.django_db
@PROPERTIES
@given(
    text=_TEXT,
    document=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | _TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
        max_leaves=8,
    ),
    blob=st.binary(max_size=5000),
    moment=_MOMENTS,
    number=st.floats(allow_nan=False) | st.none(),
)
def test_postgresql_reads_back_what_was_written(
    text: str, document: Any, blob: bytes, moment: datetime, number: float | None
) -> None:
    row = (("text", text), ("jsonb", document), ("bytea", blob), ("timestamptz", moment), ("float8", number))
    data = (
        _BINARY_SIGNATURE
        + len(row).to_bytes(2, "big")
        + b"".join(_binary_value(k, v) for k, v in row)
        + _BINARY_TRAILER
    )
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS copy_rows (t text, j jsonb, b bytea, m timestamptz, f float8)")
        cursor.execute("TRUNCATE copy_rows")
        with cursor.copy("COPY copy_rows FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(data)
        cursor.execute("SELECT t, j, b, m, f FROM copy_rows")
        back = cursor.fetchone()
        cursor.execute("SELECT %s::jsonb", [_json_text(document)])  # what text COPY would store
        (as_text,) = cursor.fetchone()
    assert back[0] == text
    assert back[1] == as_text  # jsonb as PostgreSQL prints it (Django's cursor leaves it text)
    assert bytes(back[2]) == blob
    assert back[3] == moment
    assert back[4] == number
