"""Benchmark corpora in the real harness formats, scaled up from the structure of the real samples.

The samples are read at run time from ../shared/samples (never copied into the project); each
is replicated with a small change per replica (a trial number, a thought, an instance id) so
that every trajectory is distinct and none is skipped as a duplicate. The expected step count
is what the registered importer makes of one replica, times the number of replicas.
"""

from __future__ import annotations

import copy
import io
import math
import zipfile
from pathlib import Path
from typing import Any

import orjson

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


def _importer(name: str):
    from trajectories.formats import IMPORTERS

    if name not in IMPORTERS:
        raise SystemExit(f"no importer named {name!r} is registered (known: {', '.join(sorted(IMPORTERS))})")
    return IMPORTERS[name]


def _steps_in(name: str, data: bytes) -> tuple[int, int]:
    """(steps, trajectories) the importer `name` makes of `data` (no database involved)."""
    importer = _importer(name)
    steps = runs = 0
    for record in importer.records(io.BytesIO(data)):
        if hasattr(record, "message") and not hasattr(record, "raw"):
            raise SystemExit(f"the {name} importer rejects the benchmark's own corpus: {record}")
        run = importer.parse(record)
        steps += len(run.steps)
        runs += 1
    return steps, runs


def _sample(name: str) -> Any:
    path = SAMPLES / name
    if not path.is_file():
        raise SystemExit(f"the real sample {path} is missing (it lives beside the checkout as shared/samples)")
    return orjson.loads(path.read_bytes())


def tau_bench(path: Path, min_steps: int) -> dict[str, int]:
    """A τ-bench results JSON array: the 16 real records, replicated with new trial numbers."""
    records = _sample("tau-bench_gpt-4o-airline_excerpt.json")
    unit_steps, unit_runs = _steps_in("tau_bench", orjson.dumps(records))
    replicas = math.ceil(min_steps / unit_steps)
    with path.open("wb") as out:
        out.write(b"[\n")
        for r in range(replicas):
            for i, record in enumerate(records):
                out.write(orjson.dumps({**record, "trial": r * 1000 + record["trial"]}))
                out.write(b"\n]\n" if r == replicas - 1 and i == len(records) - 1 else b",\n")
    return {"steps": unit_steps * replicas, "trajectories": unit_runs * replicas, "bytes": path.stat().st_size}


def swe_agent(path: Path, min_steps: int) -> dict[str, int]:
    """A zip of SWE-agent .traj files (a results directory): the real run, one thought changed per file."""
    traj = _sample("swe-agent_pydicom__pydicom-1458.traj")
    unit_steps, unit_runs = _steps_in("swe_agent", orjson.dumps(traj))
    replicas = math.ceil(min_steps / unit_steps)
    plain = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for r in range(replicas):
            replica = copy.deepcopy(traj)
            replica["trajectory"][0]["thought"] += f" (replica {r})"
            data = orjson.dumps(replica)
            plain += len(data)
            archive.writestr(f"results/pydicom__pydicom-1458.{r:05d}.traj", data)
    return {
        "steps": unit_steps * replicas,
        "trajectories": unit_runs * replicas,
        "bytes": path.stat().st_size,
        "plain_bytes": plain,
    }


def openhands(path: Path, min_steps: int, *, repeat: int = 10) -> dict[str, int]:
    """An OpenHands evaluation output.jsonl: each line's history is the real export's events
    played `repeat` times (ids and causes shifted), one instance id per line."""
    events = _sample("openhands_trajectory_wrong_initial_state.json")
    history = []
    for k in range(repeat):
        for event in events:
            if k and event.get("source") == "user":
                continue
            shifted = dict(event, id=event["id"] + 1000 * k)
            if "cause" in shifted and shifted["cause"] is not None:
                shifted["cause"] += 1000 * k
            history.append(shifted)
    instruction = next(e["message"] for e in events if e.get("source") == "user")

    def line(r: int) -> bytes:
        return orjson.dumps(
            {
                "instance_id": f"bench__rename-{r}",
                "instruction": instruction,
                "instance": {"instance_id": f"bench__rename-{r}", "problem_statement": instruction},
                "test_result": {"git_patch": "", "report": {"resolved": r % 3 != 0}},
                "metadata": {"agent_class": "CodeActAgent", "llm_config": {"model": "claude-3-5-sonnet-20241022"}},
                "history": history,
                "metrics": {},
                "error": None,
            }
        )

    unit_steps, unit_runs = _steps_in("openhands", line(0) + b"\n")
    replicas = math.ceil(min_steps / unit_steps)
    with path.open("wb") as out:
        for r in range(replicas):
            out.write(line(r) + b"\n")
    return {"steps": unit_steps * replicas, "trajectories": unit_runs * replicas, "bytes": path.stat().st_size}


CORPORA = {"tau_bench": (tau_bench, "json"), "swe_agent": (swe_agent, "zip"), "openhands": (openhands, "jsonl")}
