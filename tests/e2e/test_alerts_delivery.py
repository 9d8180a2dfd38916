"""Alerts delivered for real: a parse of the sandbox VK matches comments, the outbox queues them
in the matches' transaction, and the delivery loop sends them to real receivers on loopback —
a webhook server verifying every Standard Webhooks signature, an ``aiosmtpd`` SMTP server
(Apprise ``mailto://``) and Apprise ``json://`` — on SQLite and PostgreSQL. A re-parse and a
re-analysis alert nothing again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bootstrap import Container
from domain.alerts import Deliverer
from domain.auth import create_api_token
from graphql_api.app import create_app
from tests.e2e.graphql_support import Api, make_settings, start_container, wait_for_task
from tests.receivers import SmtpReceiver, WebhookReceiver

CREATE = """
mutation($input: AlertRuleInput!) {
  createAlertRule(input: $input) { alertRule { id channels } webhookSecret errors { code field message } }
}"""
DELIVERIES = """
query($f: AlertDeliveryFilter) {
  alertDeliveries(filter: $f, first: 100) {
    totalCount edges { node { state attempts messageId channel comment { id text } rule { name } } }
  }
}"""


@pytest.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Container, Api]]:
    container = await start_container(make_settings(tmp_path, database_url=database_url,
                                                    public_url="https://vkcp.example.com"))
    tokens = {}
    for role in ("viewer", "admin"):
        tokens[role], _ = await create_api_token(container.adapters.uow_factory, role, role)
    tokens["operator"] = tokens["admin"]
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        try:
            yield container, Api(client, tokens)
        finally:
            await container.aclose()


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


async def deliver_all(container: Container) -> int:
    """Run delivery passes until nothing is due: how many rows they settled."""
    deliverer = Deliverer(container.adapters, worker_id="test")
    total = 0
    while done := await deliverer.run_once():
        total += done
    return total


async def parse(api: Api, ref: str) -> str:
    group = (await api("mutation($r: String!) { addGroup(ref: $r) { group { id } } }", {"r": ref}))["addGroup"]
    started = await api("mutation($g: ID!) { startParse(input: {groupIds: [$g]}) { tasks { id } } }",
                        {"g": group["group"]["id"]})
    task = await wait_for_task(api, started["startParse"]["tasks"][0]["id"], timeout=60)
    assert task["state"] == "SUCCEEDED", task
    return str(group["group"]["id"])


async def test_each_matched_comment_is_alerted_once_per_rule_on_every_channel(stack) -> None:
    container, api = stack
    added = await api('mutation { addKeywords(input: [{word: "кошка"}]) { keywords { id } } }')
    keyword_id = added["addKeywords"]["keywords"][0]["id"]
    assert (await api.client.get("/metrics")).status_code == 200  # latencies count from this scrape on
    async with WebhookReceiver() as hook, WebhookReceiver(path="/json") as json_hook:
        with SmtpReceiver() as smtp:
            mail = f"mailto://127.0.0.1:{smtp.port}?from=vkcp@example.com&to=ops@example.com&mode=insecure"
            json_url = json_hook.url.replace("http://", "json://")
            created = (await api(CREATE, {"input": {
                "name": "Кошки", "channels": [hook.url, mail, json_url], "filter": {"keywordIds": [keyword_id]},
            }}, role="admin"))["createAlertRule"]
            assert created["errors"] == []
            secret = created["webhookSecret"]

            await parse(api, "koshki_spb")
            matched = (await api("query($f: CommentFilter) { comments(filter: $f) { totalCount } }",
                                 {"f": {"keywordIds": [keyword_id]}}))["comments"]["totalCount"]
            assert matched > 0
            assert await deliver_all(container) == 3 * matched

            # The webhook: one signed message per comment, no duplicates, what a receiver needs.
            assert len(hook.received) == matched and hook.duplicates() == 0
            hook.verify_all(secret)
            comments = [r.payload["comment"] for r in hook.received]
            assert len({c["id"] for c in comments}) == matched
            for r in hook.received:
                body = r.payload
                assert body["type"] == "alert.match" and body["rule"]["name"] == "Кошки"
                assert body["comment"]["url"].startswith("https://vk.com/wall-")
                assert body["comment"]["author"]["vkId"] and body["comment"]["community"]["name"]
                assert body["comment"]["time"] and body["comment"]["text"]
                assert body["matches"] and body["matches"][0]["keyword"] == "кошка"
                assert body["consoleUrl"].startswith("https://vkcp.example.com/")
            # Apprise: the same count by e-mail (to the local SMTP server) and by json://.
            assert len(smtp.messages) == matched
            scraped = (await api.client.get("/metrics")).text
            assert metric(scraped, "vkcp_alert_deliveries", state="SENT") == 3 * matched
            assert metric(scraped, "vkcp_alert_deliveries_pending") == 0
            assert metric(scraped, "vkcp_alert_oldest_pending_seconds") == 0
            assert metric(scraped, "vkcp_alert_delivery_latency_seconds_count") == 3 * matched
            assert all(m.rcpt_tos == ["ops@example.com"] for m in smtp.messages)
            assert len(json_hook.received) == matched

            # Parsing again and re-analysing alerts nothing again.
            await parse(api, "koshki_spb")
            analyze = await api("mutation { startAnalyze { task { id } } }")
            assert (await wait_for_task(api, analyze["startAnalyze"]["task"]["id"], timeout=60))["state"] == "SUCCEEDED"
            assert await deliver_all(container) == 0
            assert len(hook.received) == matched and len(smtp.messages) == matched
            assert len(json_hook.received) == matched

    log = (await api(DELIVERIES, {"f": {"states": ["SENT"]}}, role="admin"))["alertDeliveries"]
    assert log["totalCount"] == 3 * matched
    node = log["edges"][0]["node"]
    assert node["attempts"] == 1 and node["rule"]["name"] == "Кошки" and node["comment"]["id"]
    viewer = (await api(DELIVERIES, {"f": {"states": ["SENT"]}}, role="viewer"))["alertDeliveries"]
    assert {e["node"]["channel"] for e in viewer["edges"]} == {""}
