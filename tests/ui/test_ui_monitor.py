"""Monitoring mode: a tile per source, events with thumbnails, click to enlarge, clean shutdown."""
from __future__ import annotations

import numpy as np
import pytest

from vision_app.monitoring.face_events import EventDetector
from vision_app.types import Detections, Frame, FrameResult
from ui.monitor import MonitorWindow


def test_two_file_sources_show_two_live_tiles_and_events(qtbot, ui_ctx, media_dir):
    sources = [str(media_dir / "video" / "bikes_640x272.mp4"), str(media_dir / "video" / "carphone_face_176x144.mp4")]
    win = MonitorWindow(ui_ctx, sources, ("detect",))
    qtbot.addWidget(win)
    win.show()
    win.start()
    assert len(win.tiles) == 2
    qtbot.waitUntil(lambda: all(t.view.frames_shown >= 3 for t in win.tiles), timeout=20000)
    assert [t.view.shown_image().width() for t in win.tiles] == [640, 176]
    qtbot.waitUntil(lambda: "person_entered" in win.event_kinds(), timeout=20000)
    assert not win.events.item(0).icon().isNull()  # a snapshot thumbnail

    win.tiles[1].clicked.emit(win.tiles[1])  # what a click does
    assert not win.tiles[0].isVisible() and win.tiles[1].isVisible()
    win.toggle_enlarged(win.tiles[1])
    assert all(t.isVisible() for t in win.tiles)

    threads = [t for f in win.feeds for t in f.session.threads()]
    win.close()
    assert threads and not any(t.is_alive() for t in threads)


def test_a_missing_source_is_reported_in_the_window(qtbot, ui_ctx, tmp_path):
    win = MonitorWindow(ui_ctx, ["test:160x120@30", str(tmp_path / "gone.mp4")], ("passthrough",))
    qtbot.addWidget(win)
    win.start()
    qtbot.waitUntil(lambda: win.tiles[1].state == "error", timeout=5000)
    assert "source_error" in win.event_kinds() and "not found" in win.tiles[1].view.placeholder
    qtbot.waitUntil(lambda: win.tiles[0].view.frames_shown >= 2, timeout=5000)
    win.close()


def test_more_than_four_sources_is_an_error(ui_ctx):
    from vision_app.errors import ConfigError

    with pytest.raises(ConfigError, match="1 to 4"):
        MonitorWindow(ui_ctx, ["test:"] * 5)


def _person(index: int, tid: int) -> FrameResult:
    img = np.zeros((100, 100, 3), np.uint8)
    dets = Detections(np.array([[10, 10, 50, 90]], np.float32), np.array([0.9], np.float32),
                      np.array([0], np.int32), np.array([tid], np.int32), ("person",))
    return FrameResult(frame=Frame(img, index, float(index), "s"), image=img, detections=dets)


def test_a_track_is_announced_once_after_min_frames():
    det = EventDetector(cooldown_s=10, min_frames=3)
    found = [det.update(_person(i, 7)) for i in range(6)]
    assert [len(f) for f in found] == [0, 0, 1, 0, 0, 0]
    assert found[2][0].kind == "person_entered" and "#7" in found[2][0].text
    assert len(det.update(_person(6, 8))) == 0  # a new track waits for its own min_frames
