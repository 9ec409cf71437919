"""Per source: the zone step (after the pipeline) and the report sink (events → MQTT and metrics).

`SourceStep` runs on the runner thread in frame order between the pipeline and the sinks: it turns the
result's tracked detections (and face observations) into events in `result.extras["events"]` and
draws the zones on a copy of the image, so the view, the recording and the snapshots all show them.
`ReportSink` is an ordinary sink: it counts the events, queues them for MQTT (never waiting on the
network) and feeds the Prometheus histograms. Access decisions come in through `decision()`.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import replace
from typing import Any, Callable

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.draw import draw_zones
from vision_app.monitoring.config import MqttConfig
from vision_app.monitoring.events import EVENTS_EXTRAS_KEY, ZONES_EXTRAS_KEY, Event, access_event
from vision_app.monitoring.homeassistant import discovery_messages, fps_topic, occupancy_topic
from vision_app.monitoring.metrics import Metrics
from vision_app.monitoring.mqtt import MqttPublisher
from vision_app.monitoring.zonewatch import ZoneWatch
from vision_app.types import FrameResult

log = logging.getLogger(__name__)

FaceEventsFn = Callable[[FrameResult], list[Event]]


class SourceStep:
    """result → result with this frame's events in extras["events"] and the zones drawn (timed as 'zones').
    A failure is logged once with its traceback and the result passes unchanged."""

    name = "zones"

    def __init__(self, zones: ZoneWatch | None, faces: FaceEventsFn | None = None) -> None:
        self.zones = zones
        self.faces = faces
        self.failures = 0

    def __call__(self, result: FrameResult) -> FrameResult:
        t = time.perf_counter()
        try:
            events: list[Event] = []
            extras = dict(result.extras)
            image = result.image
            if self.zones is not None:
                events, view = self.zones.update(result)
                extras[ZONES_EXTRAS_KEY] = view
                image = draw_zones(result.image.copy(), view.polygons, view.lines)
            if self.faces is not None:
                events += self.faces(result)
            extras[EVENTS_EXTRAS_KEY] = tuple(events)
        except Exception:
            self.failures += 1
            if self.failures == 1:
                log.exception("the zone step failed (later failures are only counted)")
            return result
        timings = {**result.timings, self.name: time.perf_counter() - t}
        return replace(result, image=image, extras=extras, timings=timings)


def jpeg(image: NDArray[np.uint8], quality: int) -> Callable[[], bytes]:
    """A deferred JPEG encoding of a BGR image (runs on the MQTT publisher thread, not the frame loop)."""

    def encode() -> bytes:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return buf.tobytes() if ok else b""

    return encode


class ReportSink:
    """Counts and publishes one source's events; observes its per-frame metrics."""

    def __init__(self, source: str, zones: ZoneWatch | None, mqtt: MqttPublisher | None, mqtt_cfg: MqttConfig,
                 metrics: Metrics | None) -> None:
        self.source = source
        self.zones = zones
        self.mqtt = mqtt
        self.cfg = mqtt_cfg
        self.metrics = metrics
        self.counts: Counter[str] = Counter()
        self.fps = 0.0
        self._rate_t = time.monotonic()
        self._rate_n = 0
        self._fps_sent = 0.0
        self._occupancy: dict[str, int] = {}
        if mqtt is not None:
            self.events_topic = f"{mqtt.prefix}/{source}/events"
            self.snapshot_topic = f"{mqtt.prefix}/{source}/snapshot"
            if mqtt_cfg.ha_discovery:
                classes = zones.watched_classes() if zones is not None else []
                for topic, payload in discovery_messages(mqtt_cfg.ha_prefix, mqtt.prefix, source, classes):
                    mqtt.retain(topic, payload)
                self._publish_occupancy(force=True)

    def write(self, result: FrameResult) -> None:
        image = result.image
        for event in result.extras.get(EVENTS_EXTRAS_KEY, ()):
            self.emit(event, image)
        if self.metrics is not None:
            self.metrics.observe(self.source, result)
        self._rate()
        if self.mqtt is not None and self.cfg.ha_discovery:
            self._publish_occupancy()

    def emit(self, event: Event, image: NDArray[np.uint8] | None = None) -> None:
        self.counts[event.kind] += 1
        if self.metrics is not None:
            self.metrics.event(self.source, event.kind)
        if self.mqtt is None:
            return
        self.mqtt.publish(self.events_topic, json.dumps(event.to_json()))
        if self.cfg.snapshots and event.snapshot_ok and image is not None:
            self.mqtt.publish(self.snapshot_topic, jpeg(image, self.cfg.snapshot_quality))

    def decision(self, decision: Any, result: FrameResult | None = None) -> None:
        """An access controller Decision (granted / denied) made on `result` as an event and a metric."""
        if self.metrics is not None:
            self.metrics.decision(self.source, decision.decision)
        event = access_event(self.source, decision, result.frame.index if result is not None else -1)
        self.emit(event, result.image if event.snapshot_ok and result is not None else None)

    def _rate(self) -> None:
        self._rate_n += 1
        now = time.monotonic()
        dt = now - self._rate_t
        if dt < 1.0:
            return
        self.fps = self._rate_n / dt
        self._rate_t, self._rate_n = now, 0
        if self.metrics is not None:
            self.metrics.fps.labels(self.source).set(self.fps)
        if self.mqtt is not None and self.cfg.ha_discovery and now - self._fps_sent >= self.cfg.fps_interval_s:
            self._fps_sent = now
            self.mqtt.publish(fps_topic(self.mqtt.prefix, self.source), f"{self.fps:.1f}")

    def _publish_occupancy(self, force: bool = False) -> None:
        if self.zones is None or self.mqtt is None:
            return
        occ = self.zones.occupancy()
        for label, n in occ.items():
            if force or (n > 0) != (self._occupancy.get(label, 0) > 0):
                self.mqtt.retain(occupancy_topic(self.mqtt.prefix, self.source, label), "ON" if n else "OFF")
        self._occupancy = occ

    def close(self) -> None:
        pass
