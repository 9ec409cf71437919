"""Manifest-driven image preprocessing for detectors, and the exact way back to source pixels.

A model entry's ``preprocess`` table (see vision_app/manifest.toml) says how to turn a BGR uint8 frame
into the model's input: ``resize`` = "stretch" | "letterbox" | "none", ``anchor`` = "center" | "topleft"
(letterbox), ``pad`` (letterbox fill, 0..255), ``color`` = "rgb" | "bgr", ``scale``, per-channel ``mean``
and ``std`` applied as ``(x * scale - mean) / std``, ``layout`` = "nchw". Every resize also returns a
:class:`BoxMap`, the affine map from model-input pixels back to source pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import ModelError

RESIZE_MODES = ("stretch", "letterbox", "none")
ANCHORS = ("center", "topleft")
COLORS = ("rgb", "bgr")


@dataclass(frozen=True, slots=True)
class BoxMap:
    """Axis-aligned map between source pixels and model-input pixels.

    ``x_in = x_src * scale_x + pad_x`` (same for y). Coordinates are continuous pixel-edge coordinates
    (the left edge of pixel 0 is 0.0, the right edge of the last pixel is the width), which is the frame
    in which cv2.resize maps edges exactly. src_w/src_h: the source image size used for clipping.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    src_w: int
    src_h: int

    def to_source(self, xyxy: NDArray[np.float32], clip: bool = True) -> NDArray[np.float32]:
        """(N, 4) float32 [x1, y1, x2, y2] in model-input pixels -> (N, 4) float32 source pixels,
        clipped to the source image when clip is True. Returns a new array."""
        out = np.empty(xyxy.shape, np.float32)
        out[:, 0::2] = (xyxy[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (xyxy[:, 1::2] - self.pad_y) / self.scale_y
        if clip:
            np.clip(out[:, 0::2], 0.0, self.src_w, out=out[:, 0::2])
            np.clip(out[:, 1::2], 0.0, self.src_h, out=out[:, 1::2])
        return out

    def to_input(self, xyxy: NDArray[np.float32]) -> NDArray[np.float32]:
        """(N, 4) source pixels -> (N, 4) float32 model-input pixels (the inverse of to_source)."""
        out = np.empty(np.shape(xyxy), np.float32)
        out[:, 0::2] = np.asarray(xyxy)[:, 0::2] * self.scale_x + self.pad_x
        out[:, 1::2] = np.asarray(xyxy)[:, 1::2] * self.scale_y + self.pad_y
        return out


def letterbox_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int, anchor: str) -> tuple[int, int, int, int]:
    """Size of the resized image inside a dst_w x dst_h canvas and its offset: (new_w, new_h, pad_x, pad_y).

    The aspect ratio is kept (one ratio r = min(dst_w/src_w, dst_h/src_h)); new sizes are rounded to
    whole pixels, so the exact per-axis scales are new_w/src_w and new_h/src_h (BoxMap uses those).
    anchor "center" splits the padding (the extra pixel of an odd padding goes right/bottom); "topleft"
    puts all padding right and bottom.
    """
    r = min(dst_w / src_w, dst_h / src_h)
    new_w = min(dst_w, max(1, int(round(src_w * r))))
    new_h = min(dst_h, max(1, int(round(src_h * r))))
    if anchor == "center":
        return new_w, new_h, (dst_w - new_w) // 2, (dst_h - new_h) // 2
    return new_w, new_h, 0, 0


class Preprocessor:
    """BGR uint8 (H, W, 3) frame -> (1, 3, h, w) float32 NCHW model input plus its BoxMap.

    size: (width, height) of the model input; None with resize "none" (dynamic input: the frame is only
    padded right/bottom up to a multiple of ``multiple_of``).

    reuse_buffers: the resized image, the colour planes and the blob are written into arrays kept from
    the previous call of the same size (no allocation and no page faults per frame, and the memory stays
    in cache); the returned blob is then overwritten by the next call, so use it before calling again
    and from one thread (a Detector does: one per worker).
    """

    def __init__(self, size: tuple[int, int] | None, *, resize: str = "stretch", anchor: str = "center",
                 pad: float = 114, color: str = "rgb", scale: float = 1.0,
                 mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 std: tuple[float, float, float] = (1.0, 1.0, 1.0), multiple_of: int = 1,
                 interpolation: int = cv2.INTER_LINEAR, reuse_buffers: bool = False) -> None:
        if resize not in RESIZE_MODES:
            raise ModelError(f"preprocess.resize: expected one of {RESIZE_MODES}, got {resize!r}")
        if anchor not in ANCHORS:
            raise ModelError(f"preprocess.anchor: expected one of {ANCHORS}, got {anchor!r}")
        if color not in COLORS:
            raise ModelError(f"preprocess.color: expected one of {COLORS}, got {color!r}")
        if resize != "none" and (size is None or min(size) <= 0):
            raise ModelError(f"preprocess.resize={resize!r} needs a fixed input size [w, h], got {size}")
        if len(mean) != 3 or len(std) != 3 or any(s == 0 for s in std):
            raise ModelError(f"preprocess mean/std: expected 3 values each and no zero std, "
                             f"got mean={list(mean)} std={list(std)}")
        self.size = size
        self.resize = resize
        self.anchor = anchor
        self.pad = float(pad)
        self.color = color
        self.multiple_of = max(1, int(multiple_of))
        self.interpolation = interpolation
        # (x * scale - mean) / std == x * alpha - beta, one fused multiply-add per channel
        std_a = np.asarray(std, np.float64)
        self._alpha = (float(scale) / std_a).astype(np.float32).reshape(3, 1, 1)
        self._beta = (np.asarray(mean, np.float64) / std_a).astype(np.float32).reshape(3, 1, 1)
        self.reuse_buffers = reuse_buffers
        self._buffers: dict[tuple[object, ...], np.ndarray] = {}

    def _buffer(self, key: tuple[object, ...], shape: tuple[int, ...], dtype: type, fill: float | None = None
                ) -> np.ndarray:
        """A scratch array for `key` (kept when reuse_buffers, else new each call); filled once on creation."""
        buf = self._buffers.get(key) if self.reuse_buffers else None
        if buf is None:
            buf = np.empty(shape, dtype)
            if fill is not None:
                buf.fill(fill)
            if self.reuse_buffers:
                if len(self._buffers) > 8:  # the frame size keeps changing: keep only the newest
                    self._buffers.clear()
                self._buffers[key] = buf
        return buf

    @classmethod
    def from_entry(cls, entry: Any) -> "Preprocessor":
        """Build from a ModelEntry (uses entry.input['size'] = [w, h] and entry.preprocess)."""
        pp: Mapping[str, Any] = entry.preprocess
        layout = pp.get("layout", "nchw")
        if layout != "nchw":
            raise ModelError(f"model '{entry.name}': preprocess.layout {layout!r} is not supported "
                             f"(expected 'nchw')")
        size = entry.input.get("size")
        if size is not None and (len(size) != 2 or not all(isinstance(v, int) for v in size)):
            raise ModelError(f"model '{entry.name}': input.size: expected [width, height], got {size!r}")
        try:
            return cls(tuple(size) if size else None, resize=pp.get("resize", "stretch"),
                       anchor=pp.get("anchor", "center"), pad=pp.get("pad", 114),
                       color=pp.get("color", "rgb"), scale=pp.get("scale", 1.0),
                       mean=tuple(pp.get("mean", (0.0, 0.0, 0.0))), std=tuple(pp.get("std", (1.0, 1.0, 1.0))),
                       multiple_of=entry.input.get("multiple_of", 1))
        except ModelError as exc:
            raise ModelError(f"model '{entry.name}': {exc}") from None

    def resize_image(self, image: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], BoxMap]:
        """The resized / letterboxed / padded BGR uint8 image at model-input size, and its BoxMap."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"preprocess: expected a BGR uint8 (H, W, 3) image, got {image.dtype} "
                             f"{tuple(image.shape)}")
        h, w = image.shape[:2]
        if self.resize == "stretch":
            dw, dh = self.size  # type: ignore[misc]
            out = image
            if (w, h) != (dw, dh):
                out = self._buffer(("resized", dw, dh), (dh, dw, 3), np.uint8)
                cv2.resize(image, (dw, dh), dst=out, interpolation=self.interpolation)
            return out, BoxMap(dw / w, dh / h, 0.0, 0.0, w, h)
        if self.resize == "letterbox":
            dw, dh = self.size  # type: ignore[misc]
            nw, nh, px, py = letterbox_geometry(w, h, dw, dh, self.anchor)
            # the padding is filled once per geometry: each frame only overwrites the image part
            canvas = self._buffer(("canvas", nw, nh, px, py), (dh, dw, 3), np.uint8, fill=int(round(self.pad)))
            roi = canvas[py:py + nh, px:px + nw]
            if (nw, nh) == (w, h):
                roi[...] = image
            else:
                cv2.resize(image, (nw, nh), dst=roi, interpolation=self.interpolation)
            return canvas, BoxMap(nw / w, nh / h, float(px), float(py), w, h)
        m = self.multiple_of
        ph, pw = math.ceil(h / m) * m - h, math.ceil(w / m) * m - w
        out = image if not (ph or pw) else cv2.copyMakeBorder(  # type: ignore[assignment]
            image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(self.pad,) * 3)
        return out, BoxMap(1.0, 1.0, 0.0, 0.0, w, h)

    def to_blob(self, image: NDArray[np.uint8]) -> NDArray[np.float32]:
        """BGR uint8 (h, w, 3) at input size -> (1, 3, h, w) float32 in the model's colour order,
        scaled and normalised."""
        h, w = image.shape[:2]
        blob = self._buffer(("blob", h, w), (1, 3, h, w), np.float32)
        # one contiguous plane per channel converts with SIMD; a strided HWC->CHW multiply is ~2x slower
        plane_buf = self._buffer(("planes", h, w), (3, h, w), np.uint8)
        planes = cv2.split(image, list(plane_buf))
        order = (2, 1, 0) if self.color == "rgb" else (0, 1, 2)
        for c, src in enumerate(order):
            np.multiply(planes[src], self._alpha[c, 0, 0], out=blob[0, c], casting="unsafe")
            if self._beta[c, 0, 0]:
                blob[0, c] -= self._beta[c, 0, 0]
        return blob

    def __call__(self, image: NDArray[np.uint8]) -> tuple[NDArray[np.float32], BoxMap]:
        """BGR uint8 (H, W, 3) source frame -> ((1, 3, h, w) float32 input, BoxMap input->source)."""
        resized, box_map = self.resize_image(image)
        return self.to_blob(resized), box_map
