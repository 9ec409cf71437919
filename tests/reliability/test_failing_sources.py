"""Sources that fail for real: an HTTP MJPEG stream that dies and comes back at another resolution, a
truncated video, a video with corrupt bytes in the middle, a camera that does not exist."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.mjpeg_server import MjpegServer, free_port
from vision_app.errors import SourceError
from vision_app.pipeline import PassThroughStage, Pipeline
from vision_app.runner import CallbackSink, LiveRun
from vision_app.sources import open_source


def wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_mjpeg_stream_lost_reconnects_with_backoff_at_another_resolution() -> None:
    port = free_port()
    server = MjpegServer(port, (320, 240), fps=30).start()
    shapes: list[tuple[int, ...]] = []
    indices: list[int] = []
    events: list[tuple[str, str]] = []

    def sink(r) -> None:
        shapes.append(r.image.shape)
        indices.append(r.frame.index)

    run = LiveRun(open_source(server.url), Pipeline([PassThroughStage()]), [CallbackSink(sink)],
                  on_status=lambda k, m: events.append((k, m)), reconnect=(0.05, 0.4, 0))
    run.start()
    try:
        assert wait_for(lambda: len(shapes) >= 10, 10), "no frames from the stream"
        server.stop()  # mid-stream: the connection drops and the port refuses
        assert wait_for(lambda: any(k == "source_lost" for k, _ in events), 10)
        time.sleep(0.6)  # a few failed reconnect attempts while the server is down
        n_before = len(shapes)
        server = MjpegServer(port, (640, 360), fps=30).start()
        assert wait_for(lambda: any(s == (360, 640, 3) for s in shapes), 15), events
        assert any(k == "reconnected" for k, _ in events)
        assert wait_for(lambda: len(shapes) >= n_before + 10, 10)
    finally:
        assert run.stop(timeout=2.0)
        server.stop()
    s = run.summary()
    assert s["source_failures"] >= 1 and s["reconnects"] >= 1
    assert s["frames_processed"] == len(shapes)
    assert s["frames_processed"] + s["frames_dropped"] <= s["frames_read"]
    assert indices == sorted(set(indices))  # one index sequence across the reconnect
    assert run.capture.stats.resolution_changes >= 1


def test_truncated_video_is_a_clear_error(media_dir: Path, tmp_path: Path) -> None:
    data = (media_dir / "video/bikes_640x272.mp4").read_bytes()
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"truncated.mp4' cannot be opened: .*(corrupt|truncated)"):
        open_source(str(bad))


def test_video_with_corrupt_middle_skips_and_says_so(media_dir: Path, tmp_path: Path, caplog) -> None:
    data = bytearray((media_dir / "video/bikes_640x272.mp4").read_bytes())
    mid = len(data) // 2
    data[mid: mid + 20_000] = np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    got: list[int] = []
    run = LiveRun(open_source(str(bad)), Pipeline([PassThroughStage()]), [CallbackSink(lambda r: got.append(1))])
    t0 = time.monotonic()
    run.start()
    assert run.wait(30), "hung on a corrupt video"
    s = run.summary()
    assert time.monotonic() - t0 < 30
    assert 100 < s["frames_processed"] < 250 and s["frames_undecodable"] > 0
    assert s["frames_processed"] + s["frames_undecodable"] == 250
    assert any("could not be decoded" in r.getMessage() for r in caplog.records)


def test_camera_index_that_does_not_exist() -> None:
    with pytest.raises(SourceError, match="camera 'camera:9' cannot be opened"):
        open_source("camera:9")
