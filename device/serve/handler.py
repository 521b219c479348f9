"""The HTTP side of ``serve``: fixed routes on the standard library's ``ThreadingHTTPServer``.

Routes are a table; nothing in a request names a file, and the page is read once from the package. With a
token, every route but ``/healthz`` (which says only whether the model is ready) needs it: as
``Authorization: Bearer TOKEN``, ``?token=TOKEN`` (the page then sets an HttpOnly cookie so that its stream
and polling carry it), compared in constant time. Bodies are bounded before they are read, connections are
counted, and a full ``/infer`` queue is answered 503 with ``Retry-After`` at once.
"""

from __future__ import annotations

import hmac
import json
import socket
import time
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..contract.errors import DataError, EdgeError
from .limits import TooLarge, Unsupported
from .stream import BOUNDARY

COOKIE = "keras_edge_token"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",          # the page's URL may carry ?token=
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'unsafe-inline'; "
                               "script-src 'unsafe-inline'; frame-ancestors 'none'",
}


def _page() -> bytes:
    return resources.files(__package__).joinpath("page.html").read_bytes()


class ServeHTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` at once; one more is answered 503 and closed."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128     # socketserver's 5 overflows when many clients connect at once: resets

    def __init__(self, address: tuple[str, int], handler: type, service: Any):
        import threading

        self.service = service
        self._connections = threading.BoundedSemaphore(service.config.limits.max_connections)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._connections.acquire(blocking=False):
            self.service.stats.reject("connections")
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        """A lingering close: stop sending, then read what the client still sends (for 2 s at most) before closing.

        Closing a socket with unread bytes (a refused body) makes the kernel send a reset, which can reach the
        client before it has read our 413/503 answer; it would see "connection reset" instead.
        """
        try:
            request.shutdown(socket.SHUT_WR)
            end = time.monotonic() + 2.0
            while (left := end - time.monotonic()) > 0:
                request.settimeout(left)
                if not request.recv(65536):
                    break
        except OSError:     # a timeout included: the client did not stop sending in time
            pass
        self.close_request(request)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()


class Handler(BaseHTTPRequestHandler):
    server: ServeHTTPServer
    server_version = "keras-edge"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30                 # a client that stops sending (or reading) is dropped after this
    page = b""

    def log_message(self, format: str, *args: Any) -> None:   # noqa: A002 - the base class's name
        pass                     # no line per request: a board's journal is small

    # ---- responses
    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in {**SECURITY_HEADERS, "Content-Type": ctype, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, default=str).encode(), "application/json", headers)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None, reason: str | None = None) -> None:
        if reason:
            self.server.service.stats.reject(reason)
        self._json(status, {"error": message, "status": status}, headers)

    # ---- who may call
    def _token_given(self, query: dict[str, list[str]]) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        if "token" in query:
            return query["token"][0]
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
        except CookieError:
            morsel = None
        return morsel.value if morsel is not None else None

    def _authorized(self, query: dict[str, list[str]]) -> bool:
        token = self.server.service.config.token
        if token is None:
            return True
        given = self._token_given(query)
        return given is not None and hmac.compare_digest(given.encode(), token.encode())

    # ---- routing
    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        route = GET_ROUTES.get(url.path)
        if route is None:
            return self._error(404, f"no such page: {url.path[:80]}; see / for the page and /infer, /stats.json, "
                                    "/metrics, /healthz")
        if route is not Handler._healthz and not self._authorized(query):
            return self._error(401, "a token is needed: send Authorization: Bearer TOKEN or open /?token=TOKEN",
                               {"WWW-Authenticate": "Bearer"}, "unauthorized")
        route(self, query)

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path != "/infer":
            self.close_connection = True     # its body is not read
            return self._error(404, f"nothing to POST to at {url.path[:80]}; send inputs to /infer")
        if not self._authorized(query):
            self.close_connection = True
            return self._error(401, "a token is needed: send Authorization: Bearer TOKEN",
                               {"WWW-Authenticate": "Bearer"}, "unauthorized")
        self._infer(query)

    # ---- pages
    def _index(self, query: dict[str, list[str]]) -> None:
        headers = {}
        if "token" in query:   # the page's own requests (stream, polling) then carry it as a cookie
            headers["Set-Cookie"] = f"{COOKIE}={query['token'][0]}; Path=/; HttpOnly; SameSite=Strict"
        self._send(200, self.page, "text/html; charset=utf-8", headers)

    def _stats(self, query: dict[str, list[str]]) -> None:
        self._json(200, self.server.service.stats.snapshot())

    def _metrics(self, query: dict[str, list[str]]) -> None:
        self._send(200, self.server.service.stats.prometheus().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _healthz(self, query: dict[str, list[str]]) -> None:
        st = self.server.service.stats
        self._json(200 if st.ready else 503, {"ready": st.ready, "state": st.state})

    def _frame(self, query: dict[str, list[str]]) -> None:
        b = self.server.service.broadcaster
        if b is None:
            return self._error(404, "no live source: start serve with --camera N or --source VIDEO|FOLDER")
        with b.watching():
            _, jpeg = b.next(-1, timeout=10)
        if jpeg is None:
            return self._error(503, "no frame yet", {"Retry-After": "1"})
        self._send(200, jpeg, "image/jpeg")

    def _stream(self, query: dict[str, list[str]]) -> None:
        service = self.server.service
        b = service.broadcaster
        if b is None:
            return self._error(404, "no live source: start serve with --camera N or --source VIDEO|FOLDER")
        self.close_connection = True
        self.send_response(200)
        for k, v in {**SECURITY_HEADERS, "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                     "Connection": "close", "Pragma": "no-cache"}.items():
            self.send_header(k, v)
        self.end_headers()
        seq = -1
        with b.watching():
            service.stats.viewers = b.viewers
            try:
                while not service.stopping.is_set():
                    seq, jpeg = b.next(seq, timeout=1.0)
                    if jpeg is None:
                        continue
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                     .encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            except (OSError, ValueError):    # the viewer left (or stalled past the timeout)
                pass
        service.stats.viewers = b.viewers

    def _discard(self, length: int) -> None:
        buf = bytearray(65536)
        view = memoryview(buf)
        while length > 0:
            n = self.rfile.readinto(view[:min(length, len(buf))])
            if not n:
                self.close_connection = True
                return
            length -= n

    # ---- POST /infer
    def _infer(self, query: dict[str, list[str]]) -> None:
        service = self.server.service
        limits = service.config.limits
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or self.headers.get("Content-Length") is None:
            self.close_connection = True
            return self._error(411, "send the input with a Content-Length (the file's bytes as the body)",
                               reason="no_length")
        try:
            length = int(self.headers["Content-Length"])
        except ValueError:
            length = -1
        if length <= 0:
            self.close_connection = True
            return self._error(400, "the body is empty: send an image, .npy or .npz file's bytes", reason="bad_input")
        if length > limits.max_body_bytes:
            self.close_connection = True     # the body is never read
            return self._error(413, f"the body is {length} bytes, above this server's limit of "
                                    f"{limits.max_body_bytes} bytes", reason="too_large")
        if not service.stats.ready:
            self.close_connection = True
            return self._error(503, "the model is still loading", {"Retry-After": "1"}, "loading")
        with service.slot() as ok:
            if not ok:   # the body is read and dropped, so that the connection stays usable for the retry
                self._discard(length)
                return self._error(503, f"busy: {limits.queue} requests are already waiting; retry shortly",
                                   {"Retry-After": "1"}, "busy")
            data = self.rfile.read(length)
            if len(data) != length:
                self.close_connection = True
                return self._error(400, "the body ended early", reason="bad_input")
            name = "".join(c for c in (query.get("name") or ["request"])[0] if c.isprintable())[:100] or "request"
            try:
                results = service.infer(data, name)
            except TooLarge as e:
                return self._error(413, str(e), reason="too_large")
            except Unsupported as e:
                return self._error(415, str(e), reason="unsupported")
            except DataError as e:
                return self._error(400, str(e), reason="bad_input")
            except EdgeError as e:
                return self._error(422, str(e), reason="bad_input")
        self._json(200, results[0] if len(results) == 1 else results)


GET_ROUTES = {"/": Handler._index, "/stats.json": Handler._stats, "/metrics": Handler._metrics,
              "/healthz": Handler._healthz, "/frame.jpg": Handler._frame, "/stream.mjpg": Handler._stream}


def make_server(service: Any) -> ServeHTTPServer:
    """Bind ``service.config``'s address (an OSError here says the port is taken or the address is not ours)."""
    from ..contract.errors import ConfigError

    cfg = service.config
    handler = type("BoundHandler", (Handler,), {"page": _page()})
    try:
        return ServeHTTPServer((cfg.host, cfg.port), handler, service)
    except OSError as e:
        raise ConfigError("port", f"{cfg.port} on {cfg.host} cannot be used ({e.strerror or e})",
                          "choose another port, or an address of this machine") from None
