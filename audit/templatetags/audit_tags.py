"""Small filters of the audit pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from audit.selectors import field_label as _field_label

register = template.Library()


@register.filter
def field_label(key: str) -> str:
    return _field_label(key)


@register.filter
def label_value(value: Any) -> str:
    """A label value as an annotator would say it: +1 for a reward, yes / no, tags joined, JSON otherwise."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "∅"
    if isinstance(value, int | str):
        return str(value)
    return orjson.dumps(value).decode()


@register.filter
def age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


@register.filter
def split(value: str) -> list[str]:
    return value.split()


@register.filter
def heat(value: Any) -> str:
    """A heat-map class for a κ: h0 below 0.2 … h4 at 0.8 and above; hn without a value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "hn"
    return f"h{min(4, max(0, int(value * 5)))}"


@register.simple_tag
def line_chart(points: list[Any], target: float | None = None, threshold: float | None = None) -> str:
    """An SVG line of (time, value) points on a −0.2 … 1 scale, with the target and threshold lines."""
    width, height, pad = 560, 160, 28
    values = [(i, v) for i, (_, v) in enumerate(points) if v is not None]

    def y(v: float) -> float:
        return height - pad - (max(-0.2, min(1.0, v)) + 0.2) / 1.2 * (height - 2 * pad)

    def x(i: int) -> float:
        return pad + (i / max(1, len(points) - 1)) * (width - 2 * pad)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="Agreement over time">']
    parts.append(f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}"/>')
    for level in (0.0, 0.5, 1.0):
        parts.append(f'<text x="2" y="{y(level) + 4:.1f}">{level:.1f}</text>')
    for cls, mark in (("target", target), ("threshold", threshold)):
        if mark is not None:
            parts.append(f'<line class="{cls}" x1="{pad}" y1="{y(mark):.1f}" x2="{width - pad}" y2="{y(mark):.1f}"/>')
    if values:
        path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in values)
        parts.append(f'<polyline class="line" points="{path}"/>')
        for i, v in values:
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5"><title>{v:.3f}</title></circle>')
    else:
        parts.append(f'<text x="{width / 2 - 40}" y="{height / 2}">no figure yet</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers only; no text from users)


@register.simple_tag
def bar_chart(bars: list[tuple[str, int]]) -> str:
    """An SVG bar per (label, count) — labels are dates the code made."""
    width, height, pad = 560, 140, 22
    top = max([n for _, n in bars] or [0]) or 1
    step = (width - 2 * pad) / max(1, len(bars))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="Submissions per day">']
    for i, (label, n) in enumerate(bars):
        h = (height - 2 * pad) * n / top
        bx = pad + i * step
        parts.append(
            f'<rect class="bar" x="{bx + 2:.1f}" y="{height - pad - h:.1f}" width="{step - 4:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {n}</title></rect>"
        )
        parts.append(f'<text x="{bx + 2:.1f}" y="{height - 6}">{escape(label[-2:])}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (escaped)


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def zip_labels(values: list[int], labels: list[str]) -> list[tuple[str, int]]:
    """(label, value) pairs for bar_chart."""
    return list(zip(labels, values, strict=False))
