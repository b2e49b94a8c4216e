"""A small SWE-style coding task (in SWE-bench's shape) and SWE-agent-style runs on it: an
in-process workspace executes each command, so observations and rewards are real."""

from __future__ import annotations

import difflib
import hashlib
import json
import random
import traceback
from collections.abc import Iterator
from typing import Any

from demo.rollouts.common import new_call_id

CODING_INSTANCE = "demo__paginate-1"
CODING_REPO = "stepwise-demo/pagekit"
CODING_BASE_COMMIT = hashlib.sha256(b"stepwise-demo/pagekit@0.1").hexdigest()[:40]
CODING_SCAFFOLD = "swe-agent"
CODE_PATH = "pagekit/paginate.py"
TEST_PATH = "tests/test_paginate.py"
PAGINATE_SRC = '''"""Split a sequence into pages."""

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def page_count(total: int, per_page: int) -> int:
    """How many pages `total` items fill."""
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    return total // per_page


def paginate(items: Sequence[T], page: int, per_page: int = 10) -> list[T]:
    """The items on `page` (1-based)."""
    pages = page_count(len(items), per_page)
    if page < 1 or page > pages:
        raise IndexError(f"page {page} out of range 1..{pages}")
    start = (page - 1) * per_page
    return list(items[start : start + per_page])
'''
TESTS_SRC = """import pytest

from pagekit.paginate import page_count, paginate


def test_first_page():
    assert paginate(list(range(30)), 1) == list(range(10))


def test_exact_multiple_has_no_empty_page():
    assert page_count(20, 10) == 2


def test_page_past_the_end_raises():
    with pytest.raises(IndexError):
        paginate(list(range(20)), 3)


def test_per_page_must_be_positive():
    with pytest.raises(ValueError):
        page_count(5, 0)
"""
NEW_TEST = """

def test_partial_last_page():
    assert page_count(25, 10) == 3
    assert paginate(list(range(25)), 3) == [20, 21, 22, 23, 24]
"""
GOLD_LINE = "    return -(-total // per_page)\n"
PROBLEM_STATEMENT = """paginate() drops the last, partial page

With 25 items and 10 per page there should be 3 pages, but:

```python
>>> from pagekit.paginate import paginate
>>> paginate(list(range(25)), 3)
IndexError: page 3 out of range 1..2
```

`page_count(25, 10)` returns 2. Any total that is not a multiple of `per_page` loses its last page.
"""
REPRO = 'python -c "from pagekit.paginate import paginate; print(paginate(list(range(25)), 3))"'
PYTEST = f"pytest -q {TEST_PATH}"


def _diff(path: str, before: str, after: str) -> str:
    if before == after:
        return ""
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{path}", f"b/{path}"))
    return f"diff --git a/{path} b/{path}\n{body}"


def coding_task() -> dict[str, Any]:
    """The task in SWE-bench's shape (the gold patch under `patch`)."""
    gold = PAGINATE_SRC.replace("    return total // per_page\n", GOLD_LINE)
    return {
        "instance_id": CODING_INSTANCE,
        "repo": CODING_REPO,
        "base_commit": CODING_BASE_COMMIT,
        "problem_statement": PROBLEM_STATEMENT,
        "patch": _diff(CODE_PATH, PAGINATE_SRC, gold),
        "test_patch": _diff(TEST_PATH, TESTS_SRC, TESTS_SRC + NEW_TEST),
        "FAIL_TO_PASS": [f"{TEST_PATH}::test_partial_last_page"],
        "PASS_TO_PASS": [
            f"{TEST_PATH}::test_{name}"
            for name in (
                "first_page",
                "exact_multiple_has_no_empty_page",
                "page_past_the_end_raises",
                "per_page_must_be_positive",
            )
        ],
        "version": "0.1",
        "image": "stepwise-demo/pagekit:0.1",
        "created_at": "2024-05-15T15:00:00Z",
    }


def _swe_tool(
    name: str, description: str, properties: dict[str, Any], required: list[str], side_effects: str, latency: int
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
        "side_effects": side_effects,
        "latency_p99_ms": latency,
    }


def coding_tool_specs() -> list[dict[str, Any]]:
    """SWE-agent's commands used by the demo runs, as function tools."""
    return [
        _swe_tool(
            "open",
            "Open a file in the editor window, optionally around a line.",
            {"path": {"type": "string", "minLength": 1}, "line_number": {"type": "integer", "minimum": 1}},
            ["path"],
            "read",
            120,
        ),
        _swe_tool(
            "search_file",
            "Search for a term in a file (the open file when no file is given).",
            {"search_term": {"type": "string", "minLength": 1}, "file": {"type": "string"}},
            ["search_term"],
            "read",
            150,
        ),
        _swe_tool(
            "edit",
            "Replace lines start_line..end_line (inclusive) of the open file with replacement_text. Edits that break the syntax are refused.",
            {
                "start_line": {"type": "integer", "minimum": 1},
                "end_line": {"type": "integer", "minimum": 1},
                "replacement_text": {"type": "string"},
            },
            ["start_line", "end_line", "replacement_text"],
            "write",
            300,
        ),
        _swe_tool(
            "bash",
            "Run a shell command in the repository.",
            {"command": {"type": "string", "minLength": 1}},
            ["command"],
            "destructive",
            30000,
        ),
        _swe_tool(
            "submit",
            "Submit the current changes as the solution (a diff against the base commit).",
            {},
            [],
            "write",
            500,
        ),
    ]


class _Raises:
    """`pytest.raises` for the in-process test runner."""

    def __init__(self, expected: type[BaseException]) -> None:
        self.expected = expected

    def __enter__(self) -> _Raises:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: Any) -> bool:
        if kind is None:
            raise AssertionError(f"DID NOT RAISE {self.expected.__name__}")
        return issubclass(kind, self.expected)


class _PytestShim:
    raises = _Raises


def _module(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "pagekit.paginate"}
    # The demo's own fixed source (or a scripted edit of it), never outside input.
    exec(compile(source, CODE_PATH, "exec"), namespace)  # noqa: S102
    return namespace


def _test_results(source: str, tests: str) -> list[tuple[str, str | None]]:
    """(test name, None when it passed else the failure text), running the tests in-process."""
    try:
        module = _module(source)
    except Exception as exc:
        return [("collection", f"{type(exc).__name__}: {exc}")]
    body = "\n".join("" if line.startswith(("import ", "from ")) else line for line in tests.splitlines())
    namespace: dict[str, Any] = {
        "pytest": _PytestShim,
        "paginate": module["paginate"],
        "page_count": module["page_count"],
    }
    exec(compile(body, TEST_PATH, "exec"), namespace)  # noqa: S102
    results: list[tuple[str, str | None]] = []
    for name in [n for n in namespace if n.startswith("test_")]:
        try:
            namespace[name]()
        except Exception as exc:
            frame = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == TEST_PATH][-1]
            line = tests.splitlines()[frame.lineno - 1] if frame.lineno else ""
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            results.append((name, f">{line[1:]}\nE       {error}\n\n{TEST_PATH}:{frame.lineno}: {type(exc).__name__}"))
        else:
            results.append((name, None))
    return results


def _pytest_output(results: list[tuple[str, str | None]]) -> str:
    dots = "".join("." if error is None else "F" for _, error in results)
    failed = [(n, e) for n, e in results if e is not None]
    lines = [f"{dots:<72} [100%]"]
    if failed:
        lines.append("=" * 33 + " FAILURES " + "=" * 33)
        for name, error in failed:
            lines += [f"{'_' * 20} {name} {'_' * 20}", "", error]
        lines.append("=" * 26 + " short test summary info " + "=" * 26)
        lines += [f"FAILED {TEST_PATH}::{name}" for name, _ in failed]
    passed = len(results) - len(failed)
    summary = ", ".join(
        p for p in (f"{len(failed)} failed" if failed else "", f"{passed} passed" if passed else "") if p
    )
    lines.append(f"{summary} in 0.0{len(results)}s")
    return "\n".join(lines)


class _Workspace:
    """The repository as the scripted SWE agent sees it."""

    def __init__(self) -> None:
        self.files = {CODE_PATH: PAGINATE_SRC, TEST_PATH: TESTS_SRC}
        self.open_path = ""

    def window(self, path: str, around: int = 1) -> str:
        lines = self.files[path].splitlines()
        first = max(0, around - 50)
        shown = lines[first : first + 100]
        body = "\n".join(f"{first + i + 1}:{text}" for i, text in enumerate(shown))
        below = len(lines) - first - len(shown)
        return f"[File: /pagekit/{path} ({len(lines)} lines total)]\n({first} more lines above)\n{body}\n({below} more lines below)"

    def run(self, name: str, args: dict[str, Any]) -> str:
        return getattr(self, f"_{name}")(**args)

    def _open(self, path: str, line_number: int = 1) -> str:
        if path not in self.files:
            return f"Error: file {path} not found"
        self.open_path = path
        return self.window(path, line_number)

    def _search_file(self, search_term: str, file: str = "") -> str:
        path = file or self.open_path
        hits = [(i, text) for i, text in enumerate(self.files[path].splitlines(), start=1) if search_term in text]
        if not hits:
            return f'No matches found for "{search_term}" in /pagekit/{path}'
        found = "\n".join(f"Line {i}:{text}" for i, text in hits)
        return f'Found {len(hits)} matches for "{search_term}" in /pagekit/{path}:\n{found}\nEnd of matches for "{search_term}" in /pagekit/{path}'

    def _edit(self, start_line: int, end_line: int, replacement_text: str) -> str:
        lines = self.files[self.open_path].splitlines(True)
        text = replacement_text if replacement_text.endswith("\n") else replacement_text + "\n"
        candidate = "".join(lines[: start_line - 1]) + text + "".join(lines[end_line:])
        try:
            compile(candidate, self.open_path, "exec")
        except SyntaxError as exc:
            return (
                "Error: your proposed edit has introduced new syntax error(s). Please read this error message carefully and then retry editing the file.\n\n"
                f"ERRORS:\n- E999 {type(exc).__name__}: {exc.msg}\n\nYour changes have NOT been applied. Please fix your edit command and try again."
            )
        self.files[self.open_path] = candidate
        return (
            "File updated. Please review the changes and make sure they are correct (correct indentation, no duplicate lines, etc). Edit the file again if necessary.\n"
            + self.window(self.open_path, start_line)
        )

    def _bash(self, command: str) -> str:
        if command == "ls -R pagekit tests":
            return "pagekit:\n__init__.py\npaginate.py\n\ntests:\n__init__.py\ntest_paginate.py"
        if command == REPRO:
            try:
                return repr(_module(self.files[CODE_PATH])["paginate"](list(range(25)), 3))
            except Exception as exc:
                return f'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n  File "/pagekit/{CODE_PATH}", in paginate\n{type(exc).__name__}: {exc}'
        if command == PYTEST:
            return _pytest_output(_test_results(self.files[CODE_PATH], self.files[TEST_PATH]))
        return f"bash: {command.split()[0]}: command not found"

    def _submit(self) -> str:
        return _diff(CODE_PATH, PAGINATE_SRC, self.files[CODE_PATH])

    def resolved(self) -> bool:
        """FAIL_TO_PASS and PASS_TO_PASS all green with the test patch applied."""
        return all(error is None for _, error in _test_results(self.files[CODE_PATH], TESTS_SRC + NEW_TEST))


_LOOK = [
    ("Let me look at the repository layout first.", "bash", {"command": "ls -R pagekit tests"}),
    (
        "The issue names page_count; find where it is defined.",
        "search_file",
        {"search_term": "page_count", "file": CODE_PATH},
    ),
    ("Open the module.", "open", {"path": CODE_PATH}),
    ("Reproduce the report before changing anything.", "bash", {"command": REPRO}),
]
_GOLD_EDIT = (
    "page_count floors the division, so a partial last page is lost. Use ceiling division.",
    "edit",
    {"start_line": 13, "end_line": 13, "replacement_text": GOLD_LINE},
)
_PLUS_ONE = (
    "Floor division drops the remainder; add one page for it.",
    "edit",
    {"start_line": 13, "end_line": 13, "replacement_text": "    return total // per_page + 1\n"},
)
_CHECK = [
    ("Check the reproduction again.", "bash", {"command": REPRO}),
    ("Run the test suite.", "bash", {"command": PYTEST}),
]
_SUBMIT: tuple[str, str, dict[str, Any]] = ("The fix is in and the tests pass; submit.", "submit", {})
CODING_SCRIPTS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "resolved": [*_LOOK, _GOLD_EDIT, *_CHECK, _SUBMIT],
    "resolved_after_failure": [
        *_LOOK[2:],
        _PLUS_ONE,
        ("Run the tests.", "bash", {"command": PYTEST}),
        (
            "Adding one over-counts when the total is an exact multiple (20 items give 3 pages). Ceiling division is right.",
            "edit",
            {"start_line": 13, "end_line": 13, "replacement_text": GOLD_LINE},
        ),
        *_CHECK,
        _SUBMIT,
    ],
    "syntax_error_then_fixed": [
        *_LOOK[1:],
        (
            "Fix the rounding.",
            "edit",
            {"start_line": 13, "end_line": 13, "replacement_text": "  return -(-total // per_page)\n      "},
        ),
        (
            "The edit was refused for its indentation; redo it with four spaces.",
            "edit",
            {"start_line": 13, "end_line": 13, "replacement_text": GOLD_LINE},
        ),
        *_CHECK,
        _SUBMIT,
    ],
    "incorrect_fix": [
        *_LOOK[2:],
        _PLUS_ONE,
        ("The reproduction should work now.", "bash", {"command": REPRO}),
        ("It prints the last page. Submit.", "submit", {}),
    ],
    "wrong_localisation": [
        *_LOOK[2:],
        (
            "The range check in paginate() is off by one: allow one more page.",
            "edit",
            {"start_line": 19, "end_line": 19, "replacement_text": "    if page < 1 or page > pages + 1:\n"},
        ),
        *_CHECK,
        ("One test about the end of the range fails, but the reported case works. Submitting.", "submit", {}),
    ],
    "premature_submission": [
        _LOOK[1],
        _LOOK[2],
        (
            "page_count looks right to me; the caller must be passing a wrong per_page. Nothing to change here, submitting.",
            "submit",
            {},
        ),
    ],
}
CODING_PLAN = [
    ("gpt-4o-2024-08-06", 1, "resolved"),
    ("gpt-4o-2024-08-06", 2, "incorrect_fix"),
    ("claude-3-5-sonnet", 1, "resolved_after_failure"),
    ("claude-3-5-sonnet", 2, "resolved"),
    ("qwen2.5-72b-instruct", 1, "wrong_localisation"),
    ("qwen2.5-72b-instruct", 2, "premature_submission"),
    ("qwen2.5-72b-instruct", 3, "syntax_error_then_fixed"),
]
SWE_SYSTEM = (
    "SETTING: You are an autonomous programmer working in a command line with a special interface. "
    "The editor shows up to 100 lines of a file at a time. Use the tools to navigate, edit and test "
    "the repository at /pagekit, then call submit when the issue is fixed."
)


def coding_runs() -> Iterator[dict[str, Any]]:
    """SWE-agent-style runs on the coding task; some resolve it, some do not."""
    tools = [{"type": "function", "function": spec["function"]} for spec in coding_tool_specs()]
    for model, trial, behaviour in CODING_PLAN:
        rng = random.Random(f"{CODING_INSTANCE}:{model}:{trial}")
        workspace = _Workspace()
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SWE_SYSTEM},
            {
                "role": "user",
                "content": f"We're solving this issue in {CODING_REPO}:\n\n{PROBLEM_STATEMENT}\nEdit the repository so the issue is fixed, then submit.",
            },
        ]
        for thought, name, args in CODING_SCRIPTS[behaviour]:
            call_id = new_call_id(rng)
            function = {"name": name, "arguments": json.dumps(args)}
            messages.append(
                {
                    "role": "assistant",
                    "content": thought,
                    "tool_calls": [{"id": call_id, "type": "function", "function": function}],
                }
            )
            messages.append(
                {"role": "tool", "tool_call_id": call_id, "name": name, "content": workspace.run(name, args)}
            )
        yield {
            "messages": messages,
            "tools": tools,
            "metadata": {
                "model": model,
                "scaffold": CODING_SCAFFOLD,
                "rollout_id": f"{CODING_INSTANCE}/{model}/{trial}",
                "trial": trial,
                "reward": 1.0 if workspace.resolved() else 0.0,
                "instance_id": CODING_INSTANCE,
                "exit_status": "submitted",
                "model_patch": workspace.run("submit", {}),
                "demo_behaviour": behaviour,
            },
        }
