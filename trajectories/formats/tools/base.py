"""What every tool-spec parser produces, and small helpers they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from trajectories.formats.base import RecordError

SIDE_EFFECT_VALUES = ("none", "read", "write", "destructive")


def empty_object_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


@dataclass(slots=True)
class ToolSpec:
    """One tool as the registry stores it, plus where it came from in the document."""

    name: str
    description: str = ""
    parameters: Any = field(default_factory=empty_object_schema)
    returns: Any = None
    side_effects: str = "read"
    latency_p99_ms: Any = None
    pointer: str = ""  # JSON pointer of the tool in the document
    parameters_pointer: str = ""  # where its parameters schema is, when it is one place in the document
    returns_pointer: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "returns": self.returns,
            "side_effects": self.side_effects,
            "latency_p99_ms": self.latency_p99_ms,
        }


class ToolFormat(Protocol):
    name: str
    label: str

    def detect(self, document: Any) -> int:
        """How sure (0–100) the parser is that the parsed document is its format."""
        ...

    def parse(self, document: Any) -> list[ToolSpec]:
        """The document's tools, in document order; RecordError (with a JSON pointer) when it cannot."""
        ...


def escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer_join(base: str, *parts: str | int) -> str:
    """`base` extended by `parts`, each escaped as RFC 6901 asks."""
    return base + "".join("/" + escape(p) for p in parts)


def located(message: str, pointer: str) -> RecordError:
    return RecordError(message, pointer=pointer or "/", where="document")


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


def metadata_of(*sources: Any) -> dict[str, Any]:
    """The registry's own per-tool keys (side effects, latency p99, returns) from the first source that has them.

    Accepted spellings: `side_effects` / `x-side-effects`, `latency_p99_ms` / `x-latency-p99-ms`, `returns`.
    """
    found: dict[str, Any] = {}
    for source in sources:
        if not isinstance(source, dict):
            continue
        for key, names in (
            ("side_effects", ("side_effects", "x-side-effects")),
            ("latency_p99_ms", ("latency_p99_ms", "x-latency-p99-ms")),
            ("returns", ("returns",)),
        ):
            if key in found:
                continue
            for candidate in names:
                if candidate in source:
                    found[key] = source[candidate]
                    break
    return found
