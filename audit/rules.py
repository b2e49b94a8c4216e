"""A project's consensus, routing and agreement settings: defaults (AGREEMENT.md §5, §1.10) and
the project's overrides in `Project.consensus_rules`, checked against a JSON Schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator

from core.models import Project, ProjectKind

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "critical_tools": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
        "critical_axes": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
        "high_severity_tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
        "routing": {"enum": ["least_loaded", "round_robin"]},
        "min_items": {"type": "integer", "minimum": 1, "maximum": 100000},
        "bootstrap_resamples": {"type": "integer", "minimum": 100, "maximum": 20000},
        "calibration_window": {"type": "integer", "minimum": 10, "maximum": 100000},
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)

# The five reasoning axes a coding project's target is judged on (MISSION.md).
CODING_TARGET_AXES = ("relevance", "factual_grounding", "tool_selection", "redundancy", "unsafe_edits")


@dataclass(frozen=True, slots=True)
class Rules:
    critical_tools: frozenset[str]
    critical_axes: frozenset[str]
    high_severity_tags: frozenset[str]
    routing: str
    min_items: int
    bootstrap_resamples: int
    calibration_window: int
    target: float
    threshold: float
    kind: str

    @property
    def definition(self) -> dict[str, Any]:
        """What the project's target figure means, shown beside every figure."""
        if self.kind == ProjectKind.CODING:
            text = (
                "Quadratic-weighted Cohen's κ (fixed labels 1–5) of each annotator against the leave-one-out "
                "consensus of the others (or gold where it exists), pooled over the five reasoning axes "
                "within a slice."
            )
            fields = [f"rubric:{axis}" for axis in CODING_TARGET_AXES]
        else:
            text = (
                "Unweighted Cohen's κ of each annotator against the leave-one-out consensus of the others "
                "(or gold where it exists), pooled over argument validity (valid / invalid; unsure = missing) "
                "and environment feedback (the step success flag) within a slice. Rubric axes: "
                "quadratic-weighted κ with the fixed labels 1–5 against the same target."
            )
            fields = ["argument", "env_feedback"]
        return {
            "coefficient": "cohen_kappa",
            "weights": "quadratic" if self.kind == ProjectKind.CODING else "none",
            "fields": fields,
            "against": "leave-one-out consensus, or gold",
            "target": self.target,
            "calibration_threshold": self.threshold,
            "calibration_rule": f"upper 90% bound below {self.threshold} over the last {self.calibration_window} items",
            "min_items": self.min_items,
            "text": text,
        }


def rules_errors(value: Any) -> list[str]:
    """Each problem with a consensus_rules document, with its JSON pointer."""
    out = []
    for error in sorted(_VALIDATOR.iter_errors(value), key=lambda e: list(e.absolute_path)):
        pointer = "/" + "/".join(str(p) for p in error.absolute_path)
        out.append(f"{pointer}: {error.message}")
    return out


def rules_for(project: Project) -> Rules:
    raw = project.consensus_rules if isinstance(project.consensus_rules, dict) else {}
    if rules_errors(raw):
        raise ValidationError({"consensus_rules": rules_errors(raw)})
    severe = raw.get("high_severity_tags")
    if severe is None:
        severe = [
            str(tag.get("key"))
            for tag in project.failure_taxonomy
            if isinstance(tag, dict) and tag.get("severity") == "high"
        ]
    return Rules(
        critical_tools=frozenset(raw.get("critical_tools", [])),
        critical_axes=frozenset(raw.get("critical_axes", [])),
        high_severity_tags=frozenset(severe),
        routing=raw.get("routing", "least_loaded"),
        min_items=int(raw.get("min_items", 100)),
        bootstrap_resamples=int(raw.get("bootstrap_resamples", 1000)),
        calibration_window=int(raw.get("calibration_window", 150)),
        target=project.agreement_target,
        threshold=project.calibration_threshold,
        kind=project.kind,
    )
