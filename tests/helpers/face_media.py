"""Helpers for face tests: read real images and videos (fail loudly when missing)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


def read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    if img is None:
        pytest.fail(f"cannot read test image {path}")
    return img


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        pytest.fail(f"cannot read test video {path}")
    return frames
