"""A real Mosquitto broker on 127.0.0.1 for tests (Debian's `mosquitto`; .ci/run installs it), and a
subscriber that collects what arrives.

The broker gets a generated config in a temporary folder (loopback only, persistence so a stopped and
restarted broker keeps the subscriber's session, optionally a password file and a TLS listener). It is
started as a child that the kernel stops when the test process dies (PR_SET_PDEATHSIG), and stop()
terminates it with a bounded wait.
"""
from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.mjpeg_server import free_port


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if path is None:
        pytest.fail("the mosquitto broker is not installed; apt-get install mosquitto (.ci/run installs it)")
    return path


def wait_port(port: int, up: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} still {'closed' if up else 'open'} after {timeout} s")


class Mosquitto:
    def __init__(self, folder: Path, users: dict[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        """users: name → password (anonymous clients are then refused); tls: (cert, key) files for an
        extra TLS listener on `tls_port`."""
        self.folder = folder
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [f"user {pwd.getpwuid(os.getuid()).pw_name}", "persistence true",
                 f"persistence_location {folder}/", f"log_dest file {folder}/mosquitto.log", "log_type all",
                 "per_listener_settings false", f"listener {self.port} 127.0.0.1"]
        if users:
            pw = folder / "passwords"
            pw.touch(mode=0o600)
            for name, secret in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), name, secret], check=True, timeout=30,
                               capture_output=True)
            lines += [f"password_file {pw}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        try:
            wait_port(self.port, up=True)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log()[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
        wait_port(self.port, up=False)

    def log(self) -> str:
        p = self.folder / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def url(self, user: str = "", password: str = "") -> str:
        cred = f"{user}:{password}@" if user else ""
        return f"mqtt://{cred}127.0.0.1:{self.port}"


class Subscriber:
    """A paho client with a persistent session (clean_session=False), subscribed at QoS 1 to `topic`,
    so the broker keeps messages for it while it reconnects. Collects (topic, payload bytes, retain)."""

    def __init__(self, port: int, topic: str, client_id: str = "test-subscriber") -> None:
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.topic = topic
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  protocol=paho.MQTTv311)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("the test subscriber could not connect")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe(self.topic, qos=1)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.on(topic)]

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; got topics "
                             f"{sorted({t for t, _, _ in self.messages})}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
