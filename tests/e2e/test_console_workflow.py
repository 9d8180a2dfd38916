"""A team's review workflow in the console, in a real browser (Chromium via Playwright) against
a real ``vkcp serve`` (sandbox VK, SQLite): an operator signs in with a token of their own, sets
statuses and tags with the keys, assigns, writes a note, sees who changed what in the detail
pane, opens "my queue", filters by tag, and reads it all in Russian. Every change is checked
through the API as well. Nothing leaves the origin; the browser console stays free of errors.

Screens go to test-artifacts/console-workflow/. Without Chromium these tests skip locally and
fail under CI=true (as test_console_browser.py's).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import require_service
from tests.e2e.test_console_browser import Service, _axe, _browser_problem, _new_page, chromium
from tests.processes import ROOT, embedded_serve

ARTIFACTS = ROOT / "test-artifacts" / "console-workflow"
OPERATOR = "Анна"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``vkcp serve`` with one community parsed, and an operator token named ``Анна``."""
    require_service("Chromium", _browser_problem())

    workdir = tmp_path_factory.mktemp("console-workflow")
    with embedded_serve(workdir) as (url, token, log):
        admin = Service(url, token)
        made = admin.gql('mutation { createApiToken(name: "Анна", role: OPERATOR) { secret errors { code } } }')
        group = admin.gql('mutation { addGroup(ref: "koshki_spb") { group { id } } }')["addGroup"]["group"]["id"]
        task = admin.gql("mutation($g: ID!) { startParse(input: {groupIds: [$g]}) { tasks { id } } }", g=group)
        task_id = task["startParse"]["tasks"][0]["id"]
        deadline = time.monotonic() + 120
        while admin.gql("query($id: ID!) { task(id: $id) { state } }", id=task_id)["task"]["state"] != "SUCCEEDED":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        operator = Service(admin.url, made["createApiToken"]["secret"])
        operator.admin = admin  # type: ignore[attr-defined]
        yield operator


@pytest.fixture(scope="module")
def browser(service: Service) -> Iterator[Any]:
    with chromium(ARTIFACTS) as launched:
        yield launched


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _state(service: Service, comment_id: str) -> dict[str, Any]:
    return service.gql("query($id: ID!) { comment(id: $id) { status assignee tags note } }", id=comment_id)["comment"]


def test_an_operator_works_the_queue_with_the_keys(browser: Any, service: Service) -> None:
    context, page, watch = _new_page(browser, service)
    try:
        page.goto(service.url + "/")
        page.get_by_label("API token").fill(service.token)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("navigation", name="main").wait_for()
        page.get_by_role("link", name="Review").click()
        page.locator(".comment-row").nth(3).wait_for()
        help_text = page.locator(".review-bar .muted").inner_text()
        assert "1 new, 2 in progress, 3 done, 4 ignored, m assign to me, t add tag, n note" in help_text

        # The current comment: in progress (2), mine (m), tagged (t), with a note (n)
        first = page.locator(".comment-row.current").get_attribute("data-comment-id")
        page.locator(".comment-list").focus()
        page.keyboard.press("2")
        page.locator(f".comment-row[data-comment-id='{first}'] [data-badge=status]", has_text="In progress").wait_for()
        page.keyboard.press("m")
        page.locator(f".comment-row[data-comment-id='{first}'] [data-badge=assignee]", has_text="@Анна").wait_for()
        page.keyboard.press("t")
        assert page.evaluate("document.activeElement.name") == "bulk-tag"
        page.keyboard.type(" Срочно ")
        page.keyboard.press("Enter")
        page.locator(f".comment-row[data-comment-id='{first}'] [data-badge=tag]", has_text="#срочно").wait_for()
        page.locator(".comment-list").focus()
        page.keyboard.press("n")
        assert page.evaluate("document.activeElement.name") == "detail-note"
        page.keyboard.type("перезвонить клиенту")
        page.get_by_role("button", name="Save note").click()
        page.locator("[data-testid=comment-events] li[data-field=NOTE]").wait_for()
        assert _state(service, first) == {
            "status": "IN_PROGRESS", "assignee": OPERATOR, "tags": ["срочно"], "note": "перезвонить клиенту",
        }
        # The detail pane's history: who changed what, newest first
        history = page.locator("[data-testid=comment-events] li").all_inner_texts()
        assert len(history) == 4, history
        assert "Анна · Note: — → перезвонить клиенту" in history[0], history
        assert any("Анна · Status: New → In progress" in line for line in history), history
        assert any("Анна · Tags: — → срочно" in line for line in history), history
        _shot(page, "01-review-workflow")
        _axe(page, "review with the workflow")

        # Two others selected (x) and marked done (3) at once; a tag removed in the detail pane
        page.locator(".comment-list").focus()
        page.keyboard.press("j")
        second = page.locator(".comment-row.current").get_attribute("data-comment-id")
        page.keyboard.press("x")
        page.keyboard.press("j")
        third = page.locator(".comment-row.current").get_attribute("data-comment-id")
        page.keyboard.press("x")
        page.keyboard.press("3")
        for done in (second, third):
            page.locator(f".comment-row[data-comment-id='{done}'] [data-badge=status]", has_text="Done").wait_for()
            assert _state(service, done)["status"] == "DONE"
        # The assignee picker (the bar's, on the current comment)
        page.locator("select[name=bulk-assignee]").select_option(OPERATOR)
        page.locator(f".comment-row[data-comment-id='{third}'] [data-badge=assignee]").wait_for()
        assert _state(service, third)["assignee"] == OPERATOR
        page.locator(f".comment-row[data-comment-id='{first}']").click()
        page.get_by_role("button", name="Remove tag срочно").click()
        page.locator(f".comment-row[data-comment-id='{first}'] [data-badge=tag]").wait_for(state="detached")
        assert _state(service, first)["tags"] == []

        # My queue: assigned to me and not done — the first comment, not the third (done)
        page.get_by_test_id("my-queue").click()
        page.wait_for_function("() => document.querySelector('[data-testid=review-count]').innerText.startsWith('1 ')")
        assert page.locator(".comment-row").get_attribute("data-comment-id") == first
        _shot(page, "02-my-queue")

        # A tag filter: the bulk-tagged second comment only
        page.locator(".comment-list").focus()
        page.get_by_role("button", name="Clear filters").click()
        page.locator(f".comment-row[data-comment-id='{second}']").click()
        page.locator("input[name=detail-tag]").fill("жалоба")
        page.locator("input[name=detail-tag]").press("Enter")
        page.locator(f".comment-row[data-comment-id='{second}'] [data-badge=tag]", has_text="#жалоба").wait_for()
        page.locator("input[name=tags]").fill("Жалоба")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_function("() => document.querySelector('[data-testid=review-count]').innerText.startsWith('1 ')")
        assert page.locator(".comment-row").get_attribute("data-comment-id") == second
        # Exports take the Review filter, and say it as an operator reads it
        page.get_by_role("link", name="Exports").click()
        assert "Tags: Жалоба" in page.get_by_test_id("export-filter").inner_text()
        page.get_by_role("link", name="Review").click()

        # In Russian: statuses, the history and the keys' help
        page.get_by_role("button", name="RU").first.click()
        page.locator(f".comment-row[data-comment-id='{second}'] [data-badge=status]", has_text="Готово").wait_for()
        assert "m — назначить себе" in page.locator(".review-bar .muted").inner_text()
        page.locator("[data-pick=statuses] legend", has_text="Статус").wait_for()  # the filters too
        page.get_by_role("button", name="Мои задачи").wait_for()
        page.locator("[data-testid=comment-events] li", has_text="Анна · Статус: Новый → Готово").wait_for()
        _shot(page, "03-review-workflow-ru")
        _axe(page, "review with the workflow, in Russian")

        # The dashboard counts comments by status, at once after the changes
        page.get_by_role("link", name="Сводка").click()
        table = page.get_by_test_id("by-status")
        table.locator("tr[data-status=DONE]", has_text="Готово").wait_for()
        assert table.locator("tr[data-status=DONE] td").nth(1).inner_text() == "2"
        assert table.locator("tr[data-status=IN_PROGRESS] td").nth(1).inner_text() == "1"
        _shot(page, "05-dashboard-by-status-ru")
        watch.assert_clean()
    finally:
        context.close()


def test_a_viewer_reads_the_workflow_but_cannot_change_it(browser: Any, service: Service) -> None:
    admin: Service = service.admin  # type: ignore[attr-defined]
    secret = admin.gql('mutation { createApiToken(name: "Вера", role: VIEWER) { secret } }')["createApiToken"]["secret"]
    context, page, watch = _new_page(browser, service)
    try:
        page.goto(service.url + "/")
        page.get_by_label("API token").fill(secret)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Review").click()
        page.locator(".comment-row").first.wait_for()
        # The names one can assign to are listed (names only: never a role or a secret)
        options = page.locator("select[name=bulk-assignee] option").all_inner_texts()
        assert {OPERATOR, "Вера", "first-admin"} <= set(options), options
        current = page.locator(".comment-row.current").get_attribute("data-comment-id")
        before = _state(service, current)
        page.locator(".comment-list").focus()
        page.keyboard.press("4")
        alert = page.get_by_role("alert")
        alert.wait_for()
        assert "operator" in alert.inner_text().lower(), alert.inner_text()
        assert _state(service, current) == before
        _shot(page, "04-viewer-refused")
        # The refused request is the one expected console error, if the browser logs it.
        watch.errors = [e for e in watch.errors if "403" not in e]
        watch.assert_clean()
    finally:
        context.close()


def test_keys_are_documented_in_both_languages() -> None:
    """The shortcut help of each language names every workflow key the Review screen handles."""
    source = (ROOT / "web" / "src" / "screens" / "Review.tsx").read_text()
    assert '["1", "2", "3", "4"].includes(e.key)' in source
    assert all(f'e.key === "{key}"' in source for key in ("m", "t", "n"))
    i18n = (ROOT / "web" / "src" / "i18n.ts").read_text()
    lines = re.findall(r'workflowShortcuts: "([^"]+)"', i18n)
    assert len(lines) == 2, lines  # en, ru
    for help_line in lines:
        for key in ("1", "2", "3", "4", "m", "t", "n"):
            assert re.search(rf"(^|, ){key} ", help_line), (key, help_line)
