"""Prometheus metrics (prometheus-client): an HTTP endpoint with per-source counters and latency histograms.

Frame counters (read / processed / dropped) are read from each run when Prometheus scrapes, so the frame
loop pays nothing for them; per-frame histograms and event counters are updated by the report sink
(a few microseconds a frame). Metric names start with `vision_app_`; every per-source metric has a
`source` label (the same name as in the MQTT topics).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterator, Mapping

from vision_app.errors import MonitoringError
from vision_app.types import FrameResult

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

CountersFn = Callable[[], Mapping[str, float] | None]  # {"read", "processed", "dropped"} or None (not running)


class Metrics:
    """One registry and endpoint per process. `serve(host, port)` starts the HTTP server (a daemon thread)."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self.registry = pc.CollectorRegistry()
        self._lock = threading.Lock()
        self._sources: dict[str, CountersFn] = {}
        self._mqtt: Callable[[], Mapping[str, Any]] | None = None
        self.fps = pc.Gauge("vision_app_fps", "Frames processed per second (recent window)", ["source"],
                            registry=self.registry)
        self.stage_latency = pc.Histogram("vision_app_stage_latency_seconds", "Time per pipeline stage and frame",
                                          ["source", "stage"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.capture_to_result = pc.Histogram("vision_app_capture_to_result_seconds",
                                              "Time from capture to the finished result", ["source"],
                                              buckets=LATENCY_BUCKETS, registry=self.registry)
        self.events = pc.Counter("vision_app_events", "Monitoring events by kind", ["source", "kind"],
                                 registry=self.registry)
        self.decisions = pc.Counter("vision_app_access_decisions", "Door access decisions by result",
                                    ["source", "result"], registry=self.registry)
        self.engine = pc.Info("vision_app_engine", "Inference backend and execution providers in use", ["source"],
                              registry=self.registry)
        self.registry.register(_Collector(self))
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.address = ""

    def serve(self, host: str, port: int) -> None:
        import prometheus_client as pc

        try:
            self._server, self._thread = pc.start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MonitoringError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; choose a free "
                                  f"port with --metrics-port (or metrics.port) or stop what uses it") from exc
        self.address = f"http://{host}:{self._server.server_port}/metrics"
        log.info("Prometheus metrics at %s", self.address)

    @property
    def port(self) -> int:
        return int(self._server.server_port) if self._server is not None else 0

    def add_source(self, source: str, counters: CountersFn) -> None:
        with self._lock:
            self._sources[source] = counters

    def set_mqtt(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self._mqtt = stats

    def set_engine(self, source: str, backend: str, providers: list[str]) -> None:
        self.engine.labels(source).info({"backend": backend or "none", "providers": ",".join(providers)})

    def observe(self, source: str, result: FrameResult) -> None:
        for stage, seconds in result.timings.items():
            self.stage_latency.labels(source, stage).observe(seconds)
        if result.done_time:
            self.capture_to_result.labels(source).observe(max(0.0, result.latency))

    def event(self, source: str, kind: str) -> None:
        self.events.labels(source, kind).inc()

    def decision(self, source: str, result: str) -> None:
        self.decisions.labels(source, result).inc()

    def sources(self) -> dict[str, CountersFn]:
        with self._lock:
            return dict(self._sources)

    def mqtt_stats(self) -> Mapping[str, Any] | None:
        return self._mqtt() if self._mqtt is not None else None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None


class _Collector:
    """Reads each source's frame counters and the MQTT publisher's figures at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # collected at scrape time only (no names reserved at registration)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = {key: CounterMetricFamily(f"vision_app_frames_{key}", f"Frames {key} per source",
                                             labels=["source"]) for key in ("read", "processed", "dropped")}
        for source, fn in self.metrics.sources().items():
            try:
                values = fn()
            except Exception:  # a source being torn down must not break the scrape
                log.debug("frame counters of %s unavailable", source, exc_info=True)
                values = None
            if values:
                for key, fam in families.items():
                    fam.add_metric([source], float(values.get(key, 0)))
        yield from families.values()
        mqtt = self.metrics.mqtt_stats()
        if mqtt is not None:
            yield CounterMetricFamily("vision_app_mqtt_published", "MQTT messages the broker acknowledged",
                                      value=mqtt["published"])
            yield CounterMetricFamily("vision_app_mqtt_dropped", "MQTT messages dropped (queue full)",
                                      value=mqtt["dropped"])
            yield GaugeMetricFamily("vision_app_mqtt_connected", "1 while connected to the broker",
                                    value=1.0 if mqtt["connected"] else 0.0)
