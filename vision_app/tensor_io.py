"""Image ↔ model tensor conversions driven by a manifest entry's `preprocess` table.

Used by the stages whose models take a whole (stretched) image: segmentation and style transfer.
Detection's letterboxing with its inverse box mapping is a different concept and lives in detect/.
"""
from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import ModelError


def model_input_size(entry_input: Mapping[str, object], model: str) -> tuple[int, int]:
    """(width, height) from a manifest `input = { size = [W, H] }` table."""
    size = entry_input.get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise ModelError(f"model '{model}': manifest input.size must be [width, height], got {size!r}")
    return int(size[0]), int(size[1])


def image_to_blob(img: NDArray[np.uint8], size: tuple[int, int],
                  preprocess: Mapping[str, Any]) -> NDArray[np.float32]:
    """Stretch-resize a BGR uint8 (H, W, 3) image to size=(width, height) and normalise it.

    Returns a (1, 3, height, width) float32 NCHW blob in the manifest's colour order ('rgb' or 'bgr'),
    with values (x * scale - mean) / std per channel (mean/std in the blob's channel order).
    """
    color = str(preprocess.get("color", "rgb"))
    if color not in ("rgb", "bgr"):
        raise ModelError(f"preprocess color must be 'rgb' or 'bgr', got {color!r}")
    scale = float(preprocess.get("scale", 1.0))
    mean = [float(m) for m in preprocess.get("mean", (0.0, 0.0, 0.0))]
    std = [float(s) for s in preprocess.get("std", (1.0, 1.0, 1.0))]
    # OpenCV computes (x - mean') * factor: mean' = mean / scale, factor = scale / std.
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = tuple(scale / s for s in std) + (0.0,)
    params.mean = tuple(m / scale for m in mean) + (0.0,)
    params.size = (int(size[0]), int(size[1]))
    params.swapRB = color == "rgb"
    params.ddepth = cv2.CV_32F
    return cv2.dnn.blobFromImageWithParams(img, params)  # type: ignore[return-value]


def blob_to_image(blob: NDArray[np.float32], scale: float, color: str = "rgb") -> NDArray[np.uint8]:
    """A (1, 3, h, w) float model output → (h, w, 3) uint8 BGR.

    scale: the factor that maps the output's values to 0..255 (255 for outputs in [0, 1], 1 for outputs
    in 0..255); results outside 0..255 are clipped. color: the output's channel order.
    """
    if blob.ndim != 4 or blob.shape[:2] != (1, 3) or min(blob.shape[2:]) == 0:
        raise ModelError(f"expected an image output of shape (1, 3, h, w) with h, w >= 1, got "
                         f"{tuple(blob.shape)}")
    hwc = np.ascontiguousarray(blob[0].transpose(1, 2, 0))
    out = cv2.convertScaleAbs(np.clip(hwc, 0.0, None), alpha=scale)  # rounds and saturates to 0..255
    return cv2.cvtColor(out, cv2.COLOR_RGB2BGR) if color == "rgb" else out
