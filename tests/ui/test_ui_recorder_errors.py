"""The GUI's recorder reports a recording that fails while writing or while finishing the file, and the
session's sink survives for the next recording."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ui.recorder import RecorderSink
from vision_app.errors import VisionAppError
from vision_app.runner import VideoWriterSink
from vision_app.types import Frame, FrameResult


def result(i: int) -> FrameResult:
    img = np.full((48, 64, 3), i % 255, np.uint8)
    return FrameResult(frame=Frame(img, i, 0.0, "t"), image=img)


def test_failure_at_close_is_reported_not_called_saved(tmp_path: Path, monkeypatch) -> None:
    events: list[tuple[str, str]] = []
    sink = RecorderSink(lambda k, m: events.append((k, m)))
    sink.request_start(tmp_path / "a.mp4", 25.0)
    for i in range(5):
        sink.write(result(i))

    def failing_close(self) -> None:
        raise VisionAppError("recording to a.mp4 is incomplete: disk is full")
    monkeypatch.setattr(VideoWriterSink, "close", failing_close)
    sink.request_stop()
    sink.write(result(5))
    assert events[-1][0] == "error" and "disk is full" in events[-1][1]
    assert not any(k == "recorded" for k, _ in events)
    monkeypatch.undo()
    sink.request_start(tmp_path / "b.mp4", 25.0)  # the same sink records again
    for i in range(3):
        sink.write(result(i))
    sink.close()
    assert events[-1] == ("recorded", f"saved 3 frame(s) to {tmp_path / 'b.mp4'}")


def test_failure_while_writing_stops_the_recording_and_closes_the_writer(tmp_path: Path, monkeypatch) -> None:
    events: list[tuple[str, str]] = []
    closed: list[bool] = []
    sink = RecorderSink(lambda k, m: events.append((k, m)))
    sink.request_start(tmp_path / "c.mp4", 25.0)
    sink.write(result(0))

    def failing_write(self, r) -> None:
        raise VisionAppError("cannot write frame: disk is full")
    real_close = VideoWriterSink.close
    monkeypatch.setattr(VideoWriterSink, "write", failing_write)
    monkeypatch.setattr(VideoWriterSink, "close", lambda self: (closed.append(True), real_close(self)))
    sink.write(result(1))
    assert events[-1][0] == "error" and "disk is full" in events[-1][1]
    assert closed == [True] and not sink.recording
