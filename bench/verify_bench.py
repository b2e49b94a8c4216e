"""Verification benchmark (BENCH.md): schema-check throughput per worker process, and verification power.

    .venv/bin/python bench/verify_bench.py [--repeats 5] [--trials 200] [--db-url URL | --no-db]

1. Throughput of schema checks in one process.
   a. In memory: the demo's tool calls (the airline desk's real schemas) repeated to ≥ 50,000
      calls, checked by `SchemaChecker` (pointer, rule, value per finding); baseline in the same
      run: the same compiled jsonschema validators' bare `is_valid` on the same calls — what any
      caller of the library pays at least.
   b. The whole worker path on PostgreSQL: `trajectories_verify(kinds=["schema"])` over the demo
      project (load the steps, check, store CheckRuns and findings, commit) — what one Celery
      worker process does, in calls/s. Uses a database of its own, created and dropped here.
2. Verification power: known argument errors injected into runs, one error per copy of a run,
   and the checks run on the copy (schema + grounding + environment replay where there is an
   environment). A copy is caught when a finding lands on the step that was changed.
   a. The demo environment's faithful runs (correct by construction: every call was executed on
      the environment, reward 1). False flags: untouched runs with any finding at all.
   b. The real τ-bench and ToolBench samples (../shared/samples), with a registry written here for
      the τ-bench airline tools and the ToolBench file's own function list; no environment exists
      for them, so schema and grounding checks only.
   Classes: wrong type, out-of-enum value, missing required, invented key (schema-detectable);
   an id swapped in from another run, a wrong (registered) tool, a value contradicting an earlier
   observation (grounding- and replay-detectable).

It prints figures and conditions; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "samples"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
os.environ.setdefault("DEBUG", "0")

SCHEMA_CLASSES = ("wrong_type", "out_of_enum", "missing_required", "invented_key")
GROUNDED_CLASSES = ("swapped_id", "wrong_tool", "contradicting_value")
INVENTED = ("confirm", "force", "note", "priority", "dry_run")


# --- the runs, as the checks see them -----------------------------------------------------------


def _calls(run: Any) -> list[Any]:
    from verification.checks.base import CallView

    return [
        CallView(
            index=i,
            kind=s.kind,
            tool_name=s.tool_name,
            arguments=s.arguments,
            arguments_raw=s.arguments_raw,
            arguments_error=s.arguments_error,
            observation=s.observation,
            state=s.state,
            plan=s.plan,
            latency_ms=s.latency_ms,
            step_id=i,
        )
        for i, s in enumerate(run.steps)
    ]


def _parse(importer_name: str, data: bytes) -> list[Any]:
    from trajectories.formats import IMPORTERS

    importer = IMPORTERS[importer_name]
    return [importer.parse(record) for record in importer.records(io.BytesIO(data))]


def _tools(specs: list[dict[str, Any]]) -> dict[str, Any]:
    from trajectories.services.registries import tool_from_spec
    from verification.checks.base import ToolView

    out = {}
    for spec in specs:
        t = tool_from_spec(spec)
        out[t["name"]] = ToolView(
            name=t["name"],
            parameters=t["parameters"],
            side_effects=t["side_effects"] or "read",
            latency_p99_ms=t["latency_p99_ms"],
        )
    return out


def _string(description: str = "") -> dict[str, Any]:
    return {"type": "string", "minLength": 1, **({"description": description} if description else {})}


def _fn(name: str, properties: dict[str, Any], required: list[str], side_effects: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
        "side_effects": side_effects,
    }


def tau_airline_registry() -> list[dict[str, Any]]:
    """The τ-bench airline tools, written from the domain's documented calls (not copied)."""
    airport = {"type": "string", "pattern": "^[A-Z]{3}$"}
    date = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    cabin = {"type": "string", "enum": ["basic_economy", "economy", "business"]}
    flights = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"flight_number": _string(), "date": date},
            "required": ["flight_number", "date"],
            "additionalProperties": False,
        },
    }
    passengers = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"first_name": _string(), "last_name": _string(), "dob": date},
            "required": ["first_name", "last_name", "dob"],
            "additionalProperties": False,
        },
    }
    payments = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"payment_id": _string(), "amount": {"type": "number", "minimum": 0}},
            "required": ["payment_id", "amount"],
            "additionalProperties": False,
        },
    }
    count = {"type": "integer", "minimum": 0}
    search = {"origin": airport, "destination": airport, "date": date}
    return [
        _fn(
            "book_reservation",
            {
                "user_id": _string(),
                "origin": airport,
                "destination": airport,
                "flight_type": {"type": "string", "enum": ["one_way", "round_trip"]},
                "cabin": cabin,
                "flights": flights,
                "passengers": passengers,
                "payment_methods": payments,
                "total_baggages": count,
                "nonfree_baggages": count,
                "insurance": {"type": "string", "enum": ["yes", "no"]},
            },
            [
                "user_id",
                "origin",
                "destination",
                "flight_type",
                "cabin",
                "flights",
                "passengers",
                "payment_methods",
                "total_baggages",
                "nonfree_baggages",
                "insurance",
            ],
            "write",
        ),
        _fn("calculate", {"expression": _string()}, ["expression"], "none"),
        _fn("cancel_reservation", {"reservation_id": _string()}, ["reservation_id"], "destructive"),
        _fn("get_reservation_details", {"reservation_id": _string()}, ["reservation_id"], "read"),
        _fn("get_user_details", {"user_id": _string()}, ["user_id"], "read"),
        _fn("list_all_airports", {}, [], "read"),
        _fn("search_direct_flight", search, ["origin", "destination", "date"], "read"),
        _fn("search_onestop_flight", search, ["origin", "destination", "date"], "read"),
        _fn("send_certificate", {"user_id": _string(), "amount": {"type": "number"}}, ["user_id", "amount"], "write"),
        _fn("think", {"thought": _string()}, ["thought"], "none"),
        _fn("transfer_to_human_agents", {"summary": _string()}, ["summary"], "none"),
        _fn(
            "update_reservation_baggages",
            {"reservation_id": _string(), "total_baggages": count, "nonfree_baggages": count, "payment_id": _string()},
            ["reservation_id", "total_baggages", "nonfree_baggages", "payment_id"],
            "write",
        ),
        _fn(
            "update_reservation_flights",
            {"reservation_id": _string(), "cabin": cabin, "flights": flights, "payment_id": _string()},
            ["reservation_id", "cabin", "flights", "payment_id"],
            "write",
        ),
        _fn(
            "update_reservation_passengers",
            {"reservation_id": _string(), "passengers": passengers},
            ["reservation_id", "passengers"],
            "write",
        ),
    ]


# --- injecting one known error -------------------------------------------------------------------


def _leaves(value: Any, path: list[Any]) -> list[tuple[list[Any], Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, [*path, k])]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, [*path, i])]
    return [(path, value)]


def _set(root: Any, path: list[Any], value: Any) -> None:
    for p in path[:-1]:
        root = root[p]
    root[path[-1]] = value


def _get(root: Any, path: list[Any]) -> Any:
    for p in path:
        root = root[p]
    return root


class Injector:
    """Makes a copy of a run with one error of a class; None when the class does not apply to it."""

    def __init__(self, tools: dict[str, Any], rng: random.Random, id_pool: dict[str, list[str]]) -> None:
        self.tools = tools
        self.rng = rng
        self.id_pool = id_pool  # argument key → id values seen in all runs of the source

    def _steps(self, calls: list[Any], want: Callable[[Any, Any], bool]) -> list[int]:
        return [
            i
            for i, c in enumerate(calls)
            if c.kind == "tool_call" and isinstance(c.arguments, dict) and c.tool_name in self.tools
            if want(c, self.tools[c.tool_name])
        ]

    def inject(self, kind: str, calls: list[Any]) -> tuple[list[Any], int] | None:
        calls = copy.deepcopy(calls)
        return getattr(self, kind)(calls)

    def _pick(self, calls: list[Any], want: Callable[[Any, Any], bool]) -> int | None:
        steps = self._steps(calls, want)
        return self.rng.choice(steps) if steps else None

    @staticmethod
    def _props(tool: Any) -> dict[str, Any]:
        return tool.parameters.get("properties") or {}

    def wrong_type(self, calls: list[Any]) -> tuple[list[Any], int] | None:
        def typed(c: Any, t: Any) -> bool:
            return any(k in self._props(t) and "type" in self._props(t)[k] for k in c.arguments)

        i = self._pick(calls, typed)
        if i is None:
            return None
        args = calls[i].arguments
        key = self.rng.choice([k for k in args if k in self._props(self.tools[calls[i].tool_name])])
        value = args[key]
        if isinstance(value, bool):
            args[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            args[key] = str(value)
        elif isinstance(value, str):
            args[key] = int(value) if value.isdigit() else [value]
        elif isinstance(value, list):
            args[key] = value[0] if value else "none"
        else:
            args[key] = str(value)
        return calls, i

    def out_of_enum(self, calls: list[Any]) -> tuple[list[Any], int] | None:
        def has_enum(c: Any, t: Any) -> bool:
            return any("enum" in self._props(t).get(k, {}) for k in c.arguments)

        i = self._pick(calls, has_enum)
        if i is None:
            return None
        props = self._props(self.tools[calls[i].tool_name])
        key = self.rng.choice([k for k in calls[i].arguments if "enum" in props.get(k, {})])
        allowed = props[key]["enum"]
        original = str(calls[i].arguments[key])
        candidates = [
            original.upper(),
            original.title(),
            original.replace("_", " "),
            original + "s",
            "premium_" + original,
        ]
        calls[i].arguments[key] = next(c for c in candidates if c not in allowed)
        return calls, i

    def missing_required(self, calls: list[Any]) -> tuple[list[Any], int] | None:
        def has_required(c: Any, t: Any) -> bool:
            return any(k in c.arguments for k in t.parameters.get("required") or [])

        i = self._pick(calls, has_required)
        if i is None:
            return None
        required = self.tools[calls[i].tool_name].parameters["required"]
        del calls[i].arguments[self.rng.choice([k for k in required if k in calls[i].arguments])]
        return calls, i

    def invented_key(self, calls: list[Any]) -> tuple[list[Any], int] | None:
        i = self._pick(calls, lambda c, t: True)
        if i is None:
            return None
        args = calls[i].arguments
        renameable = [k for k in args if k.endswith("_id")]
        if renameable and self.rng.random() < 0.5:
            key = self.rng.choice(renameable)
            args[key.removesuffix("_id") + self.rng.choice(["_number", "_code", "Id"])] = args.pop(key)
        else:
            args[self.rng.choice(INVENTED)] = self.rng.choice([True, "yes", 1])
        return calls, i

    def swapped_id(self, calls: list[Any]) -> tuple[list[Any], int] | None:
        from verification.checks.grounding import worth_checking

        spots = [
            (i, path)
            for i in self._steps(calls, lambda c, t: True)
            for path, value in _leaves(calls[i].arguments, [])
            if path and isinstance(path[-1], str) and worth_checking(path[-1], value) == "id"
            if any(v != value for v in self.id_pool.get(path[-1], []))
        ]
        if not spots:
            return None
        i, path = self.rng.choice(spots)
        original = _get(calls[i].arguments, path)
        _set(calls[i].arguments, path, self.rng.choice([v for v in self.id_pool[path[-1]] if v != original]))
        return calls, i

    def wrong_tool(self, calls: list[Any]) -> tuple[list[Any], int] | None:
        i = self._pick(calls, lambda c, t: True)
        if i is None:
            return None
        others = [name for name in self.tools if name != calls[i].tool_name]
        calls[i].tool_name = self.rng.choice(others)
        return calls, i

    def contradicting_value(self, calls: list[Any]) -> tuple[list[Any], int] | None:
        """Change a value that an earlier observation states for the same identified object."""
        import orjson

        from verification.checks.grounding import _is_anchor, _objects

        spots = []
        observed: list[dict[str, Any]] = []
        for i, c in enumerate(calls):
            if c.kind == "tool_call" and isinstance(c.arguments, dict) and c.tool_name in self.tools:
                for path, value in _leaves(c.arguments, []):
                    if not path or not isinstance(path[-1], str) or isinstance(value, bool) or value is None:
                        continue
                    parent = _get(c.arguments, path[:-1]) if len(path) > 1 else c.arguments
                    if not isinstance(parent, dict):
                        continue
                    anchors = {(k, v) for k, v in parent.items() if k != path[-1] and _is_anchor(v)}
                    if any(o.get(path[-1]) == value and any(o.get(k) == v for k, v in anchors) for o in observed):
                        spots.append((i, path, value))
            if c.observation and c.observation[:1] in "{[":
                with contextlib.suppress(orjson.JSONDecodeError):
                    observed += [o for _, o in _objects(orjson.loads(c.observation), [])]
        if not spots:
            return None
        i, path, value = self.rng.choice(spots)
        if isinstance(value, int | float):
            changed: Any = value + self.rng.choice([13, 27, 41, 55])
        elif isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
            day = int(value[8:]) + self.rng.choice([1, 2, 3])
            changed = f"{value[:8]}{(day - 1) % 28 + 1:02d}"
        else:
            changed = value[:-1] + ("X" if value[-1:] != "X" else "Y")
        _set(calls[i].arguments, path, changed)
        return calls, i


# --- running the checks ---------------------------------------------------------------------------


def check_run(
    calls: list[Any], *, goal: str, checker: Any, tools: dict[str, Any], env: Any, seed: int | None
) -> set[int]:
    """The step indexes with at least one finding."""
    from verification.checks import grounding, replay
    from verification.checks.schema import schema_check_run

    findings = schema_check_run(checker, calls) + grounding.grounding_check_run(goal=goal, calls=calls, tools=tools)
    if env is not None and seed is not None:
        replayed = replay.environment_replay(env, state=env.reset(seed), calls=calls)
        findings += replay.environment_findings(calls, replayed).findings
    return {f.step_index for f in findings if f.step_index is not None} | (
        {-1} if any(f.step_index is None for f in findings) else set()
    )


def power(
    name: str,
    runs: list[tuple[str, list[Any]]],
    tools: dict[str, Any],
    *,
    env: Any,
    seed: int | None,
    trials: int,
    rng: random.Random,
) -> dict[str, Any]:
    from verification.checks.grounding import worth_checking
    from verification.checks.schema import SchemaChecker

    checker = SchemaChecker(tools.values())
    pool: dict[str, set[str]] = {}
    for _, calls in runs:
        for c in calls:
            if c.kind == "tool_call" and isinstance(c.arguments, dict):
                for path, value in _leaves(c.arguments, []):
                    if path and isinstance(path[-1], str) and worth_checking(path[-1], value) == "id":
                        pool.setdefault(path[-1], set()).add(value)
    injector = Injector(tools, rng, {k: sorted(v) for k, v in pool.items()})
    untouched_flagged = sum(
        1 for goal, calls in runs if check_run(calls, goal=goal, checker=checker, tools=tools, env=env, seed=seed)
    )
    tool_calls = sum(1 for _, calls in runs for c in calls if c.kind == "tool_call")
    flagged_calls = sum(
        len(check_run(calls, goal=goal, checker=checker, tools=tools, env=env, seed=seed) - {-1})
        for goal, calls in runs
    )
    rates: dict[str, tuple[int, int]] = {}
    for kind in (*SCHEMA_CLASSES, *GROUNDED_CLASSES):
        caught = tried = 0
        applicable = [(g, c) for g, c in runs if injector.inject(kind, c) is not None]
        for _ in range(trials if applicable else 0):
            goal, calls = rng.choice(applicable)
            made = injector.inject(kind, calls)
            if made is None:
                continue
            changed, step = made
            tried += 1
            if step in check_run(changed, goal=goal, checker=checker, tools=tools, env=env, seed=seed):
                caught += 1
        rates[kind] = (caught, tried)
    return {
        "name": name,
        "runs": len(runs),
        "tool_calls": tool_calls,
        "untouched_flagged": untouched_flagged,
        "flagged_calls": flagged_calls,
        "rates": rates,
    }


def grounding_precision_recall(
    runs: list[tuple[str, list[Any]]], tools: dict[str, Any], *, trials: int, rng: random.Random
) -> tuple[int, int, int, int]:
    """The grounding check alone: (true positives, false positives, injected copies, copies caught).

    A flagged step is a true positive when it is the step an id swap or a contradicting value was
    injected into; every other flagged step (in the injected copies and in the untouched runs) is a
    false positive."""
    from verification.checks import grounding
    from verification.checks.grounding import worth_checking

    pool: dict[str, set[str]] = {}
    for _, calls in runs:
        for c in calls:
            if c.kind == "tool_call" and isinstance(c.arguments, dict):
                for path, value in _leaves(c.arguments, []):
                    if path and isinstance(path[-1], str) and worth_checking(path[-1], value) == "id":
                        pool.setdefault(path[-1], set()).add(value)
    injector = Injector(tools, rng, {k: sorted(v) for k, v in pool.items()})

    def flagged(goal: str, calls: list[Any]) -> set[int]:
        found = grounding.grounding_check_run(goal=goal, calls=calls, tools=tools)
        return {f.step_index for f in found if f.step_index is not None}

    tp = fp = copies = caught = 0
    for goal, calls in runs:
        fp += len(flagged(goal, calls))
    for kind in ("swapped_id", "contradicting_value"):
        applicable = [(g, c) for g, c in runs if injector.inject(kind, c) is not None]
        for _ in range(trials if applicable else 0):
            goal, calls = rng.choice(applicable)
            made = injector.inject(kind, calls)
            if made is None:
                continue
            changed, step = made
            hits = flagged(goal, changed)
            copies += 1
            caught += step in hits
            tp += step in hits
            fp += len(hits - {step})
    return tp, fp, copies, caught


def _print_power(result: dict[str, Any], *, target_false_flags: bool) -> None:
    runs = result["runs"]
    print(f"-- {result['name']}: {runs} untouched runs, {result['tool_calls']} tool calls")
    for kind, (caught, tried) in result["rates"].items():
        group = "schema" if kind in SCHEMA_CLASSES else "grounding/replay"
        target = 0.95 if kind in SCHEMA_CLASSES else 0.70
        if tried == 0:
            print(f"   {kind:<20} {'n/a':>8}   (no call of these runs it applies to)   [{group}]")
            continue
        rate = caught / tried
        print(
            f"   {kind:<20} {rate:8.1%}   ({caught}/{tried} injected copies caught; target ≥ {target:.0%})   [{group}]"
        )
    rate = result["untouched_flagged"] / runs if runs else 0.0
    note = "target ≤ 1%" if target_false_flags else "real runs, some with real mistakes: for information"
    print(
        f"   untouched runs with any finding: {rate:.1%} ({result['untouched_flagged']}/{runs}; "
        f"{result['flagged_calls']}/{result['tool_calls']} calls)   [{note}]"
    )


# --- throughput -----------------------------------------------------------------------------------


def throughput(repeats: int, min_calls: int) -> None:
    import orjson

    from demo import rollouts
    from verification.checks.schema import SchemaChecker

    runs = [
        _calls(r) for r in _parse("openai_chat", b"".join(orjson.dumps(x) + b"\n" for x in rollouts.tool_use_runs(7)))
    ]
    tools = _tools(rollouts.tool_specs())
    base = [c for calls in runs for c in calls if c.kind == "tool_call"]
    calls = (base * (min_calls // len(base) + 1))[:min_calls]
    checker = SchemaChecker(tools.values())
    validators = checker._validators
    ours, bare = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        for c in calls:
            v = validators.get(c.tool_name)
            if v is not None and isinstance(c.arguments, dict):
                v.is_valid(c.arguments)
        bare.append(len(calls) / (time.perf_counter() - started))
        started = time.perf_counter()
        found = 0
        for c in calls:
            found += len(checker.check(c))
        ours.append(len(calls) / (time.perf_counter() - started))
    print(
        f"-- in memory: {len(calls):,} calls ({len(base)} distinct, from {len(runs)} demo runs), {found:,} findings per pass"
    )
    print(
        f"   bare jsonschema is_valid : {statistics.median(bare):>10,.0f} calls/s (min–max {min(bare):,.0f} – {max(bare):,.0f})"
    )
    print(
        f"   SchemaChecker.check      : {statistics.median(ours):>10,.0f} calls/s (min–max {min(ours):,.0f} – {max(ours):,.0f})   ratio {statistics.median(ours) / statistics.median(bare):.2f} × bare"
    )


def db_throughput(db_url: str, repeats: int) -> None:
    """The worker's whole path, in a fresh subprocess against a database of its own."""
    import psycopg

    admin = db_url.rsplit("/", 1)[0] + "/postgres"
    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "MEDIA_ROOT": "/tmp/stepwise-verify-bench-media",
        "CELERY_BROKER_URL": "memory://",
    }
    try:
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child-db", str(repeats)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"the database run failed:\n{done.stderr[-3000:]}")
        print(done.stdout, end="")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def child_db(repeats: int) -> None:
    import django

    django.setup()
    from django.db import connection

    from demo.services import demo_seed
    from trajectories.models import Step, Trajectory
    from verification.models import CheckRun
    from verification.services import trajectories_verify

    demo_seed(stdout=io.StringIO(), run_now=True)
    ids = list(Trajectory.objects.filter(project__slug="airline-desk-demo").order_by("id").values_list("id", flat=True))
    calls = Step.objects.filter(trajectory_id__in=ids, kind="tool_call").count()
    rates = []
    for _ in range(repeats):
        CheckRun.objects.filter(kind="schema").delete()
        started = time.perf_counter()
        trajectories_verify(trajectory_ids=ids, kinds=["schema"])
        rates.append(calls / (time.perf_counter() - started))
    findings = CheckRun.objects.filter(kind="schema", status="flagged").count()
    print(
        f"-- worker path on PostgreSQL {connection.cursor().connection.info.server_version}: {len(ids)} runs, {calls:,} calls, "
        f"{findings} runs flagged per pass"
    )
    print(
        f"   trajectories_verify(schema): {statistics.median(rates):>10,.0f} calls/s (min–max {min(rates):,.0f} – {max(rates):,.0f}; "
        f"target ≥ 5,000)   peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB"
    )


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trials", type=int, default=200, help="injected copies per class and source (default 200)")
    parser.add_argument("--calls", type=int, default=50_000, help="calls in the in-memory throughput run")
    parser.add_argument(
        "--db-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stepwise_verify_bench"),
    )
    parser.add_argument("--no-db", action="store_true", help="skip the PostgreSQL worker-path figure")
    parser.add_argument("--child-db", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_db:
        child_db(args.child_db)
        return
    import django

    django.setup()
    import orjson

    from demo import rollouts
    from verification.environments import environment_get

    print("== Stepwise verification benchmark (bench/verify_bench.py) ==")
    print(
        f"machine     : {os.cpu_count()} cores; Python {platform.python_version()}, jsonschema {version('jsonschema')}"
    )
    print(f"protocol    : {args.repeats} repeats, median (min–max); {args.trials} injected copies per class and source")
    print("\n1. Schema-check throughput per process")
    throughput(args.repeats, args.calls)
    if not args.no_db:
        db_throughput(args.db_url, args.repeats)

    print("\n2. Verification power")
    rng = random.Random(20261201)
    demo_runs = _parse("openai_chat", b"".join(orjson.dumps(x) + b"\n" for x in rollouts.tool_use_runs(7)))
    faithful = [(r.goal_text, _calls(r)) for r in demo_runs if r.metadata.get("demo_behaviour") == "success"]
    env = environment_get("airline")
    _print_power(
        power(
            "a. demo environment (schema + grounding + environment replay)",
            faithful,
            _tools(rollouts.tool_specs()),
            env=env,
            seed=7,
            trials=args.trials,
            rng=rng,
        ),
        target_false_flags=True,
    )
    tau = _parse("tau_bench", (SAMPLES / "tau-bench_gpt-4o-airline_excerpt.json").read_bytes())
    _print_power(
        power(
            "b. τ-bench sample (schema + grounding)",
            [(r.goal_text, _calls(r)) for r in tau],
            _tools(tau_airline_registry()),
            env=None,
            seed=None,
            trials=args.trials,
            rng=rng,
        ),
        target_false_flags=False,
    )
    (tb,) = _parse("toolbench", (SAMPLES / "toolbench_G1_57_ChatGPT_DFS_woFilter_w2.json").read_bytes())
    _print_power(
        power(
            "b. ToolBench sample (schema + grounding)",
            [(tb.goal_text, _calls(tb))],
            _tools(tb.tools or []),
            env=None,
            seed=None,
            trials=args.trials,
            rng=rng,
        ),
        target_false_flags=False,
    )
    print(
        "-- grounding check alone (ids swapped in, values contradicting an observation; untouched runs for false flags)"
    )
    for label, runs_, tools_ in (
        ("demo", faithful, _tools(rollouts.tool_specs())),
        ("τ-bench", [(r.goal_text, _calls(r)) for r in tau], _tools(tau_airline_registry())),
    ):
        tp, fp, copies, caught = grounding_precision_recall(runs_, tools_, trials=args.trials, rng=rng)
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = caught / copies if copies else float("nan")
        print(
            f"   {label:<8} precision {precision:6.1%} ({tp} of {tp + fp} flagged steps)   recall {recall:6.1%} ({caught}/{copies} copies)"
        )
    natural = Counter()
    caught = Counter()
    tools = _tools(rollouts.tool_specs())
    from verification.checks.schema import SchemaChecker

    checker = SchemaChecker(tools.values())
    for r in demo_runs:
        injected = r.metadata.get("demo_injected") or {}
        if not injected.get("kind") or injected["kind"] == "premature_termination":
            continue
        calls = _calls(r)
        natural[injected["kind"]] += 1
        if check_run(calls, goal=r.goal_text, checker=checker, tools=tools, env=env, seed=7):
            caught[injected["kind"]] += 1
    print(
        "-- demo agents' own mistakes (made while running, observations as the environment answered): runs with a finding"
    )
    for kind in sorted(natural):
        print(f"   {kind:<20} {caught[kind] / natural[kind]:8.1%}   ({caught[kind]}/{natural[kind]})")


if __name__ == "__main__":
    main()
