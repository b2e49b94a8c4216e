"""Verification pages: who sees what, the replay configuration form, re-verification, escaping, query budget."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AuditEvent, Project
from tests.conftest import login
from tests.trajectories.fixtures_util import run_import
from trajectories.models import ImportStatus, ToolRegistry, Trajectory
from trajectories.services.goals import goal_create
from trajectories.services.registries import registry_create, registry_freeze
from verification.environments import AirlineEnvironment, tool_spec
from verification.models import CheckRun, Finding, ReplayConfig
from verification.services import replay_config_set, trajectory_verify

pytestmark = pytest.mark.smoke

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
_ID = {"type": "string", "pattern": "^[A-Z0-9]{6}$"}
TOOLS = [
    tool_spec(
        name="get_reservation_details",
        description="Read a reservation.",
        properties={"reservation_id": _ID},
        required=["reservation_id"],
        side_effects="read",
        latency_p99_ms=500,
    ),
    tool_spec(
        name="cancel_reservation",
        description="Cancel a reservation.",
        properties={"reservation_id": _ID},
        required=["reservation_id"],
        side_effects="write",
        latency_p99_ms=500,
    ),
]


def _call(call_id: str, name: str, arguments: dict[str, Any], observation: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": observation},
    ]


def _record(
    calls: list[tuple[str, dict[str, Any], str]], *, goal: str = "Cancel reservation ZFA04Y", **metadata: Any
) -> bytes:
    messages: list[dict[str, Any]] = [{"role": "user", "content": goal}]
    for i, (name, arguments, observation) in enumerate(calls):
        messages += _call(f"c{i}", name, arguments, observation)
    messages.append({"role": "assistant", "content": "Done."})
    record = {"messages": messages, "metadata": {"model": "gpt-4o", "trial": 0, "reward": 1, **metadata}}
    return json.dumps(record).encode() + b"\n"


def _import(project: Project, data: bytes) -> Trajectory:
    before = set(Trajectory.objects.filter(project=project).values_list("id", flat=True))
    job = run_import(project, data)
    assert job.status == ImportStatus.DONE, job.errors
    return Trajectory.objects.filter(project=project).exclude(id__in=before).get()


@pytest.fixture
def registry(project, pm) -> ToolRegistry:
    return registry_freeze(actor=pm, registry=registry_create(actor=pm, project=project, tools=TOOLS, name="Desk"))


@pytest.fixture
def flagged(project, registry) -> Trajectory:
    """A run with an invented argument holding HTML and a call to a tool the registry does not have."""
    trajectory = _import(
        project,
        _record(
            [
                ("cancel_reservation", {"reservation_id": "ZFA04Y", "note": HOSTILE}, '{"status": "cancelled"}'),
                ("cancel_reservaton", {"reservation_id": "ZFA04Y"}, "error: unknown tool"),
            ]
        ),
    )
    trajectory_verify(trajectory_id=trajectory.pk)
    return trajectory


def _urls(project: Project, trajectory: Trajectory) -> dict[str, str]:
    slug = project.slug
    return {
        "overview": reverse("verification:overview", kwargs={"project_slug": slug}),
        "config": reverse("verification:config", kwargs={"project_slug": slug}),
        "verify": reverse("verification:verify_request", kwargs={"project_slug": slug}),
        "evidence": reverse(
            "verification:trajectory_evidence", kwargs={"project_slug": slug, "trajectory_id": trajectory.pk}
        ),
    }


def _config_post(**changes: Any) -> dict[str, Any]:
    data = {
        "environment": "",
        "seed_key": "env_seed",
        "default_seed": "",
        "use_mock_store": "on",
        "http_base_url": "",
        "http_routes": "",
        "http_timeout_s": "5",
        "http_retries": "2",
        "volatile_keys": "",
        "sql_tools": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_findings_exist_through_the_real_checks(flagged) -> None:
    codes = set(Finding.objects.filter(trajectory=flagged).values_list("code", flat=True))
    assert {"unexpected_property", "unknown_tool"} <= codes


def test_outsider_and_annotator_get_404_everywhere(project, flagged, outsider, annotator) -> None:
    for user in (outsider, annotator):
        client = login(user)
        urls = _urls(project, flagged)
        for name in ("overview", "config", "evidence"):
            assert client.get(urls[name]).status_code == 404, (user, name)
        assert client.post(urls["config"], _config_post(seed_key="x")).status_code == 404
        assert client.post(urls["verify"]).status_code == 404
    assert not ReplayConfig.objects.exists()
    assert not AuditEvent.objects.filter(verb="verification.request").exists()


def test_unknown_trajectory_is_404(project, registry, pm_client) -> None:
    url = reverse("verification:trajectory_evidence", kwargs={"project_slug": project.slug, "trajectory_id": 999999})
    assert pm_client.get(url).status_code == 404


def test_reviewer_and_qa_lead_read_only(project, flagged, reviewer, qa_lead) -> None:
    urls = _urls(project, flagged)
    for user in (reviewer, qa_lead):
        client = login(user)
        overview = client.get(urls["overview"])
        assert overview.status_code == 200
        assert "Re-verify all runs" not in overview.content.decode()
        page = client.get(urls["config"])
        assert page.status_code == 200
        body = page.content.decode()
        assert "Read-only" in body and 'type="submit">Save' not in body and "disabled" in body
        assert client.get(urls["evidence"]).status_code == 200
        assert client.post(urls["verify"]).status_code == 403
        assert client.post(urls["config"], _config_post(seed_key="x")).status_code == 403
    assert not ReplayConfig.objects.exists()


def test_overview_counts_latest_runs_findings_and_flagged_runs(project, flagged, pm_client) -> None:
    response = pm_client.get(_urls(project, flagged)["overview"])
    body = response.content.decode()
    assert response.status_code == 200
    assert "Re-verify all runs" in body
    assert "Schema check" in body and "Flagged" in body
    assert "unexpected_property" in body and "unknown_tool" in body
    evidence = _urls(project, flagged)["evidence"]
    assert f'href="{evidence}"' in body  # the most-flagged table links to the evidence page
    registry = ToolRegistry.objects.get(project=project)
    assert f"v{registry.version}" in body and registry.sha256[:13] in body
    # the overview counts one run per trajectory and kind: re-running unchanged checks adds nothing
    trajectory_verify(trajectory_id=flagged.pk)
    assert CheckRun.objects.filter(trajectory=flagged, kind="schema").count() == 1


def test_pm_saves_config_and_it_is_audited(project, registry, pm, pm_client) -> None:
    url = reverse("verification:config", kwargs={"project_slug": project.slug})
    assert 'type="submit">Save' in pm_client.get(url).content.decode()
    data = _config_post(
        environment="airline",
        seed_key="seed",
        default_seed="7",
        use_mock_store=None,  # unchecked
        http_base_url="https://sandbox.example/api",
        http_routes='{"get_reservation_details": {"method": "GET", "path": "/reservations"}}',
        volatile_keys="updated_at\n/meta/request_id\n",
        check_http_status="on",
        sql_tools="",
    )
    response = pm_client.post(url, data, follow=True)
    assert response.redirect_chain[-1][0] == reverse("verification:overview", kwargs={"project_slug": project.slug})
    assert "Replay configuration of registry v1 saved." in response.content.decode()
    config = ReplayConfig.objects.get(registry=registry)
    assert (config.environment, config.seed_key, config.default_seed) == ("airline", "seed", 7)
    assert config.use_mock_store is False and config.check_http_status is True
    assert config.http_routes == {"get_reservation_details": {"method": "GET", "path": "/reservations"}}
    assert config.volatile_keys == ["updated_at", "/meta/request_id"]
    event = AuditEvent.objects.get(verb="verification.replay_config_set")
    assert event.actor == pm and event.project == project
    # the overview shows what was saved
    body = pm_client.get(reverse("verification:overview", kwargs={"project_slug": project.slug})).content.decode()
    assert "https://sandbox.example/api" in body and "/meta/request_id" in body


def test_bad_json_is_a_located_form_error(project, registry, pm_client) -> None:
    url = reverse("verification:config", kwargs={"project_slug": project.slug})
    response = pm_client.post(url, _config_post(http_routes='{"a": {"path": "/x"},\n  oops}'))
    body = response.content.decode()
    assert response.status_code == 422
    assert "not valid JSON:" in body and "line 2, column 3" in body
    assert "<html" in body  # a full page without HTMX
    assert not ReplayConfig.objects.exists()


def test_unknown_environment_shows_the_service_message(project, registry, pm_client) -> None:
    url = reverse("verification:config", kwargs={"project_slug": project.slug})
    response = pm_client.post(url, _config_post(environment="moon_base"))
    body = response.content.decode()
    assert response.status_code == 422
    assert "unknown environment &#x27;moon_base&#x27;; known: airline" in body
    assert 'id="id_environment_error"' in body
    assert not ReplayConfig.objects.exists()


def test_htmx_invalid_post_returns_the_form_partial(project, registry, pm_client) -> None:
    url = reverse("verification:config", kwargs={"project_slug": project.slug})
    response = pm_client.post(url, _config_post(http_retries="9"), headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 422
    assert body.lstrip().startswith('<section class="card" id="config-form">')
    assert "<html" not in body and 'id="id_http_retries_error"' in body


def test_htmx_valid_post_redirects_the_client(project, registry, pm_client) -> None:
    url = reverse("verification:config", kwargs={"project_slug": project.slug})
    response = pm_client.post(url, _config_post(seed_key="seed"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("verification:overview", kwargs={"project_slug": project.slug})
    assert ReplayConfig.objects.get(registry=registry).seed_key == "seed"


def test_config_without_a_frozen_registry(project, pm, pm_client) -> None:
    registry_create(actor=pm, project=project, tools=TOOLS)  # a draft only
    url = reverse("verification:config", kwargs={"project_slug": project.slug})
    page = pm_client.get(url)
    assert page.status_code == 200 and "no frozen tool registry" in page.content.decode()
    response = pm_client.post(url, _config_post(seed_key="seed"))
    assert response.status_code == 409
    assert "no frozen tool registry" in response.content.decode()
    assert not ReplayConfig.objects.exists()
    overview = pm_client.get(reverse("verification:overview", kwargs={"project_slug": project.slug}))
    assert overview.status_code == 200 and "none frozen" in overview.content.decode()


def test_pm_reverify_queues_work_on_commit(project, flagged, pm_client, django_capture_on_commit_callbacks) -> None:
    url = _urls(project, flagged)["verify"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = pm_client.post(url)
    assert response.status_code == 302
    assert response["Location"] == _urls(project, flagged)["overview"]
    assert len(callbacks) == 1  # one chunk of runs, sent to the worker after commit
    event = AuditEvent.objects.get(verb="verification.request")
    assert event.after["trajectories"] == 1
    page = pm_client.get(response["Location"])
    assert "1 run queued for verification." in page.content.decode()


def test_evidence_page_renders_findings_and_escapes(project, flagged, pm_client) -> None:
    response = pm_client.get(_urls(project, flagged)["evidence"])
    body = response.content.decode()
    assert response.status_code == 200
    assert "Unexpected property" in body and "Unknown tool" in body
    assert "suggests" in body and "Hallucinated argument" in body and "Wrong tool" in body  # taxonomy labels
    assert "Closest tools" in body and "cancel_reservation" in body  # unknown_tool's closest names
    assert "never labels" in body
    assert "Step 1" in body and "Step 2" in body and "/note" in body
    assert HOSTILE not in body
    assert ESCAPED in body
    assert "Schema check" in body and "gpt-4o" in body


def test_replay_mismatch_shows_a_diff_table_escaped(project, registry, pm_client) -> None:
    call = ("get_reservation_details", {"reservation_id": "ZFA04Y"})
    first = _import(project, _record([(*call, json.dumps({"status": "active", "note": "ok"}))]))
    trajectory_verify(trajectory_id=first.pk)  # records its read-only observation in the mock store
    second = _import(
        project, _record([(*call, json.dumps({"status": "active", "note": HOSTILE}))], goal="Look at ZFA04Y")
    )
    trajectory_verify(trajectory_id=second.pk)
    finding = Finding.objects.get(trajectory=second, code="replay_mismatch")
    assert finding.evidence["diff"]
    body = pm_client.get(_urls(project, second)["evidence"]).content.decode()
    assert "Replayed observation differs" in body
    assert "<th>Recorded</th><th>Replayed</th>" in body and "/note" in body
    assert HOSTILE not in body and ESCAPED in body


def test_evidence_page_query_budget_does_not_grow_with_steps(
    project, registry, flagged, pm_client, django_assert_max_num_queries
) -> None:
    long = _import(
        project,
        _record(
            [("cancel_reservation", {"reservation_id": "ZFA04Y", f"extra_{i}": i}, "{}") for i in range(40)]
            + [(f"unknown_{i}", {}, "no") for i in range(10)],
            goal="Cancel ZFA04Y, many times",
        ),
    )
    trajectory_verify(trajectory_id=long.pk)
    assert Finding.objects.filter(trajectory=long).values("step").distinct().count() >= 50
    with CaptureQueriesContext(connection) as small:
        assert pm_client.get(_urls(project, flagged)["evidence"]).status_code == 200
    with django_assert_max_num_queries(10):
        response = pm_client.get(_urls(project, long)["evidence"])
    assert response.status_code == 200
    with CaptureQueriesContext(connection) as big:
        pm_client.get(_urls(project, long)["evidence"])
    assert len(big) == len(small)


def test_final_state_result_and_reward_disagreement(project, pm, pm_client) -> None:
    env = AirlineEnvironment()
    registry = registry_freeze(
        actor=pm, registry=registry_create(actor=pm, project=project, tools=env.tool_specs(), name="Airline")
    )
    replay_config_set(actor=pm, registry=registry, environment=env.name, default_seed=7)
    state = env.reset(7)
    rid = next(
        r
        for r in state["reservations"]
        if not env.call(env.reset(7), "cancel_reservation", {"reservation_id": r}).startswith("Error")
    )
    goal_create(
        actor=pm,
        project=project,
        prompt=f"Cancel reservation {rid}",
        external_id="g1",
        expected_actions=[{"name": "cancel_reservation", "arguments": {"reservation_id": rid}}],
        expected_outputs=["cancelled"],
    )
    observation = env.call(env.reset(7), "get_reservation_details", {"reservation_id": rid})
    run = _import(
        project,
        _record(
            [("get_reservation_details", {"reservation_id": rid}, observation)],
            goal=f"Cancel reservation {rid}",
            goal_id="g1",
        ),
    )
    trajectory_verify(trajectory_id=run.pk)
    run.refresh_from_db()
    assert run.verified_reward == 0.0 and run.outcome_reward == 1.0  # the file claimed success; the state says no
    body = pm_client.get(_urls(project, run)["evidence"]).content.decode()
    assert "Final state" in body and "differs from the gold actions" in body
    assert "<th>JSON pointer</th><th>Gold</th><th>Agent</th>" in body and f"/reservations/{rid}/status" in body
    assert "Expected output never said" in body and "missing" in body
    overview = pm_client.get(_urls(project, run)["overview"]).content.decode()
    assert "1 disagree" in overview and "Final-state reward" in overview
