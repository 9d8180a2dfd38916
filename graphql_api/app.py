"""The Starlette application: GraphQL over HTTP and WebSocket, health and readiness."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import structlog
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from graphql_api.auth import header_of, resolve_role, warn_if_auth_disabled
from graphql_api.context import Context, get_context
from graphql_api.schema import build_schema, schema

log = structlog.get_logger(__name__)

_HTTP_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def _error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"errors": [{"message": message, "extensions": {"code": _HTTP_CODES.get(status, "BAD_REQUEST")}}]}
    return JSONResponse(body, status_code=status, headers=headers)


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with our context, auth and HTTP error shapes."""

    def __init__(self, container: Any, **kwargs: Any) -> None:
        settings = container.settings
        super().__init__(
            build_schema(introspection=False) if not settings.introspection else schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            allowed_origins=settings.cors_origins,
            **kwargs,
        )
        self.container = container

    def encode_json(self, data: object) -> str:
        # Readable Cyrillic on the wire; a str (not bytes) keeps WebSocket frames textual.
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as e:
            headers = {"WWW-Authenticate": "Bearer"} if e.status_code == 401 else None
            response = _error_response(e.status_code, e.reason, headers)
        await response(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        context = await get_context(self.container, request, response)
        if context.role is None and isinstance(request, Request) and not self._is_ide_page(request):
            reason = "Missing API token" if "authorization" not in request.headers else "Invalid API token"
            raise HTTPException(401, f"{reason}: send `Authorization: Bearer <token>`")
        return context

    def _is_ide_page(self, request: Request) -> bool:
        # The GraphiQL page itself is public; every query it sends carries the user's token.
        return self.graphql_ide is not None and self.should_render_graphql_ide(self.request_adapter_class(request))

    async def on_ws_connect(self, context: Context) -> Any:
        if context.role is not None:  # auth is off
            return None
        found = await resolve_role(self.container.adapters, header_of(context.connection_params, "Authorization"))
        if found is None:
            raise ConnectionRejectionError()
        context.role, context.token = found
        return None

    def create_response(self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        if _is_request_error(response_data):
            response.status_code = 400  # the document could not be run at all (syntax, validation)
        return response


def _is_request_error(data: Any) -> bool:
    if not isinstance(data, dict) or data.get("data") is not None:
        return False
    errors = data.get("errors") or []
    return bool(errors) and all("path" not in e for e in errors)


def create_app(container: Any, *, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The API for a built container; the app closes the container when it shuts down.

    ``routes`` adds endpoints owned elsewhere (metrics, export downloads).
    """
    settings = container.settings
    view = GraphQLView(container)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = await container.readiness()
        # Only what the API cannot serve without; VK trouble shows in the checks but does not
        # take the API out of rotation (stored comments stay readable).
        ready = checks.get("database") == "ok" and checks.get("redis", "not configured") in ("ok", "not configured")
        return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warn_if_auth_disabled(settings.auth)
        try:
            yield
        finally:
            await container.aclose()

    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            )
        )
    return Starlette(
        routes=[
            Route("/graphql", view, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", view),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *routes,
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
