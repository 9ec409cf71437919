"""Segmentation model output → temporally smoothed class probabilities → Mask at source resolution.

Two output kinds (manifest `decode.type`):
- "probability": (1, 1, h, w) person probability (MediaPipe selfie models, sigmoid applied);
- "logits": (1, C, h, w) class logits (DeepLabV3, 21 PASCAL VOC classes).

Smoothing and upsampling both happen on probabilities, never on hard labels, so edges stay smooth.
The exponential moving average (EMA) runs at model resolution: bilinear resizing is linear, so
averaging before resizing equals averaging the full-size masks, at a fraction of the cost.

Many classes, clean edges, little work: resizing all 21 DeepLab planes to 640×480 every frame costs
more than the model. Instead the argmax at model resolution says which classes win anywhere (usually
2–4); only those planes, plus the foreground-probability plane, are resized (one cv2.resize of a
K-channel image) and the per-pixel argmax among them gives the full-size labels. Edges then follow the
bilinearly interpolated probabilities (sub-pixel boundaries, no 257-px staircase), exactly as with all
21 planes, because a class that wins no model pixel can win at most a thin sliver between pixels.
"""
from __future__ import annotations

import copy
import logging
import threading
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import ConfigError, ModelError
from vision_app.models import ModelEntry
from vision_app.tensor_io import image_to_blob, model_input_size
from vision_app.types import Mask

if TYPE_CHECKING:
    from engines.base import Engine

log = logging.getLogger(__name__)

DECODE_TYPES = ("probability", "logits")


def softmax(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    """Softmax over axis 0 of a (C, h, w) float32 array (numerically stable; one temporary)."""
    e = np.subtract(logits, logits.max(axis=0))
    np.exp(e, out=e)
    e *= np.float32(1.0) / e.sum(axis=0)
    return e


def argmax_planes(planes: Sequence[NDArray[np.float32]] | NDArray[np.float32]) -> NDArray[np.uint8]:
    """Index of the largest of K same-shape float32 planes per pixel → uint8 (first wins ties).

    Equal to np.stack(planes).argmax(0) for K ≤ 256, but a running maximum over contiguous planes is
    about 1.5× faster than numpy's strided argmax over the first or a short last axis.
    """
    best = np.array(planes[0], np.float32, copy=True)
    idx = np.zeros(best.shape, np.uint8)
    for k in range(1, len(planes)):
        np.putmask(idx, planes[k] > best, np.uint8(k))
        np.maximum(best, planes[k], out=best)
    return idx


class Segmenter:
    """One segmentation model with its temporal state: BGR frame → Mask (source resolution).

    engine: the loaded model (Engine protocol); entry: its manifest entry (input size, preprocess,
    decode type, class names). smoothing: EMA weight of the previous probabilities (0 = off).
    threshold: person probability above which a pixel is labelled person (binary models).
    foreground: class names whose summed probability becomes Mask.probs (empty = all but background).
    probabilities() is stateless (any thread); smooth() keeps the EMA state and expects frames in
    order (the stage calls it from its in-order finish step; a lock guards it regardless).
    """

    def __init__(self, engine: Engine, entry: ModelEntry, *, smoothing: float, threshold: float,
                 foreground: Sequence[str]) -> None:
        self.engine = engine
        self.entry = entry
        self.kind = str(entry.decode.get("type", ""))
        if self.kind not in DECODE_TYPES:
            raise ModelError(f"model '{entry.name}': decode.type must be one of {DECODE_TYPES} for "
                             f"segmentation, got {self.kind!r}")
        self.size = model_input_size(entry.input, entry.name)
        self.input_name = str(entry.input.get("name") or next(iter(engine.inputs)))
        self.output_name = next(iter(engine.outputs))
        self.class_names = tuple(entry.classes) or (("background", "person") if self.kind == "probability"
                                                    else ())
        if self.kind == "logits" and len(self.class_names) < 2:
            raise ModelError(f"model '{entry.name}' gives class logits but its manifest entry lists no classes")
        self.smoothing = float(smoothing)
        self.threshold = float(threshold)
        unknown = [c for c in foreground if c not in self.class_names]
        if unknown:
            raise ConfigError(f"segment.foreground names {unknown}, which model '{entry.name}' does not "
                              f"have; its classes are {list(self.class_names)}")
        names = list(foreground) or [c for c in self.class_names if c != self.class_names[0]]
        self.foreground_ids = np.array([self.class_names.index(c) for c in names], np.intp)
        self._ema: NDArray[np.float32] | None = None
        self._lock = threading.Lock()

    def fork(self) -> "Segmenter":
        """The same model (shared engine) with smoothing state of its own, for another stream."""
        twin = copy.copy(self)
        twin._ema = None
        twin._lock = threading.Lock()
        return twin

    def reset(self) -> None:
        """Forget the smoothed probabilities (the next frame starts a new scene)."""
        with self._lock:
            self._ema = None

    def probabilities(self, img: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Run the model on a BGR uint8 (H, W, 3) frame → (C, h, w) float32 probabilities at model
        resolution (C = 1 person probability for binary models, else a softmax over the classes)."""
        blob = image_to_blob(img, self.size, self.entry.preprocess)
        out = self.engine.infer({self.input_name: blob})[self.output_name]
        if out.ndim != 4 or out.shape[0] != 1 or min(out.shape[1:]) == 0:
            raise ModelError(f"model '{self.entry.name}': expected output (1, C, h, w) with C, h, w >= 1, "
                             f"got {out.shape}")
        planes = out[0].astype(np.float32, copy=False)
        if self.kind == "probability":
            return planes[:1]
        if planes.shape[0] != len(self.class_names):
            raise ModelError(f"model '{self.entry.name}': {planes.shape[0]} output planes but "
                             f"{len(self.class_names)} class names in the manifest")
        return softmax(planes)

    def smooth(self, probs: NDArray[np.float32], new_scene: bool) -> NDArray[np.float32]:
        """EMA of probabilities across frames; restarts from `probs` on a new scene or a shape change."""
        with self._lock:
            a = self.smoothing
            if a <= 0.0 or new_scene or self._ema is None or self._ema.shape != probs.shape:
                self._ema = probs
            else:  # a new array each frame: a caller may still hold the previous one
                ema = self._ema * np.float32(a)
                ema += np.float32(1.0 - a) * probs
                self._ema = ema
            return self._ema

    def to_mask(self, probs: NDArray[np.float32], size_hw: tuple[int, int]) -> Mask:
        """(C, h, w) model-resolution probabilities → Mask with (H, W) labels and foreground probability."""
        h, w = size_hw
        if self.kind == "probability":
            p = cv2.resize(probs[0], (w, h), interpolation=cv2.INTER_LINEAR)
            np.clip(p, 0.0, 1.0, out=p)
            labels = (p > self.threshold).astype(np.uint8)
            if 1 not in self.foreground_ids:  # foreground = background only (odd, but allowed)
                p = 1.0 - p
            return Mask(labels, self.class_names, p)
        low_labels = argmax_planes(probs)
        counts = cv2.calcHist([low_labels], [0], None, [probs.shape[0]], [0, probs.shape[0]]).ravel()
        present = np.flatnonzero(counts).astype(np.uint8)
        fg = probs[self.foreground_ids].sum(axis=0)
        planes = cv2.merge([*probs[present], fg])  # (h, w, K + 1): one resize call for all of them
        big = cv2.split(cv2.resize(planes, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1))
        if len(present) == 1:
            labels = np.full((h, w), present[0], np.uint8)
        else:
            labels = present[argmax_planes(big[:-1])]
        fg_big = np.clip(big[-1], 0.0, 1.0)
        return Mask(labels, self.class_names, fg_big)

    def __call__(self, img: NDArray[np.uint8], new_scene: bool) -> Mask:
        """Full step for one frame: model → EMA → Mask at the frame's resolution."""
        return self.to_mask(self.smooth(self.probabilities(img), new_scene), img.shape[:2])
