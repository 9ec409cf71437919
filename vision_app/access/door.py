"""Door actuators: what the access controller does with a grant.

`open(event)` must never block the decision loop: the log-only default just logs, and the HTTP webhook
hands the event to its own worker thread, which POSTs it as JSON with a timeout (urllib, no extra
dependency). A slow or dead door controller therefore delays nothing but its own requests, and its
failures are logged and counted.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Mapping, Protocol

from vision_app.errors import ConfigError

log = logging.getLogger(__name__)


class DoorActuator(Protocol):
    name: str

    def open(self, event: Mapping[str, Any]) -> None:
        """Open the door for this grant (identity, kiosk, time, ...). Returns at once."""

    def close(self) -> None: ...


class LogOnlyDoor:
    """No hardware: the grant is written to the application log (and the access log by the controller)."""

    name = "log"

    def __init__(self) -> None:
        self.opened = 0

    def open(self, event: Mapping[str, Any]) -> None:
        self.opened += 1
        log.info("door (log only, no actuator configured): open for %s at kiosk %s",
                 event.get("identity"), event.get("kiosk"))

    def close(self) -> None:
        pass


_STOP = object()


class WebhookDoor:
    """POSTs each grant as JSON to `url` from a worker thread.

    timeout_s: per request. queue_size: grants waiting while a request is in flight; beyond that new
    grants are dropped with an error in the log (a door that is not answering is not helped by a queue).
    headers: extra HTTP headers (e.g. an Authorization token). sent / failed count the outcomes;
    last_error holds the latest failure's message.
    """

    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 3.0, *, headers: Mapping[str, str] | None = None,
                 queue_size: int = 8) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"door webhook URL must start with http:// or https://, got {url!r}; set "
                              f"access.door_url")
        self.url = url
        self.timeout_s = float(timeout_s)
        self.headers = {"Content-Type": "application/json", **dict(headers or {})}
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.last_error = ""
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._thread = threading.Thread(target=self._run, name="door-webhook", daemon=True)
        self._thread.start()

    def open(self, event: Mapping[str, Any]) -> None:
        body = json.dumps({"event": "open", **dict(event)}, default=str).encode("utf-8")
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.dropped += 1
            log.error("door webhook %s: %d requests already waiting; grant for %s NOT sent to the door",
                      self.url, self._queue.qsize(), event.get("identity"))

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is _STOP:
                self._queue.task_done()
                return
            try:
                self._post(body)
            except Exception as exc:  # the loop must survive anything a request can throw
                self.failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("door webhook %s failed: %s", self.url, self.last_error)
            finally:
                self._queue.task_done()

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise RuntimeError(f"cannot reach the door controller: {exc.reason}") from exc
        except TimeoutError as exc:  # connected, but no answer (urllib only wraps connect errors)
            raise RuntimeError(f"the door controller did not answer within {self.timeout_s:g} s") from exc
        if not 200 <= status < 300:
            raise RuntimeError(f"HTTP {status}")
        self.sent += 1
        log.info("door webhook %s: open sent (HTTP %d)", self.url, status)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued request has been attempted (tests, shutdown). True when idle."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def close(self, timeout: float = 1.0) -> None:
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("door webhook %s: queue full at shutdown; %d request(s) abandoned", self.url,
                        self._queue.qsize())
            return
        self._thread.join(timeout + self.timeout_s)


def build_door(access_cfg: Any) -> DoorActuator:
    """From the [access] config section: door = "log" | "webhook" (door_url, door_timeout_s)."""
    kind = access_cfg.door
    if kind == "log":
        return LogOnlyDoor()
    if kind == "webhook":
        return WebhookDoor(access_cfg.door_url, access_cfg.door_timeout_s)
    raise ConfigError(f"config key 'access.door' has a bad value {kind!r}: expected 'log' or 'webhook'")
