"""ToolBench DFSDT answer files (FORMATS.md §6): one JSON document, one run.

The search tree (`tree.tree`) is a chain of Thought → Action (API name) → Action Input (JSON
arguments, with the `observation`) nodes that branches where the search backtracked. The chosen
path is the root-to-leaf path that ends in the `Finish` call that gave the answer
(`observation_code` 3); when no branch gave one (a `give_up` run), the last branch explored.
Along it each Action with its Action Input is a step: tool = the Action, arguments = the Action
Input parsed as JSON (kept as written too), observation = the raw `observation` string — never
parsed into objects (gotcha 12) — and plan = the Thought before the Action.

Reflection: a thought the model wrote as a message of its own (no function call), right after
an observation, is that step's reflection. The tree does not say which thoughts were on their
own; `answer_generation.train_messages` does, so the chosen path is matched against its last
(longest) prefix. When the two do not match, every thought is the next step's plan. The same
messages give the context (the system prompt, the query, DFSDT's "previous trials" notes).

Every other leaf is an abandoned branch, kept in `alternatives`: the steps from where it left
the chosen path (`branch_from`: the index of the first chosen step it replaces), whether it was
pruned, and how it ended. A file without a tree has its chosen path rebuilt from the last
`train_messages` prefix (and no alternatives).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import IO, Any

import orjson

from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.chat import content_text, observation_success, parse_arguments
from trajectories.formats.reading import iter_document, loads_located

NODE_TYPES = frozenset({"Thought", "Action", "Action Input"})
# rapidapi.py:step — which observation codes mean the call did what it was asked.
CODES_OK = frozenset({0, 3, 4})
CODE_MEANING = {
    0: "ok",
    1: "hallucinated function name",
    2: "bad Finish arguments",
    3: "final answer given",
    4: "gave up and restarted",
    5: "timeout",
    6: "API not working",
    7: "unauthorized",
    8: "unsubscribed",
    9: "too many requests",
    10: "rate limit",
    11: "message error",
    12: "request send error",
}
FINAL_ANSWER_CODE = 3
MAX_ALTERNATIVES = 500


class ToolBenchImporter:
    name = "toolbench"
    label = "ToolBench DFSDT answer (JSON)"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        text = head[:65536].lstrip(codecs.BOM_UTF8).lstrip()
        if not text.startswith(b"{"):
            return 0
        if b'"answer_generation"' in text and (b'"win"' in text or b'"train_messages"' in text):
            return 90
        if b'"win"' in text and b'"node_type"' in text:
            return 85
        return 0

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        return iter_document(stream)

    def parse(self, record: RawRecord) -> ParsedRun:
        value = record.value if record.value is not None else loads_located(record.raw, record.where, record.line)
        if not isinstance(value, dict):
            raise RecordError(f"a ToolBench answer must be a JSON object, not {type(value).__name__}")
        generation = value.get("answer_generation")
        if generation is None:
            generation = {}
        if not isinstance(generation, dict):
            raise RecordError("answer_generation must be an object", pointer="/answer_generation")
        win = value.get("win")
        if win is not None and not isinstance(win, bool):
            raise RecordError(f"win must be true or false, not {win!r}", pointer="/win")
        query = generation.get("query")
        if query is not None and not isinstance(query, str):
            raise RecordError("query must be a string", pointer="/answer_generation/query")
        finish_type = generation.get("finish_type")
        if finish_type is not None and not isinstance(finish_type, str):
            raise RecordError("finish_type must be a string", pointer="/answer_generation/finish_type")
        messages = _last_prefix(generation.get("train_messages"))

        tree = value.get("tree")
        alternatives: list[dict[str, Any]] = []
        metadata: dict[str, Any] = {}
        if tree is not None:
            if not isinstance(tree, dict):
                raise RecordError("tree must be an object", pointer="/tree")
            root = tree.get("tree")
            if not isinstance(root, dict):
                raise RecordError("tree.tree must be the root node (an object)", pointer="/tree/tree")
            nodes, leaves = _flatten(root)
            steps, final_answer, (alternatives, dropped) = _from_tree(nodes, leaves, messages, query or "")
            if dropped:
                metadata["alternatives_dropped"] = dropped
            for key in ("size", "max_length"):
                if isinstance(tree.get(key), int):
                    metadata[f"tree_{key}"] = tree[key]
        elif messages is not None:
            pointer = f"/answer_generation/train_messages/{len(generation['train_messages']) - 1}"
            nodes = _chain_of(messages, pointer)
            steps, final_answer, _ = _from_tree(nodes, [len(nodes) - 1], messages, query or "")
        else:
            raise RecordError("no search tree and no train_messages: nothing to segment", pointer="/tree")
        if not steps:
            raise RecordError("the chosen path holds no Action: nothing to segment into steps", pointer="/tree/tree")
        if not final_answer:
            final_answer = _answer_of(generation.get("final_answer"))

        forward_args = value.get("forward_args")
        if isinstance(forward_args, dict):
            metadata["forward_args"] = forward_args
        for key in ("valid_data", "query_count", "total_tokens"):
            if key in generation:
                metadata[key] = generation[key]
        if isinstance(value.get("compare_candidates"), list):
            metadata["compare_candidates"] = len(value["compare_candidates"])
        tools = generation.get("function")
        outcome: dict[str, Any] = {}
        if win is not None:
            outcome["reward"] = 1.0 if win else 0.0
        details = {k: v for k, v in (("win", win), ("finish_type", finish_type)) if v is not None}
        if details:
            outcome["details"] = details
        return ParsedRun(
            goal_text=query or _query_of(messages),
            steps=steps,
            scaffold="toolbench",
            final_answer=final_answer,
            outcome=outcome,
            metadata=metadata,
            tools=tools if isinstance(tools, list) else None,
            alternatives=alternatives,
        )


def _last_prefix(train_messages: Any) -> list[Any] | None:
    """The longest train_messages prefix: the whole chosen path as chat messages."""
    if isinstance(train_messages, list) and train_messages and isinstance(train_messages[-1], list):
        return train_messages[-1]
    return None


def _query_of(messages: list[Any] | None) -> str:
    for message in messages or ():
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"].strip().removesuffix("Begin!").strip()
    return ""


def _answer_of(final_answer: Any) -> str:
    """answer_generation.final_answer: a JSON string '{"return_type", "final_answer"}'."""
    if not isinstance(final_answer, str) or not final_answer.strip():
        return ""
    try:
        parsed = orjson.loads(final_answer)
    except orjson.JSONDecodeError:
        return final_answer
    if isinstance(parsed, dict):
        answer = parsed.get("final_answer")
        return answer if isinstance(answer, str) else ""
    return final_answer


def _finish_answer(steps: list[RunStep]) -> str:
    for step in reversed(steps):
        if step.tool_name == "Finish" and step.arguments and isinstance(step.arguments.get("final_answer"), str):
            return step.arguments["final_answer"]
    return ""


# --- the tree -------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("code", "kind", "node", "observation", "parent", "pointer", "pruned", "text")

    def __init__(self, node: dict[str, Any], pointer: str, parent: int) -> None:
        kind = node.get("node_type")
        if kind not in NODE_TYPES:
            raise RecordError(
                f"node_type must be one of Thought, Action, Action Input, not {kind!r}", pointer=f"{pointer}/node_type"
            )
        text = node.get("description")
        if text is not None and not isinstance(text, str):
            raise RecordError("description must be a string", pointer=f"{pointer}/description")
        if kind == "Action" and not (text or "").strip():
            raise RecordError(
                "an Action node needs the API's name as its description", pointer=f"{pointer}/description"
            )
        observation = node.get("observation")
        if observation is not None and not isinstance(observation, str):
            observation = content_text(observation, f"{pointer}/observation")  # kept as JSON text
        code = node.get("observation_code")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise RecordError("observation_code must be an integer", pointer=f"{pointer}/observation_code")
        self.node = node
        self.kind: str = kind
        self.text: str = text or ""
        self.observation: str | None = observation
        self.code: int | None = code
        self.pruned = node.get("pruned") is True
        self.parent = parent
        self.pointer = pointer


def _flatten(root: dict[str, Any]) -> tuple[list[_Node], list[int]]:
    """Every node in depth-first order (children in their order), and the leaves' indexes."""
    nodes: list[_Node] = []
    leaves: list[int] = []
    stack: list[tuple[dict[str, Any], str, int]] = [(root, "/tree/tree", -1)]
    while stack:
        node, pointer, parent = stack.pop()
        if not isinstance(node, dict):
            raise RecordError("a tree node must be an object", pointer=pointer)
        index = len(nodes)
        nodes.append(_Node(node, pointer, parent))
        children = node.get("children")
        if children is None:
            children = []
        if not isinstance(children, list):
            raise RecordError("children must be a list", pointer=f"{pointer}/children")
        if not children:
            leaves.append(index)
        for i in range(len(children) - 1, -1, -1):
            stack.append((children[i], f"{pointer}/children/{i}", index))
    return nodes, leaves


def _path(nodes: list[_Node], leaf: int) -> list[int]:
    path = []
    while leaf >= 0:
        path.append(leaf)
        leaf = nodes[leaf].parent
    path.reverse()
    return path


def _chosen_leaf(nodes: list[_Node], leaves: list[int]) -> int:
    """The leaf whose Finish call gave the final answer; else the last branch explored."""
    for leaf in leaves:
        node = nodes[leaf]
        if node.code == FINAL_ANSWER_CODE and node.kind == "Action Input":
            return leaf
    return leaves[-1]


class _Proto:
    """A step in the making: the thoughts before an Action, the Action, its Action Input."""

    __slots__ = ("action", "node_input", "thoughts")

    def __init__(self, thoughts: list[str], action: _Node) -> None:
        self.thoughts = thoughts
        self.action = action
        self.node_input: _Node | None = None


def _protos(nodes: list[_Node], path: list[int]) -> tuple[list[_Proto], list[str], list[int]]:
    """(steps in the making, thoughts after the last step, the path position of each step's Action)."""
    protos: list[_Proto] = []
    positions: list[int] = []
    thoughts: list[str] = []
    for position, index in enumerate(path):
        node = nodes[index]
        if node.kind == "Thought":
            thoughts.append(node.text)
        elif node.kind == "Action":
            protos.append(_Proto(thoughts, node))
            positions.append(position)
            thoughts = []
        elif protos and protos[-1].node_input is None and positions[-1] == position - 1:
            protos[-1].node_input = node
        elif node.text.strip() or node.observation is not None:
            raise RecordError("an Action Input node must follow an Action node", pointer=node.pointer)
        # else: the root (an empty Action Input that holds the initial state)
    return protos, thoughts, positions


def _arguments_of(proto: _Proto) -> tuple[dict[str, Any] | None, str | None, str]:
    if proto.node_input is None:
        return {}, None, ""
    return parse_arguments(proto.node_input.text, f"{proto.node_input.pointer}/description")


def _success(node: _Node | None) -> bool | None:
    if node is None:
        return None
    if node.code is not None:
        return node.code in CODES_OK
    return observation_success(node.observation)


def _standalone_thoughts(nodes: list[_Node], path: list[int], messages: list[Any] | None) -> dict[int, list[Any]]:
    """For each path position of a Thought or Action, the context before it, and for each Thought whether
    it was a message of its own — when `messages` tell the same story as the path; else {}."""
    if not messages:
        return {}
    tokens: list[tuple[str, str, bool, list[dict[str, Any]]]] = []  # (kind, text, standalone, context before)
    context: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            return {}
        role = message.get("role")
        content = message.get("content")
        if role == "assistant":
            call = message.get("function_call")
            name = call.get("name") if isinstance(call, dict) else None
            if content is not None and not isinstance(content, str):
                return {}
            if content:
                tokens.append(("Thought", content, name is None, context))
                context = []
            if isinstance(name, str):
                tokens.append(("Action", name, False, context))
                context = []
        elif role in ("system", "user") and isinstance(content, str):
            context = [*context, {"role": role, "content": content}]
    path_tokens = [(p, nodes[i]) for p, i in enumerate(path) if nodes[i].kind != "Action Input"]
    if len(path_tokens) != len(tokens):
        return {}
    out: dict[int, list[Any]] = {}
    for (position, node), (kind, text, standalone, before) in zip(path_tokens, tokens, strict=True):
        if node.kind != kind or node.text.strip() != text.strip():
            return {}
        out[position] = [standalone, before]
    return out


def _chain_of(messages: list[Any], pointer: str) -> list[_Node]:
    """The chosen path's nodes, rebuilt from its chat messages (a file without a tree)."""
    nodes = [_Node({"node_type": "Action Input", "description": ""}, pointer, -1)]
    for i, message in enumerate(messages):
        where = f"{pointer}/{i}"
        if not isinstance(message, dict):
            raise RecordError("a message must be an object", pointer=where)
        role = message.get("role")
        if role == "assistant":
            content = message.get("content")
            if content:
                text = content_text(content, f"{where}/content")
                nodes.append(_Node({"node_type": "Thought", "description": text}, where, len(nodes) - 1))
            call = message.get("function_call")
            if call is None:
                continue
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise RecordError("function_call needs a 'name' string", pointer=f"{where}/function_call")
            arguments = call.get("arguments")
            if not isinstance(arguments, str):
                arguments = content_text(arguments, f"{where}/function_call/arguments")
            nodes.append(_Node({"node_type": "Action", "description": call["name"]}, where, len(nodes) - 1))
            nodes.append(_Node({"node_type": "Action Input", "description": arguments}, where, len(nodes) - 1))
        elif role == "function" and nodes[-1].kind == "Action Input" and len(nodes) > 1:
            nodes[-1].observation = content_text(message.get("content"), f"{where}/content")
    return nodes


def _from_tree(
    nodes: list[_Node], leaves: list[int], messages: list[Any] | None, query: str
) -> tuple[list[RunStep], str, tuple[list[dict[str, Any]], int]]:
    chosen_leaf = _chosen_leaf(nodes, leaves)
    path = _path(nodes, chosen_leaf)
    aligned = _standalone_thoughts(nodes, path, messages)
    steps: list[RunStep] = []
    pending_state: list[dict[str, Any]] = [] if aligned else [{"role": "user", "content": query}]
    plan: list[str] = []
    for position, index in enumerate(path):
        node = nodes[index]
        standalone, before = aligned.get(position, (False, []))
        pending_state = [*pending_state, *before] if before else pending_state
        if node.kind == "Thought":
            if standalone and steps and steps[-1].observation is not None and not plan:
                steps[-1].reflection = "\n\n".join(p for p in (steps[-1].reflection, node.text) if p)
            else:
                plan.append(node.text)
        elif node.kind == "Action":
            steps.append(
                RunStep(
                    kind="tool_call",
                    turn_id=f"turn-{len(steps)}",
                    state=pending_state,
                    plan="\n\n".join(p for p in plan if p),
                    tool_name=node.text,
                )
            )
            pending_state, plan = [], []
        elif steps and steps[-1].observation is None and nodes[path[position - 1]].kind == "Action":
            arguments, raw, error = parse_arguments(node.text, f"{node.pointer}/description")
            step = steps[-1]
            step.arguments, step.arguments_raw, step.arguments_error = arguments, raw, error
            step.observation = node.observation
            step.success_flag = _success(node)
        elif node.text.strip() or node.observation is not None:
            raise RecordError("an Action Input node must follow an Action node", pointer=node.pointer)
    if plan and steps and steps[-1].observation is not None:
        steps[-1].reflection = "\n\n".join(
            p for p in (steps[-1].reflection, *plan) if p
        )  # thoughts that ended the path
    for step in steps:
        if step.arguments is None and step.arguments_raw is None:
            step.arguments = {}  # an Action whose Action Input never came
    return steps, _finish_answer(steps), _alternatives(nodes, leaves, chosen_leaf, path)


def _alternatives(
    nodes: list[_Node], leaves: list[int], chosen_leaf: int, path: list[int]
) -> tuple[list[dict[str, Any]], int]:
    """(each other leaf's branch, from where it left the chosen path; how many were left out)."""
    on_path = {index: position for position, index in enumerate(path)}
    _, _, chosen_positions = _protos(nodes, path)
    out: list[dict[str, Any]] = []
    dropped = 0
    for leaf in leaves:
        if leaf == chosen_leaf:
            continue
        if len(out) >= MAX_ALTERNATIVES:
            dropped += 1
            continue
        suffix: list[int] = []
        index = leaf
        while index >= 0 and index not in on_path:
            suffix.append(index)
            index = nodes[index].parent
        suffix.reverse()
        fork = on_path[index] if index >= 0 else -1
        # The shared thoughts and Action since the last observation belong to the branch's first step.
        start = fork + 1
        while start > 0 and nodes[path[start - 1]].kind != "Action Input":
            start -= 1
        protos, trailing, _ = _protos(nodes, [*path[start : fork + 1], *suffix])
        steps = []
        for proto in protos:
            arguments, raw, _ = _arguments_of(proto)
            node_input = proto.node_input
            step: dict[str, Any] = {
                "tool": proto.action.text,
                "arguments": arguments,
                "observation": node_input.observation if node_input else None,
                "thought": "\n\n".join(t for t in proto.thoughts if t),
            }
            if raw is not None and arguments is None:
                step["arguments_raw"] = raw
            if node_input is not None and node_input.code is not None:
                step["observation_code"] = node_input.code
            step["success_flag"] = _success(node_input)
            steps.append(step)
        end = nodes[leaf]
        alternative: dict[str, Any] = {
            "branch_from": sum(1 for p in chosen_positions if p < start),
            "steps": steps,
            "pruned": any(nodes[i].pruned for i in suffix),
            "leaf": end.pointer,
        }
        if trailing:
            alternative["thought_after"] = "\n\n".join(trailing)
        last = protos[-1] if protos else None
        if last is not None and last.action.text == "Finish":
            arguments, _, _ = _arguments_of(last)
            return_type = (arguments or {}).get("return_type")
            if isinstance(return_type, str):
                alternative["finish_type"] = return_type
        if end.code not in (None, 0):
            alternative["reason"] = CODE_MEANING.get(end.code, f"observation code {end.code}")
        else:
            alternative["reason"] = "pruned" if alternative["pruned"] else "abandoned"
        out.append(alternative)
    return out, dropped
