"""Parsing of the label forms the workspace posts (field groups → the services' `values`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from annotation.models import STEP_LABEL_FIELDS
from trajectories.models import Step, Tool

STEP_GROUPS = STEP_LABEL_FIELDS
VERDICT_GROUPS = ("goal_completed", "overall_success", "efficiency", "error_handling", "first_failing_step", "comment")
MAX_ELAPSED_MS = 30 * 60 * 1000


@dataclass(frozen=True)
class SaveRequest:
    values: dict[str, Any]
    base_version: int
    elapsed_ms: int
    groups: list[str]


def _int(raw: str | None, default: int = 0) -> int:
    try:
        return int(raw or default)
    except (TypeError, ValueError):
        return default


def _score(raw: str, field: str) -> int | None:
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationError({field: "a score is 1 to 5"}) from None


def _groups(post: QueryDict, allowed: tuple[str, ...]) -> list[str]:
    return [g for g in dict.fromkeys(post.getlist("field")) if g in allowed]


def corrected_value(raw: str, schema: Any) -> Any:
    """What the annotator typed as a corrected value: text for string parameters, else JSON if it parses."""
    kinds = schema.get("type") if isinstance(schema, dict) else None
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if kinds == ["string"]:
        return raw
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def parse_step_save(post: QueryDict, *, step: Step, tool: Tool | None) -> SaveRequest:
    """The label fields named in `field` (one or more groups), as step_label_save takes them."""
    groups = _groups(post, STEP_GROUPS)
    arguments = list(step.arguments) if isinstance(step.arguments, dict) else []
    parameters = tool.parameters if tool is not None and isinstance(tool.parameters, dict) else {}
    declared = parameters.get("properties")
    properties: dict[str, Any] = declared if isinstance(declared, dict) else {}
    values: dict[str, Any] = {}
    for group in groups:
        if group == "argument_verdicts":
            values[group] = {
                name: post.get(f"verdict-{i}", "") for i, name in enumerate(arguments) if f"verdict-{i}" in post
            }
        elif group == "corrected_arguments":
            corrected = {}
            for i, name in enumerate(arguments):
                raw = post.get(f"corrected-{i}", "")
                if raw.strip() != "":
                    corrected[name] = corrected_value(raw, properties.get(name))
            values[group] = corrected
        elif group == "failure_modes":
            values[group] = post.getlist("failure_modes")
        elif group == "rubric":
            values[group] = {
                key[len("rubric-") :]: _score(str(raw), "rubric")
                for key, raw in post.items()
                if key.startswith("rubric-")
            }
        elif group == "process_reward":
            raw = post.get("process_reward", "")
            if raw not in ("", "-1", "0", "1", "+1"):
                raise ValidationError({"process_reward": "−1, 0 or +1"})
            values[group] = int(raw) if raw else None
        else:
            values[group] = post.get(group, "")
    return SaveRequest(
        values=values,
        base_version=_int(post.get("base_version")),
        elapsed_ms=max(0, min(_int(post.get("elapsed_ms")), MAX_ELAPSED_MS)),
        groups=groups,
    )


def _yes_no(raw: str, field: str) -> bool | None:
    if raw == "":
        return None
    if raw in ("yes", "no"):
        return raw == "yes"
    raise ValidationError({field: "yes or no"})


def parse_verdict_save(post: QueryDict) -> SaveRequest:
    groups = _groups(post, VERDICT_GROUPS)
    values: dict[str, Any] = {}
    for group in groups:
        raw = post.get(group, "")
        if group in ("goal_completed", "overall_success"):
            values[group] = _yes_no(raw, group)
        elif group in ("efficiency", "error_handling"):
            values[group] = _score(raw, group)
        elif group == "first_failing_step":
            if raw == "":
                values[group] = None
            else:
                try:
                    values[group] = int(raw)
                except ValueError:
                    raise ValidationError({group: "not a step of this trajectory"}) from None
        else:
            values[group] = raw
    return SaveRequest(
        values=values,
        base_version=_int(post.get("base_version")),
        elapsed_ms=max(0, min(_int(post.get("elapsed_ms")), MAX_ELAPSED_MS)),
        groups=groups,
    )


class SkipForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "aria-label": "Why you skip this trajectory"}),
        help_text="Say why you skip it: the project manager reads every reason.",
    )


class GoldForm(forms.Form):
    reference = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "class": "mono", "spellcheck": "false"}),
        strip=False,
        help_text="Reference labels for every step, keyed by step index (0 is the first step).",
    )
    explanation = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="What an annotator should get right here."
    )

    def clean_reference(self) -> Any:
        text = self.cleaned_data["reference"]
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object: step index → labels")
        return value
