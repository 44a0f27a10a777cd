"""A real HTTP file server on 127.0.0.1 for download tests: Range requests, per-path faults, a request log.

    from http_server import Fault, FileServer

    with FileServer(root) as server:                    # serves the files under `root` on a free port
        server.faults["/a/b.zip"] = Fault(cut_after=1000)  # first request: full headers, 1000 bytes, hang up
        download_file(server.url("a/b.zip"), dest)
        assert [hit.status for hit in server.hits("/a/b.zip")] == [200, 206]
        assert server.hits("/a/b.zip")[1].headers["range"] == "bytes=1000-"

Paths (keys of `faults`, arguments of `hits` and `count`) are URL paths with a leading slash. The `file_server`
fixture yields a running server on `tmp_path / "www"`; to use it in a test module, import it from here.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

RANGE = re.compile(r"bytes=(\d*)-(\d*)")
BLOCK = 1 << 16


@dataclass(frozen=True)
class Fault:
    """How the server misbehaves for one path.

    `status` and `cut_after` affect the first `times` requests for the path, which then behaves normally:
    `status` answers that HTTP status with an empty body; `cut_after` sends the headers of the full response, then
    that many body bytes, then closes the connection. `ignore_range` affects every request: Range is ignored and
    the whole file sent with 200, as by servers that cannot resume.
    """

    status: int | None = None
    cut_after: int | None = None
    times: int = 1
    ignore_range: bool = False


@dataclass
class Hit:
    """One request as the server saw it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


class FileServer:
    """Serves `root` over HTTP from a background thread; a context manager, or call start() and stop()."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.faults: dict[str, Fault] = {}
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FileServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = self._thread = None

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, relpath: str) -> str:
        """URL of the file at `relpath` under root."""
        return f"{self.base_url}/{quote(relpath.lstrip('/'))}"

    def hits(self, path: str | None = None) -> list[Hit]:
        """Requests so far, in arrival order; only those for `path` if given."""
        with self._lock:
            return [hit for hit in self._hits if path is None or hit.path == path]

    def count(self, path: str) -> int:
        return len(self.hits(path))

    def _plan(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, Path | None, int, int, Fault, bool]:
        """(status, file, first byte, length, fault, cut this response?), logged as a Hit."""
        fault = self.faults.get(path, Fault())
        file = (self.root / path.lstrip("/")).resolve()
        with self._lock:
            active = sum(hit.path == path for hit in self._hits) < fault.times
            start, length = 0, 0
            if active and fault.status is not None:
                status, file = fault.status, None
            elif not file.is_file() or not file.is_relative_to(self.root):
                status, file = 404, None
            else:
                size = file.stat().st_size
                status, start, length = 200, 0, size
                match = RANGE.fullmatch(headers.get("range", "").strip())
                if match and not fault.ignore_range and any(match.groups()):
                    first, last = match.groups()
                    if not first:  # suffix range: the last N bytes
                        first, last = str(max(size - int(last), 0)), ""
                    if int(first) >= size:
                        status, start, file = 416, size, None
                    elif not last or int(last) >= int(first):
                        start = int(first)
                        end = min(int(last), size - 1) if last else size - 1
                        status, length = 206, end - start + 1
            self._hits.append(Hit(method, path, headers, status))
        return status, file, start, length, fault, active and fault.cut_after is not None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    def _serve(self, body: bool) -> None:
        owner: FileServer = self.server.owner
        path = unquote(urlsplit(self.path).path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, file, start, length, fault, cut = owner._plan(self.command, path, headers)
        self.send_response(status)
        if file is None:
            self.send_header("Content-Length", "0")
            if status == 416:  # `start` is the file size here
                self.send_header("Content-Range", f"bytes */{start}")
            self.end_headers()
            return
        size = file.stat().st_size
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "none" if fault.ignore_range else "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{start + length - 1}/{size}")
        self.end_headers()
        if not body:
            return
        remaining = min(length, fault.cut_after) if cut else length
        try:
            with open(file, "rb") as handle:
                handle.seek(start)
                while remaining > 0:
                    block = handle.read(min(BLOCK, remaining))
                    self.wfile.write(block)
                    remaining -= len(block)
            if cut:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):  # the client hung up first
            self.close_connection = True


@pytest.fixture
def file_server(tmp_path: Path):
    """A running FileServer serving `tmp_path / "www"`."""
    with FileServer(tmp_path / "www") as server:
        yield server
