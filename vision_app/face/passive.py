"""Passive (single-image) anti-spoofing with the MiniFASNet pair (Silent-Face-Anti-Spoofing).

Each model sees its own crop around the face box: the box scaled ×2.7 (V2) or ×4.0 (V1SE) about its
centre, shifted to lie inside the image (as the upstream CropImage does; the scale shrinks only when the
scaled box is larger than the image), resized to 80×80, BGR raw 0..255 floats, NCHW. Their softmax
outputs (fake-2D, real, fake-3D) are summed; real-score = p_real / 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import EngineError

REAL = 1
_SIZE = 80


def spoof_crop_box(box_xyxy: NDArray[np.float32], scale: float, image_hw: tuple[int, int]
                   ) -> tuple[int, int, int, int]:
    """Integer (x1, y1, x2, y2) inclusive-exclusive crop of a face box scaled by `scale` about its centre,
    shifted (not cut) to fit inside an image of (H, W); the scale is capped so the box fits at all."""
    h_img, w_img = image_hw
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    scale = min((h_img - 1) / bh, (w_img - 1) / bw, scale)
    nw, nh = bw * scale, bh * scale
    cx, cy = x1 + bw / 2, y1 + bh / 2
    left, top, right, bottom = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if left < 0:
        right, left = right - left, 0.0
    if top < 0:
        bottom, top = bottom - top, 0.0
    if right > w_img - 1:
        left, right = left - (right - w_img + 1), w_img - 1.0
    if bottom > h_img - 1:
        top, bottom = top - (bottom - h_img + 1), h_img - 1.0
    return int(left), int(top), int(right) + 1, int(bottom) + 1


def spoof_crops(image_bgr: NDArray[np.uint8], boxes_xyxy: NDArray[np.float32], scale: float
                ) -> NDArray[np.float32]:
    """(N, 3, 80, 80) float32 BGR 0..255 crops of each (N, 4) xyxy box (source pixels) at `scale`."""
    out = np.empty((len(boxes_xyxy), 3, _SIZE, _SIZE), np.float32)
    for i, box in enumerate(boxes_xyxy):
        x1, y1, x2, y2 = spoof_crop_box(box, scale, image_bgr.shape[:2])
        crop = cv2.resize(image_bgr[y1:y2, x1:x2], (_SIZE, _SIZE), interpolation=cv2.INTER_LINEAR)
        out[i] = crop.transpose(2, 0, 1)
    return out


@dataclass(frozen=True, slots=True)
class PassiveResult:
    """score: real-score in 0..1 (p_real of the summed pair / 2); probs: (3,) summed probabilities / 2
    (fake-2D, real, fake-3D); live: argmax is real and score >= the threshold."""

    score: float
    probs: tuple[float, float, float]
    live: bool


class PassiveLiveness:
    """The two MiniFASNet models on their crops.

    engines: loaded models, paired with their crop scales (default V2 at 2.7, V1SE at 4.0 — the manifest
    entries' preprocess.crop_scale). threshold: least real-score for a live verdict (config
    face.passive_threshold).
    """

    def __init__(self, engine_v2: Any, engine_v1se: Any, threshold: float,
                 scales: Sequence[float] = (2.7, 4.0)) -> None:
        self.models = []
        for eng, scale in zip((engine_v2, engine_v1se), scales):
            if len(eng.inputs) != 1 or len(eng.outputs) != 1:
                raise EngineError(f"{eng.name}: a MiniFASNet model has one input and one output, this one "
                                  f"has {list(eng.inputs)} -> {list(eng.outputs)}")
            spec = next(iter(eng.inputs.values()))
            fixed_batch = spec.shape[0] if spec.shape and spec.shape[0] is not None else None
            self.models.append((eng, float(scale), spec.name, next(iter(eng.outputs)), fixed_batch))
        self.threshold = float(threshold)

    def _run(self, eng: Any, inp: str, out: str, fixed: int | None, x: NDArray[np.float32]) -> NDArray:
        """(N, 3) probabilities for N crops; EngineError when the model answers with another shape."""
        if fixed is None:
            res = np.asarray(eng.infer({inp: x}).get(out))
        else:
            res = np.concatenate([np.asarray(eng.infer({inp: x[i:i + 1]}).get(out)).reshape(-1)
                                  for i in range(len(x))])
        if res.size != len(x) * 3:
            raise EngineError(f"{eng.name}: expected 3 probabilities (fake-2D, real, fake-3D) for each of "
                              f"{len(x)} face crops, got shape {list(res.shape)}; is this a MiniFASNet model?")
        return res.reshape(len(x), 3)

    def probabilities(self, image_bgr: NDArray[np.uint8], boxes_xyxy: NDArray[np.float32]
                      ) -> NDArray[np.float32]:
        """(N, 3) float32 summed softmax of both models / 2 for each (N, 4) xyxy face box (source pixels)
        in the (H, W, 3) uint8 BGR image. Columns: fake-2D, real, fake-3D."""
        boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, 3), np.float32)
        total = np.zeros((len(boxes), 3), np.float32)
        for eng, scale, inp, out, fixed in self.models:
            probs = self._run(eng, inp, out, fixed, spoof_crops(image_bgr, boxes, scale))
            # softmax outputs lie in 0..1: anything else (inf from an FP16 overflow, NaN) is a broken model,
            # and an inf "real" probability must not pass a photo as live
            if not (np.isfinite(probs).all() and probs.min() >= -1e-3 and probs.max() <= 1.0 + 1e-3):
                raise EngineError(f"{eng.name}: outputs are not probabilities in 0..1 (found "
                                  f"{probs.min():.3g}..{probs.max():.3g}); the anti-spoofing model is broken or "
                                  f"not a MiniFASNet; no liveness verdict")
            total += probs
        return total / 2.0

    def check(self, image_bgr: NDArray[np.uint8], boxes_xyxy: NDArray[np.float32]) -> list[PassiveResult]:
        """One PassiveResult per (N, 4) xyxy box (source pixels) of the (H, W, 3) uint8 BGR image."""
        probs = self.probabilities(image_bgr, boxes_xyxy)
        return [PassiveResult(float(p[REAL]), (float(p[0]), float(p[1]), float(p[2])),
                              bool(int(np.argmax(p)) == REAL and p[REAL] >= self.threshold))
                for p in probs]
