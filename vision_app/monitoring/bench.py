"""`python main.py bench --tasks monitoring`: what zones, events, MQTT and metrics cost the frame loop.

The detector runs once over the video (tracking on) and its results are kept; then, on those real results
in frame order, it times the zone step (a zone and a counting line watching every class: the anchor
tests, the events and drawing the zones on a copy of the frame) and the report sink (Prometheus
histograms, and every event queued for MQTT; the publisher is not connected, so this is the cost the
frame loop pays, never the network's). Both are compared with the detection stage's own time.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from vision_app.benchmark import BenchContext, BenchTable, ms
from vision_app.errors import ConfigError
from vision_app.monitoring.config import LineConfig, MqttConfig, SourceConfig, ZoneConfig
from vision_app.monitoring.events import EVENTS_EXTRAS_KEY
from vision_app.monitoring.metrics import Metrics
from vision_app.monitoring.mqtt import MqttPublisher, parse_url
from vision_app.monitoring.report import ReportSink, SourceStep
from vision_app.monitoring.zonewatch import ZoneWatch
from vision_app.types import Frame, FrameResult

BENCH_SOURCE = SourceConfig(name="bench", zones=[ZoneConfig("road", [[0.0, 0.4], [1.0, 0.4], [1.0, 0.68], [0.0, 0.68]])],
                            lines=[LineConfig("middle", [0.15, 0.3], [0.15, 0.75])])


def _results(ctx: BenchContext) -> list[FrameResult]:
    from vision_app.sources import open_source
    from vision_app.stages import StageContext, build_pipeline

    if ctx.video is None:
        raise ConfigError("bench --tasks monitoring needs a video (--video PATH)")
    pipeline = build_pipeline(["detect"], StageContext(ctx.config, ctx.models))
    source = open_source(str(ctx.video))
    out: list[FrameResult] = []
    try:
        while not ctx.frames or len(out) < ctx.frames:
            img = source.read()
            if img is None:
                break
            out.append(pipeline.run(Frame(img, len(out), time.monotonic(), source.source_id)))
            if len(out) % 50 == 0:
                ctx.on_progress(f"detect: {len(out)} frames")
    finally:
        source.close()
        pipeline.close()
    return out


def run_monitoring_bench(ctx: BenchContext) -> list[BenchTable]:
    results = _results(ctx)
    step = SourceStep(ZoneWatch("bench", BENCH_SOURCE, ctx.config.monitoring.lost_frames))
    metrics = Metrics()
    publisher = MqttPublisher(MqttConfig(queue_size=100_000), parse_url("mqtt://127.0.0.1"))  # never connected
    sink = ReportSink("bench", step.zones, publisher, MqttConfig(), metrics)
    t_step, t_sink = np.empty(len(results)), np.empty(len(results))
    events = 0
    for i, r in enumerate(results):
        t = time.perf_counter()
        r2 = step(r)
        t_step[i] = time.perf_counter() - t
        t = time.perf_counter()
        sink.write(r2)
        t_sink[i] = time.perf_counter() - t
        events += len(r2.extras.get(EVENTS_EXTRAS_KEY, ()))
    detect = np.array([r.timings.get("detect", np.nan) for r in results])
    boxes = float(np.mean([len(r.detections) if r.detections is not None else 0 for r in results]))
    base = ms(detect)

    def row(name: str, t: Any) -> dict[str, Any]:
        return {"part": name, "p50 ms": ms(t), "p95 ms": ms(t, 95), "% of detect p50": round(100 * ms(t) / base, 2)}

    table = BenchTable(f"monitoring cost per frame ({len(results)} frames of {ctx.video.name if ctx.video else '-'}, "
                       f"{boxes:.1f} boxes a frame, {events} events)",
                       ["part", "p50 ms", "p95 ms", "% of detect p50"],
                       [row("zone step (1 zone + 1 line, drawn)", t_step),
                        row("report sink (metrics + MQTT queue)", t_sink),
                        row("monitoring total", t_step + t_sink), row("detect stage", detect)],
                       notes=["the MQTT publisher is not connected here: publish() only queues (what the frame "
                              "loop pays); sending happens on the publisher's own thread"])
    return [table]
