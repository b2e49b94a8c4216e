"""What every exporter gives: rows (JSON-ready dicts, one per record) from a batch's trajectories, in a
deterministic order, read in chunks so memory does not grow with the batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from audit.models import Consensus
from trajectories.models import Step, Trajectory

CHUNK = 500
STEP_FIELDS = (
    "trajectory_id",
    "index",
    "kind",
    "turn_id",
    "state",
    "plan",
    "tool_name",
    "tool_call_id",
    "arguments",
    "arguments_raw",
    "observation",
    "reflection",
    "success_flag",
)


@dataclass(frozen=True, slots=True)
class StepRow:
    trajectory_id: int
    index: int
    kind: str
    turn_id: str
    state: list[dict[str, Any]]
    plan: str
    tool_name: str
    tool_call_id: str
    arguments: Any
    arguments_raw: str | None
    observation: str | None
    reflection: str
    success_flag: bool | None


@dataclass(frozen=True, slots=True)
class Source:
    """One trajectory with its steps and its settled values, as an exporter sees it."""

    trajectory: Trajectory
    steps: list[StepRow]
    consensus: dict[tuple[int | None, str], Any]  # (step index or None, field) → settled value


class Exporter(Protocol):
    name: ClassVar[str]
    label: ClassVar[str]
    version: ClassVar[str]
    extension: ClassVar[str]

    def __init__(self, *, project: Any, options: dict[str, Any]) -> None: ...

    def rows(self, source: Source) -> Iterator[dict[str, Any]]: ...


def settled_wrong(index: int, consensus: dict[tuple[int | None, str], Any]) -> bool:
    """The annotators settled the step at `index` as wrong: the wrong tool, or a process reward of −1."""
    return consensus.get((index, "tool_verdict")) == "wrong" or consensus.get((index, "process_reward")) == -1


def sources(chunks: Iterable[list[int]], on_chunk: Callable[[list[int]], None] | None = None) -> Iterator[Source]:
    """The trajectories of each chunk of ids (CHUNK of them, three queries) in the given order with their steps
    and consensus; `on_chunk` (an exporter's prefetch) sees each chunk's ids first."""
    for ids in chunks:
        if on_chunk is not None:
            on_chunk(ids)
        trajectories = {
            t.pk: t for t in Trajectory.objects.filter(pk__in=ids).defer("payload", "chat").select_related("goal")
        }
        steps: dict[int, list[StepRow]] = {}
        for row in (
            Step.objects.filter(trajectory_id__in=ids).order_by("trajectory_id", "index").values_list(*STEP_FIELDS)
        ):
            steps.setdefault(row[0], []).append(StepRow(*row))
        consensus: dict[int, dict[tuple[int | None, str], Any]] = {}
        for trajectory_id, index, field, value in Consensus.objects.filter(trajectory_id__in=ids).values_list(
            "trajectory_id", "step__index", "field", "value"
        ):
            consensus.setdefault(trajectory_id, {})[(index, field)] = value
        for pk in ids:
            if pk in trajectories:
                yield Source(trajectories[pk], steps.get(pk, []), consensus.get(pk, {}))
