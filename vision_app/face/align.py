"""Face alignment: a 5-point similarity transform to a recognizer's template (ArcFace 112x112 by default).

Each recognizer has its own template and crop size (its manifest entry; FaceEmbedder.align). The gallery
keeps one larger "canonical" crop per template (the ArcFace framing at twice the resolution, with a
margin) and the landmarks inside it, so a template can be re-embedded with any recognizer later: a
least-squares similarity fit is equivariant under similarity transforms, so aligning the canonical crop
by its own landmarks gives the same crop as aligning the original photo (up to resampling).

The transform is the closed-form least-squares similarity (Umeyama 1991): deterministic, unlike the
RANSAC/LMedS fits of cv2.estimateAffinePartial2D, so the same photo always gives the same template.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

ALIGNED_SIZE = 112
# ArcFace template in 112x112 crop pixels: right eye, left eye, nose tip, right and left mouth corner
# (the subject's right/left; the same order as YuNet's landmarks).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


# The canonical crop the gallery stores: the ArcFace template x2 plus a 16 px margin on every side, so
# tighter (face_reid_0095) and looser framings both fit inside it without upsampling.
CANONICAL_SIZE = 256
CANONICAL_TEMPLATE = (ARCFACE_TEMPLATE * 2.0 + 16.0).astype(np.float32)

_MIN_SPREAD = 1e-12  # px²: the variance of points that coincide; no similarity transform fits them


def landmarks_usable(landmarks5: NDArray[np.floating[Any]]) -> bool:
    """True when (5, 2) landmarks are finite and not all on one point, i.e. align_face can use them. A
    broken model output can give a face box with all landmarks at one point; that is no face to align."""
    lm = np.asarray(landmarks5, np.float64).reshape(-1, 2)
    return bool(len(lm) >= 2 and np.isfinite(lm).all() and ((lm - lm.mean(0)) ** 2).sum() / len(lm) >= _MIN_SPREAD)


def similarity_transform(src: NDArray[np.floating[Any]], dst: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Least-squares similarity (rotation, uniform scale, translation, no reflection) mapping src → dst.

    src, dst: (K, 2) point sets in pixels (K >= 2). Returns the (2, 3) float64 matrix M such that
    dst ≈ M @ [x, y, 1].
    """
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if src.shape != dst.shape or src.shape[0] < 2:
        raise ValueError(f"similarity_transform: expected two (K, 2) point sets with K >= 2 of the same "
                         f"shape, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c ** 2).sum() / len(src)
    if var_s < _MIN_SPREAD:
        raise ValueError("similarity_transform: the source points coincide; cannot fit a transform")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # no reflections
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def warp_to_template(image_bgr: NDArray[np.uint8], landmarks5: NDArray[np.floating[Any]],
                     template: NDArray[np.floating[Any]], size: int) -> NDArray[np.uint8]:
    """Warp one face so its (5, 2) landmarks (source pixels, YuNet order) land on `template` ((5, 2) crop
    pixels) in a size x size crop. image_bgr: (H, W, 3) uint8 BGR. Returns (size, size, 3) uint8 BGR;
    pixels outside the source are black."""
    lm = np.asarray(landmarks5, np.float32)
    if lm.shape != (5, 2):
        raise ValueError(f"align: expected (5, 2) landmarks, got {lm.shape}")
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3:
        raise ValueError("align: expected an (H, W, 3) uint8 BGR image")
    m = similarity_transform(lm, template)
    return cv2.warpAffine(image_bgr, m, (int(size), int(size)),  # type: ignore[return-value]
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def align_face(image_bgr: NDArray[np.uint8], landmarks5: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Warp one face to the ArcFace template (the quality gates' crop, and MobileFaceNet's / EdgeFace's).

    image_bgr: (H, W, 3) uint8 BGR source image. landmarks5: (5, 2) float32 source pixels in YuNet's
    order (right eye, left eye, nose, right mouth, left mouth). Returns (112, 112, 3) uint8 BGR; pixels
    outside the source are black.
    """
    return warp_to_template(image_bgr, landmarks5, ARCFACE_TEMPLATE, ALIGNED_SIZE)


def canonical_crop(image_bgr: NDArray[np.uint8], landmarks5: NDArray[np.float32]
                   ) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """The crop the gallery stores with a template: (256, 256, 3) uint8 BGR in the CANONICAL_TEMPLATE
    framing, and the (5, 2) float32 landmarks mapped into it (where they really are, not the template),
    for re-alignment to any recognizer's template with warp_to_template."""
    lm = np.asarray(landmarks5, np.float32)
    crop = warp_to_template(image_bgr, lm, CANONICAL_TEMPLATE, CANONICAL_SIZE)
    m = similarity_transform(lm, CANONICAL_TEMPLATE)
    return crop, (lm @ m[:, :2].T + m[:, 2]).astype(np.float32)
