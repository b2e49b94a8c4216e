"""Rendering of untrusted trajectory content for the annotator's step view.

Observations are never turned into HTML here: each helper turns text into plain data (lines,
segments with CSS class names, tree tokens) that the templates render with Django's autoescape, so
HTML inside an observation always shows as text. The few builders of markup (the outline, the JSON tree,
the label chips: hundreds of small elements a page, where a template loop is slow) escape every value they
insert with `_esc`.
"""

from __future__ import annotations

import html
import re
from typing import Any

import orjson
from django import template
from django.utils.safestring import mark_safe


def _esc(value: Any) -> str:
    """HTML-escape (& < > \" '), as django.utils.html.escape does, without its lazy-string wrapper: the
    outline and the JSON tree call it thousands of times per page."""
    return html.escape(str(value), quote=True)


register = template.Library()

HEAD_LINES = 40
MAX_JSON_CHARS = 200_000
MAX_TREE_NODES = 1_500
MAX_RICH_LINES = 5_000  # beyond this, ANSI / diff / traceback text is shown plain
CSI = re.compile(r"\x1b\[([0-9;:?]*)([@-~])")
OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
OTHER_ESC = re.compile(r"\x1b[@-Z\\-_]")
FRAME = re.compile(r'^\s+File "[^"]*", line \d+')
ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt|Fault)\b.*")
DIFF_START = re.compile(r"^(?:diff --git |--- \S|\+\+\+ \S|@@ -\d)", re.M)

Segments = list[tuple[str, str]]


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


@register.filter
def json_compact(value: Any) -> str:
    """A JSON value as JSON text (strings quoted), for argument values."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 if isinstance(value, dict | list) else 0).decode()
    except TypeError:
        return str(value)


@register.filter
def corrected_text(value: Any) -> str:
    """A corrected argument value as the annotator typed it: strings bare, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _json_text(value)


@register.filter
def schema_type(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind:
        return str(kind)
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list):
            return " | ".join(str(o.get("type", "…")) for o in options if isinstance(o, dict))
    return "any"


@register.filter
def schema_rules(schema: Any) -> list[str]:
    """Short descriptions of the constraints beside the type (format, pattern, bounds…)."""
    if not isinstance(schema, dict):
        return []
    out = []
    for key in ("format", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
        if key in schema:
            out.append(f"{key} {schema[key]}")
    if "default" in schema:
        out.append(f"default {_json_text(schema['default'])}")
    return out


@register.filter
def enum_values(schema: Any) -> list[str]:
    if not isinstance(schema, dict) or not isinstance(schema.get("enum"), list):
        return []
    return [v if isinstance(v, str) else _json_text(v) for v in schema["enum"]]


@register.filter
def duration_ms(value: Any) -> str:
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return "—"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# --- observations ------------------------------------------------------------------------------------


def _tree_tokens(value: Any) -> list[dict[str, Any]] | None:
    """Flat open / leaf / close tokens of a JSON value (None when it is too big for a tree)."""
    tokens: list[dict[str, Any]] = []
    budget = [MAX_TREE_NODES]
    small = True

    def walk(key: str, path: str, node: Any, depth: int) -> bool:
        budget[0] -= 1
        if budget[0] < 0:
            return False
        if isinstance(node, dict | list):
            items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            brackets = ("{", "}") if isinstance(node, dict) else ("[", "]")
            noun = "key" if isinstance(node, dict) else "item"
            summary = f"{brackets[0]}{len(items)} {noun}{'' if len(items) == 1 else 's'}{brackets[1]}"
            if not items:
                tokens.append(
                    {"t": "leaf", "key": key, "path": path or "/", "value": brackets[0] + brackets[1], "cls": "empty"}
                )
                return True
            tokens.append(
                {
                    "t": "open",
                    "key": key,
                    "path": path or "/",
                    "summary": summary,
                    "open": depth < 1 or (depth < 2 and small),
                }
            )
            for k, child in items:
                name = str(k)
                escaped = name.replace("~", "~0").replace("/", "~1")
                if not walk(name, f"{path}/{escaped}", child, depth + 1):
                    return False
            tokens.append({"t": "close"})
            return True
        if isinstance(node, str):
            cls = "str"
        elif isinstance(node, bool) or node is None:
            cls = "lit"
        else:
            cls = "num"
        tokens.append({"t": "leaf", "key": key, "path": path or "/", "value": _json_text(node), "cls": cls})
        return True

    small = _count(value, 200) <= 200
    if not walk("", "", value, 0):
        return None
    return tokens


def _key_html(n: dict[str, Any]) -> str:
    if not n["key"]:
        return ""
    # The hint "click a key to copy its path" is said once, above the tree, not in a title on every key.
    return f'<span class="jk" data-path="{_esc(n["path"])}">{_esc(n["key"])}</span> '


def tree_html(tokens: list[dict[str, Any]]) -> str:
    """The JSON tree as nested <details>, built in Python: every key, path and value from the observation
    is escaped here (a template loop over thousands of tokens costs tens of milliseconds)."""
    out: list[str] = []
    for n in tokens:
        if n["t"] == "open":
            opened = " open" if n["open"] else ""
            out.append(
                f'<details class="jn"{opened}><summary>{_key_html(n)}<span class="jsum">{_esc(n["summary"])}</span>'
                '</summary><div class="jc">'
            )
        elif n["t"] == "leaf":
            out.append(f'<div class="jl">{_key_html(n)}<span class="jv jv-{n["cls"]}">{_esc(n["value"])}</span></div>')
        else:
            out.append("</div></details>")
    return mark_safe("".join(out))  # noqa: S308 - every value escaped above


def _count(value: Any, cap: int) -> int:
    n = 0
    stack = [value]
    while stack and n <= cap:
        node = stack.pop()
        n += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return n


def _sgr(params: str, state: dict[str, str]) -> None:
    codes = [int(p) if p.isdigit() else 0 for p in params.replace(":", ";").split(";")] if params else [0]
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            state.clear()
        elif code == 1:
            state["b"] = "ansi-bold"
        elif code == 2:
            state["b"] = "ansi-dim"
        elif code == 3:
            state["i"] = "ansi-italic"
        elif code == 4:
            state["u"] = "ansi-underline"
        elif code == 22:
            state.pop("b", None)
        elif code == 23:
            state.pop("i", None)
        elif code == 24:
            state.pop("u", None)
        elif 30 <= code <= 37:
            state["fg"] = f"ansi-fg-{code - 30}"
        elif 90 <= code <= 97:
            state["fg"] = f"ansi-fg-{code - 90 + 8}"
        elif code == 39:
            state.pop("fg", None)
        elif 40 <= code <= 47:
            state["bg"] = f"ansi-bg-{code - 40}"
        elif 100 <= code <= 107:
            state["bg"] = f"ansi-bg-{code - 100 + 8}"
        elif code == 49:
            state.pop("bg", None)
        elif code in (38, 48):  # 256-colour and true colour: skip their parameters
            if i + 1 < len(codes) and codes[i + 1] == 5:
                i += 2
            elif i + 1 < len(codes) and codes[i + 1] == 2:
                i += 4
        i += 1


def ansi_lines(text: str) -> list[Segments]:
    """Text with ANSI escape codes as lines of (css classes, text) segments; other escapes dropped."""
    text = OSC.sub("", text)
    state: dict[str, str] = {}
    lines: list[Segments] = []
    current: Segments = []
    pos = 0

    def emit(chunk: str) -> None:
        nonlocal current
        chunk = OTHER_ESC.sub("", chunk).replace("\r\n", "\n")
        cls = " ".join(state[k] for k in sorted(state))
        parts = chunk.split("\n")
        for n, part in enumerate(parts):
            if n:
                lines.append(current)
                current = []
            if part:
                current.append((cls, part))

    for match in CSI.finditer(text):
        emit(text[pos : match.start()])
        if match.group(2) == "m":
            _sgr(match.group(1), state)
        pos = match.end()
    emit(text[pos:])
    lines.append(current)
    return lines


def _diff_class(line: str) -> str:
    if line.startswith(("+++", "---", "diff ", "index ", "new file", "deleted file")):
        return "diff-meta"
    if line.startswith("@@"):
        return "diff-hunk"
    if line.startswith("+"):
        return "diff-add"
    if line.startswith("-"):
        return "diff-del"
    return "diff-ctx"


def _traceback_classes(lines: list[str]) -> list[str]:
    classes = []
    in_trace = False
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            in_trace = True
            classes.append("tb-head")
        elif in_trace and FRAME.match(line):
            classes.append("tb-frame")
        elif in_trace and ERROR_LINE.match(line):
            classes.append("tb-error")
            in_trace = False
        elif in_trace and line.startswith("    "):
            classes.append("tb-code")
        else:
            classes.append("")
    return classes


def _is_diff(text: str) -> bool:
    starts = {m.group(0)[:3] for m in DIFF_START.finditer(text[:20_000])}
    return "@@ " in starts or ("---" in starts and "+++" in starts) or "dif" in starts


def _split(rows: list[Any], head: int) -> tuple[list[Any], list[Any]]:
    # Do not hide a tail of a few lines behind a "show all".
    if len(rows) <= head + 5:
        return rows, []
    return rows[:head], rows[head:]


@register.simple_tag
def observation_view(text: str | None, head_lines: int = HEAD_LINES) -> dict[str, Any]:
    """How to show an observation: a JSON tree, coloured lines (ANSI, diff, traceback) or plain text.

    Long content is split into a head and the rest, shown behind "show all N lines".
    """
    if text is None:
        return {"kind": "none"}
    stripped = text.lstrip()[:1]
    if stripped in ("{", "[") and len(text) <= MAX_JSON_CHARS:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        else:
            tokens = _tree_tokens(value)
            pretty = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
            total = pretty.count("\n") + 1
            if tokens is not None:
                return {"kind": "json", "tree": tree_html(tokens), "total": total, "chars": len(text)}
            head, rest = _split(pretty.split("\n"), head_lines)
            return {
                "kind": "text",
                "label": "JSON",
                "head": "\n".join(head),
                "rest": "\n".join(rest),
                "total": total,
                "chars": len(text),
            }
    lines = text.split("\n")
    total = len(lines)
    if total <= MAX_RICH_LINES:
        rich: list[tuple[str, Segments]] | None = None
        label = ""
        if "\x1b" in text:
            rich = [("", segments) for segments in ansi_lines(text)]
            label = "ANSI"
        elif _is_diff(text):
            rich = [(_diff_class(line), [("", line)]) for line in lines]
            label = "diff"
        elif "Traceback (most recent call last)" in text:
            rich = [(cls, [("", line)]) for cls, line in zip(_traceback_classes(lines), lines, strict=True)]
            label = "traceback"
        if rich is not None:
            head_rows, rest_rows = _split(rich, head_lines)
            return {
                "kind": "lines",
                "label": label,
                "head": head_rows,
                "rest": rest_rows,
                "total": len(rich),
                "chars": len(text),
            }
    head, rest = _split(lines, head_lines)
    return {
        "kind": "text",
        "label": "",
        "head": "\n".join(head),
        "rest": "\n".join(rest),
        "total": total,
        "chars": len(text),
    }


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


def outline_line(item: Any, current: str, *, oob: bool = False) -> str:
    """One outline line, kept short (a 300-step outline is most of the page): the status is a one-letter
    class (u untouched, d draft, c complete; f flagged) that the stylesheet turns into the icon, the step's
    number is the list's own (a CSS counter: the outline lists every step in order), and the link
    is relative to the step page (`../12/`), so no long URL repeats. Only the tool name and the missing
    argument names come from the trajectory: they are escaped; the rest is ours. The list around it is
    hx-boosted (target, swap and URL push inherited)."""
    here = item.idx == current
    classes = item.letter + (" f" if item.flagged else "") + (" current" if here else "")
    title = f' title="missing: {_esc("; ".join(item.missing))}"' if item.status == "draft" else ""
    swap = ' hx-swap-oob="true"' if oob else ""
    mark = ' aria-current="step"' if here else ""
    return (
        f'<li id="outline-{item.idx}" class="{classes}"{swap}><a href="../{item.idx}/"{mark}{title}>'
        f"{_esc(item.name)}</a></li>"
    )


@register.simple_tag
def outline_items(items: list[Any], current: str) -> str:
    """The outline's lines, built in Python (a template include per line costs tens of milliseconds on a
    300-step run; this costs about one)."""
    return mark_safe("\n".join(outline_line(item, current) for item in items))  # noqa: S308 - escaped in outline_line


@register.simple_tag
def outline_item_oob(item: Any, current: str) -> str:
    return mark_safe(outline_line(item, current, oob=True))  # noqa: S308 - escaped in outline_line


@register.simple_tag
def rubric_chips(axis: Any) -> str:
    """The five score chips of a rubric axis (the axis key and label are the project's: escaped)."""
    key, label = _esc(axis.key), _esc(axis.label)
    score = str(axis.score)
    return mark_safe(  # noqa: S308 - escaped above
        "".join(
            f'<label class="chip num"><input type="radio" name="rubric-{key}" value="{n}" data-group="rubric"'
            f'{" checked" if score == n else ""} aria-label="{label}: {n}"><span>{n}</span></label>'
            for n in "12345"
        )
    )


@register.simple_tag
def failure_mode_chips(taxonomy: list[dict[str, Any]], label: Any) -> str:
    """A checkbox chip per failure mode of the project's taxonomy, checked as in the label (keys and labels
    are the project's: escaped)."""
    chosen = set(label.failure_modes) if label is not None and isinstance(label.failure_modes, list) else set()
    out = []
    for t in taxonomy:
        key, name = _esc(t.get("key", "")), _esc(t.get("label", ""))
        high = " high" if t.get("severity") == "high" else ""
        checked = " checked" if t.get("key") in chosen else ""
        out.append(
            f'<label class="chip tag{high}"><input type="checkbox" name="failure_modes" value="{key}" '
            f'data-group="failure_modes" data-mode="{key}"{checked} aria-label="Failure mode: {name}">'
            f"<span>{name}</span></label>"
        )
    return mark_safe("".join(out))  # noqa: S308 - escaped above
