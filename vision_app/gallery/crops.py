"""The aligned face crop kept with every template, so a gallery can be re-embedded with another model.

A FaceCrop is the canonical crop (vision_app.face.align.canonical_crop: 256x256, the ArcFace framing at
twice the resolution with a margin) and the 5 landmarks inside it. Any recognizer's own crop is made
from it with the recognizer's template (FaceEmbedder.align), so `gallery migrate` needs no photos.
Stored as: magic, 10 little-endian float32 landmark coordinates, then the crop as a JPEG (quality 95:
~16 KB; re-embedding through it changes cosine similarities by < 0.002 on faces-eval/celeba, measured
against embedding the photo directly), all encrypted with the gallery key like the templates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.face.align import CANONICAL_SIZE, canonical_crop

MAGIC = b"VAFC1"
JPEG_QUALITY = 95
_LM_BYTES = 10 * 4


@dataclass(frozen=True)
class FaceCrop:
    """image: (256, 256, 3) uint8 BGR canonical crop; landmarks: (5, 2) float32 in its pixels."""

    image: NDArray[np.uint8]
    landmarks: NDArray[np.float32]

    @classmethod
    def from_face(cls, image_bgr: NDArray[np.uint8], landmarks5: NDArray[np.float32]) -> "FaceCrop":
        """From a photo or camera frame ((H, W, 3) uint8 BGR) and its (5, 2) YuNet landmarks."""
        crop, lm = canonical_crop(image_bgr, landmarks5)
        return cls(crop, lm)

    def encode(self) -> bytes:
        ok, buf = cv2.imencode(".jpg", self.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise GalleryError("could not encode the face crop as JPEG")
        return MAGIC + np.ascontiguousarray(self.landmarks, "<f4").tobytes() + buf.tobytes()

    @classmethod
    def decode(cls, data: bytes, what: str = "face crop") -> "FaceCrop":
        """The crop from its stored bytes; GalleryError naming `what` when they are damaged."""
        head = len(MAGIC) + _LM_BYTES
        if len(data) <= head or not data.startswith(MAGIC):
            raise GalleryError(f"{what}: not a stored face crop (damaged, or written by another program)")
        lm = np.frombuffer(data[len(MAGIC):head], "<f4").reshape(5, 2).astype(np.float32)
        img = cv2.imdecode(np.frombuffer(data[head:], np.uint8), cv2.IMREAD_COLOR)
        if img is None or img.shape != (CANONICAL_SIZE, CANONICAL_SIZE, 3) or not np.isfinite(lm).all():
            raise GalleryError(f"{what}: the stored face crop cannot be decoded (damaged)")
        return cls(np.asarray(img, np.uint8), lm)

    def aligned_for(self, embedder: Any) -> NDArray[np.uint8]:
        """The recognizer's own crop (FaceEmbedder.align with this crop's landmarks)."""
        return np.asarray(embedder.align(self.image, self.landmarks), np.uint8)


def check_crop(data: bytes | None, what: str) -> bytes | None:
    """Stored crop bytes as given, after checking they decode (None passes: a template without crop)."""
    if data is not None:
        FaceCrop.decode(bytes(data), what)
    return None if data is None else bytes(data)
