"""Dataset formats out, one module each, registered in FORMATS."""

from __future__ import annotations

from exports.formats.base import Exporter
from exports.formats.llamafactory_dpo import LlamaFactoryDpoExporter
from exports.formats.openai_sft import OpenAISftExporter
from exports.formats.sharegpt import ShareGptExporter
from exports.formats.stepwise_full import StepwiseFullExporter
from exports.formats.trl_dpo import TrlDpoExporter
from exports.formats.trl_prm import TrlPrmExporter

FORMATS: dict[str, type[Exporter]] = {
    cls.name: cls
    for cls in (
        StepwiseFullExporter,
        OpenAISftExporter,
        ShareGptExporter,
        TrlPrmExporter,
        TrlDpoExporter,
        LlamaFactoryDpoExporter,
    )
}
