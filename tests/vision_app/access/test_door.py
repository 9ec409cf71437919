"""Door actuators: the webhook posts JSON from its own thread and never blocks the caller."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vision_app.access.door import LogOnlyDoor, WebhookDoor, build_door
from vision_app.config import load_config
from vision_app.errors import ConfigError


class DoorServer:
    """A local door controller: records the POSTed bodies; can hold requests until released."""

    def __init__(self, status: int = 200):
        self.bodies: list[dict] = []
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append({"json": json.loads(body), "type": self.headers["Content-Type"]})
                outer.arrived.set()
                outer.release.wait(10)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/door"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = DoorServer()
    yield s
    s.stop()


def test_webhook_posts_json(server):
    door = WebhookDoor(server.url, timeout_s=5)
    door.open({"identity": "alice", "kiosk": "k1", "log_seq": 3})
    assert door.wait_idle(10)
    door.close()
    assert door.sent == 1 and door.failed == 0
    assert server.bodies == [{"json": {"event": "open", "identity": "alice", "kiosk": "k1", "log_seq": 3},
                              "type": "application/json"}]


def test_webhook_never_blocks_the_caller(server):
    server.release.clear()  # the door controller hangs
    door = WebhookDoor(server.url, timeout_s=5)
    door.open({"identity": "alice"})
    assert server.arrived.wait(10)
    door.open({"identity": "bob"})  # returns although the first request is still in flight
    assert door.sent == 0  # proves open() did not wait for the server
    server.release.set()
    assert door.wait_idle(10)
    assert door.sent == 2 and [b["json"]["identity"] for b in server.bodies] == ["alice", "bob"]
    door.close()


def test_webhook_failures_are_counted_not_raised():
    dead = WebhookDoor("http://127.0.0.1:9/door", timeout_s=0.5)  # discard port: nothing listens
    dead.open({"identity": "alice"})
    assert dead.wait_idle(10)
    assert dead.failed == 1 and dead.sent == 0 and "cannot reach" in dead.last_error
    dead.close()
    refusing = DoorServer(status=500)
    try:
        door = WebhookDoor(refusing.url, timeout_s=5)
        door.open({"identity": "alice"})
        assert door.wait_idle(10)
        assert door.failed == 1 and "HTTP 500" in door.last_error
        door.close()
    finally:
        refusing.stop()


def test_build_door_from_config():
    cfg = load_config()
    assert isinstance(build_door(cfg.access), LogOnlyDoor)  # log-only is the default
    cfg.access.door = "webhook"
    with pytest.raises(ConfigError, match="access.door_url"):
        build_door(cfg.access)
    cfg.access.door_url = "http://127.0.0.1:9/x"
    door = build_door(cfg.access)
    assert isinstance(door, WebhookDoor)
    door.close()
