"""`Monitoring`: the MQTT publisher and the metrics endpoint of one process, and a `SourceReport` per source.

    mon = Monitoring.start(cfg, mqtt_url=args.mqtt, metrics_port=args.metrics_port)  # errors at start
    report = mon.attach(source.source_id, detector_classes(ctx, tasks))
    LiveRun(source, pipeline, [*report.sinks, ...], post=report.step)
    report.track(run.counters)          # frames read / processed / dropped for the metrics
    ...
    summary["zones"] = report.summary()["zones"]; mon.close()

With no zones for a source and neither MQTT nor metrics on, a report has no step and no sink: the run is
exactly what it was without monitoring.
"""
from __future__ import annotations

import fnmatch
import logging
import re
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from vision_app.config import AppConfig
from vision_app.errors import ConfigError
from vision_app.monitoring.config import SourceConfig
from vision_app.monitoring.face_events import FaceEvents
from vision_app.monitoring.metrics import CountersFn, Metrics
from vision_app.monitoring.mqtt import MqttPublisher
from vision_app.monitoring.report import ReportSink, SourceStep
from vision_app.monitoring.zonewatch import ZoneWatch
from vision_app.types import FrameResult

log = logging.getLogger(__name__)


def derived_name(source_id: str) -> str:
    """A topic-level / label-safe name for a source: a file's stem, a stream's host and path, cameraN."""
    s = source_id.strip().removeprefix("loop:")
    if "://" in s:
        parts = urlsplit(s)
        base = f"{parts.hostname or ''}{parts.path}"
    elif s.startswith("camera:") or s.isdigit():
        base = "camera" + s.split(":")[-1]
    elif s.startswith("test:"):
        base = "test"
    else:
        p = Path(s)
        if set(p.name) & set("*?["):  # a glob of images: its folder
            p = p.parent
        base = p.stem if p.suffix else p.name
    return re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or "source"


class SourceReport:
    """One source's zone step (`step`, or None) and sinks (`sinks`: empty or the report sink)."""

    def __init__(self, name: str, step: SourceStep | None, sink: ReportSink | None, metrics: Metrics | None) -> None:
        self.name = name
        self.step = step
        self.sink = sink
        self.metrics = metrics

    @property
    def sinks(self) -> list[ReportSink]:
        return [self.sink] if self.sink is not None else []

    def track(self, counters: CountersFn) -> None:
        """Frames read / processed / dropped of the run behind this source, read at each scrape."""
        if self.metrics is not None:
            self.metrics.add_source(self.name, counters)

    def set_engine(self, backend: str, providers: Sequence[str]) -> None:
        if self.metrics is not None:
            self.metrics.set_engine(self.name, backend, list(providers))

    def decision(self, decision: Any, result: FrameResult | None = None) -> None:
        """An access decision made on `result` (its frame is the snapshot when one may be sent)."""
        if self.sink is not None:
            self.sink.decision(decision, result)

    def summary(self) -> dict[str, Any]:
        """{"zones": per zone / line counts, "events": count per kind} for the run stats."""
        zones = self.step.zones if self.step is not None else None
        out: dict[str, Any] = {"zones": zones.summary() if zones is not None else {}}
        out["events"] = dict(sorted(self.sink.counts.items())) if self.sink is not None else {}
        return out


class Monitoring:
    def __init__(self, cfg: AppConfig, mqtt: MqttPublisher | None = None, metrics: Metrics | None = None) -> None:
        self.cfg = cfg
        self.mqtt = mqtt
        self.metrics = metrics
        self._names: dict[str, str] = {}  # source id → name (stable across restarts of the same source)
        self._closed = False

    @classmethod
    def start(cls, cfg: AppConfig, mqtt_url: str | None = None, metrics_port: int | None = None) -> "Monitoring":
        """Connect to the broker and open the metrics port now (MonitoringError when either fails)."""
        url = mqtt_url or cfg.mqtt.url
        port = cfg.metrics.port if metrics_port is None else metrics_port
        if not 0 <= port <= 65535:
            raise ConfigError(f"--metrics-port {port}: expected a port number 1..65535 (0 = off)")
        metrics = None
        if port:
            metrics = Metrics()
            metrics.serve(cfg.metrics.host, port)
        try:
            mqtt = MqttPublisher.connect(url, cfg.mqtt) if url else None
        except BaseException:
            if metrics is not None:
                metrics.close()
            raise
        if metrics is not None and mqtt is not None:
            metrics.set_mqtt(mqtt.stats)
        return cls(cfg, mqtt, metrics)

    @property
    def active(self) -> bool:
        """MQTT or metrics are on."""
        return self.mqtt is not None or self.metrics is not None

    def source_config(self, source_id: str) -> SourceConfig | None:
        name = Path(source_id.removeprefix("loop:")).name
        for sc in self.cfg.monitoring.sources:
            if fnmatch.fnmatch(source_id, sc.match) or fnmatch.fnmatch(name, sc.match):
                return sc
        return None

    def source_name(self, source_id: str) -> str:
        if source_id in self._names:
            return self._names[source_id]
        sc = self.source_config(source_id)
        base = sc.name if sc is not None and sc.name else derived_name(source_id)
        name, n = base, 1
        while name in self._names.values():
            n += 1
            name = f"{base}-{n}"
        self._names[source_id] = name
        return name

    def attach(self, source_id: str, detector_classes: Sequence[str] | None) -> SourceReport:
        """The report for a source. detector_classes: the detector's class names (None: no detect task);
        a zone watching a class the detector does not have is a ConfigError. With MQTT or metrics on,
        faces are announced too (face_recognised / face_unknown; nothing to do while no face task runs)."""
        name = self.source_name(source_id)
        sc = self.source_config(source_id)
        zones = None
        if sc is not None and (sc.zones or sc.lines):
            _check_classes(sc, name, detector_classes)
            zones = ZoneWatch(name, sc, self.cfg.monitoring.lost_frames)
        ui = self.cfg.ui
        faces = FaceEvents(name, ui.event_cooldown_s, ui.event_min_frames) if self.active else None
        step = SourceStep(zones, faces) if zones is not None or faces is not None else None
        sink = ReportSink(name, zones, self.mqtt, self.cfg.mqtt, self.metrics) if (self.active or zones) else None
        return SourceReport(name, step, sink, self.metrics)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.mqtt is not None:
            out["mqtt"] = self.mqtt.stats()
        if self.metrics is not None:
            out["metrics"] = self.metrics.address
        return out

    def close(self) -> None:
        """Flush and disconnect MQTT, stop the metrics endpoint (a second call does nothing)."""
        if self.mqtt is not None and not self._closed:
            self.mqtt.close()
        if self.metrics is not None and not self._closed:
            self.metrics.close()
        self._closed = True


def _check_classes(sc: SourceConfig, name: str, detector_classes: Sequence[str] | None) -> None:
    if detector_classes is None:
        log.warning("source %s has zones or lines but no detect task runs: they stay empty (add --tasks detect)",
                    name)
        return
    known = set(detector_classes)
    for kind, items in (("zone", sc.zones), ("line", sc.lines)):
        for z in items:
            bad = [c for c in z.classes if c not in known]
            if bad and known:
                raise ConfigError(f"{kind} '{z.name}' of source {name} watches {bad}, which the detector does not "
                                  f"know; its classes are: {', '.join(detector_classes)}")


def detector_classes(ctx: Any, tasks: Sequence[str]) -> tuple[str, ...] | None:
    """The class names of the configured detector when `detect` is among the tasks, else None."""
    if "detect" not in tasks or getattr(ctx, "models", None) is None:
        return None
    return tuple(ctx.models.entry(ctx.config.detect.model).classes)
