"""A sink that counts a run's detections per class and its distinct track ids (`run` prints them)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from vision_app.types import FrameResult


class DetectionCounter:
    """Counts result.detections: per class id, frames with any detection, distinct tracker ids."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = tuple(class_names)
        self.per_class: Counter[int] = Counter()
        self.frames_with = 0
        self.tracks: set[int] = set()

    def write(self, result: FrameResult) -> None:
        det = result.detections
        if det is None or len(det.class_id) == 0:
            return
        self.frames_with += 1
        self.per_class.update(int(c) for c in det.class_id)
        if det.tracker_id is not None:
            self.tracks.update(int(t) for t in det.tracker_id if t >= 0)

    def close(self) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        def label(c: int) -> str:
            return self.class_names[c] if 0 <= c < len(self.class_names) else f"class {c}"

        return {"total": sum(self.per_class.values()), "frames_with_detections": self.frames_with,
                "per_class": {label(c): n for c, n in self.per_class.most_common()}, "tracks": len(self.tracks)}
