"""Communities through GraphQL over HTTP: adding by any reference, bulk add, settings, removal."""

from __future__ import annotations

from tests.e2e.graphql_support import Api, api, client, container, tokens  # noqa: F401

ADD = """
mutation($ref: String!) {
  addGroup(ref: $ref) {
    group { id vkId screenName name isClosed membersCount active url monitoring { enabled intervalMinutes } }
    errors { code message field }
  }
}
"""


async def test_add_group_by_link_screen_name_and_id_is_one_community(api: Api) -> None:
    first = (await api(ADD, {"ref": "https://vk.com/koshki_spb"}))["addGroup"]
    assert first["errors"] == []
    group = first["group"]
    assert group["vkId"] == 11001
    assert group["screenName"] == "koshki_spb"
    assert group["name"] == "Кошки Петербурга"
    assert group["membersCount"] == 48210
    assert group["active"] is True
    assert group["url"] == "https://vk.com/koshki_spb"

    for ref in ("koshki_spb", "club11001", "public11001", "vk.com/club11001", "-11001"):
        again = (await api(ADD, {"ref": ref}))["addGroup"]
        assert again["errors"] == [], ref
        assert again["group"]["id"] == group["id"], ref

    page = await api("{ groups { totalCount edges { node { id } } } }", role="viewer")
    assert page["groups"]["totalCount"] == 1


async def test_add_group_reports_bad_references_as_user_errors(api: Api) -> None:
    unknown = (await api(ADD, {"ref": "no_such_community_here"}))["addGroup"]
    assert unknown["group"] is None
    assert unknown["errors"][0]["code"] == "INVALID_REFERENCE"
    assert unknown["errors"][0]["field"] == "ref"
    assert "no_such_community_here" in unknown["errors"][0]["message"]

    for malformed in ("https://example.com/koshki_spb", "https://vk.com/wall-1_2/extra", "кошки!", "   "):
        result = (await api(ADD, {"ref": malformed}))["addGroup"]
        assert result["group"] is None, malformed
        assert result["errors"][0]["code"] == "INVALID_REFERENCE", malformed


async def test_add_groups_gives_one_result_per_line(api: Api) -> None:
    data = await api(
        """
        mutation($refs: [String!]!) {
          addGroups(refs: $refs) {
            results { ref group { screenName } errors { code } }
            groups { screenName }
            errors { code }
          }
        }
        """,
        {"refs": ["koshki_spb", "", "https://vk.com/zarechye_news", "not a group", "koshki_spb"]},
    )
    payload = data["addGroups"]
    assert payload["errors"] == []
    results = payload["results"]
    assert [r["ref"] for r in results] == ["koshki_spb", "https://vk.com/zarechye_news", "not a group", "koshki_spb"]
    assert [r["group"] and r["group"]["screenName"] for r in results] == [
        "koshki_spb", "zarechye_news", None, "koshki_spb"
    ]
    assert results[2]["errors"][0]["code"] == "INVALID_REFERENCE"
    total = await api("{ groups { totalCount } }", role="viewer")
    assert total["groups"]["totalCount"] == 2


async def test_groups_are_paginated_with_cursors(api: Api) -> None:
    for ref in ("koshki_spb", "zarechye_news", "babushka_recipes", "velo_spb"):
        assert (await api(ADD, {"ref": ref}))["addGroup"]["errors"] == []
    query = """
    query($after: String) {
      groups(first: 3, after: $after) {
        totalCount edges { cursor node { screenName } } pageInfo { hasNextPage endCursor }
      }
    }"""
    first = (await api(query, role="viewer"))["groups"]
    assert first["totalCount"] == 4
    assert [e["node"]["screenName"] for e in first["edges"]] == ["koshki_spb", "zarechye_news", "babushka_recipes"]
    assert first["pageInfo"] == {"hasNextPage": True, "endCursor": first["edges"][-1]["cursor"]}
    second = (await api(query, {"after": first["pageInfo"]["endCursor"]}, role="viewer"))["groups"]
    assert [e["node"]["screenName"] for e in second["edges"]] == ["velo_spb"]
    assert second["pageInfo"]["hasNextPage"] is False


async def test_group_by_id_and_unknown_ids(api: Api) -> None:
    group = (await api(ADD, {"ref": "velo_spb"}))["addGroup"]["group"]
    query = "query($id: ID!) { group(id: $id) { name } }"
    assert (await api(query, {"id": group["id"]}, role="viewer"))["group"]["name"] == "Велосипедный Петербург"
    assert (await api(query, {"id": "999"}, role="viewer"))["group"] is None
    assert (await api(query, {"id": "not-an-id"}, role="viewer"))["group"] is None

    for mutation in (
        'mutation { removeGroup(id: "999") { removedGroupId errors { code field } } }',
        'mutation { refreshGroup(id: "999") { group { id } errors { code field } } }',
        'mutation { updateGroup(id: "999", input: {active: false}) { group { id } errors { code field } } }',
    ):
        payload = next(iter((await api(mutation)).values()))
        assert payload["errors"] == [{"code": "NOT_FOUND", "field": "id"}], mutation


async def test_update_group_settings_and_validation(api: Api) -> None:
    group = (await api(ADD, {"ref": "zarechye_news"}))["addGroup"]["group"]
    update = """
    mutation($id: ID!, $input: UpdateGroupInput!) {
      updateGroup(id: $id, input: $input) {
        group { active maxPosts since monitoring { enabled intervalMinutes priority nextRunAt } }
        errors { code field }
      }
    }"""
    changed = (await api(update, {
        "id": group["id"],
        "input": {"maxPosts": 50, "since": "2026-09-01T00:00:00+00:00",
                  "monitoring": {"enabled": True, "intervalMinutes": 30, "priority": 8}},
    }))["updateGroup"]
    assert changed["errors"] == []
    assert changed["group"]["maxPosts"] == 50
    assert changed["group"]["since"].startswith("2026-09-01")
    monitoring = changed["group"]["monitoring"]
    assert (monitoring["enabled"], monitoring["intervalMinutes"], monitoring["priority"]) == (True, 30, 8)
    assert monitoring["nextRunAt"] is not None  # switched on: due now

    # Omitted fields stay, null clears.
    cleared = (await api(update, {"id": group["id"], "input": {"maxPosts": None, "active": False}}))["updateGroup"]
    assert cleared["group"]["maxPosts"] is None
    assert cleared["group"]["since"].startswith("2026-09-01")
    assert cleared["group"]["active"] is False

    for bad, field in (
        ({"monitoring": {"intervalMinutes": 0}}, "monitoring.intervalMinutes"),
        ({"monitoring": {"intervalMinutes": 1441}}, "monitoring.intervalMinutes"),
        ({"monitoring": {"priority": 11}}, "monitoring.priority"),
        ({"maxPosts": 0}, "maxPosts"),
    ):
        result = (await api(update, {"id": group["id"], "input": bad}))["updateGroup"]
        assert result["group"] is None
        assert result["errors"] == [{"code": "BAD_USER_INPUT", "field": field}], bad


async def test_remove_and_refresh_group(api: Api) -> None:
    group = (await api(ADD, {"ref": "babushka_recipes"}))["addGroup"]["group"]
    refreshed = (await api(
        'mutation($id: ID!) { refreshGroup(id: $id) { group { name membersCount } errors { code } } }',
        {"id": group["id"]},
    ))["refreshGroup"]
    assert refreshed == {"group": {"name": "Рецепты бабушки Зины", "membersCount": 3877}, "errors": []}

    removed = (await api(
        'mutation($id: ID!) { removeGroup(id: $id) { removedGroupId errors { code } } }', {"id": group["id"]}
    ))["removeGroup"]
    assert removed == {"removedGroupId": group["id"], "errors": []}
    assert (await api("{ groups { totalCount } }", role="viewer"))["groups"]["totalCount"] == 0
