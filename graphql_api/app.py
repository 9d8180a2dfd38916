"""The Starlette application: GraphQL over HTTP and WebSocket, health, readiness and metrics.

GraphQL over HTTP follows the GraphQL-over-HTTP spec: the response media type is negotiated
from ``Accept`` (``application/graphql-response+json`` or ``application/json``). A document
that cannot run at all (syntax, validation, variables) is a 400 without ``data`` under the new
media type, and a 200 under ``application/json`` (the spec's rules for legacy clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from datetime import UTC
from typing import Any, cast

import orjson
import structlog
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types.graphql import OperationType

from domain.auth import Role
from domain.errors import Unavailable
from graphql_api.auth import header_of, resolve_role, warn_if_auth_disabled
from graphql_api.codes import ErrorCode, http_code
from graphql_api.console import console_routes, graphiql_page
from graphql_api.context import Context, get_context
from graphql_api.errors import INTERNAL_MESSAGE
from graphql_api.exports_route import exports_route
from graphql_api.limits import MAX_SUBSCRIPTIONS_PER_CONNECTION
from graphql_api.multiplex import MultiplexingHandler
from graphql_api.observability import ApiMetrics, RequestRecord, current_request
from graphql_api.planned_http import Declined, PlannedRequests
from graphql_api.schema import build_schema, schema
from graphql_api.strawberry_compat import drop_strawberrys_origin_advice

log = structlog.get_logger(__name__)
access_log = structlog.get_logger("vkcp.api")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"

RETRY_AFTER_SECONDS = 5  # what a 503 tells clients: dependencies come back within seconds
INTERRUPTED_MESSAGE = "A read was interrupted; try again"


def negotiate(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header; None when we offer nothing it accepts.

    No header means a legacy client: ``application/json``. Wildcards choose ``application/json``
    too; at equal quality an explicit ``application/graphql-response+json`` wins.
    """
    if accept is None or not accept.strip():
        return JSON
    best: tuple[float, int, str] | None = None
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media == GRAPHQL_RESPONSE_JSON:
            candidate = (quality, 2, GRAPHQL_RESPONSE_JSON)
        elif media == JSON:
            candidate = (quality, 1, JSON)
        elif media in ("*/*", "application/*"):
            candidate = (quality, 0, JSON)
        else:
            continue
        if quality > 0 and (best is None or candidate[:2] > best[:2]):
            best = candidate
    return best[2] if best else None


class RequestRefused(HTTPException):
    """An HTTP error whose code is not the one its status implies (``codes.HTTP_STATUS_CODES``)."""

    def __init__(self, status_code: int, reason: str, code: ErrorCode) -> None:
        super().__init__(status_code, reason)
        self.code = code


def _error_body(status: int, message: str, code: ErrorCode | None = None) -> bytes:
    body = {"errors": [{"message": message, "extensions": {"code": (code or http_code(status)).value}}]}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _error_response(
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    media_type: str = JSON,
    code: ErrorCode | None = None,
) -> Response:
    return Response(_error_body(status, message, code), status_code=status, headers=headers, media_type=media_type)


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` counting the body as it streams in: past ``limit`` bytes it stops with 413, so
    a chunked body (no Content-Length to refuse up front) is never read, let alone kept, whole."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, _too_large(limit))
        return message

    return limited


def _too_large(limit: int) -> str:
    return f"The request body is larger than {limit} bytes"


def _is_request_error(data: Any) -> bool:
    """The document could not be run at all (syntax, validation, variables): errors without a
    path and no data. Field errors always carry a path."""
    if not isinstance(data, dict) or data.get("data") is not None:
        return False
    errors = data.get("errors") or []
    return bool(errors) and all("path" not in e for e in errors)


def _is_unavailable(data: Any) -> bool:
    """Nothing could be served because a dependency is away: every error says
    SERVICE_UNAVAILABLE and no top-level field has data. (A partial answer stays a 200.)"""
    if not isinstance(data, dict) or not data.get("errors"):
        return False
    if any(v is not None for v in (data.get("data") or {}).values()):
        return False
    return all((e.get("extensions") or {}).get("code") == ErrorCode.SERVICE_UNAVAILABLE.value for e in data["errors"])


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with our context, auth, media types, limits and request log."""

    graphql_transport_ws_handler_class = cast("type[BaseGraphQLTransportWSHandler[Context, None]]", MultiplexingHandler)

    def __init__(
        self, container: Any, *, metrics: ApiMetrics | None = None, read_plan: bool | None = None, **kwargs: Any
    ) -> None:
        settings = container.settings
        super().__init__(
            build_schema(introspection=False) if not settings.introspection else schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            # graphql-transport-ws only: the legacy `graphql-ws` protocol stays off.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
            allowed_origins=settings.cors_origins,
            **kwargs,
        )
        self.container = container
        self.metrics = metrics
        self.timeout = settings.request_timeout
        self.max_body_bytes = settings.max_body_bytes
        self.read_plan = read_plan  # None: as the settings say (VKCP_READ_PLAN)
        # Queries answered on the plan before, answered straight from HTTP (off with the plan).
        plan_on = settings.read_plan if read_plan is None else read_plan
        self.planned_requests = PlannedRequests() if plan_on else None

    def decode_json(self, data: str | bytes) -> object:
        # orjson is strict where the stdlib is lenient or fragile: invalid UTF-8, a lone
        # surrogate ("\ud800": no database stores it, no response can echo it) and nesting past
        # 1024 levels (the stdlib's RecursionError was a 500) are JSON errors, so a 400 here
        # and a 4400 close on a WebSocket (Strawberry catches json.JSONDecodeError, orjson's base).
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except orjson.JSONDecodeError as e:
            raise HTTPException(400, f"The request is not valid JSON: {e}") from e

    async def parse_http_body(self, request: Any) -> Any:
        # Strawberry reads a JSON body's `query` and `variables` with .get(): a body of null, a
        # string or a number failed with AttributeError, a 500. (An array is a batch, which
        # Strawberry refuses itself.) The first byte tells an object or array from the rest.
        if request.method == "POST" and "application/json" in (request.content_type or ""):
            body = await request.get_body()  # Starlette keeps it: Strawberry reads it again
            if body.lstrip(b" \t\r\n")[:1] not in (b"{", b"["):
                raise HTTPException(400, 'The request body must be a JSON object: {"query": "...", "variables": {...}}')
        return await super().parse_http_body(request)

    def encode_json(self, data: object) -> str:
        # Readable Cyrillic on the wire; a str (not bytes) keeps WebSocket frames textual.
        # orjson: a subscription event is encoded once per subscriber, and the stdlib encoder
        # was a third of sending it. The stdlib stays as the fallback for what orjson refuses.
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        request = Request(scope=scope, receive=_limited(receive, self.max_body_bytes))
        accept = request.headers.get("accept")
        media_type = negotiate(accept)
        record = RequestRecord(media_type=media_type or JSON)
        reset = current_request.set(record)
        started = time.perf_counter()
        outcome = "ok"
        try:
            if media_type is None and not (request.method == "GET" and "text/html" in (accept or "")):
                outcome = "rejected"
                response = _error_response(
                    406, f"Acceptable media types: {GRAPHQL_RESPONSE_JSON}, {JSON}", media_type=JSON
                )
            elif (_content_length(request) or 0) > self.max_body_bytes:
                outcome = "rejected"  # refused before a byte of it is read
                response = _error_response(413, _too_large(self.max_body_bytes), media_type=record.media_type)
            else:
                response = await self._respond(request, record)
                outcome = record.outcome()
        except HTTPException as e:
            outcome = {401: "unauthenticated", 504: "timeout"}.get(e.status_code, "rejected")
            headers = {"WWW-Authenticate": "Bearer"} if e.status_code == 401 else {}
            if e.status_code == 405:
                headers["Allow"] = "POST"
            code = e.code if isinstance(e, RequestRefused) else None
            response = _error_response(e.status_code, e.reason, headers, media_type=record.media_type, code=code)
        except Unavailable as e:  # the database (auth, say) is away: retryable, not a bug
            outcome = "unavailable"
            response = _error_response(
                503, e.message, {"Retry-After": str(RETRY_AFTER_SECONDS)}, media_type=record.media_type
            )
        except ClientDisconnect:  # the client left while sending its body: nobody to answer
            log.info("http.client_gone", request_id=record.request_id)
            return
        except asyncio.CancelledError:
            # Not the request timeout (execute_operation answers that 504): a read awaited
            # something another task cancelled (a shared future), or the server is stopping the
            # request. Trying again works: a coded, retryable 503, never uvicorn's bare 500.
            outcome = "unavailable"
            log.warning("http.read_interrupted", request_id=record.request_id)
            response = _error_response(
                503, INTERRUPTED_MESSAGE, {"Retry-After": str(RETRY_AFTER_SECONDS)}, media_type=record.media_type
            )
        except Exception:  # a bug outside execution (execution errors are masked by the schema)
            outcome = "internal"
            log.exception("http.unexpected_error", request_id=record.request_id)
            message = f"{INTERNAL_MESSAGE} (request id {record.request_id})" if record.request_id else INTERNAL_MESSAGE
            response = _error_response(500, message, media_type=record.media_type)
        finally:
            current_request.reset(reset)
        if record.request_id:
            response.headers["X-Request-ID"] = record.request_id
        response.headers.setdefault("Vary", "Accept")
        await response(scope, receive, send)
        if response.media_type != "text/html":
            self._observe(request, record, outcome, response.status_code, time.perf_counter() - started)

    def _observe(self, request: Request, record: RequestRecord, outcome: str, status: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe(record, outcome, seconds)
        first = record.operations[0] if record.operations else None
        access_log.info(
            "graphql.request",
            request_id=record.request_id,
            method=request.method,
            operation=first.name if first else None,
            operation_type=first.type if first else None,
            outcome=outcome,
            status=status,
            duration_ms=round(seconds * 1000, 2),
        )

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        return await self._within_deadline(super().execute_operation(*args, **kwargs))

    async def _within_deadline(self, running: Awaitable[Any]) -> Any:
        """``running``'s result, or a 504 once the request has taken ``VKCP_REQUEST_TIMEOUT``."""
        timeout = asyncio.timeout(self.timeout)
        try:
            async with timeout:
                return await running
        except BaseException:
            # Past the deadline, whatever the stopped read left behind is the timeout:
            # asyncio.timeout's TimeoutError, a driver's error about the statement it was
            # cancelled in, or the CancelledError itself when something under it had marked the
            # task as being cancelled already (asyncio.timeout then does not convert it).
            if not timeout.expired():
                raise
            raise HTTPException(504, f"The request took longer than {self.timeout:g} s and was stopped") from None

    async def _respond(self, request: Request, record: RequestRecord) -> Response:
        """A kept query's response straight from its plan (``planned_http``), else Strawberry's."""
        if self.planned_requests is None:
            return await self.run(request)
        sub_response = await self.get_sub_response(request)
        answered = await self.planned_requests.answer(
            request,
            record,
            get_context=lambda: self.get_context(request, sub_response),
            within_deadline=self._within_deadline,
            create_response=lambda data: self.create_response(data, sub_response),
        )
        if not isinstance(answered, Declined):
            return answered
        if answered.context is None:
            return await self.run(request)
        answered.context.read_plan = False  # the plan declined it: not asked again
        return await self.run(request, context=answered.context)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        context = await get_context(self.container, request, response)
        if self.read_plan is not None:
            context.read_plan = self.read_plan
        context.metrics = self.metrics
        record = current_request.get()
        if record is not None and isinstance(request, Request):
            record.request_id = context.request_id
        if context.role is None and isinstance(request, Request) and not self._is_ide_page(request):
            reason = "Missing API token" if "authorization" not in request.headers else "Invalid API token"
            log.warning("auth.failed", request_id=context.request_id, transport="http", reason=reason)
            raise HTTPException(401, f"{reason}: send `Authorization: Bearer <token>`")
        return context

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql_page()

    def _is_ide_page(self, request: Request) -> bool:
        # The GraphiQL page itself is public; every query it sends carries the user's token.
        return self.graphql_ide is not None and self.should_render_graphql_ide(self.request_adapter_class(request))

    async def on_ws_connect(self, context: Context) -> Any:
        if context.role is None:  # None: auth is on
            authorization = header_of(context.connection_params, "Authorization")
            found = await resolve_role(self.container.adapters, self.container.read_model, authorization)
            if found is None:
                reason = "Missing API token" if authorization is None else "Invalid API token"
                log.warning("auth.failed", request_id=context.request_id, transport="websocket", reason=reason)
                raise ConnectionRejectionError()
            context.role, context.token = found
        log.info("websocket.connected", request_id=context.request_id, role=str(context.role))
        return None

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        if super().is_websocket_origin_allowed(request, origin):
            return True
        # Said in the setting operators know; Strawberry's own line (about `allowed_origins`)
        # is dropped (strawberry_compat.drop_strawberrys_origin_advice).
        log.warning("websocket.origin_rejected", origin=origin,
                    detail="to let pages on this origin connect, add it to VKCP_CORS_ORIGINS")
        return False

    async def execute_single(
        self, request: Request, request_adapter: Any, sub_response: Response, context: Context, root_value: Any,
        request_data: GraphQLRequestData,
    ) -> Any:
        # Plain HTTP runs queries (GET and POST) and mutations (POST); subscriptions are
        # served over WebSocket only.
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        if request_data.operation_name is not None and not isinstance(request_data.operation_name, str):
            raise HTTPException(400, "`operationName` must be a string")  # a malformed request, not a name
        try:
            result = await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as e:
            raise RequestRefused(400, e.as_http_error_reason(), ErrorCode.OPERATION_RESOLUTION_FAILURE) from e
        except InvalidOperationTypeError as e:
            if e.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(400, "subscriptions run over WebSocket (graphql-transport-ws) only") from e
            # A mutation sent with GET: the spec's answer is 405 with `Allow: POST`.
            status = 405 if request_adapter.method == "GET" else 400
            raise HTTPException(status, e.as_http_error_reason(request_adapter.method)) from e
        except MissingQueryError as e:
            if isinstance(request_data.extensions, dict) and "persistedQuery" in request_data.extensions:
                # Apollo Client's persisted-query link hears this, stops sending hashes and sends
                # the query: without the code it would fail every request instead.
                raise RequestRefused(
                    400, "Persisted queries are not supported: send the query", ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED
                ) from e
            raise HTTPException(400, "No GraphQL query found in the request") from e
        planned, context.planned = context.planned, None
        record = current_request.get()
        if (
            planned is not None and self.planned_requests is not None and record is not None
            and request_adapter.method == "POST" and request_data.extensions is None
            and isinstance(request_data.query, str)
        ):
            self.planned_requests.keep(request_data.query, request_data.operation_name, planned, record)
        return result

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        record = current_request.get() or RequestRecord()
        status = sub_response.status_code or 200
        headers: dict[str, str] = {}
        if _is_request_error(response_data):
            assert isinstance(response_data, dict)  # _is_request_error holds for an object only
            record.request_error = True
            response_data = cast("GraphQLHTTPResponse", {k: v for k, v in response_data.items() if k != "data"})
            if record.media_type == GRAPHQL_RESPONSE_JSON:
                status = 400
        elif _is_unavailable(response_data):
            status, headers["Retry-After"] = 503, str(RETRY_AFTER_SECONDS)
        response = Response(
            self.encode_json(response_data), status_code=status, headers=headers, media_type=record.media_type
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        return response


async def _waiting_for_vk(container: Any) -> str | None:
    """"2 tasks waiting for VK until 2026-12-08 00:00 UTC" while every token rests; else None.
    Said, not judged: waiting is how the service rides out VK's quotas, so readiness stays."""
    try:
        count, until = await container.read_model.tasks_waiting()
    except Unavailable:
        return None
    if not count:
        return None
    return f"{count} task{'s' if count != 1 else ''} waiting for VK until {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


async def _is_admin(container: Any, request: Request) -> bool:
    if not container.settings.auth:
        return True
    return await _is_admin_token(container, request)


async def _is_admin_token(container: Any, request: Request) -> bool:
    """The request's bearer token is an admin's (checked even when auth is off)."""
    try:
        found = await resolve_role(container.adapters, container.read_model, request.headers.get("authorization"))
    except Unavailable:  # the database is away: readiness says so, without details
        return False
    return found is not None and found[0].allows(Role.ADMIN)


def create_app(container: Any, *, routes: Sequence[BaseRoute] = (), read_plan: bool | None = None) -> Starlette:
    """The API for a built container; the app closes the container when it shuts down.

    ``routes`` adds endpoints owned elsewhere; ``read_plan`` overrides ``VKCP_READ_PLAN``.
    """
    settings = container.settings
    # Installed by the app, not on import (a logger holds one copy of a filter).
    drop_strawberrys_origin_advice()
    metrics = ApiMetrics(container)
    view = GraphQLView(container, metrics=metrics, read_plan=read_plan)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = await container.readiness()
        # Only what the API cannot serve without; VK trouble shows in the checks but does not
        # take the API out of rotation (stored comments stay readable).
        ready = checks.get("database") == "ok" and checks.get("redis", "not configured") in ("ok", "not configured")
        body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": checks}
        if checks.get("database") == "ok":
            waiting = await _waiting_for_vk(container)
            if waiting:
                body["tasksWaiting"] = waiting
        vk = container.adapters.vk
        # The pool's fingerprints and states are what the admin-only `vkTokens` shows: only an
        # admin's request gets them here; probes and everyone else see the statuses alone.
        if not settings.vk_sandbox and await _is_admin(container, request):
            states = await vk.token_states()
            body["vkTokens"] = [
                {
                    "fingerprint": s.fingerprint,
                    "state": s.status.value,
                    "parkedUntil": s.until.isoformat() if s.until else None,
                }
                for s in states
            ]
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(request: Request) -> Response:
        # Per-token VK series only for a scrape that sends an admin token, whatever VKCP_AUTH says:
        # /metrics is open, and which token is in trouble is for admins.
        admin = "authorization" in request.headers and await _is_admin_token(container, request)
        body, content_type = await metrics.render(per_token=admin)
        return Response(body, media_type=content_type)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warn_if_auth_disabled(settings.auth)
        watching = asyncio.create_task(metrics.watch_tasks())
        try:
            yield
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
            await container.aclose()

    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID", *settings.cors_headers],
                # Content-Disposition: a script that fetches an export learns the file's name.
                expose_headers=["X-Request-ID", "Content-Disposition"],
                max_age=600,
            )
        )
    app = Starlette(
        routes=[
            Route("/graphql", view, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", view),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            exports_route(container),
            *console_routes(),
            *routes,
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    return app
