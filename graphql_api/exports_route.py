"""``GET /exports/<file>``: download a finished export, with the same Bearer token as /graphql.

Any role may download (a viewer may read every comment anyway). The name must look exactly
like one the export job makes (no paths, no dots beyond the extension), and an expired or
unknown file is a plain 404.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from graphql_api.auth import resolve_role
from infrastructure.exports import download_name, media_type


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status, headers=headers)


def exports_route(container: Any) -> Route:
    async def download(request: Request) -> Response:
        if container.settings.auth:
            authorization = request.headers.get("authorization")
            if await resolve_role(container.adapters, authorization) is None:
                reason = "Missing API token" if authorization is None else "Invalid API token"
                return _error(401, "UNAUTHENTICATED", f"{reason}: send `Authorization: Bearer <token>`")
        name = request.path_params["name"]
        store = container.adapters.exports
        path = store.path_of(name) if store is not None else None
        if path is None:
            return _error(404, "NOT_FOUND", "No such export (exports expire; start a new one)")
        return FileResponse(
            path,
            media_type=media_type(name),
            filename=download_name(name),
            headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
        )

    return Route("/exports/{name}", download, methods=["GET"])
