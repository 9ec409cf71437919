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
