"""Schema checks: every call against the frozen registry's parameters schema.

Validators are compiled once per registry hash (`schema_checker`). Each finding names the JSON
pointer into the arguments, the schema rule that broke (keyword: value) and the offending value;
the failure mode it suggests follows the issue's mapping: an unknown tool → wrong tool (a
hallucinated tool), an invented key → hallucinated argument, everything else the schema catches
→ schema drift.
"""

from __future__ import annotations

import difflib
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from verification.checks.base import (
    HALLUCINATED_ARGUMENT,
    SCHEMA_DRIFT,
    WRONG_TOOL,
    CallView,
    FindingData,
    ToolView,
    pointer_of,
    short,
)

VERSION = "schema-1"
_CACHE_SIZE = 64
_RANGE = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "uniqueItems",
    }
)
_CODES = {
    "type": "wrong_type",
    "enum": "not_in_enum",
    "const": "not_in_enum",
    "format": "bad_format",
    "pattern": "bad_pattern",
    "required": "missing_required",
    "additionalProperties": "unexpected_property",
    "unevaluatedProperties": "unexpected_property",
}
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


class SchemaChecker:
    """The compiled validators of one registry."""

    def __init__(self, tools: Iterable[ToolView]) -> None:
        self.tools: dict[str, ToolView] = {t.name: t for t in tools}
        self._validators: dict[str, Validator] = {}
        for tool in self.tools.values():
            schema = tool.parameters if isinstance(tool.parameters, dict) else {}
            cls = validator_for(schema, default=Draft202012Validator)
            self._validators[tool.name] = cls(schema, format_checker=cls.FORMAT_CHECKER)
        self._names = sorted(self.tools)
        self._lower = {name.lower(): name for name in self._names}

    def closest(self, name: str) -> list[str]:
        by_case = self._lower.get(name.lower())
        if by_case:
            return [by_case]
        return difflib.get_close_matches(name, self._names, n=3, cutoff=0.5)

    def check(self, call: CallView) -> list[FindingData]:
        if call.kind != "tool_call":
            return []
        validator = self._validators.get(call.tool_name)
        if validator is None:
            near = self.closest(call.tool_name)
            hint = f"; closest registered: {', '.join(near)}" if near else ""
            return [
                FindingData(
                    code="unknown_tool",
                    step_index=call.index,
                    failure_mode=WRONG_TOOL,
                    rule="tool must be in the frozen registry",
                    value=call.tool_name,
                    message=f"{call.tool_name!r} is not a tool of the registry (a wrong or hallucinated tool){hint}",
                    evidence={"closest": near},
                )
            ]
        if call.arguments is None:
            return [
                FindingData(
                    code="unparseable_arguments",
                    step_index=call.index,
                    failure_mode=SCHEMA_DRIFT,
                    rule="arguments must be JSON",
                    value=short(call.arguments_raw or "", 500),
                    message=f"the arguments do not parse as JSON: {call.arguments_error or 'no arguments given'}",
                )
            ]
        if not isinstance(call.arguments, dict):
            return [
                FindingData(
                    code="arguments_not_object",
                    step_index=call.index,
                    failure_mode=SCHEMA_DRIFT,
                    rule="type: object",
                    value=call.arguments,
                    message=f"the arguments are a JSON {type(call.arguments).__name__}, not an object",
                )
            ]
        findings = [f for error in validator.iter_errors(call.arguments) for f in self._findings(call, error)]
        reported = {f.pointer for f in findings if f.code == "unexpected_property"}
        schema = self.tools[call.tool_name].parameters
        for path, name, value in _undeclared(schema, call.arguments, []):
            pointer = pointer_of([*path, name])
            if pointer not in reported:
                findings.append(
                    FindingData(
                        code="unexpected_property",
                        step_index=call.index,
                        failure_mode=HALLUCINATED_ARGUMENT,
                        argument=str([*path, name][0]),
                        pointer=pointer,
                        rule="properties: a call's arguments are the declared parameters (additionalProperties unset)",
                        value=value,
                        message=f"{pointer}: {name!r} is not a parameter of {call.tool_name} (an invented key)",
                        evidence={"declared": sorted(_declared(schema, path))},
                    )
                )
        return findings

    def _findings(self, call: CallView, error: ValidationError) -> Iterator[FindingData]:
        if error.context and error.validator in ("anyOf", "oneOf", "allOf"):
            error = best_match(error.context) or error
        keyword = str(error.validator)
        path = list(error.absolute_path)
        if keyword == "required":
            for name in _missing(error):
                yield self._finding(
                    call, error, "missing_required", [*path, name], None, f"required parameter {name!r} is missing"
                )
            return
        if keyword in ("additionalProperties", "unevaluatedProperties"):
            for name in _extra(error):
                value = error.instance.get(name) if isinstance(error.instance, dict) else None
                yield self._finding(
                    call,
                    error,
                    "unexpected_property",
                    [*path, name],
                    value,
                    f"{name!r} is not a parameter of {call.tool_name} (an invented key)",
                    failure_mode=HALLUCINATED_ARGUMENT,
                )
            return
        code = _CODES.get(keyword) or ("out_of_range" if keyword in _RANGE else "schema_violation")
        yield self._finding(call, error, code, path, error.instance, error.message)

    def _finding(
        self,
        call: CallView,
        error: ValidationError,
        code: str,
        path: list[Any],
        value: Any,
        message: str,
        *,
        failure_mode: str = SCHEMA_DRIFT,
    ) -> FindingData:
        pointer = pointer_of(path)
        return FindingData(
            code=code,
            step_index=call.index,
            failure_mode=failure_mode,
            argument=str(path[0]) if path else "",
            pointer=pointer,
            rule=f"{error.validator}: {short(error.validator_value, 300)}",
            value=value,
            message=f"{pointer or '(arguments)'}: {message}",
            evidence={"schema_path": pointer_of(error.absolute_schema_path)},
        )


def _missing(error: ValidationError) -> list[str]:
    """The property this `required` error is about (jsonschema reports one error per missing name)."""
    named = _QUOTED.match(error.message)
    if named:
        return [named.group(1)]
    required = error.validator_value if isinstance(error.validator_value, list) else []
    present = error.instance if isinstance(error.instance, dict) else {}
    return [str(name) for name in required if name not in present]


def _extra(error: ValidationError) -> list[str]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    schema = error.schema if isinstance(error.schema, dict) else {}
    known = set(schema.get("properties") or {})
    patterns = [re.compile(p) for p in (schema.get("patternProperties") or {})]
    extra = [k for k in instance if k not in known and not any(p.search(k) for p in patterns)]
    if extra:
        return extra
    return _QUOTED.findall(error.message)  # unevaluatedProperties under composition: trust the message


def _undeclared(schema: Any, instance: Any, path: list[Any]) -> Iterator[tuple[list[Any], str, Any]]:
    """Keys of `instance` that its schema declares nowhere, where the schema lists `properties` and
    says nothing about others (no additionalProperties, patternProperties, unevaluatedProperties).

    JSON Schema allows such keys, but a tool call is not a free-form object: a key the tool does
    not declare is an invented argument (most function specs in the wild omit
    additionalProperties). A schema that does allow other keys explicitly is respected.
    """
    if not isinstance(schema, dict) or not isinstance(instance, dict):
        return
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    open_keys = ("additionalProperties", "patternProperties", "unevaluatedProperties")
    composed = any(k in schema for k in ("allOf", "anyOf", "oneOf", "$ref", "dependentSchemas", "if"))
    for key, value in instance.items():
        if key in properties:
            yield from _undeclared(properties[key], value, [*path, key])
            item_schema = properties[key].get("items") if isinstance(properties[key], dict) else None
            if isinstance(value, list) and isinstance(item_schema, dict):
                for i, item in enumerate(value):
                    yield from _undeclared(item_schema, item, [*path, key, i])
        elif not composed and not any(k in schema for k in open_keys):
            yield path, key, value


def _declared(schema: Any, path: list[Any]) -> set[str]:
    node = schema
    for p in path:
        if not isinstance(node, dict):
            return set()
        node = node.get("items") if isinstance(p, int) else (node.get("properties") or {}).get(p)
    return set((node or {}).get("properties") or {}) if isinstance(node, dict) else set()


_checkers: OrderedDict[str, SchemaChecker] = OrderedDict()


def schema_checker(registry_sha256: str, tools: Iterable[ToolView] | None = None) -> SchemaChecker:
    """The compiled checker of the registry with that hash (compiled once; `tools` is read only then)."""
    checker = _checkers.get(registry_sha256)
    if checker is not None:
        _checkers.move_to_end(registry_sha256)
        return checker
    if tools is None:
        raise KeyError(registry_sha256)
    checker = _checkers[registry_sha256] = SchemaChecker(tools)
    while len(_checkers) > _CACHE_SIZE:
        _checkers.popitem(last=False)
    return checker


def schema_check_run(checker: SchemaChecker, calls: Iterable[CallView]) -> list[FindingData]:
    return [finding for call in calls for finding in checker.check(call)]
