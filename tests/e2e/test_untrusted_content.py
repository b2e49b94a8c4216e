"""Content from trajectories stays inert in a real browser."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Trajectory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def test_html_in_an_observation_is_shown_as_text_and_never_runs(page, live_server, project, pm) -> None:
    record = {
        "messages": [
            {"role": "user", "content": "Cancel ZFA04Y"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "cancel", "arguments": '{"id": "ZFA04Y"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": HOSTILE},
        ]
    }
    run_import(project, orjson.dumps(record) + b"\n")
    trajectory = Trajectory.objects.get(project=project)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, live_server, pm.username, PASSWORD)
    page.goto(f"{live_server.url}/p/{project.slug}/trajectories/{trajectory.pk}/")
    observation = page.locator("pre.obs").first
    observation.wait_for()
    assert HOSTILE in observation.inner_text()
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("pre.obs img").count() == 0 and page.locator("pre.obs script").count() == 0
    assert dialogs == [] and page.js_errors == []
