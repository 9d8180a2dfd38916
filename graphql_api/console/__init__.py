"""The operator console and GraphiQL, served from the package's own built assets.

The sources live in ``web/`` (TypeScript, built with Vite); ``npm run build`` there writes
``dist/`` here, and ``dist/`` is committed, so ``pip install`` + ``vkcp serve`` needs no Node.js.
``tests/unit/test_console_build.py`` fails when ``dist/`` is stale against ``web/``.

Every page is same-origin only: the Content-Security-Policy below makes the browser refuse
anything from another host, so a page that would need the internet fails loudly in tests
instead of rendering blank on an offline machine.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

DIST = Path(__file__).resolve().parent / "dist"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; font-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",  # the page names hashed assets: always ask for the current one
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _page(path: Path) -> Response:
    if not path.is_file():
        return PlainTextResponse(
            "The console is not built: run `npm ci && npm run build` in web/", status_code=503
        )
    return HTMLResponse(path.read_text(encoding="utf-8"), headers=_PAGE_HEADERS)


def graphiql_page() -> Response:
    """GraphiQL, bundled locally (Strawberry's own page loads React and GraphiQL from unpkg)."""
    return _page(DIST / "graphiql" / "index.html")


async def _console(request: Request) -> Response:
    return _page(DIST / "index.html")


class _Assets(StaticFiles):
    """Built files; their names carry a content hash, so they never change under a URL."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200 and "/assets/" in f"/{path}":
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def console_routes() -> list[BaseRoute]:
    """``GET /`` (the console) and ``/console/...`` (its assets and GraphiQL's)."""
    return [
        Route("/", _console, methods=["GET"]),
        Mount("/console", _Assets(directory=DIST, check_dir=False), name="console"),
    ]
