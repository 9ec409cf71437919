"""MQTT publisher (paho-mqtt 2.x): events out of the frame loop without ever blocking it.

`MqttPublisher.connect(url, cfg)` connects before the run starts, so a bad URL, an unreachable broker or a
refused login is a clear error at once. Then `publish()` only appends to a bounded queue (the oldest
message is dropped when it is full, counted and logged) and a publisher thread hands messages to paho
while the broker is connected. paho's network thread reconnects with a doubling backoff when the broker
is lost; each (re)connect publishes `<prefix>/available` = `online` (retained, with the last will
`offline`) and every retained message again (Home Assistant discovery, states), and the queue resumes.
"""
from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from vision_app.errors import MonitoringError
from vision_app.monitoring.config import MqttConfig

log = logging.getLogger(__name__)

Payload = bytes | str | Callable[[], bytes]  # a callable is called on the publisher thread (JPEG encoding)
URL_HELP = "mqtt://[user:password@]host[:port] or mqtts://... (TLS)"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str
    password: str

    def __str__(self) -> str:  # never shows the password
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_url(url: str, username: str = "", password: str = "") -> BrokerAddress:
    """mqtt:// or mqtts:// URL → address; user and password from the URL, else the given ones."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise MonitoringError(f"bad MQTT URL {url!r}: {exc}; expected {URL_HELP}") from exc
    if parts.scheme not in ("mqtt", "mqtts"):
        raise MonitoringError(f"bad MQTT URL {url!r}: the scheme must be mqtt or mqtts, got "
                              f"{parts.scheme or 'none'!r}; expected {URL_HELP}")
    if not parts.hostname:
        raise MonitoringError(f"bad MQTT URL {url!r}: no host; expected {URL_HELP}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MonitoringError(f"bad MQTT URL {url!r}: a path or query is not used; set the topic prefix "
                              f"with mqtt.prefix; expected {URL_HELP}")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, port or (8883 if tls else 1883), tls,
                         unquote(parts.username) if parts.username else username,
                         unquote(parts.password) if parts.password else password)


class MqttPublisher:
    def __init__(self, cfg: MqttConfig, address: BrokerAddress) -> None:
        import paho.mqtt.client as paho

        self.cfg = cfg
        self.address = address
        self.prefix = cfg.prefix
        self.available_topic = f"{cfg.prefix}/available"
        self.published = 0            # acknowledged by the broker (QoS 1/2) or sent (QoS 0)
        self.dropped = 0
        self.reconnects = 0
        self._queue: deque[tuple[str, Payload, bool]] = deque()
        self._cond = threading.Condition()
        self._retained: dict[str, bytes] = {}     # re-published on every connect
        self._connected = threading.Event()
        self._first = threading.Event()           # the first CONNACK (or refusal) arrived
        self._refused = ""
        self._closing = False
        self._ever_connected = False
        self._last_drop_log = 0.0
        client_id = cfg.client_id or f"vision-app-{socket.gethostname()}-{os.getpid()}"
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv311)
        if address.username:
            self.client.username_pw_set(address.username, address.password or None)
        if address.tls:
            try:
                self.client.tls_set(ca_certs=cfg.ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise MonitoringError(f"cannot set up TLS for {address}: {exc}; check mqtt.ca_file "
                                      f"({cfg.ca_file or 'the system CA store'})") from exc
        self.client.will_set(self.available_topic, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        self.client.connect_timeout = cfg.connect_timeout_s
        self.client.max_queued_messages_set(max(cfg.queue_size, 20))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._worker = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)

    # ---- start / stop -------------------------------------------------------------------------
    @classmethod
    def connect(cls, url: str, cfg: MqttConfig) -> "MqttPublisher":
        """Connect now; MonitoringError when the URL is bad, the broker cannot be reached or refuses us."""
        pub = cls(cfg, parse_url(url, cfg.username, cfg.password))
        pub.start()
        return pub

    def start(self) -> None:
        addr = self.address
        try:
            self.client.connect(addr.host, addr.port, keepalive=self.cfg.keepalive_s)
        except ssl.SSLError as exc:
            raise MonitoringError(f"TLS handshake with the MQTT broker {addr} failed: {exc}; check the host "
                                  f"name and mqtt.ca_file") from exc
        except (OSError, ValueError) as exc:
            raise MonitoringError(f"cannot reach the MQTT broker {addr}: {exc}; check the host and port of "
                                  f"--mqtt / mqtt.url and that the broker runs") from exc
        self.client.loop_start()
        if not self._first.wait(self.cfg.connect_timeout_s):
            self._abort()
            raise MonitoringError(f"the MQTT broker {addr} did not answer the connection within "
                                  f"{self.cfg.connect_timeout_s:g} s (mqtt.connect_timeout_s); is it an MQTT port?")
        if self._refused:
            self._abort()
            who = f"user {addr.username!r}" if addr.username else "an anonymous client (no user in the URL)"
            raise MonitoringError(f"the MQTT broker {addr} refused the login of {who}: {self._refused}; check "
                                  f"the user and password in the URL or mqtt.username / mqtt.password")
        log.info("MQTT: connected to %s, topics under %s/", addr, self.prefix)
        self._worker.start()

    def _abort(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (waiting at most `timeout` s), mark the app offline, disconnect."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._worker.is_alive():
            self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._connected.is_set():
            info = self.client.publish(self.available_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except RuntimeError:
                pass  # the connection went away meanwhile: the broker sends the last will instead
        self.client.disconnect()
        self.client.loop_stop()
        if self._queue:
            log.warning("MQTT: %d message(s) not sent at exit (broker %s)", len(self._queue), self.address)

    # ---- paho callbacks (paho's network thread) ---------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            if self._ever_connected:
                log.error("MQTT: the broker %s refused us: %s (retrying)", self.address, reason)
            self._first.set()
            return
        if self._ever_connected:
            self.reconnects += 1
            log.warning("MQTT: reconnected to %s; sending the queued events", self.address)
        self._ever_connected = True
        client.publish(self.available_topic, "online", qos=1, retain=True)
        with self._cond:
            retained = list(self._retained.items())
        for topic, payload in retained:
            client.publish(topic, payload, qos=1, retain=True)
        self._connected.set()
        self._first.set()
        with self._cond:
            self._cond.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closing:
            log.warning("MQTT: lost the broker %s (%s); reconnecting (backoff %d..%d s), events wait in a "
                        "queue of %d", self.address, reason, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s,
                        self.cfg.queue_size)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self.published += 1

    # ---- publishing --------------------------------------------------------------------------------
    def publish(self, topic: str, payload: Payload, retain: bool = False) -> None:
        """Queue a message; never blocks. When the queue is full the oldest message is dropped."""
        with self._cond:
            if len(self._queue) >= self.cfg.queue_size:
                self._queue.popleft()
                self.dropped += 1
                self._log_drop()
            self._queue.append((topic, payload, retain))
            self._cond.notify()

    def retain(self, topic: str, payload: bytes | str) -> None:
        """A retained message that is sent again after every reconnect (discovery configs, states)."""
        data = payload.encode() if isinstance(payload, str) else payload
        with self._cond:
            self._retained[topic] = data
        self.publish(topic, data, retain=True)

    def _log_drop(self) -> None:
        now = time.monotonic()
        if self.dropped == 1 or now - self._last_drop_log >= 10.0:
            self._last_drop_log = now
            state = "connected but slow" if self._connected.is_set() else "not connected"
            log.warning("MQTT: queue full (%d messages, broker %s %s): dropped the oldest; %d dropped so far",
                        self.cfg.queue_size, self.address, state, self.dropped)

    def _next(self) -> tuple[str, Payload, bool] | None:
        """The next message once the broker is connected; None when closing (and nothing can be sent)."""
        with self._cond:
            while True:
                if self._queue and self._connected.is_set():
                    return self._queue.popleft()
                if self._closing:
                    return None
                self._cond.wait(0.2)

    def _run(self) -> None:
        import paho.mqtt.client as paho

        while (item := self._next()) is not None:
            topic, payload, retain = item
            try:
                data = payload() if callable(payload) else payload
                info = self.client.publish(topic, data, qos=self.cfg.qos, retain=retain)
            except Exception:
                log.exception("MQTT: publishing to %s failed", topic)
                continue
            if info.rc == paho.MQTT_ERR_QUEUE_SIZE or (info.rc == paho.MQTT_ERR_NO_CONN and self.cfg.qos == 0):
                with self._cond:
                    self.dropped += 1
                    self._log_drop()
            # MQTT_ERR_NO_CONN with QoS 1/2: paho keeps the message and sends it after the reconnect

    def stats(self) -> dict[str, Any]:
        with self._cond:
            queued = len(self._queue)
        return {"broker": str(self.address), "connected": self._connected.is_set(), "published": self.published,
                "queued": queued, "dropped": self.dropped, "reconnects": self.reconnects}

    @property
    def connected(self) -> bool:
        return self._connected.is_set()
