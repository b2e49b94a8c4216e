"""Grounding checks: is each argument value that looks like an identifier, a quantity or a name
something the agent had seen before it made the call?

What counts as seen: the goal, every message of the context up to the call (system, user,
environment) and the observations of earlier calls. Not the agent's own earlier arguments or
replies: a value the agent made up once does not become grounded by repeating it.

Precision comes first (a false flag costs an annotator's attention on every run), so:
* only values with a shape worth checking are looked for: identifiers (letters and digits
  together, five or more digits, an upper-case code of 5–12 characters, or any single token
  under a key named like an id: `*_id`, `code`, `number`, …), e-mail addresses, names under a key that says so, and
  numbers larger than 10 (small counts are often said in words);
* enum, const and default values of the schema, dates and free text are not checked;
* a number is grounded when it appears, when it is a small multiple or a sum of two numbers
  that observations gave (agents add up prices in their heads), or when the agent worked it
  out in the open, in a reply or a plan (a remainder it told the user);
* matching ignores case, and for identifiers also separators (``HAT-123`` = ``hat123``).

A value that is not grounded but sits beside an identifier that an earlier observation
describes, where that observation gives the same key another value, is reported as a
contradiction with both places; any other ungrounded value as ungrounded. Dates and short
strings are not checked for grounding by themselves, but a date or short string that appears
nowhere and contradicts such an observation is reported too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from verification.checks.base import HALLUCINATED_ARGUMENT, CallView, FindingData, ToolView, pointer_of, short

VERSION = "grounding-1"
_ID = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9][A-Za-z0-9_.:#/@+-]{2,}$")
_DIGITS = re.compile(r"^\d{5,}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$")
_NAME_VALUE = re.compile(r"^[A-Z][a-zA-Z'\-]+( [A-Z][a-zA-Z'\-]+){0,2}$")
_NAME_KEY = re.compile(r"name|email|city|country|surname", re.I)
_ID_KEY = re.compile(r"(^|_)(id|ids|code|number|ref|reference|sku|key)$", re.I)
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:#/@+-]{2,}$")
_CODE = re.compile(r"^[A-Z0-9]{5,12}$")
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\w])")
_SEPARATORS = re.compile(r"[\s_\-.:/#]+")
SMALL_NUMBER = 10
MAX_MULTIPLE = 9
MAX_NUMBERS = 20_000


@dataclass(slots=True)
class _Seen:
    """Everything the agent had seen so far, indexed for the lookups below."""

    text: list[str] = field(default_factory=list)
    squashed: list[str] = field(default_factory=list)
    numbers: set[float] = field(default_factory=set)
    observed_numbers: set[float] = field(default_factory=set)  # from tool observations only
    stated_numbers: set[float] = field(default_factory=set)  # worked out in the agent's own words
    objects: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # (step, pointer, object)
    _joined: str | None = None
    _joined_squashed: str | None = None

    def add(self, text: str, *, step: int | None = None) -> None:
        if not text:
            return
        lower = text.lower()
        self.text.append(lower)
        self.squashed.append(_SEPARATORS.sub("", lower))
        self._joined = self._joined_squashed = None
        if len(self.numbers) < MAX_NUMBERS:
            for match in _NUMBER.finditer(text):
                number = _to_number(match.group())
                if number is not None:
                    self.numbers.add(number)
                    if step is not None:
                        self.observed_numbers.add(number)
        if step is not None and text[:1] in "{[":
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                return
            for pointer, obj in _objects(parsed, []):
                self.objects.append((step, pointer, obj))

    def add_agent_text(self, text: str) -> None:
        """The agent's replies and plans: they ground no identifier, but arithmetic the agent did in
        the open (a total, a remainder) is where the numbers it then uses come from."""
        if text and len(self.stated_numbers) < MAX_NUMBERS:
            for match in _NUMBER.finditer(text):
                number = _to_number(match.group())
                if number is not None:
                    self.stated_numbers.add(number)

    @property
    def joined(self) -> str:
        if self._joined is None:
            self._joined = "\n".join(self.text)
        return self._joined

    @property
    def joined_squashed(self) -> str:
        if self._joined_squashed is None:
            self._joined_squashed = "\n".join(self.squashed)
        return self._joined_squashed

    def has_text(self, value: str) -> bool:
        lower = value.lower()
        if lower in self.joined:
            return True
        squashed = _SEPARATORS.sub("", lower)
        return len(squashed) >= 3 and squashed in self.joined_squashed

    def has_number(self, value: float) -> bool:
        if value in self.numbers or value in self.stated_numbers:
            return True
        observed = self.observed_numbers
        for seen in observed:
            if seen > SMALL_NUMBER:
                ratio = value / seen
                if ratio == int(ratio) and 1 < ratio <= MAX_MULTIPLE:
                    return True
                rest = value - seen
                if rest > SMALL_NUMBER and rest in observed:
                    return True
        return False


def _to_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _objects(value: Any, path: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        yield pointer_of(path), value
        for key, item in value.items():
            yield from _objects(item, [*path, key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _objects(item, [*path, i])


def _schema_constants(schema: Any, out: set[str]) -> set[str]:
    """enum / const / default / examples values anywhere in a schema, as canonical text."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("enum", "examples") and isinstance(value, list):
                out.update(_text(v) for v in value)
            elif key in ("const", "default"):
                out.add(_text(value))
            else:
                _schema_constants(value, out)
    elif isinstance(schema, list):
        for item in schema:
            _schema_constants(item, out)
    return out


def _text(value: Any) -> str:
    return value.lower() if isinstance(value, str) else orjson.dumps(value).decode()


def _leaves(
    value: Any, path: list[Any], parent: dict[str, Any] | None
) -> Iterator[tuple[list[Any], Any, dict[str, Any] | None]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, [*path, key], value)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, [*path, i], parent if not isinstance(item, dict) else None)
    else:
        yield path, value, parent


def worth_checking(key: str, value: Any) -> str:
    """'id', 'number', 'name' or '' (not checked)."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return "number" if abs(value) > SMALL_NUMBER else ""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if len(text) < 3 or len(text) > 120 or _DATE.match(text):
        return ""
    if _EMAIL.match(text):
        return "id"
    if _ID.match(text) or _DIGITS.match(text) or _CODE.match(text):
        return "id"
    if _ID_KEY.search(key) and _TOKEN.match(text):
        return "id"
    if _NAME_KEY.search(key) and _NAME_VALUE.match(text):
        return "name"
    return ""


def _comparable(value: Any) -> bool:
    """A value worth comparing with an earlier observation though not checked for grounding by itself."""
    if isinstance(value, str):
        text = value.strip()
        return 0 < len(text) <= 80 and len(text.split()) <= 4
    return False


def _is_anchor(value: Any) -> bool:
    return isinstance(value, str) and bool(_ID.match(value.strip()) or _EMAIL.match(value.strip()))


def _grounded(seen: _Seen, shape: str, value: Any) -> bool:
    if shape == "number":
        return seen.has_number(float(value)) or seen.has_text(_number_text(value))
    return seen.has_text(str(value).strip())


def _number_text(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number == int(number) else repr(number)


def _same(a: Any, b: Any) -> bool:
    if (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return float(a) == float(b)
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return a == b


def _contradiction(seen: _Seen, key: str, value: Any, parent: dict[str, Any] | None) -> dict[str, Any] | None:
    """An earlier observation object that shares an identifier with `parent` and gives `key` another value."""
    if parent is None:
        return None
    anchors = {(k, v.strip().lower()) for k, v in parent.items() if k != key and _is_anchor(v)}
    if not anchors:
        return None
    for step, pointer, obj in reversed(seen.objects):
        if key not in obj or isinstance(obj[key], dict | list):
            continue
        shared = [(k, v) for k, v in anchors if isinstance(obj.get(k), str) and obj[k].strip().lower() == v]
        if shared and not _same(obj[key], value):
            return {
                "step": step,
                "pointer": pointer_of([*filter(None, pointer.split("/")), key]) if pointer else "/" + key,
                "observed": obj[key],
                "anchor": {shared[0][0]: parent[shared[0][0]]},
            }
    return None


def grounding_check_run(
    *, goal: str, calls: list[CallView], tools: dict[str, ToolView] | None = None
) -> list[FindingData]:
    seen = _Seen()
    seen.add(goal)
    findings: list[FindingData] = []
    constants: dict[str, set[str]] = {}
    for call in calls:
        for message in call.state:
            content = message.get("content")
            seen.add(content if isinstance(content, str) else orjson.dumps(content).decode() if content else "")
        seen.add_agent_text(call.plan)
        if call.kind == "respond" and isinstance(call.arguments, dict):
            seen.add_agent_text(str(call.arguments.get("content") or ""))
        if call.kind == "tool_call" and isinstance(call.arguments, dict):
            tool = (tools or {}).get(call.tool_name)
            if call.tool_name not in constants:
                constants[call.tool_name] = _schema_constants(tool.parameters, set()) if tool else set()
            findings.extend(_check_call(seen, call, constants[call.tool_name]))
        if call.observation:
            seen.add(call.observation, step=call.index)
    return findings


def _check_call(seen: _Seen, call: CallView, constants: set[str]) -> Iterator[FindingData]:
    for path, value, parent in _leaves(call.arguments, [], None):
        key = str(next((p for p in reversed(path) if isinstance(p, str)), ""))
        if _text(value) in constants:
            continue
        shape = worth_checking(key, value)
        if shape and _grounded(seen, shape, value):
            continue
        if not shape and not (_comparable(value) and not seen.has_text(str(value).strip())):
            continue
        pointer = pointer_of(path)
        found = _contradiction(seen, key, value, parent)
        if found is None and not shape:
            continue  # a date or a short string: only reported when an observation says otherwise
        if found is not None:
            yield FindingData(
                code="contradicts_observation",
                step_index=call.index,
                failure_mode=HALLUCINATED_ARGUMENT,
                argument=str(path[0]),
                pointer=pointer,
                rule="a value must agree with what earlier observations said",
                value=value,
                message=(
                    f"{pointer} is {short(value)!s} but step {found['step'] + 1} observed "
                    f"{found['pointer']} = {short(found['observed'])!s} for {short(found['anchor'])}"
                ),
                evidence={"observed_at": found, "argument_at": {"step": call.index, "pointer": pointer}},
            )
        else:
            yield FindingData(
                code="ungrounded_value",
                step_index=call.index,
                failure_mode=HALLUCINATED_ARGUMENT,
                argument=str(path[0]),
                pointer=pointer,
                rule=f"a{'n' if shape == 'id' else ''} {shape} must appear in what the agent had seen",
                value=value,
                message=f"{pointer} = {short(value)!s} appears nowhere in the goal, the context or earlier observations",
                evidence={"shape": shape},
            )
