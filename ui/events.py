"""Monitoring events from pipeline results: person entered, unknown face (plus source lost / reconnected,
which come from the capture thread's status callbacks).

`EventDetector` is plain Python and sees one source's results in order. It prefers the face stage's
per-track observations (vision_app.face.observation), falls back to identities on result.faces, and
without a face pipeline announces tracked 'person' detections. A track must be seen on `min_frames`
frames before it is announced (no events from one-frame flickers); the same person is announced again
only after `cooldown_s` seconds.

`EventSink` runs it on the runner thread and builds each event's thumbnail there (owned QImage).
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

from vision_app.types import FrameResult

from ui.bridge import to_qimage

THUMB_SIZE = (96, 72)  # (w, h) pixels


@dataclass(frozen=True)
class Found:
    kind: str                                  # person_entered | unknown_face
    text: str
    box: tuple[float, float, float, float] | None


@dataclass(frozen=True)
class MonitorEvent:
    wall_time: float                           # time.time()
    source: str
    kind: str                                  # person_entered | unknown_face | source_lost | reconnected | error
    text: str
    thumbnail: QImage | None = None


def _observations(result: FrameResult) -> tuple[Any, ...]:
    try:
        from vision_app.face.observation import observations
    except ImportError:
        return ()
    return observations(result.extras)


class EventDetector:
    def __init__(self, cooldown_s: float, min_frames: int = 3) -> None:
        self.cooldown_s = cooldown_s
        self.min_frames = max(1, min_frames)
        self._seen: dict[Any, int] = {}            # track key → frames seen
        self._last_seen: dict[Any, float] = {}     # track key → last frame time
        self._announced: dict[Any, str] = {}       # track key → what was announced for it
        self._last_named: dict[str, float] = {}    # name → when last announced

    def _track(self, key: Any, now: float) -> int:
        self._seen[key] = self._seen.get(key, 0) + 1
        self._last_seen[key] = now
        return self._seen[key]

    def _prune(self, now: float) -> None:
        stale = [k for k, t in self._last_seen.items() if now - t > max(self.cooldown_s, 2.0)]
        for k in stale:
            self._seen.pop(k, None)
            self._last_seen.pop(k, None)
            self._announced.pop(k, None)

    def _named(self, key: Any, name: str, box: Any, now: float, out: list[Found]) -> None:
        if self._announced.get(key) == name:
            return
        self._announced[key] = name
        if now - self._last_named.get(name, -1e18) >= self.cooldown_s:
            self._last_named[name] = now
            out.append(Found("person_entered", f"person entered: {name}", box))

    def _once(self, key: Any, kind: str, text: str, box: Any, out: list[Found]) -> None:
        if key not in self._announced:
            self._announced[key] = ""
            out.append(Found(kind, text, box))

    def update(self, result: FrameResult) -> list[Found]:
        now = result.frame.timestamp
        out: list[Found] = []
        obs = _observations(result)
        if obs:
            for o in obs:
                key = ("track", o.track_id)
                if self._track(key, now) < self.min_frames:
                    continue
                if o.identity:
                    self._named(key, o.identity, o.xyxy, now, out)
                else:
                    self._once(key, "unknown_face", "unknown face", o.xyxy, out)
        elif result.faces is not None and result.faces.identity is not None:
            faces, names, tids = result.faces, result.faces.identity, result.faces.tracker_id
            for i, name in enumerate(names):
                tid = None if tids is None else int(tids[i])
                key = ("face", tid if tid is not None else name or f"unknown{i}")
                if self._track(key, now) < self.min_frames:
                    continue
                box = tuple(float(v) for v in faces.xyxy[i])
                if name:
                    self._named(key, name, box, now, out)
                else:
                    self._once(key, "unknown_face", "unknown face", box, out)
        elif result.detections is not None and result.detections.tracker_id is not None:
            dets, track_ids = result.detections, result.detections.tracker_id
            for i in range(len(dets)):
                tid = int(track_ids[i])
                if dets.label(i) != "person" or tid < 0:
                    continue
                key = ("person", tid)
                if self._track(key, now) >= self.min_frames:
                    self._once(key, "person_entered", f"person entered (track #{tid})",
                               tuple(float(v) for v in dets.xyxy[i]), out)
        self._prune(now)
        return out


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
