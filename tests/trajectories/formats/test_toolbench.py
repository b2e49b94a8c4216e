"""ToolBench DFSDT answers: the real sample, the chosen path and its alternatives, variants, bad input, fuzz."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.services import project_create
from tests.trajectories.fixtures_util import run_import
from trajectories.formats import importer_detect
from trajectories.formats.base import RawRecord, RecordError
from trajectories.formats.canonical import content_sha256, run_to_dict
from trajectories.formats.toolbench import ToolBenchImporter
from trajectories.models import ImportStatus, Step, Trajectory

FIXTURES = Path(__file__).parent / "fixtures" / "toolbench"
SAMPLE = "toolbench_G1_57_ChatGPT_DFS_woFilter_w2.json"
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_slugs = itertools.count()


def import_bytes(project, data: bytes, name: str, **kwargs: Any):
    job = run_import(project, data, name=name, **kwargs)
    job.refresh_from_db()
    return job


def imported(project, path: Path) -> tuple[Trajectory, list[Step]]:
    job = import_bytes(project, path.read_bytes(), path.name)
    assert job.status == ImportStatus.DONE, job.error
    assert (job.format_detected, job.trajectories_imported, job.rejected) == ("toolbench", 1, 0), job.errors
    trajectory = Trajectory.objects.get(project=project)
    return trajectory, list(trajectory.steps.order_by("index"))


def leaves_and_paths(root: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Every root-to-leaf path of the tree, in depth-first order (the test's own reading)."""
    out, stack = [], [[root]]
    while stack:
        path = stack.pop()
        children = path[-1]["children"]
        if not children:
            out.append(path)
        stack.extend([*path, child] for child in reversed(children))
    return out


# --- the real sample -----------------------------------------------------------------------------


@pytest.mark.smoke
def test_the_real_answer_imports_its_winning_path_and_its_alternatives(project, samples_dir: Path) -> None:
    document = json.loads((samples_dir / SAMPLE).read_text())
    trajectory, steps = imported(project, samples_dir / SAMPLE)
    paths = leaves_and_paths(document["tree"]["tree"])
    (winning,) = [p for p in paths if p[-1].get("observation_code") == 3]
    calls = [(a["description"], i) for a, i in itertools.pairwise(winning) if a["node_type"] == "Action"]
    assert [s.tool_name for s in steps] == [name for name, _ in calls]
    assert [s.tool_name for s in steps] == [
        "products_for_seo_api",
        "news_for_seo_api",
        "search_b_for_seo_api",
        "Finish",
    ]
    # the observation is the raw string, never parsed (gotcha 12); the arguments are parsed
    assert [s.observation for s in steps] == [i["observation"] for _, i in calls]
    assert [s.arguments for s in steps] == [json.loads(i["description"]) for _, i in calls]
    assert [s.arguments_raw for s in steps] == [i["description"] for _, i in calls]
    finish_arguments = json.loads(calls[-1][1]["description"])
    assert document["win"] is True
    assert trajectory.outcome_reward == 1.0
    assert trajectory.outcome["details"] == {"win": True, "finish_type": "give_answer"}
    assert trajectory.final_answer == finish_arguments["final_answer"]
    assert trajectory.final_answer.startswith("I found a phone case for the latest iPhone 14")
    assert trajectory.goal_text == document["answer_generation"]["query"]
    # observation_code 11 (message error) failed; 0 and 3 succeeded
    assert [s.success_flag for s in steps] == [i["observation_code"] != 11 for _, i in calls]
    # a thought in a message of its own right after an observation is that step's reflection
    assert steps[2].plan.startswith("Based on the current state, the previous action")
    assert steps[2].reflection.startswith("I apologize, but it seems that I am unable to retrieve")
    assert steps[3].plan == "" and steps[0].plan == "" and steps[0].reflection == ""
    assert [m["role"] for m in steps[0].state] == ["system", "user"]
    assert steps[2].state[0]["content"].startswith("This is not the first time you try this task")
    # every other leaf of the tree is an abandoned branch
    assert len(paths) == 4
    assert len(trajectory.alternatives) == len(paths) - 1 == 3
    assert all(a["pruned"] and a["branch_from"] == 2 for a in trajectory.alternatives)
    first = trajectory.alternatives[0]
    assert [s["tool"] for s in first["steps"]] == ["search_for_seo_api", "Finish"]
    assert first["finish_type"] == "give_up_and_restart"
    assert first["reason"] == "gave up and restarted"
    assert first["steps"][1]["thought"].startswith("I apologize, but it seems that I couldn't find")
    assert isinstance(first["steps"][0]["observation"], str)
    assert [len(a["steps"]) for a in trajectory.alternatives] == [2, 4, 3]
    assert len(trajectory.metadata["forward_args"]) == 5 and trajectory.metadata["tree_size"] == 26


@pytest.mark.smoke
def test_importing_the_same_answer_twice_adds_nothing(project, samples_dir: Path) -> None:
    data = (samples_dir / SAMPLE).read_bytes()
    import_bytes(project, data, SAMPLE)
    again = import_bytes(project, data, SAMPLE)
    assert (again.trajectories_imported, again.duplicates) == (0, 1)


# --- variants ------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_a_branch_that_forks_after_a_shared_thought_keeps_the_thought(project) -> None:
    trajectory, steps = imported(project, FIXTURES / "win_fork_at_thought.json")
    assert [s.tool_name for s in steps] == ["current_for_weather_api", "forecast_for_weather_api", "Finish"]
    assert steps[0].plan == "I will look up the forecast first."
    assert steps[0].arguments == {"city": "Paris"}
    assert steps[1].reflection == "Both answers are in: sunny now, rain tomorrow."
    assert steps[2].plan == ""
    assert [m["role"] for m in steps[0].state] == ["system", "user", "user"]
    assert trajectory.final_answer == "It is 18°C and sunny in Paris; rain is expected tomorrow afternoon."
    (alternative,) = trajectory.alternatives
    assert alternative["branch_from"] == 0
    assert alternative["reason"] == "API not working"
    assert alternative["steps"] == [
        {
            "tool": "forecast_for_weather_api",
            "arguments": {"city": "Paris"},
            "observation": '{"error": "API not working error...", "response": ""}',
            "thought": "I will look up the forecast first.",
            "observation_code": 6,
            "success_flag": False,
        }
    ]


@pytest.mark.smoke
def test_a_give_up_run_takes_the_last_branch_and_scores_zero(project) -> None:
    trajectory, steps = imported(project, FIXTURES / "give_up.json")
    assert trajectory.outcome_reward == 0.0
    assert trajectory.outcome["details"] == {"win": False, "finish_type": "give_up"}
    assert [s.tool_name for s in steps] == ["forecast_for_weather_api", "weather_now"]
    assert [s.success_flag for s in steps] == [False, False]  # API not working; hallucinated name
    # arguments that are not JSON are kept as written, with the reason
    assert (steps[1].arguments, steps[1].arguments_raw) == (None, "{city: Paris}")
    assert "not valid JSON" in steps[1].arguments_error
    assert steps[1].reflection == "Nothing works. I give up."  # the thought that ended the branch
    assert steps[0].state == [{"role": "user", "content": trajectory.goal_text}]  # no train_messages
    assert trajectory.final_answer == ""
    (alternative,) = trajectory.alternatives
    assert (alternative["branch_from"], alternative["finish_type"]) == (1, "give_up_and_restart")
    assert alternative["steps"][0]["thought"] == "Restart."


@pytest.mark.smoke
def test_an_answer_without_a_tree_reads_the_chosen_path_from_train_messages(project) -> None:
    trajectory, steps = imported(project, FIXTURES / "train_messages_only.json")
    assert [s.tool_name for s in steps] == ["current_for_weather_api", "forecast_for_weather_api", "Finish"]
    assert steps[1].reflection == "Both answers are in: sunny now, rain tomorrow."
    assert steps[1].observation == """{"error": "", "response": "{'tomorrow': {'rain_pm': True}}"}"""
    assert trajectory.final_answer.startswith("It is 18°C")
    assert trajectory.alternatives == []
    assert trajectory.outcome_reward == 1.0


# --- bad input -----------------------------------------------------------------------------------


def answer(tree: Any, **extra: Any) -> dict[str, Any]:
    return {"win": True, "tree": {"size": 3, "tree": tree}, "answer_generation": {"query": "q"}, **extra}


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    root: dict[str, Any] = {"node_type": "Action Input", "description": "", "children": []}
    at = root
    for node in nodes:
        child = {"children": [], **node}
        at["children"] = [child]
        at = child
    return root


ACTION = {"node_type": "Action", "description": "lookup"}
INPUT = {"node_type": "Action Input", "description": '{"a": 1}', "observation": "ok", "observation_code": 0}


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("document", "pointer", "words"),
    [
        (answer(chain(ACTION, INPUT), win="yes"), "/win", "true or false"),
        (answer(chain({"node_type": "Plan", "description": "x"})), "/tree/tree/children/0/node_type", "node_type"),
        (answer(chain(ACTION, {**INPUT, "description": 5})), "/tree/tree/children/0/children/0/description", "string"),
        (
            answer(chain(ACTION, {**INPUT, "observation_code": "0"})),
            "/tree/tree/children/0/children/0/observation_code",
            "integer",
        ),
        (answer(chain(ACTION, {**INPUT, "children": {}})), "/tree/tree/children/0/children/0/children", "list"),
        (answer(chain(INPUT)), "/tree/tree/children/0", "must follow an Action"),
        (answer(chain({"node_type": "Thought", "description": "hm"})), "/tree/tree", "no Action"),
        (answer("root"), "/tree/tree", "root node"),
        ({"win": True}, "/tree", "nothing to segment"),
    ],
)
def test_bad_answers_are_rejected_with_where_and_why(project, document: Any, pointer: str, words: str) -> None:
    job = import_bytes(project, orjson.dumps(document), "answer.json", format_name="toolbench")
    assert job.status == ImportStatus.DONE
    assert (job.records_seen, job.rejected, job.trajectories_imported) == (1, 1, 0)
    (error,) = job.errors
    assert error["where"] == "document"
    assert error["pointer"] == pointer
    assert words in error["message"]


@pytest.mark.smoke
def test_a_truncated_answer_is_rejected_with_a_located_message(project, samples_dir: Path) -> None:
    data = (samples_dir / SAMPLE).read_bytes()
    job = import_bytes(project, data[:30000], SAMPLE, format_name="toolbench")
    assert (job.status, job.rejected, job.trajectories_imported) == (ImportStatus.DONE, 1, 0)
    assert "malformed JSON" in job.errors[0]["message"] and "line" in job.errors[0]["message"]


# --- detection -----------------------------------------------------------------------------------


@pytest.mark.smoke
def test_detection_picks_toolbench_answers_and_claims_no_other(samples_dir: Path) -> None:
    importer = ToolBenchImporter()
    for path in (samples_dir / SAMPLE, *FIXTURES.iterdir()):
        head = path.read_bytes()[:65536]
        assert 70 <= importer.detect(head) <= 95, path.name
        assert importer_detect(head).name == "toolbench", path.name
    for path in samples_dir.iterdir():
        if path.name != SAMPLE:
            assert importer.detect(path.read_bytes()[:65536]) == 0, path.name
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    assert importer.detect(orjson.dumps(chat) + b"\n") == 0
    assert importer.detect(b"[" + orjson.dumps(chat) + b"]") == 0


# --- fuzz ----------------------------------------------------------------------------------------


def mostly(valid: st.SearchStrategy, odd: st.SearchStrategy, one_in: int = 30) -> st.SearchStrategy:
    return st.integers(0, one_in - 1).flatmap(lambda n: odd if n == one_in // 2 else valid)


texts = st.one_of(st.text(max_size=12), st.sampled_from(["", "a\x00b", "é", '{"error": "x"}', "x" * 200]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(texts, inner, max_size=2), max_leaves=5
)
arguments = mostly(
    st.one_of(
        st.dictionaries(st.sampled_from(["query", "return_type", "final_answer"]), texts, max_size=2).map(json.dumps),
        st.sampled_from(
            ['{"return_type": "give_answer", "final_answer": "done"}', '{"return_type": "give_up_and_restart"}']
        ),
        texts,
    ),
    json_values,
)


def node_of(kind: str, description: Any, extra: dict[str, Any], children: list[Any]) -> dict[str, Any]:
    return {"node_type": kind, "description": description, **extra, "children": children}


def tree_nodes(children: st.SearchStrategy) -> st.SearchStrategy:
    """An Action with its Action Input (and what follows it), or a Thought; odd shapes now and then."""
    action = st.builds(
        lambda name, args, extra, kids: node_of("Action", name, {}, [node_of("Action Input", args, extra, kids)]),
        mostly(st.sampled_from(["lookup", "Finish", "search"]), json_values),
        arguments,
        st.fixed_dictionaries(
            {"observation": mostly(texts, json_values), "observation_code": mostly(st.integers(0, 12), json_values)},
            optional={"pruned": st.booleans()},
        ),
        children,
    )
    thought = st.builds(lambda text, kids: node_of("Thought", text, {}, kids), texts, children)
    odd = st.builds(node_of, st.sampled_from(["Action Input", "Plan"]), texts, st.just({}), children)
    return mostly(st.one_of(action, action, thought), st.one_of(odd, json_values))


trees = st.recursive(st.just([]), lambda kids: st.lists(tree_nodes(kids), min_size=1, max_size=2), max_leaves=10)
documents = st.fixed_dictionaries(
    {
        "tree": st.builds(
            lambda kids: {"size": 0, "tree": node_of("Action Input", "", {}, kids)},
            st.lists(tree_nodes(trees), min_size=1, max_size=2),
        )
    },
    optional={
        "win": mostly(st.booleans(), json_values),
        "answer_generation": mostly(
            st.fixed_dictionaries(
                {},
                optional={
                    "query": mostly(texts, json_values),
                    "finish_type": mostly(st.sampled_from(["give_answer", "give_up"]), json_values),
                    "final_answer": mostly(texts, json_values),
                    "train_messages": json_values,
                },
            ),
            json_values,
        ),
    },
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()  # orjson cannot write integers beyond 64 bits


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "delete"]), st.floats(0, 1), st.integers(0, 255), st.integers(1, 30)),
    min_size=1,
    max_size=3,
)


def mutate(data: bytes, ops: list[tuple[str, float, int, int]]) -> bytes:
    """Bytes flipped, cut off or deleted at relative positions of the file."""
    out = bytearray(data)
    for action, where, byte, length in ops:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if action == "flip" and out:
            out[at] = byte
        elif action == "delete":
            del out[at : at + length]
        else:
            del out[at:]
    return bytes(out) or b"{"


def import_and_check(pm, data: bytes, format_name: str) -> None:
    project = project_create(actor=pm, name="Fuzz", kind="tool_use", slug=f"tb-fuzz-{next(_slugs)}")
    job = run_import(project, data, name="answer.json", format_name=format_name)  # must not raise
    job.refresh_from_db()
    assert job.status in (ImportStatus.DONE, ImportStatus.FAILED)
    if job.status == ImportStatus.FAILED:
        assert job.error.strip()
    assert "internal error" not in job.error, job.error
    for error in job.errors:
        assert error["where"].strip() and error["message"].strip(), error
        assert "could not be read" not in error["message"], error  # the importer's own fault
    assert job.records_seen == job.trajectories_imported + job.duplicates + job.rejected
    for trajectory in Trajectory.objects.filter(project=project):
        indexes = list(trajectory.steps.order_by("index").values_list("index", flat=True))
        assert indexes == list(range(trajectory.step_count)) and trajectory.step_count > 0


@FUZZ
@given(document=documents, format_name=st.sampled_from(["", "toolbench"]))
def test_generated_answers_import_without_surprises(db, pm, document: dict[str, Any], format_name: str) -> None:
    import_and_check(pm, dumps(document), format_name)


@FUZZ
@given(ops=mutations, format_name=st.sampled_from(["", "toolbench"]))
def test_corrupted_copies_of_the_real_answer_import_without_surprises(
    db, pm, samples_dir: Path, ops: list[tuple[str, float, int, int]], format_name: str
) -> None:
    import_and_check(pm, mutate((samples_dir / SAMPLE).read_bytes(), ops), format_name)


@FUZZ
@given(document=documents)
def test_parse_yields_a_hashable_run_or_a_located_record_error(document: dict[str, Any]) -> None:
    try:
        run = ToolBenchImporter().parse(RawRecord(raw=dumps(document), where="document", line=1, index=0))
        digest = content_sha256(run_to_dict(run))
        orjson.dumps(run.alternatives)
    except RecordError as exc:
        assert exc.message
        assert exc.pointer == "" or exc.pointer.startswith("/")
        return
    assert len(digest) == 64
    assert run.steps and all(s.kind == "tool_call" and s.tool_name for s in run.steps)
    assert all(s.arguments is not None or s.arguments_raw is not None for s in run.steps)
    leaves = sum(1 for _ in _leaves(document["tree"]["tree"]))
    assert len(run.alternatives) == leaves - 1


def _leaves(node: dict[str, Any]):
    children = node.get("children") or []
    if not children:
        yield node
    for child in children:
        yield from _leaves(child)
