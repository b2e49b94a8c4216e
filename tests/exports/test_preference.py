"""Preference pairs from ToolBench's abandoned branches and in LLaMA-Factory's format: the committed
fixture and the real ToolBench sample give the expected pairs in TRL's and LLaMA-Factory's shapes, every
LLaMA-Factory row keeps its alternation, and the files load with Hugging Face `datasets`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.urls import reverse
from jsonschema import Draft202012Validator

from audit.services.consensus import trajectory_consensus_compute
from exports.formats.base import Source, StepRow
from exports.formats.llamafactory_dpo import LlamaFactoryDpoExporter
from exports.formats.trl_dpo import TrlDpoExporter
from exports.models import ExportJob
from exports.services.batches import batch_create
from exports.services.jobs import export_dir, export_job_create, export_job_run, verify_manifest
from tests.annotation.helpers import freeze_registry
from tests.audit.helpers import claim, label_and_submit, team
from tests.conftest import login
from tests.exports.datasets_util import load_with_datasets
from tests.trajectories.fixtures_util import run_import
from trajectories.models import ImportStatus, Trajectory

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = "toolbench_G1_57_ChatGPT_DFS_woFilter_w2.json"
TRL = Draft202012Validator(json.loads((ROOT / "exports/formats/trl_dpo.schema.json").read_text()))
LLAMA = Draft202012Validator(json.loads((ROOT / "exports/formats/llamafactory_dpo.schema.json").read_text()))
QUERY = "What is the weather in Paris now, and will it rain tomorrow?"
SUNNY = '{"error": "", "response": "{\'temp_c\': 18, \'condition\': \'Sunny\'}"}'


def audited(project, pm, files: list[Path], *, steps: dict[int, dict[str, Any]] | None = None) -> list[Trajectory]:
    """Import each file, have three annotators label every run (per-step overrides for all), settle them."""
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    for file in files:
        job = run_import(project, file.read_bytes(), name=file.name)
        assert job.status == ImportStatus.DONE and job.trajectories_imported == 1, job.errors
    runs = list(Trajectory.objects.filter(project=project).order_by("id"))
    for run in runs:
        for user in team(project, pm, prefix=f"a{run.pk}-"):
            label_and_submit(claim(project, user, run), user, steps=steps)
        trajectory_consensus_compute(trajectory_id=run.pk)
    return runs


def export(pm, batch, format: str, **options: Any) -> tuple[ExportJob, list[dict[str, Any]]]:
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format=format, options=options).pk)
    rows = [orjson.loads(line) for line in (export_dir(job) / job.files[0]["name"]).read_bytes().splitlines()]
    validator = TRL if format == "trl_dpo" else LLAMA
    for row in rows:
        assert not [e.message for e in validator.iter_errors(row)], row
        if format == "llamafactory_dpo":
            assert_alternation(row)
    return job, rows


def assert_alternation(row: dict[str, Any]) -> None:
    """LLaMA-Factory's rules for a sharegpt ranking row (its converter skips a row that breaks them)."""
    turns = [t["from"] for t in row["conversations"]]
    assert turns[0] == "human"
    for position, role in enumerate(turns):
        assert role in (("human", "observation") if position % 2 == 0 else ("gpt", "function_call")), turns
    assert len(turns) % 2 == 1, turns  # ends on an input: chosen / rejected are the next output
    assert row["chosen"]["from"] in ("gpt", "function_call") and row["rejected"]["from"] in ("gpt", "function_call")
    for turn in [*row["conversations"], row["chosen"], row["rejected"]]:
        if turn["from"] == "function_call":
            call = json.loads(turn["value"])
            assert isinstance(call["name"], str) and "arguments" in call


def call(name: str, arguments: Any) -> dict[str, str]:
    return {"from": "function_call", "value": json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)}


def tool_call(message: dict[str, Any]) -> tuple[str | None, str, str]:
    (c,) = message["tool_calls"]
    return message["content"], c["function"]["name"], c["function"]["arguments"]


@pytest.fixture
def weather(project, pm, settings, tmp_path):
    """The fixture: a won run with four abandoned branches, and a give_up run of the same query."""
    settings.MEDIA_ROOT = tmp_path
    won, gave_up = audited(
        project, pm, [FIXTURES / "toolbench_weather_win.json", FIXTURES / "toolbench_weather_give_up.json"]
    )
    assert won.goal_id == gave_up.goal_id and len(won.alternatives) == 4 and len(gave_up.alternatives) == 1
    return won, gave_up, batch_create(actor=pm, project=project, name="pairs", filters={})


def test_the_fixture_gives_its_same_goal_pair_and_one_pair_per_distinct_branch_in_trl(weather, pm) -> None:
    won, gave_up, batch = weather
    job, rows = export(pm, batch, "trl_dpo")
    ref = str(won.pk)
    assert [(r["pair"], r["chosen_trajectory"], r["rejected_trajectory"]) for r in rows] == [
        ("same_goal", ref, str(gave_up.pk)),
        ("alternative", ref, f"{ref}/alternatives/0"),
        ("alternative", ref, f"{ref}/alternatives/1"),  # alternatives/2 begins alike: the same pair
        ("alternative", ref, f"{ref}/alternatives/3"),
    ]
    same, at_first, forecast, unparsed = rows
    assert same["prompt"] == [{"role": "user", "content": QUERY}]
    assert [tool_call(m)[1] for m in same["chosen"] if m["role"] == "assistant"] == [
        "current_for_weather_api",
        "daily_for_weather_api",
        "Finish",
    ]
    assert [tool_call(m)[1] for m in same["rejected"] if m["role"] == "assistant"] == [
        "current_for_weather_api",
        "forecast_for_weather_api",
        "Finish",
    ]
    # the first step replaced: the task is the prompt, the shared thought is on both sides
    assert at_first["prompt"] == [{"role": "user", "content": QUERY}]
    thought = "I will check the current weather first."
    assert tool_call(at_first["chosen"][0]) == (thought, "current_for_weather_api", '{"city":"Paris"}')
    assert tool_call(at_first["rejected"][0]) == (thought, "current_for_weather_api", '{"town":"Paris"}')
    # the second step replaced: the conversation up to the observation before it
    assert [m["role"] for m in forecast["prompt"]] == ["user", "assistant", "tool"]
    assert forecast["prompt"][2]["content"] == SUNNY
    chosen = ("Tomorrow needs the daily endpoint.", "daily_for_weather_api", '{"city":"Paris"}')
    assert tool_call(forecast["chosen"][0]) == chosen
    assert tool_call(forecast["rejected"][0]) == (None, "forecast_for_weather_api", '{"city":"Paris","days":1}')
    assert forecast["rejected"][0]["tool_calls"][0]["id"] == forecast["chosen"][0]["tool_calls"][0]["id"]
    assert unparsed["prompt"] == forecast["prompt"] and tool_call(unparsed["chosen"][0]) == chosen
    assert tool_call(unparsed["rejected"][0]) == (None, "daily_for_weather_api", "{city: Paris}")  # as written
    # provenance: a same-goal pair names its two runs, an alternative pair its one run
    manifest = orjson.loads((export_dir(job) / "manifest.json").read_bytes())
    assert [r["trajectory"] for r in manifest["records"]] == [f"{ref}+{gave_up.pk}", ref, ref, ref]


def test_the_fixture_gives_the_same_pairs_in_llamafactory_format(weather, pm) -> None:
    won, gave_up, batch = weather
    _, rows = export(pm, batch, "llamafactory_dpo")
    ref = str(won.pk)
    assert [(r["pair"], r["rejected_trajectory"]) for r in rows] == [
        ("same_goal", str(gave_up.pk)),
        ("alternative", f"{ref}/alternatives/0"),
        ("alternative", f"{ref}/alternatives/1"),
        ("alternative", f"{ref}/alternatives/3"),
    ]
    same, at_first, forecast, unparsed = rows
    opening = [
        {"from": "human", "value": QUERY},
        call("current_for_weather_api", {"city": "Paris"}),
        {"from": "observation", "value": SUNNY},
    ]
    # the two runs share their first call and its result; they part at the second call
    assert same["conversations"] == opening
    assert same["chosen"] == call("daily_for_weather_api", {"city": "Paris"})
    assert same["rejected"] == call("forecast_for_weather_api", {"city": "Paris", "days": 1})
    assert at_first["conversations"] == opening[:1]
    assert at_first["chosen"] == call("current_for_weather_api", {"city": "Paris"})
    assert at_first["rejected"] == call("current_for_weather_api", {"town": "Paris"})
    assert forecast["conversations"] == opening and forecast["chosen"] == same["chosen"]
    assert forecast["rejected"] == same["rejected"]
    assert unparsed["rejected"] == call("daily_for_weather_api", "{city: Paris}")
    assert all(r["system"] == "" and json.loads(r["tools"])[0]["name"] == "get_reservation" for r in rows)


def test_a_chosen_step_the_annotators_settled_wrong_gives_no_pair_at_it(project, pm, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    (won,) = audited(project, pm, [FIXTURES / "toolbench_weather_win.json"], steps={1: {"process_reward": -1}})
    batch = batch_create(actor=pm, project=project, name="pairs", filters={})
    for format in ("trl_dpo", "llamafactory_dpo"):
        _, rows = export(pm, batch, format)
        assert [r["rejected_trajectory"] for r in rows] == [f"{won.pk}/alternatives/0"]  # branch_from 0 only


def test_the_real_toolbench_answer_gives_one_pair_at_its_pruned_branches(
    project, pm, settings, tmp_path, samples_dir
) -> None:
    settings.MEDIA_ROOT = tmp_path
    (run,) = audited(project, pm, [samples_dir / SAMPLE])
    steps = list(run.steps.order_by("index"))
    # three pruned branches replace the third step, all starting with the same search: one pair
    assert [a["branch_from"] for a in run.alternatives] == [2, 2, 2]
    batch = batch_create(actor=pm, project=project, name="pairs", filters={})
    _, (trl,) = export(pm, batch, "trl_dpo")
    assert (trl["pair"], trl["rejected_trajectory"]) == ("alternative", f"{run.pk}/alternatives/0")
    assert [m["role"] for m in trl["prompt"]] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert [tool_call(m)[1] for m in trl["prompt"] if m["role"] == "assistant"] == [s.tool_name for s in steps[:2]]
    assert trl["prompt"][-1]["content"] == steps[1].observation
    # DFSDT's note on the branches already tried was written for the retry only: not in the shared prompt
    assert steps[2].state[0]["content"].startswith("This is not the first time")
    assert not any("This is not the first time" in (m["content"] or "") for m in trl["prompt"])
    plan, name, arguments = tool_call(trl["chosen"][0])
    assert (plan, name, json.loads(arguments)) == (steps[2].plan, "search_b_for_seo_api", {"query": "iPhone 14 news"})
    plan, name, arguments = tool_call(trl["rejected"][0])
    assert (plan, name, json.loads(arguments)) == (None, "search_for_seo_api", {"query": "iPhone 14 news"})
    _, (llama,) = export(pm, batch, "llamafactory_dpo")
    roles = ["human", "function_call", "observation", "function_call", "observation"]
    assert [t["from"] for t in llama["conversations"]] == roles
    assert llama["system"] == trl["prompt"][0]["content"]
    assert llama["chosen"] == call("search_b_for_seo_api", {"query": "iPhone 14 news"})
    assert llama["rejected"] == call("search_for_seo_api", {"query": "iPhone 14 news"})


LOAD = """
import json, sys
import datasets
jsonl, parquet, cache = sys.argv[1:4]
a = datasets.load_dataset("json", data_files=jsonl, split="train", cache_dir=cache)
b = datasets.load_dataset("parquet", data_files=parquet, split="train", cache_dir=cache)
print(json.dumps({"json": a.num_rows, "parquet": b.num_rows, "columns": sorted(b.column_names),
                  "first": b[0], "first_json": a[0]}))
"""


@pytest.mark.parametrize("format", ["trl_dpo", "llamafactory_dpo"])
def test_the_pairs_load_with_hugging_face_datasets_from_jsonl_and_parquet(weather, pm, tmp_path, format) -> None:
    _, _, batch = weather
    job, rows = export(pm, batch, format, parquet=True)
    folder = export_dir(job)
    names = [f["name"] for f in job.files]
    jsonl, parquet = folder / names[0], folder / names[1]
    loaded = load_with_datasets(LOAD, jsonl, parquet, tmp_path)
    assert loaded["json"] == loaded["parquet"] == len(rows) == 4
    assert loaded["columns"] == sorted(rows[0])
    first = loaded["first"]
    if format == "llamafactory_dpo":  # turns stay structs in Parquet, as LLaMA-Factory reads them
        assert first["conversations"] == rows[0]["conversations"] and first["chosen"] == rows[0]["chosen"]
        assert loaded["first_json"]["rejected"] == rows[0]["rejected"]
    else:  # chat messages are their canonical JSON text in Parquet
        assert json.loads(first["chosen"]) == rows[0]["chosen"]
    assert verify_manifest(folder / "manifest.json") == []


def test_dataset_info_beside_the_pairs_registers_them_with_llamafactory(weather, pm) -> None:
    _, _, batch = weather
    job, rows = export(pm, batch, "llamafactory_dpo", parquet=True)
    folder = export_dir(job)
    names = [f["name"] for f in job.files]
    assert names[2:] == ["dataset_info.json", "README.md", "manifest.json"]
    info = json.loads((folder / "dataset_info.json").read_text())
    ((name, entry),) = info.items()
    assert name == names[0].removesuffix(".jsonl") and entry["file_name"] == names[0]
    assert (entry["formatting"], entry["ranking"]) == ("sharegpt", True)
    # every column LLaMA-Factory is told to read is in every row, with the role its converter expects
    assert set(entry["columns"]) == {"messages", "chosen", "rejected", "system", "tools"}
    assert all(column in row for row in rows for column in entry["columns"].values())
    assert "tags" not in entry  # LLaMA-Factory's default tags (from / value, human, gpt, …) are the rows'
    card = (folder / "README.md").read_text()
    assert (
        f"`dataset_info.json` beside it: registers the pairs with LLaMA-Factory (`dataset_dir`: this folder, `dataset`: {name})"
        in card
    )
    assert "the same rows in Parquet" in card
    assert verify_manifest(folder / "manifest.json") == []
    (folder / "dataset_info.json").write_text("{}")
    assert verify_manifest(folder / "manifest.json") == ["dataset_info.json: sha256 differs from the manifest"]


def test_no_other_format_writes_dataset_info(weather, pm) -> None:
    _, _, batch = weather
    job, _ = export(pm, batch, "trl_dpo")
    assert [f["name"] for f in job.files][1:] == ["README.md", "manifest.json"]
    assert not (export_dir(job) / "dataset_info.json").exists()


def test_a_branch_whose_conversation_breaks_the_alternation_gives_trl_a_row_and_llamafactory_none(project) -> None:
    def step(index: int, tool: str, state: list[dict[str, str]]) -> StepRow:
        return StepRow(index, index, "tool_call", f"turn-{index}", state, "", tool, "", {}, None, "ok", "", True)

    note = {"role": "user", "content": "Earlier tries failed; try something else."}
    steps = [
        step(0, "current_for_weather_api", [{"role": "user", "content": QUERY}]),
        step(1, "daily_for_weather_api", [note]),  # a user message right after a result: no LLaMA-Factory turn
        step(2, "Finish", []),
    ]
    branch = {"branch_from": 2, "steps": [{"tool": "forecast_for_weather_api", "arguments": {}, "thought": ""}]}
    run = Trajectory(pk=1, final_answer="Rain tomorrow.", outcome_reward=1.0, alternatives=[branch])
    group = [Source(run, steps, {})]
    ((trl, origin),) = TrlDpoExporter(project=project, options={}).group_rows(group)
    assert origin == [run] and [m["role"] for m in trl["prompt"]] == [
        "user",
        "assistant",
        "tool",
        "user",
        "assistant",
        "tool",
    ]
    assert list(LlamaFactoryDpoExporter(project=project, options={}).group_rows(group)) == []
    # the same branch one step earlier (before the note) is written by both
    branch["branch_from"] = 1
    ((llama, _),) = LlamaFactoryDpoExporter(project=project, options={}).group_rows(group)
    assert_alternation(llama)
    assert llama["rejected"] == call("forecast_for_weather_api", {})


def test_the_batch_page_offers_the_format_and_serves_dataset_info(weather, project, pm, reviewer, outsider) -> None:
    _, _, batch = weather
    page = login(pm).get(reverse("exports:batch", kwargs={"project_slug": project.slug, "batch_id": batch.pk}))
    assert 'value="llamafactory_dpo"' in page.content.decode()
    url = reverse("exports:export_create", kwargs={"project_slug": project.slug, "batch_id": batch.pk})
    assert login(pm).post(url, {"format": "llamafactory_dpo"}).status_code == 302
    job = export_job_run(job_id=ExportJob.objects.get(format="llamafactory_dpo").pk)  # what the worker does
    kwargs = {"project_slug": project.slug, "batch_id": batch.pk, "job_id": job.pk, "name": "dataset_info.json"}
    download = login(reviewer).get(reverse("exports:export_file", kwargs=kwargs))
    assert download.status_code == 200
    (entry,) = json.loads(b"".join(download.streaming_content)).values()
    assert entry["file_name"] == job.files[0]["name"]
    assert login(outsider).get(reverse("exports:export_file", kwargs=kwargs)).status_code == 404
