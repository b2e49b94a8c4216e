"""HTTP sandbox replay against a real tool server on 127.0.0.1 (started per test, port 0)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.trajectories.fixtures_util import run_import
from trajectories.models import ImportStatus, Step, Trajectory
from trajectories.services.registries import registry_create, registry_freeze
from verification.checks.base import LATENCY_TIMEOUT, CallView, ToolView
from verification.checks.replay import HttpSettings, ReplayOutcome, http_replay, slow_call_findings
from verification.models import CheckRun, Finding
from verification.services import replay_config_set, trajectory_verify

STATIC = '{"order_id": "A1", "status": "shipped"}'
FLAKY_FAILURES = 2
SLOW_S = 0.2
HANG_S = 10.0  # the hanging handler waits this long at most; teardown wakes it at once


@dataclass
class ToolServer:
    """A small tool API. Every request is counted by path and logged (method, raw path, query, body)."""

    url: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    requests: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stamps: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    redirect_to: str = ""

    def total_hits(self) -> int:
        with self.lock:
            return sum(self.hits.values())


def _handler(server: ToolServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            with server.lock:
                server.hits[parts.path] += 1
                seen = server.hits[parts.path]
                server.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                        "body": json.loads(raw) if raw else None,
                        "content_type": self.headers.get("content-type"),
                    }
                )
                stamp = next(server.stamps)
            body = json.loads(raw) if raw else {}
            if parts.path == "/get_order":
                order = {
                    "order_id": body.get("order_id"),
                    "status": "shipped",
                    "updated_at": f"2024-06-01T00:00:{stamp:02d}",
                }
                self._answer(200, json.dumps(order))
            elif parts.path == "/get_order_static":
                self._answer(200, STATIC)
            elif parts.path.startswith("/orders/"):
                echo = {"id": unquote(parts.path.removeprefix("/orders/")), "query": server.requests[-1]["query"]}
                self._answer(200, json.dumps(echo))
            elif parts.path == "/flaky_lookup":
                self._answer(503 if seen <= FLAKY_FAILURES else 200, json.dumps({"attempt": seen}))
            elif parts.path == "/down_lookup":
                self._answer(503, '{"error": "unavailable"}')
            elif parts.path == "/hang_lookup":
                server.stop.wait(HANG_S)
                self._answer(200, '{"late": true}')
            elif parts.path == "/slow_lookup":
                server.stop.wait(SLOW_S)
                self._answer(200, '{"ok": true}')
            elif parts.path == "/missing_lookup":
                self._answer(404, '{"error": "no such order"}')
            elif parts.path == "/broken_lookup":
                self._answer(500, '{"error": "boom"}')
            elif parts.path == "/moved_lookup":
                self._answer(302, "moved", location=server.redirect_to)
            else:
                self._answer(400, f"unknown route {parts.path}")

        def _answer(self, status: int, text: str, *, location: str = "") -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            if location:
                self.send_header("location", location)
            self.end_headers()
            self.wfile.write(data)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) leaves a broken pipe behind: expected here


@pytest.fixture
def make_server() -> Iterator[Callable[[], ToolServer]]:
    started: list[tuple[ToolServer, ThreadingHTTPServer, threading.Thread]] = []

    def make() -> ToolServer:
        state = ToolServer()
        httpd = _QuietServer(("127.0.0.1", 0), _handler(state))
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((state, httpd, thread))
        return state

    yield make
    for state, httpd, thread in started:
        state.stop.set()  # wake sleeping handlers before server_close joins their threads
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


@pytest.fixture
def server(make_server) -> ToolServer:
    return make_server()


def _call(tool: str, arguments: dict[str, Any], observation: str | None, *, index: int = 1) -> CallView:
    return CallView(index=index, kind="tool_call", tool_name=tool, arguments=arguments, observation=observation)


def _replay(
    server: ToolServer, call: CallView, *, tools: dict[str, ToolView] | None = None, **settings: Any
) -> ReplayOutcome:
    settings.setdefault("timeout_s", 2.0)
    return http_replay(HttpSettings(base_url=server.url, **settings), [call], tools or {})


def _order(status: str = "shipped", updated_at: str = "2024-01-01T09:00:00", order_id: str = "A1") -> str:
    return json.dumps({"order_id": order_id, "status": status, "updated_at": updated_at})


# --- comparison ---------------------------------------------------------------------------------


def test_identical_bytes_match_as_bytes(server) -> None:
    outcome = _replay(server, _call("get_order_static", {"order_id": "A1"}, STATIC))
    assert outcome.findings == []
    assert [(c["how"], c["same"], c["status"]) for c in outcome.calls] == [("bytes", True, 200)]
    assert server.requests == [
        {
            "method": "POST",
            "path": "/get_order_static",
            "query": {},
            "body": {"order_id": "A1"},
            "content_type": "application/json",
        }
    ]


def test_reordered_keys_and_whitespace_match_as_structure(server) -> None:
    recorded = json.dumps({"status": "shipped", "order_id": "A1"}, indent=4)
    outcome = _replay(server, _call("get_order_static", {"order_id": "A1"}, recorded))
    assert outcome.findings == []
    assert [(c["how"], c["same"]) for c in outcome.calls] == [("structure", True)]


def test_a_volatile_key_that_differs_is_ignored(server) -> None:
    outcome = _replay(server, _call("get_order", {"order_id": "A1"}, _order()), volatile=("updated_at",))
    assert outcome.findings == []
    assert [(c["how"], c["same"]) for c in outcome.calls] == [("structure", True)]


def test_without_the_volatile_setting_the_timestamp_is_a_mismatch(server) -> None:
    outcome = _replay(server, _call("get_order", {"order_id": "A1"}, _order(), index=3))
    [finding] = outcome.findings
    assert (finding.code, finding.step_index) == ("replay_mismatch", 3)
    assert [d["pointer"] for d in finding.evidence["diff"]] == ["/updated_at"]
    assert finding.evidence["diff"][0]["recorded"] == "2024-01-01T09:00:00"
    assert finding.evidence["diff"][0]["replayed"].startswith("2024-06-01T00:00:")
    assert outcome.calls[0]["same"] is False


def test_a_different_status_value_is_a_mismatch_at_its_pointer(server) -> None:
    call = _call("get_order", {"order_id": "A1"}, _order(status="delivered"), index=2)
    outcome = _replay(server, call, volatile=("updated_at",))
    [finding] = outcome.findings
    assert finding.code == "replay_mismatch"
    assert finding.step_index == 2
    assert "at /status" in finding.message
    assert finding.evidence["diff"] == [{"pointer": "/status", "recorded": "delivered", "replayed": "shipped"}]
    assert json.loads(finding.evidence["replayed"])["status"] == "shipped"


def test_get_route_fills_the_path_parameter_and_sends_the_rest_as_query(server) -> None:
    arguments = {"order_id": "A 1/2", "verbose": True, "limit": 3, "fields": ["status"]}
    expected_query = {"verbose": "true", "limit": "3", "fields": '["status"]'}
    recorded = json.dumps({"id": "A 1/2", "query": expected_query})
    routes = {"order_lookup": {"method": "GET", "path": "/orders/{order_id}"}}
    outcome = _replay(server, _call("order_lookup", arguments, recorded), routes=routes)
    assert outcome.findings == []
    [request] = server.requests
    assert request["method"] == "GET"
    assert request["path"] == "/orders/A%201%2F2"  # the slash stays inside the one segment
    assert request["query"] == expected_query
    assert request["body"] is None


# --- retries, timeouts, status, redirects ----------------------------------------------------------


def test_bounded_retries_outlast_a_flaky_server(server) -> None:
    recorded = json.dumps({"attempt": FLAKY_FAILURES + 1})
    outcome = _replay(server, _call("flaky_lookup", {}, recorded), retries=FLAKY_FAILURES)
    assert outcome.findings == []
    assert outcome.calls[0]["status"] == 200
    assert server.hits["/flaky_lookup"] == FLAKY_FAILURES + 1


@pytest.mark.parametrize("retries", [0, 2])
def test_exhausted_retries_are_a_replay_error(server, retries: int) -> None:
    outcome = _replay(server, _call("down_lookup", {}, '{"ok": true}'), retries=retries)
    [finding] = outcome.findings
    assert finding.code == "replay_error"
    assert "status 503" in finding.message
    assert f"after {retries + 1} attempts" in finding.message
    assert outcome.calls[0]["how"] == "error"
    assert server.hits["/down_lookup"] == retries + 1


def test_a_server_that_does_not_answer_in_time_is_a_replay_error(server) -> None:
    started = time.monotonic()
    outcome = _replay(server, _call("hang_lookup", {}, '{"late": true}'), timeout_s=0.3, retries=0)
    elapsed = time.monotonic() - started
    [finding] = outcome.findings
    assert finding.code == "replay_error"
    assert "no answer within 0.3 s" in finding.message
    assert finding.evidence["error"].startswith("no answer within 0.3 s")
    assert elapsed < 2.0
    assert server.hits["/hang_lookup"] == 1


@pytest.mark.parametrize(
    ("tool", "status", "body"),
    [("missing_lookup", 404, '{"error": "no such order"}'), ("broken_lookup", 500, '{"error": "boom"}')],
)
@pytest.mark.parametrize("check_status", [True, False])
def test_a_non_2xx_answer_is_a_finding_only_when_status_is_checked(
    server, tool: str, status: int, body: str, check_status: bool
) -> None:
    outcome = _replay(server, _call(tool, {}, body), check_status=check_status, retries=2)
    assert outcome.calls[0]["status"] == status
    assert server.hits[f"/{tool}"] == 1  # 404 and 500 are answers, not retried
    if check_status:
        [finding] = outcome.findings
        assert (finding.code, finding.value) == ("http_status", status)
        assert f"answered {status}" in finding.message
    else:
        assert outcome.findings == []


def test_a_redirect_to_another_host_is_not_followed(make_server) -> None:
    server, elsewhere = make_server(), make_server()
    server.redirect_to = f"{elsewhere.url}/get_order_static"
    outcome = _replay(server, _call("moved_lookup", {}, STATIC), check_status=True)
    assert outcome.calls[0]["status"] == 302
    assert {f.code for f in outcome.findings} == {"replay_mismatch", "http_status"}
    mismatch = next(f for f in outcome.findings if f.code == "replay_mismatch")
    assert mismatch.evidence["replayed"] == "moved"  # the 302's own body, not the target's
    assert next(f for f in outcome.findings if f.code == "http_status").value == 302
    assert server.hits["/moved_lookup"] == 1
    assert elsewhere.total_hits() == 0


# --- latency ----------------------------------------------------------------------------------------


def test_replayed_latency_above_the_tools_p99_is_a_slow_call(server) -> None:
    call = _call("slow_lookup", {}, '{"ok": true}')
    tight = {"slow_lookup": ToolView(name="slow_lookup", parameters={}, latency_p99_ms=50)}
    outcome = _replay(server, call, tools=tight)
    [finding] = outcome.findings
    assert (finding.code, finding.failure_mode) == ("slow_call", LATENCY_TIMEOUT)
    assert finding.value >= SLOW_S * 1000
    assert finding.evidence == {"source": "replayed"}
    assert outcome.calls[0]["latency_ms"] >= SLOW_S * 1000

    roomy = {"slow_lookup": ToolView(name="slow_lookup", parameters={}, latency_p99_ms=5000)}
    assert _replay(server, call, tools=roomy).findings == []


def test_recorded_latency_above_the_tools_p99_is_a_slow_call() -> None:
    tools = {"get_order": ToolView(name="get_order", parameters={}, latency_p99_ms=100)}
    fast = CallView(index=1, kind="tool_call", tool_name="get_order", latency_ms=80)
    slow = CallView(index=2, kind="tool_call", tool_name="get_order", latency_ms=900)
    [finding] = slow_call_findings([fast, slow], tools)
    assert (finding.step_index, finding.failure_mode, finding.value) == (2, LATENCY_TIMEOUT, 900)
    assert finding.evidence == {"source": "recorded"}


# --- end to end through the database ------------------------------------------------------------------


GET_ORDER = {
    "type": "function",
    "function": {
        "name": "get_order",
        "description": "Look an order up.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
            "additionalProperties": False,
        },
    },
    "side_effects": "read",
    "latency_p99_ms": 2000,
}


def _record(calls: list[tuple[str, str]]) -> bytes:
    """An OpenAI chat run: one get_order call per (order_id, recorded observation)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Where are my orders?"}]
    for n, (order_id, observation) in enumerate(calls):
        messages.append(
            {
                "role": "assistant",
                "content": "Looking it up.",
                "tool_calls": [
                    {
                        "id": f"c{n}",
                        "type": "function",
                        "function": {"name": "get_order", "arguments": json.dumps({"order_id": order_id})},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": observation})
    messages.append({"role": "assistant", "content": "Both are on their way."})
    return json.dumps({"messages": messages, "metadata": {"model": "gpt-4o", "trial": 0}}).encode() + b"\n"


def test_trajectory_verify_replays_over_http_and_stores_findings(project, pm, server) -> None:
    registry = registry_freeze(
        actor=pm, registry=registry_create(actor=pm, project=project, tools=[GET_ORDER], name="orders")
    )
    replay_config_set(
        actor=pm,
        registry=registry,
        http_base_url=server.url,
        http_timeout_s=2.0,
        http_retries=0,
        volatile_keys=["updated_at"],
        use_mock_store=False,
    )
    job = run_import(project, _record([("A1", _order(order_id="A1")), ("B2", _order("pending", order_id="B2"))]))
    assert job.status == ImportStatus.DONE, job.errors
    trajectory = Trajectory.objects.get(project=project)

    assert trajectory_verify(trajectory_id=trajectory.pk, kinds=["replay"]) == {"replay": "created"}

    run = CheckRun.objects.get(trajectory=trajectory, kind="replay")
    assert run.status == "flagged"
    assert run.result["modes"] == ["http"]
    assert [(c["mode"], c["status"], c["same"]) for c in run.result["calls"]] == [
        ("http", 200, True),
        ("http", 200, False),
    ]
    assert (run.result["matched"], run.result["replayed"]) == (1, 2)
    b2 = Step.objects.get(trajectory=trajectory, kind="tool_call", arguments={"order_id": "B2"})
    [finding] = Finding.objects.filter(trajectory=trajectory)
    assert (finding.check_run_id, finding.code, finding.step_id) == (run.pk, "replay_mismatch", b2.pk)
    assert finding.evidence["diff"] == [{"pointer": "/status", "recorded": "pending", "replayed": "shipped"}]
    assert [r["body"] for r in server.requests] == [{"order_id": "A1"}, {"order_id": "B2"}]

    assert trajectory_verify(trajectory_id=trajectory.pk, kinds=["replay"]) == {"replay": "unchanged"}
    assert CheckRun.objects.filter(trajectory=trajectory).count() == 1
    assert Finding.objects.filter(trajectory=trajectory).count() == 1
    assert server.total_hits() == 2  # the no-op did not call the sandbox again
