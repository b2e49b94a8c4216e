"""The project's guidelines: Markdown from a project manager, shown to every member as sanitised HTML."""

import pytest
from django.urls import reverse

from core.markdown import render_markdown
from tests.conftest import login

pytestmark = pytest.mark.smoke

HOSTILE = """# Refunds

Refund **only** when the policy allows. <script>alert(1)</script>
<img src=x onerror=alert(2)>

[policy](https://example.org/policy) · [trap](javascript:alert(3)) · [trap2](JaVaScRiPt:alert(4)) · [data](data:text/html,x)
· [here](/p/x/) · ![diagram](https://example.org/a.png)

| case | label |
|---|---|
| wrong id | invalid |
"""


def test_markdown_renders_and_nothing_active_survives() -> None:
    html = render_markdown(HOSTILE)
    assert "<h1>Refunds</h1>" in html and "<strong>only</strong>" in html and "<td>wrong id</td>" in html
    assert "<script" not in html and "<img" not in html and "onerror=alert(2)&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="https://example.org/policy" rel="noopener noreferrer nofollow"' in html
    assert 'href="/p/x/"' in html
    assert 'href="javascript' not in html.lower()  # refused links stay their text, inert
    assert 'href="data:' not in html and "[image: diagram · https://example.org/a.png]" in html


def test_every_member_reads_the_guidelines_and_outsiders_get_404(project, pm, annotator, outsider) -> None:
    project.guidelines = HOSTILE
    project.guideline_version = 4
    project.save(update_fields=["guidelines", "guideline_version"])
    url = reverse("core:guidelines", kwargs={"project_slug": project.slug})
    page = login(annotator).get(url)
    body = page.content.decode()
    assert page.status_code == 200 and "version 4" in body and "<strong>only</strong>" in body
    assert "<script>alert(1)</script>" not in body and "edit in settings" not in body
    assert "edit in settings" in login(pm).get(url).content.decode()
    assert login(outsider).get(url).status_code == 404
    queue = login(annotator).get(reverse("annotation:queue", kwargs={"project_slug": project.slug}))
    assert url in queue.content.decode()


def test_no_guidelines_says_so(project, annotator) -> None:
    body = login(annotator).get(reverse("core:guidelines", kwargs={"project_slug": project.slug})).content.decode()
    assert "no written guidelines yet" in body
