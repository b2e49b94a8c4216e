"""Display helpers for untrusted trajectory content. Everything returned is escaped by templates."""

from typing import Any

import orjson
from django import template

register = template.Library()
HEAD_LINES = 40
MAX_CHARS_PRETTY = 200_000


@register.filter
def pretty_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


@register.simple_tag
def text_view(text: str | None, head_lines: int = HEAD_LINES) -> dict[str, Any]:
    """Split long text into a head shown at once and the rest behind "show all N lines".

    JSON text is pretty-printed first, so a one-line blob becomes readable.
    """
    if text is None:
        return {"none": True}
    shown = text
    is_json = False
    stripped = text.lstrip()[:1]
    if stripped in ("{", "[") and len(text) <= MAX_CHARS_PRETTY:
        try:
            shown = orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
            is_json = True
        except orjson.JSONDecodeError:
            shown = text
    lines = shown.split("\n")
    return {
        "none": False,
        "is_json": is_json,
        "head": "\n".join(lines[:head_lines]),
        "rest": "\n".join(lines[head_lines:]),
        "total": len(lines),
        "chars": len(text),
    }
