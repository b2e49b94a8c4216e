"""The named hook points through which `trajectories` tells higher apps that runs arrived.

A higher app registers in its AppConfig.ready(); trajectories never imports upward.

- trajectories imported: run after each batch of an import commits, with the ids of the
  trajectories it created (verification queues its checks). A batch committed before the import
  failed, or before its worker died, is announced all the same: its runs stay, as duplicates
  when the job runs again.
- runs stored: run inside the transaction that writes a batch of new runs, in the importing
  process, for the runs whose records carry sections beside the run (ParsedRun.sections: a full
  Stepwise export's labels, consensus and evidence). A hook that raises RecordError (with the
  JSON pointer of the fault) refuses the record: the batch is written again record by record, and
  that record's run is rejected with it, so nothing of it is stored. Duplicates (runs the project
  holds already) never reach it: importing the same file twice restores nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.models import Project

logger = logging.getLogger(__name__)

TrajectoriesImported = Callable[[int, list[int]], None]  # (project id, trajectory ids)
_on_imported: list[TrajectoriesImported] = []


def register_trajectories_imported(hook: TrajectoriesImported) -> None:
    if hook not in _on_imported:
        _on_imported.append(hook)


def unregister_trajectories_imported(hook: TrajectoriesImported) -> None:
    if hook in _on_imported:
        _on_imported.remove(hook)


def fire_trajectories_imported(project_id: int, trajectory_ids: list[int]) -> None:
    for hook in list(_on_imported):
        hook(project_id, trajectory_ids)


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run just written, with the sections its record carried and where that record was."""

    trajectory_id: int
    sections: dict[str, Any]
    where: str
    line: int


RunsStored = Callable[[Project, list[StoredRun]], None]
_on_stored: list[RunsStored] = []


def register_runs_stored(hook: RunsStored) -> None:
    if hook not in _on_stored:
        _on_stored.append(hook)


def unregister_runs_stored(hook: RunsStored) -> None:
    if hook in _on_stored:
        _on_stored.remove(hook)


def fire_runs_stored(project: Project, runs: list[StoredRun]) -> None:
    """Inside the writing transaction; a RecordError raised here refuses the record (see above)."""
    for hook in list(_on_stored):
        hook(project, runs)
