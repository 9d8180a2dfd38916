"""The operator console in a real browser: Chromium (Debian's package) driven by Playwright
against a real `vkcp serve` with the sandbox VK world, SQLite in a temporary data dir.

One operator's day, in order: a wrong token is refused, sign in, add a keyword, add a
community, parse it with the progress bar reaching 100%, review the comments with highlighted
matches, filter, mark one viewed, export and download, watch a match arrive live, switch the
language. Throughout: no request leaves the service's origin and the browser console stays
free of errors. Every screen is saved under test-artifacts/console/ for a person to look at.

Without Chromium (or the playwright package) these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.export import EXPORT_COLUMNS
from tests.conftest import require_service
from tests.processes import ROOT, embedded_serve, first_admin_token, free_port, spawn, stop

CHROMIUM = os.environ.get("VKCP_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "console"


def _browser_problem() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


class Service:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.vk_url = ""  # the VK emulator's, when it runs as its own process

    def gql(self, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        """The document's data, sent with this service's token or ``token``; errors fail the test."""
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables},
                              headers={"Authorization": f"Bearer {token or self.token}"}, timeout=30)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    require_service("Chromium", _browser_problem())
    workdir = tmp_path_factory.mktemp("console")
    with embedded_serve(workdir) as (url, token, _):
        yield Service(url, token)


class Watch:
    """Every request the page makes and every console error it logs."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.ws_origin = origin.replace("http://", "ws://", 1)

    def attach(self, page: Any) -> None:
        def on_request(request: Any) -> None:
            url = request.url
            if not (url.startswith((self.origin + "/", f"blob:{self.origin}/", "data:")) or url.startswith(self.ws_origin + "/")):
                self.foreign.append(url)

        page.on("request", on_request)
        page.on("websocket", lambda ws: None if ws.url.startswith(self.ws_origin + "/") else self.foreign.append(ws.url))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def assert_clean(self) -> None:
        assert self.foreign == [], f"requests left the service's origin: {self.foreign}"
        assert self.errors == [], f"browser console errors: {self.errors}"


@contextmanager
def chromium(artifacts: Path) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; ``artifacts`` emptied for this run's
    screens. Every console module's ``browser`` fixture is this."""
    from playwright.sync_api import sync_playwright

    shutil.rmtree(artifacts, ignore_errors=True)  # only this run's screens
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser(service: Service) -> Iterator[Any]:
    with chromium(ARTIFACTS) as launched:
        yield launched


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _axe(page: Any, where: str) -> None:
    """axe-core finds no serious or critical accessibility violation on the page as it is."""
    if not AXE.exists():
        require_service("axe-core", f"{AXE} is missing (npm ci in web/)")
        return
    # evaluate() runs through DevTools, so the page's Content-Security-Policy does not block it
    page.evaluate(AXE.read_text() + "\n;undefined")
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                           ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))")
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{where}: {json.dumps(bad, ensure_ascii=False)}"


def _new_page(browser: Any, service: Service, locale: str = "en-US") -> tuple[Any, Any, Watch]:
    context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    watch = Watch(service.url)
    watch.attach(page)
    page.set_default_timeout(20_000)
    return context, page, watch


def _sign_in(page: Any, service: Service) -> None:
    page.goto(service.url + "/")
    page.get_by_label("API token").fill(service.token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="main").wait_for()


def test_a_wrong_token_is_refused_with_a_clear_message(browser: Any, service: Service) -> None:
    context, page, watch = _new_page(browser, service)
    try:
        page.goto(service.url + "/")
        _shot(page, "01-sign-in")
        _axe(page, "sign in")
        page.get_by_label("API token").fill("vkcp_not-a-real-token")
        page.get_by_role("button", name="Sign in").click()
        alert = page.get_by_role("alert")
        alert.wait_for()
        assert "does not accept this token" in alert.inner_text()
        _shot(page, "02-sign-in-wrong-token")
        # The browser itself logs the refused request (401); that is the one expected error.
        watch.errors = [e for e in watch.errors if "401" not in e]
        watch.assert_clean()
    finally:
        context.close()


def test_an_operator_day_in_the_console(browser: Any, service: Service) -> None:
    context, page, watch = _new_page(browser, service)
    try:
        _sign_in(page, service)
        page.get_by_role("heading", name="Dashboard").wait_for()
        _shot(page, "03-dashboard-empty")

        # Keywords: add one
        page.get_by_role("link", name="Keywords").click()
        page.get_by_label("Bulk import (one keyword per line)").fill("кошка")
        page.get_by_role("button", name="Import").click()
        page.locator(".line-results .ok", has_text="кошка").wait_for()
        page.locator("tr[data-keyword='кошка']").wait_for()
        _shot(page, "04-keywords")
        _axe(page, "keywords")

        # Communities: add the sandbox's cats community and parse it, watching the progress
        page.get_by_role("link", name="Communities").click()
        page.get_by_label(re.compile("Add communities")).fill("koshki_spb\nnot a community !!")
        page.get_by_role("button", name="Add", exact=True).click()
        page.locator(".line-results .ok", has_text="koshki_spb").wait_for()
        page.locator(".line-results .fail").wait_for()
        row = page.locator("tr[data-group='koshki_spb']")
        row.get_by_role("button", name="Parse").click()
        row.get_by_role("progressbar").wait_for()
        page.wait_for_function(
            "() => document.querySelector(\"tr[data-group='koshki_spb'] [role=progressbar]\")"
            "?.getAttribute('aria-valuenow') === '100'", timeout=120_000)
        row.locator(".state-succeeded").wait_for()
        _shot(page, "05-communities-parsed")
        _axe(page, "communities")
        # The table's buttons stay inside its card, even narrower than this viewport.
        page.set_viewport_size({"width": 1200, "height": 900})
        widths = page.evaluate("() => { const t = document.querySelector('table.groups');"
                               " return [t.scrollWidth, t.parentElement.clientWidth]; }")
        assert widths[0] <= widths[1], widths
        page.set_viewport_size({"width": 1400, "height": 900})

        # Review: the comments with highlighted matches
        page.get_by_role("link", name="Review").click()
        first_row = page.locator(".comment-row").first
        first_row.wait_for()
        page.locator(".comment-row mark").first.wait_for()
        total_text = page.get_by_test_id("review-count").inner_text()
        assert "loaded of" in total_text
        marks = page.locator(".comment-row mark").all_inner_texts()
        assert marks and all(m.lower().startswith("кош") for m in marks), marks
        rendered = page.locator(".comment-row").count()
        _shot(page, "06-review")
        _axe(page, "review")

        # filter: a community (a multi-pick that shows what is chosen), matched only, text
        community = page.locator("[data-pick=groupIds] input[type=checkbox]").first
        community.check()
        assert page.get_by_role("checkbox", name=re.compile("koshki|Кошки", re.I)).first.is_checked()
        option = page.locator("[data-pick=groupIds] label").first
        other = page.locator("[data-pick=keywordIds] label").first
        assert "on" in option.get_attribute("class").split()
        assert option.evaluate("el => getComputedStyle(el).backgroundColor") != other.evaluate(
            "el => getComputedStyle(el).backgroundColor"), "a chosen option looks like any other"
        assert "1 selected" in page.locator("[data-pick=groupIds] legend").inner_text()
        _axe(page, "review with a community chosen")
        page.locator("select[name=matched]").select_option("yes")
        page.locator("input[name=text]").fill("окошке")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_function("() => document.querySelector('[data-testid=review-count]').innerText !== "
                               + json.dumps(total_text))
        page.locator(".comment-row").first.wait_for()
        texts = page.locator(".comment-row .comment-text").all_inner_texts()
        assert texts and all("окошке" in t.lower() for t in texts), texts
        _shot(page, "07-review-filtered")

        # mark the current comment viewed with the keyboard shortcut
        current = page.locator(".comment-row.current")
        comment_id = current.get_attribute("data-comment-id")
        page.locator(".comment-list").focus()
        page.keyboard.press("v")
        page.locator(f".comment-row.viewed[data-comment-id='{comment_id}']").wait_for()
        stored = service.gql("query($id: ID!) { comment(id: $id) { viewed } }", id=comment_id)
        assert stored["comment"]["viewed"] is True
        page.keyboard.press("j")
        page.locator(".comment-row.current").nth(0).wait_for()

        # Exports: the current review filter, in each format, downloaded and read back
        page.get_by_role("link", name="Exports").click()
        said = page.get_by_test_id("export-filter").inner_text()
        assert "окошке" in said and "Communities: 1" in said, said  # the row id, not "R3JvdXA6MQ=="
        exported = {}
        for fmt in ("CSV", "XLSX", "JSONL"):
            page.get_by_label(fmt, exact=True).check()
            page.get_by_role("button", name="Export", exact=True).click()
            link = page.get_by_role("button", name=re.compile(rf"^Download \((\d+) rows, {fmt}\)$"))
            link.wait_for(timeout=60_000)
            promised = int(re.search(r"\((\d+) rows", link.inner_text()).group(1))
            with page.expect_download() as download_info:
                link.click()
            download = download_info.value
            assert download.suggested_filename.endswith("." + fmt.lower()), download.suggested_filename
            saved = ARTIFACTS / "downloads" / download.suggested_filename  # kept for a person to open
            download.save_as(saved)
            rows = _read_export(fmt, saved)
            if fmt == "CSV":
                comma_csv = saved
            assert len(rows) == promised and rows, (fmt, promised, rows[:2])
            assert all("окошке" in row["text"].lower() for row in rows), (fmt, rows[:2])
            exported[fmt] = sorted(str(row["commentId"]) for row in rows)
        assert exported["CSV"] == exported["XLSX"] == exported["JSONL"], exported
        _shot(page, "08-exports")
        _axe(page, "exports")

        # Export options: a zone the server does not know is refused with its code; a CSV
        # with semicolons and Yekaterinburg's times; the choices remembered on the next visit
        zone = page.get_by_label("Time zone of the times")
        zone.select_option("other")
        page.get_by_label("IANA time zone name").fill("Mars/Olympus_Mons")
        page.get_by_role("button", name="Export", exact=True).click()
        refusal = page.get_by_role("alert")
        refusal.wait_for()
        assert "Mars/Olympus_Mons" in refusal.inner_text() and "(BAD_USER_INPUT)" in refusal.inner_text()
        _shot(page, "08b-exports-unknown-zone")
        page.get_by_label("CSV", exact=True).check()
        page.get_by_label("Semicolon (;)").check()
        zone.select_option("Asia/Yekaterinburg")
        _axe(page, "exports with options")
        page.get_by_role("button", name="Export", exact=True).click()
        refusal.wait_for(state="detached")
        item = page.locator("li[data-task]", has_text="times in Asia/Yekaterinburg")
        item.get_by_role("button", name=re.compile(r"^Download \(\d+ rows, CSV\)$")).wait_for(timeout=60_000)
        assert "CSV delimiter: Semicolon (;)" in item.inner_text(), item.inner_text()
        assert re.search(r"#\d+ CSV", item.inner_text()), item.inner_text()  # the row id, not the global id
        with page.expect_download() as download_info:
            item.get_by_role("button", name=re.compile("^Download")).click()
        saved = ARTIFACTS / "downloads" / ("semicolon-" + download_info.value.suggested_filename)
        download_info.value.save_as(saved)
        assert saved.read_text(encoding="utf-8-sig").splitlines()[0] == ";".join(EXPORT_COLUMNS)
        rows = _read_export("CSV", saved, delimiter=";")
        assert sorted(str(row["commentId"]) for row in rows) == exported["CSV"]
        assert all(row["publishedAt"].endswith("+05:00") for row in rows), [r["publishedAt"] for r in rows[:3]]
        # the same instants as the default export's Moscow times (+03:00)
        moscow = {r["commentId"]: r["publishedAt"] for r in _read_export("CSV", comma_csv)}
        assert all(datetime.fromisoformat(r["publishedAt"]) == datetime.fromisoformat(moscow[r["commentId"]])
                   for r in rows), rows[:2]
        _shot(page, "08c-exports-options")
        page.reload()
        page.get_by_label("Time zone of the times").wait_for()
        assert page.get_by_label("Time zone of the times").input_value() == "Asia/Yekaterinburg"
        assert page.get_by_label("Semicolon (;)").is_checked()

        # Live: watch only a new keyword's matches; one arrives while the operator watches
        service.gql('mutation { addKeywords(input: [{word: "дорога"}]) { errors { message } } }')
        page.get_by_role("link", name="Live").click()
        page.get_by_text("Waiting for new matches").wait_for()
        page.locator("[data-pick=keywordIds] label", has_text="дорога").get_by_role("checkbox").check()
        page.wait_for_function("() => document.querySelector('[data-testid=live-filter]')?.dataset.filter.includes('keywordIds')")
        page.locator("[data-testid=live-status] [data-state=connected]").wait_for()
        time.sleep(1)  # the filtered subscription is open on the server
        group = service.gql('mutation { addGroup(ref: "zarechye_news") { group { id } } }')["addGroup"]["group"]
        service.gql("mutation($ids: [ID!]!) { startParse(input: {groupIds: $ids}) { tasks { id } } }",
                    ids=[group["id"]])
        page.locator(".live-item mark").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)  # let the parse's other matches arrive too
        marks = page.evaluate("() => [...document.querySelectorAll('.live-item')]"
                              ".map(li => [...li.querySelectorAll('mark')].map(m => m.innerText.toLowerCase()))")
        assert marks and all(any(m.startswith("дорог") for m in item) for item in marks), marks
        _shot(page, "09-live")
        _axe(page, "live")

        # Tasks, Dashboard with data, Admin
        page.get_by_role("link", name="Tasks").click()
        page.locator("tr[data-task]").first.wait_for()
        page.locator("tr[data-task] .state-succeeded").first.wait_for()
        # ids an operator can read (the row id; the page keeps the global id for the API), and a
        # parse's result said in words
        parse_row = page.locator("tr[data-task]", has_text=re.compile("Parse · .*Кошки"))
        task_id = parse_row.get_attribute("data-task")
        row_id = parse_row.locator("td").first.inner_text()
        assert base64.b64decode(task_id).decode() == f"Task:{row_id}", (task_id, row_id)
        said = parse_row.locator("[data-result-kind=PARSE]").inner_text()
        assert re.match(r"\d+ posts?, comments read on \d+: [\d,]+ comments?, [\d,]+ match(es)?", said), said
        assert "{" not in said, said
        # kinds, states and progress in words: the task's code and arguments, worded by the console
        assert parse_row.locator("[data-state=SUCCEEDED]").inner_text() == "Succeeded"
        progress = parse_row.locator(".progress-text").inner_text()
        assert re.fullmatch(r"100% 40/40 posts, [\d,]+ comments", progress), progress
        _shot(page, "10-tasks")
        _axe(page, "tasks")
        page.get_by_role("link", name="Dashboard").click()
        page.wait_for_function("() => [...document.querySelectorAll('svg.chart rect')]"
                               ".some(r => Number(r.getAttribute('height')) > 0)")
        page.locator("dd[data-total='comments']").wait_for()
        assert page.locator("dd[data-total='comments']").inner_text() not in ("0", "—")
        _shot(page, "11-dashboard")
        _axe(page, "dashboard")
        # Admin: create an API token (its secret shown once), then revoke it
        page.get_by_role("link", name="Admin").click()
        page.get_by_role("heading", name="VK token pool").wait_for()
        page.get_by_label("Name").fill("night shift")
        page.get_by_label("Role").select_option("VIEWER")
        page.get_by_role("button", name="Create token").click()
        secret = page.get_by_test_id("new-secret").inner_text()
        assert re.fullmatch(r"\d+", page.locator("tr[data-api-token='night shift'] td").first.inner_text())
        assert secret.startswith("vkcp_")
        assert httpx.post(f"{service.url}/graphql", json={"query": "{ groups { totalCount } }"},
                          headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        _axe(page, "admin")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("tr[data-api-token='night shift']").get_by_role("button", name="Revoke").click()
        page.locator("tr[data-api-token='night shift']", has_text="revoked").wait_for()
        assert httpx.post(f"{service.url}/graphql", json={"query": "{ groups { totalCount } }"},
                          headers={"Authorization": f"Bearer {secret}"}).status_code == 401
        _shot(page, "12-admin")

        # The language switch: Russian, remembered
        page.get_by_role("button", name="RU").first.click()
        page.get_by_role("link", name="Сводка").wait_for()
        page.get_by_role("link", name="Сводка").click()
        page.get_by_role("heading", name="Сводка").wait_for()
        _shot(page, "13-dashboard-ru")
        page.reload()
        page.get_by_role("heading", name="Сводка").wait_for()
        assert page.evaluate("document.documentElement.lang") == "ru"
        page.get_by_role("link", name="Задачи").click()
        said = page.locator("tr[data-task] [data-result-kind=PARSE]").first.inner_text()
        assert re.search(r"пост(а|ов)?, комментарии прочитаны у \d+", said), said
        # kinds, states and progress messages in Russian: no PARSE, SUCCEEDED or English sentence left
        parse_row = page.locator("tr[data-task]", has=page.locator("[data-kind=PARSE]")).first
        assert parse_row.locator("[data-kind=PARSE]").inner_text().startswith("Сбор · ")
        assert parse_row.locator("[data-state=SUCCEEDED]").inner_text() == "Готово"
        progress = parse_row.locator(".progress-text").inner_text()
        assert re.fullmatch(r"100% (\d+)/\1 постов, [\d\s\u00a0]+ комментари(й|я|ев)", progress), progress
        export_row = page.locator("tr[data-task]", has=page.locator("[data-kind=EXPORT]")).first
        assert export_row.locator("[data-kind=EXPORT]").inner_text() == "Выгрузка"
        written = export_row.locator(".progress-text").inner_text()
        assert re.fullmatch(r"100% записано комментариев: [\d\s\u00a0]+, файл \S+ \([\d,]+ (байт|КБ|МБ)\)", written), written
        table = page.locator("table.tasks").inner_text()
        for english in (r"\bPARSE\b", r"\bEXPORT\b", r"\bSUCCEEDED\b", r"\d posts?\b", r"\d comments?\b", r"written to",
                        r"\d rows\b"):
            assert not re.search(english, table), (english, table)
        _shot(page, "13b-tasks-ru")
        page.get_by_role("link", name="Сообщества").click()
        row = page.locator("tr[data-group='koshki_spb']")
        row.locator("[data-state=SUCCEEDED]").wait_for()
        assert row.locator("[data-state=SUCCEEDED]").inner_text() == "Готово"
        assert "постов" in row.locator(".progress-text").inner_text()
        _shot(page, "13c-communities-ru")

        # GraphiQL from local assets, with the console's token
        page.goto(service.url + "/graphql")
        page.locator(".graphiql-container").wait_for()
        assert "войдите" not in page.locator("#note").inner_text().lower()
        _shot(page, "14-graphiql")

        assert rendered < 60, f"{rendered} rows rendered: the review list must render only visible rows"
        watch.assert_clean()
    finally:
        context.close()


def test_live_shows_its_connection_and_subscribes_again(browser: Any, service: Service) -> None:
    """The Live screen says whether the feed is live, shows the server's message when the
    server ends the feed (SERVICE_UNAVAILABLE: subscribe again), subscribes again by itself after
    a short wait, and shows a lost connection while graphql-ws reconnects. A WebSocket route
    between the page and the service stands in for the outage."""
    context, page, watch = _new_page(browser, service)
    subscribes: list[dict[str, Any]] = []
    sockets: list[Any] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        sockets.append(ws)

        def from_page(message: str | bytes) -> None:
            data = json.loads(message)
            if data.get("type") == "subscribe" and "commentMatched" in data["payload"]["query"]:
                subscribes.append(data)
            server.send(message)

        ws.on_message(from_page)

    def wait_until(check: Any, what: str) -> None:
        deadline = time.monotonic() + 20
        while not check():
            assert time.monotonic() < deadline, what
            page.wait_for_timeout(100)

    try:
        page.route_web_socket(re.compile(r"^ws://.*/graphql$"), route)
        _sign_in(page, service)
        page.get_by_role("link", name="Live").click()
        status = page.get_by_test_id("live-status")
        status.locator("[data-state=connected]").wait_for()
        wait_until(lambda: len(subscribes) == 1, "the page subscribes to commentMatched")
        page.get_by_label("Text").fill("дорог")  # a filter, applied by itself after a pause
        wait_until(lambda: len(subscribes) == 2, "a changed filter subscribes again")
        assert subscribes[1]["payload"]["variables"]["filter"] == {"text": "дорог"}, subscribes[1]

        # The server ends the feed, as it does when Redis drops the live stream
        sockets[-1].send(json.dumps({"id": subscribes[-1]["id"], "type": "error", "payload": [{
            "message": "The live feed was interrupted (Redis was unavailable); matches made meanwhile were "
                       "not sent. Subscribe again, and query `comments` to catch up.",
            "extensions": {"code": "SERVICE_UNAVAILABLE"}}]}))
        status.locator("[data-state=ended]").wait_for()
        reason = page.get_by_test_id("live-ended-reason").inner_text()
        assert "SERVICE_UNAVAILABLE" in reason and "Subscribe again" in reason, reason
        assert "Subscribing again in" in status.inner_text()
        _shot(page, "09b-live-ended")
        _axe(page, "live, feed ended")
        wait_until(lambda: len(subscribes) == 3, "the page subscribes again by itself")
        assert subscribes[2]["payload"]["variables"]["filter"] == {"text": "дорог"}, subscribes[2]
        status.locator("[data-state=connected]").wait_for()

        # The connection drops: the page says so and graphql-ws reconnects and resubscribes
        sockets[-1].close(code=1012, reason="service restart")  # graphql-ws retries after this code
        status.locator("[data-state=reconnecting]").wait_for()  # brief: no screenshot would catch it
        status.locator("[data-state=connected]").wait_for()
        wait_until(lambda: len(subscribes) == 4, "the page resubscribes after reconnecting")
        page.get_by_role("button", name="RU").first.click()
        status.get_by_text("В эфире").wait_for()
        _shot(page, "09c-live-ru")
        watch.assert_clean()
    finally:
        context.close()


def test_graphiql_works_offline_and_tells_a_newcomer_how_to_send_the_token(browser: Any, service: Service) -> None:
    context, page, watch = _new_page(browser, service)
    try:
        page.goto(service.url + "/graphql")
        page.locator(".graphiql-container").wait_for()
        note = page.locator("#note").inner_text()
        assert "Authorization" in note and "Bearer" in note, note
        page.get_by_text("UNAUTHENTICATED").first.wait_for()  # the placeholder token is refused, visibly
        _shot(page, "15-graphiql-newcomer")
        watch.errors = [e for e in watch.errors if "401" not in e]  # that refusal, logged by the browser
        watch.assert_clean()
    finally:
        context.close()


def _read_export(fmt: str, path: Path, delimiter: str = ",") -> list[dict[str, Any]]:
    """An export's rows as dicts, read the way a user's tools would read the file."""
    from zoneinfo import ZoneInfo

    from domain.export import column_titles

    if fmt == "CSV":
        import csv

        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            assert tuple(reader.fieldnames or ()) == EXPORT_COLUMNS, reader.fieldnames
            return list(reader)
    if fmt == "XLSX":
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True)
        try:
            values = list(book.worksheets[0].iter_rows(values_only=True))
        finally:
            book.close()
        # A sheet is for people: titled columns, the time zone named (the service's default).
        assert values and tuple(values[0]) == column_titles(ZoneInfo("Europe/Moscow")), values[:1]
        return [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in values[1:]]
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    assert all(set(row) == set(EXPORT_COLUMNS) for row in rows), rows[:1]
    return rows


def _synthetic_page(after: str | None, size: int, total: int) -> dict[str, Any]:
    start = int(after or 0)
    nodes = []
    for i in range(start, min(start + size, total)):
        text = f"Комментарий {i}: кошка сидит на окошке, а кот ждёт хозяйку у подъезда номер {i % 17}."
        nodes.append({
            "id": str(i + 1), "vkId": i + 1, "ownerId": -11001, "text": text,
            "publishedAt": "2026-09-01T12:00:00+00:00", "likes": i % 9, "deleted": False, "viewed": False,
            "archived": False, "matchesCount": 1, "url": f"https://vk.com/wall-11001_1?reply={i + 1}",
            "status": "NEW", "assignee": None, "tags": [], "note": None,
            "author": {"vkId": 1000 + i, "name": f"Автор {i}", "url": f"https://vk.com/id{1000 + i}"},
            "group": {"id": "1", "name": "Кошки Петербурга"}, "post": {"vkId": 1},
            "parent": None if i % 3 else {"id": "1", "text": "Родительский комментарий", "author": {"name": "Автор 0"}},
            "matches": [{"start": len(f"Комментарий {i}: "), "end": len(f"Комментарий {i}: кошка"),
                         "matchedText": "кошка", "keyword": {"id": "1", "word": "кошка"}}],
        })
    end = start + len(nodes)
    return {"data": {"comments": {
        "totalCount": total,
        "pageInfo": {"hasNextPage": end < total, "endCursor": str(end)},
        "edges": [{"node": n} for n in nodes],
    }}}


def test_review_stays_responsive_with_5000_loaded_comments(browser: Any, service: Service) -> None:
    """The list renders only the rows in view and re-renders only the rows a step changes: with
    5,000 comments loaded (served by a route standing in for a big database), the DOM keeps a
    few dozen rows, the keyboard moves one row per key and marks rows viewed, and the time per
    step is printed and saved for people to read (not asserted: the machine is shared)."""
    total, page_size = 5000, 500
    context, page, watch = _new_page(browser, service)

    def comments(route: Any) -> None:
        request = route.request
        body = json.loads(request.post_data or "{}") if request.method == "POST" else {}
        if "query Comments" not in body.get("query", ""):
            route.continue_()
            return
        variables = body.get("variables") or {}
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps(_synthetic_page(variables.get("after"), page_size, total), ensure_ascii=False))

    try:
        page.route("**/graphql", comments)
        _sign_in(page, service)
        page.get_by_role("link", name="Review").click()
        page.locator(".comment-row").first.wait_for()
        # scroll to the end until everything is loaded
        deadline = time.monotonic() + 60
        while "5,000 loaded of 5,000" not in page.get_by_test_id("review-count").inner_text():
            page.locator(".comment-list").evaluate("el => { el.scrollTop = el.scrollHeight }")
            page.wait_for_timeout(100)
            assert time.monotonic() < deadline, page.get_by_test_id("review-count").inner_text()
        assert page.locator(".comment-row").count() < 60
        page.locator(".comment-list").evaluate("el => { el.scrollTop = 0 }")
        page.wait_for_timeout(200)
        page.evaluate(_STEPS)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")

        def run(key: str, n: int) -> dict[str, Any]:
            before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            walls = page.evaluate("([key, n]) => window.__steps(key, n)", [key, n])
            after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            per_step = {name: round((after[name] - before[name]) * 1000 / n, 2)
                        for name in ("ThreadTime", "ScriptDuration", "RecalcStyleDuration", "LayoutDuration")}
            return {"steps": n, "cpuMsPerStep": per_step, **walls}

        # `idle` waits for frames without a key: what a step costs beyond it is the step's own.
        timings = {"idle": run("idle", 20), "j": run("j", 40), "v": run("v", 20), "k": run("k", 20),
                   "j again": run("j", 20)}
        current = page.locator(".comment-row.current").get_attribute("data-comment-id")
        assert current == "41", current  # 40 × j, 20 × k, 20 × j from the first row
        unfinished = sum(t["unfinished"] for t in timings.values())
        assert unfinished == 0, timings  # every key moved or marked its row
        # A step re-renders the rows it changes, not every row in view: leaving one and reaching
        # the next, plus one row in and one out when the list scrolls by a row.
        assert all(t["rowsChangedPerStep"]["max"] <= 4 for t in timings.values()), timings
        _shot(page, "16-review-5000")
        # A jump to anywhere in the list renders a whole new window of rows: measured, for people.
        scroll = run("scroll", 20)
        assert scroll["unfinished"] == 0 and scroll["rowsInDom"] < 40, scroll
        timings["scroll jump"] = scroll
        assert page.locator(".comment-row").count() < 40
        print("\nreview steps with 5,000 loaded rows (ms):", json.dumps(timings))
        (ARTIFACTS / "review-timings.json").write_text(json.dumps(timings, indent=1))
        watch.assert_clean()
    finally:
        context.close()


# `window.__steps(key, n)` presses `key` n times and measures each step twice: `work` is the
# dispatch of the key until the page has rendered and laid out the result (timers and
# microtasks run, layout forced); `frame` runs on to the next frame (requestAnimationFrame, then
# a task), as a person would see it. Both are wall time, so a busy machine inflates them; the
# CPU time per step (Chromium's ThreadTime) is steadier. SetCommentState is answered in the page
# without a network round trip, so `v` (which toggles the current row) measures the console.
_STEPS = """() => {
    const list = document.querySelector('.comment-list');
    const task = () => new Promise(r => setTimeout(r, 0));
    const frame = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
    const realFetch = window.fetch;
    window.fetch = async (url, init) => {
        const body = init && typeof init.body === 'string' ? JSON.parse(init.body) : {};
        if (!(body.query || '').includes('mutation SetCommentState')) return realFetch(url, init);
        const comments = body.variables.ids.map(id => ({id, viewed: body.variables.viewed ?? false, archived: false,
                                                        status: 'NEW', assignee: null, tags: [], note: null}));
        return new Response(JSON.stringify({data: {setCommentState: {comments, errors: []}}}),
                            {headers: {'Content-Type': 'application/json'}});
    };
    const current = () => document.querySelector('.comment-row.current');
    const round = x => Math.round(x * 10) / 10;
    const stats = xs => { const s = [...xs].sort((a, b) => a - b);
        return {median: round(s[Math.floor(s.length / 2)]), p95: round(s[Math.floor(s.length * 0.95)]), max: round(s[s.length - 1])}; };
    window.__steps = async (key, n) => {
        const work = [], frames = [], longTasks = [], touched = [];
        let unfinished = 0, rows = new Set();
        // Which rows a step changes in the DOM: the rows it leaves, reaches, adds or removes.
        const mutations = new MutationObserver(records => records.forEach(r => {
            if (r.target.classList?.contains('comment-row') || r.target.parentElement?.closest('.comment-row')) {
                rows.add(r.target.closest ? r.target.closest('.comment-row') : r.target.parentElement.closest('.comment-row'));
            } else {
                r.addedNodes.forEach(n => rows.add(n)); r.removedNodes.forEach(n => rows.add(n));
            }
        }));
        mutations.observe(list, {subtree: true, childList: true, characterData: true, attributes: true});
        const observer = new PerformanceObserver(l => l.getEntries().forEach(e => longTasks.push(e.duration)));
        observer.observe({type: 'longtask'});
        for (let i = 0; i < n; i++) {
            const row = current(), id = row?.dataset.commentId, viewed = row?.classList.contains('viewed');
            const done = key === 'v' ? () => current()?.classList.contains('viewed') !== viewed
                : key === 'idle' || key === 'scroll' ? () => true : () => current()?.dataset.commentId !== id;
            const t0 = performance.now();
            if (key === 'scroll') { list.scrollTop = Math.floor(Math.random() * list.scrollHeight); list.dispatchEvent(new Event('scroll')); }
            else if (key !== 'idle') document.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true}));
            for (let w = 0; w < 100 && !done(); w++) await task();
            if (!done()) unfinished++;
            void list.offsetHeight;  // style and layout of what changed
            work.push(performance.now() - t0);
            await frame();
            frames.push(performance.now() - t0);
            await frame();  // the scroll event a step may cause lands in its own frame
            mutations.takeRecords().forEach(() => {});
            await task();
            touched.push(rows.size);
            rows = new Set();
        }
        observer.disconnect();
        mutations.disconnect();
        return {unfinished, rowsChangedPerStep: {median: stats(touched).median, max: Math.max(...touched)}, work: stats(work), frame: stats(frames), longTasksOver50ms: longTasks.length,
                rowsInDom: document.querySelectorAll('.comment-row').length};
    };
}"""


def _serve_against_emulator(workdir: Path, emulator_args: list[str], env: dict[str, str]) -> Iterator[Service]:
    """`vkcp serve` (SQLite, in-process jobs) against the VK emulator as its own process."""
    vk_port, port = free_port(), free_port()
    emulator_log, log = workdir / "emulator.log", workdir / "serve.log"
    emulator = spawn(["-m", "infrastructure.vk.emulator", "--port", str(vk_port), "--world", "sandbox", *emulator_args],
                     {**os.environ, "PYTHONPATH": str(ROOT)}, emulator_log)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VKCP_DATA_DIR": str(workdir / "data"),
           "VKCP_VK_API_URL": f"http://127.0.0.1:{vk_port}/method", **env}
    for name in ("VKCP_DATABASE_URL", "VKCP_REDIS_URL", "VKCP_AUTH", "VKCP_VK_SANDBOX"):
        env.pop(name, None)
    proc = spawn(["-m", "entrypoints.cli", "serve", "--port", str(port)], env, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert emulator.poll() is None, emulator_log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        service = Service(f"http://127.0.0.1:{port}", first_admin_token(workdir / "data"))
        service.vk_url = f"http://127.0.0.1:{vk_port}"
        yield service
    finally:
        stop(proc)
        stop(emulator)


@pytest.fixture(scope="module")
def slow_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The sandbox world behind the emulator, one call per request (no `execute`) at 12 requests
    a second: a parse lasts seconds, as against real VK, so a person (and a test) can watch it run."""
    require_service("Chromium", _browser_problem())
    yield from _serve_against_emulator(
        tmp_path_factory.mktemp("console-slow"), ["--rps", "12", "--token", "slow-token"],
        {"VKCP_VK_TOKENS": "slow-token", "VKCP_VK_RPS": "12", "VKCP_VK_EXECUTE": "false"})


def test_a_running_parse_in_russian_moves_its_community_count(browser: Any, slow_service: Service) -> None:
    """While a parse runs, a Russian-speaking operator reads its kind, state and progress in
    Russian on the Communities and Tasks screens, and the community's comment count grows with
    the comments stored so far instead of waiting for the end."""
    service = slow_service
    context, page, watch = _new_page(browser, service, locale="ru-RU")
    try:
        page.goto(service.url + "/")
        page.get_by_label("API-токен").fill(service.token)
        page.get_by_role("button", name="Войти").click()
        page.get_by_role("link", name="Сообщества").click()
        page.get_by_label(re.compile("Добавить сообщества")).fill("koshki_spb")
        page.get_by_role("button", name="Добавить", exact=True).click()
        row = page.locator("tr[data-group='koshki_spb']")
        row.wait_for()
        assert row.locator("[data-count=comments]").inner_text() == "0"
        row.get_by_role("button", name="Собрать").click()
        # Every value the row shows while the parse runs, as the page renders it
        page.evaluate("""() => {
            window.__seen = [];
            const row = () => document.querySelector("tr[data-group='koshki_spb']");
            const look = () => {
                const r = row();
                window.__seen.push({state: r.querySelector('[data-state]')?.dataset.state ?? null,
                                    badge: r.querySelector('[data-state]')?.innerText ?? null,
                                    count: r.querySelector('[data-count=comments]').innerText,
                                    progress: r.querySelector('.progress-text')?.innerText ?? null});
            };
            new MutationObserver(look).observe(row().closest('tbody'), {subtree: true, childList: true, characterData: true});
        }""")
        page.wait_for_function("() => (window.__seen || []).some(s => s.state === 'RUNNING' && /постов/.test(s.progress || '')"
                               " && Number(s.count.replace(/\\D/g, '')) > 0)", timeout=60_000)
        assert row.locator("[data-state=RUNNING]").inner_text() == "Выполняется"
        _shot(page, "17-communities-parse-running-ru")
        page.get_by_role("link", name="Задачи").click()
        task_row = page.locator("tr[data-task]", has=page.locator("[data-kind=PARSE]")).first
        task_row.wait_for()
        assert task_row.locator("[data-kind=PARSE]").inner_text().startswith("Сбор · Кошки")
        running = task_row.locator("[data-state]").inner_text()
        progress = task_row.locator(".progress-text").inner_text()
        if running == "Выполняется":  # the parse may just have ended
            assert re.search(r"\d+/\d+ пост(а|ов)?, [\d\s\u00a0]+ комментари(й|я|ев)$", progress), progress
            _shot(page, "18-tasks-parse-running-ru")
        page.get_by_role("link", name="Сообщества").click()
        page.evaluate("""() => {
            window.__seen2 = [];
            const row = () => document.querySelector("tr[data-group='koshki_spb']");
            const look = () => { const r = row(); if (r) window.__seen2.push({
                state: r.querySelector('[data-state]')?.dataset.state ?? null,
                count: r.querySelector('[data-count=comments]').innerText}); };
            new MutationObserver(look).observe(document.querySelector('main'), {subtree: true, childList: true, characterData: true});
        }""")
        row.locator("[data-state=SUCCEEDED]").wait_for(timeout=120_000)
        stored = service.gql('{ tasks(filter: {kinds: [PARSE]}) { edges { node { result } } } }')
        total = stored["tasks"]["edges"][0]["node"]["result"]["commentsSeen"]
        assert total > 0
        # The row's count is read again once the parse has ended (the state may show first).
        page.wait_for_function("([sel, n]) => Number(document.querySelector(sel).innerText.replace(/\\D/g, '')) === n",
                               arg=["tr[data-group='koshki_spb'] [data-count=comments]", total], timeout=30_000)
        final = int(re.sub(r"\D", "", row.locator("[data-count=comments]").inner_text()))
        assert final == total
        seen = page.evaluate("window.__seen.concat(window.__seen2)")
        counts = [int(re.sub(r"\D", "", s["count"])) for s in seen if s["state"] == "RUNNING"]
        assert any(0 < c < final for c in counts), seen  # counted while the parse ran, not only at its end
        assert counts == sorted(counts), counts  # and it only grows
        assert row.locator("[data-state=SUCCEEDED]").inner_text() == "Готово"
        _shot(page, "19-communities-parsed-ru")
        watch.assert_clean()
    finally:
        context.close()


@pytest.fixture(scope="module")
def pool_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Two VK tokens; VK cuts the second off after 3 wall.getComments calls (its daily quota),
    and the pool knows a daily limit of 100 such calls per token: small enough for a schedule
    to overrun."""
    require_service("Chromium", _browser_problem())
    yield from _serve_against_emulator(
        tmp_path_factory.mktemp("console-pool"),
        ["--rps", "50", "--token", "tok-a", "--token", "tok-b", "--token-quota", "tok-b:wall.getComments=3"],
        {"VKCP_VK_TOKENS": "tok-a,tok-b", "VKCP_VK_DAILY_LIMITS": "wall.get=5000,wall.getComments=100"})


def _fingerprint(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()[:8]


def test_tokens_budget_and_comment_history_on_the_screens(browser: Any, pool_service: Service) -> None:
    """The Admin screen shows each VK token's calls today and per method against VK's limits,
    and the token VK put to rest; the Communities screen shows the monitoring schedule's budget
    with a clear warning when it cannot be met; Review shows comments edited or deleted on VK
    after they were collected, with their earlier texts, and filters them."""
    service = pool_service
    group_id = service.gql('mutation { addGroup(ref: "koshki_spb") { group { id } } }')["addGroup"]["group"]["id"]
    parse = "mutation($ids: [ID!]!, $full: Boolean!) { startParse(input: {groupIds: $ids, full: $full}) { tasks { id } } }"
    task_state = "query($id: ID!) { task(id: $id) { state error } }"

    def parsed(full: bool) -> None:
        [task] = service.gql(parse, ids=[group_id], full=full)["startParse"]["tasks"]
        deadline = time.monotonic() + 120
        while (state := service.gql(task_state, id=task["id"])["task"])["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["state"] == "SUCCEEDED", state

    parsed(full=False)
    # between two runs, people on VK edit one comment and delete another that has replies
    replies = service.gql("query($g: [ID!]) { comments(first: 100, filter: {groupIds: $g}) { edges { node {"
                          " vkId ownerId text parent { vkId } } } } }", g=[group_id])["comments"]["edges"]
    # a thread's first comment: deleted, VK keeps it as `deleted: true` for its replies to hang from
    top_level = {e["node"]["vkId"] for e in replies if not e["node"]["parent"]}
    parent_vk_id = next(e["node"]["parent"]["vkId"] for e in replies
                        if e["node"]["parent"] and e["node"]["parent"]["vkId"] in top_level)
    edited = next(e["node"] for e in replies if not e["node"]["parent"] and e["node"]["vkId"] != parent_vk_id)
    gone = next(e["node"] for e in replies if e["node"]["vkId"] == parent_vk_id)
    owner = edited["ownerId"]
    for change in ({"edit": {"owner_id": owner, "comment_id": edited["vkId"], "text": "Исправлено: кошка нашлась!"}},
                   {"delete": {"owner_id": owner, "comment_id": parent_vk_id}}):
        assert httpx.post(f"{service.vk_url}/_world", json=change, timeout=10).status_code == 200
    parsed(full=True)
    service.gql("mutation($id: ID!) { updateGroup(id: $id, input: {monitoring: {enabled: true, intervalMinutes: 10}})"
                " { errors { message } } }", id=group_id)

    context, page, watch = _new_page(browser, service)
    try:
        _sign_in(page, service)
        # Admin: calls today and per method; the second token rests after VK's quota
        page.get_by_role("link", name="Admin").click()
        resting = page.locator(f"tr[data-vk-token='{_fingerprint('tok-b')}']")
        resting.wait_for()
        assert resting.locator(".token-parked").inner_text() == "parked", resting.inner_text()
        assert resting.locator("td").nth(2).inner_text() not in ("", "—")  # parked until
        working = page.locator(f"tr[data-vk-token='{_fingerprint('tok-a')}']")
        calls = int(re.sub(r"\D", "", working.locator("[data-col=callsToday]").inner_text()))
        assert calls > 0
        quota = working.locator("[data-col=quotas] li[data-method='wall.getComments']").inner_text()
        assert re.search(r"[\d,]+ / 100", quota), quota
        assert re.fullmatch(r"[\d,]+", working.locator("[data-col=callsRemaining]").inner_text())
        _shot(page, "20-admin-vk-calls")
        _axe(page, "admin with calls")

        # Communities: the schedule (every 10 minutes) does not fit 2 × 100 calls a day
        page.get_by_role("link", name="Communities").click()
        warning = page.get_by_test_id("budget-warning")
        warning.wait_for()
        said = warning.inner_text()
        assert re.search(r"needs ~[\d,]+ wall\.getComments calls a day; 2 usable tokens allow 200: add [\d,]+ tokens? "
                         r"or lengthen the monitoring intervals", said), said
        # worded from the service's code and arguments (domain/budget.py decides what is short and by how much)
        shortfall = service.gql("{ vkBudget { warningCode warningArgs } }")["vkBudget"]
        assert shortfall["warningCode"] == "TOKENS_SHORT", shortfall
        [short] = shortfall["warningArgs"]["short"]
        more = shortfall["warningArgs"]["addTokens"]
        assert (short["method"], short["limit"], shortfall["warningArgs"]["usableTokens"]) == ("wall.getComments", 200, 2)
        assert (f"The schedule needs ~{short['calls']:,} wall.getComments calls a day; 2 usable tokens allow 200: "
                f"add {more} token{'' if more == 1 else 's'} or lengthen the monitoring intervals.") in said, said
        assert page.get_by_test_id("budget-fits").inner_text() == "does not fit"
        assert page.locator(".budget-communities tr[data-budget-group]").count() == 1
        assert "144" in page.locator(".budget-communities tr[data-budget-group]").inner_text()  # runs a day
        _shot(page, "21-communities-budget")
        _axe(page, "communities with the budget")

        # Review: the edited and the deleted comment, each with its badge, and the earlier text
        page.get_by_role("link", name="Review").click()
        page.locator(".comment-row").first.wait_for()
        page.locator("select[name=edited]").select_option("yes")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_function("() => document.querySelector('[data-testid=review-count]').innerText.startsWith('1 loaded of 1')")
        row = page.locator(".comment-row", has=page.locator("[data-badge=edited]")).first
        assert "Исправлено: кошка нашлась!" in row.inner_text()
        row.click()
        page.get_by_test_id("edited-at").wait_for()
        page.locator(".versions li").first.wait_for()
        assert page.locator(".versions .version-text").first.inner_text() == edited["text"]
        _shot(page, "22-review-edited")
        _axe(page, "review, an edited comment")
        page.locator("select[name=edited]").select_option("")
        page.locator("select[name=deleted]").select_option("yes")
        page.get_by_role("button", name="Apply").click()
        # the comment deleted between the runs keeps its text, marked (the sandbox has others VK showed deleted)
        deleted = page.locator(".comment-row", has_text=gone["text"])
        deleted.locator("[data-badge=deleted]").wait_for()
        rows = page.locator(".comment-row").count()
        assert rows == page.locator(".comment-row [data-badge=deleted]").count(), "the filter shows deleted comments only"
        deleted.click()
        page.get_by_test_id("deleted-at").wait_for()
        assert re.fullmatch(r"Deleted on VK \(noticed .+\)", page.get_by_test_id("deleted-at").inner_text())
        _shot(page, "23-review-deleted")
        page.get_by_role("link", name="Exports").click()
        assert "Deleted on VK: yes" in page.get_by_test_id("export-filter").inner_text()

        # the same in Russian
        page.get_by_role("button", name="RU").first.click()
        page.get_by_role("link", name="Просмотр").click()
        deleted.wait_for()
        assert deleted.locator("[data-badge=deleted]").inner_text() == "удалён"
        page.get_by_role("link", name="Сообщества").click()
        said = page.get_by_test_id("budget-warning").inner_text()
        assert re.search(r"Расписанию нужно ~[\d\s\u00a0]+ вызовов wall\.getComments в день, а 2 рабочих токена "
                         r"позволяют 200: добавьте [\d\s\u00a0]+ токен", said), said
        assert f"добавьте {more} токен" in said, said
        _shot(page, "24-communities-budget-ru")
        page.get_by_role("link", name="Администрирование").click()
        resting.locator(".token-parked").wait_for()
        assert resting.locator(".token-parked").inner_text() == "отдыхает"
        _shot(page, "25-admin-vk-calls-ru")
        watch.assert_clean()
    finally:
        context.close()



@pytest.fixture(scope="module")
def resting_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One VK token, which VK cuts off after 20 wall.getComments calls (its daily quota), one call
    a request: a parse stores what it read, then has every token resting."""
    require_service("Chromium", _browser_problem())
    yield from _serve_against_emulator(
        tmp_path_factory.mktemp("console-resting"),
        ["--rps", "20", "--token", "tok-only", "--token-quota", "tok-only:wall.getComments=20"],
        {"VKCP_VK_TOKENS": "tok-only", "VKCP_VK_RPS": "20", "VKCP_VK_EXECUTE": "false",
         "VKCP_VK_DAILY_LIMITS": "wall.get=5000,wall.getComments=20"})


def test_a_parse_waiting_for_vk_is_shown_and_can_be_cancelled(browser: Any, resting_service: Service) -> None:
    """Every token over its daily quota: the parse waits instead of failing, and the Tasks and
    Communities screens say so, in the operator's language, with the time it resumes."""
    service = resting_service
    group_id = service.gql('mutation { addGroup(ref: "koshki_spb") { group { id } } }')["addGroup"]["group"]["id"]
    [task] = service.gql("mutation($ids: [ID!]!) { startParse(input: {groupIds: $ids}) { tasks { id } } }",
                         ids=[group_id])["startParse"]["tasks"]
    query = "query($id: ID!) { task(id: $id) { state waitingUntil progress { message messageCode messageArgs } } }"
    deadline = time.monotonic() + 60
    while not (waiting := service.gql(query, id=task["id"])["task"])["waitingUntil"]:
        assert waiting["state"] in ("QUEUED", "RUNNING") and time.monotonic() < deadline, waiting
        time.sleep(0.2)
    assert waiting["state"] == "QUEUED", waiting
    assert waiting["progress"]["messageCode"] == "WAITING_FOR_VK", waiting
    assert waiting["progress"]["messageArgs"]["reason"] == "QUOTA", waiting
    assert re.fullmatch(r"waiting for VK: every token is over its daily quota until (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC",
                        waiting["progress"]["message"]), waiting

    context, page, watch = _new_page(browser, service)
    try:
        _sign_in(page, service)
        page.get_by_role("link", name="Communities").click()
        row = page.locator("tr[data-group='koshki_spb']")
        row.locator(".state-waiting").wait_for()
        assert row.locator(".state-waiting").inner_text() == "Waiting for VK"
        assert re.search(r"waiting for VK: every token is over its daily quota until .+ UTC", row.inner_text()), row.inner_text()
        assert row.get_by_test_id("waiting-until").inner_text().startswith("resumes by itself ")
        # what the parse stored before every token rested is counted
        stored = service.gql("query($id: ID!) { node(id: $id) { ... on Group { commentsCount } } }", id=group_id)
        assert stored["node"]["commentsCount"] > 0, stored
        page.wait_for_function("(n) => document.querySelector(\"tr[data-group='koshki_spb'] [data-count=comments]\")"
                               ".innerText.replace(/\\D/g, '') === String(n)", arg=stored["node"]["commentsCount"])
        _shot(page, "26-communities-waiting-for-vk")
        _axe(page, "communities, a parse waiting for VK")
        page.get_by_role("button", name="RU").first.click()
        page.get_by_role("link", name="Задачи").click()
        task_row = page.locator(f"tr[data-task='{task['id']}']")
        task_row.locator(".state-waiting").wait_for()
        assert task_row.locator(".state-waiting").inner_text() == "Ждёт VK"
        said = task_row.locator(".progress-text").inner_text()
        assert re.search(r"ожидание VK: у всех токенов исчерпан дневной лимит до .+ UTC$", said), said
        assert task_row.get_by_test_id("waiting-until").inner_text().startswith("продолжится само ")
        _shot(page, "27-tasks-waiting-for-vk-ru")
        # cancel still works while it waits
        task_row.get_by_role("button", name="Отменить").click()
        task_row.locator("[data-state=CANCELLED]").wait_for()
        assert task_row.locator("[data-state=CANCELLED]").inner_text() == "Отменено"
        watch.assert_clean()
    finally:
        context.close()
