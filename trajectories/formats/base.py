"""What every importer produces, and how a located error looks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Protocol


class RecordError(Exception):
    """A record (or a part of a file) that cannot be imported, with where and why.

    `pointer` is a JSON pointer inside the record (RFC 6901), `where` names the record in the file
    ("line 12", "element 3 (line 40)"), `line` the 1-based line the fault is on, where known.
    """

    def __init__(self, message: str, *, pointer: str = "", where: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer
        self.where = where
        self.line = line

    def as_dict(self) -> dict[str, Any]:
        return {"where": self.where, "line": self.line, "pointer": self.pointer, "message": self.message}

    def __str__(self) -> str:
        parts = [p for p in (self.where, self.pointer and f"at {self.pointer}") if p]
        return f"{', '.join(parts)}: {self.message}" if parts else self.message


@dataclass(slots=True)
class RawRecord:
    """One record's original bytes and where they were in the file."""

    raw: bytes
    where: str
    line: int
    index: int
    value: Any = None  # the parsed JSON value, when the reader had to parse to find the record's end
    source_name: str = ""  # the file (or archive member) it came from, for formats that name runs by file


@dataclass(slots=True)
class RunStep:
    kind: str  # "tool_call" | "respond"
    turn_id: str = ""
    state: list[dict[str, Any]] = field(default_factory=list)
    plan: str = ""
    tool_name: str = ""
    tool_call_id: str = ""
    arguments: dict[str, Any] | None = None
    arguments_raw: str | None = None
    arguments_error: str = ""
    observation: str | None = None
    reflection: str = ""
    success_flag: bool | None = None
    started_at: str | None = None
    ended_at: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None


@dataclass(slots=True)
class ParsedRun:
    goal_text: str
    steps: list[RunStep]
    goal: dict[str, Any] | None = None  # {external_id, band, tags, expected_actions, expected_outputs}
    task: dict[str, Any] | None = None  # {instance_id}
    model: str = ""
    scaffold: str = ""
    rollout_id: str = ""
    trial: int | None = None
    final_answer: str = ""
    outcome: dict[str, Any] = field(default_factory=dict)  # {reward, details}
    metadata: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    task_hint: dict[str, Any] | None = None  # a task guessed from outside the run (its file name): links, never hashed
    alternatives: list[dict[str, Any]] = field(default_factory=list)  # abandoned branches, as the source gave them
    scrubbed: dict[str, int] = field(default_factory=dict)  # secrets removed: {JSON pointer: count}
    # What the record carries beside the run (a full Stepwise export's source, labels, consensus,
    # evidence), as written: never hashed, never stored here; handed to the runs-stored hook.
    sections: dict[str, Any] = field(default_factory=dict)


class Importer(Protocol):
    name: str
    label: str
    version: str

    def detect(self, head: bytes) -> int:
        """How sure (0–100) the importer is that a file starting with `head` is its format."""
        ...

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        """The file's records in order; an unreadable part is yielded as a RecordError."""
        ...

    def parse(self, record: RawRecord) -> ParsedRun:
        """One record as a run; raises RecordError (with a JSON pointer) when it cannot."""
        ...
