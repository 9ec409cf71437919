"""Main window: live frames, detection toggled on a real video, start/stop/start, errors in the window."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from ui.controls import task_available
from ui.main_window import NO_CAMERA, MainWindow

BIKES = "video/bikes_640x272.mp4"


@pytest.fixture
def window(qtbot, ui_ctx):
    win = MainWindow(ui_ctx)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    assert not any(t.is_alive() for t in win.feed.session.threads())


def _start(qtbot, win: MainWindow, source: str, frames: int = 3) -> None:
    win.source_box.setCurrentText(source)
    win.start()
    qtbot.waitUntil(lambda: win.view.frames_shown >= frames, timeout=10000)


def test_window_starts_with_test_source_and_shows_frames(qtbot, window):
    _start(qtbot, window, "test:320x240@30")
    img = window.view.shown_image()
    assert (img.width(), img.height()) == (320, 240)
    qtbot.waitUntil(lambda: window.lbl_engine.text().startswith("engine:"), timeout=2000)
    first = window.feed.last.result.frame.index
    qtbot.waitUntil(lambda: window.feed.last.result.frame.index > first, timeout=3000)
    window.refresh_stats()
    assert "fps" in window.lbl_fps.text() and "dropped" in window.lbl_dropped.text()


@pytest.mark.skipif(not task_available("detect"), reason="detection pipeline not in this build yet")
def test_toggling_detection_on_a_video_draws_boxes(qtbot, window, media_dir, as_array):
    _start(qtbot, window, str(media_dir / BIKES))
    assert window.feed.last.result.detections is None
    window.controls.set_task("detect", True)  # debounced → rebuilt on the builder thread → swapped in

    def boxes_shown() -> bool:
        item = window.feed.last
        return item is not None and item.result.detections is not None and len(item.result.detections) > 0

    qtbot.waitUntil(boxes_shown, timeout=15000)
    item = window.feed.last
    shown = as_array(window.view.shown_image())
    raw = item.result.frame.image
    assert shown.shape == raw.shape
    x1, y1, x2, y2 = (int(round(v)) for v in item.result.detections.xyxy[0])
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, raw.shape[1] - 1), min(y2, raw.shape[0] - 1)
    border = np.concatenate([shown[y1:y2 + 1, x1], shown[y1:y2 + 1, x2], shown[y1, x1:x2 + 1]]).astype(int)
    raw_border = np.concatenate([raw[y1:y2 + 1, x1], raw[y1:y2 + 1, x2], raw[y1, x1:x2 + 1]]).astype(int)
    # the box outline is drawn on the shown image and only there (the frame itself is untouched)
    assert np.abs(border - raw_border).sum(axis=1).mean() > 30
    assert "detect" in item.result.timings
    qtbot.waitUntil(lambda: window.lbl_engine.text().startswith("engine: onnxruntime"), timeout=2000)


def test_start_stop_start_joins_every_thread(qtbot, window):
    _start(qtbot, window, "test:160x120@60")
    first_threads = window.feed.session.threads()
    assert any(t.is_alive() for t in first_threads)
    assert window.feed.session.stop(timeout=1.0)
    assert not any(t.is_alive() for t in first_threads)
    shown = window.view.frames_shown
    _start(qtbot, window, "test:160x120@60", frames=shown + 3)
    second = window.feed.session.threads()
    assert set(second).isdisjoint(first_threads) and all(t.is_alive() for t in second if "runner" in t.name)
    window.stop()
    assert not any(t.is_alive() for t in second)
    assert window.act_start.isEnabled() and not window.act_stop.isEnabled()


def test_missing_file_and_missing_camera_are_shown_in_the_window(qtbot, window, tmp_path):
    window.source_box.setCurrentText(str(tmp_path / "nope.mp4"))
    window.start()
    qtbot.waitUntil(lambda: "not found" in window.messages.text(), timeout=5000)
    window.source_box.setCurrentText("camera:9")
    window.start()
    qtbot.waitUntil(lambda: window.view.placeholder == NO_CAMERA, timeout=10000)
    assert window.messages.action.isVisible()  # "Use test pattern"
    window.messages.action.click()
    qtbot.waitUntil(lambda: window.view.frames_shown >= 1, timeout=5000)
    assert window.source() == "test:"


@pytest.mark.skipif(not task_available("detect"), reason="detection pipeline not in this build yet")
def test_model_missing_from_the_model_folder_is_shown(qtbot, window, tmp_path):
    from vision_app.models import ModelStore

    empty = ModelStore(tmp_path)  # the manifest without any files
    window.feed.session._store_factory = lambda: empty
    window.controls.set_task("detect", True)
    window.source_box.setCurrentText("test:160x120@30")
    window.start()
    qtbot.waitUntil(lambda: "missing" in window.messages.text(), timeout=5000)
    assert window.messages.level == "error" and not window.feed.session.running


def test_snapshot_and_recording_are_written_off_the_gui_thread(qtbot, window, ui_ctx):
    import cv2

    _start(qtbot, window, "test:160x120@30")
    writer_threads: list[str] = []
    rec = window.feed.session.recorder
    original = rec.write

    def spy(result):
        if rec._writer is not None:
            writer_threads.append(threading.current_thread().name)
        original(result)

    rec.write = spy
    window.act_record.setChecked(True)
    shown = window.view.frames_shown
    qtbot.waitUntil(lambda: window.view.frames_shown > shown + 10, timeout=5000)
    window.act_record.setChecked(False)
    qtbot.waitUntil(lambda: not rec.recording, timeout=3000)  # closed by the runner at its next frame
    window.snapshot()
    folder = Path(ui_ctx.config.ui.capture_dir)
    qtbot.waitUntil(lambda: len(list(folder.glob("snapshot-*.png"))) == 1, timeout=3000)
    qtbot.waitUntil(lambda: "saved" in window.statusBar().currentMessage(), timeout=3000)
    videos = list(folder.glob("record-*.mp4"))
    assert len(videos) == 1
    cap = cv2.VideoCapture(str(videos[0]))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert n >= 10
    assert writer_threads and all(name.startswith("runner") for name in writer_threads)


def test_settings_persist_between_runs(qtbot, ui_ctx):
    win = MainWindow(ui_ctx)
    qtbot.addWidget(win)
    win.controls.det_conf.setValue(0.4)
    win.controls.seg_overlay.setCurrentText("blur")
    win.controls.set_task("segment", True)
    win.source_box.setCurrentText("test:")
    win._remember_source("test:")
    win.close()
    again = MainWindow(ui_ctx)
    qtbot.addWidget(again)
    assert again.controls.det_conf.value() == pytest.approx(0.4)
    assert again.controls.seg_overlay.currentText() == "blur"
    assert ("segment" in again.controls.tasks()) == task_available("segment")
    assert again.source() == "test:"
    again.close()
