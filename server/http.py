"""The HTTP side of the one listening socket: the page, finished outputs, and the websocket gate.

Plain GETs are answered during the websocket handshake (websockets'
`process_request`); a websocket upgrade passes here first for its path,
Origin, token and connection count.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import logging
import re
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .state import ServerState

log = logging.getLogger(__name__)

WEBSOCKET_PATH = "/ws"
LIVE_PATH = "/live"  # the live page (GET) and the live websocket (upgrade)
OUTPUT_PATH = re.compile(r"^/jobs/([A-Za-z0-9_-]{16,64})/output\.mp4$")


def bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer T` header or a `?token=T` query."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    values = parse_qs(urlsplit(request.path).query).get("token")
    return values[0] if values else None


def token_matches(given: str | None, expected: str | None) -> bool:
    return expected is None or (given is not None and hmac.compare_digest(given.encode(), expected.encode()))


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """No Origin (not a browser), the same host and port as the request, or a configured origin."""
    if origin is None:
        return True
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and host is not None and parts.netloc.lower() == host.lower()


class Gate:
    """`process_request` for websockets.serve, bound to one server's state."""

    def __init__(self, app: ServerState) -> None:
        self.app = app

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if getattr(request, "method", "GET") != "GET":
            return connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "Only GET is served here.\n")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return self._upgrade(connection, request, path)
        if path in ("/", "/index.html"):
            return self._page(request, self.app.page)
        if path == LIVE_PATH and self.app.live is not None:
            return self._page(request, self.app.live_page)
        match = OUTPUT_PATH.match(path)
        if match:
            return await self._output(connection, request, match.group(1))
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found. The page is at / and the websocket at /ws.\n")

    def _upgrade(self, connection: ServerConnection, request: Request, path: str) -> Response | None:
        config = self.app.config
        if path == LIVE_PATH and self.app.live is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "This server has no live face; start it with `lipstream live --face FILE`.\n")
        if path not in (WEBSOCKET_PATH, LIVE_PATH):
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"The websocket is at {WEBSOCKET_PATH}.\n")
        if not origin_allowed(request.headers.get("Origin"), request.headers.get("Host"), config.origins):
            log.info("refused a websocket from origin %s", request.headers.get("Origin"))
            return connection.respond(http.HTTPStatus.FORBIDDEN, "This origin may not connect; start the server with --origin to allow it.\n")
        token = bearer(request)
        if token is not None and not token_matches(token, config.token):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "Wrong token.\n")
        # Without a token here the first message must carry it (browsers cannot set headers).
        authenticated = config.token is None or token is not None
        admitted, waiting = self.app.counts()
        if authenticated and admitted >= config.max_connections:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections; try again later.\n")
        if not authenticated and waiting >= config.max_unauthenticated:
            # Tokenless connections have their own small cap, so they never take an authenticated client's slot.
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                "Too many connections without a token; send it with the handshake (Authorization: Bearer T or ?token=T).\n",
            )
        connection.lipstream_authenticated = authenticated  # type: ignore[attr-defined]
        return None

    def _page(self, request: Request, page: bytes) -> Response:
        host = request.headers.get("Host", "")
        policy = (
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            f"connect-src 'self' ws://{host} wss://{host}; media-src blob: 'self'; img-src data:; base-uri 'none'; form-action 'none'"
        )
        return _response(
            http.HTTPStatus.OK,
            page,
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Security-Policy", policy), ("Cache-Control", "no-store")],
        )

    async def _output(self, connection: ServerConnection, request: Request, job: str) -> Response:
        if not token_matches(bearer(request), self.app.config.token):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "This server needs ?token=T or an Authorization header.\n")
        path = self.app.store.get(job)
        if path is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "No such output (it may have expired).\n")
        size = path.stat().st_size
        if size > self.app.config.max_http_download:
            return connection.respond(http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "This output is large; fetch it over the websocket ({\"type\": \"fetch\"}).\n")
        body = await asyncio.to_thread(path.read_bytes)  # bounded by max_http_download
        return _response(
            http.HTTPStatus.OK,
            body,
            [("Content-Type", "video/mp4"), ("Content-Disposition", f'attachment; filename="lipstream-{job[:8]}.mp4"'), ("Cache-Control", "no-store")],
        )


def _response(status: http.HTTPStatus, body: bytes, headers: list[tuple[str, str]]) -> Response:
    return Response(
        status.value,
        status.phrase,
        Headers([*headers, ("Content-Length", str(len(body))), ("Connection", "close"), ("X-Content-Type-Options", "nosniff")]),
        body,
    )
