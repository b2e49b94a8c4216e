"""Importers, one module per format, registered in one table.

To add a format: write a module with a class that satisfies `base.Importer`, and add an
instance to IMPORTERS. Detection asks each importer how sure it is about the file's head.
"""

from __future__ import annotations

from trajectories.formats.base import Importer, ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.mini_swe_agent import MiniSweAgentImporter
from trajectories.formats.openai_chat import OpenAIChatImporter
from trajectories.formats.openhands import OpenHandsImporter
from trajectories.formats.otel_genai import OtelGenAIImporter
from trajectories.formats.sharegpt import ShareGPTImporter
from trajectories.formats.stepwise import StepwiseImporter
from trajectories.formats.swe_agent import SweAgentImporter
from trajectories.formats.tau2_bench import Tau2BenchImporter
from trajectories.formats.tau_bench import TauBenchImporter
from trajectories.formats.toolbench import ToolBenchImporter

_ALL: tuple[Importer, ...] = (
    StepwiseImporter(),
    OpenAIChatImporter(),
    TauBenchImporter(),
    Tau2BenchImporter(),
    OpenHandsImporter(),
    ToolBenchImporter(),
    SweAgentImporter(),
    MiniSweAgentImporter(),
    ShareGPTImporter(),
    OtelGenAIImporter(),
)
IMPORTERS: dict[str, Importer] = {importer.name: importer for importer in _ALL}


def importer_get(name: str) -> Importer:
    try:
        return IMPORTERS[name]
    except KeyError:
        raise RecordError(f"unknown format {name!r}; known: {', '.join(sorted(IMPORTERS))}") from None


def importer_detect(head: bytes) -> Importer:
    """The importer most sure of the file's format; RecordError when none is."""
    if not head.strip():
        raise RecordError("the file is empty", where="line 1", line=1)
    scored = sorted(((imp.detect(head), imp.name) for imp in IMPORTERS.values()), reverse=True)
    score, name = scored[0]
    if score <= 0:
        raise RecordError(
            f"could not tell the file's format; choose one of: {', '.join(sorted(IMPORTERS))}", where="line 1", line=1
        )
    return IMPORTERS[name]


__all__ = [
    "IMPORTERS",
    "Importer",
    "ParsedRun",
    "RawRecord",
    "RecordError",
    "RunStep",
    "importer_detect",
    "importer_get",
]
