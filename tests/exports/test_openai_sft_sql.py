"""The OpenAI SFT lines PostgreSQL builds are, byte for byte, what `OpenAISftExporter.rows` gives written as
canonical JSON: on the demo projects, on generated batches (any state, turns of several calls, arguments with
blanks, quotes and escapes in their strings, corrections), and when read on two connections at once."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import Consensus
from core.models import Project
from demo.services import demo_seed
from exports.formats.base import sources
from exports.formats.openai_sft import OpenAISftExporter
from exports.formats.openai_sft_sql import read_in_parallel
from exports.services.jobs import _origin, export_dir, export_job_create, export_job_run
from trajectories.models import Step, Trajectory

OPTIONS = ({}, {"apply_corrections": True})


def _by_rows(project: Project, options: dict[str, Any], ids: list[int]) -> list[tuple[Any, bytes]]:
    exporter = OpenAISftExporter(project=project, options=options)
    return [
        (_origin(source.trajectory), orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n")
        for source in sources([ids])
        for row in exporter.rows(source)
    ]


def _by_sql(project: Project, options: dict[str, Any], ids: list[int]) -> list[tuple[Any, bytes]]:
    read = OpenAISftExporter(project=project, options=options).sql_lines()
    assert read is not None
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        return read(cursor, ids)


@pytest.mark.django_db
def test_the_demo_projects_give_the_same_lines_both_ways() -> None:
    demo_seed(run_now=True)
    assert Consensus.objects.exists()  # the tool-use demo is audited: its settled values are in the rows
    for project in Project.objects.all():
        ids = list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True))
        assert ids
        for options in OPTIONS:
            expected = _by_rows(project, options, ids)
            assert expected and _by_sql(project, options, ids) == expected


def test_drop_wrong_is_left_to_rows(project) -> None:
    assert OpenAISftExporter(project=project, options={"drop_wrong": True}).sql_lines() is None


TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
TRICKY = st.one_of(TEXT, st.sampled_from(['", "', '": ', ", ", ": ", '\\", "', 'a", ', '\\"', "\n\t", "é ü", " "]))
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.integers(-(10**6), 10**6).map(lambda i: i / 100), TRICKY
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=6,
)
MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["system", "user", "assistant", "tool", "other"]),
        "content": st.one_of(TRICKY, st.integers(0, 9)),
    },
)
STEP = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["tool_call", "tool_call", "respond"]),
        "turn_id": st.sampled_from(["", "t1", "t2"]),
        "state": st.lists(MESSAGE, max_size=2) | st.just([]),
        "plan": st.sampled_from(["", "Looking it up."]) | TRICKY,
        "tool_name": st.sampled_from(["get_reservation", "search"]),
        "tool_call_id": st.sampled_from(["", "c1", "c2"]),
        "arguments": st.one_of(st.dictionaries(TRICKY, JSON, max_size=4), JSON),
        "arguments_raw": st.none() | TRICKY,
        "observation": st.none() | TRICKY,
    }
)
RUN = st.fixed_dictionaries(
    {"goal": st.sampled_from(["", "Change my flight."]) | TRICKY, "steps": st.lists(STEP, max_size=6)}
)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(RUN, min_size=1, max_size=4), corrected=st.lists(JSON, min_size=1, max_size=4))
def test_generated_batches_give_the_same_lines_both_ways(project, runs, corrected) -> None:
    ids = []
    for n, run in enumerate(runs):
        t = Trajectory.objects.create(
            project=project,
            source_format="openai_chat",
            importer_version="1",
            rollout_id=f"r{n}" if n % 2 else "",
            goal_text=run["goal"],
            content_sha256=f"{n:064x}",
            payload=b"",
            payload_sha256=f"{n:064x}",
        )
        ids.append(t.pk)
        steps = Step.objects.bulk_create(Step(trajectory=t, index=i * 2, **step) for i, step in enumerate(run["steps"]))
        Consensus.objects.bulk_create(
            Consensus(
                trajectory=t,
                step=step,
                field=f"corrected:{name}",
                value=corrected[k % len(corrected)],
                method="unanimous",
            )
            for k, step in enumerate(steps)
            if isinstance(step.arguments, dict)
            for name in {*list(step.arguments)[: 1 + k % 2], "not-an-argument"}  # only an argument is corrected
        )
    try:
        for options in OPTIONS:
            assert _by_sql(project, options, ids) == _by_rows(project, options, ids)
    finally:
        Trajectory.objects.filter(pk__in=ids).delete()


@pytest.mark.django_db(transaction=True)
def test_two_connections_in_one_snapshot_write_the_same_file(batch, pm) -> None:
    assert not connection.in_atomic_block  # so the export reads on two connections of its own
    ids = list(batch.trajectories.order_by("id").values_list("id", flat=True))
    one_by_one = list(read_in_parallel(([pk] for pk in ids), _reader(batch.project), connections=2))
    assert [n for n, _ in one_by_one] == [1] * len(ids)
    assert [line for _, lines in one_by_one for line in lines] == _by_rows(batch.project, {}, ids)
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="openai_sft").pk)
    written = (export_dir(job) / job.files[0]["name"]).read_bytes()
    assert written == b"".join(line for _, line in _by_rows(batch.project, {}, ids))


def _reader(project: Project) -> Any:
    read = OpenAISftExporter(project=project, options={}).sql_lines()
    assert read is not None
    return read
