"""Relay clients can use the API (issue #13): ``relay-compiler`` accepts ``@connection`` on our
connections (forward and backward) and ``@refetchable`` on our objects against schema.graphql,
and the operations it generates run against the service.

``relay-compiler`` is a devDependency of web/ (CI runs ``npm ci`` there before the suite), so
with CI set a missing compiler fails; locally, without ``web/node_modules``, this skips.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.graphql_support import Api, api, client, container, tokens  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schema.graphql"
RELAY_COMPILER = ROOT / "web" / "node_modules" / ".bin" / "relay-compiler"

DOCUMENTS = {
    "Comments.ts": """
import { graphql } from "react-relay";

export const list = graphql`
  fragment CommentsList_query on Query
  @refetchable(queryName: "CommentsListPaginationQuery")
  @argumentDefinitions(count: { type: "Int", defaultValue: 10 }, cursor: { type: "String" }) {
    comments(first: $count, after: $cursor, filter: { matched: true }) @connection(key: "CommentsList_comments") {
      totalCount
      edges { node { id ...CommentRow_comment } }
    }
  }
`;

export const row = graphql`
  fragment CommentRow_comment on Comment @refetchable(queryName: "CommentRowRefetchQuery") {
    id text viewed archived group { id name } post { id } matches { keyword { id word } }
  }
`;
""",
    "Groups.ts": """
import { graphql } from "react-relay";

export const groups = graphql`
  fragment GroupsList_query on Query
  @refetchable(queryName: "GroupsListPaginationQuery")
  @argumentDefinitions(count: { type: "Int", defaultValue: 10 }, cursor: { type: "String" }) {
    groups(last: $count, before: $cursor) @connection(key: "GroupsList_groups") {
      edges { node { ...GroupCard_group } }
    }
  }
`;

export const card = graphql`
  fragment GroupCard_group on Group @refetchable(queryName: "GroupCardRefetchQuery") {
    id name screenName active
  }
`;

export const page = graphql`
  query GroupsPageQuery($ids: [ID!]!) {
    ...GroupsList_query
    nodes(ids: $ids) { id ... on Keyword { word } ... on Task { state } }
  }
`;
""",
}


@pytest.fixture
def relay_compiler() -> Path:
    if not RELAY_COMPILER.exists():
        message = "web/node_modules/.bin/relay-compiler is missing: run `npm ci` in web/"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return RELAY_COMPILER


def compile_relay(compiler: Path, workdir: Path, documents: dict[str, str], schema: Path = SCHEMA,
                  *extra: str) -> subprocess.CompletedProcess[str]:
    src, artifacts = workdir / "src", workdir / "src" / "__generated__"
    artifacts.mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        (src / name).write_text(text, encoding="utf-8")
    config = workdir / "relay.config.json"
    config.write_text(json.dumps({
        "src": "./src", "schema": str(schema), "language": "typescript", "artifactDirectory": "./src/__generated__",
    }))
    return subprocess.run(
        [str(compiler), "--noWatchman", *extra, str(config)],
        cwd=workdir, capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"},
    )


def operation_text(workdir: Path, name: str) -> str:
    """The document Relay sends for the operation ``name``, from its generated artifact."""
    artifact = (workdir / "src" / "__generated__" / f"{name}.graphql.ts").read_text(encoding="utf-8")
    found = re.search(r'^\s*"text": (".*"),?$', artifact, re.MULTILINE)
    assert found, artifact
    return json.loads(found.group(1))


def test_relay_compiler_accepts_connections_and_refetchable_fragments(relay_compiler: Path, tmp_path: Path) -> None:
    compiled = compile_relay(relay_compiler, tmp_path, DOCUMENTS)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    made = {p.name for p in (tmp_path / "src" / "__generated__").iterdir()}
    for operation in ("CommentsListPaginationQuery", "CommentRowRefetchQuery", "GroupsListPaginationQuery",
                      "GroupCardRefetchQuery", "GroupsPageQuery"):
        assert f"{operation}.graphql.ts" in made
    # --validate: the artifacts on disk are what the schema and documents make.
    validated = compile_relay(relay_compiler, tmp_path, DOCUMENTS, SCHEMA, "--validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_relay_compiler_rejects_what_relay_cannot_use(relay_compiler: Path, tmp_path: Path) -> None:
    """The check is real: the compiler refuses a fragment on a type without an id, and the
    schema as it was before (no ``hasPreviousPage``)."""
    not_refetchable = {"Author.ts": DOCUMENTS["Groups.ts"] + """
export const author = graphql`
  fragment AuthorCard_author on Author @refetchable(queryName: "AuthorCardRefetchQuery") { name }
`;
"""}
    refused = compile_relay(relay_compiler, tmp_path / "author", not_refetchable)
    assert refused.returncode != 0
    assert "AuthorCard_author" in refused.stdout + refused.stderr

    old_schema = tmp_path / "old.graphql"
    old_schema.write_text(re.sub(r"\n  \"\"\"[^\"]*\"\"\"\n  hasPreviousPage: Boolean!\n", "\n",
                                 SCHEMA.read_text(encoding="utf-8")))
    assert "hasPreviousPage" not in old_schema.read_text()
    refused = compile_relay(relay_compiler, tmp_path / "old", DOCUMENTS, old_schema)
    assert refused.returncode != 0
    assert "hasPreviousPage" in refused.stdout + refused.stderr


async def test_operations_relay_generates_run_against_the_service(
    relay_compiler: Path, tmp_path: Path, api: Api
) -> None:
    compiled = compile_relay(relay_compiler, tmp_path, DOCUMENTS)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    added = await api('mutation { addGroups(refs: ["koshki_spb", "zarechye_news", "velo_spb"]) { groups { id name } } }')
    groups = added["addGroups"]["groups"]

    # Backward pagination, as usePaginationFragment's loadPrevious does it.
    paginate = operation_text(tmp_path, "GroupsListPaginationQuery")
    last = (await api(paginate, {"count": 2}, role="viewer"))["groups"]
    assert [e["node"]["id"] for e in last["edges"]] == [g["id"] for g in groups[1:]]
    assert last["pageInfo"]["hasPreviousPage"] is True  # (backwards, Relay asks only for this side)
    earlier = (await api(paginate, {"count": 2, "cursor": last["pageInfo"]["startCursor"]}, role="viewer"))["groups"]
    assert [e["node"]["id"] for e in earlier["edges"]] == [groups[0]["id"]]
    assert earlier["pageInfo"]["hasPreviousPage"] is False

    # Refetching one object through node(id:), as useRefetchableFragment does.
    refetch = operation_text(tmp_path, "GroupCardRefetchQuery")
    node = (await api(refetch, {"id": groups[1]["id"]}, role="viewer"))["node"]
    assert node["__typename"] == "Group" and node["id"] == groups[1]["id"] and node["name"] == groups[1]["name"]

    comments = (await api(operation_text(tmp_path, "CommentsListPaginationQuery"), {"count": 5}, role="viewer"))
    assert comments["comments"]["edges"] == [] and comments["comments"]["pageInfo"]["hasNextPage"] is False
