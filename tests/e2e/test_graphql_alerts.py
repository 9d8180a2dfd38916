"""Alert rules through GraphQL: admin-managed, channels masked, the webhook secret shown once,
coded errors for bad channels and modes; ``testAlertRule`` against a real local receiver."""

from __future__ import annotations

import pytest

from graphql_api.ids import NodeType, global_id
from tests.e2e.graphql_support import Api, api, client, container, tokens  # noqa: F401
from tests.receivers import WebhookReceiver

RULE_FIELDS = """
  id name enabled mode channels digestMinutes thresholdCount thresholdMinutes language systemEvents mutedUntil
  filter { groupIds keywordIds text }
"""
CREATE = f"""
mutation($input: AlertRuleInput!) {{
  createAlertRule(input: $input) {{ alertRule {{ {RULE_FIELDS} }} webhookSecret errors {{ code field message }} }}
}}"""
UPDATE = f"""
mutation($id: ID!, $input: AlertRuleInput!) {{
  updateAlertRule(id: $id, input: $input) {{ alertRule {{ {RULE_FIELDS} }} errors {{ code field message }} }}
}}"""
REMOVE = "mutation($id: ID!) { removeAlertRule(id: $id) { removedAlertRuleId errors { code field } } }"
TEST = "mutation($id: ID!) { testAlertRule(id: $id) { results { channel ok detail } errors { code field } } }"
RULES = f"query {{ alertRules {{ {RULE_FIELDS} }} }}"

TG = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890"
MAIL = "mailtos://alerts:s3cretPassw0rd@smtp.example.com?to=ops@example.com"


async def create(api: Api, **input) -> dict:
    payload = (await api(CREATE, {"input": input}, role="admin"))["createAlertRule"]
    assert payload["errors"] == [], payload
    return payload


async def test_a_rule_is_created_with_masked_channels_and_its_secret_once(api: Api) -> None:
    hook = "https://hooks.example.com/vkcp/abcdef0123456789abcdef?token=s3cr3tT0kenValue99"
    payload = await create(api, name="Brand", channels=[hook, TG, MAIL], filter={"text": "кошка"})
    rule = payload["alertRule"]
    assert payload["webhookSecret"].startswith("whsec_")
    assert rule["mode"] == "INSTANT" and rule["language"] == "EN" and rule["enabled"] is True
    assert rule["filter"]["text"] == "кошка"
    shown = " ".join(rule["channels"])
    for secret in ("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "s3cretPassw0rd", "s3cr3tT0kenValue99",
                   "abcdef0123456789abcdef", payload["webhookSecret"]):
        assert secret not in shown
    assert rule["channels"][0].startswith("https://hooks.example.com/") and rule["channels"][1].startswith("tgram://")
    # Never again: the secret appears in no other answer.
    listed = await api.post(RULES, role="admin")
    assert payload["webhookSecret"] not in listed.text and "s3cretPassw0rd" not in listed.text


async def test_viewers_see_rules_without_channels_and_only_admins_change_them(api: Api) -> None:
    rule = (await create(api, name="r", channels=[TG]))["alertRule"]
    assert (await api(RULES, role="viewer"))["alertRules"][0]["channels"] == []
    assert (await api(RULES, role="operator"))["alertRules"][0]["channels"] == rule["channels"]
    for mutation, variables in ((CREATE, {"input": {"name": "x", "channels": [TG]}}),
                                (REMOVE, {"id": rule["id"]}), (TEST, {"id": rule["id"]})):
        body = (await api.post(mutation, variables, role="operator")).json()
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("input", "code", "field"),
    [
        ({"name": "x", "channels": ["not a url"]}, "INVALID_CHANNEL", "channels"),
        ({"name": "x", "channels": ["nosuchservice://abc"]}, "INVALID_CHANNEL", "channels"),
        ({"name": "x", "channels": ["https://"]}, "INVALID_CHANNEL", "channels"),
        ({"name": "x", "channels": []}, "INVALID_CHANNEL", "channels"),
        ({"name": "x"}, "INVALID_CHANNEL", "channels"),
        ({"name": " ", "channels": [TG]}, "BAD_USER_INPUT", "name"),
        ({"name": "x", "channels": [TG], "mode": "DIGEST"}, "BAD_USER_INPUT", "digestMinutes"),
        ({"name": "x", "channels": [TG], "mode": "DIGEST", "digestMinutes": 0}, "BAD_USER_INPUT", "digestMinutes"),
        ({"name": "x", "channels": [TG], "mode": "THRESHOLD", "thresholdMinutes": 5}, "BAD_USER_INPUT",
         "thresholdCount"),
        ({"name": "x", "channels": [TG], "filter": {"groupIds": ["S2V5d29yZDox"]}}, "BAD_USER_INPUT", "groupIds"),
    ],
)
async def test_bad_rules_are_refused_with_a_code_and_nothing_is_stored(api: Api, input, code, field) -> None:
    payload = (await api(CREATE, {"input": input}, role="admin"))["createAlertRule"]
    assert payload["alertRule"] is None and payload["webhookSecret"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)]
    assert "s3cret" not in str(payload)
    assert (await api(RULES, role="admin"))["alertRules"] == []


async def test_update_keeps_masked_channels_changes_mode_and_remove_deletes(api: Api) -> None:
    rule = (await create(api, name="r", channels=[TG, MAIL]))["alertRule"]
    masked_tg = rule["channels"][0]
    updated = (await api(UPDATE, {"id": rule["id"], "input": {
        "channels": [masked_tg, "json://127.0.0.1:9/hook"], "mode": "DIGEST", "digestMinutes": 15, "language": "RU",
    }}, role="admin"))["updateAlertRule"]
    assert updated["errors"] == []
    assert updated["alertRule"]["channels"] == [masked_tg, "json://127.0.0.1:9/hook"]
    assert updated["alertRule"]["mode"] == "DIGEST" and updated["alertRule"]["digestMinutes"] == 15
    assert updated["alertRule"]["language"] == "RU" and updated["alertRule"]["name"] == "r"
    missing = (await api(UPDATE, {"id": "999", "input": {"name": "y"}}, role="admin"))["updateAlertRule"]
    assert [e["code"] for e in missing["errors"]] == ["NOT_FOUND"]
    removed = (await api(REMOVE, {"id": rule["id"]}, role="admin"))["removeAlertRule"]
    assert removed == {"removedAlertRuleId": rule["id"], "errors": []}
    assert (await api(RULES, role="admin"))["alertRules"] == []
    again = (await api(REMOVE, {"id": rule["id"]}, role="admin"))["removeAlertRule"]
    assert [e["code"] for e in again["errors"]] == ["NOT_FOUND"]


async def test_system_rule_and_deliveries_connection(api: Api) -> None:
    rule = (await create(api, name="ops", channels=[TG], systemEvents=["TASK_FAILED", "TOKENS_DOWN"]))["alertRule"]
    assert rule["systemEvents"] == ["TASK_FAILED", "TOKENS_DOWN"]
    page = await api(
        "query($f: AlertDeliveryFilter) { alertDeliveries(filter: $f, first: 5) { totalCount edges { node { id } } } }",
        {"f": {"ruleIds": [rule["id"]], "states": ["PENDING", "FAILED"]}}, role="viewer",
    )
    assert page["alertDeliveries"] == {"totalCount": 0, "edges": []}


async def test_test_alert_rule_signs_webhooks(api: Api) -> None:
    async with WebhookReceiver() as good, WebhookReceiver(status=503) as bad:
        payload = await create(api, name="hooks", channels=[good.url, bad.url])
        rule = payload["alertRule"]
        result = (await api(TEST, {"id": rule["id"]}, role="admin"))["testAlertRule"]
        assert result["errors"] == []
        assert [(r["ok"], r["detail"]) for r in result["results"]] == [(True, "HTTP 204"), (False, "HTTP 503: down")]
        good.verify_all(payload["webhookSecret"])
        assert len(good.received) == 1 and good.received[0].payload["type"] == "alert.test"


async def test_a_rules_filter_comes_back_as_given_field_for_field(api: Api) -> None:
    """Every field of the `comments` filter is kept and shown back (AlertRuleFilter is made from
    CommentFilter's own fields): the introspected list proves none is left out."""
    given = {
        "groupIds": [global_id(NodeType.GROUP, 7)], "postIds": [global_id(NodeType.POST, 8)],
        "keywordIds": [global_id(NodeType.KEYWORD, 9)], "matched": True, "text": "кошка",
        "authorIds": [42, 43], "since": "2026-01-02T03:04:05+00:00", "until": "2026-02-02T03:04:05+00:00",
        "viewed": False, "archived": False, "deleted": True, "edited": False,
        "statuses": ["NEW", "IN_PROGRESS"], "assignees": ["Анна"], "tags": ["срочно"], "query": "кот AND корм",
    }
    fields = (await api('{ __type(name: "CommentFilter") { inputFields { name } } }', role="admin"))["__type"]
    assert {f["name"] for f in fields["inputFields"]} == set(given)
    rule = (await create(api, name="every field", channels=[TG], filter=given))["alertRule"]
    shown = (await api(f'query($id: ID!) {{ alertRule(id: $id) {{ filter {{ {" ".join(given)} }} }} }}',
                       {"id": rule["id"]}, role="admin"))["alertRule"]["filter"]
    assert shown == given
