"""LatestSlot and the capture thread under real threads: newest wins, drops counted, no deadlock on stop,
reconnect with backoff, resolution changes, paced and offline file modes."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vision_app.capture import CaptureThread, LatestSlot
from vision_app.errors import SourceError
from vision_app.sources import open_source
from vision_app.types import Frame


def test_slot_newest_wins_and_counts_drops() -> None:
    slot: LatestSlot[int] = LatestSlot(drop=True)
    for i in range(5):
        assert slot.put(i)
    assert slot.dropped == 4
    assert slot.get(timeout=0.1) == 4
    assert slot.get(timeout=0.05) is None


def test_slot_under_threads_producer_faster_than_consumer() -> None:
    slot: LatestSlot[int] = LatestSlot(drop=True)
    got: list[int] = []
    n = 2000

    def produce() -> None:
        for i in range(n):
            slot.put(i)
        slot.close()

    def consume() -> None:
        while True:
            item = slot.get(timeout=1.0)
            if item is None:
                return
            got.append(item)
            time.sleep(0.0005)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert got == sorted(got) and got[-1] == n - 1          # in order, and the newest always arrives
    assert len(got) + slot.dropped == n                     # every frame either delivered or counted


def test_slot_blocking_mode_delivers_everything_and_close_unblocks_producer() -> None:
    slot: LatestSlot[int] = LatestSlot(drop=False)
    got: list[int] = []
    t = threading.Thread(target=lambda: [got.append(x) for x in iter(lambda: slot.get(1.0), None)])
    t.start()
    for i in range(300):
        assert slot.put(i, timeout=1.0)
    slot.close()
    t.join(3)
    assert got == list(range(300)) and slot.dropped == 0
    blocked = LatestSlot[int](drop=False)
    blocked.put(1)
    res: list[bool] = []
    p = threading.Thread(target=lambda: res.append(blocked.put(2)))
    p.start()
    time.sleep(0.05)
    blocked.close()
    p.join(1)
    assert res == [False] and not p.is_alive()


def collect(slot: LatestSlot[Frame], cap: CaptureThread, delay: float = 0.0, timeout: float = 20) -> list[Frame]:
    frames: list[Frame] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        f = slot.get(timeout=0.2)
        if f is None:
            if slot.closed:
                break
            continue
        frames.append(f)
        if delay:
            time.sleep(delay)
    cap.join(2)
    return frames


def test_offline_file_mode_delivers_every_frame_in_order(media_dir: Path) -> None:
    src = open_source(str(media_dir / "video/bikes_640x272.mp4"))
    slot: LatestSlot[Frame] = LatestSlot(drop=False)
    cap = CaptureThread(src, slot, mode="offline")
    cap.start()
    frames = collect(slot, cap, delay=0.001)
    assert [f.index for f in frames] == list(range(250)) and slot.dropped == 0
    assert all(f.source_id.endswith("bikes_640x272.mp4") for f in frames)
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))
    assert cap.ended.is_set() and cap.error is None


def test_paced_file_mode_runs_at_file_fps_and_drops_for_a_slow_consumer(media_dir: Path) -> None:
    src = open_source(str(media_dir / "video/carphone_face_176x144.mp4"))  # 120 frames at 30 fps = 4 s
    slot: LatestSlot[Frame] = LatestSlot(drop=True)
    cap = CaptureThread(src, slot, mode="paced", max_frames=45)
    t0 = time.monotonic()
    cap.start()
    frames = collect(slot, cap, delay=0.1)  # consumer at ~10 fps
    elapsed = time.monotonic() - t0
    assert elapsed >= 44 / 30 * 0.9  # paced, not as fast as decoding allows
    assert slot.dropped > 0 and len(frames) + slot.dropped == 45
    assert frames[-1].index == 44  # the newest frame still arrives


class FlakySource:
    """A scripted live source: delivers frames, fails for a while, comes back at another resolution."""

    live = True
    fps = None
    frame_count = None
    source_id = "flaky:1"

    def __init__(self) -> None:
        self.opens = 0
        self.reads = 0
        self.script = [(64, 48)] * 5 + [None] + [(80, 60)] * 5  # None = the stream dies

    def open(self) -> None:
        self.opens += 1
        if self.opens in (2, 3):  # the first two reconnect attempts fail
            raise SourceError("flaky:1 connection refused")

    def read(self):
        if self.reads >= len(self.script):
            raise SourceError("flaky:1 gone for good")
        step = self.script[self.reads]
        self.reads += 1
        if step is None:
            return None
        w, h = step
        return np.full((h, w, 3), self.reads, np.uint8)

    def close(self) -> None:
        pass


def test_live_source_reconnects_with_backoff_and_survives_resolution_change() -> None:
    src = FlakySource()
    slot: LatestSlot[Frame] = LatestSlot(drop=True)
    events: list[tuple[str, str]] = []
    cap = CaptureThread(src, slot, reconnect_initial_s=0.01, reconnect_max_s=0.05, reconnect_attempts=6,
                        on_status=lambda k, m: events.append((k, m)))
    cap.start()
    frames = collect(slot, cap, delay=0.002, timeout=10)
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["source_lost", "reconnected"]
    assert cap.stats.reconnects >= 1 and src.opens >= 4  # two failed attempts before success
    assert cap.stats.resolution_changes == 1
    assert {f.image.shape for f in frames} <= {(48, 64, 3), (60, 80, 3)}
    assert (60, 80, 3) in {f.image.shape for f in frames}
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))  # indices keep increasing across the reconnect
    # the source finally dies for good: reconnecting gives up after the attempt limit and says so
    assert cap.error is not None and kinds[-1] == "error"


def test_stop_ends_a_live_capture_quickly() -> None:
    src = open_source("test:160x120@1000")
    slot: LatestSlot[Frame] = LatestSlot(drop=True)
    cap = CaptureThread(src, slot)
    cap.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    cap.stop()
    cap.join(1.0)
    assert not cap.is_alive() and time.monotonic() - t0 < 1.0
    assert slot.put_count > 10 and slot.dropped > 0
