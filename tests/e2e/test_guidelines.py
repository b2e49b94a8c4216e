"""A project manager writes the guidelines in the settings page; an annotator reads them, rendered and inert."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GUIDELINES = """# Refunds

Judge an argument **invalid** when the user never gave it.
<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">
[trap](javascript:window.__pwned=3) · [policy](https://example.org/policy)
"""


def test_guidelines_written_in_settings_are_read_rendered_and_inert(page, live_server, project, pm, annotator) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, live_server, pm.username, PASSWORD)
    page.goto(f"{live_server.url}/p/{project.slug}/settings/")
    version = project.guideline_version
    page.fill("textarea[name=guidelines]", GUIDELINES)
    page.click("button:has-text('Save settings')")
    page.wait_for_load_state()
    project.refresh_from_db()
    assert project.guidelines.strip() == GUIDELINES.strip() and project.guideline_version == version + 1

    page.context.clear_cookies()
    log_in(page, live_server, annotator.username, PASSWORD)
    page.goto(f"{live_server.url}/p/{project.slug}/work/")
    page.click(f"a[href='/p/{project.slug}/guidelines/']")
    page.wait_for_url(f"**/p/{project.slug}/guidelines/")
    article = page.locator("#guidelines")
    assert article.locator("h1").inner_text() == "Refunds"
    assert article.locator("strong").inner_text() == "invalid"
    assert "<script>window.__pwned = 1</script>" in article.inner_text()  # shown as text
    assert article.locator("script").count() == 0 and article.locator("img").count() == 0
    assert article.locator("a[href^='javascript']").count() == 0
    assert (
        article.locator("a[href='https://example.org/policy']").get_attribute("rel") == "noopener noreferrer nofollow"
    )
    assert f"version {version + 1}" in page.locator(".pagehead").inner_text()
    assert page.evaluate("window.__pwned === undefined") and dialogs == [] and page.js_errors == []
