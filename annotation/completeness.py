"""What a step still needs before its assignment can be submitted: one rule, used by the submit
check (services.missing_labels) and by the outline's statuses (selectors)."""

from __future__ import annotations

from typing import Any, Protocol

from annotation.models import StepLabel
from trajectories.models import StepKind


class StepLike(Protocol):
    kind: str
    arguments: Any


def step_missing(*, step: StepLike, label: StepLabel | None, axes: list[str]) -> list[str]:
    """The labels `step` still lacks, as the submit check names them."""
    out: list[str] = []
    if step.kind == StepKind.TOOL_CALL:
        arguments = step.arguments if isinstance(step.arguments, dict) else {}
        judged = label.argument_verdicts if label else {}
        unjudged = [name for name in arguments if name not in judged]
        if unjudged:
            out.append(f"argument verdicts: {', '.join(unjudged)}")
        if not (label and label.tool_verdict):
            out.append("tool verdict")
        if not (label and label.env_feedback):
            out.append("environment feedback")
    if not (label and label.failure_modes):
        out.append('failure modes (or "none")')
    if not (label and label.process_reward is not None):
        out.append("process reward")
    unscored = [axis for axis in axes if not (label and axis in label.rubric)]
    if unscored:
        out.append(f"rubric: {', '.join(unscored)}")
    return out
