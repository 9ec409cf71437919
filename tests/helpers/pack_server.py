"""A real HTTP file server on 127.0.0.1 for model-pack downloads (stdlib http.server).

Serves the files of one folder with Content-Length and single-range ``Range: bytes=N-`` requests (206
with Content-Range, 416 past the end). `cut[path] = n` makes the next response for that path stop after
n bytes of its body and drop the connection (each cut is used once). Every request's path and Range
header are recorded in `requests`.
"""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class PackServer:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None, int]] = []  # (path, Range header, status)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rel = self.path.lstrip("/")
                f = server.root / rel
                rng = self.headers.get("Range")
                if ".." in rel or not f.is_file():
                    server._log(rel, rng, 404)
                    self.send_error(404)
                    return
                data = f.read_bytes()
                start = 0
                if rng:
                    m = re.fullmatch(r"bytes=(\d+)-", rng)
                    if not m or int(m.group(1)) >= len(data):
                        server._log(rel, rng, 416)
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    start = int(m.group(1))
                body = data[start:]
                status = 206 if rng else 200
                server._log(rel, rng, status)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                with server._lock:
                    cut = server.cut.pop(rel, None)
                if cut is not None:  # send part of the body, then drop the connection
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def _log(self, path: str, rng: str | None, status: int) -> None:
        with self._lock:
            self.requests.append((path, rng, status))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def __enter__(self) -> "PackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
