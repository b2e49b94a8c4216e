"""τ-bench (v1) results: a JSON array of `EnvRunResult` — `{task_id, reward, trial, info, traj}`.

FORMATS.md §1.3. `traj` is OpenAI-shaped chat messages, segmented by `chat.segment_messages`
(the tool-calling agent keeps one call per message; several are read all the same). The
react/act agents write no `tool_calls`: their `Thought: … Action: {"name", "arguments"}` text
is read as the call it names, and the `API output: …` user message that follows as its result.

Goal: `task_id` is an index into one environment's task list (gotcha 1), so the goal is
`tau-bench:<env>:<task_id>`, the environment read from the policy's title in the system prompt
("# Airline Agent Policy") or, failing that, from the gold actions' tool names; when neither
tells, `tau-bench:<task_id>`. The split (test/train/dev) is not in the file. The goal's text is
the first user message; `info.task` gives the expected actions and outputs.

Outcome: `reward` and `info.reward_info` (null when the step limit was hit: no details).
A run whose agent raised (`info = {error, traceback}`, `traj = []`) is rejected, with the
error's first line. The model is not in the records: it is left empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

import orjson

from trajectories.formats.base import ParsedRun, RawRecord, RecordError
from trajectories.formats.chat import segment_messages
from trajectories.formats.reading import iter_json_array, iter_jsonl, loads_located, sniff_container

SCAFFOLD = "tau-bench"
# "# Airline Agent Policy", "# Retail agent policy" (envs/<env>/wiki.md, the system prompt)
_POLICY_TITLE = re.compile(r"#\s*([A-Za-z][\w-]*)\s+agent\s+policy", re.IGNORECASE)
# Tools only one environment has (FORMATS.md §1.2), to tell the environment from gold actions.
_ENV_TOOLS = {
    "airline": frozenset(
        {
            "book_reservation",
            "cancel_reservation",
            "get_reservation_details",
            "list_all_airports",
            "search_direct_flight",
            "search_onestop_flight",
            "send_certificate",
            "update_reservation_baggages",
            "update_reservation_flights",
            "update_reservation_passengers",
        }
    ),
    "retail": frozenset(
        {
            "cancel_pending_order",
            "exchange_delivered_order_items",
            "find_user_id_by_email",
            "find_user_id_by_name_zip",
            "get_order_details",
            "get_product_details",
            "list_all_product_types",
            "modify_pending_order_address",
            "modify_pending_order_items",
            "modify_pending_order_payment",
            "modify_user_address",
            "return_delivered_order_items",
        }
    ),
}


class TauBenchImporter:
    name = "tau_bench"
    label = "τ-bench results (JSON array of task_id, reward, trial, info, traj)"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        head = head[:65536]
        if sniff_container(head) not in ("array", "jsonl") or b'"task_id"' not in head:
            return 0
        if b'"termination_reason"' in head or b'"messages"' in head:
            return 0  # τ²-bench simulations carry task_id and reward_info too
        if b'"traj"' in head or (b'"reward_info"' in head and b'"trial"' in head):
            return 90
        return 0

    def container(self, head: bytes) -> str:
        """How records() cuts a file that starts with `head` (its first 4 KB): "jsonl" or "array"."""
        return "jsonl" if sniff_container(head[:4096]) == "jsonl" else "array"

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        head = stream.read(4096)
        stream.seek(0)
        return iter_jsonl(stream) if self.container(head) == "jsonl" else iter_json_array(stream)

    def parse(self, record: RawRecord) -> ParsedRun:
        value = record.value if record.value is not None else loads_located(record.raw, record.where, record.line)
        if not isinstance(value, dict):
            raise RecordError(f"a τ-bench result must be a JSON object, not {type(value).__name__}", pointer="")
        task_id = _task_id(value.get("task_id"))
        info = value.get("info")
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise RecordError("info must be an object", pointer="/info")
        if "error" in info and "task" not in info:
            first = str(info.get("error") or "").strip().splitlines()
            reason = first[0][:300] if first else "no message"
            raise RecordError(f"the run errored before it produced a trajectory: {reason}", pointer="/info/error")
        if "traj" not in value:
            raise RecordError("missing 'traj' (the run's messages)", pointer="/traj")
        traj = _react_to_calls(value["traj"])
        steps, goal_text, final_answer = segment_messages(traj, pointer="/traj")
        if not steps:
            raise RecordError("no assistant message: nothing to segment into steps", pointer="/traj")
        task = info.get("task")
        if task is not None and not isinstance(task, dict):
            raise RecordError("info.task must be an object", pointer="/info/task")
        task = task or {}
        env = _env_of(traj, task)
        goal: dict[str, Any] = {
            "external_id": f"tau-bench:{env}:{task_id}" if env else f"tau-bench:{task_id}",
        }
        if env:
            goal["tags"] = [env]
        actions = task.get("actions")
        if actions is not None:
            goal["expected_actions"] = _expected_actions(actions)
        outputs = task.get("outputs")
        if outputs is not None:
            if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
                raise RecordError("outputs must be a list of strings", pointer="/info/task/outputs")
            goal["expected_outputs"] = outputs
        metadata: dict[str, Any] = {"task_id": task_id}
        if env:
            metadata["env"] = env
        for key in ("user_id", "instruction"):
            if isinstance(task.get(key), str):
                metadata[key] = task[key]
        for key in ("source", "user_cost"):
            if info.get(key) is not None:
                metadata[key] = info[key]
        return ParsedRun(
            goal_text=goal_text,
            steps=steps,
            goal=goal,
            scaffold=SCAFFOLD,
            trial=_trial(value.get("trial")),
            final_answer=final_answer,
            outcome=_outcome(value.get("reward"), info.get("reward_info")),
            metadata=metadata,
        )


def _task_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 150:
        return value.strip()
    if value is None:
        raise RecordError("missing 'task_id'", pointer="/task_id")
    raise RecordError(f"task_id must be an integer, not {type(value).__name__}", pointer="/task_id")


def _trial(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RecordError(f"trial must be an integer, not {type(value).__name__}", pointer="/trial")


def _outcome(reward: Any, reward_info: Any) -> dict[str, Any]:
    if reward is not None and (isinstance(reward, bool) or not isinstance(reward, int | float)):
        raise RecordError(f"reward must be a number, not {type(reward).__name__}", pointer="/reward")
    if reward_info is not None and not isinstance(reward_info, dict):
        raise RecordError("reward_info must be an object or null", pointer="/info/reward_info")
    if reward is None and isinstance(reward_info, dict):
        reward = reward_info.get("reward")
        if isinstance(reward, bool) or not isinstance(reward, int | float):
            reward = None
    outcome: dict[str, Any] = {"reward": float(reward) if reward is not None else None}
    if reward_info:  # null when the episode hit the step limit: no details (gotcha 3)
        outcome["details"] = reward_info
    return outcome


def _expected_actions(actions: Any) -> list[dict[str, Any]]:
    """`[{name, kwargs}]` as the project's `[{name, arguments}]`."""
    if not isinstance(actions, list):
        raise RecordError("actions must be a list", pointer="/info/task/actions")
    out = []
    for i, action in enumerate(actions):
        if not isinstance(action, dict) or not isinstance(action.get("name"), str):
            raise RecordError("an action must be an object with a 'name'", pointer=f"/info/task/actions/{i}")
        kwargs = action.get("kwargs", action.get("arguments"))
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise RecordError("kwargs must be an object", pointer=f"/info/task/actions/{i}/kwargs")
        out.append({"name": action["name"], "arguments": kwargs})
    return out


def _env_of(traj: Any, task: dict[str, Any]) -> str:
    """The environment's name, from the policy in the system prompt or the gold actions' tools."""
    if isinstance(traj, list) and traj:
        first = traj[0]
        if isinstance(first, dict) and first.get("role") == "system" and isinstance(first.get("content"), str):
            match = _POLICY_TITLE.match(first["content"].lstrip()[:200])
            if match:
                return match.group(1).lower()
    actions = task.get("actions")
    if isinstance(actions, list):
        names = {a.get("name") for a in actions if isinstance(a, dict)}
        for env, tools in _ENV_TOOLS.items():
            if names & tools:
                return env
    return ""


# --- react / act agents (agents/chat_react_agent.py) --------------------------------------------------

_API_OUTPUT = "API output:"


def _react_action(content: str) -> tuple[str, dict[str, Any]] | None:
    """(thought, action) of a react/act message's text, or None when it names no action."""
    at = content.rfind("Action:")
    if at < 0:
        return None
    try:
        action = orjson.loads(content[at + len("Action:") :].strip())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(action, dict) or not isinstance(action.get("name"), str) or not action["name"]:
        return None
    thought = content[:at].strip()
    if thought.startswith("Thought:"):
        thought = thought[len("Thought:") :].strip()
    return thought, action


def _react_to_calls(traj: Any) -> Any:
    """The messages with react/act actions as tool calls (one message for one, so pointers hold)."""
    if not isinstance(traj, list):
        return traj
    out: list[Any] | None = None
    calling = False  # the previous message was a react tool call: an "API output" user message answers it
    for i, message in enumerate(traj):
        replacement: dict[str, Any] | None = None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            role, content = message.get("role"), message["content"]
            if role == "assistant" and not message.get("tool_calls") and "Action:" in content:
                parsed = _react_action(content)
                if parsed is not None:
                    thought, action = parsed
                    arguments = action.get("arguments")
                    if action["name"] == "respond":
                        text = arguments.get("content") if isinstance(arguments, dict) else arguments
                        replacement = {
                            "role": "assistant",
                            "content": text if isinstance(text, str) else "",
                            "reasoning_content": thought,
                        }
                        calling = False
                    else:
                        replacement = {
                            "role": "assistant",
                            "content": thought,
                            "tool_calls": [{"id": "", "function": {"name": action["name"], "arguments": arguments}}],
                        }
                        calling = True
                    if out is None:
                        out = list(traj[:i])
                    out.append(replacement)
                    continue
            elif role == "user" and calling and content.startswith(_API_OUTPUT):
                replacement = {"role": "tool", "content": content[len(_API_OUTPUT) :].strip()}
        calling = False
        if out is not None or replacement is not None:
            if out is None:
                out = list(traj[:i])
            out.append(replacement if replacement is not None else message)
    return out if out is not None else traj
