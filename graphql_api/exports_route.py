"""``GET /exports/<file>``: download a finished export, and the signed links that allow it.

Two ways in: the same Bearer token as /graphql (any role: a viewer may read every comment
anyway), or a link from ``Task.export.url``, which needs no header, so a plain ``<a href>``
downloads. Such a link carries its expiry and an HMAC of the file name and that expiry under the
server's secret key; the API makes one each time the task is read, so the key never leaves the
API and a link is as fresh as the read. A changed link is ``LINK_INVALID``, an old one
``LINK_EXPIRED`` (both 403). The name must look exactly like one the export job makes (no paths,
no dots beyond the extension), and an expired or unknown file is a plain 404.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import structlog
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from graphql_api.auth import resolve_role
from graphql_api.codes import ErrorCode
from graphql_api.context import new_request_id

log = structlog.get_logger(__name__)

# What the key signs here: a signature made for anything else never opens a download.
_PURPOSE = b"vkcp:export-download:v1"


def _error(status: int, code: ErrorCode, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code.value}}]}, status, headers=headers)


def _signature(key: bytes, name: str, expires: int) -> str:
    mac = hmac.new(key, b"\n".join((_PURPOSE, name.encode(), str(expires).encode())), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def export_link(container: Any, base_url: str, name: str) -> tuple[str, datetime, datetime] | None:
    """``(url, link expiry, file expiry)`` for the export file ``name``; None when the file is
    gone. A link never outlives its file."""
    store = container.adapters.exports
    file_expires_at = store.expires_at(name) if store is not None else None
    now = container.adapters.clock.now()
    if file_expires_at is None or file_expires_at <= now:
        return None
    lifetime = timedelta(minutes=container.settings.export_link_minutes)
    expires = min(math.ceil((now + lifetime).timestamp()), int(file_expires_at.timestamp()))
    query = urlencode({"expires": expires, "signature": _signature(container.secret_key, name, expires)})
    return f"{base_url}/exports/{name}?{query}", datetime.fromtimestamp(expires, UTC), file_expires_at


def _link_problem(container: Any, name: str, expires: str | None, signature: str | None) -> JSONResponse | None:
    """Why a signed link does not open ``name``; None when it does."""
    valid = (
        expires is not None and expires.isascii() and expires.isdigit() and len(expires) <= 12 and signature is not None
        and hmac.compare_digest(signature.encode(), _signature(container.secret_key, name, int(expires)).encode())
    )  # fmt: skip
    if not valid:
        return _error(
            403, ErrorCode.LINK_INVALID,
            "This download link is not valid: it was changed, or made by another installation. "
            "Read the export task again (`export { url }`) for a fresh link.",
        )  # fmt: skip
    assert expires is not None  # a valid link has one
    expired_at = datetime.fromtimestamp(int(expires), UTC)
    if expired_at < container.adapters.clock.now():
        return _error(
            403, ErrorCode.LINK_EXPIRED,
            f"This download link expired at {expired_at.isoformat()}. "
            "Read the export task again (`export { url }`) for a fresh link.",
        )  # fmt: skip
    return None


def exports_route(container: Any) -> Route:
    async def refused(request: Request, name: str) -> tuple[Response | None, str]:
        """``(None, how)`` when the request may download: by API token, or by signed link."""
        if not container.settings.auth:
            return None, "open"
        authorization = request.headers.get("authorization")
        if authorization is not None and await resolve_role(
            container.adapters, container.read_model, authorization
        ) is not None:
            return None, "token"
        query = request.query_params
        if "signature" in query or "expires" in query:
            return _link_problem(container, name, query.get("expires"), query.get("signature")), "link"
        reason = "Missing API token" if authorization is None else "Invalid API token"
        return _error(
            401, ErrorCode.UNAUTHENTICATED,
            f"{reason}: send `Authorization: Bearer <token>`, "
            "or use the signed link of the export task (`export { url }`)",
        ), "token"  # fmt: skip

    async def download(request: Request) -> Response:
        request_id = new_request_id(request.headers)
        name = request.path_params["name"]
        response, how = await refused(request, name)
        if response is None:
            store = container.adapters.exports
            found = store.download(name) if store is not None else None
            if found is None:
                response = _error(404, ErrorCode.NOT_FOUND, "No such export (exports expire; start a new one)")
            else:
                response = FileResponse(
                    found.path,
                    media_type=found.media_type,
                    filename=found.filename,
                    headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
                )
        response.headers["X-Request-ID"] = request_id
        log.info("export.download", request_id=request_id, file=name, via=how, status=response.status_code)
        return response

    return Route("/exports/{name}", download, methods=["GET"])
