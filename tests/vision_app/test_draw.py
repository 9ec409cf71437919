"""Annotators draw on a copy; the kiosk's overlay shows boxes but no names or scores."""
from __future__ import annotations

import numpy as np

from vision_app.config import load_config
from vision_app.draw import render_result
from vision_app.stages import StageContext, build_pipeline
from vision_app.types import Faces, Frame, FrameResult


def face_result() -> FrameResult:
    img = np.full((240, 320, 3), 90, np.uint8)
    lm = np.array([[[130, 100], [170, 100], [150, 120], [135, 140], [165, 140]]], np.float32)
    faces = Faces(np.array([[110, 80, 190, 170]], np.float32), np.array([0.9], np.float32), lm,
                  identity=("Alice",), match_score=np.array([0.8], np.float32),
                  liveness=np.array([0.99], np.float32))
    return FrameResult(frame=Frame(img, 0, 0.0, "t"), image=img, faces=faces)


def test_face_labels_drawn_only_with_details() -> None:
    r = face_result()
    full = render_result(r).image
    plain = render_result(r, face_details=False).image
    assert (r.frame.image == 90).all()  # drawn on copies
    label_band = (slice(40, 80), slice(110, 320))  # above the box, where the name label goes
    assert (full[label_band] != 90).any() and (plain[label_band] == 90).all()
    assert (plain[80:171, 110:191] != 90).any()  # the box itself is still drawn


def test_pipeline_render_follows_face_overlay_details(store) -> None:
    off = load_config(None, {"face.overlay_details": False})
    p = build_pipeline(["passthrough"], StageContext(off, None, backend="none"))
    r = face_result()
    assert p.render is not None and (p.render(r).image[40:80, 110:320] == 90).all()
