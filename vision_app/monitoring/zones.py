"""Zone geometry with supervision's semantics: PolygonZone (is the anchor point inside?) and LineZone
(did a track's anchors move from one side of the line to the other?).

Coordinates are source-frame pixels (x right, y down). Anchors are points of a detection box:
"bottom_center" (the default for polygons: where a person or a car touches the ground) and the four
corners (the default for lines) and so on.
"""
from __future__ import annotations

from collections import deque
from typing import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.types import Detections

# anchor name → (fraction of the box width, fraction of its height) from its top-left corner
_ANCHOR_FRACTIONS = {
    "center": (0.5, 0.5), "top_left": (0.0, 0.0), "top_center": (0.5, 0.0), "top_right": (1.0, 0.0),
    "center_left": (0.0, 0.5), "center_right": (1.0, 0.5), "bottom_left": (0.0, 1.0),
    "bottom_center": (0.5, 1.0), "bottom_right": (1.0, 1.0),
}


def anchor_points(xyxy: NDArray[np.float32], anchor: str) -> NDArray[np.float64]:
    """(N, 2) anchor points (x, y) of (N, 4) boxes."""
    fx, fy = _ANCHOR_FRACTIONS[anchor]
    b = xyxy.astype(np.float64)
    return np.stack([b[:, 0] + fx * (b[:, 2] - b[:, 0]), b[:, 1] + fy * (b[:, 3] - b[:, 1])], axis=1)


def to_pixels(points: Sequence[Sequence[float]], width: int, height: int) -> NDArray[np.float64]:
    """Config points → pixels: fractions of the frame's width / height when every value is within 0..1,
    else pixels as given."""
    arr = np.asarray(points, np.float64).reshape(-1, 2)
    if np.all((arr >= 0.0) & (arr <= 1.0)):
        arr = arr * np.array([width, height], np.float64)
    return arr


class PolygonZone:
    """Which detections are inside a polygon: their anchor (clipped to the frame) lies on a pixel of the
    filled polygon. polygon: (K, 2) pixels; frame_wh: the frame size the mask is made for."""

    def __init__(self, polygon: NDArray[np.float64], frame_wh: tuple[int, int],
                 anchor: str = "bottom_center") -> None:
        self.polygon = np.round(polygon).astype(np.int32)
        self.anchor = anchor
        self.frame_wh = frame_wh
        w, h = frame_wh
        self.mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(self.mask, [self.polygon.reshape(-1, 1, 2)], 1)

    def trigger(self, dets: Detections) -> NDArray[np.bool_]:
        """(N,) True where the detection's anchor is inside."""
        if len(dets) == 0:
            return np.zeros(0, bool)
        pts = anchor_points(dets.xyxy, self.anchor)
        ok = np.isfinite(pts).all(axis=1)
        w, h = self.frame_wh
        x = np.clip(np.ceil(np.nan_to_num(pts[:, 0])), 0, w - 1).astype(np.intp)
        y = np.clip(np.ceil(np.nan_to_num(pts[:, 1])), 0, h - 1).astype(np.intp)
        return ok & (self.mask[y, x] > 0)


def _cross(points: NDArray[np.float64], start: NDArray[np.float64], end: NDArray[np.float64]) -> NDArray[np.float64]:
    """z of (end - start) × (point - start) for (..., 2) points."""
    d = end - start
    rel = points - start
    return d[0] * rel[..., 1] - d[1] * rel[..., 0]


class LineZone:
    """Counts tracked objects crossing the segment start → end.

    A detection counts only while all its anchors are within the band between the perpendiculars
    through start and end, and all on one side of the line; a track crosses when it has been on the
    other side for `min_crossing_frames` frames in a row. "in" = onto the side where the cross product
    (end - start) × (point - start) is negative: the left-hand side looking from start to end on
    screen (y down). Tracks without an id (-1) are ignored.
    """

    def __init__(self, start: NDArray[np.float64], end: NDArray[np.float64],
                 anchors: Sequence[str] = ("top_left", "top_right", "bottom_left", "bottom_right"),
                 min_crossing_frames: int = 1) -> None:
        self.start = np.asarray(start, np.float64)
        self.end = np.asarray(end, np.float64)
        if np.allclose(self.start, self.end):
            raise ValueError(f"a counting line needs two different points, got {self.start} twice")
        self.anchors = tuple(anchors)
        d = (self.end - self.start) / np.linalg.norm(self.end - self.start)
        self._perp = np.array([-d[1], d[0]])
        self.history_len = max(2, min_crossing_frames + 1)
        self.history: dict[int, deque[bool]] = {}

    def _sides(self, dets: Detections) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
        pts = np.stack([anchor_points(dets.xyxy, a) for a in self.anchors])  # (A, N, 2)
        c1 = _cross(pts, self.start, self.start + self._perp)
        c2 = _cross(pts, self.end, self.end - self._perp)
        in_limits = np.all((c1 > 0) == (c2 > 0), axis=0)  # the two limits point in opposite directions
        left = _cross(pts, self.start, self.end) < 0
        return in_limits, np.any(left, axis=0), np.any(~left, axis=0)

    def trigger(self, dets: Detections) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """(crossed_in, crossed_out), each (N,) bool, for this frame's detections."""
        n = len(dets)
        crossed_in, crossed_out = np.zeros(n, bool), np.zeros(n, bool)
        if n == 0 or dets.tracker_id is None:
            return crossed_in, crossed_out
        in_limits, any_left, any_right = self._sides(dets)
        for i in range(n):
            tid = int(dets.tracker_id[i])
            if tid < 0 or not in_limits[i] or (any_left[i] and any_right[i]):
                continue
            state = bool(any_left[i])
            hist = self.history.setdefault(tid, deque(maxlen=self.history_len))
            hist.append(state)
            if len(hist) < self.history_len or hist.count(hist[0]) > 1:
                continue
            (crossed_in if state else crossed_out)[i] = True
        return crossed_in, crossed_out

    def forget(self, track_ids: Sequence[int]) -> None:
        """Drop the side history of tracks that are gone (memory stays bounded on long runs)."""
        for tid in track_ids:
            self.history.pop(tid, None)
