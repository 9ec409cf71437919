"""The thread → GUI bridge: owned QImages, newest result only, one queued signal at a time."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from vision_app.types import Frame, FrameResult
from ui.bridge import FrameBridge, to_qimage
from ui.video_view import fit_rect


def _result(img: np.ndarray, index: int) -> FrameResult:
    return FrameResult(frame=Frame(img, index, 0.0, "t"), image=img)


def test_qimage_is_not_a_view_into_a_buffer_that_is_later_overwritten(as_array):
    buf = np.zeros((48, 64, 3), np.uint8)
    buf[..., 2] = 200  # red in BGR
    img = to_qimage(buf)
    buf[:] = 7  # the capture loop reuses its buffer
    del buf
    got = as_array(img)
    assert got.shape == (48, 64, 3) and (got[..., 2] == 200).all() and (got[..., :2] == 0).all()


def test_bridge_image_survives_the_worker_reusing_its_array(qtbot, as_array):
    bridge = FrameBridge()
    got = []
    bridge.frame_ready.connect(got.append)
    shared = np.full((20, 30, 3), 50, np.uint8)
    t = threading.Thread(target=bridge.publish, args=(_result(shared, 0),))
    t.start()
    t.join()
    shared[:] = 255  # overwritten before the GUI thread gets to it
    qtbot.waitUntil(lambda: len(got) == 1, timeout=2000)
    assert (as_array(got[0].image) == 50).all()


def test_slow_gui_gets_only_the_newest_result(qtbot):
    bridge = FrameBridge()
    got = []
    bridge.frame_ready.connect(got.append)
    img = np.zeros((8, 8, 3), np.uint8)

    def burst() -> None:  # 50 results while the GUI thread is busy (not processing events)
        for i in range(50):
            bridge.publish(_result(img, i))

    t = threading.Thread(target=burst)
    t.start()
    t.join()
    qtbot.wait(50)
    assert [item.result.frame.index for item in got] == [49]
    assert (bridge.published, bridge.delivered, bridge.coalesced) == (50, 1, 49)
    bridge.publish(_result(img, 50))  # the next one goes through again
    qtbot.waitUntil(lambda: len(got) == 2, timeout=1000)


def test_events_are_never_coalesced(qtbot):
    bridge = FrameBridge()
    got = []
    bridge.events.connect(got.append)
    t = threading.Thread(target=lambda: [bridge.post_event(i) for i in range(20)])
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(got) == 20, timeout=2000)
    assert got == list(range(20))


@pytest.mark.parametrize("image, area, expected", [
    ((640, 480), (640, 480), (0, 0, 640, 480)),
    ((640, 480), (800, 480), (80, 0, 640, 480)),     # pillarbox
    ((640, 272), (640, 480), (0, 104, 640, 272)),    # letterbox
    ((100, 100), (300, 200), (50, 0, 200, 200)),
    ((0, 100), (300, 200), (0, 0, 0, 0)),
])
def test_fit_rect_keeps_the_aspect_ratio(image, area, expected):
    from PySide6.QtCore import QSize

    r = fit_rect(QSize(*image), QSize(*area))
    assert (r.x(), r.y(), r.width(), r.height()) == expected


def test_two_workers_publishing_flat_out_while_the_gui_delivers(qtbot):
    """Every frame is either shown or counted as replaced by a newer one, and no event is lost, with
    two threads publishing as fast as they can (and the process survives it)."""
    import time

    bridge = FrameBridge()
    frames, events = [], []
    bridge.frame_ready.connect(lambda item: frames.append(item.result.frame.index))
    bridge.events.connect(events.append)
    stop = threading.Event()
    img = np.zeros((36, 64, 3), np.uint8)

    def work(offset: int) -> None:
        i = 0
        while not stop.is_set():
            bridge.publish(_result(img, offset + i))
            if i % 25 == 0:
                bridge.post_event((offset, i))
            i += 1

    workers = [threading.Thread(target=work, args=(k * 10**9,)) for k in range(2)]
    for w in workers:
        w.start()
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        qtbot.wait(20)
    stop.set()
    for w in workers:
        w.join()
    qtbot.wait(50)
    assert len(frames) > 10 and bridge.delivered == len(frames)
    assert bridge.published == bridge.delivered + bridge.coalesced
    for k in range(2):  # each worker's events arrive complete and in order
        mine = [i for off, i in events if off == k * 10**9]
        assert mine == list(range(0, 25 * len(mine), 25))


def test_listeners_hold_bound_methods_weakly_and_survive_a_failing_listener():
    import gc

    from ui.notify import Listeners

    class Receiver:
        def __init__(self) -> None:
            self.got: list[int] = []

        def on(self, v: int) -> None:
            self.got.append(v)

    sig, seen = Listeners(), []
    r = Receiver()
    sig.connect(r.on)
    sig.connect(lambda v: 1 / 0)  # logged, does not stop the others
    sig.connect(seen.append)
    sig.emit(1)
    assert r.got == [1] and seen == [1]
    del r
    gc.collect()
    sig.emit(2)  # the receiver is gone: no error, others still called
    assert seen == [1, 2]
