"""The benchmark's HTTP floor: what answering the same requests costs without any GraphQL.

Run by ``bench/api.py``: ``python bench/http_floor.py <postgresql dsn> <port>``. A Starlette
app served by uvicorn exactly as ``vkcp serve`` serves the API (``entrypoints.cli``'s
``server_config`` and event loop), one asyncpg pool; each request is one hand-written SQL
statement whose rows are serialized with orjson:

- ``POST /page {"first": n, "after": [published_at, id] | null}``: the comments page with
  group, post, author and matches (json_agg), keyset by (published_at, id) descending;
- ``POST /stats {"since": day, "until": day, "top": n}``: the statistics from their aggregate
  tables, in one statement;
- ``POST /count {"groups": [id...], "since": time, "until": time, "viewed": bool}``: how many
  comments pass that filter (whole days from ``stats_days``, the cut days counted);
- ``POST /keyword {"keyword": id}``: the first 100 comments matched by a keyword (with their
  matches) and how many there are, one statement each;
- ``POST /search {"word": text}``: the first 100 comments whose folded text contains the word
  (``infrastructure.db.filters``'s expression, which the trigram index serves);
- ``POST /shape/<name> {"args": [...]}``: the response of a real client's document (``SHAPES``:
  the console's review page, the Relay operations of ``tests/e2e/test_relay_compiler.py``),
  written whole by PostgreSQL in one statement.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import asyncpg
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from entrypoints.cli import run_served, server_config
from infrastructure.settings import Settings

PAGE = """
SELECT c.id, c.vk_id, c.text, c.published_at, c.likes, c.deleted, c.viewed, c.archived,
       g.id AS group_id, g.name AS group_name, g.screen_name AS group_screen_name,
       p.id AS post_id, p.vk_id AS post_vk_id, p.text AS post_text, p.published_at AS post_published_at,
       a.vk_id AS author_vk_id, a.name AS author_name, a.screen_name AS author_screen_name,
       COALESCE((
         SELECT json_agg(json_build_object('keywordId', k.id, 'word', k.word, 'matchedText', m.matched_text,
                                           'start', m.start_pos, 'end', m.end_pos, 'snippet', m.snippet)
                         ORDER BY m.start_pos)
         FROM matches m JOIN keywords k ON k.id = m.keyword_id WHERE m.comment_id = c.id
       ), '[]') AS matches
FROM comments c
JOIN groups g ON g.id = c.group_id
JOIN posts p ON p.id = c.post_id
LEFT JOIN authors a ON a.vk_id = c.from_id
WHERE $2::timestamptz IS NULL OR (c.published_at <= $2 AND (c.published_at < $2 OR c.id < $3))
ORDER BY c.published_at DESC, c.id DESC
LIMIT $1
"""

STATS = """
SELECT json_build_object(
  'totals', (SELECT json_build_object(
      'groups', (SELECT count(*) FROM groups), 'posts', coalesce(sum(posts), 0),
      'comments', coalesce(sum(comments), 0), 'replies', coalesce(sum(replies), 0),
      'matchedComments', coalesce(sum(matched_comments), 0), 'matches', coalesce(sum(matches), 0),
      'authors', (SELECT coalesce(sum(authors), 0) FROM stats_totals), 'keywords', (SELECT count(*) FROM keywords))
    FROM stats_groups),
  'groups', (SELECT json_agg(json_build_object('groupId', g.id, 'name', g.name, 'comments', coalesce(s.comments, 0),
                                               'matchedComments', coalesce(s.matched_comments, 0),
                                               'lastCollectedAt', g.last_success_at) ORDER BY g.id)
             FROM groups g LEFT JOIN stats_groups s ON s.group_id = g.id),
  'topKeywords', (SELECT json_agg(t) FROM (
      SELECT k.id AS "keywordId", k.word, s.matches, s.comments
      FROM stats_keywords s JOIN keywords k ON k.id = s.keyword_id
      WHERE s.matches > 0 ORDER BY s.matches DESC, k.id LIMIT $3) t),
  'topAuthors', (SELECT json_agg(t) FROM (
      SELECT s.from_id AS "vkId", a.name, s.comments
      FROM (SELECT from_id, comments FROM stats_authors ORDER BY comments DESC, from_id LIMIT $3) s
      LEFT JOIN authors a ON a.vk_id = s.from_id ORDER BY s.comments DESC, s.from_id) t),
  'days', (SELECT json_agg(t ORDER BY t.day) FROM (
      SELECT day, sum(comments) AS comments, sum(matched_comments) AS "matchedComments", sum(matches) AS matches
      FROM stats_days WHERE day BETWEEN $1 AND $2 GROUP BY day) t)
)::text
"""

FILTERED_COLUMNS = """
SELECT c.id, c.vk_id, c.text, c.published_at, c.likes, c.viewed, c.archived,
       COALESCE((SELECT json_agg(json_build_object('keywordId', k.id, 'word', k.word, 'matchedText', m.matched_text)
                                 ORDER BY m.start_pos)
                 FROM matches m JOIN keywords k ON k.id = m.keyword_id WHERE m.comment_id = c.id), '[]') AS matches
FROM comments c
"""
# Whole UTC days from the per-day aggregates, the two cut days from the comments (as vkcp does),
# each its own range so a generic plan of the prepared statement still reads two short ones.
COUNT = """
WITH r AS (SELECT $1::bigint[] AS groups, $2::timestamptz AS since, $3::timestamptz AS until, $4::boolean AS viewed,
                  (timezone('UTC', $2::timestamptz))::date AS first_day,
                  (timezone('UTC', $3::timestamptz))::date AS last_day)
SELECT ((SELECT coalesce(sum(CASE WHEN r.viewed THEN s.viewed ELSE s.comments - s.viewed END), 0)
         FROM stats_days s WHERE s.group_id = ANY(r.groups) AND s.day > r.first_day AND s.day < r.last_day)
      + (SELECT count(*) FROM comments c
         WHERE c.group_id = ANY(r.groups) AND c.published_at >= r.since AND c.viewed = r.viewed
           AND c.published_at < timezone('UTC', (r.first_day + 1)::timestamp))
      + (SELECT count(*) FROM comments c
         WHERE c.group_id = ANY(r.groups) AND c.published_at <= r.until AND c.viewed = r.viewed
           AND c.published_at >= timezone('UTC', r.last_day::timestamp)))::bigint
FROM r
"""
# The keyword's newest comments off the matches' index (migration 0008), then those comments.
KEYWORD_PAGE = FILTERED_COLUMNS + """
JOIN (SELECT DISTINCT published_at, comment_id FROM matches WHERE keyword_id = $1
      ORDER BY published_at DESC, comment_id DESC LIMIT 100) k ON k.comment_id = c.id
ORDER BY k.published_at DESC, k.comment_id DESC
"""
KEYWORD_COUNT = "SELECT count(DISTINCT comment_id) FROM matches WHERE keyword_id = $1"
SEARCH = FILTERED_COLUMNS + """
WHERE replace(lower(c.text COLLATE "und-x-icu"), 'ё', 'е') LIKE '%' || $1 || '%'
ORDER BY c.published_at DESC, c.id DESC LIMIT 100
"""


# The same shapes as real clients' documents, each one statement writing the whole response.
_AUTHOR_URL = """CASE WHEN coalesce(a.screen_name, '') <> '' THEN 'https://vk.com/' || a.screen_name
  WHEN a.vk_id > 0 THEN 'https://vk.com/id' || a.vk_id ELSE 'https://vk.com/club' || -a.vk_id END"""
_KEYWORDS_OF = """coalesce((SELECT json_agg(json_build_object({fields}) ORDER BY m.start_pos, m.end_pos, m.keyword_id)
  FROM matches m JOIN keywords k ON k.id = m.keyword_id WHERE m.comment_id = c.id), '[]')"""
_NEWEST = "(SELECT * FROM comments c {where} ORDER BY c.published_at DESC, c.id DESC LIMIT $1 + 1)"
SHAPES = {
    # web/src/ops.ts COMMENTS: the console's review page (first $1, newest first, no filter).
    "review": f"""
WITH page AS {_NEWEST.format(where="")}
SELECT json_build_object('data', json_build_object('comments', json_build_object(
  'totalCount', (SELECT coalesce(sum(comments), 0) FROM stats_groups),
  'pageInfo', json_build_object('hasNextPage', (SELECT count(*) FROM page) > $1,
                                'endCursor', (SELECT max(id) FROM (SELECT id FROM page LIMIT $1) e)),
  'edges', (SELECT json_agg(json_build_object('node', json_build_object(
    'id', c.id, 'vkId', c.vk_id, 'ownerId', c.owner_id, 'text', c.text, 'publishedAt', c.published_at,
    'likes', c.likes, 'deleted', c.deleted, 'deletedAt', c.deleted_at, 'editedAt', c.edited_at,
    'viewed', c.viewed, 'archived', c.archived, 'matchesCount', c.matches_count,
    'url', 'https://vk.com/wall' || c.owner_id || '_' || c.post_vk_id || '?reply=' || c.vk_id,
    'author', (SELECT json_build_object('vkId', a.vk_id, 'name', a.name, 'url', {_AUTHOR_URL})
               FROM authors a WHERE a.vk_id = c.from_id),
    'group', (SELECT json_build_object('id', g.id, 'name', g.name) FROM groups g WHERE g.id = c.group_id),
    'post', (SELECT json_build_object('vkId', p.vk_id) FROM posts p WHERE p.id = c.post_id),
    'parent', (SELECT json_build_object('id', r.id, 'text', r.text, 'author',
                 (SELECT json_build_object('name', a.name) FROM authors a WHERE a.vk_id = r.from_id))
               FROM comments r WHERE r.owner_id = c.owner_id AND r.vk_id = c.parent_vk_id),
    'matches', {_KEYWORDS_OF.format(fields="'start', m.start_pos, 'end', m.end_pos, 'matchedText', m.matched_text, "
                                    "'keyword', json_build_object('id', k.id, 'word', k.word)")}
  )) ORDER BY c.published_at DESC, c.id DESC) FROM (SELECT * FROM page LIMIT $1) c)
)))::text""",
    # Relay's CommentsListPaginationQuery: matched comments, first $1, with CommentRow_comment.
    "relay comments": f"""
WITH page AS {_NEWEST.format(where="WHERE c.matches_count > 0")}
SELECT json_build_object('data', json_build_object('comments', json_build_object(
  'totalCount', (SELECT coalesce(sum(matched_comments), 0) FROM stats_groups),
  'edges', (SELECT json_agg(json_build_object('node', json_build_object(
    'id', c.id, 'text', c.text, 'viewed', c.viewed, 'archived', c.archived,
    'group', (SELECT json_build_object('id', g.id, 'name', g.name) FROM groups g WHERE g.id = c.group_id),
    'post', (SELECT json_build_object('id', p.id) FROM posts p WHERE p.id = c.post_id),
    'matches', {_KEYWORDS_OF.format(fields="'keyword', json_build_object('id', k.id, 'word', k.word)")},
    '__typename', 'Comment'), 'cursor', c.id) ORDER BY c.published_at DESC, c.id DESC)
    FROM (SELECT * FROM page LIMIT $1) c),
  'pageInfo', json_build_object('endCursor', (SELECT min(id) FROM page),
                                'hasNextPage', (SELECT count(*) FROM page) > $1)
)))::text""",
    # Relay's CommentRowRefetchQuery: node(id: $1) as a Comment.
    "relay comment refetch": f"""
SELECT json_build_object('data', json_build_object('node', (SELECT json_build_object(
  '__typename', 'Comment', 'id', c.id, 'text', c.text, 'viewed', c.viewed, 'archived', c.archived,
  'group', (SELECT json_build_object('id', g.id, 'name', g.name) FROM groups g WHERE g.id = c.group_id),
  'post', (SELECT json_build_object('id', p.id) FROM posts p WHERE p.id = c.post_id),
  'matches', {_KEYWORDS_OF.format(fields="'keyword', json_build_object('id', k.id, 'word', k.word)")})
  FROM comments c WHERE c.id = $1)))::text""",
    # Relay's GroupsListPaginationQuery: the last $1 communities.
    "relay groups": """
WITH page AS (SELECT * FROM groups ORDER BY id DESC LIMIT $1 + 1)
SELECT json_build_object('data', json_build_object('groups', json_build_object(
  'edges', (SELECT json_agg(json_build_object('node', json_build_object('id', g.id, 'name', g.name,
      'screenName', g.screen_name, 'active', g.active, '__typename', 'Group'), 'cursor', g.id) ORDER BY g.id)
    FROM (SELECT * FROM page LIMIT $1) g),
  'pageInfo', json_build_object('hasPreviousPage', (SELECT count(*) FROM page) > $1, 'startCursor',
                                (SELECT min(id) FROM (SELECT id FROM page LIMIT $1) s))
)))::text""",
    # Relay's GroupCardRefetchQuery: node(id: $1) as a Group.
    "relay group refetch": """
SELECT json_build_object('data', json_build_object('node', (SELECT json_build_object(
  '__typename', 'Group', 'id', g.id, 'name', g.name, 'screenName', g.screen_name, 'active', g.active)
  FROM groups g WHERE g.id = $1)))::text""",
}


def build_app(dsn: str) -> Starlette:
    pool: Any = None  # asyncpg's Pool (untyped), made by lifespan before any request

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        try:
            yield
        finally:
            await pool.close()

    async def page(request: Request) -> Response:
        body = orjson.loads(await request.body())
        after = body.get("after")
        key, row_id = (datetime.fromisoformat(after[0]), after[1]) if after else (None, None)
        rows = await pool.fetch(PAGE, body["first"], key, row_id)
        data = [{**dict(r), "matches": orjson.loads(r["matches"])} for r in rows]
        return Response(orjson.dumps({"data": data}), media_type="application/json")

    async def stats(request: Request) -> Response:
        body = orjson.loads(await request.body())
        since, until = date.fromisoformat(body["since"]), date.fromisoformat(body["until"])
        found = await pool.fetchval(STATS, since, until, body["top"])
        return Response(b'{"data":' + found.encode() + b"}", media_type="application/json")

    def rows_json(rows: list) -> list[dict]:
        return [{**dict(r), "matches": orjson.loads(r["matches"])} for r in rows]

    async def count(request: Request) -> Response:
        body = orjson.loads(await request.body())
        found = await pool.fetchval(COUNT, body["groups"], datetime.fromisoformat(body["since"]),
                                    datetime.fromisoformat(body["until"]), body["viewed"])
        return Response(orjson.dumps({"data": {"totalCount": found}}), media_type="application/json")

    async def keyword(request: Request) -> Response:
        keyword_id = orjson.loads(await request.body())["keyword"]
        rows = await pool.fetch(KEYWORD_PAGE, keyword_id)
        total = await pool.fetchval(KEYWORD_COUNT, keyword_id)
        return Response(orjson.dumps({"data": {"totalCount": total, "edges": rows_json(rows)}}),
                        media_type="application/json")

    async def search(request: Request) -> Response:
        word = orjson.loads(await request.body())["word"]
        rows = await pool.fetch(SEARCH, word)
        return Response(orjson.dumps({"data": {"edges": rows_json(rows)}}), media_type="application/json")

    async def shape(request: Request) -> Response:
        found = await pool.fetchval(SHAPES[request.path_params["name"]], *orjson.loads(await request.body())["args"])
        return Response(found.encode(), media_type="application/json")

    routes = [("/page", page), ("/stats", stats), ("/count", count), ("/keyword", keyword), ("/search", search),
              ("/shape/{name}", shape)]
    return Starlette(routes=[Route(path, endpoint, methods=["POST"]) for path, endpoint in routes], lifespan=lifespan)


async def serve(dsn: str, port: int) -> None:
    settings = Settings(_env_file=None)
    config = server_config(build_app(dsn), settings, host="127.0.0.1", port=port, log_config=None,
                           access_log=False, lifespan="on")
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    run_served(serve(sys.argv[1], int(sys.argv[2])))
