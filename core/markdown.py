"""Markdown from people (project guidelines) as HTML that is safe to put in a page.

CommonMark (markdown-it-py) with raw HTML off — any tag in the text is shown as text, never passed
through — plus tables and strikethrough. Links and images keep only http(s), mailto and relative
targets (markdown-it already refuses javascript:, vbscript:, file: and data: URLs, see its
validateLink); links open with rel="noopener noreferrer nofollow". Images are shown as their alt text
and address, not loaded: the strict CSP would block other origins anyway, and guidelines need none.
"""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

_SAFE_SCHEMES = ("http://", "https://", "mailto:")


def _safe_target(url: str) -> bool:
    lowered = url.strip().lower()
    return lowered.startswith(_SAFE_SCHEMES) or ":" not in lowered.split("/", 1)[0]


def _link_open(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    if not _safe_target(href):
        token.attrSet("href", "#")
    token.attrSet("rel", "noopener noreferrer nofollow")
    return self.renderToken(tokens, idx, options, env)


def _image(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env)
    src = str(token.attrGet("src") or "")
    return f'<span class="md-image">[image: {escape(alt)}{" · " + escape(src) if src else ""}]</span>'


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    return md


_MD = _parser()


def render_markdown(text: str) -> SafeString:
    """The text as sanitised HTML (see the module docstring)."""
    return mark_safe(_MD.render(text or ""))  # noqa: S308 - raw HTML is off; every text node is escaped
