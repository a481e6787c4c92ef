"""axe-core (vendored: static/vendor/axe-core) run in Chromium on the main pages: none may
have a serious or critical accessibility violation, at a laptop's width or a phone's."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.browser.test_responsive import PHONE, WIDE, busy_workspace, main_pages  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = "/static/vendor/axe-core/axe-core-4.14.1.min.js"  # same origin: the CSP allows it
PAGES = [
    "workflows",
    "runs",
    "run",
    "inbox",
    "settings",
    "members",
    "provider-keys",
    "secrets",
    "api-tokens",
    "limits",
    "usage",
    "builder",
]


def serious_violations(page: Page) -> list[str]:
    """axe's serious and critical findings on the page as it is now, one line each."""
    page.add_script_tag(url=AXE)
    results = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.filter(v => ['serious', 'critical'].includes(v.impact)))"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(
            ", ".join(node["target"]) + (f" [{node['any'][0]['message']}]" if node["any"] else "")
            for node in v["nodes"][:8]
        )
        for v in results
    ]


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1366", "390"])
def test_the_main_pages_have_no_serious_accessibility_violations(
    page: Page,
    busy_workspace,  # noqa: F811
    viewport,
):
    page.set_viewport_size(viewport)
    found = {}
    for who, names in (("alice", PAGES), ("omar", ["inbox"])):
        page.context.clear_cookies()
        sign_in(page, who)
        expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))
        pages = dict(main_pages(busy_workspace))
        for name in names:
            page.goto(pages[name])
            page.wait_for_load_state("networkidle")
            problems = serious_violations(page)
            if problems:
                found[f"{name} as {who}"] = problems
    report = "\n".join(f"{where}:\n  " + "\n  ".join(lines) for where, lines in found.items())
    assert found == {}, report
