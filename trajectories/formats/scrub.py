"""Secrets out of metadata before anything is stored (OpenHands `llm_config`, headers, …).

A value is scrubbed when its key names a secret (api_key, token, password, authorization, …)
or when the string itself looks like a credential (sk-…, ghp_…, AKIA…, xox?-…, "Bearer …").
Scrubbed values become "[scrubbed]"; the caller learns where (JSON pointers) and the values,
so that the same strings can be taken out of the stored original bytes too.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

SCRUBBED = "[scrubbed]"
_SECRET_KEY = re.compile(
    r"(api[_-]?key|apikey|access[_-]?key|secret|password|passwd|token|authori[sz]ation|cookie|credential|private[_-]?key|session[_-]?id)",
    re.IGNORECASE,
)
_HARMLESS_KEY = re.compile(
    r"(max|num|total|prompt|completion|input|output|reasoning|cached)_?tokens?$|token_?(count|usage|limit)s?$",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_\-]{16,}|sk-ant-[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{30,}|hf_[A-Za-z0-9]{30,}"
    r"|Bearer\s+\S{12,}|Basic\s+[A-Za-z0-9+/=]{12,})$"
)

_SHORTEST_SECRET = 15  # no shorter string matches _SECRET_VALUE (xox?- and 10 more is its shortest)


@dataclass
class Scrubbed:
    where: dict[str, int] = field(default_factory=dict)  # JSON pointer → 1
    values: set[str] = field(default_factory=set)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def scrub(value: Any, *, pointer: str = "", found: Scrubbed | None = None) -> tuple[Any, Scrubbed]:
    """`value` with secrets replaced, and what was replaced. The input is not modified: where it holds
    no secret (the usual case, found by a walk that builds nothing), it is what comes back."""
    found = found if found is not None else Scrubbed()
    if not _holds_secret(value, secret_key=False):
        return value, found
    return _scrub(value, pointer, found, secret_key=False), found


@functools.lru_cache(maxsize=4096)
def _names_secret(key: str) -> bool:
    """Does a key name a secret? (Keys repeat from record to record: each is looked at once.)"""
    return bool(_SECRET_KEY.search(key)) and not _HARMLESS_KEY.search(key)


def _is_secret(value: str, *, secret_key: bool) -> bool:
    if not value or value == SCRUBBED:
        return False
    if secret_key and len(value) >= 4:
        return True
    if len(value) < _SHORTEST_SECRET:
        return False
    padded = value[0].isspace() or value[-1].isspace()
    return bool(_SECRET_VALUE.match(value.strip() if padded else value))


def _holds_secret(value: Any, *, secret_key: bool) -> bool:
    if isinstance(value, str):
        return _is_secret(value, secret_key=secret_key)
    if isinstance(value, dict):
        return any(_holds_secret(item, secret_key=_names_secret(str(key))) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_secret(item, secret_key=secret_key) for item in value)
    return False


def _scrub(value: Any, pointer: str, found: Scrubbed, *, secret_key: bool) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key] = _scrub(item, f"{pointer}/{_escape(str(key))}", found, secret_key=_names_secret(str(key)))
        return out
    if isinstance(value, list):
        return [_scrub(item, f"{pointer}/{i}", found, secret_key=secret_key) for i, item in enumerate(value)]
    if isinstance(value, str) and _is_secret(value, secret_key=secret_key):
        found.where[pointer or "/"] = 1
        found.values.add(value)
        return SCRUBBED
    return value
