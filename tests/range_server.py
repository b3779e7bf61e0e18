"""A local HTTP file server with range requests that can drop a connection at a chosen byte."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeServer(ThreadingHTTPServer):
    """Serves ``folder``; ``drop_at[name] = offset`` closes the next response covering that byte
    after sending the bytes before it (once); ``requests`` logs ``(method, name, range start)``."""

    daemon_threads = True

    def __init__(self, folder: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.folder = Path(folder)
        self.drop_at: dict[str, int] = {}
        self.requests: list[tuple[str, str, int | None]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def range_starts(self, name: str) -> list[int]:
        return [
            start for method, n, start in self.requests if method == "GET" and n == name and start
        ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _target(self):
        name = self.path.lstrip("/").split("?", 1)[0]
        path = self.server.folder / name
        return name, (path if path.is_file() else None)

    def do_HEAD(self) -> None:
        name, path = self._target()
        self.server.requests.append(("HEAD", name, None))
        if path is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self) -> None:
        name, path = self._target()
        size = path.stat().st_size if path is not None else 0
        match = RANGE.match(self.headers.get("Range", ""))
        start = int(match.group(1)) if match else 0
        end = int(match.group(2)) + 1 if match and match.group(2) else size
        end = min(end, size)
        self.server.requests.append(("GET", name, start if match else None))
        if path is None:
            self.send_error(404)
            return
        if match and start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with self.server.lock:
            drop = self.server.drop_at.get(name)
            if drop is not None and start <= drop < end:
                del self.server.drop_at[name]
            else:
                drop = None
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read((drop if drop is not None else end) - start)
        self.wfile.write(data)
        if drop is not None:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)


@contextmanager
def serve(folder: Path):
    """Run a ``RangeServer`` on 127.0.0.1 in a thread for the ``with`` block."""
    server = RangeServer(folder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
