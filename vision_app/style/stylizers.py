"""Style transfer networks: frame (BGR uint8, H×W) → stylized frame of the same size and dtype.

- MagentaStylizer: arbitrary style (Ghiasi et al.), fixed 384×384 input in RGB [0, 1] plus a
  (1, 100, 1, 1) style vector. Strength s blends the painting's vector with the frame's own:
  v = s·v_painting + (1 − s)·v_frame. The frame's own vector costs a predict-network run (~9 ms), so it
  is computed on the first frame of a scene and then every `content_every` frames, not per frame: a
  frame's overall style (palette, texture statistics) barely changes within a scene.
- JohnsonStylizer: one fixed style per network, dynamic H×W (multiples of 4), RGB 0..255 in and out.
  The frame is resized to a working resolution (long side `working_size`, never upscaled), which
  trades detail for speed: the cost grows with the pixel count.
Both resize to the model's size and back to the frame's with bilinear interpolation.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import ModelError
from vision_app.models import ModelEntry
from vision_app.style.vectors import StyleVectorCache
from vision_app.tensor_io import blob_to_image, image_to_blob, model_input_size

if TYPE_CHECKING:
    from engines.base import Engine

log = logging.getLogger(__name__)


def _back(img: NDArray[np.uint8], h: int, w: int) -> NDArray[np.uint8]:
    return img if img.shape[:2] == (h, w) else cv2.resize(  # type: ignore[return-value]
        img, (w, h), interpolation=cv2.INTER_LINEAR)


class MagentaStylizer:
    """engine: the transfer model; entry: its manifest entry; vectors: the predict side (cache);
    style_vector: the painting's (1, 100, 1, 1) vector; strength 0..1; content_every ≥ 1 frames."""

    def __init__(self, engine: Engine, entry: ModelEntry, vectors: StyleVectorCache,
                 style_vector: NDArray[np.float32], *, strength: float, content_every: int) -> None:
        self.engine = engine
        self.entry = entry
        self.vectors = vectors
        self.style_vector = style_vector
        self.strength = float(strength)
        self.content_every = max(1, int(content_every))
        self.size = model_input_size(entry.input, entry.name)
        names = list(engine.inputs)
        self.content_name = str(entry.input.get("name") or names[0])
        others = [n for n in names if n != self.content_name]
        if len(others) != 1:
            raise ModelError(f"model '{entry.name}': expected a content input '{self.content_name}' and one "
                             f"style-vector input, found inputs {names}")
        self.vector_name = others[0]
        self.output_name = next(iter(engine.outputs))
        self._content_vector: NDArray[np.float32] | None = None
        self._since = 0
        self.content_updates = 0  # how often the frame's own vector was computed

    def vector(self, img: NDArray[np.uint8], new_scene: bool) -> NDArray[np.float32]:
        """The blended style vector for this frame (see the module docstring for when v_frame updates)."""
        if self.strength >= 1.0:
            return self.style_vector
        if new_scene or self._content_vector is None or self._since >= self.content_every:
            vec = self.vectors.predict(img)
            if vec.shape != self.style_vector.shape:  # a predict model that does not match the transfer one
                raise ModelError(f"model '{self.vectors.entry.name}' gives style vectors of shape {vec.shape}, "
                                 f"the painting's vector has {self.style_vector.shape}; use the predict model "
                                 f"that belongs to '{self.entry.name}'")
            self._content_vector = vec
            self._since = 0
            self.content_updates += 1
        self._since += 1
        s = np.float32(self.strength)
        return s * self.style_vector + (np.float32(1.0) - s) * self._content_vector

    def stylize(self, img: NDArray[np.uint8], new_scene: bool) -> NDArray[np.uint8]:
        """BGR uint8 (H, W, 3) → stylized BGR uint8 (H, W, 3)."""
        h, w = img.shape[:2]
        feed = {self.content_name: image_to_blob(img, self.size, self.entry.preprocess),
                self.vector_name: self.vector(img, new_scene)}
        out = self.engine.infer(feed)[self.output_name]
        return _back(blob_to_image(out, 255.0), h, w)


def working_shape(h: int, w: int, long_side: int, multiple: int = 4) -> tuple[int, int]:
    """(height, width) for a dynamic model: long side scaled to `long_side` (never up), each a multiple."""
    s = min(1.0, long_side / max(h, w))
    return (max(multiple, int(round(h * s / multiple)) * multiple),
            max(multiple, int(round(w * s / multiple)) * multiple))


class JohnsonStylizer:
    """engine: a Johnson fast-style network; entry: its manifest entry; working_size: long side (px)."""

    def __init__(self, engine: Engine, entry: ModelEntry, *, working_size: int) -> None:
        self.engine = engine
        self.entry = entry
        self.working_size = int(working_size)
        self.multiple = int(entry.input.get("multiple_of", 4))
        self.input_name = str(entry.input.get("name") or next(iter(engine.inputs)))
        self.output_name = next(iter(engine.outputs))

    def stylize(self, img: NDArray[np.uint8], new_scene: bool = False) -> NDArray[np.uint8]:
        """BGR uint8 (H, W, 3) → stylized BGR uint8 (H, W, 3); new_scene is unused (no state)."""
        h, w = img.shape[:2]
        wh, ww = working_shape(h, w, self.working_size, self.multiple)
        blob = image_to_blob(img, (ww, wh), self.entry.preprocess)
        out = self.engine.infer({self.input_name: blob})[self.output_name]
        return _back(blob_to_image(out, 1.0), h, w)
