"""Audit benchmark (BENCH.md): agreement of every scope over 1,000,000 step labels, and the escalation queue.

    .venv/bin/python bench/audit_bench.py [--steps 333334] [--escalations 10000] [--requests 200]
                                          [--db-url URL] [--port 8751]

What it does, in one run:

1. Creates a database of its own, migrates it and writes (with COPY) a tool-use project: trajectories of
   10 steps (60 % tool calls with two arguments), three annotators who each labelled every step — argument
   verdicts, tool verdict, environment feedback, 5 rubric axes, failure modes from 7 tags plus "none",
   process reward — agreeing with a hidden truth 85 % of the time. --steps 333,334 gives 1,000,002 label rows.
2. Recomputes the point estimates of every scope (project, slices, annotators vs target and vs gold, pairs,
   annotator × slice, rubric axes, tags, α / Fleiss / AC1) from the database — `compute(bootstrap=False)`,
   then the stored run `project_agreement_compute` — median of 3; then the cluster-bootstrap intervals
   and calibration windows separately. Peak RSS of the process.
3. Inserts --escalations open escalations, serves the app with gunicorn (2 workers) and, as the QA lead on
   loopback with keep-alive, GETs the escalation queue (unfiltered, filtered by field kind, page 20):
   p50 / p95 over --requests requests each. SQL queries per page in-process.

It prints figures and conditions; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/stepwise_audit_bench"
PASSWORD = "bench-password-1"
TOOLS = [
    "search_flights",
    "get_reservation",
    "update_reservation",
    "cancel_reservation",
    "book",
    "calculate",
    "think",
    "transfer",
]
MODELS = ["gpt-4o", "claude-3.5", "llama-3-70b"]


def _env(db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": db_url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_COOKIES": "0",
        "CELERY_BROKER_URL": "memory://",
        "CELERY_RESULT_BACKEND": "cache+memory://",
        "MEDIA_ROOT": "/tmp/stepwise-audit-bench-media",
        "PYTHONPATH": str(ROOT),
    }


def _copy(model, rows) -> None:  # type: ignore[no-untyped-def]
    """COPY rows (dicts of attname → value; missing fields take their default) into the model's table."""
    from django.db import connection, models
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    fields = [
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and isinstance(f, models.AutoField | models.BigAutoField))
    ]
    now = timezone.now()
    columns = ", ".join(f'"{f.column}"' for f in fields)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN') as copy,
    ):
        for row in rows:
            values = []
            for f in fields:
                if f.attname in row:
                    value = row[f.attname]
                elif getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
                    value = now
                else:
                    value = f.get_default()
                if isinstance(f, models.JSONField) and value is not None:
                    value = Jsonb(value)
                values.append(value)
            copy.write_row(values)


def setup(steps_wanted: int) -> dict:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.utils import timezone

    from annotation.models import Assignment, StepLabel
    from core.models import Role
    from core.services import membership_set, project_create
    from trajectories.models import Goal, Step, Trajectory

    pm = User.objects.create_user("bench-pm", password=PASSWORD)
    project = project_create(actor=pm, name="Audit bench", kind="tool_use")
    membership_set(actor=pm, project=project, user=pm, role=Role.PROJECT_MANAGER)
    lead = User.objects.create_user("bench-lead", password=PASSWORD)
    membership_set(actor=pm, project=project, user=lead, role=Role.QA_LEAD)
    annotators = []
    for i in range(3):
        user = User.objects.create_user(f"bench-annotator{i}", password=PASSWORD)
        membership_set(actor=pm, project=project, user=user, role=Role.ANNOTATOR)
        annotators.append(user)
    goals = [
        Goal.objects.create(project=project, prompt=f"goal {b}", band=b, prompt_sha256=f"{i:064d}")
        for i, b in enumerate(["atomic", "composite", "ambiguous"])
    ]
    rng = random.Random(7)
    n_traj = -(-steps_wanted // 10)
    _copy(
        Trajectory,
        (
            {
                "project_id": project.pk,
                "goal_id": goals[t % 3].pk,
                "source_format": "openai_chat",
                "importer_version": "1",
                "model_name": MODELS[t % 3],
                "rollout_id": f"bench-{t}",
                "content_sha256": f"{t:064x}",
                "payload": b"",
                "payload_sha256": f"{t:064x}",
                "status": "audited",
            }
            for t in range(n_traj)
        ),
    )
    traj_ids = list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    plan = []  # (trajectory id, index, kind, tool)
    for t in traj_ids:
        for i in range(10):
            tool_call = rng.random() < 0.6
            plan.append((t, i, "tool_call" if tool_call else "respond", rng.choice(TOOLS) if tool_call else ""))
    _copy(
        Step,
        (
            {
                "trajectory_id": t,
                "index": i,
                "kind": kind,
                "tool_name": tool,
                "arguments": {"a": 1, "b": "x"} if kind == "tool_call" else None,
                "state": [],
            }
            for t, i, kind, tool in plan
        ),
    )
    now = timezone.now()
    _copy(
        Assignment,
        (
            {
                "trajectory_id": t,
                "annotator_id": u.pk,
                "status": "submitted",
                "submitted_at": now,
                "time_spent_ms": 60000,
            }
            for t in traj_ids
            for u in annotators
        ),
    )
    assignments = {
        (t, a): pk
        for pk, t, a in Assignment.objects.filter(trajectory__project=project).values_list(
            "id", "trajectory_id", "annotator_id"
        )
    }
    steps = list(Step.objects.filter(trajectory__project=project).values_list("id", "trajectory_id", "kind"))
    axes = [a["key"] for a in project.rubric_axes]
    tags = [t["key"] for t in project.failure_taxonomy]

    def noisy(truth, choices):  # type: ignore[no-untyped-def]
        return truth if rng.random() < 0.85 else rng.choice(choices)

    def rows():  # type: ignore[no-untyped-def]
        for step_id, t, kind in steps:
            truth_args = {n: rng.choice(["valid", "valid", "valid", "invalid"]) for n in ("a", "b")}
            truth_env = rng.choice(["success", "success", "failure", "partial"])
            truth_axes = {a: rng.choice([3, 4, 4, 5]) for a in axes}
            truth_tags = ["none"] if rng.random() < 0.7 else [rng.choice(tags)]
            truth_reward = rng.choice([1, 1, 0, -1])
            for u in annotators:
                label = {
                    "assignment_id": assignments[(t, u.pk)],
                    "step_id": step_id,
                    "failure_modes": noisy(truth_tags, [["none"], [rng.choice(tags)]]),
                    "rubric": {a: noisy(v, [1, 2, 3, 4, 5]) for a, v in truth_axes.items()},
                    "process_reward": noisy(truth_reward, [-1, 0, 1]),
                    "version": 3,
                }
                if kind == "tool_call":
                    label["argument_verdicts"] = {
                        n: noisy(v, ["valid", "invalid", "unsure"]) for n, v in truth_args.items()
                    }
                    label["tool_verdict"] = noisy("right", ["right", "wrong"])
                    label["env_feedback"] = noisy(truth_env, ["success", "partial", "failure"])
                yield label

    _copy(StepLabel, rows())
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum does to a live database: statistics, hint bits, visibility
        cursor.execute("VACUUM ANALYZE")
    return {"project": project.pk, "annotators": [u.pk for u in annotators], "lead": lead.pk, "steps": len(steps)}


def agreement(info: dict, repeats: int) -> None:
    from audit.models import AgreementSnapshot
    from audit.services.agreement import compute, project_agreement_compute
    from core.models import Project

    project = Project.objects.get(pk=info["project"])
    point: list[float] = []
    stored: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = compute(project, bootstrap=False)
        point.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run = project_agreement_compute(project_id=project.pk, bootstrap=False)
        stored.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    full = compute(project, bootstrap=True)
    with_bootstrap = time.perf_counter() - t0
    snapshots = AgreementSnapshot.objects.filter(run=run).count()
    headline = next(s for s in result.snapshots if s.scope == "project" and s.measure == "target")
    print(f"label rows   : {result.rows:,} (one per annotator per step; {info['steps']:,} steps, 3 annotators)")
    print(
        f"scopes       : {snapshots:,} figures stored per run; project target κ = {headline.figure.value:.4f} (N = {headline.figure.n_items:,})"
    )
    print(
        f"point        : compute {statistics.median(point):.2f} s median (min {min(point):.2f}, max {max(point):.2f}); "
        f"with storing the run {statistics.median(stored):.2f} s median   target ≤ 5 s"
    )
    print(
        f"bootstrap    : point + intervals (project, annotators, slices; B = 1000) + calibration windows "
        f"{with_bootstrap:.2f} s, i.e. intervals {full.bootstrap_ms / 1000:.2f} s"
    )
    print(f"peak RSS     : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def escalations(info: dict, count: int) -> None:
    from audit.models import Escalation
    from core.models import Project
    from trajectories.models import Step

    project = Project.objects.get(pk=info["project"])
    rng = random.Random(3)
    steps = list(
        Step.objects.filter(trajectory__project=project, kind="tool_call").values_list(
            "id", "trajectory_id", "tool_name"
        )[: count * 2]
    )
    rng.shuffle(steps)
    fields = ["process_reward", "argument:a", "rubric:latency", "failure_modes", "env_feedback"]
    reasons = [
        "votes differ",
        "scores differ by 2 or more",
        "split on a high-severity failure mode",
        "no definitive vote",
    ]
    Escalation.objects.bulk_create(
        [
            Escalation(
                project=project,
                trajectory_id=t,
                step_id=s,
                field=fields[i % len(fields)],
                reason=reasons[i % len(reasons)],
                tool_name=tool,
                label_ids=[],
                assigned_to_id=info["lead"],
            )
            for i, (s, t, tool) in enumerate(steps[:count])
        ],
        batch_size=2000,
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_escalation")


def queries(slug: str) -> dict[str, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    assert client.login(username="bench-lead", password=PASSWORD)
    out = {}
    for name, query in (("unfiltered", {}), ("by field", {"kind": "rubric"}), ("page 20", {"page": "20"})):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get("/escalations/", {"project": slug, **query})
        assert response.status_code == 200
        out[name] = len(ctx.captured_queries)
    return out


def queue_latency(base: str, slug: str, requests: int) -> dict[str, list[float]]:
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)

    with httpx.Client(timeout=30) as client:
        client.get(f"{base}/login/")
        response = client.post(
            f"{base}/login/",
            data={
                "username": "bench-lead",
                "password": PASSWORD,
                "csrfmiddlewaretoken": client.cookies.get("csrftoken"),
            },
            headers={"Referer": f"{base}/login/"},
        )
        if "sessionid" not in client.cookies:
            raise SystemExit(f"login failed: {response.status_code}")
        out: dict[str, list[float]] = {}
        for name, query in (("unfiltered", {}), ("by field", {"kind": "rubric"}), ("page 20", {"page": "20"})):
            for _ in range(10):
                client.get(f"{base}/escalations/", params={"project": slug, **query})
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                r = client.get(f"{base}/escalations/", params={"project": slug, **query})
                times.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"queue answered {r.status_code}")
            out[name] = times
    return out


def _pct(values: list[float]) -> str:
    values = sorted(values)
    return f"p50 {statistics.median(values):.1f} ms · p95 {values[int(len(values) * 0.95) - 1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=333_334)
    parser.add_argument("--escalations", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--port", type=int, default=8751)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    env = _env(args.db_url)
    if not args.child:
        import psycopg

        admin, name = args.db_url.rsplit("/", 1)
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v0"],
            env=env,
            cwd=ROOT,
            check=True,
        )
        try:
            done = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], env=env, cwd=ROOT)
            if done.returncode:
                raise SystemExit(done.returncode)
        finally:
            with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    os.environ.update(env)
    t0 = time.perf_counter()
    info = setup(args.steps)
    print(
        f"machine      : {os.cpu_count()} cores; Python {platform.python_version()}; PostgreSQL; setup {time.perf_counter() - t0:.0f} s"
    )
    agreement(info, args.repeats)
    escalations(info, args.escalations)
    from core.models import Project

    slug = Project.objects.get(pk=info["project"]).slug
    counted = queries(slug)
    from bench.workspace_bench import Server  # the same gunicorn, started and stopped the same way

    server = Server(env, args.port)
    try:
        server.wait()
        times = queue_latency(f"http://127.0.0.1:{args.port}", slug, args.requests)
    finally:
        server.stop()
    print(
        f"escalations  : {args.escalations:,} open; queue page as the QA lead (gunicorn, 2 workers, httpx keep-alive), target p95 ≤ 50 ms"
    )
    for name, values in times.items():
        print(f"  {name:<11}: {_pct(values)} · {counted[name]} SQL queries")


if __name__ == "__main__":
    main()
