"""Serve a world's images over HTTP on 127.0.0.1, failing the way real web links fail.

The world's URLs name a host under the reserved `.test` domain, so nothing on the internet answers them.
This server runs as an HTTP proxy on an ephemeral port; img2dataset reaches it through `http_proxy`, so the
URLs stay exactly as the metadata has them. Each URL is answered as the world's truth table says: the image,
a 404, a stall past the client's timeout, a truncated body, or an HTML page served as if it were an image.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq

from recap.world.generate import SPLITS, URL_HOST, load_manifest

_CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
_NOT_AN_IMAGE = b"<!DOCTYPE html><html><head><title>Page not found</title></head><body>Sorry!</body></html>"


class WorldServer:
    """A threaded HTTP proxy that answers the world's URLs. Use as a context manager; `proxy_url` points at it."""

    def __init__(self, world: str | Path, *, stall_seconds: float = 30.0) -> None:
        load_manifest(world)
        self.world = Path(world)
        self.stall_seconds = stall_seconds
        self.requests = 0
        self._serve: dict[tuple[str, str], tuple[str, str]] = {}
        for split in SPLITS:
            truth = pq.read_table(self.world / split / "truth.parquet", columns=["uid", "serve", "image_format"])
            for uid, serve, image_format in zip(*(truth[c].to_pylist() for c in truth.column_names), strict=True):
                self._serve[(split, uid)] = (serve, image_format)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def proxy_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("WorldServer is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests += 1
        url = urlsplit(handler.path)
        parts = url.path.strip("/").split("/")
        if url.hostname not in (URL_HOST, None) or len(parts) != 2 or "." not in parts[1]:
            handler.send_error(404 if url.hostname in (URL_HOST, None) else 502)
            return
        split, filename = parts
        uid, _, extension = filename.partition(".")
        serve, image_format = self._serve.get((split, uid), ("http_404", extension))
        if serve == "http_404" or extension != image_format:
            handler.send_error(404)
            return
        if serve == "timeout":
            self._stop.wait(self.stall_seconds)  # the client gives up first; shutdown wakes us
            return
        if serve == "not_an_image":
            body, content_type = _NOT_AN_IMAGE, "text/html"
        else:
            body = (self.world / split / "images" / filename).read_bytes()
            content_type = _CONTENT_TYPES[image_format]
            if serve == "truncated":
                body = body[: len(body) // 2]
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> WorldServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                try:
                    server._respond(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # img2dataset opens many connections at once; a short backlog stalls them

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="world-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = None


@contextlib.contextmanager
def http_proxy(proxy_url: str) -> Iterator[None]:
    """Route plain-HTTP requests of this process and its children through `proxy_url`, then restore."""
    names = ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["http_proxy"] = os.environ["HTTP_PROXY"] = proxy_url
    os.environ.pop("no_proxy", None)
    os.environ.pop("NO_PROXY", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
