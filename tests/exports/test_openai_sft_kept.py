"""The chat messages a trajectory keeps from its import (trajectories.chat) give, byte for byte, the OpenAI SFT
lines `OpenAISftExporter.rows` builds from the steps' rows: over generated OpenAI chat files (arguments with
floats jsonb prints otherwise, NUL, odd shapes), on the demo projects, after a Stepwise round trip; and the
export builds a line from the rows wherever the kept messages do not hold: none kept, another version,
options that change the steps, a dictionary gone; `manage.py keep_chat_messages` builds what trajectories lack."""

from __future__ import annotations

import io
import itertools
import json
from typing import Any

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from hypothesis import given, settings

from core.models import Project
from core.services import project_create
from demo.services import demo_seed
from exports.formats.base import sources
from exports.formats.openai_sft import OpenAISftExporter
from exports.selectors import kept_chats, steps_changed_by
from exports.services.jobs import _origin
from tests.trajectories.fixtures_util import run_import
from tests.trajectories.test_import_fuzz import FUZZ, structured_files
from trajectories.blobs import dictionary_of
from trajectories.chat import CHAT_VERSION
from trajectories.models import ImportStatus, PayloadDictionary, Step, Trajectory
from trajectories.services import imports

OPTIONS = ({}, {"apply_corrections": True}, {"drop_wrong": True})
_slugs = itertools.count()


def _by_rows(project: Project, options: dict[str, Any], ids: list[int]) -> list[tuple[Any, bytes]]:
    exporter = OpenAISftExporter(project=project, options=options)
    return [
        (_origin(source.trajectory), orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n")
        for source in sources([ids])
        for row in exporter.rows(source)
    ]


def _lines(project: Project, options: dict[str, Any], ids: list[int]) -> list[tuple[Any, bytes]]:
    return OpenAISftExporter(project=project, options=options).lines(ids)


def _ids(project: Project) -> list[int]:
    return list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True))


def _all_kept(ids: list[int]) -> bool:
    return all(chat is not None for _, chat in kept_chats(ids).values())


@pytest.mark.smoke
@pytest.mark.django_db
@settings(FUZZ, max_examples=40)
@given(case=structured_files())
def test_kept_messages_are_the_lines_rows_build(pm, case) -> None:
    data, format_name = case
    project = project_create(actor=pm, name=f"Kept {next(_slugs)}", kind="tool_use")
    job = run_import(project, data, format_name=format_name)
    assert job.status == ImportStatus.DONE, job.error
    ids = _ids(project)
    assert ids and _all_kept(ids)  # every line below comes from the kept messages
    assert _lines(project, {}, ids) == _by_rows(project, {}, ids)


def _record(arguments: str, observation: str = "found") -> bytes:
    return json.dumps(
        {
            "messages": [
                {"role": "system", "content": "You are an airline agent."},
                {"role": "user", "content": "Find it."},
                {
                    "role": "assistant",
                    "content": "Looking.",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "find", "arguments": arguments}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": observation},
                {"role": "assistant", "content": "Here."},
            ]
        }
    ).encode()


@pytest.mark.smoke
@pytest.mark.django_db
def test_numbers_the_database_prints_otherwise_and_nul(project) -> None:
    # jsonb keeps 1e16 as 10000000000000000 (read back as an int) and -0.0 as 0.0; text columns keep NUL as U+FFFD
    arguments = '{"z": 1e16, "a": -0.0, "bb": [1.5e-7, 1.2345678901234567e16, 1e300], "c": "1e5 -0.0", "d": 2.5}'
    job = run_import(project, _record(arguments, "a\u0000b") + b"\n" + _record('{"b": 1, "a": "x\\u0000y"}') + b"\n")
    assert job.status == ImportStatus.DONE, job.error
    ids = _ids(project)
    assert len(ids) == 2 and _all_kept(ids)
    lines = _lines(project, {}, ids)
    assert lines == _by_rows(project, {}, ids)
    row = orjson.loads(lines[0][1])
    sent = json.loads(row["messages"][2]["tool_calls"][0]["function"]["arguments"])
    assert list(sent) == ["a", "bb", "c", "d", "z"]  # sorted keys
    assert row["messages"][3]["content"] == "a\ufffdb"
    if connection.vendor == "postgresql":
        assert sent["z"] == 10**16 and isinstance(sent["z"], int) and isinstance(sent["bb"][2], int)
        assert str(sent["a"]) == "0.0"


@pytest.mark.smoke
@pytest.mark.django_db
def test_the_demo_projects_give_the_same_lines_both_ways() -> None:
    demo_seed(run_now=True)
    for project in Project.objects.all():
        ids = _ids(project)
        assert ids and _all_kept(ids)
        for options in OPTIONS:
            assert _lines(project, options, ids) == _by_rows(project, options, ids)


@pytest.mark.smoke
@pytest.mark.django_db
def test_options_that_change_steps_build_those_trajectories_from_rows(batch) -> None:
    # the batch: run 0 has a −1 process reward on its reply, run 1 a corrected argument, run 2 a wrong tool
    project = batch.project
    ids = sorted(batch.trajectories.values_list("id", flat=True))
    assert _all_kept(ids)
    assert steps_changed_by(ids, corrections=False, drop_wrong=False) == set()
    assert steps_changed_by(ids, corrections=True, drop_wrong=False) == {ids[1]}
    assert steps_changed_by(ids, corrections=False, drop_wrong=True) == {ids[0], ids[2]}
    for options in OPTIONS:
        expected = _by_rows(project, options, ids)
        assert _lines(project, options, ids) == expected
    plain, corrected = _by_rows(project, {}, ids), _by_rows(project, {"apply_corrections": True}, ids)
    assert plain[1] != corrected[1] and b"ZFA999" in corrected[1][1] and plain[0] == corrected[0]


@pytest.mark.smoke
@pytest.mark.django_db
def test_trajectories_without_kept_messages_of_this_version_are_built_from_rows(batch) -> None:
    project = batch.project
    ids = sorted(batch.trajectories.values_list("id", flat=True))
    expected = _by_rows(project, {}, ids)
    Trajectory.objects.filter(pk=ids[0]).update(chat=None)
    stale = bytes(Trajectory.objects.get(pk=ids[1]).chat)
    Trajectory.objects.filter(pk=ids[1]).update(chat=bytes([CHAT_VERSION + 1]) + stale[1:])
    # a changed blob of another version would give other bytes, were it read
    Trajectory.objects.filter(pk=ids[2]).update(chat=bytes([CHAT_VERSION + 1, 0]) + b"not zstd")
    assert [chat for _, chat in kept_chats(ids).values()] == [None, None, None]
    assert _lines(project, {}, ids) == expected


@pytest.mark.django_db
def test_a_dictionary_gone_leaves_the_rows(project, monkeypatch) -> None:
    # PostgreSQL compresses the messages of an import's later runs against its payload dictionary (one
    # process: the serial path)
    monkeypatch.setattr(imports, "PARSE_WORKERS", 0)
    data = b"".join(_record(json.dumps({"n": i})) + b"\n" for i in range(8))
    assert run_import(project, data).status == ImportStatus.DONE
    ids = _ids(project)
    expected = _by_rows(project, {}, ids)
    assert _lines(project, {}, ids) == expected
    assert PayloadDictionary.objects.filter(project=project).exists()
    assert any(dictionary_of(chat.packed) is not None for _, chat in kept_chats(ids).values() if chat)
    PayloadDictionary.objects.filter(project=project).delete()
    assert _all_kept(ids) and _lines(project, {}, ids) == expected


@pytest.mark.smoke
@pytest.mark.django_db
def test_keep_chat_messages_builds_what_trajectories_lack(batch, project) -> None:
    ids = sorted(batch.trajectories.values_list("id", flat=True))
    # one imported before Stepwise kept messages, one of another version, one made without an import at all
    # (steps 0, 2, 4: a call's default id is its index), one that keeps messages already
    Trajectory.objects.filter(pk=ids[0]).update(chat=None)
    Trajectory.objects.filter(pk=ids[1]).update(chat=bytes([CHAT_VERSION + 1, 0]) + b"not zstd")
    made = Trajectory.objects.create(
        project=project,
        source_format="openai_chat",
        importer_version="1",
        goal_text="Change my flight.",
        content_sha256="f" * 64,
        payload=b"",
        payload_sha256="f" * 64,
    )
    Step.objects.bulk_create(
        Step(trajectory=made, index=2 * i, kind="tool_call", tool_name="search", arguments={"q": i}, observation="ok")
        for i in range(3)
    )
    Step.objects.create(trajectory=made, index=6, kind="respond", arguments={"content": "Done."})
    every = [*ids, made.pk]
    kept_before = bytes(Trajectory.objects.get(pk=ids[2]).chat)
    expected = _by_rows(project, {}, every)
    out = io.StringIO()
    call_command("keep_chat_messages", "--project", project.slug, stdout=out)
    assert "Kept the chat messages of 3 trajectories." in out.getvalue()
    assert _all_kept(every) and bytes(Trajectory.objects.get(pk=ids[2]).chat) == kept_before
    assert _lines(project, {}, every) == expected
    assert b'"id":"call_4"' in expected[-1][1]
    call_command("keep_chat_messages", stdout=out)  # nothing left to build
    assert "Kept the chat messages of 0 trajectories." in out.getvalue()
    with pytest.raises(CommandError, match="no project"):
        call_command("keep_chat_messages", "--project", "nope")
