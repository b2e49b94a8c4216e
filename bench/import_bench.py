"""Import benchmark: steps/s into PostgreSQL beside a bare COPY of the same rows (BENCH.md).

    .venv/bin/python bench/import_bench.py [--steps 100000] [--repeats 5] [--big-mb 200]

What it does, in one run:

1. Generates a corpus of τ-bench-like airline conversations as OpenAI chat JSONL (a ~6 KB
   policy system prompt in every record, user turns, assistant tool calls with JSON-string
   arguments, tool observations of up to several KB, respond steps), seeded, ≥ --steps steps.
2. Creates a database of its own (`stepwise_bench`), migrates it, and drops it at the end.
3. Imports the corpus once untimed (warm-up, and to check the counts), then dumps the rows it
   wrote in COPY text format: those are "the same step rows, already rendered".
4. Interleaves, --repeats times: the baseline (psycopg 3 `cursor.copy` of those rows into
   `bench_copy_step`, a table `LIKE trajectories_step INCLUDING ALL` plus the same deferred
   foreign keys) and ours (`source_file_store` + `import_job_run`, in-process, no Celery, in a
   fresh subprocess so its peak RSS is the import's own). Every run starts from truncated
   tables after a CHECKPOINT. Then up to two more imports, in which the memory of all the
   import's processes is sampled from this process (reading it takes CPU from the import:
   the timed runs go without it).
5. Optionally imports one file of --big-mb MB (the corpus scaled up) to show that memory does
   not grow with the file.

It prints figures and conditions; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432"
DEFAULT_DB_NAME = "stepwise_bench"
APP_TABLES = (  # what an import writes; truncated (with what hangs off them) before every run
    "trajectories_step",
    "trajectories_trajectory",
    "trajectories_goal",
    "trajectories_importjob",
    "trajectories_sourcefile",
    "core_auditevent",
    "core_project",
)
COPY_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------
# The corpus: τ-bench airline conversations (shape of sierra-research/tau-bench
# historical_trajectories/gpt-4o-airline.json), as OpenAI chat JSONL.
# ---------------------------------------------------------------------------------------------

AIRPORTS = (
    "JFK",
    "SFO",
    "SEA",
    "ATL",
    "ORD",
    "LAX",
    "DFW",
    "DEN",
    "PHX",
    "BOS",
    "MIA",
    "LGA",
    "EWR",
    "IAH",
    "MSP",
    "DTW",
)
FIRST = (
    "Mohamed",
    "Raj",
    "Liam",
    "Sofia",
    "Yusuf",
    "Mei",
    "Olivia",
    "Noah",
    "Amelia",
    "Ivan",
    "Aarav",
    "Chen",
    "Lucas",
    "Fatima",
    "Ethan",
    "Isabella",
)
LAST = (
    "Silva",
    "Sanchez",
    "Wilson",
    "Kim",
    "Hernandez",
    "Ito",
    "Rossi",
    "Garcia",
    "Nguyen",
    "Brown",
    "Patel",
    "Lopez",
    "Muller",
    "Khan",
    "Taylor",
    "Moore",
)
CABINS = ("basic_economy", "economy", "business")
WORDS = (
    "reservation",
    "flight",
    "booking",
    "passenger",
    "baggage",
    "cabin",
    "upgrade",
    "certificate",
    "gift",
    "card",
    "refund",
    "policy",
    "travel",
    "insurance",
    "cancel",
    "change",
    "date",
    "price",
    "total",
    "payment",
    "method",
    "membership",
    "silver",
    "gold",
    "regular",
    "please",
    "confirm",
    "details",
    "available",
    "seats",
    "direct",
    "one-stop",
    "itinerary",
    "departure",
    "arrival",
    "option",
    "cheapest",
    "business",
    "economy",
    "compensation",
    "delayed",
    "user",
    "id",
    "profile",
    "balance",
    "amount",
    "charge",
)


def _policy_text() -> str:
    """A ~6 KB airline agent policy (τ-bench repeats its policy as the system prompt of every run)."""
    rng = random.Random(7)
    parts = [
        "# Airline Agent Policy\n\nThe current time is 2024-05-15 15:00:00 EST.\n\n"
        "As an airline agent, you can help users book, modify, or cancel flight reservations.\n"
    ]
    for section in ("Domain Basic", "Book flight", "Modify flight", "Cancel flight", "Refund", "Compensation"):
        parts.append(f"\n## {section}\n")
        for _ in range(7):
            sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(14, 24)))
            parts.append(f"\n- {sentence.capitalize()}.\n")
    return "".join(parts)


POLICY = _policy_text()


class CorpusGenerator:
    """Seeded generator of unique τ-bench-like records; counts the steps the importer will make."""

    def __init__(self, seed: int = 42) -> None:
        self.rng = random.Random(seed)
        self.records = 0

    def _id(self, n: int, alphabet: str = string.ascii_uppercase + string.digits) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def _text(self, lo: int, hi: int) -> str:
        words = [self.rng.choice(WORDS) for _ in range(self.rng.randint(lo, hi))]
        return " ".join(words).capitalize() + "."

    def _flight(self, origin: str, destination: str, date: str) -> dict:
        rng = self.rng
        return {
            "flight_number": f"HAT{rng.randint(1, 299):03d}",
            "origin": origin,
            "destination": destination,
            "scheduled_departure_time_est": f"{rng.randint(0, 23):02d}:00:00",
            "scheduled_arrival_time_est": f"{rng.randint(0, 23):02d}:30:00",
            "status": "available",
            "available_seats": {c: rng.randint(0, 20) for c in CABINS},
            "prices": {c: rng.randint(50, 500) for c in CABINS},
            "date": date,
        }

    def _observation(self, tool: str, user: dict) -> str:
        """A tool result of realistic size: a few bytes (calculate, think) to several KB (searches)."""
        rng = self.rng
        date = f"2024-05-{rng.randint(16, 30)}"
        a, b, c = rng.sample(AIRPORTS, 3)
        if tool == "get_user_details":
            methods = {}
            for _ in range(rng.randint(2, 7)):
                kind = rng.choice(("credit_card", "gift_card", "certificate"))
                pid = f"{kind}_{rng.randint(1000000, 9999999)}"
                methods[pid] = {"source": kind, "amount": rng.randint(50, 500), "id": pid}
            value = {
                "name": user["name"],
                "address": {
                    "address1": f"{rng.randint(1, 999)} Elm Street",
                    "city": "Los Angeles",
                    "country": "USA",
                    "zip": f"{rng.randint(10000, 99999)}",
                },
                "email": user["email"],
                "dob": user["dob"],
                "payment_methods": methods,
                "saved_passengers": [
                    {"first_name": rng.choice(FIRST), "last_name": rng.choice(LAST), "dob": "1986-09-12"}
                    for _ in range(rng.randint(0, 3))
                ],
                "membership": rng.choice(("regular", "silver", "gold")),
                "reservations": [self._id(6) for _ in range(rng.randint(1, 6))],
            }
        elif tool in (
            "get_reservation_details",
            "cancel_reservation",
            "book_reservation",
            "update_reservation_flights",
        ):
            if tool == "book_reservation" and rng.random() < 0.3:
                return f"Error: payment amount does not add up, total price is {rng.randint(500, 5000)}, but paid {rng.randint(100, 499)}"
            value = {
                "reservation_id": self._id(6),
                "user_id": user["id"],
                "origin": a,
                "destination": b,
                "flight_type": "round_trip",
                "cabin": rng.choice(CABINS),
                "flights": [
                    {
                        "origin": x,
                        "destination": y,
                        "flight_number": f"HAT{rng.randint(1, 299):03d}",
                        "date": date,
                        "price": rng.randint(50, 500),
                    }
                    for x, y in ((a, c), (c, b), (b, a))
                ],
                "passengers": [
                    {"first_name": rng.choice(FIRST), "last_name": rng.choice(LAST), "dob": "1960-11-26"}
                    for _ in range(rng.randint(1, 4))
                ],
                "payment_history": [
                    {"payment_id": f"gift_card_{rng.randint(1000000, 9999999)}", "amount": rng.randint(100, 900)}
                ],
                "created_at": "2024-05-14T16:03:16",
                "total_baggages": rng.randint(0, 3),
                "nonfree_baggages": 0,
                "insurance": "no",
            }
        elif tool == "search_direct_flight":
            value = [self._flight(a, b, date) for _ in range(rng.randint(0, 6))]
        elif tool == "search_onestop_flight":
            value = [[self._flight(a, c, date), self._flight(c, b, date)] for _ in range(rng.randint(1, 9))]
        elif tool == "calculate":
            return f"{rng.randint(100, 5000)}.0"
        else:  # think
            return ""
        return json.dumps(value)

    def _arguments(self, tool: str, user: dict) -> str:
        rng = self.rng
        a, b = rng.sample(AIRPORTS, 2)
        if tool == "get_user_details":
            args = {"user_id": user["id"]}
        elif tool in ("get_reservation_details", "cancel_reservation"):
            args = {"reservation_id": self._id(6)}
        elif tool in ("search_direct_flight", "search_onestop_flight"):
            args = {"origin": a, "destination": b, "date": f"2024-05-{rng.randint(16, 30)}"}
        elif tool == "calculate":
            args = {"expression": f"{rng.randint(100, 999)} + ({rng.randint(100, 999)} + {rng.randint(100, 999)})"}
        elif tool == "think":
            args = {"thought": self._text(15, 40)}
        else:
            args = {
                "user_id": user["id"],
                "origin": a,
                "destination": b,
                "flight_type": "round_trip",
                "cabin": rng.choice(CABINS),
                "flights": [
                    {"flight_number": f"HAT{rng.randint(1, 299):03d}", "date": "2024-05-28"}
                    for _ in range(rng.randint(1, 4))
                ],
                "passengers": [{"first_name": rng.choice(FIRST), "last_name": rng.choice(LAST), "dob": "1980-03-27"}],
                "payment_methods": [
                    {"payment_id": f"certificate_{rng.randint(1000000, 9999999)}", "amount": rng.randint(100, 900)}
                ],
                "total_baggages": 0,
                "nonfree_baggages": 0,
                "insurance": "no",
            }
        return json.dumps(args, separators=(",", ":"))

    def record(self) -> tuple[bytes, int]:
        """One JSONL line and the number of steps it segments into."""
        rng = self.rng
        n = self.records
        self.records += 1
        first, last = rng.choice(FIRST), rng.choice(LAST)
        user = {
            "id": f"{first.lower()}_{last.lower()}_{rng.randint(1000, 9999)}",
            "name": {"first_name": first, "last_name": last},
            "email": f"{first.lower()}.{last.lower()}{rng.randint(1000, 9999)}@example.com",
            "dob": f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        }
        messages = [{"role": "system", "content": POLICY}, {"role": "user", "content": self._text(12, 40)}]
        steps = 0
        for _ in range(rng.randint(3, 16)):  # assistant actions; τ-bench airline runs have 2–21
            if rng.random() < 0.6:
                tool = rng.choice(
                    (
                        "get_user_details",
                        "get_reservation_details",
                        "search_direct_flight",
                        "search_onestop_flight",
                        "calculate",
                        "think",
                        "book_reservation",
                        "cancel_reservation",
                        "update_reservation_flights",
                    )
                )
                call_id = "call_" + self._id(24, string.ascii_letters + string.digits)
                messages.append(
                    {
                        "content": None,
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "function": {"arguments": self._arguments(tool, user), "name": tool},
                                "id": call_id,
                                "type": "function",
                            }
                        ],
                    }
                )
                messages.append(
                    {"role": "tool", "tool_call_id": call_id, "name": tool, "content": self._observation(tool, user)}
                )
            else:
                messages.append({"content": self._text(20, 120), "role": "assistant"})
                messages.append({"role": "user", "content": self._text(8, 40)})
            steps += 1
        task = n % 50
        record = {
            "messages": messages,
            "metadata": {
                "model": "gpt-4o",
                "scaffold": "tau-bench",
                "goal_id": f"airline-{task}",
                "trial": n // 50,
                "rollout_id": f"airline-{task}-{n}",
                "reward": float(rng.random() < 0.5),
            },
        }
        return json.dumps(record).encode() + b"\n", steps

    def write(self, path: Path, *, min_steps: int = 0, min_bytes: int = 0) -> dict:
        steps = trajectories = size = 0
        with open(path, "wb") as out:
            while steps < min_steps or size < min_bytes:
                line, n = self.record()
                out.write(line)
                steps += n
                trajectories += 1
                size += len(line)
        return {"steps": steps, "trajectories": trajectories, "bytes": size}


# ---------------------------------------------------------------------------------------------
# The child: one import, in a process of its own (its ru_maxrss is the import's peak; the parse
# workers it forks are its children, waited for: ru_maxrss of RUSAGE_CHILDREN is the largest).
# ---------------------------------------------------------------------------------------------


def _rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _tree_memory_kb(pid: int, *, pss: bool) -> tuple[int, int, int]:
    """(RSS summed, PSS summed or 0, processes) of `pid` and its descendants, now; zeros once gone.

    RSS counts the pages a forked worker shares with its parent in both; PSS divides them
    among the processes that share them, so its sum is what the tree holds in memory. RSS is
    read from /proc/PID/status (a counter); PSS needs smaps_rollup, which walks the process's
    page tables: about 3 ms of CPU per process here, taken from the import being measured.
    """
    rss = pss_kb = count = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                        break
            if pss:
                with open(f"/proc/{current}/smaps_rollup") as rollup:
                    for line in rollup:
                        if line.startswith("Pss:"):
                            pss_kb += int(line.split()[1])
            count += 1
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return rss, pss_kb, count


def child_import(path: str) -> None:
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.db import transaction

    from core.models import Project
    from core.services import audit_record
    from trajectories.models import ImportJob
    from trajectories.services.imports import import_job_run, source_file_store

    project = Project.objects.create(name="Bench", slug="bench", kind="tool_use")
    rss_before = _rss_kb()
    started = time.perf_counter()
    # The path a user triggers (import_job_create without the Celery send, then the worker's run).
    with open(path, "rb") as stream:
        source = source_file_store(actor=None, project=project, name=os.path.basename(path), stream=stream)
    stored = time.perf_counter()
    with transaction.atomic():
        job = ImportJob.objects.create(project=project, source_file=source, bytes_total=source.size)
        audit_record(actor=None, verb="import.create", target=job, project=project, after={"file": source.name})
    job = import_job_run(job_id=job.pk)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "store_seconds": stored - started,
                "status": job.status,
                "steps": job.steps_imported,
                "trajectories": job.trajectories_imported,
                "rejected": job.rejected,
                "error": job.error,
                "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "children_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                "rss_before_kb": rss_before,
            }
        )
    )


# ---------------------------------------------------------------------------------------------
# The parent: database, baseline, orchestration, report.
# ---------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, db_url: str, workdir: Path) -> None:
        self.db_url = db_url
        parts = urlsplit(db_url)
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.db_name = parts.path.lstrip("/")
        self.workdir = workdir
        self.media = workdir / "media"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": db_url,
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-secret-key",
            "MEDIA_ROOT": str(self.media),
            # the broker's files (without REDIS_URL or CELERY_BROKER_URL, a filesystem broker) under the
            # workdir: the messages an import queues (the checks of its runs) must not reach a real worker
            "STEPWISE_VAR_DIR": str(workdir / "var"),
            "PYTHONPATH": str(ROOT),
        }

    def create_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=self.env, cwd=ROOT, check=True)
        with self.connect() as conn:
            # The baseline's tables: same columns, indexes, checks and (deferred) foreign keys.
            conn.execute("CREATE TABLE bench_copy_trajectory (LIKE trajectories_trajectory INCLUDING ALL)")
            conn.execute("CREATE TABLE bench_copy_step (LIKE trajectories_step INCLUDING ALL)")
            conn.execute(
                "ALTER TABLE bench_copy_step ADD FOREIGN KEY (trajectory_id) REFERENCES bench_copy_trajectory (id) "
                "DEFERRABLE INITIALLY DEFERRED"
            )
            conn.execute(
                "ALTER TABLE bench_copy_step ADD FOREIGN KEY (tool_id) REFERENCES trajectories_tool (id) "
                "DEFERRABLE INITIALLY DEFERRED"
            )

    def drop_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.db_url, autocommit=True)

    def fresh(self, *tables: str) -> None:
        """Empty tables, and checkpoint so that no run pays for the previous one's dirty pages."""
        with self.connect() as conn:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
            conn.execute("CHECKPOINT")
        shutil.rmtree(self.media, ignore_errors=True)

    def import_once(self, path: Path, *, sample: bool = True) -> dict:
        """One import in a fresh subprocess; with `sample`, the memory of its whole process tree is
        sampled meanwhile (which takes CPU from the import: the timed runs go without)."""
        self.fresh(*APP_TABLES)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            child = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child-import", str(path)],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=err,
            )
            # The memory of every process involved: the import and the parse workers it forks,
            # sampled from outside (this process) so that the import runs undisturbed: RSS every
            # 20 ms, PSS (costly to read) every 200 ms.
            peak_rss = peak_pss = peak_processes = samples = 0
            if not sample:
                child.wait()
            while child.poll() is None:
                rss, pss, processes = _tree_memory_kb(child.pid, pss=samples % 10 == 0)
                samples += 1
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
                peak_processes = max(peak_processes, processes)
                time.sleep(0.02)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(), err.read().decode()
        if child.returncode != 0:
            raise SystemExit(f"the import subprocess failed (exit {child.returncode}):\n{stderr[-3000:]}")
        result = json.loads(stdout.strip().splitlines()[-1])
        result.update(tree_rss_kb=peak_rss, tree_pss_kb=peak_pss, processes=peak_processes)
        return result

    def dump_rows(self) -> None:
        """The rows the import wrote, rendered by PostgreSQL in COPY text format."""
        with self.connect() as conn, conn.cursor() as cur:
            for table, name in (("trajectories_trajectory", "trajectory"), ("trajectories_step", "step")):
                with (
                    open(self.workdir / f"{name}.copy", "wb") as out,
                    cur.copy(f"COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT") as copy,
                ):
                    for data in copy:
                        out.write(data)

    def _copy_file(self, conn: psycopg.Connection, table: str, name: str) -> float:
        started = time.perf_counter()
        with (
            open(self.workdir / f"{name}.copy", "rb") as rows,
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY {table} FROM STDIN") as copy,
        ):
            while data := rows.read(COPY_CHUNK):
                copy.write(data)
        return time.perf_counter() - started  # the commit (and its deferred FK checks) included

    def copy_once(self) -> tuple[float, float]:
        """(seconds for the step rows, seconds for the trajectory rows that they reference)."""
        self.fresh("bench_copy_step", "bench_copy_trajectory")
        with psycopg.connect(self.db_url) as conn:
            trajectory_seconds = self._copy_file(conn, "bench_copy_trajectory", "trajectory")
            step_seconds = self._copy_file(conn, "bench_copy_step", "step")
        return step_seconds, trajectory_seconds

    def server_version(self) -> str:
        with self.connect() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]


def _fmt_rate(values: list[float]) -> str:
    return f"{statistics.median(values):>10,.0f} steps/s   (min–max {min(values):,.0f} – {max(values):,.0f})"


def _check(result: dict, expected: dict) -> str:
    if (
        result["status"] != "done"
        or result["steps"] != expected["steps"]
        or result["trajectories"] != expected["trajectories"]
    ):
        return (
            f"  !! import did not write the expected rows: status={result['status']} steps={result['steps']} "
            f"trajectories={result['trajectories']} rejected={result['rejected']} error={result['error']!r}"
        )
    return ""


def _database_url(server_url: str, name: str) -> str:
    """The server URL with the benchmark's database: `name`, else the URL's own, else the default."""
    parts = urlsplit(server_url)
    name = name or parts.path.lstrip("/") or DEFAULT_DB_NAME
    return urlunsplit(parts._replace(path="/" + name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=100_000, help="at least this many steps in the corpus (default 100000)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved baseline/import pairs (default 5)")
    parser.add_argument(
        "--big-mb", type=int, default=200, help="size of the one big-file import, MB; 0 skips it (default 200)"
    )
    parser.add_argument(
        "--db-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
        help="the PostgreSQL server (a database named in the URL is the one to create, use and drop)",
    )
    parser.add_argument(
        "--db-name",
        default=os.environ.get("BENCH_DATABASE_NAME", ""),
        help=f"database to create, use and drop; overrides the URL's (default {DEFAULT_DB_NAME}); "
        "give each person or worktree its own, so that two runs cannot drop each other's",
    )
    parser.add_argument(
        "--format",
        default="openai_chat",
        choices=["openai_chat", "tau_bench", "swe_agent", "openhands"],
        help="corpus format: generated OpenAI chat (default), or one scaled up from a real sample",
    )
    parser.add_argument("--child-import", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        child_import(args.child_import)
        return

    import django

    workdir = Path(tempfile.mkdtemp(prefix="stepwise-import-bench-"))
    bench = Bench(_database_url(args.db_url, args.db_name), workdir)
    out = lambda text="": print(text, flush=True)  # noqa: E731
    try:
        started = time.perf_counter()
        if args.format == "openai_chat":
            corpus_path = workdir / "corpus.jsonl"
            corpus = CorpusGenerator(seed=42).write(corpus_path, min_steps=args.steps)
            shape = "OpenAI chat JSONL, τ-bench airline shape"
        else:
            sys.path.insert(0, str(ROOT))
            from bench.corpora import CORPORA

            make, suffix = CORPORA[args.format]
            corpus_path = workdir / f"corpus.{suffix}"
            corpus = make(corpus_path, args.steps)
            shape = f"{args.format} ({suffix}), scaled up from the real sample's structure"
            args.big_mb = 0  # the big-file run is about memory, shown once with the OpenAI corpus
        out(
            f"generated {corpus['steps']:,} steps in {corpus['trajectories']:,} trajectories, "
            f"{corpus['bytes'] / 1e6:.1f} MB, in {time.perf_counter() - started:.1f} s"
        )
        bench.create_database()
        warm = bench.import_once(corpus_path)
        if problem := _check(warm, corpus):
            raise SystemExit(f"the warm-up import failed, so there is nothing to measure:{problem}")
        out(f"warm-up import: {corpus['steps'] / warm['seconds']:,.0f} steps/s")
        bench.dump_rows()

        copy_rates, copy_both_rates, import_rates, ratios, peaks = [], [], [], [], []
        worker_peaks, tree_rss, tree_pss = [], [], []
        for i in range(1, args.repeats + 1):
            step_s, trajectory_s = bench.copy_once()
            copy_rates.append(corpus["steps"] / step_s)
            copy_both_rates.append(corpus["steps"] / (step_s + trajectory_s))
            result = bench.import_once(corpus_path, sample=False)
            import_rates.append(corpus["steps"] / result["seconds"])
            ratios.append(import_rates[-1] / copy_rates[-1])
            peaks.append(result["maxrss_kb"] / 1024)
            worker_peaks.append(result["children_maxrss_kb"] / 1024)
            out(
                f"run {i}/{args.repeats}: COPY {copy_rates[-1]:,.0f} steps/s ({step_s:.2f} s; +trajectory rows {trajectory_s:.2f} s), "
                f"import {import_rates[-1]:,.0f} steps/s ({result['seconds']:.2f} s, of which storing the file {result['store_seconds']:.2f} s), peak RSS {peaks[-1]:.0f} MB "
                f"(+ largest worker {worker_peaks[-1]:.0f} MB)" + _check(result, corpus)
            )
        # The memory of every process at once, in runs of their own (sampling it takes CPU from the import).
        for i in range(1, min(args.repeats, 2) + 1):
            result = bench.import_once(corpus_path)
            peaks.append(result["maxrss_kb"] / 1024)
            worker_peaks.append(result["children_maxrss_kb"] / 1024)
            tree_rss.append(result["tree_rss_kb"] / 1024)
            tree_pss.append(result["tree_pss_kb"] / 1024)
            out(
                f"memory run {i}: import {corpus['steps'] / result['seconds']:,.0f} steps/s while sampled, peak RSS {peaks[-1]:.0f} MB "
                f"(+ largest of {result['processes'] - 1} workers {worker_peaks[-1]:.0f} MB; all processes: RSS {tree_rss[-1]:.0f} MB, PSS {tree_pss[-1]:.0f} MB)"
                + _check(result, corpus)
            )

        big = None
        if args.big_mb > 0:
            big_path = workdir / "big.jsonl"
            big_corpus = CorpusGenerator(seed=43).write(big_path, min_bytes=args.big_mb * 1_000_000)
            corpus_path.unlink()
            big = (big_corpus, bench.import_once(big_path))
            big_path.unlink()

        import_cmd = "source_file_store + import_job_run (read, parse, segment, hash, store with payload, commit)"
        out()
        out("== Stepwise import benchmark (bench/import_bench.py) ==")
        out(
            f"corpus      : {corpus['steps']:,} steps in {corpus['trajectories']:,} trajectories; "
            f"{corpus['bytes'] / 1e6:.1f} MB of {shape}"
        )
        out(
            f"machine     : {os.cpu_count()} cores; Python {platform.python_version()}, Django {django.__version__}, "
            f"psycopg {psycopg.__version__} (libpq {psycopg.pq.version()}), PostgreSQL {bench.server_version()}"
        )
        out(
            f"protocol    : {args.repeats} interleaved pairs (COPY, import, …); tables truncated + CHECKPOINT before each run"
        )
        broker = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "filesystem://"
        out(f"broker      : {urlsplit(broker).scheme} (where the import queues the checks of its runs)")
        out(f"COPY        : {_fmt_rate(copy_rates)}   step rows, pre-rendered, into bench_copy_step")
        out(f"import      : {_fmt_rate(import_rates)}   {import_cmd}")
        out(
            f"ratio       : {statistics.median(import_rates) / statistics.median(copy_rates):.2f} × COPY   "
            f"(per pair {min(ratios):.2f} – {max(ratios):.2f}; target ≥ 0.50)"
        )
        out(
            f"peak RSS    : {statistics.median(peaks):.0f} MB median, {max(peaks):.0f} MB max (import subprocess, ru_maxrss)"
        )
        out(
            f"  workers   : {statistics.median(worker_peaks):.0f} MB median, {max(worker_peaks):.0f} MB max "
            "(the largest parse worker, ru_maxrss of RUSAGE_CHILDREN; 0 when none ran)"
        )
        out(
            f"  all       : {statistics.median(tree_rss):.0f} MB median, {max(tree_rss):.0f} MB max RSS summed over the import "
            f"and its workers (PSS {statistics.median(tree_pss):.0f} MB median, {max(tree_pss):.0f} MB max; "
            "sampled every 20 ms, PSS every 200 ms, in the memory runs; target < 300 MB)"
        )
        out(f"for context : COPY of step + trajectory rows (payload blobs) {_fmt_rate(copy_both_rates)}")
        if big is not None:
            big_corpus, result = big
            out(
                f"big file    : {big_corpus['bytes'] / 1e6:.1f} MB, {big_corpus['steps']:,} steps in {big_corpus['trajectories']:,} "
                f"trajectories: import {big_corpus['steps'] / result['seconds']:,.0f} steps/s ({result['seconds']:.1f} s), "
                f"peak RSS {result['maxrss_kb'] / 1024:.0f} MB" + _check(result, big_corpus)
            )
    finally:
        bench.drop_database()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
