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
from vision_app.face.align import align_face, landmarks_usable
from vision_app.face.quality import QualityGates, check_enrollment
from vision_app.gallery.crops import FaceCrop
from vision_app.gallery.gallery import Gallery

log = logging.getLogger(__name__)

ImageInput = Union[str, "os.PathLike[str]", NDArray[np.uint8]]
THUMBNAIL_JPEG_QUALITY = 90


@dataclass(frozen=True)
class FoundFace:
    """A face that passed the quality gates: xyxy (4,) and landmarks (5, 2) float32 in source pixels,
    aligned (112, 112, 3) uint8 BGR ArcFace crop (the gates' crop and the thumbnail)."""

    xyxy: NDArray[np.float32]
    landmarks: NDArray[np.float32]
    aligned: NDArray[np.uint8]


@dataclass(frozen=True)
class FaceSample:
    """One enrolable face: embedding (D,) float32 L2-normalised, aligned (112, 112, 3) uint8 BGR crop,
    its box, and the canonical crop kept with the template (FaceCrop, for `gallery migrate`)."""

    embedding: NDArray[np.float32]
    aligned: NDArray[np.uint8]
    xyxy: NDArray[np.float32]
    crop: FaceCrop


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
    """detector (FaceDetector), embedder (FaceEmbedder: model_name, model_version, align), gates
    (QualityGates)."""

    def __init__(self, detector: Any, embedder: Any, gates: QualityGates) -> None:
        self.detector = detector
        self.embedder = embedder
        self.gates = gates

    @classmethod
    def from_context(cls, ctx: Any, model: str | None = None) -> "FaceAnalyzer":
        """Build from a StageContext: config [face] detector/detect_score, the recognizer `model`
        (default face.embedder) and the quality gates. Models are loaded once here."""
        from vision_app.face.stage import build_detector, build_embedder

        return cls(build_detector(ctx), build_embedder(ctx, model), QualityGates.from_config(ctx.config.face))

    @property
    def model(self) -> tuple[str, str]:
        return self.embedder.model_name, self.embedder.model_version

    def face(self, image_bgr: NDArray[np.uint8], single: bool = True) -> FoundFace | str:
        """The face of an (H, W, 3) uint8 BGR image, or the reason it is unusable. single=True
        (enrolment): the image must hold exactly one face. single=False (probes, calibration): the
        largest face is used. The face must pass every quality gate."""
        faces = self.detector.detect(image_bgr)
        if single:
            reason = check_enrollment(faces)
            if reason:
                return reason
        elif len(faces) == 0:
            return "no face found"
        wh = faces.xyxy[:, 2:] - faces.xyxy[:, :2]
        i = 0 if single else int(np.argmax(wh[:, 0] * wh[:, 1]))
        if not landmarks_usable(faces.landmarks[i]):
            return "landmarks unusable"
        aligned = align_face(image_bgr, faces.landmarks[i])
        reason = self.gates.check(faces.xyxy[i], faces.landmarks[i], aligned)
        if reason:
            return reason
        return FoundFace(faces.xyxy[i], faces.landmarks[i], aligned)

    def model_crop(self, image_bgr: NDArray[np.uint8], face: FoundFace) -> NDArray[np.uint8]:
        """The recognizer's own crop of `face` (the ArcFace crop when it uses that framing)."""
        return face.aligned if self.embedder.spec.arcface112 else self.embedder.align(image_bgr, face.landmarks)

    def sample(self, image_bgr: NDArray[np.uint8], single: bool = True) -> FaceSample | str:
        """One face of an image as an enrolable FaceSample (embedded, with its canonical crop), or the
        reason it is unusable (see face())."""
        found = self.face(image_bgr, single)
        if isinstance(found, str):
            return found
        emb = self.embedder.embed([self.model_crop(image_bgr, found)])[0]
        return FaceSample(emb, found.aligned, found.xyxy, FaceCrop.from_face(image_bgr, found.landmarks))


def thumbnail_jpeg(aligned_bgr: NDArray[np.uint8]) -> bytes:
    ok, buf = cv2.imencode(".jpg", aligned_bgr, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY])
    if not ok:
        raise GalleryError("could not encode the face thumbnail as JPEG")
    return buf.tobytes()


def enroll_images(gallery: Gallery, name: str, images: Sequence[ImageInput], analyzer: FaceAnalyzer, *,
                  add: bool = False, thumbnails: bool = True, crops: bool = True) -> int:
    """Enrol `name` from image files or camera frames ((H, W, 3) uint8 BGR), one template per image.

    All or nothing: every image must hold exactly one face passing the quality gates, else GalleryError
    lists each bad image and why, and nothing is stored. The templates go in in one transaction.
    add=True adds templates to an existing person. crops: keep each face's canonical crop (encrypted) so
    the gallery can be re-embedded with another model (`gallery migrate`). Returns the templates stored.
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
    return store_samples(gallery, name, samples, labels, analyzer.model, add=add, thumbnails=thumbnails,
                         crops=crops)


def store_samples(gallery: Gallery, name: str, samples: Sequence[FaceSample], sources: Sequence[str],
                  model: tuple[str, str], *, add: bool = False, thumbnails: bool = True, crops: bool = True) -> int:
    """One transaction: `name` with one template per sample (thumbnail and crop kept as asked)."""
    embeddings = np.stack([s.embedding for s in samples])
    thumbs = [thumbnail_jpeg(s.aligned) if thumbnails else None for s in samples]
    kept = [s.crop.encode() if crops else None for s in samples]
    return gallery.enroll(name, embeddings, *model, thumbnails=thumbs, sources=list(sources), crops=kept, add=add)
