"""The one named hook point through which `trajectories` tells higher apps that runs arrived.

A higher app registers in its AppConfig.ready(); trajectories never imports upward. Hooks run
after the import's transaction commits, with the ids of the trajectories it created.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

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
