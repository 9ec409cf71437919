"""Helpers for face tests: read real images and videos (fail loudly when missing)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision_app.access.evaluate import read_clip


def read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    if img is None:
        pytest.fail(f"cannot read test image {path}")
    return img


def read_video(path: Path) -> list[np.ndarray]:
    frames, _fps = read_clip(path)
    if not frames:
        pytest.fail(f"cannot read test video {path}")
    return frames
