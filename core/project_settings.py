"""The shape of a project's rubric axes and failure taxonomy, as every reader expects it, checked against a
JSON Schema: annotation (the step and verdict forms read `key`, `label`, `anchors`), audit (consensus and
agreement read each `key`, a tag's `severity` makes it high-severity) and exports (reports read `key` and
`label`). Errors name the JSON pointer and why."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

# A key becomes a field name ("rubric:<key>") in consensus, agreement and exports: lowercase and plain.
_KEY = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"}
# PostgreSQL refuses a NUL character in text and jsonb: refused here, with its pointer.
_TEXT = {"type": "string", "minLength": 1, "maxLength": 500, "pattern": "^[^\\x00]*$"}
# Agreement packs each label's tags, with "none", into one 64-bit integer (audit.services.agreement).
MAX_FAILURE_TAGS = 60
MAX_RUBRIC_AXES = 20
NONE_TAG = "none"  # annotation's "no failure" choice: never a taxonomy key

RUBRIC_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": MAX_RUBRIC_AXES,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["key", "label"],
        "properties": {
            "key": _KEY,
            "label": {**_TEXT, "maxLength": 200},
            "anchors": {
                "type": "object",
                "description": "What a score of 1 to 5 means (any of them).",
                "propertyNames": {"pattern": "^[1-5]$"},
                "additionalProperties": _TEXT,
            },
        },
    },
}
TAXONOMY_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": MAX_FAILURE_TAGS,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["key", "label"],
        "properties": {
            "key": {**_KEY, "not": {"const": NONE_TAG}},
            "label": {**_TEXT, "maxLength": 200},
            "severity": {"enum": ["high", "normal"]},
        },
    },
}
SCHEMAS = {"rubric_axes": RUBRIC_SCHEMA, "failure_taxonomy": TAXONOMY_SCHEMA}
_VALIDATORS = {field: Draft202012Validator(schema) for field, schema in SCHEMAS.items()}


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(p) for p in path)


def settings_json_errors(field: str, value: Any) -> list[str]:
    """Each problem with a rubric_axes or failure_taxonomy document, each with its JSON pointer."""
    errors = sorted(_VALIDATORS[field].iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    out = []
    for error in errors:
        message = error.message
        if error.validator == "type":
            message = f"must be of type {error.validator_value} (not {type(error.instance).__name__})"
        elif error.validator == "maxItems":
            message = f"at most {error.validator_value} items (this has {len(error.instance)})"
        elif error.validator == "minLength":
            message = "must not be empty"
        elif error.validator == "maxLength":
            message = f"at most {error.validator_value} characters (this has {len(error.instance)})"
        elif error.validator == "not":
            message = f"{error.instance!r} is reserved (annotation's “no failure” choice)"
        elif error.validator == "pattern" and error.validator_value == _KEY["pattern"]:
            message = f"{error.instance!r} is not a key: lowercase letters, digits and _, starting with a letter"
        elif error.validator == "pattern" and error.validator_value == _TEXT["pattern"]:
            message = "must not contain a NUL character"
        elif error.validator == "pattern":
            message = f"{error.instance!r} is not a score: anchors are named 1 to 5"
        out.append(f"{_pointer(error.absolute_path)}: {message}")
    if out:
        return out
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        if item["key"] in seen:
            out.append(f"/{i}/key: {item['key']!r} is already the key of /{seen[item['key']]}")
        seen.setdefault(item["key"], i)
    return out


def settings_keys(value: Any) -> list[str]:
    return [str(item.get("key")) for item in value if isinstance(item, dict)] if isinstance(value, list) else []
