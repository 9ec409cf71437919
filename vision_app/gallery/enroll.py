"""Enrolment: photos or camera frames → quality-checked templates → one gallery transaction.

FaceAnalyzer bundles the face-analysis parts (detector, quality gates, alignment, embedder) the way
enrolment and calibration use them: exactly one face per image, every quality gate passing.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.errors import GalleryError
from vision_app.face.align import align_face
from vision_app.face.quality import QualityGates, check_enrollment
from vision_app.gallery.gallery import Gallery

log = logging.getLogger(__name__)

ImageInput = Union[str, "os.PathLike[str]", NDArray[np.uint8]]
THUMBNAIL_JPEG_QUALITY = 90


@dataclass(frozen=True)
class FaceSample:
    """One enrolable face: embedding (D,) float32 L2-normalised, aligned (112, 112, 3) uint8 BGR crop."""

    embedding: NDArray[np.float32]
    aligned: NDArray[np.uint8]
    xyxy: NDArray[np.float32]


def read_image(image: ImageInput, label: str = "") -> NDArray[np.uint8]:
    """A path (read as BGR) or an (H, W, 3) uint8 BGR array (a camera frame) → (H, W, 3) uint8 BGR."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise GalleryError(f"{label or 'frame'}: expected an (H, W, 3) uint8 BGR image, got "
                               f"{image.dtype} {image.shape}")
        return image
    path = Path(image)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if img is None:
        raise GalleryError(f"cannot read the image {path}: the file is missing or not an image "
                           f"(JPEG, PNG, ...)")
    return img  # type: ignore[return-value]


class FaceAnalyzer:
    """detector (FaceDetector), embedder (FaceEmbedder: model_name, model_version), gates (QualityGates)."""

    def __init__(self, detector: Any, embedder: Any, gates: QualityGates) -> None:
        self.detector = detector
        self.embedder = embedder
        self.gates = gates

    @classmethod
    def from_context(cls, ctx: Any) -> "FaceAnalyzer":
        """Build from a StageContext: config [face] detector/embedder/detect_score and quality gates."""
        from vision_app.face.detector import FaceDetector
        from vision_app.face.embedder import FaceEmbedder

        cfg = ctx.config.face
        entry = ctx.models.entry(cfg.embedder)
        return cls(FaceDetector(ctx.engine(cfg.detector), cfg.detect_score),
                   FaceEmbedder(ctx.engine(cfg.embedder), entry.name, entry.version),
                   QualityGates.from_config(cfg))

    @property
    def model(self) -> tuple[str, str]:
        return self.embedder.model_name, self.embedder.model_version

    def sample(self, image_bgr: NDArray[np.uint8], single: bool = True) -> FaceSample | str:
        """One face of an image (H, W, 3) uint8 BGR as a FaceSample, or the reason it is unusable.

        single=True (enrolment): the image must hold exactly one face. single=False (probes,
        calibration): the largest face is used. The face must pass every quality gate."""
        faces = self.detector.detect(image_bgr)
        if single:
            reason = check_enrollment(faces)
            if reason:
                return reason
        elif len(faces) == 0:
            return "no face found"
        wh = faces.xyxy[:, 2:] - faces.xyxy[:, :2]
        i = 0 if single else int(np.argmax(wh[:, 0] * wh[:, 1]))
        aligned = align_face(image_bgr, faces.landmarks[i])
        reason = self.gates.check(faces.xyxy[i], faces.landmarks[i], aligned)
        if reason:
            return reason
        emb = self.embedder.embed([aligned])[0]
        return FaceSample(emb, aligned, faces.xyxy[i])


def thumbnail_jpeg(aligned_bgr: NDArray[np.uint8]) -> bytes:
    ok, buf = cv2.imencode(".jpg", aligned_bgr, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY])
    if not ok:
        raise GalleryError("could not encode the face thumbnail as JPEG")
    return buf.tobytes()


def enroll_images(gallery: Gallery, name: str, images: Sequence[ImageInput], analyzer: FaceAnalyzer, *,
                  add: bool = False, thumbnails: bool = True) -> int:
    """Enrol `name` from image files or camera frames ((H, W, 3) uint8 BGR), one template per image.

    All or nothing: every image must hold exactly one face passing the quality gates, else GalleryError
    lists each bad image and why, and nothing is stored. The templates go in in one transaction.
    add=True adds templates to an existing person. Returns the number of templates stored.
    """
    if not images:
        raise GalleryError(f"enrol '{name}': no images given")
    samples: list[FaceSample] = []
    labels: list[str] = []
    problems: list[str] = []
    for i, image in enumerate(images):
        label = str(image) if not isinstance(image, np.ndarray) else f"frame {i + 1}"
        try:
            result = analyzer.sample(read_image(image, label))
        except GalleryError as exc:
            problems.append(str(exc))
            continue
        if isinstance(result, str):
            problems.append(f"{label}: {result}")
        else:
            samples.append(result)
            labels.append(Path(label).name if not isinstance(image, np.ndarray) else label)
    if problems:
        raise GalleryError(f"enrolment of '{name}' refused, nothing stored: " + "; ".join(problems))
    embeddings = np.stack([s.embedding for s in samples])
    thumbs = [thumbnail_jpeg(s.aligned) if thumbnails else None for s in samples]
    return gallery.enroll(name, embeddings, *analyzer.model, thumbnails=thumbs, sources=labels, add=add)
