"""Secrets out of metadata before anything is stored (OpenHands `llm_config`, headers, …).

A value is scrubbed when its key names a secret (api_key, token, password, authorization, …)
or when the string itself looks like a credential (sk-…, ghp_…, AKIA…, xox?-…, "Bearer …").
Scrubbed values become "[scrubbed]"; the caller learns where (JSON pointers) and the values,
so that the same strings can be taken out of the stored original bytes too.
"""

from __future__ import annotations

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


@dataclass
class Scrubbed:
    where: dict[str, int] = field(default_factory=dict)  # JSON pointer → 1
    values: set[str] = field(default_factory=set)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def scrub(value: Any, *, pointer: str = "", found: Scrubbed | None = None) -> tuple[Any, Scrubbed]:
    """`value` with secrets replaced, and what was replaced. The input is not modified."""
    found = found if found is not None else Scrubbed()
    return _scrub(value, pointer, found, secret_key=False), found


def _scrub(value: Any, pointer: str, found: Scrubbed, *, secret_key: bool) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            named = bool(_SECRET_KEY.search(str(key))) and not _HARMLESS_KEY.search(str(key))
            out[key] = _scrub(item, f"{pointer}/{_escape(str(key))}", found, secret_key=named)
        return out
    if isinstance(value, list):
        return [_scrub(item, f"{pointer}/{i}", found, secret_key=secret_key) for i, item in enumerate(value)]
    if (
        isinstance(value, str)
        and value
        and value != SCRUBBED
        and ((secret_key and len(value) >= 4) or _SECRET_VALUE.match(value.strip()))
    ):
        found.where[pointer or "/"] = 1
        found.values.add(value)
        return SCRUBBED
    return value
