"""Scene-change detection for stages that keep state across frames (mask smoothing, style vectors).

A new scene starts at the first frame, when the source or the resolution changes, when the frame index
goes back (a file restarted or another source), or when a small grey thumbnail differs from the
previous frame's by more than a threshold (a cut in a video, the camera turned to another view).
Comparing with the previous frame, not with the scene's first one, lets slow changes (a person moving,
light drifting) stay in one scene.
"""
from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.types import Frame

THUMB_SIZE = (32, 24)  # (width, height): enough to see a cut, cheap (~0.1 ms for 720p with INTER_AREA)


def thumbnail(img: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(24, 32) float32 grey thumbnail in [0, 1] of a BGR uint8 (H, W, 3) image."""
    small = cv2.resize(img, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) * (1.0 / 255.0)


class SceneChangeDetector:
    """update(frame) → True when the frame starts a new scene.

    threshold: mean absolute difference of consecutive grey thumbnails (0..1) above which the frame is
    a new scene; 0 makes every frame a new scene, 1 never cuts on content (source/size changes still do).
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self._key: tuple[str, int, int] | None = None
        self._index = -1
        self._thumb: NDArray[np.float32] | None = None
        self.last_difference = 0.0

    def reset(self) -> None:
        self._key = None
        self._thumb = None

    def update(self, frame: Frame) -> bool:
        key = (frame.source_id, frame.height, frame.width)
        thumb = thumbnail(frame.image)
        new = self._key != key or frame.index <= self._index or self._thumb is None
        self.last_difference = 1.0 if self._thumb is None else float(np.mean(np.abs(thumb - self._thumb)))
        if not new and (self.threshold <= 0.0 or self.last_difference > self.threshold):
            new = True
        self._key, self._index, self._thumb = key, frame.index, thumb
        return new
