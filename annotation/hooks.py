"""The one named hook point through which `annotation` tells higher apps that a trajectory has all
its labels (the last of its annotators submitted).

A higher app (audit) registers in its AppConfig.ready(); annotation never imports upward. Hooks run
after the submit's transaction commits, with the trajectory's id.
"""

from __future__ import annotations

from collections.abc import Callable

TrajectoryAnnotated = Callable[[int], None]
_on_annotated: list[TrajectoryAnnotated] = []


def register_trajectory_annotated(hook: TrajectoryAnnotated) -> None:
    if hook not in _on_annotated:
        _on_annotated.append(hook)


def fire_trajectory_annotated(trajectory_id: int) -> None:
    for hook in list(_on_annotated):
        hook(trajectory_id)
