"""YuNet face detection: our own decoder for the model's raw per-stride outputs.

The engine only runs tensors; padding, decoding and NMS live here so the same code runs on any backend
(ONNX Runtime now, TensorRT later). The decoding follows ../shared/models/README.md (Face, YuNet) and is
tested against cv2.FaceDetectorYN on the same model file.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vision_app.detect.nms import nms
from vision_app.errors import EngineError
from vision_app.types import Faces

log = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
_DIVISOR = 32


def pad_to_multiple(image_bgr: NDArray[np.uint8], divisor: int = _DIVISOR) -> NDArray[np.float32]:
    """(H, W, 3) uint8 BGR → (1, 3, H', W') float32 BGR NCHW, zero-padded bottom/right so H', W' are
    multiples of `divisor`. Pixel values stay 0..255 (YuNet takes raw values)."""
    h, w = image_bgr.shape[:2]
    ph, pw = -(-h // divisor) * divisor, -(-w // divisor) * divisor
    blob = np.zeros((1, 3, ph, pw), np.float32)
    blob[0, :, :h, :w] = image_bgr.transpose(2, 0, 1)
    return blob


def decode_yunet(outputs: dict[str, NDArray[np.float32]], padded_hw: tuple[int, int],
                 score_threshold: float) -> tuple[NDArray[np.float32], NDArray[np.float32],
                                                  NDArray[np.float32]]:
    """Decode YuNet's raw outputs (cls_s, obj_s, bbox_s, kps_s for s in 8, 16, 32).

    padded_hw: the (H, W) the model was run on. Returns boxes (N, 4) float32 xyxy, scores (N,) float32
    and landmarks (N, 5, 2) float32 in input pixels, for grid points with score >= score_threshold
    (not yet suppressed). Grid points are row-major per stride:
    score = sqrt(clip(cls) * clip(obj)); cx = (col + b0) * s; w = exp(b2) * s; kps = (col + k) * s.
    """
    ph, pw = padded_hw
    boxes, scores, kps = [], [], []
    for s in STRIDES:
        cols, rows = pw // s, ph // s
        n = rows * cols
        parts = []
        for name, per_point in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
            arr = outputs.get(f"{name}_{s}")
            if arr is None:
                raise EngineError(f"YuNet output '{name}_{s}' missing: expected cls_/obj_/bbox_/kps_ for "
                                  f"strides {STRIDES}, got {sorted(outputs)}; is this a YuNet model?")
            if np.size(arr) != n * per_point:
                raise EngineError(f"YuNet output '{name}_{s}': expected {n} grid points x {per_point} values "
                                  f"for a {pw}x{ph} input, got shape {list(np.shape(arr))}; is this a YuNet "
                                  f"model?")
            parts.append(np.asarray(arr, np.float32).reshape(n, per_point))
        cls, obj, bbox, kp = parts
        score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
        keep = np.nonzero(score >= score_threshold)[0]
        if keep.size == 0:
            continue
        gx = (keep % cols).astype(np.float32)
        gy = (keep // cols).astype(np.float32)
        b = bbox[keep]
        cx, cy = (gx + b[:, 0]) * s, (gy + b[:, 1]) * s
        w, h = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
        box = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        k = kp[keep].reshape(-1, 5, 2)
        pts = np.stack([(gx[:, None] + k[:, :, 0]) * s, (gy[:, None] + k[:, :, 1]) * s], axis=2)
        # NaN / inf from a broken model or an FP16 overflow is no face (and would break NMS and drawing)
        ok = np.isfinite(box).all(axis=1) & np.isfinite(pts).all(axis=(1, 2))
        boxes.append(box[ok])
        kps.append(pts[ok])
        scores.append(score[keep][ok])
    if not boxes:
        return (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                np.zeros((0, 5, 2), np.float32))
    return (np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32),
            np.concatenate(kps).astype(np.float32))


class FaceDetector:
    """YuNet on any Engine: image in, Faces out (source-frame pixels).

    engine: a loaded YuNet model (one input 1x3xHxW, dynamic H, W). score_threshold: minimum face score;
    nms_iou: boxes overlapping a better one by more than this IoU are dropped; top_k: candidates kept
    before NMS (as cv2.FaceDetectorYN).
    """

    def __init__(self, engine: Any, score_threshold: float = 0.6, nms_iou: float = 0.3,
                 top_k: int = 5000) -> None:
        self.engine = engine
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.top_k = int(top_k)
        if len(engine.inputs) != 1:
            raise EngineError(f"{engine.name}: a YuNet model has one input, this one has "
                              f"{list(engine.inputs)}; check the face.detector model in the config")
        self._input = next(iter(engine.inputs))

    def detect(self, image_bgr: NDArray[np.uint8]) -> Faces:
        """image_bgr: (H, W, 3) uint8 BGR. Returns Faces (xyxy, score, 5 landmarks) in its pixels,
        best score first; boxes may extend past the image border (they are not clipped)."""
        if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 \
                or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            got = (f"{image_bgr.dtype} {image_bgr.shape}" if isinstance(image_bgr, np.ndarray)
                   else type(image_bgr).__name__)
            raise ValueError(f"FaceDetector.detect: expected an (H, W, 3) uint8 BGR image, got {got}")
        blob = pad_to_multiple(image_bgr)
        out = self.engine.infer({self._input: blob})
        boxes, scores, kps = decode_yunet(out, blob.shape[2:], self.score_threshold)
        if scores.size == 0:
            return Faces.empty()
        if scores.size > self.top_k:  # as cv2.FaceDetectorYN: only the top_k candidates enter NMS
            best = np.argsort(-scores, kind="stable")[:self.top_k]
            boxes, scores, kps = boxes[best], scores[best], kps[best]
        keep = nms(boxes, scores, self.nms_iou)
        return Faces(boxes[keep], scores[keep], kps[keep])
