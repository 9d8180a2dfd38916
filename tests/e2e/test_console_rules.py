"""The rule language in the console, in Chromium against a real `vkcp serve` (sandbox VK, SQLite):
the Review filter's query field shows mistakes as they are typed, with the line and column the
service reports; a valid query filters and highlights the words that made each comment match;
the Keywords screen saves, lists (with counts) and removes rules."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.test_console_browser import Service, _axe, _new_page, _shot, _sign_in, browser, service  # noqa: F401

QUERY = "(кошка OR кот) -продам"


def _parsed(service: Service, ref: str) -> None:
    group = service.gql("mutation($r: String!) { addGroup(ref: $r) { group { id } errors { code } } }", r=ref)
    group_id = group["addGroup"]["group"]["id"]
    task = service.gql("mutation($g: ID!) { startParse(input: {groupIds: [$g]}) { tasks { id } } }", g=group_id)
    task_id = task["startParse"]["tasks"][0]["id"]
    deadline = time.monotonic() + 120
    while True:
        state = service.gql("query($id: ID!) { task(id: $id) { state } }", id=task_id)["task"]["state"]
        if state in ("SUCCEEDED", "FAILED", "CANCELLED"):
            assert state == "SUCCEEDED"
            return
        assert time.monotonic() < deadline, state
        time.sleep(0.3)


def _total(service: Service, query: str) -> int:
    found = service.gql("query($f: CommentFilter) { comments(filter: $f) { totalCount } }", f={"query": query})
    return found["comments"]["totalCount"]


def test_the_query_field_and_saved_rules(browser: Any, service: Service) -> None:
    _parsed(service, "koshki_spb")
    expected = _total(service, QUERY)
    assert expected > 0
    context, page, watch = _new_page(browser, service)
    try:
        _sign_in(page, service)
        page.get_by_role("link", name="Review").click()
        page.locator(".comment-row").first.wait_for()

        # A mistake shows as it is typed: where, and what the service expected there.
        field = page.locator("#review-query")
        field.fill("(кошка OR кот) AND")
        problem = page.locator(".query-filter .query-error")
        problem.wait_for()
        said = problem.inner_text()
        assert "Line 1, column 19" in said and "expected" in said and "a word" in said, said
        assert field.get_attribute("aria-invalid") == "true"
        _shot(page, "rules-01-query-error")
        _axe(page, "review with a query error")

        # Fixed: the error goes, and Apply filters by the query.
        field.fill(QUERY)
        problem.wait_for(state="detached")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_function(
            "n => document.querySelector('[data-testid=review-count]')?.innerText.includes(String(n))", arg=expected)
        page.locator(".comment-row mark").first.wait_for()
        rows = page.locator(".comment-row").count()
        assert 0 < rows <= expected
        # Every shown comment has a highlighted word, and each is one of the query's terms.
        titles = page.locator(".comment-row mark").evaluate_all("marks => marks.map(m => m.title)")
        assert titles and set(titles) <= {"кошка", "кот"}, titles
        marked_rows = page.locator(".comment-row").evaluate_all(
            "rows => rows.filter(r => r.querySelector('mark')).length")
        assert marked_rows == rows
        texts = page.locator(".comment-row .comment-text").all_inner_texts()
        assert not any("продам" in t.lower() for t in texts), texts
        _shot(page, "rules-02-review-by-query")

        # Saved rules on the Keywords screen.
        page.get_by_role("link", name="Keywords").click()
        page.locator("#rule-name").fill("Кошки")
        rule_field = page.locator("#rule-query")
        rule_field.fill('"кошка')
        page.locator("form[aria-label='Save a rule'] .query-error").wait_for()
        rule_field.fill(QUERY)
        page.locator("form[aria-label='Save a rule'] .query-error").wait_for(state="detached")
        page.get_by_role("button", name="Save a rule").click()
        row = page.locator("tr[data-rule='Кошки']")
        row.wait_for()
        assert row.locator("td.num").inner_text().replace(",", "").replace("\u00a0", "") == str(expected)
        assert 'rule:"Кошки"' in row.inner_text()
        _shot(page, "rules-03-saved")
        _axe(page, "keywords with rules")
        listed = service.gql("{ rules { edges { node { name query } } } }")["rules"]["edges"]
        assert [e["node"] for e in listed] == [{"name": "Кошки", "query": QUERY}]

        # The Dashboard lists the top saved rules with their counts (stored by an INDEX_RULES task).
        deadline = time.monotonic() + 60
        while service.gql("{ rules { edges { node { indexedAt } } } }")["rules"]["edges"][0]["node"]["indexedAt"] is None:
            assert time.monotonic() < deadline, "the rule's matches were never stored"
            time.sleep(0.3)
        page.get_by_role("link", name="Dashboard").click()
        top = page.locator("[data-testid=top-rules] tbody tr")
        top.first.wait_for()
        assert top.count() == 1
        cells = top.first.locator("td").all_inner_texts()
        assert cells[0] == "Кошки" and cells[1].replace(",", "").replace("\u00a0", "") == str(expected), cells
        _shot(page, "rules-04-dashboard-top-rules")
        _axe(page, "dashboard with top rules")
        page.get_by_role("link", name="Keywords").click()
        row.wait_for()

        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Remove").click()
        row.wait_for(state="detached")
        assert service.gql("{ rules { totalCount } }")["rules"]["totalCount"] == 0
        watch.assert_clean()
    finally:
        context.close()
