"""Runs on the real bikes clip with a zone across the road and a counting line, real Mosquitto, real scrapes.

In bikes_640x272.mp4 the road scene runs from frame 137 to 187: cars drive along the street behind a
fence; the near white car drives to the right across x = 96 (the line `middle`, drawn top to bottom, so
driving to the screen's right is "in"). Zone `road` is the band of the street (y 40..68 % of the height).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tests.helpers.mjpeg_server import free_port
from tests.helpers.mosquitto import Mosquitto, Subscriber
from vision_app.config import load_config
from vision_app.monitoring.hub import Monitoring
from vision_app.runner import LiveRun
from vision_app.sources import open_source
from vision_app.stages import build_pipeline

REPO = Path(__file__).resolve().parents[3]
ROAD_SCENE = range(137, 188)
ROAD = """
[[monitoring.sources]]
match = "bikes_640x272.mp4"
name = "street"
[[monitoring.sources.zones]]
name = "road"
points = [[0.0, 0.4], [1.0, 0.4], [1.0, 0.68], [0.0, 0.68]]
classes = ["car", "bus", "truck"]
[[monitoring.sources.lines]]
name = "middle"
start = [0.15, 0.3]
end = [0.15, 0.75]
classes = ["car"]
"""
OBJECT_KEYS = {"kind", "source", "time", "frame", "zone", "label", "score", "box", "track_id"}


def metric(text: str, name: str, labels: str = 'source="street"') -> float | None:
    m = re.search(rf"^{name}{{{labels}}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_a_run_on_bikes_publishes_the_road_events_and_its_metrics_grow(broker: Mosquitto, media_dir: Path,
                                                                     models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(ROAD)
    sub = Subscriber(broker.port, "vision-app/#")
    port = free_port()
    app = subprocess.Popen([sys.executable, str(REPO / "main.py"), "run", "--source",
                            str(media_dir / "video/bikes_640x272.mp4"), "--tasks", "detect", "--models", str(models_dir),
                            "--config", str(tmp_path / "c.toml"), "--mqtt", broker.url(), "--metrics-port", str(port),
                            "--stats", str(tmp_path / "s.json"), "-q"], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    scrapes: list[str] = []
    deadline = time.monotonic() + 300
    while app.poll() is None and time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            if (metric(text, "vision_app_frames_processed_total") or 0) > 0:
                scrapes.append(text)
        except OSError:
            pass  # not listening yet, or just closed
        time.sleep(0.1)
    out, err = app.communicate(timeout=60)
    assert app.returncode == 0, err
    sub.wait_for(lambda: sub.on("vision-app/available")[-1:] == [b"offline"], 10, "offline at the end")
    sub.close()

    # metrics: scraped during the run, the counters grew between two scrapes
    assert len(scrapes) >= 2, f"only {len(scrapes)} scrape(s) while frames were processed"
    first, last = scrapes[0], scrapes[-1]
    for name in ("vision_app_frames_read_total", "vision_app_frames_processed_total"):
        assert metric(last, name) > metric(first, name) > 0  # type: ignore[operator]
    counts = [metric(s, "vision_app_stage_latency_seconds_count", 'source="street",stage="detect"') for s in (first, last)]
    assert counts[1] > counts[0] > 0  # type: ignore[operator]
    assert metric(last, "vision_app_engine_info", 'backend="onnxruntime",providers="CPUExecutionProvider",source="street"') == 1

    # events: cars entering and leaving the road, one crossing the line, all in the road scene
    events = sub.events("vision-app/street/events")
    kinds = [e["kind"] for e in events]
    entered = [e for e in events if e["kind"] == "object_entered"]
    left = [e for e in events if e["kind"] == "object_left"]
    (crossed,) = [e for e in events if e["kind"] == "object_crossed"]
    assert set(kinds) == {"object_entered", "object_left", "object_crossed"} and len(entered) >= 3
    assert all(set(e) == OBJECT_KEYS and e["zone"] == "road" and e["label"] == "car" for e in entered + left)
    assert all(e["frame"] in ROAD_SCENE for e in entered)
    assert sorted(e["track_id"] for e in entered) == sorted(e["track_id"] for e in left)  # every car left again
    assert set(crossed) == OBJECT_KEYS | {"direction"}
    assert (crossed["zone"], crossed["label"], crossed["direction"]) == ("middle", "car", "in")
    assert crossed["frame"] in ROAD_SCENE and crossed["track_id"] in {e["track_id"] for e in entered}
    assert crossed["box"][0] > 96  # wholly right of the line when it counted

    # the run's stats and summary count the same events
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["zones"]["road"]["entered"] == len(entered) and stats["zones"]["road"]["left"] == len(left)
    assert stats["zones"]["middle"]["in"] == 1 and stats["zones"]["middle"]["out"] == 0
    assert stats["events"] == {k: kinds.count(k) for k in sorted(set(kinds))}
    assert stats["mqtt"]["dropped"] == 0 and stats["mqtt"]["queued"] == 0
    assert f"zone road: entered {len(entered)}, left {len(left)}" in out and "line middle: in 1, out 0" in out


class GatedVideo:
    """The bikes clip from frame `start`, holding back frame `gate` until `open_gate` is set (a real
    video, paused where the test needs the broker down)."""

    def __init__(self, path: Path, start: int, gates: dict[int, threading.Event], stop: int) -> None:
        self.inner = open_source(str(path))  # opened, like every source open_source gives
        self.source_id, self.live, self.fps, self.frame_count = self.inner.source_id, False, self.inner.fps, None
        self.start, self.gates, self.stop, self.n = start, gates, stop, start
        self.waiting: int | None = None
        for _ in range(start):
            self.inner.read()

    def open(self) -> None:
        raise AssertionError("a file source is not reopened")

    def read(self) -> NDArray[np.uint8] | None:
        if self.n in self.gates:
            self.waiting = self.n
            self.gates[self.n].wait(120)
        self.n += 1
        return self.inner.read() if self.n <= self.stop else None

    def close(self) -> None:
        self.inner.close()


def test_events_resume_after_the_broker_restarts_mid_run(broker: Mosquitto, media_dir: Path, stage_context,
                                                         tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(ROAD + "[mqtt]\nreconnect_min_s = 1\nreconnect_max_s = 1\n")
    cfg = load_config(tmp_path / "c.toml")
    sub = Subscriber(broker.port, "vision-app/street/events")
    mon = Monitoring.start(cfg, broker.url())
    gates = {155: threading.Event(), 180: threading.Event()}
    source = GatedVideo(media_dir / "video/bikes_640x272.mp4", 130, gates, 220)
    report = mon.attach(source.source_id, stage_context.models.entry(stage_context.config.detect.model).classes)
    pipeline = build_pipeline(["detect"], stage_context)
    run = LiveRun(source, pipeline, report.sinks, post=report.step).start()  # type: ignore[arg-type]
    assert mon.mqtt is not None and report.sink is not None
    try:
        def published() -> int:
            return sum(report.sink.counts.values())  # type: ignore[union-attr]

        def at_gate(n: int) -> bool:
            return source.waiting == n and run.runner.stats.processed == n - 130

        sub.wait_for(lambda: at_gate(155), 120, "frame 155")
        before = published()
        sub.wait_for(lambda: len(sub.on("vision-app/street/events")) == before, 20, "the events before the outage")
        assert before >= 2  # cars entered the road

        broker.stop()  # the broker goes away mid-run ...
        sub.wait_for(lambda: not mon.mqtt.connected, 10, "the publisher to notice")  # type: ignore[union-attr]
        gates[155].set()
        sub.wait_for(lambda: at_gate(180), 120, "frame 180")  # ... while the run goes on
        during = published() - before
        assert during >= 1 and mon.mqtt.stats()["queued"] == during  # waiting, not lost

        broker.start()  # ... and comes back
        gates[180].set()
        assert run.wait(120)
        total = published()
        assert total > before + during  # cars left the road after the restart
        sub.wait_for(lambda: len(sub.on("vision-app/street/events")) == total, 30, "every event after the restart")
    finally:
        for g in gates.values():
            g.set()
        run.stop(5.0)
        pipeline.close()
        mon.close()
        sub.close()
    events = sub.events("vision-app/street/events")
    frames = [e["frame"] for e in events]
    keys = [(e["kind"], e["zone"], e["track_id"], e["frame"]) for e in events]
    assert frames == sorted(frames) and len(set(keys)) == len(keys)  # in order, none twice
    assert {e["kind"] for e in events} == {"object_entered", "object_left", "object_crossed"}
    assert mon.mqtt.stats()["reconnects"] == 1 and mon.mqtt.stats()["dropped"] == 0


def test_the_monitoring_benchmark_prints_its_table(app_config, store, media_dir) -> None:
    from vision_app.benchmark import BenchContext
    from vision_app.monitoring.bench import run_monitoring_bench

    (table,) = run_monitoring_bench(BenchContext(app_config, store, media_dir / "video/bikes_640x272.mp4", frames=10))
    assert [r["part"] for r in table.rows][-1] == "detect stage" and len(table.rows) == 4
    assert all(r["p50 ms"] >= 0 for r in table.rows) and "10 frames" in table.title
