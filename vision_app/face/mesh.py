"""MediaPipe face mesh: 468 dense landmarks for one face box, and the eye aspect ratio from them.

Input: a square crop of the face box ×1.5 about its centre (pixels outside the image are black),
resized to 192×192, RGB / 255, NCHW. Output 1404 = 468 × (x, y, z) in crop pixels; the second output is
a face-presence logit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import EngineError

MESH_SIZE = 192
# Eye contours in the MediaPipe topology, as (p1 outer/inner corner, p2, p3 upper lid, p4 other corner,
# p5, p6 lower lid) for the classic eye-aspect-ratio of Soukupová & Čech (2016).
RIGHT_EYE = (33, 160, 158, 133, 153, 144)   # the subject's right eye (image left in a selfie view)
LEFT_EYE = (362, 385, 387, 263, 373, 380)
EYE_CORNERS = (33, 263)                      # outer corners: the scale for normalising motion


@dataclass(frozen=True, slots=True)
class MeshResult:
    """points: (468, 3) float32 — x, y in source-frame pixels, z in the same pixel scale (relative depth);
    presence: face-presence probability 0..1."""

    points: NDArray[np.float32]
    presence: float


def eye_aspect_ratio(points: NDArray[np.float32], eye: tuple[int, ...]) -> float:
    """EAR = (|p2 − p6| + |p3 − p5|) / (2 |p1 − p4|) from (468, 2+) mesh points; ~.3 open, → 0 closed."""
    p = np.asarray(points, np.float64)[:, :2]
    p1, p2, p3, p4, p5, p6 = (p[i] for i in eye)
    width = np.linalg.norm(p1 - p4)
    if width < 1e-6:
        return float("nan")
    return float((np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5)) / (2.0 * width))


def mean_ear(points: NDArray[np.float32]) -> float:
    """Mean EAR of both eyes (a blink closes both) from (468, 2+) mesh points."""
    return (eye_aspect_ratio(points, RIGHT_EYE) + eye_aspect_ratio(points, LEFT_EYE)) / 2.0


class FaceMesh:
    """The face-mesh model on any Engine (fixed input 1×3×192×192)."""

    def __init__(self, engine: Any, crop_scale: float = 1.5) -> None:
        self.engine = engine
        self.crop_scale = float(crop_scale)
        if len(engine.inputs) != 1 or len(engine.outputs) != 2:
            raise EngineError(f"{engine.name}: the face mesh has one input and two outputs (landmarks, "
                              f"presence), this one has {list(engine.inputs)} -> {list(engine.outputs)}")
        self._input = next(iter(engine.inputs))
        outs = dict(engine.outputs)
        # the landmark output is the one with 1404 values; the other is the presence logit
        self._points = next((n for n, s in outs.items() if s.shape and s.shape[-1] == 468 * 3), None)
        if self._points is None:
            raise EngineError(f"{engine.name}: no output with 1404 (468×3) values among "
                              f"{[s.describe() for s in outs.values()]}")
        self._presence = next(n for n in outs if n != self._points)

    def crop_matrix(self, box_xyxy: NDArray[np.float32]) -> NDArray[np.float64]:
        """(2, 3) affine from source pixels to the 192×192 crop of the box ×crop_scale (square)."""
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        side = max(x2 - x1, y2 - y1, 1.0) * self.crop_scale
        s = MESH_SIZE / side
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        return np.array([[s, 0.0, MESH_SIZE / 2 - s * cx], [0.0, s, MESH_SIZE / 2 - s * cy]])

    def run(self, image_bgr: NDArray[np.uint8], box_xyxy: NDArray[np.float32]) -> MeshResult:
        """Mesh of one face: (H, W, 3) uint8 BGR image, (4,) xyxy box in its pixels."""
        m = self.crop_matrix(box_xyxy)
        crop = cv2.warpAffine(image_bgr, m, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        x = (crop[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        out = self.engine.infer({self._input: np.ascontiguousarray(x)})
        raw, presence = np.asarray(out.get(self._points)), np.asarray(out.get(self._presence))
        if raw.size != 468 * 3 or presence.size < 1:
            raise EngineError(f"{self.engine.name}: expected 1404 (468×3) landmark values and a presence "
                              f"value, got shapes {list(raw.shape)} and {list(presence.shape)}; is this the "
                              f"face-mesh model?")
        pts = raw.reshape(468, 3).astype(np.float32)
        s = m[0, 0]
        src = np.empty_like(pts)
        src[:, 0] = (pts[:, 0] - m[0, 2]) / s
        src[:, 1] = (pts[:, 1] - m[1, 2]) / s
        src[:, 2] = pts[:, 2] / s
        logit = float(np.clip(presence.reshape(-1)[0], -80.0, 80.0))  # exp() of a huge logit overflows
        return MeshResult(src, float(1.0 / (1.0 + np.exp(-logit))))
