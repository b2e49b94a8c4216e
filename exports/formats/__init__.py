"""Dataset formats out, one module each, registered in FORMATS."""

from __future__ import annotations

from exports.formats.base import Exporter
from exports.formats.openai_sft import OpenAISftExporter

FORMATS: dict[str, type[Exporter]] = {cls.name: cls for cls in (OpenAISftExporter,)}
