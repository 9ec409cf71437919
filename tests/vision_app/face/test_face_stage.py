"""The face pipeline stage end to end: real models, real video, a real (temporary) gallery."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers.face_media import read_image
from vision_app.config import load_config
from vision_app.face.observation import FaceObservation, observations
from vision_app.pipeline import Pipeline
from vision_app.stages import StageContext, build_stage, parse_tasks
from vision_app.types import Frame

FPS = 30.0


def _context(store, **overrides):
    return StageContext(load_config(None, overrides), store, backend="onnxruntime", backend_reason="tests")


def _run(stage, frames, source="test"):
    pipe = Pipeline([stage])
    return [pipe.run(Frame(f, i, i / FPS, source)) for i, f in enumerate(frames)]


@pytest.fixture(scope="module")
def stage_no_gallery(store, tmp_path_factory):
    ctx = _context(store, **{"face.gallery": str(tmp_path_factory.mktemp("none") / "absent.db")})
    stage = build_stage("face", ctx)
    yield stage
    stage.close()


def test_face_task_is_registered():
    assert parse_tasks("face") == ["face"]


def test_no_gallery_means_no_identity_and_no_file_created(stage_no_gallery, media_dir, tmp_path):
    (res,) = _run(stage_no_gallery, [read_image(media_dir / "scenes" / "group6.jpg")])
    assert len(res.faces) == 6 and res.faces.identity is None and res.faces.liveness is not None
    obs = observations(res.extras)
    assert len(obs) == 6 and all(isinstance(o, FaceObservation) for o in obs)
    assert all(o.identity is None and math.isnan(o.similarity) for o in obs)
    assert not res.errors


def test_carphone_through_the_stage(stage_no_gallery, carphone_frames):
    stage_no_gallery.reset()
    results = _run(stage_no_gallery, carphone_frames[:80], "carphone")  # 2.7 s: past the window and the blink
    assert not any(r.errors for r in results)
    with_face = [r for r in results if len(r.faces)]
    assert len(with_face) >= 0.95 * len(results)
    ids = [int(r.faces.tracker_id[0]) for r in with_face]
    assert max(set(ids), key=ids.count) >= 1 and ids.count(max(set(ids), key=ids.count)) >= 0.9 * len(ids)
    last = observations(results[-1].extras)[0]
    assert last.temporal_live is True and last.passive_live and last.blink_count >= 1
    assert last.frames_tracked >= 70 and not math.isnan(last.ear) and last.embedding.shape == (512,)
    assert last.to_dict()["xyxy"] == list(last.xyxy)


def test_still_photo_is_identified_but_not_live(store, gallery_path, still_video_frames):
    ctx = _context(store, **{"face.gallery": str(gallery_path)})
    stage = build_stage("face", ctx)
    try:
        results = _run(stage, still_video_frames, "still")
    finally:
        stage.close()
    obs = [observations(r.extras)[0] for r in results]
    sims = [o.similarity for o in obs]
    assert all(o.identity == "id01" for o in obs), sims
    assert results[-1].faces.identity == ("id01",)
    assert not any(o.blink_seen for o in obs)
    assert obs[-1].temporal_live is False and all(o.temporal_live is not True for o in obs)


def test_other_people_are_not_accepted(store, gallery_path, identity_photos):
    ctx = _context(store, **{"face.gallery": str(gallery_path)})
    stage = build_stage("face", ctx)
    try:
        frames = [read_image(identity_photos[p][1]) for p in ("id02", "id11", "id12")]
        # each photo on its own: a stage sees one stream, so reset between unrelated images
        got = []
        for f in frames:
            stage.reset()
            (res,) = _run(stage, [f])
            o = max(observations(res.extras), key=lambda o: o.face_size)
            got.append(o.identity)
    finally:
        stage.close()
    assert got == ["id02", None, None]


def test_tiny_faces_are_reported_not_analysed(store, media_dir):
    ctx = _context(store, **{"face.gallery": "/nonexistent/g.db", "face.min_face_px": 1000.0})
    stage = build_stage("face", ctx)
    (res,) = _run(stage, [read_image(media_dir / "scenes" / "astronaut.png")])
    (o,) = observations(res.extras)
    assert o.quality.startswith("too small") and o.embedding is None and math.isnan(o.passive_score)
    assert np.isnan(res.faces.liveness).all()
