"""Face fixtures: models loaded once per session from the real model pack."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from face_media import read_video


@pytest.fixture(scope="session")
def face_detector(stage_context):
    from vision_app.face.detector import FaceDetector

    return FaceDetector(stage_context.engine("yunet"), stage_context.config.face.detect_score)


@pytest.fixture(scope="session")
def identity_photos(media_dir: Path) -> dict[str, list[Path]]:
    """person folder name → sorted photo paths (12 people, 48 photos)."""
    out = {p.name: sorted(p.glob("*.jpg")) for p in sorted((media_dir / "faces").iterdir()) if p.is_dir()}
    if len(out) < 12:
        pytest.fail(f"expected 12 identity folders in {media_dir / 'faces'}, found {len(out)}")
    return out


@pytest.fixture(scope="session")
def carphone_frames(media_dir: Path) -> list[np.ndarray]:
    return read_video(media_dir / "video" / "carphone_face_176x144.mp4")


@pytest.fixture(scope="session")
def face_embedder(stage_context, store):
    from vision_app.face.embedder import FaceEmbedder

    name = stage_context.config.face.embedder
    return FaceEmbedder(stage_context.engine(name), name, store.entry(name).version)


def largest(faces) -> int:
    """Index of the largest face box (the subject of a portrait)."""
    wh = faces.xyxy[:, 2:] - faces.xyxy[:, :2]
    return int(np.argmax(wh[:, 0] * wh[:, 1]))


@pytest.fixture(scope="session")
def identity_embeddings(face_detector, face_embedder, identity_photos):
    """(labels (M,), embeddings (M, 128)) for the largest face of every identity photo."""
    from face_media import read_image
    from vision_app.face.align import align_face

    labels, crops = [], []
    for person, paths in identity_photos.items():
        for p in paths:
            img = read_image(p)
            faces = face_detector.detect(img)
            if len(faces) == 0:
                pytest.fail(f"no face in {p}")
            crops.append(align_face(img, faces.landmarks[largest(faces)]))
            labels.append(person)
    return np.array(labels), face_embedder.embed(crops)
