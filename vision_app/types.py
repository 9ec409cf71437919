"""Central result types: frozen dataclasses of numpy arrays.

Coordinates are always in source-frame pixels (x right, y down) unless a docstring says otherwise.
Images are BGR uint8, shape (H, W, 3).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np
from numpy.typing import NDArray


def _check_shape(name: str, arr: np.ndarray, shape: tuple[int | None, ...]) -> None:
    if arr.ndim != len(shape) or any(e is not None and e != g for e, g in zip(shape, arr.shape)):
        exp = "(" + ", ".join("N" if e is None else str(e) for e in shape) + ")"
        raise ValueError(f"{name}: expected shape {exp}, got {tuple(arr.shape)}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame; never mutated after capture (draw on a copy).

    image: (H, W, 3) uint8 BGR. index: per-source running index (0-based).
    timestamp: time.monotonic() at capture. source_id: the string the source was opened from.
    """

    image: NDArray[np.uint8]
    index: int
    timestamp: float
    source_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.image, np.ndarray) or self.image.dtype != np.uint8:
            got = getattr(self.image, "dtype", type(self.image).__name__)
            raise ValueError(f"Frame.image: expected a uint8 numpy array, got {got}")
        _check_shape("Frame.image", self.image, (None, None, 3))

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, slots=True)
class Detections:
    """Object detections in source-frame pixels.

    xyxy: (N, 4) float32 [x1, y1, x2, y2]; confidence: (N,) float32; class_id: (N,) int32;
    tracker_id: (N,) int32 or None (-1 = not tracked yet). class_names maps class_id → label.
    """

    xyxy: NDArray[np.float32]
    confidence: NDArray[np.float32]
    class_id: NDArray[np.int32]
    tracker_id: NDArray[np.int32] | None = None
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_shape("Detections.xyxy", self.xyxy, (None, 4))
        n = self.xyxy.shape[0]
        _check_shape("Detections.confidence", self.confidence, (n,))
        _check_shape("Detections.class_id", self.class_id, (n,))
        if self.tracker_id is not None:
            _check_shape("Detections.tracker_id", self.tracker_id, (n,))

    @classmethod
    def empty(cls, class_names: tuple[str, ...] = ()) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0,), np.int32), None, class_names)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, idx: Any) -> "Detections":
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        return Detections(
            self.xyxy[idx].reshape(-1, 4), self.confidence[idx].reshape(-1),
            self.class_id[idx].reshape(-1),
            None if self.tracker_id is None else self.tracker_id[idx].reshape(-1),
            self.class_names)

    def label(self, i: int) -> str:
        c = int(self.class_id[i])
        return self.class_names[c] if 0 <= c < len(self.class_names) else str(c)

    def with_tracker_ids(self, tracker_id: NDArray[np.int32]) -> "Detections":
        return replace(self, tracker_id=np.asarray(tracker_id, np.int32))


@dataclass(frozen=True, slots=True)
class Faces:
    """Detected faces in source-frame pixels.

    xyxy: (N, 4) float32; score: (N,) float32; landmarks: (N, 5, 2) float32 in the order
    right eye, left eye, nose tip, right mouth corner, left mouth corner (as the subject sees them).
    Optional per-face extras: identity (N,) labels ('' = unknown), match_score (N,), liveness (N,),
    tracker_id (N,).
    """

    xyxy: NDArray[np.float32]
    score: NDArray[np.float32]
    landmarks: NDArray[np.float32]
    identity: tuple[str, ...] | None = None
    match_score: NDArray[np.float32] | None = None
    liveness: NDArray[np.float32] | None = None
    tracker_id: NDArray[np.int32] | None = None

    def __post_init__(self) -> None:
        _check_shape("Faces.xyxy", self.xyxy, (None, 4))
        n = self.xyxy.shape[0]
        _check_shape("Faces.score", self.score, (n,))
        _check_shape("Faces.landmarks", self.landmarks, (n, 5, 2))
        if self.identity is not None and len(self.identity) != n:
            raise ValueError(f"Faces.identity: expected {n} labels, got {len(self.identity)}")
        for name in ("match_score", "liveness", "tracker_id"):
            arr = getattr(self, name)
            if arr is not None:
                _check_shape(f"Faces.{name}", arr, (n,))

    @classmethod
    def empty(cls) -> "Faces":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])


@dataclass(frozen=True, slots=True)
class Mask:
    """A segmentation result at source resolution.

    probs: (H, W) float32 person/foreground probability in [0, 1] for binary models, or None.
    labels: (H, W) uint8 class index per pixel (0 = background). class_names: index → name.
    """

    labels: NDArray[np.uint8]
    class_names: tuple[str, ...]
    probs: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        _check_shape("Mask.labels", self.labels, (None, None))
        if self.probs is not None:
            _check_shape("Mask.probs", self.probs, self.labels.shape)

    def shares(self) -> dict[str, float]:
        """Share of pixels per class name (classes with no pixels omitted)."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.class_names))
        total = max(int(self.labels.size), 1)
        return {self.class_names[i] if i < len(self.class_names) else str(i): float(c) / total
                for i, c in enumerate(counts) if c > 0}


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything the pipeline produced for one frame.

    image: the frame to show (the original, or a stage's rendered output such as a stylized image or a
    segmentation overlay; stages never modify frame.image in place). timings: stage name → seconds.
    extras: stage-specific results (e.g. liveness decisions), keyed by stage name.
    """

    frame: Frame
    image: NDArray[np.uint8]
    detections: Detections | None = None
    faces: Faces | None = None
    mask: Mask | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    done_time: float = 0.0

    @property
    def latency(self) -> float:
        """Seconds from capture to result."""
        return self.done_time - self.frame.timestamp
