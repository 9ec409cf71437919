"""Face fixtures: models loaded once per session from the real model pack."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.face_media import read_video


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
def face_embedder(stage_context):
    """The configured (default) recognizer, with its manifest crop and normalisation."""
    from vision_app.face.stage import build_embedder

    return build_embedder(stage_context)


def largest(faces) -> int:
    """Index of the largest face box (the subject of a portrait)."""
    wh = faces.xyxy[:, 2:] - faces.xyxy[:, :2]
    return int(np.argmax(wh[:, 0] * wh[:, 1]))


@pytest.fixture(scope="session")
def identity_embeddings(face_detector, face_embedder, identity_photos):
    """(labels (M,), embeddings (M, D)) for the largest face of every identity photo."""
    from tests.helpers.face_media import read_image
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


@pytest.fixture(scope="session")
def passive(stage_context):
    from vision_app.face.passive import PassiveLiveness

    cfg = stage_context.config.face
    v2, v1se = cfg.passive_models
    return PassiveLiveness(stage_context.engine(v2), stage_context.engine(v1se), cfg.passive_threshold)


@pytest.fixture(scope="session")
def face_mesh(stage_context):
    from vision_app.face.mesh import FaceMesh

    return FaceMesh(stage_context.engine(stage_context.config.face.mesh_model))


@pytest.fixture(scope="session")
def still_video_frames(media_dir: Path, tmp_path_factory) -> list[np.ndarray]:
    """A 'video' of one still photo of a person (id01/2.jpg at 480 px wide) repeated for 2.5 s at 30 fps,
    written through the mp4v codec and read back, so it carries real compression noise."""
    import cv2

    from tests.helpers.face_media import read_image

    photo = read_image(media_dir / "faces" / "id01" / "2.jpg")
    photo = cv2.resize(photo, (480, round(photo.shape[0] * 480 / photo.shape[1])))
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    h, w = photo.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for _ in range(75):
        writer.write(photo)
    writer.release()
    return read_video(path)


@pytest.fixture(scope="session")
def gallery_path(tmp_path_factory, store, face_detector, face_embedder, identity_photos):
    """A gallery with id01..id03 enrolled from their first photo, through the gallery's own API."""
    from tests.helpers.face_media import read_image
    from vision_app.face.align import align_face
    from vision_app.gallery.gallery import Gallery

    path = tmp_path_factory.mktemp("gallery") / "gallery.db"
    with Gallery(path) as g:
        for person in ("id01", "id02", "id03"):
            img = read_image(identity_photos[person][0])
            faces = face_detector.detect(img)
            emb = face_embedder.embed([align_face(img, faces.landmarks[0])])
            g.enroll(person, emb, face_embedder.model_name, face_embedder.model_version)
    return path
