"""Export benchmark (BENCH.md): a batch of --steps steps to OpenAI chat SFT JSONL, to the full Stepwise JSONL
and to Parquet, beside a bare PostgreSQL `COPY … TO` of the same step rows in the same run.

    .venv/bin/python bench/export_bench.py [--steps 1000000] [--repeats 2] [--db-url URL]

It creates its own database (dropped at the end), writes with COPY a tool-use project of trajectories of 10
steps (60 % tool calls with τ-bench-sized arguments and observations of a few hundred bytes to 2 KB), each
with the chat messages an import keeps (`trajectories.chat.chat_blob`, as the import makes them), audits
them (status audited, one unanimous consensus value per step), cuts one batch of all of them, then runs,
alternating: COPY (SELECT <the step columns> FROM trajectories_step …) TO STDOUT into /dev/null; and
`export_job_run` in a fresh subprocess for `openai_sft`, `openai_sft` + Parquet, and `stepwise`. It prints
steps per second (median, min–max), the ratio to COPY, the export process's peak memory (its VmHWM) and the
Parquet child's (ru_maxrss of the export's children), file sizes, and the CPU a step costs this client and
PostgreSQL's backends of the bench database (sampled from /proc by a process of its own: the server must be on this machine) — on a
loaded machine the CPU per step says more than the rate. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/stepwise_export_bench"
STEP_COLUMNS = "trajectory_id, index, kind, turn_id, state, plan, tool_name, tool_call_id, arguments, arguments_raw, observation, reflection, success_flag"


def _env(db_url: str, media: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": db_url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key",
        "CELERY_BROKER_URL": "memory://",
        "CELERY_RESULT_BACKEND": "cache+memory://",  # the export's on-commit enqueue must not fail
        "MEDIA_ROOT": media,
        "PYTHONPATH": str(ROOT),
    }


def setup(steps_wanted: int) -> dict:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from audit.models import Consensus
    from bench.audit_bench import _copy
    from core.models import Role
    from core.services import membership_set, project_create
    from exports.services.batches import batch_create
    from tests.annotation.helpers import TOOLS
    from trajectories.blobs import pack
    from trajectories.chat import chat_blob
    from trajectories.models import Step, Trajectory
    from trajectories.services.registries import registry_create, registry_freeze

    pm = User.objects.create_user("bench-pm", password="bench-password-1")
    project = project_create(actor=pm, name="Export bench", kind="tool_use")
    membership_set(actor=pm, project=project, user=pm, role=Role.PROJECT_MANAGER)
    registry_freeze(actor=pm, registry=registry_create(actor=pm, project=project, tools=TOOLS))
    n_traj = -(-steps_wanted // 10)

    def run_steps(t: int) -> list[dict]:  # the same steps each time for the same trajectory
        rng = random.Random(t)
        out = []
        for i in range(10):
            call = rng.random() < 0.6
            out.append(
                {
                    "index": i,
                    "kind": "tool_call" if call else "respond",
                    "turn_id": "",
                    "state": [{"role": "user", "content": "Yes, go ahead with that."}]
                    if i and rng.random() < 0.2
                    else [],
                    "plan": "I will look up the reservation first." if call else "",
                    "tool_name": "get_reservation" if call else "",
                    "tool_call_id": f"call_{t}_{i}" if call else "",
                    "arguments": {"reservation_id": f"ZFA{i:03d}", "cabin": "economy"}
                    if call
                    else {"content": "Done: your reservation is updated."},
                    "arguments_raw": None,
                    "observation": json.dumps(
                        {
                            "status": "confirmed",
                            "flights": [{"n": k, "from": "SFO", "to": "JFK"} for k in range(rng.randint(1, 12))],
                        }
                    )
                    if call
                    else None,
                }
            )
        return out

    def chat(t: int) -> bytes:  # what an import keeps: the messages, compressed alone (no payload dictionary)
        return chat_blob([SimpleNamespace(**step) for step in run_steps(t)], pack)

    _copy(
        Trajectory,
        (
            {
                "project_id": project.pk,
                "source_format": "openai_chat",
                "importer_version": "1",
                "model_name": "gpt-4o",
                "rollout_id": f"r{t}",
                "goal_text": f"Please change reservation {t:06d}",
                "content_sha256": f"{t:064x}",
                "payload": b"",
                "payload_sha256": f"{t:064x}",
                "chat": chat(t),
                "status": "audited",
                "step_count": 10,
            }
            for t in range(n_traj)
        ),
    )
    ids = list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True))

    def steps():  # type: ignore[no-untyped-def]
        for t, pk in enumerate(ids):
            for step in run_steps(t):
                yield {"trajectory_id": pk, **step}

    _copy(Step, steps())
    _copy(
        Consensus,
        (
            {
                "trajectory_id": t,
                "field": "goal_completed",
                "value": True,
                "method": "unanimous",
                "agreement": "3/3",
                "source_labels": [],
            }
            for t in ids
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would after the load, not during the runs
    batch = batch_create(actor=pm, project=project, name="all", filters={})
    return {
        "project": project.pk,
        "batch": batch.pk,
        "steps": Step.objects.filter(trajectory__project=project).count(),
        "pm": pm.pk,
        "now": timezone.now().isoformat(),
    }


def _peak_mb() -> float:
    """This process's own peak resident set (VmHWM: ru_maxrss would carry the bench parent's over the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class BackendCpu:
    """CPU seconds the PostgreSQL client backends of one database spend while it runs, sampled from /proc every
    20 ms (the server is on this machine; a backend that ends between two samples loses at most 20 ms) by a
    process of its own: a sampling thread in the measured process would take its GIL from the work measured."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.seconds = 0.0

    def __enter__(self) -> BackendCpu:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--sample", self.database],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        if self.proc.stdout.readline().strip() != "ready":  # the backends already there count from now
            raise SystemExit("the CPU sampler did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self.proc.communicate("stop\n")
        self.seconds = float(out.strip().splitlines()[-1])


def sample_backends(database: str) -> None:
    """The sampler's process: prints "ready", samples until a line comes on stdin, then prints the seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    seen: dict[str, float] = {}
    start: dict[str, float] = {}

    def sample(first: bool) -> None:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                if (
                    not cmdline.startswith(b"postgres: ")
                    or f" {database} ".encode() not in cmdline
                    or b"autovacuum" in cmdline  # client backends only
                ):
                    continue
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu = (int(fields[11]) + int(fields[12])) / tick
            start.setdefault(proc.name, cpu if first else 0.0)
            seen[proc.name] = cpu

    sample(True)
    stop = threading.Event()
    print("ready", flush=True)
    reader = threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True)
    reader.start()
    while not stop.wait(0.02):
        sample(False)
    sample(False)
    print(sum(cpu - start.get(pid, 0.0) for pid, cpu in seen.items()), flush=True)


def copy_to(info: dict) -> float:
    from django.db import connection

    t0 = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY (SELECT {STEP_COLUMNS} FROM trajectories_step s WHERE s.trajectory_id IN "
            f"(SELECT trajectory_id FROM exports_batch_trajectories WHERE batch_id = {int(info['batch'])})) TO STDOUT"
        ) as copy,
    ):
        for _ in copy:
            pass
    return time.perf_counter() - t0


def child_export(info: dict, format: str, parquet: bool) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import User

    from exports.models import Batch
    from exports.services.jobs import export_dir, export_job_create, export_job_run

    batch = Batch.objects.get(pk=info["batch"])
    job = export_job_create(
        actor=User.objects.get(pk=info["pm"]), batch=batch, format=format, options={"parquet": parquet}
    )
    database = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    cpu0 = _cpu_s()
    with BackendCpu(database) as backends:
        t0 = time.perf_counter()
        job = export_job_run(job_id=job.pk)
        seconds = time.perf_counter() - t0
    python_cpu = _cpu_s() - cpu0
    sizes = {f["name"].rsplit(".", 1)[-1]: (export_dir(job) / f["name"]).stat().st_size for f in job.files}
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_mb": _peak_mb(),
                # the Parquet writer's (ru_maxrss: its own peak, or this process's when it started if higher)
                "child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "python_cpu": python_cpu + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime,
                "postgres_cpu": backends.seconds,
                "sizes": sizes,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--db-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sample", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sample:
        sample_backends(args.sample)
        return
    media = os.environ.get("BENCH_MEDIA", tempfile.mkdtemp(prefix="stepwise-export-bench-"))
    env = _env(args.db_url, media)
    if args.child:
        os.environ.update(env)
        spec = json.loads(args.child)
        child_export(spec["info"], spec["format"], spec["parquet"])
        return
    import psycopg

    admin, name = args.db_url.rsplit("/", 1)
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
        os.environ.update(env)
        t0 = time.perf_counter()
        info = setup(args.steps)
        print(
            f"machine  : {os.cpu_count()} cores; Python {platform.python_version()}; PostgreSQL; setup {time.perf_counter() - t0:.0f} s; {info['steps']:,} steps"
        )
        runs: dict[str, list[dict]] = {"openai_sft": [], "openai_sft+parquet": [], "stepwise": []}
        copies: list[float] = []
        copy_cpu: list[tuple[float, float]] = []
        for _ in range(args.repeats):
            for key in runs:
                cpu0 = _cpu_s()
                with BackendCpu(name) as backend:
                    copies.append(copy_to(info))
                copy_cpu.append((_cpu_s() - cpu0, backend.seconds))
                fmt, parquet = key.split("+")[0], key.endswith("parquet")
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        json.dumps({"info": info, "format": fmt, "parquet": parquet}),
                        "--db-url",
                        args.db_url,
                    ],
                    env={**env, "BENCH_MEDIA": media},
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                )
                if done.returncode:
                    raise SystemExit(done.stderr[-3000:])
                runs[key].append(json.loads(done.stdout.strip().splitlines()[-1]))
        copy_rate = info["steps"] / statistics.median(copies)

        def per_step(cpu: list[tuple[float, float]]) -> str:  # CPU µs a step: this client, PostgreSQL
            client, server = (statistics.median(c[k] for c in cpu) * 1e6 / info["steps"] for k in (0, 1))
            return f"CPU {client:.1f} + PostgreSQL {server:.1f} µs/step"

        print(
            f"COPY TO  : {copy_rate:,.0f} step rows/s median of {len(copies)} (min {info['steps'] / max(copies):,.0f}, max {info['steps'] / min(copies):,.0f}) · {per_step(copy_cpu)}"
        )
        for key, results in runs.items():
            rate = info["steps"] / statistics.median(r["seconds"] for r in results)
            rss = max(r["rss_mb"] for r in results)
            child = max(r.get("child_rss_mb", 0) for r in results)
            sizes = ", ".join(
                f"{k} {v / 1e6:.0f} MB" for k, v in results[-1]["sizes"].items() if k in ("jsonl", "parquet")
            )
            seconds = sorted(r["seconds"] for r in results)
            spread = f"{info['steps'] / seconds[-1]:,.0f}–{info['steps'] / seconds[0]:,.0f}"
            child_note = f" (Parquet child {child:.0f} MB)" if key.endswith("parquet") else ""
            print(
                f"{key:<19}: {rate:,.0f} steps/s ({spread}) = {rate / copy_rate:.2f} × COPY · "
                f"peak RSS {rss:.0f} MB{child_note} · {sizes} · "
                + per_step([(r["python_cpu"], r["postgres_cpu"]) for r in results])
            )
        print(f"load     : {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at the end")
        print("targets  : SFT JSONL ≥ 0.5 × COPY; memory < 300 MB whatever the size")
    finally:
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
