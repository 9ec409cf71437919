"""The thread → GUI bridge: one queued wake-up at a time, always delivering the newest result.

Worker threads call `FrameBridge.publish(result)`. The QImage is built there (an owned copy, so the
numpy buffer may be reused or freed afterwards), the newest item replaces any undelivered one, and a
wake-up is queued only when none is in flight: a slow GUI never has a backlog of stale frames.
The GUI thread receives `frame_ready(ViewItem)` and only makes the QPixmap and paints.

Rare events (status changes, access decisions, monitor events) go through `events`: every one is
delivered, in order; none of them may be coalesced away.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QObject
from PySide6.QtGui import QImage

from vision_app.types import FrameResult

from ui.notify import CallQueue, Listeners

log = logging.getLogger(__name__)


def to_qimage(img: np.ndarray) -> QImage:
    """An OWNED QImage of a BGR uint8 (H, W, 3) array (or grey (H, W)).

    QImage(buffer, ...) only wraps the numpy memory; `.copy()` detaches it so the QImage stays valid
    and unchanged when the array is overwritten or garbage-collected.
    """
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"to_qimage: expected uint8 (H, W, 3) BGR or (H, W) grey, got {img.dtype} "
                         f"{img.shape}")
    arr = np.ascontiguousarray(img)
    h, w = arr.shape[:2]
    fmt = QImage.Format.Format_BGR888 if arr.ndim == 3 else QImage.Format.Format_Grayscale8
    return QImage(arr.data, w, h, int(arr.strides[0]), fmt).copy()


@dataclass(frozen=True)
class ViewItem:
    """What the GUI gets per frame: the pipeline's result, its image as an owned QImage, and an optional
    extra payload built on the worker thread (e.g. the kiosk's guidance text)."""

    result: FrameResult
    image: QImage
    extra: Any = None


class FrameBridge(QObject):
    """Lives in the GUI thread; publish() and post_event() may be called from any thread.

    The wake-up from a worker is one byte on a socket pair, so workers make no Qt call but the QImage
    (see ui/notify.py). `frame_ready(ViewItem)` and `events(payload)` listeners run in the GUI thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.frame_ready = Listeners()   # ViewItem
        self.events = Listeners()        # each posted payload, in order (named so as not to hide QObject.event)
        self._lock = threading.Lock()
        self._latest: ViewItem | None = None
        self.published = 0     # frames handed in by the worker
        self.delivered = 0     # frames the GUI received
        self.coalesced = 0     # frames replaced by a newer one before the GUI took them
        self._calls = CallQueue(self)
        self._calls.waker.woken.connect(self._deliver)

    def publish(self, result: FrameResult, extra: Any = None) -> None:
        """Worker thread: convert result.image and hand over the newest item."""
        item = ViewItem(result, to_qimage(result.image), extra)
        with self._lock:
            self.published += 1
            if self._latest is not None:
                self.coalesced += 1
            self._latest = item
        self._calls.waker.wake()  # no-op while a wake-up is already in flight

    def post_event(self, payload: Any) -> None:
        """Any thread: deliver payload to `event` listeners in the GUI thread (in order, never dropped)."""
        self._calls.call_soon(self.events.emit, payload)

    def _deliver(self) -> None:
        with self._lock:
            item, self._latest = self._latest, None
        if item is not None:
            self.delivered += 1
            self.frame_ready.emit(item)
