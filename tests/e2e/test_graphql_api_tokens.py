"""API-token management over GraphQL: admins list, create (the secret once) and revoke tokens;
nobody else may, and a revoked token is refused at once."""

from __future__ import annotations

import httpx

from tests.e2e.graphql_support import client, container, tokens  # noqa: F401 - fixtures

CREATE = """mutation($name: String!, $role: ApiRole!) {
  createApiToken(name: $name, role: $role) { secret apiToken { id name role revokedAt } errors { code field message } }
}"""
REVOKE = "mutation($id: ID!) { revokeApiToken(id: $id) { apiToken { id revokedAt } errors { code field } } }"
LIST = "{ apiTokens { id name role createdAt lastUsedAt revokedAt } }"


async def _post(client: httpx.AsyncClient, token: str, query: str, **variables: object) -> httpx.Response:
    return await client.post("/graphql", json={"query": query, "variables": variables},
                             headers={"Authorization": f"Bearer {token}"})


async def test_an_admin_creates_lists_and_revokes_tokens(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    made = (await _post(client, tokens["admin"], CREATE, name="news desk", role="OPERATOR")).json()["data"]["createApiToken"]
    assert made["errors"] == [] and made["secret"].startswith("vkcp_")
    assert made["apiToken"]["name"] == "news desk" and made["apiToken"]["role"] == "OPERATOR"

    listed = (await _post(client, tokens["admin"], LIST)).json()["data"]["apiTokens"]
    assert [t["name"] for t in listed] == ["viewer token", "operator token", "admin token", "news desk"]
    assert made["secret"] not in str(listed)

    # the new secret works, with its role
    works = await _post(client, made["secret"], "mutation { addGroup(ref: \"koshki_spb\") { errors { code } } }")
    assert works.status_code == 200 and works.json()["data"]["addGroup"]["errors"] == []

    revoked = (await _post(client, tokens["admin"], REVOKE, id=made["apiToken"]["id"])).json()["data"]["revokeApiToken"]
    assert revoked["errors"] == [] and revoked["apiToken"]["revokedAt"] is not None
    refused = await _post(client, made["secret"], "{ groups { totalCount } }")
    assert refused.status_code == 401 and refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    again = (await _post(client, tokens["admin"], REVOKE, id=made["apiToken"]["id"])).json()["data"]["revokeApiToken"]
    assert again["errors"] == [{"code": "NOT_FOUND", "field": "id"}]
    unknown = (await _post(client, tokens["admin"], REVOKE, id="nope")).json()["data"]["revokeApiToken"]
    assert unknown["errors"] == [{"code": "NOT_FOUND", "field": "id"}]


async def test_a_token_needs_a_name(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    made = (await _post(client, tokens["admin"], CREATE, name="  ", role="VIEWER")).json()["data"]["createApiToken"]
    assert made["secret"] is None and made["errors"][0]["code"] == "BAD_USER_INPUT" and made["errors"][0]["field"] == "name"


async def test_only_admins_manage_tokens(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    for role in ("viewer", "operator"):
        for query, variables in ((LIST, {}), (CREATE, {"name": "x", "role": "ADMIN"}), (REVOKE, {"id": "1"})):
            body = (await _post(client, tokens[role], query, **variables)).json()
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", (role, query)
            assert body["data"] is None
    listed = (await _post(client, tokens["admin"], LIST)).json()["data"]["apiTokens"]
    assert all(t["revokedAt"] is None for t in listed) and len(listed) == 3
