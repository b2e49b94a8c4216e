"""Comparing a replayed observation with the recorded one: bytes first, then structure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from verification.checks.base import pointer_of

MAX_DIFFS = 50
_MISSING = object()


@dataclass(slots=True)
class Comparison:
    same: bool
    how: str  # "bytes" | "structure" | "text" | "differs"
    diff: list[dict[str, Any]] = field(default_factory=list)


def _parse(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _MISSING


def _volatile(path: list[Any], volatile: frozenset[str]) -> bool:
    if not volatile:
        return False
    if path and str(path[-1]) in volatile:
        return True
    return pointer_of(path) in volatile


def json_diff(a: Any, b: Any, *, volatile: Iterable[str] = (), limit: int = MAX_DIFFS) -> list[dict[str, Any]]:
    """Where `a` and `b` differ, as [{pointer, recorded, replayed}] (at most `limit`), skipping volatile paths.

    A volatile entry is a key name (ignored at any depth) or a JSON pointer ("/booking/created_at")."""
    out: list[dict[str, Any]] = []
    for item in _walk(a, b, [], frozenset(volatile)):
        out.append(item)
        if len(out) >= limit:
            break
    return out


def _walk(a: Any, b: Any, path: list[Any], volatile: frozenset[str]) -> Iterator[dict[str, Any]]:
    if _volatile(path, volatile):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            yield from _walk(a.get(key, _MISSING), b.get(key, _MISSING), [*path, key], volatile)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            yield from _walk(a[i] if i < len(a) else _MISSING, b[i] if i < len(b) else _MISSING, [*path, i], volatile)
        return
    if a is _MISSING or b is _MISSING or type(a) is not type(b) or a != b:
        if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) and a == b:
            return
        yield {
            "pointer": pointer_of(path),
            "recorded": None if a is _MISSING else a,
            "replayed": None if b is _MISSING else b,
            **({"only_in": "replayed"} if a is _MISSING else {"only_in": "recorded"} if b is _MISSING else {}),
        }


def compare_observations(recorded: str | None, replayed: str, *, volatile: Iterable[str] = ()) -> Comparison:
    if recorded is None:
        return Comparison(False, "differs", [{"pointer": "", "recorded": None, "replayed": replayed[:2000]}])
    if recorded == replayed:
        return Comparison(True, "bytes")
    a, b = _parse(recorded), _parse(replayed)
    if a is not _MISSING and b is not _MISSING:
        diff = json_diff(a, b, volatile=volatile)
        return Comparison(not diff, "structure" if not diff else "differs", diff)
    if " ".join(recorded.split()) == " ".join(replayed.split()):
        return Comparison(True, "text")
    return Comparison(False, "differs", [{"pointer": "", "recorded": recorded[:2000], "replayed": replayed[:2000]}])
