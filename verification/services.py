"""Writes of the verification app: run the machine checks on runs and store what they found.

`trajectory_verify` is the one entry point (tasks and commands call it): for each kind of check
it computes the check's inputs hash, returns at once when a CheckRun with the same verifier
version and inputs exists (re-running is a no-op), else runs the check and stores the CheckRun
and its findings in one transaction. Findings are evidence offered as suggestions; nothing here
writes a label.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import orjson
from celery import current_app
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from core.models import Project
from core.services import UserLike, audit_record
from trajectories.models import Step, Tool, ToolRegistry, Trajectory
from trajectories.selectors.registries import registry_active
from verification.checks import grounding, replay, rewards, schema
from verification.checks.base import CallView, FindingData, ToolView, canonical
from verification.checks.limits import LimitExceeded, run_limited
from verification.environments import ENVIRONMENTS, Environment
from verification.models import CheckKind, CheckRun, CheckStatus, Finding, RecordedObservation, ReplayConfig

logger = logging.getLogger(__name__)

MACHINE_KINDS = (CheckKind.SCHEMA, CheckKind.GROUNDING, CheckKind.REPLAY, CheckKind.FINAL_STATE)
VERIFY_TASK = "verification.tasks.verify_trajectories_task"
CHUNK = 100  # runs per queued task
BATCH = 300  # runs loaded and stored together
SANDBOX_TIMEOUT_S = 60.0
SANDBOX_MEMORY_MB = 512
HTTP_FIELDS = ("http_base_url", "http_routes", "http_timeout_s", "http_retries", "check_http_status")
CONFIG_FIELDS = (
    "environment",
    "seed_key",
    "default_seed",
    "use_mock_store",
    *HTTP_FIELDS,
    "volatile_keys",
    "sql_tools",
)


def _sha(*parts: Any) -> str:
    return hashlib.sha256(canonical(list(parts))).hexdigest()


# --- what the checks read ----------------------------------------------------------------------


def tool_views(registry: ToolRegistry | None) -> dict[str, ToolView]:
    if registry is None:
        return {}
    return {
        t.name: ToolView(
            name=t.name,
            parameters=t.parameters if isinstance(t.parameters, dict) else {},
            side_effects=t.side_effects,
            latency_p99_ms=t.latency_p99_ms,
            description=t.description,
        )
        for t in Tool.objects.filter(registry=registry)
    }


def replay_config_for(registry: ToolRegistry | None) -> ReplayConfig | None:
    """The registry's replay configuration, or the newest one of an earlier version of the project."""
    if registry is None:
        return None
    return (
        ReplayConfig.objects.filter(registry__project_id=registry.project_id, registry__version__lte=registry.version)
        .order_by("-registry__version")
        .first()
    )


_seed_states: OrderedDict[tuple[str, int], bytes] = OrderedDict()


def seed_state(env: Environment, seed: int) -> bytes:
    """`env.reset(seed)` as JSON, computed once per process (under the sandbox's limits) and reused."""
    key = (env.name, seed)
    cached = _seed_states.get(key)
    if cached is None:
        state = run_limited(lambda: env.reset(seed), timeout_s=SANDBOX_TIMEOUT_S, memory_mb=SANDBOX_MEMORY_MB)
        cached = _seed_states[key] = orjson.dumps(state)
        while len(_seed_states) > 16:
            _seed_states.popitem(last=False)
    return cached


def _seed(trajectory: Trajectory, config: ReplayConfig) -> int | None:
    value = (trajectory.metadata or {}).get(config.seed_key) if config.seed_key else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return config.default_seed


# --- configuration ----------------------------------------------------------------------------


@transaction.atomic
def replay_config_set(*, actor: UserLike, registry: ToolRegistry, **values: Any) -> ReplayConfig:
    """Create or change the registry's replay configuration (validated; audited)."""
    unknown = set(values) - set(CONFIG_FIELDS)
    if unknown:
        raise ValidationError({name: "not a replay setting" for name in sorted(unknown)})
    config = ReplayConfig.objects.select_for_update().filter(registry=registry).first()
    inherited = replay_config_for(registry) if config is None else None
    before = {f: getattr(config, f) for f in CONFIG_FIELDS} if config else None
    if config is None:
        config = ReplayConfig(registry=registry)
        if inherited is not None:
            for name in CONFIG_FIELDS:
                setattr(config, name, getattr(inherited, name))
    for name, value in values.items():
        setattr(config, name, value)
    _validate_config(config, registry)
    config.full_clean()
    config.save()
    audit_record(
        actor=actor,
        verb="verification.replay_config_set",
        target=config,
        project=registry.project,
        before=before,
        after={f: getattr(config, f) for f in CONFIG_FIELDS},
    )
    return config


def _validate_config(config: ReplayConfig, registry: ToolRegistry) -> None:
    errors: dict[str, str] = {}
    if config.environment and config.environment not in ENVIRONMENTS:
        errors["environment"] = f"unknown environment {config.environment!r}; known: {', '.join(sorted(ENVIRONMENTS))}"
    if config.http_base_url:
        parts = urlsplit(config.http_base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors["http_base_url"] = "must be an http(s) URL with a host"
        elif parts.query or parts.fragment or parts.username or parts.password:
            errors["http_base_url"] = "must not carry a query, a fragment or credentials"
    if not isinstance(config.http_routes, dict):
        errors["http_routes"] = "must be an object: tool name → {method, path}"
    else:
        for tool, route in config.http_routes.items():
            if not isinstance(route, dict) or not str(route.get("path", "/")).startswith("/"):
                errors["http_routes"] = f"/{tool}: a route is {{method, path}} with a path starting with '/'"
            elif str(route.get("method", "POST")).upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                errors["http_routes"] = f"/{tool}/method: must be GET, POST, PUT, PATCH or DELETE"
    for name in ("volatile_keys", "sql_tools"):
        value = getattr(config, name)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            errors[name] = "must be a list of non-empty strings"
    if not errors.get("sql_tools") and config.sql_tools:
        known = set(Tool.objects.filter(registry=registry).values_list("name", flat=True))
        missing = [name for name in config.sql_tools if name not in known]
        if missing:
            errors["sql_tools"] = f"not tools of the registry: {', '.join(missing)}"
    if errors:
        raise ValidationError(errors)


# --- running the checks -----------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """A check that ran, waiting to be stored with the rest of its batch."""

    trajectory: Trajectory
    steps: dict[int, int | None]
    kind: str
    version: str
    inputs: str
    findings: list[FindingData]
    result: dict[str, Any]
    status: str
    logs: str
    duration_ms: float


@dataclass(slots=True)
class _Batch:
    """What the checks of one batch share: the rows to store, and the mock store as it grows."""

    pending: list[_Pending] = field(default_factory=list)
    recordings: dict[tuple[int, str], list[tuple[str, int | None]]] = field(default_factory=dict)
    to_record: list[RecordedObservation] = field(default_factory=list)
    existing: set[tuple[int, str, str, str]] = field(default_factory=set)
    errored: dict[tuple[int, str, str, str], int] = field(default_factory=dict)  # → the CheckRun to replace
    sandbox: dict[str, dict[str, Any]] = field(default_factory=dict)  # "kind:trajectory id" → {"ok"} | {"error"}


@dataclass(slots=True)
class _Project:
    registry: ToolRegistry | None
    tools: dict[str, ToolView]
    config: ReplayConfig | None


@dataclass(slots=True)
class _Context:
    trajectory: Trajectory
    registry: ToolRegistry | None
    tools: dict[str, ToolView]
    calls: list[CallView]
    config: ReplayConfig | None
    batch: _Batch

    @property
    def environment(self) -> Environment | None:
        return ENVIRONMENTS.get(self.config.environment) if self.config and self.config.environment else None


RUNNERS: dict[str, Callable[[_Context], str]] = {}


def trajectory_verify(*, trajectory_id: int, kinds: Iterable[str] | None = None) -> dict[str, str]:
    """Run the checks of `kinds` (default: all machine checks) on one run. kind → created | unchanged | skipped: why."""
    outcome = _verify([trajectory_id], kinds)
    return outcome.get(trajectory_id, {"trajectory": "missing"})


def trajectories_verify(*, trajectory_ids: Iterable[int], kinds: Iterable[str] | None = None) -> dict[str, int]:
    """Run the checks on many runs, loading and storing them a batch at a time. Returns counts of outcomes."""
    ids = list(trajectory_ids)
    counts: dict[str, int] = {}
    projects: dict[int, _Project] = {}
    for start in range(0, len(ids), BATCH):
        for outcome in _verify(ids[start : start + BATCH], kinds, projects).values():
            for kind, what in outcome.items():
                key = f"{kind}:{what.split(':')[0]}"
                counts[key] = counts.get(key, 0) + 1
    return counts


def _verify(
    ids: list[int], kinds: Iterable[str] | None, projects: dict[int, _Project] | None = None
) -> dict[int, dict[str, str]]:
    wanted = [CheckKind(k).value for k in (kinds or MACHINE_KINDS)]
    sandboxed = bool({CheckKind.REPLAY.value, CheckKind.FINAL_STATE.value} & set(wanted))
    fields = ["id", "project_id", "goal_text", "content_sha256"]
    query = Trajectory.objects.filter(pk__in=ids)
    if sandboxed:  # seeds (metadata), gold actions and rewards are read only by replay and final state
        fields += [
            "metadata",
            "outcome_reward",
            "verified_reward",
            "goal__id",
            "goal__expected_actions",
            "goal__expected_outputs",
        ]
        query = query.select_related("goal")
    trajectories = list(query.only(*fields))
    if not trajectories:
        return {}
    projects = {} if projects is None else projects
    for trajectory in trajectories:
        if trajectory.project_id not in projects:
            registry = registry_active(trajectory.project_id)
            projects[trajectory.project_id] = _Project(registry, tool_views(registry), replay_config_for(registry))
    calls = _call_views_of([t.pk for t in trajectories], light=set(wanted) <= {CheckKind.SCHEMA.value})
    batch = _Batch()
    for pk, trajectory_id, kind, version, inputs, status in CheckRun.objects.filter(
        trajectory_id__in=[t.pk for t in trajectories], step__isnull=True, kind__in=wanted
    ).values_list("pk", "trajectory_id", "kind", "verifier_version", "inputs_sha256", "status"):
        if status == CheckStatus.ERROR:
            batch.errored[(trajectory_id, kind, version, inputs)] = pk
        else:
            batch.existing.add((trajectory_id, kind, version, inputs))
    contexts = [
        _Context(
            trajectory=t,
            registry=projects[t.project_id].registry,
            tools=projects[t.project_id].tools,
            calls=calls.get(t.pk, []),
            config=projects[t.project_id].config,
            batch=batch,
        )
        for t in sorted(trajectories, key=lambda t: ids.index(t.pk))
    ]
    if CheckKind.REPLAY in wanted:
        _preload_recordings(contexts)
    if CheckKind.REPLAY in wanted or CheckKind.FINAL_STATE in wanted:
        _sandbox_batch(contexts, wanted)
    outcome: dict[int, dict[str, str]] = {}
    for ctx in contexts:
        outcome[ctx.trajectory.pk] = {kind: RUNNERS[kind](ctx) for kind in wanted}
    _flush(batch, outcome)
    return outcome


_CALL_FIELDS = ("id", "trajectory_id", "index", "kind", "tool_name", "arguments", "arguments_raw", "arguments_error")
_CONTEXT_FIELDS = ("observation", "state", "plan", "latency_ms")


def _call_views_of(trajectory_ids: list[int], *, light: bool = False) -> dict[int, list[CallView]]:
    """The runs' steps as the checks see them; `light`: only what a schema check reads (no context)."""
    fields = _CALL_FIELDS if light else (*_CALL_FIELDS, *_CONTEXT_FIELDS)
    out: dict[int, list[CallView]] = {}
    # JSON columns come as text and are parsed with orjson (several times faster than the json module)
    as_text = {name: Cast(name, TextField()) for name in ("arguments", "state") if name in fields}
    rows = (
        Step.objects.filter(trajectory_id__in=trajectory_ids)
        .order_by("trajectory_id", "index")
        .values(*(f for f in fields if f not in as_text), **{f"{k}_text": v for k, v in as_text.items()})
    )
    for row in rows:
        for name in as_text:
            text = row.pop(f"{name}_text")
            row[name] = orjson.loads(text) if text is not None else None
        row.setdefault("observation", None)
        row.setdefault("state", [])
        row.setdefault("plan", "")
        row.setdefault("latency_ms", None)
        out.setdefault(row["trajectory_id"], []).append(
            CallView(
                index=row["index"],
                kind=row["kind"],
                tool_name=row["tool_name"],
                arguments=row["arguments"],
                arguments_raw=row["arguments_raw"],
                arguments_error=row["arguments_error"],
                observation=row["observation"],
                state=row["state"] if isinstance(row["state"], list) else [],
                plan=row["plan"],
                latency_ms=row["latency_ms"],
                step_id=row["id"],
            )
        )
    return out


def _lookups(ctx: _Context) -> list[tuple[CallView, str]]:
    if ctx.registry is None or (ctx.config is not None and not ctx.config.use_mock_store):
        return []
    seed = _seed(ctx.trajectory, ctx.config) if ctx.config else None
    return replay.mock_lookups(ctx.calls, ctx.tools, seed)


def _preload_recordings(contexts: list[_Context]) -> None:
    by_project: dict[int, set[str]] = {}
    for ctx in contexts:
        by_project.setdefault(ctx.trajectory.project_id, set()).update(key for _, key in _lookups(ctx))
    recordings = contexts[0].batch.recordings
    for project_id, keys in by_project.items():
        if not keys:
            continue
        for row in RecordedObservation.objects.filter(project_id=project_id, arguments_sha256__in=keys).values(
            "arguments_sha256", "observation", "step_id"
        ):
            recordings.setdefault((project_id, row["arguments_sha256"]), []).append(
                (row["observation"], row["step_id"])
            )


def _exists(ctx: _Context, kind: str, version: str, inputs: str) -> bool:
    """A finished check with these inputs exists (one that ended in an error is tried again)."""
    return (ctx.trajectory.pk, kind, version, inputs) in ctx.batch.existing


def _store(
    ctx: _Context,
    *,
    kind: str,
    version: str,
    inputs: str,
    findings: list[FindingData],
    result: dict[str, Any],
    started: float,
    status: str | None = None,
    logs: str = "",
) -> str:
    ctx.batch.pending.append(
        _Pending(
            trajectory=ctx.trajectory,
            steps={c.index: c.step_id for c in ctx.calls},
            kind=kind,
            version=version,
            inputs=inputs,
            findings=findings,
            result={**result, "findings": len(findings)},
            status=status or (CheckStatus.FLAGGED if findings else CheckStatus.PASSED),
            logs=logs,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
    )
    ctx.batch.existing.add((ctx.trajectory.pk, kind, version, inputs))
    return "created"


def _flush(batch: _Batch, outcome: dict[int, dict[str, str]]) -> None:
    """Store the batch in one transaction; should another worker have stored some of it meanwhile,
    store run by run and report those as unchanged."""
    if not batch.pending and not batch.to_record:
        return
    try:
        with transaction.atomic():
            _write(batch.pending, batch.errored)
            _write_recordings(batch.to_record)
        return
    except IntegrityError:
        pass
    by_run: dict[int, list[_Pending]] = {}
    for item in batch.pending:
        by_run.setdefault(item.trajectory.pk, []).append(item)
    for trajectory_id, items in by_run.items():
        for item in items:
            try:
                with transaction.atomic():
                    _write([item], batch.errored)
            except IntegrityError:
                outcome[trajectory_id][item.kind] = "unchanged"
    _write_recordings(batch.to_record)


def _write(pending: list[_Pending], errored: dict[tuple[int, str, str, str], int]) -> None:
    if not pending:
        return
    stale = [pk for item in pending if (pk := errored.get((item.trajectory.pk, item.kind, item.version, item.inputs)))]
    if stale:
        CheckRun.objects.filter(pk__in=stale, status=CheckStatus.ERROR).delete()
    now = timezone.now()
    runs = CheckRun.objects.bulk_create(
        [
            CheckRun(
                trajectory=item.trajectory,
                kind=item.kind,
                status=item.status,
                verifier_version=item.version,
                inputs_sha256=item.inputs,
                result=item.result,
                logs=item.logs,
                started_at=now - timedelta(milliseconds=item.duration_ms),
                finished_at=now,
                duration_ms=item.duration_ms,
            )
            for item in pending
        ]
    )
    Finding.objects.bulk_create(
        [
            Finding(
                check_run=run,
                trajectory=item.trajectory,
                step_id=item.steps.get(f.step_index) if f.step_index is not None else None,
                code=f.code,
                failure_mode=f.failure_mode,
                argument=f.argument[:200],
                pointer=f.pointer[:500],
                rule=f.rule[:500],
                value=f.value,
                message=f.message,
                evidence=f.evidence,
            )
            for item, run in zip(pending, runs, strict=True)
            for f in item.findings
        ],
        batch_size=1000,
    )
    rewarded = []
    for item in pending:
        if item.kind == CheckKind.FINAL_STATE and "reward" in item.result:
            item.trajectory.verified_reward = item.result["reward"]
            rewarded.append(item.trajectory)
    if rewarded:
        Trajectory.objects.bulk_update(rewarded, ["verified_reward"])


def _write_recordings(rows: list[RecordedObservation]) -> None:
    if rows:
        RecordedObservation.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)


def _schema(ctx: _Context) -> str:
    if ctx.registry is None:
        return "skipped: the project has no frozen registry"
    inputs = _sha(schema.VERSION, ctx.registry.sha256, ctx.trajectory.content_sha256)
    if _exists(ctx, CheckKind.SCHEMA, schema.VERSION, inputs):
        return "unchanged"
    started = time.perf_counter()
    checker = schema.schema_checker(ctx.registry.sha256, ctx.tools.values())
    findings = schema.schema_check_run(checker, ctx.calls)
    calls = sum(1 for c in ctx.calls if c.kind == "tool_call")
    result = {"registry": ctx.registry.version, "registry_sha256": ctx.registry.sha256, "calls": calls}
    return _store(
        ctx,
        kind=CheckKind.SCHEMA,
        version=schema.VERSION,
        inputs=inputs,
        findings=findings,
        result=result,
        started=started,
    )


def _grounding(ctx: _Context) -> str:
    registry_hash = ctx.registry.sha256 if ctx.registry else ""
    inputs = _sha(grounding.VERSION, registry_hash, ctx.trajectory.content_sha256)
    if _exists(ctx, CheckKind.GROUNDING, grounding.VERSION, inputs):
        return "unchanged"
    started = time.perf_counter()
    findings = grounding.grounding_check_run(goal=ctx.trajectory.goal_text, calls=ctx.calls, tools=ctx.tools)
    return _store(
        ctx,
        kind=CheckKind.GROUNDING,
        version=grounding.VERSION,
        inputs=inputs,
        findings=findings,
        result={"calls": sum(1 for c in ctx.calls if c.kind == "tool_call")},
        started=started,
    )


def _config_dict(config: ReplayConfig | None) -> dict[str, Any]:
    return {f: getattr(config, f) for f in CONFIG_FIELDS} if config else {}


def _replay(ctx: _Context) -> str:
    config = ctx.config
    if ctx.registry is None:
        return "skipped: the project has no frozen registry"
    env = ctx.environment
    seed = _seed(ctx.trajectory, config) if config else None
    use_mock = config is None or config.use_mock_store
    lookups = _lookups(ctx)
    project_id = ctx.trajectory.project_id
    recordings = {key: ctx.batch.recordings.get((project_id, key), []) for _, key in lookups}
    own = {c.step_id for c in ctx.calls if c.step_id is not None}
    recordings = {k: kept for k, v in recordings.items() if (kept := [(obs, s) for obs, s in v if s not in own])}
    recorded_digest = _sha(sorted((k, sorted(str(s) for _, s in v)) for k, v in recordings.items()))
    inputs = _sha(
        replay.VERSION,
        ctx.registry.sha256,
        ctx.trajectory.content_sha256,
        _config_dict(config),
        env.name if env else "",
        seed,
        recorded_digest,
    )
    if _exists(ctx, CheckKind.REPLAY, replay.VERSION, inputs):
        _record(ctx, lookups)
        return "unchanged"
    started = time.perf_counter()
    volatile = list(config.volatile_keys) if config else []
    findings: list[FindingData] = replay.slow_call_findings(ctx.calls, ctx.tools)
    per_call: list[dict[str, Any]] = []
    modes: list[str] = []
    logs: list[str] = []
    status = None
    if env is not None and seed is not None:
        modes.append("environment")
        try:
            replayed = _sandboxed(ctx, CheckKind.REPLAY, _replay_work(ctx))
        except LimitExceeded as exc:
            logs.append(f"environment replay stopped: {exc}")
            status = CheckStatus.ERROR
        else:
            env_outcome = replay.environment_findings(ctx.calls, replayed)
            findings += env_outcome.findings
            per_call += env_outcome.calls
    elif env is not None and config is not None:
        logs.append(f"environment {env.name}: no seed (metadata key {config.seed_key!r}, no default); not replayed")
    if use_mock and lookups:
        modes.append("mock")
        mock_outcome = replay.mock_replay(lookups, recordings, own_steps=own, volatile=volatile)
        findings += mock_outcome.findings
        per_call += mock_outcome.calls
    if config is not None and config.http_base_url:
        modes.append("http")
        settings = replay.HttpSettings(
            base_url=config.http_base_url,
            routes=config.http_routes or {},
            timeout_s=config.http_timeout_s,
            retries=config.http_retries,
            check_status=config.check_http_status,
            volatile=tuple(volatile),
        )
        http_outcome = replay.http_replay(settings, ctx.calls, ctx.tools)
        findings += http_outcome.findings
        per_call += http_outcome.calls
    result = {
        "modes": modes,
        "environment": env.name if env else "",
        "seed": seed,
        "calls": per_call,
        "matched": sum(1 for c in per_call if c.get("same")),
        "replayed": len(per_call),
    }
    stored = _store(
        ctx,
        kind=CheckKind.REPLAY,
        version=replay.VERSION,
        inputs=inputs,
        findings=findings,
        result=result,
        started=started,
        status=status,
        logs="\n".join(logs),
    )
    _record(ctx, lookups)
    return stored


def _record(ctx: _Context, lookups: list[tuple[CallView, str]]) -> None:
    """Add this run's read-only observations to the project's mock store (once each): later runs of
    the batch see them at once, the database when the batch is stored."""
    project_id = ctx.trajectory.project_id
    for call, key in lookups:
        observation = call.observation or ""
        known = ctx.batch.recordings.setdefault((project_id, key), [])
        if any(step == call.step_id for _, step in known):
            continue
        known.append((observation, call.step_id))
        ctx.batch.to_record.append(
            RecordedObservation(
                project_id=project_id,
                tool_name=call.tool_name,
                arguments_sha256=key,
                arguments=call.arguments,
                observation=observation,
                observation_sha256=hashlib.sha256(observation.encode("utf-8", "surrogatepass")).hexdigest(),
                step_id=call.step_id,
            )
        )


def _replay_work(ctx: _Context) -> Callable[[], Any] | None:
    """The environment replay of one run, as work for the sandbox; None when it has no environment or seed."""
    env, config = ctx.environment, ctx.config
    seed = _seed(ctx.trajectory, config) if config else None
    if env is None or seed is None or config is None:
        return None
    fresh = seed_state(env, seed)
    calls, volatile = ctx.calls, list(config.volatile_keys)
    return lambda: replay.environment_replay(env, state=orjson.loads(fresh), calls=calls, volatile=volatile)


def _final_state_plan(ctx: _Context) -> tuple[str, list[dict[str, Any]], list[str], int] | str:
    """(inputs hash, gold actions, expected outputs, seed), or why the check does not apply."""
    goal = ctx.trajectory.goal
    if goal is None or not isinstance(goal.expected_actions, list):
        return "skipped: the goal has no expected actions"
    env, config = ctx.environment, ctx.config
    if env is None or config is None:
        return "skipped: the registry has no sandbox environment"
    seed = _seed(ctx.trajectory, config)
    if seed is None:
        return "skipped: no environment seed for this run"
    expected_outputs = [str(o) for o in goal.expected_outputs] if isinstance(goal.expected_outputs, list) else []
    gold = [a for a in goal.expected_actions if isinstance(a, dict) and isinstance(a.get("name"), str)]
    inputs = _sha(
        rewards.VERSION, ctx.trajectory.content_sha256, gold, expected_outputs, env.name, seed, config.sql_tools
    )
    return inputs, gold, expected_outputs, seed


def _final_state_work(
    ctx: _Context, gold: list[dict[str, Any]], expected_outputs: list[str], seed: int
) -> Callable[[], Any] | None:
    env, config = ctx.environment, ctx.config
    if env is None or config is None:
        return None
    fresh = seed_state(env, seed)
    replies = [
        str(c.arguments.get("content") or "")
        for c in ctx.calls
        if c.kind == "respond" and isinstance(c.arguments, dict)
    ]
    calls, sql_tools = ctx.calls, list(config.sql_tools)
    return lambda: rewards.final_state_reward(
        env,
        fresh_state=lambda: orjson.loads(fresh),
        gold=gold,
        calls=calls,
        expected_outputs=expected_outputs,
        replies=replies,
        sql_tools=sql_tools,
    )


def _sandboxed(ctx: _Context, kind: str, work: Callable[[], Any] | None) -> Any:
    """The result of `work` for this run: from the batch's one sandbox run when it had it, else run alone."""
    done = ctx.batch.sandbox.get(f"{kind}:{ctx.trajectory.pk}")
    if done is not None:
        if "error" in done:
            raise LimitExceeded(done["error"])
        return done["ok"]
    if work is None:
        raise LimitExceeded("nothing to run in the sandbox")
    return run_limited(work, timeout_s=SANDBOX_TIMEOUT_S, memory_mb=SANDBOX_MEMORY_MB)


def _sandbox_batch(contexts: list[_Context], wanted: list[str]) -> None:
    """Run the sandbox work of the whole batch in one child under the limits (a fork per run costs more
    than most runs' replays). Should the batch as a whole not finish, each run goes alone later, so a
    run that hangs or explodes only costs itself."""
    jobs: dict[str, Callable[[], Any]] = {}
    try:
        for ctx in contexts:
            if CheckKind.REPLAY in wanted and (work := _replay_work(ctx)) is not None:
                jobs[f"{CheckKind.REPLAY}:{ctx.trajectory.pk}"] = work
            if CheckKind.FINAL_STATE in wanted:
                plan = _final_state_plan(ctx)
                if not isinstance(plan, str) and not _exists(ctx, CheckKind.FINAL_STATE, rewards.VERSION, plan[0]):
                    work = _final_state_work(ctx, plan[1], plan[2], plan[3])
                    if work is not None:
                        jobs[f"{CheckKind.FINAL_STATE}:{ctx.trajectory.pk}"] = work
    except LimitExceeded:  # an environment that cannot even reset: each run reports it on its own
        return
    if len(jobs) < 2:
        return

    def run_all() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key, work in jobs.items():
            try:
                out[key] = {"ok": work()}
            except MemoryError:
                raise
            except Exception as exc:  # the run's own failure, reported as its error
                out[key] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        return out

    try:
        ctx_results = run_limited(run_all, timeout_s=SANDBOX_TIMEOUT_S, memory_mb=SANDBOX_MEMORY_MB)
    except LimitExceeded:
        return  # each run alone, under its own limits
    contexts[0].batch.sandbox.update(ctx_results)


def _final_state(ctx: _Context) -> str:
    plan = _final_state_plan(ctx)
    if isinstance(plan, str):
        return plan
    inputs, gold, expected_outputs, seed = plan
    if _exists(ctx, CheckKind.FINAL_STATE, rewards.VERSION, inputs):
        return "unchanged"
    started = time.perf_counter()
    try:
        result = _sandboxed(ctx, CheckKind.FINAL_STATE, _final_state_work(ctx, gold, expected_outputs, seed))
    except LimitExceeded as exc:
        return _store(
            ctx,
            kind=CheckKind.FINAL_STATE,
            version=rewards.VERSION,
            inputs=inputs,
            findings=[],
            result={"error": str(exc)},
            started=started,
            status=CheckStatus.ERROR,
            logs=f"final-state replay stopped: {exc}",
        )
    result["source_reward"] = ctx.trajectory.outcome_reward
    findings = _reward_findings(result)
    return _store(
        ctx,
        kind=CheckKind.FINAL_STATE,
        version=rewards.VERSION,
        inputs=inputs,
        findings=findings,
        result=result,
        started=started,
    )


def _reward_findings(result: dict[str, Any]) -> list[FindingData]:
    findings = []
    if not result["state_match"]:
        where = ", ".join(d["pointer"] for d in result["state_diff"][:3])
        findings.append(
            FindingData(
                code="final_state_mismatch",
                rule="the final state must equal the gold actions' (τ-bench)",
                value=result["agent_state_hash"],
                message=f"the run's final state differs from the gold actions' ({len(result['state_diff'])} difference(s): {where})",
                evidence={"diff": result["state_diff"]},
            )
        )
    for output, found in result["outputs"].items():
        if not found:
            findings.append(
                FindingData(
                    code="output_missing",
                    rule="every expected output appears in a reply (τ-bench)",
                    value=output,
                    message=f"the agent never said the expected output {output!r}",
                )
            )
    sql = result.get("sql")
    if sql and not sql["match"]:
        findings.append(
            FindingData(
                code="sql_result_mismatch",
                step_index=sql["step"],
                rule="the result rows equal the gold query's (as a multiset)",
                value=sql["agent_rows"],
                message=f"the rows differ from the gold query's ({sql['agent_rows']} vs {sql['gold_rows']} rows)",
                evidence=sql,
            )
        )
    return findings


RUNNERS.update(
    {
        CheckKind.SCHEMA.value: _schema,
        CheckKind.GROUNDING.value: _grounding,
        CheckKind.REPLAY.value: _replay,
        CheckKind.FINAL_STATE.value: _final_state,
    }
)


# --- queueing -----------------------------------------------------------------------------------


def verification_enqueue(*, trajectory_ids: list[int], kinds: list[str] | None = None) -> int:
    """Queue the checks of these runs after the current transaction commits, in chunks. Returns the chunks."""
    chunks = [trajectory_ids[i : i + CHUNK] for i in range(0, len(trajectory_ids), CHUNK)]
    for chunk in chunks:
        transaction.on_commit(partial(current_app.send_task, VERIFY_TASK, args=[chunk, kinds]))
    return len(chunks)


def on_trajectories_imported(project_id: int, trajectory_ids: list[int]) -> None:
    """The import hook: check every imported run."""
    verification_enqueue(trajectory_ids=list(trajectory_ids))


@transaction.atomic
def project_verify_request(*, actor: UserLike, project: Project, kinds: list[str] | None = None) -> int:
    """Re-verify every run of the project (e.g. after a new registry version). Returns how many runs."""
    if kinds:
        bad = [k for k in kinds if k not in {k.value for k in MACHINE_KINDS}]
        if bad:
            raise ValidationError({"kinds": f"unknown check kinds: {', '.join(bad)}"})
    ids = list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    registry = registry_active(project)
    audit_record(
        actor=actor,
        verb="verification.request",
        target=project,
        project=project,
        after={
            "trajectories": len(ids),
            "kinds": kinds or [k.value for k in MACHINE_KINDS],
            "registry": registry.version if registry else None,
        },
    )
    verification_enqueue(trajectory_ids=ids, kinds=kinds)
    return len(ids)
