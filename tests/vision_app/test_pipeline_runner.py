"""Pipeline timing and error handling; the runner thread end to end on a real video."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from vision_app.pipeline import PassThroughStage, Pipeline
from vision_app.runner import CallbackSink, LiveRun, VideoWriterSink
from vision_app.sources import open_source
from vision_app.types import Frame, FrameResult


class Invert:
    name = "invert"

    def process(self, result: FrameResult) -> FrameResult:
        return replace(result, image=255 - result.frame.image)

    def close(self) -> None:
        pass


class FailsOnOdd:
    name = "flaky"

    def process(self, result: FrameResult) -> FrameResult:
        if result.frame.index % 2:
            raise RuntimeError("odd frame")
        return result

    def close(self) -> None:
        pass


def frame(i: int = 0) -> Frame:
    return Frame(np.full((8, 8, 3), 10, np.uint8), i, 0.0, "unit")


def test_stages_run_in_order_timed_and_frame_never_mutated() -> None:
    p = Pipeline([PassThroughStage(), Invert()])
    f = frame()
    r = p.run(f)
    assert set(r.timings) == {"passthrough", "invert"} and all(t >= 0 for t in r.timings.values())
    assert (r.image == 245).all() and (f.image == 10).all()


def test_stage_errors_reported_once_per_kind_and_loop_goes_on(caplog) -> None:
    reported: list[str] = []
    p = Pipeline([FailsOnOdd(), Invert()], on_error=lambda s, m: reported.append(m))
    results = [p.run(frame(i)) for i in range(10)]
    assert [bool(r.errors) for r in results] == [i % 2 == 1 for i in range(10)]
    assert all((r.image == 245).all() for r in results)  # later stages still ran
    assert reported == ["stage 'flaky' failed: RuntimeError: odd frame"]
    assert p.error_counts[("flaky", "RuntimeError")] == 5
    assert sum("Traceback" in (r.exc_text or "") or r.exc_info is not None for r in caplog.records) == 1


def test_stage_disabled_after_consecutive_failures() -> None:
    class Always(FailsOnOdd):
        def process(self, result):
            raise ValueError("broken model")
    p = Pipeline([Always()], disable_after=3)
    for i in range(5):
        p.run(frame(i))
    assert p.disabled == {"flaky"} and p.error_counts[("flaky", "ValueError")] == 3


def test_live_run_on_a_video_writes_every_frame(media_dir: Path, tmp_path: Path) -> None:
    src = open_source(str(media_dir / "video/bikes_640x272.mp4"))
    out = tmp_path / "out.mp4"
    seen: list[int] = []
    run = LiveRun(src, Pipeline([Invert()]), [VideoWriterSink(out, 25.0), CallbackSink(lambda r: seen.append(r.frame.index))])
    run.start()
    assert run.wait(60)
    run.stop()
    s = run.summary()
    assert s["frames_read"] == 250 and s["frames_processed"] == 250 and s["frames_dropped"] == 0
    assert seen == list(range(250))
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 250
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (640, 272)


def test_failing_sink_is_removed_and_reported(media_dir: Path) -> None:
    events: list[tuple[str, str]] = []

    def boom(result: FrameResult) -> None:
        raise OSError("disk full")
    src = open_source(str(media_dir / "video/carphone_face_176x144.mp4"))
    run = LiveRun(src, Pipeline([]), [CallbackSink(boom)], on_status=lambda k, m: events.append((k, m)))
    run.start()
    assert run.wait(30)
    assert run.summary()["frames_processed"] == 120
    assert [k for k, m in events if "disk full" in m] == ["error"]


def test_live_run_stop_joins_threads_within_a_second() -> None:
    import time

    run = LiveRun(open_source("test:320x240@60"), Pipeline([PassThroughStage()]))
    run.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert run.stop(timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert run.summary()["frames_processed"] > 5


class SlowStatefulStage:
    """process is slow and per-frame; finish is stateful and must see frames in order."""

    name = "stateful"

    def __init__(self, log: list[int]) -> None:
        self.log = log

    def process(self, result: FrameResult) -> FrameResult:
        import time
        time.sleep(0.002 * (1 + result.frame.index % 3))  # uneven, so workers finish out of order
        return replace(result, extras={"worker": id(self)})

    def finish(self, result: FrameResult) -> FrameResult:
        self.log.append(result.frame.index)
        return result

    def close(self) -> None:
        pass


def test_throughput_mode_keeps_order_and_runs_finish_in_order(media_dir: Path) -> None:
    finished: list[int] = []
    delivered: list[int] = []
    workers: set[int] = set()
    main = Pipeline([SlowStatefulStage(finished)])
    extra = Pipeline([SlowStatefulStage([])])
    src = open_source(str(media_dir / "video/carphone_face_176x144.mp4"))

    def sink(r: FrameResult) -> None:
        delivered.append(r.frame.index)
        workers.add(r.extras["worker"])
    run = LiveRun(src, main, [CallbackSink(sink)], extra_pipelines=[extra])
    run.start()
    assert run.wait(30)
    assert delivered == list(range(120)) and finished == list(range(120))
    assert len(workers) == 2  # both pipelines did per-frame work


def test_ring_keeps_the_newest_values_in_fixed_memory() -> None:
    from vision_app.runner import Ring

    r = Ring(5)
    assert len(r) == 0 and r.last(3).tolist() == []
    for v in range(3):
        r.append(float(v))
    assert r.last(10).tolist() == [0.0, 1.0, 2.0] and sorted(r.values().tolist()) == [0.0, 1.0, 2.0]
    buf = r.values().base if r.values().base is not None else r.values()
    for v in range(3, 12):
        r.append(float(v))
    assert len(r) == 5 and r.last(3).tolist() == [9.0, 10.0, 11.0]
    assert sorted(r.values().tolist()) == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert (r.values().base if r.values().base is not None else r.values()) is buf  # no reallocation
