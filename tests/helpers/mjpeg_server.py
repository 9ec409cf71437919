"""A real HTTP MJPEG stream on 127.0.0.1 (stdlib http.server) that tests can stop and restart."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MjpegServer:
    """Serves /stream.mjpg as multipart/x-mixed-replace JPEG frames of size (w, h) at fps, numbering
    frames in the image. stop() closes the socket and every open connection (the stream dies)."""

    def __init__(self, port: int, size: tuple[int, int] = (320, 240), fps: float = 25.0) -> None:
        self.port, self.size, self.fps = port, size, fps
        self.sent = 0
        self._alive = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/stream.mjpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                w, h = server.size
                try:
                    while server._alive.is_set():
                        img = np.full((h, w, 3), (server.sent * 7) % 255, np.uint8)
                        cv2.putText(img, str(server.sent), (10, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1,
                                    (255, 255, 255), 2)
                        ok, jpg = cv2.imencode(".jpg", img)
                        data = jpg.tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                        server.sent += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> "MjpegServer":
        self._alive.set()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._alive.clear()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(2)
