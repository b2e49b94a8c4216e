"""Sandbox replay of a run's calls, three ways, and the verifiable signals that come from it.

* environment: every call replayed in order on `env.reset(seed)`, so each call sees the state
  the run's earlier writes produced;
* recorded mock store: a read-only call made before the run's first write is looked up by
  tool + canonical arguments (+ seed) among the observations other runs recorded;
* HTTP sandbox: each call sent to the endpoint a project manager configured (never by default),
  with a timeout and bounded retries, redirects not followed.

Each replayed observation is compared with the recorded one (verification.checks.compare).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from verification.checks.base import LATENCY_TIMEOUT, READ_ONLY, CallView, FindingData, ToolView, canonical, short
from verification.checks.compare import Comparison, compare_observations
from verification.environments import Environment

VERSION = "replay-1"
MAX_RESPONSE_BYTES = 1 << 20
RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(slots=True)
class ReplayOutcome:
    findings: list[FindingData] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)  # per call: step, mode, same, how, latency_ms, …


def arguments_key(tool: str, arguments: Any, seed: Any = None) -> str:
    """The mock store's key: sha256 of the canonical JSON of [tool, arguments, seed]."""
    return hashlib.sha256(canonical([tool, arguments, seed])).hexdigest()


def _mismatch(call: CallView, mode: str, comparison: Comparison, replayed: str) -> FindingData:
    where = f" at {comparison.diff[0]['pointer']}" if comparison.diff and comparison.diff[0]["pointer"] else ""
    return FindingData(
        code="replay_mismatch",
        step_index=call.index,
        rule=f"the {mode} replay must give the recorded observation",
        value=short(replayed, 500),
        message=f"replaying {call.tool_name} ({mode}) gave a different observation{where}",
        evidence={"mode": mode, "diff": comparison.diff, "replayed": replayed[:4000]},
    )


def slow_call_findings(calls: Iterable[CallView], tools: Mapping[str, ToolView]) -> list[FindingData]:
    """Recorded latencies above the tool's p99."""
    out = []
    for call in calls:
        tool = tools.get(call.tool_name)
        if tool and tool.latency_p99_ms and call.latency_ms is not None and call.latency_ms > tool.latency_p99_ms:
            out.append(_slow(call, call.latency_ms, tool.latency_p99_ms, "recorded"))
    return out


def _slow(call: CallView, latency_ms: float, p99: int, source: str) -> FindingData:
    return FindingData(
        code="slow_call",
        step_index=call.index,
        failure_mode=LATENCY_TIMEOUT,
        rule=f"latency ≤ p99 ({p99} ms)",
        value=round(latency_ms, 1),
        message=f"the {source} call took {latency_ms:.0f} ms, more than {call.tool_name}'s p99 of {p99} ms",
        evidence={"source": source},
    )


def environment_replay(
    env: Environment, *, state: dict[str, Any], calls: list[CallView], volatile: Iterable[str] = ()
) -> dict[str, Any]:
    """Replay on `state` (a fresh `env.reset(seed)`; changed in place). Plain data: {"calls", "state_hash"}."""
    out = []
    volatile = list(volatile)
    for call in calls:
        if call.kind != "tool_call":
            continue
        started = time.perf_counter()
        replayed = env.call(state, call.tool_name, call.arguments if call.arguments is not None else call.arguments_raw)
        latency = (time.perf_counter() - started) * 1000
        comparison = compare_observations(call.observation, replayed, volatile=volatile)
        out.append(
            {
                "step": call.index,
                "mode": "environment",
                "same": comparison.same,
                "how": comparison.how,
                "diff": comparison.diff,
                "replayed": replayed[:4000],
                "latency_ms": round(latency, 3),
            }
        )
    return {"calls": out, "state_hash": env.state_hash(state)}


def environment_findings(calls: list[CallView], replayed: dict[str, Any]) -> ReplayOutcome:
    by_index = {c.index: c for c in calls}
    outcome = ReplayOutcome(calls=replayed["calls"])
    for item in replayed["calls"]:
        if not item["same"] and item["step"] in by_index:
            comparison = Comparison(False, item["how"], item["diff"])
            outcome.findings.append(_mismatch(by_index[item["step"]], "environment", comparison, item["replayed"]))
    return outcome


def mock_lookups(calls: list[CallView], tools: Mapping[str, ToolView], seed: Any) -> list[tuple[CallView, str]]:
    """The read-only calls before the run's first write, with their store keys."""
    out = []
    for call in calls:
        if call.kind != "tool_call":
            continue
        tool = tools.get(call.tool_name)
        if tool is None or tool.side_effects not in READ_ONLY:
            break
        if isinstance(call.arguments, dict) and call.observation is not None:
            out.append((call, arguments_key(call.tool_name, call.arguments, seed)))
    return out


def mock_replay(
    lookups: list[tuple[CallView, str]],
    recordings: Mapping[str, list[tuple[str, int | None]]],
    *,
    own_steps: set[int],
    volatile: Iterable[str] = (),
) -> ReplayOutcome:
    """Compare each looked-up call with what other runs recorded for the same key."""
    outcome = ReplayOutcome()
    volatile = list(volatile)
    for call, key in lookups:
        others = [(obs, step) for obs, step in recordings.get(key, []) if step not in own_steps]
        if not others:
            continue
        distinct: list[str] = []
        for obs, _ in others:
            if not any(compare_observations(d, obs, volatile=volatile).same for d in distinct):
                distinct.append(obs)
        comparisons = [compare_observations(call.observation, obs, volatile=volatile) for obs in distinct]
        same = next((c for c in comparisons if c.same), None)
        outcome.calls.append(
            {"step": call.index, "mode": "mock", "same": same is not None, "how": same.how if same else "differs"}
        )
        if len(distinct) > 1:
            outcome.findings.append(
                FindingData(
                    code="mock_conflict",
                    step_index=call.index,
                    rule="one call, one recorded answer",
                    value=len(distinct),
                    message=(
                        f"other runs recorded {len(distinct)} different observations for this {call.tool_name} call"
                    ),
                    evidence={
                        "observations": [short(d, 1000) for d in distinct[:5]],
                        "steps": [s for _, s in others][:20],
                    },
                )
            )
        elif same is None:
            outcome.findings.append(_mismatch(call, "recorded mock", comparisons[0], distinct[0]))
    return outcome


@dataclass(frozen=True, slots=True)
class HttpSettings:
    base_url: str
    routes: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 5.0
    retries: int = 2
    check_status: bool = False
    volatile: tuple[str, ...] = ()


def _request(settings: HttpSettings, call: CallView) -> tuple[str, str, dict[str, Any]]:
    arguments = dict(call.arguments) if isinstance(call.arguments, dict) else {}
    route = settings.routes.get(call.tool_name) or {}
    method = str(route.get("method") or "POST").upper()
    path = str(route.get("path") or f"/{quote(call.tool_name, safe='')}")
    for name in list(arguments):
        token = "{" + name + "}"
        if token in path:
            path = path.replace(token, quote(str(arguments.pop(name)), safe=""))
    kwargs: dict[str, Any] = {}
    if method in ("GET", "DELETE", "HEAD"):
        kwargs["params"] = {
            k: v if isinstance(v, str | int | float) and not isinstance(v, bool) else orjson.dumps(v).decode()
            for k, v in arguments.items()
        }
    else:
        kwargs["content"] = orjson.dumps(arguments)
        kwargs["headers"] = {"content-type": "application/json"}
    return method, settings.base_url.rstrip("/") + path, kwargs


def http_replay(
    settings: HttpSettings, calls: list[CallView], tools: Mapping[str, ToolView], *, client: httpx.Client | None = None
) -> ReplayOutcome:
    outcome = ReplayOutcome()
    base = urlsplit(settings.base_url)
    own = client or httpx.Client(timeout=settings.timeout_s, follow_redirects=False, trust_env=False)
    try:
        for call in calls:
            if call.kind != "tool_call" or not isinstance(call.arguments, dict):
                continue
            method, url, kwargs = _request(settings, call)
            target = urlsplit(url)
            if (target.scheme, target.netloc) != (base.scheme, base.netloc):
                outcome.findings.append(_http_error(call, f"the route leaves the configured host: {url}"))
                continue
            response, latency_ms, error = _send(own, settings, method, url, kwargs)
            if response is None:
                outcome.findings.append(_http_error(call, error))
                outcome.calls.append(
                    {"step": call.index, "mode": "http", "same": False, "how": "error", "error": error}
                )
                continue
            body = response.content[:MAX_RESPONSE_BYTES].decode("utf-8", "replace")
            comparison = compare_observations(call.observation, body, volatile=settings.volatile)
            outcome.calls.append(
                {
                    "step": call.index,
                    "mode": "http",
                    "same": comparison.same,
                    "how": comparison.how,
                    "status": response.status_code,
                    "latency_ms": round(latency_ms, 1),
                }
            )
            if not comparison.same:
                outcome.findings.append(_mismatch(call, "HTTP", comparison, body))
            if settings.check_status and not 200 <= response.status_code < 300:
                outcome.findings.append(
                    FindingData(
                        code="http_status",
                        step_index=call.index,
                        rule="status 2xx",
                        value=response.status_code,
                        message=f"{method} {target.path} answered {response.status_code}, not 2xx",
                        evidence={"body": body[:1000]},
                    )
                )
            tool = tools.get(call.tool_name)
            if tool and tool.latency_p99_ms and latency_ms > tool.latency_p99_ms:
                outcome.findings.append(_slow(call, latency_ms, tool.latency_p99_ms, "replayed"))
    finally:
        if client is None:
            own.close()
    return outcome


def _send(
    client: httpx.Client, settings: HttpSettings, method: str, url: str, kwargs: dict[str, Any]
) -> tuple[httpx.Response | None, float, str]:
    error = ""
    for attempt in range(settings.retries + 1):
        started = time.perf_counter()
        try:
            response = client.request(method, url, timeout=settings.timeout_s, **kwargs)
        except httpx.TimeoutException:
            error = f"no answer within {settings.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            latency_ms = (time.perf_counter() - started) * 1000
            if response.status_code not in RETRY_STATUSES:
                return response, latency_ms, ""
            error = f"status {response.status_code}"
        if attempt < settings.retries:
            time.sleep(min(2.0, 0.1 * 2**attempt))  # back off before the next bounded retry
    return None, 0.0, f"{error} (after {settings.retries + 1} attempts)"


def _http_error(call: CallView, error: str) -> FindingData:
    return FindingData(
        code="replay_error",
        step_index=call.index,
        rule="the HTTP sandbox must answer",
        message=f"replaying {call.tool_name} over HTTP failed: {error}",
        evidence={"mode": "http", "error": error},
    )
