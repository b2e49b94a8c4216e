"""ShareGPT (LLaMA-Factory's alternation on every row) and TRL process-reward rows."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from exports.formats.sharegpt import alternating
from exports.services.jobs import export_dir, export_job_create, export_job_run

pytestmark = pytest.mark.smoke
FORMATS = Path(__file__).resolve().parents[2] / "exports/formats"


def _rows(pm, batch, format: str, **options) -> list[dict]:
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format=format, options=options).pk)
    path = export_dir(job) / job.files[0]["name"]
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def llama_factory_accepts(conversations: list[dict]) -> bool:
    """LLaMA-Factory's sharegpt rule: human/observation at even positions, gpt/function_call at odd, an even count."""
    odd, even = {"human", "observation"}, {"gpt", "function_call"}
    if len(conversations) % 2 or conversations[0]["from"] != "human":
        return False
    return all(turn["from"] in (odd if i % 2 == 0 else even) for i, turn in enumerate(conversations))


def test_sharegpt_rows_alternate_and_end_on_an_assistant_turn(batch, pm) -> None:
    rows = _rows(pm, batch, "sharegpt")
    validator = Draft202012Validator(json.loads((FORMATS / "sharegpt.schema.json").read_text()))
    assert len(rows) == 3
    for row in rows:
        assert not list(validator.iter_errors(row))
        assert llama_factory_accepts(row["conversations"]) and row["conversations"][-1]["from"] == "gpt"
        assert [t["from"] for t in row["conversations"]] == ["human", "function_call", "observation", "gpt"]
        call = json.loads(row["conversations"][1]["value"])
        assert call["name"] == "get_reservation" and "reservation_id" in call["arguments"]
        assert json.loads(row["tools"])[0]["name"] == "get_reservation"


@pytest.mark.parametrize(
    ("turns", "kept"),
    [
        (["human", "gpt", "human", "gpt"], 4),
        (["human", "human", "gpt"], 2),  # two user messages are joined
        (["human", "gpt", "function_call", "observation", "gpt"], 2),  # a call with no input before it: stop
        (["human", "function_call", "observation", "human", "gpt"], 0),  # no gpt before the break
        (["observation", "gpt"], 0),
    ],
)
def test_the_alternation_keeps_the_longest_valid_prefix(turns, kept) -> None:
    out = alternating([{"from": t, "value": str(i)} for i, t in enumerate(turns)])
    assert len(out) == kept
    assert not out or llama_factory_accepts(out)


def test_process_reward_rows_map_the_native_values_to_booleans(batch, pm) -> None:
    rows = _rows(pm, batch, "trl_prm")
    validator = Draft202012Validator(json.loads((FORMATS / "trl_prm.schema.json").read_text()))
    assert len(rows) == 3
    for row in rows:
        assert not list(validator.iter_errors(row))
        assert len(row["completions"]) == len(row["labels"]) == 2
        assert row["prompt"].startswith("[user] Where is my reservation ZFA")
        assert row["completions"][0].startswith("Looking it up.\nCALL get_reservation")
    assert rows[0]["labels"] == [True, False]  # +1, then −1 on the reply
    assert rows[1]["labels"] == [True, True]


def test_the_sharegpt_rows_come_with_their_dataset_info(batch, pm) -> None:
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="sharegpt").pk)
    data, *rest = [f["name"] for f in job.files]
    assert rest == ["dataset_info.json", "README.md", "manifest.json"]
    info = json.loads((export_dir(job) / "dataset_info.json").read_text())
    entry = data.rsplit(".", 1)[0]
    assert info == {
        entry: {
            "file_name": data,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        }
    }
    row = json.loads((export_dir(job) / data).read_text().splitlines()[0])
    assert set(info[entry]["columns"].values()) <= set(row)  # the columns it names are the rows' keys
    assert (
        "`dataset_info.json` beside it: registers the rows with LLaMA-Factory"
        in (export_dir(job) / "README.md").read_text()
    )
