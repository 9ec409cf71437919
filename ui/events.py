"""The monitor window's event list: person entered, unknown face (vision_app.monitoring.face_events'
EventDetector) plus source lost / reconnected, which come from the capture thread's status callbacks.

`EventSink` runs the detector on the runner thread and builds each event's thumbnail there (owned QImage).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np
from numpy.typing import NDArray
from PySide6.QtGui import QImage

from vision_app.monitoring.face_events import EventDetector
from vision_app.types import FrameResult

from ui.bridge import to_qimage

THUMB_SIZE = (96, 72)  # (w, h) pixels


@dataclass(frozen=True)
class MonitorEvent:
    wall_time: float                           # time.time()
    source: str
    kind: str                                  # person_entered | unknown_face | source_lost | reconnected | error
    text: str
    thumbnail: QImage | None = None


def thumbnail(image: NDArray[np.uint8], box: Any = None, size: tuple[int, int] = THUMB_SIZE) -> QImage:
    """An owned QImage of `size` (w, h) showing image (BGR uint8 (H, W, 3)), cropped to box (xyxy,
    source pixels) grown by 25 % when given, scaled to fit and centred on a dark background (a fixed
    size keeps the event list's text aligned)."""
    h, w = image.shape[:2]
    crop = image
    if box is not None:
        x1, y1, x2, y2 = box
        gx, gy = (x2 - x1) * 0.25, (y2 - y1) * 0.25
        xa, ya = int(max(0, x1 - gx)), int(max(0, y1 - gy))
        xb, yb = int(min(w, x2 + gx)), int(min(h, y2 + gy))
        if xb - xa >= 2 and yb - ya >= 2:
            crop = image[ya:yb, xa:xb]
    tw, th = size
    scale = min(tw / crop.shape[1], th / crop.shape[0])
    cw, ch = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
    canvas = np.full((th, tw, 3), 24, np.uint8)
    x0, y0 = (tw - cw) // 2, (th - ch) // 2
    canvas[y0:y0 + ch, x0:x0 + cw] = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA)
    return to_qimage(canvas)


class EventSink:
    """Runner-thread sink: detects events and posts MonitorEvents (with thumbnails) through `post`.
    status(kind, message) turns capture status into events with the last frame as thumbnail."""

    def __init__(self, source: str, detector: EventDetector, post: Callable[[Any], None]) -> None:
        self.source = source
        self.detector = detector
        self.post = post
        self._last_image: NDArray[np.uint8] | None = None
        self._lock = threading.Lock()

    def write(self, result: FrameResult) -> None:
        with self._lock:
            self._last_image = result.image
        for f in self.detector.update(result):  # crops of the clean frame, without the drawn labels
            self.post(MonitorEvent(time.time(), self.source, f.kind, f.text, thumbnail(result.frame.image, f.box)))

    def status(self, kind: str, message: str) -> None:
        if kind not in ("source_lost", "reconnected", "error", "source_error"):
            return
        with self._lock:
            last = self._last_image
        thumb = thumbnail(last) if last is not None else None
        self.post(MonitorEvent(time.time(), self.source, kind, message, thumb))

    def close(self) -> None:
        pass
