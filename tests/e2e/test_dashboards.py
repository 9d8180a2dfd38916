"""The Prometheus rules (deploy/prometheus/alerts.yml) and the Grafana dashboard
(deploy/grafana/vkcp.json) read only series the service exposes: a real `vkcp serve` (sandbox VK,
embedded database) runs a parse, and its /metrics scrape must carry every metric they name, with
the labels they select on. A renamed metric or label fails here, not on a quiet dashboard."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import embedded_serve

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_MADE = {"up"}  # series Prometheus itself records per scrape target
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
_NAME = re.compile(r"\b((?:vkcp|process)_[a-z0-9_]+)")
_SELECTOR = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')


def rule_expressions() -> list[str]:
    groups = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"]
    found = []
    for rule in (r for g in groups for r in g["rules"]):
        found.append(rule["expr"])
        found.extend(re.findall(r'query "((?:[^"\\]|\\.)*)"', rule["annotations"]["description"]))
    return [e.replace('\\"', '"') for e in found]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/vkcp.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def exposed(text: str) -> dict[str, list[dict[str, str]]]:
    """Every series name a scrape can carry (a family's suffixes too), with its samples' labels."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "summary": ["_count", "_sum"]}
    series: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, [""]):
            series.setdefault(family.name + suffix, [])
        for sample in family.samples:
            series.setdefault(sample.name, []).append(sample.labels)
    return series


async def _parse_and_scrape(url: str, token: str) -> tuple[str, dict]:
    """A parse of the sandbox's community, then /metrics once the metrics listener has heard it
    finish (on the event stream): the exposition text and the task's result."""
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        async def gql(query: str, **variables: object) -> dict:
            body = (await client.post("/graphql", json={"query": query, "variables": variables})).json()
            assert "errors" not in body, body
            return body["data"]

        await gql('mutation { addKeywords(input: [{word: "кот"}]) { errors { code } } }')
        group = (await gql('mutation { addGroup(ref: "koshki_spb") { group { id } } }'))["addGroup"]["group"]
        started = await gql("mutation($g: [ID!]!) { startParse(input: {groupIds: $g, maxPosts: 3}) { tasks { id } } }",
                            g=[group["id"]])
        task_id = started["startParse"]["tasks"][0]["id"]
        result = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            task = (await gql("query($id: ID!) { task(id: $id) { state result } }", id=task_id))["task"]
            if task["state"] == "SUCCEEDED":
                result = task["result"]
                break
            assert task["state"] in ("QUEUED", "RUNNING"), task
            await asyncio.sleep(0.2)
        assert result is not None and result["commentsSeen"] > 0, result
        while True:
            text = (await client.get("/metrics")).text
            counted = [s for s in text.splitlines() if s.startswith("vkcp_collected_comments_total ")]
            if (counted and float(counted[0].split()[1]) > 0) or time.monotonic() > deadline:
                return text, result
            await asyncio.sleep(0.2)


def test_rules_and_dashboard_name_only_series_the_service_exposes(tmp_path: Path) -> None:
    with embedded_serve(tmp_path) as (url, token, _log):
        text, result = asyncio.run(_parse_and_scrape(url, token))
    series = exposed(text)
    counted = [s for s in text.splitlines() if s.startswith("vkcp_collected_comments_total ")]

    # The collection-rate series counts what the parse read.
    assert counted == [f"vkcp_collected_comments_total {float(result['commentsSeen'])}"], counted
    matches = [s for s in text.splitlines() if s.startswith("vkcp_collected_matches_total ")]
    assert matches == [f"vkcp_collected_matches_total {float(result['matches'])}"], matches

    for source, expressions in (("alerts.yml", rule_expressions()), ("vkcp.json", dashboard_expressions())):
        assert expressions, source
        for expr in expressions:
            names = set(_NAME.findall(expr))
            assert names or PROMETHEUS_MADE & set(re.findall(r"\b\w+\b", expr)), (source, expr)
            missing = names - set(series)
            assert not missing, f"{source}: {expr!r} names {missing}, which /metrics does not expose"
            for name, matchers in _SELECTOR.findall(expr):
                if name in PROMETHEUS_MADE:
                    continue
                labels = set(_MATCHER.findall(matchers)) - TARGET_LABELS
                samples = series[name]
                if samples:  # a labelled family with no series yet (no VK error so far) has no labels to compare
                    known = set().union(*samples)
                    assert labels <= known, f"{source}: {expr!r} selects {labels - known} on {name} ({known})"
