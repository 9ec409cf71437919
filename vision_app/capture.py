"""Capture thread and LatestSlot: the hand-off between a source and the inference worker.

Live sources: the slot keeps only the newest frame (drop oldest, count the drops), and a source that
stops delivering is reopened with exponential backoff. Video files: every frame in order (the capture
thread waits for the worker) or paced at the file's fps with drops, like a camera.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from vision_app.errors import SourceError
from vision_app.sources import FrameSource, wait_until
from vision_app.types import Frame

log = logging.getLogger(__name__)
T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item hand-off. put() replaces an unread item (counted as a drop) when drop=True, or waits
    for the reader when drop=False. get() waits for a new item; after close() it returns None once the
    slot is empty, so the reader can drain the last item and stop.

    cond: a condition shared with other slots (a worker pool waits on all its sources' slots at once);
    default: the slot's own."""

    def __init__(self, drop: bool = True, cond: threading.Condition | None = None) -> None:
        self.drop = drop
        self._cond = cond if cond is not None else threading.Condition()
        self._item: T | None = None
        self._has = False
        self._closed = False
        self.dropped = 0
        self.put_count = 0

    @property
    def cond(self) -> threading.Condition:
        return self._cond

    @property
    def ready(self) -> bool:
        """An unread item is waiting (hold `cond` to act on the answer)."""
        return self._has

    def get_nowait(self) -> T | None:
        """The unread item, or None at once when there is none."""
        with self._cond:
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            self._cond.notify_all()
            return item

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Hand over item. Returns False if the slot is closed (or, with drop=False, the wait timed out)."""
        with self._cond:
            if not self.drop:
                if not self._cond.wait_for(lambda: not self._has or self._closed, timeout):
                    return False
            if self._closed:
                return False
            if self._has:
                self.dropped += 1
            self._item, self._has = item, True
            self.put_count += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item, or None on timeout or when closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has or self._closed, timeout):
                return None
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def drained(self) -> bool:
        """Closed and nothing left to read."""
        with self._cond:
            return self._closed and not self._has


@dataclass
class CaptureStats:
    read: int = 0            # frames read from the source
    reconnects: int = 0      # successful reopenings of a live source
    failures: int = 0        # times the source was lost
    resolution_changes: int = 0


StatusCallback = Callable[[str, str], None]  # (kind, message): kind in source_lost/reconnected/eof/error


class CaptureThread(threading.Thread):
    """Reads a FrameSource into a LatestSlot until end of stream or stop().

    mode "offline" (files): every frame, waiting for the worker. mode "paced": files are released at
    their fps and frames the worker has not taken are dropped, like a camera. Live sources always drop.
    """

    def __init__(self, source: FrameSource, slot: LatestSlot[Frame], *, mode: str = "offline",
                 reconnect_initial_s: float = 0.5, reconnect_max_s: float = 10.0,
                 reconnect_attempts: int = 0, max_frames: int = 0,
                 on_status: StatusCallback | None = None) -> None:
        super().__init__(name=f"capture[{source.source_id}]", daemon=True)
        self.source = source
        self.slot = slot
        self.mode = mode
        self.backoff = (reconnect_initial_s, reconnect_max_s)
        self.reconnect_attempts = reconnect_attempts
        self.max_frames = max_frames
        self.on_status = on_status or (lambda kind, msg: None)
        self.stats = CaptureStats()
        self.error: str | None = None
        self.ended = threading.Event()  # set when the source reached its end (or failed for good)
        self._stop_event = threading.Event()
        self._index = 0
        self._attempts = 0                # reconnect attempts since the last frame read
        self._delay = reconnect_initial_s
        self._shape: tuple[int, ...] | None = None

    def stop(self) -> None:
        self._stop_event.set()
        self.slot.close()

    def _emit(self, kind: str, msg: str) -> None:
        level = logging.INFO if kind in ("eof", "reconnected") else logging.WARNING
        log.log(level, "%s: %s", self.source.source_id, msg)
        try:
            self.on_status(kind, msg)
        except Exception:  # a broken listener must not kill capture
            log.exception("status callback failed")

    def _reconnect(self) -> bool:
        """Reopen the source with exponential backoff. The delay and the attempt count carry over until a
        frame is actually read, so a source that opens but never delivers still backs off and gives up."""
        while not self._stop_event.is_set():
            self._attempts += 1
            if self.reconnect_attempts and self._attempts > self.reconnect_attempts:
                return False
            if self._stop_event.wait(self._delay):
                return False
            self._delay = min(self._delay * 2, self.backoff[1])
            try:
                self.source.open()
            except SourceError as exc:
                log.info("reconnect attempt %d to %s failed: %s", self._attempts, self.source.source_id, exc)
                continue
            self.stats.reconnects += 1
            self._emit("reconnected", f"source reconnected (attempt {self._attempts})")
            return True
        return False

    def run(self) -> None:
        live = self.source.live
        drop = live or self.mode == "paced"
        fps = self.source.fps or 0.0
        pace = (not live) and self.mode == "paced" and fps > 0
        t0 = time.monotonic()
        try:
            while not self._stop_event.is_set():
                if self.max_frames and self._index >= self.max_frames:
                    break
                err: str | None
                try:
                    img = self.source.read()
                except SourceError as exc:
                    img, err = None, str(exc)
                else:
                    err = None
                if img is None:
                    if not live:
                        if err:
                            self.error = err
                            self._emit("error", err)
                        else:
                            self._emit("eof", f"end of stream after {self.stats.read} frame(s)")
                        break
                    self.stats.failures += 1
                    self._emit("source_lost", f"source lost ({err or 'no frame'}); reconnecting")
                    self.source.close()
                    if not self._reconnect():
                        if not self._stop_event.is_set():
                            self.error = "source lost and reconnecting gave up"
                            self._emit("error", self.error)
                        break
                    continue
                if self._shape is not None and img.shape != self._shape:
                    self.stats.resolution_changes += 1
                    log.info("%s: resolution changed from %s to %s", self.source.source_id,
                             self._shape[1::-1], img.shape[1::-1])
                self._shape = img.shape
                self._attempts, self._delay = 0, self.backoff[0]
                if pace:
                    wait_until(t0 + self._index / fps)
                frame = Frame(img, self._index, time.monotonic(), self.source.source_id)
                self._index += 1
                self.stats.read += 1
                if drop:
                    if not self.slot.put(frame):
                        break
                else:
                    while not self.slot.put(frame, timeout=0.2):
                        if self._stop_event.is_set() or self.slot.closed:
                            break
                    if self.slot.closed:
                        break
        except Exception as exc:  # never die silently: report and end the stream
            log.exception("capture thread for %s crashed", self.source.source_id)
            self.error = f"capture crashed: {exc}"
            self._emit("error", self.error)
        finally:
            self.source.close()
            self.ended.set()
            self.slot.close()
