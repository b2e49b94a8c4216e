"""Workspace benchmark (BENCH.md): the annotator's step view and autosave, served by gunicorn on PostgreSQL.

    .venv/bin/python bench/workspace_bench.py [--requests 300] [--rounds 5] [--steps 300] [--db-url URL] [--db-name NAME] [--port 8731]

What it does, in one run:

1. Creates a database of its own (stepwise_workspace_bench_<pid> unless --db-name: runs side by side do not
   clash), migrates it, and builds a tool-use project with a frozen
   registry and one trajectory of --steps steps whose observations total 1 MB (τ-bench-like
   JSON observations of a few KB, one of them a long tail), imports it through the real import
   path, claims it for an annotator, and vacuums (statistics and visibility, as autovacuum would).
2. Serves the app with gunicorn (the production server; 2 workers) on 127.0.0.1 and, as a client
   on loopback with keep-alive (httpx), logged in as the annotator:
   - step fragment: HX-Request GETs of steps spread over the trajectory, after a warm-up;
   - autosave: POSTs of one changed field (the label's version carried from one save to the next);
   in --rounds rounds of --requests of each (after a warm-up round of 30): p50 / p95 / p99 over all of them,
   and the median and min–max of each round's p95 (BENCH.md: repeat, print median and min–max).
3. Counts SQL queries per step fragment and per autosave in-process (Django's test client with
   CaptureQueriesContext, same code path), for a 3-step and the --steps-step trajectory.
4. Page weight: the full step page's HTML plus its CSS and JS (vendored htmx included), without
   the observation text itself.
5. Browser: Chromium (Playwright) — navigation start → the first step's card painted (a
   MutationObserver sees it, two animation frames later it is on screen), median of 5; and the
   same for the step with the 200 KB observation.

It prints figures and conditions; it asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
PASSWORD = "bench-password-1"


def _env(db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": db_url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "0",
        "CELERY_BROKER_URL": "memory://",
        "CELERY_RESULT_BACKEND": "cache+memory://",  # the import's on-commit enqueue must not fail
        "MEDIA_ROOT": f"/tmp/{db_url.rsplit('/', 1)[1]}-media",
        "PYTHONPATH": str(ROOT),
    }


def _p95(values: list[float]) -> float:
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[94]


def _rounds(p95s: list[float]) -> str:
    return (
        f"p95 per round: median {statistics.median(p95s):.1f} ms, min–max {min(p95s):.1f} – {max(p95s):.1f} "
        f"({len(p95s)} rounds)"
    )


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return f"p50 {q[49]:6.1f} ms   p95 {q[94]:6.1f} ms   p99 {q[98]:6.1f} ms   (n={len(values)})"


# --- the data ---------------------------------------------------------------------------------------


def _observation(rng: random.Random, size: int) -> str:
    rows = []
    while sum(len(r) for r in rows) < size:
        rows.append(
            json.dumps(
                {
                    "flight_number": f"HAT{rng.randint(1, 300):03d}",
                    "origin": rng.choice(["JFK", "SFO", "SEA", "ORD"]),
                    "destination": rng.choice(["LAX", "MIA", "BOS", "DEN"]),
                    "status": rng.choice(["available", "delayed", "on time"]),
                    "prices": {"economy": rng.randint(80, 300), "business": rng.randint(300, 900)},
                }
            )
        )
    return "[" + ", ".join(rows) + "]"


def build_run(steps: int, total_bytes: int = 1_000_000) -> bytes:
    """One OpenAI-chat record: `steps` tool calls whose observations add up to about `total_bytes`."""
    rng = random.Random(7)
    tail = 200_000 if total_bytes >= 400_000 else 0
    per = (total_bytes - tail) // max(1, steps - (1 if tail else 0))
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Find me the cheapest flight to LAX, user mia_li_3668."}
    ]
    for i in range(steps):
        size = tail if tail and i == steps // 2 else per  # one long tail
        call = {
            "id": f"call_{i}",
            "type": "function",
            "function": {
                "name": "search_flights",
                "arguments": json.dumps({"origin": "JFK", "destination": "LAX", "page": i}),
            },
        }
        messages.append({"role": "assistant", "content": f"Looking at page {i}.", "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "content": _observation(rng, size)})
    return (
        json.dumps({"messages": messages, "metadata": {"model": "bench-model", "rollout_id": f"bench-{steps}"}}) + "\n"
    ).encode()


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Search flights between two airports.",
            "parameters": {
                "type": "object",
                "properties": {
                    "origin": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "IATA code"},
                    "destination": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "IATA code"},
                    "page": {"type": "integer", "minimum": 0},
                },
                "required": ["origin", "destination"],
                "additionalProperties": False,
            },
        },
        "side_effects": "read",
        "latency_p99_ms": 800,
    }
]


def child_setup(steps: int) -> None:
    """In the bench database: the project, its registry, two runs (3 steps and `steps` steps), the claims."""
    import io

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from annotation.models import Assignment
    from annotation.services import assignment_claim_next
    from core.models import Role
    from core.services import membership_set, project_create
    from trajectories.models import ImportJob, Trajectory
    from trajectories.services.imports import import_job_run, source_file_store
    from trajectories.services.registries import registry_create, registry_freeze

    pm = User.objects.create_user("bench-pm", password=PASSWORD)
    annotator = User.objects.create_user("bench-annotator", password=PASSWORD)
    project = project_create(actor=pm, name="Workspace bench", kind="tool_use")
    project.gold_rate = 0.0
    project.overlap = 1
    project.save(update_fields=["gold_rate", "overlap"])
    membership_set(actor=pm, project=project, user=pm, role=Role.PROJECT_MANAGER)
    membership_set(actor=pm, project=project, user=annotator, role=Role.ANNOTATOR)
    registry_freeze(actor=pm, registry=registry_create(actor=pm, project=project, tools=TOOLS))
    for n in (3, steps):
        source = source_file_store(
            actor=pm,
            project=project,
            name=f"run-{n}.jsonl",
            stream=io.BytesIO(build_run(n, 1_000_000 if n == steps else 10_000)),
        )
        job = ImportJob.objects.create(
            project=project, source_file=source, bytes_total=source.size, format_requested="openai_chat"
        )
        import_job_run(job_id=job.pk)
    small = Trajectory.objects.get(project=project, rollout_id="bench-3")
    big = Trajectory.objects.get(project=project, rollout_id=f"bench-{steps}")
    first = assignment_claim_next(annotator=annotator, project=project)  # the real claim path (the small run)
    lease = timezone.now() + timedelta(days=1)
    Assignment.objects.filter(pk=first.pk).update(lease_expires_at=lease)
    second = Assignment.objects.create(trajectory=big, annotator=annotator, lease_expires_at=lease)
    with connection.cursor() as cursor:  # what autovacuum does to a live database: statistics, visibility
        cursor.execute("VACUUM ANALYZE")
    print(
        json.dumps(
            {
                "project": project.slug,
                "small": first.pk,
                "big": second.pk,
                "small_steps": small.step_count,
                "big_steps": big.step_count,
                "observation_bytes": sum(len(o or "") for o in big.steps.values_list("observation", flat=True)),
            }
        )
    )


def child_queries(info: dict[str, Any]) -> None:
    """SQL queries per step fragment and per autosave, in-process (the same views, Django's test client)."""
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HX_REQUEST="true", HTTP_HOST="localhost")
    assert client.login(username="bench-annotator", password=PASSWORD)
    out = {}
    for name in ("small", "big"):
        steps = info[f"{name}_steps"]
        counts = []
        for index in (0, steps // 2, steps - 1):
            url = f"/p/{info['project']}/work/{info[name]}/steps/{index}/"
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            assert response.status_code == 200, response.status_code
            counts.append(len(queries))
        version = 0
        saves = []
        for i in range(3):
            with CaptureQueriesContext(connection) as queries:
                response = client.post(
                    f"/p/{info['project']}/work/{info[name]}/steps/0/save/",
                    {"field": "comment", "comment": f"note {i}", "base_version": version, "elapsed_ms": 500},
                )
            assert response.status_code == 200, (response.status_code, response.content[:300])
            version = int(re.search(rb'id="label-version"[^>]*value="(\d+)"', response.content).group(1))
            saves.append(len(queries))
        out[name] = {"fragment": counts, "save": saves}
    print(json.dumps(out))


def _child(python: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([python, __file__, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    return done


class Server:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "config.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "2",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )

    def wait(self, timeout: float = 30) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit("gunicorn exited")
            time.sleep(0.1)
        raise SystemExit("gunicorn did not answer")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def _login(client: Any, base: str) -> None:
    client.get(f"{base}/login/")
    token = client.cookies.get("csrftoken")
    response = client.post(
        f"{base}/login/",
        data={"username": "bench-annotator", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/login/"},
    )
    if response.status_code not in (200, 302) or "sessionid" not in client.cookies:
        raise SystemExit(f"login failed: {response.status_code}")


def latency(base: str, info: dict[str, Any], requests: int, rounds: int) -> dict[str, Any]:
    """`rounds` rounds, each `requests` step fragments then `requests` autosaves (after one warm-up of 30 each),
    so a burst of load elsewhere on the machine shows as one bad round, not as the figure."""
    import httpx

    rng = random.Random(3)
    out: dict[str, Any] = {"fragment": [], "save": [], "fragment_rounds": [], "save_rounds": []}
    with httpx.Client(follow_redirects=False, timeout=30) as client:
        _login(client, base)
        token = client.cookies.get("csrftoken")
        headers = {"HX-Request": "true", "X-CSRFToken": token, "Referer": base + "/"}
        steps = info["big_steps"]
        save_url = f"{base}/p/{info['project']}/work/{info['big']}/steps/{steps // 3}/save/"
        version = 0
        for round_no in range(rounds + 1):  # round 0 is the warm-up
            count = 30 if round_no == 0 else requests
            fragment: list[float] = []
            for _ in range(count):
                url = f"{base}/p/{info['project']}/work/{info['big']}/steps/{rng.randrange(steps)}/"
                started = time.perf_counter()
                response = client.get(url, headers=headers)
                fragment.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"step fragment answered {response.status_code}")
            save: list[float] = []
            for i in range(count):
                started = time.perf_counter()
                response = client.post(
                    save_url,
                    data={
                        "field": "comment",
                        "comment": f"note {round_no}.{i}",
                        "base_version": version,
                        "elapsed_ms": 700,
                    },
                    headers=headers,
                )
                save.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"autosave answered {response.status_code}: {response.text[:300]}")
                version = int(re.search(r'id="label-version"[^>]*value="(\d+)"', response.text).group(1))
            if round_no:
                out["fragment"] += fragment
                out["save"] += save
                out["fragment_rounds"].append(_p95(fragment))
                out["save_rounds"].append(_p95(save))
        page = client.get(f"{base}/p/{info['project']}/work/{info['big']}/steps/0/")
        observation = _observation_text(page.text).encode()
        html = page.content.replace(observation, b"")
        out["page"] = [float(len(page.content))]
        out["observation"] = [float(len(observation))]
        out["html_gzip"] = [float(len(gzip.compress(html)))]
        assets = assets_gzip = 0
        for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            body = client.get(base + src, headers={"Accept-Encoding": "identity"}).content
            assets += len(body)
            assets_gzip += len(gzip.compress(body))
        out["assets"] = [float(assets)]
        out["assets_gzip"] = [float(assets_gzip)]
    return out


def _observation_text(html: str) -> str:
    start = html.find('<div class="field observation"')
    end = html.find("<!-- /observation -->", start)
    return html[start:end] if start >= 0 and end > start else ""


# Records when the step card is first on screen: the first animation frame after it is in the DOM
# (a second frame, so the browser has painted it), as milliseconds since navigation start.
_VISIBLE_PROBE = """
(() => {
  const done = () => requestAnimationFrame(() => requestAnimationFrame(() => {
    window.__stepVisible = performance.now();
  }));
  const seen = () => document.querySelector("#step-card .stepno");
  const watch = new MutationObserver(() => { if (seen()) { watch.disconnect(); done(); } });
  watch.observe(document, { childList: true, subtree: true });
})();
"""


def browser(base: str, info: dict[str, Any], index: int) -> list[float]:
    """Navigation start → the step card of step `index` painted, in Chromium, 6 loads (the first dropped)."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        # bypass_csp: only so that the probe can be polled; the page itself loads exactly as it would
        context = chromium.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        context.add_init_script(_VISIBLE_PROBE)
        page = context.new_page()
        page.goto(f"{base}/login/")
        page.fill("input[name=username]", "bench-annotator")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        url = f"{base}/p/{info['project']}/work/{info['big']}/steps/{index}/"
        for _ in range(6):
            page.goto("about:blank")
            page.goto(url, wait_until="commit")
            page.wait_for_function("window.__stepVisible !== undefined")
            times.append(page.evaluate("window.__stepVisible"))
        chromium.close()
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests of each kind per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--db-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER),
        help="the PostgreSQL server; a database name in it is used when --db-name is not given",
    )
    parser.add_argument("--db-name", help="the database to create and drop (default: stepwise_workspace_bench_<pid>)")
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--child-setup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-queries", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_setup:
        child_setup(args.child_setup)
        return
    if args.child_queries:
        child_queries(json.loads(args.child_queries))
        return
    import psycopg

    parts = urlsplit(args.db_url)
    name = args.db_name or parts.path.strip("/") or f"stepwise_workspace_bench_{os.getpid()}"
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"--db-name: letters, digits and _ only, not {name!r}")
    server_url = urlunsplit(parts._replace(path=""))
    env = _env(f"{server_url}/{name}")
    admin = f"{server_url}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    server = None
    try:
        python = sys.executable
        subprocess.run([python, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
        subprocess.run(
            [python, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v0"], env=env, cwd=ROOT, check=True
        )
        made = subprocess.run(
            [python, __file__, "--child-setup", str(args.steps)],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        info = json.loads(made.stdout.strip().splitlines()[-1])
        counted = subprocess.run(
            [python, __file__, "--child-queries", json.dumps(info)],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        queries = json.loads(counted.stdout.strip().splitlines()[-1])
        server = Server(env, args.port)
        server.wait()
        base = f"http://127.0.0.1:{args.port}"
        figures = latency(base, info, args.requests, args.rounds)
        first_visible = browser(base, info, 0)
        tail_visible = browser(base, info, info["big_steps"] // 2)
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print("== Stepwise workspace benchmark (bench/workspace_bench.py) ==")
    print(
        f"machine     : {os.cpu_count()} cores; Python {platform.python_version()}; gunicorn 2 workers on PostgreSQL; client httpx on loopback, keep-alive"
    )
    print(f"database    : {name} (created for this run, dropped at the end)")
    print(
        f"data        : a {info['big_steps']}-step trajectory, observations {info['observation_bytes'] / 1e6:.2f} MB in all (one 200 KB tail); and a {info['small_steps']}-step one"
    )
    print(f"step fragment (HTMX GET, random steps) : {_percentiles(figures['fragment'])}   target p95 ≤ 20 ms")
    print(f"                                         {_rounds(figures['fragment_rounds'])}")
    print(f"autosave (one field, versioned)        : {_percentiles(figures['save'])}   target p95 ≤ 20 ms")
    print(f"                                         {_rounds(figures['save_rounds'])}")
    print(
        f"SQL queries per step fragment          : {queries['small']['fragment']} ({info['small_steps']} steps), "
        f"{queries['big']['fragment']} ({info['big_steps']} steps)   target ≤ 10 whatever the length"
    )
    print(f"SQL queries per autosave               : {queries['small']['save']} / {queries['big']['save']}")
    weight = figures["page"][0] + figures["assets"][0] - figures["observation"][0]
    print(
        f"page weight (HTML + CSS + JS, no observation): {weight / 1024:.0f} KB as served "
        f"(HTML {figures['page'][0] / 1024:.0f} KB of which observation {figures['observation'][0] / 1024:.0f} KB; "
        f"assets {figures['assets'][0] / 1024:.0f} KB); "
        f"{(figures['html_gzip'][0] + figures['assets_gzip'][0]) / 1024:.0f} KB gzip-compressed   target ≤ 150 KB"
    )
    print(
        f"first step visible in Chromium        : median {statistics.median(first_visible):.0f} ms "
        f"(min–max {min(first_visible):.0f} – {max(first_visible):.0f}, n={len(first_visible)}; navigation start → "
        f"step 1 painted)   target ≤ 300 ms"
    )
    print(
        f"  the step with the 200 KB tail       : median {statistics.median(tail_visible):.0f} ms "
        f"(min–max {min(tail_visible):.0f} – {max(tail_visible):.0f})"
    )


if __name__ == "__main__":
    main()
