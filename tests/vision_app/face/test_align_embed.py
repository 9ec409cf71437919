"""Alignment geometry and MobileFaceNet embeddings on the identity photos."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.helpers.face_media import read_image
from vision_app.face.align import ARCFACE_TEMPLATE, align_face, similarity_transform


def _apply(m, pts):
    return pts @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("angle_deg,scale,shift", [
    (0.0, 1.0, (0.0, 0.0)), (0.0, 2.5, (10.0, -4.0)), (30.0, 0.5, (100.0, 200.0)),
    (-75.0, 3.0, (-20.0, 7.5)), (180.0, 1.2, (0.0, 50.0)),
])
def test_similarity_transform_recovers_known_transform(angle_deg, scale, shift):
    a = np.deg2rad(angle_deg)
    m_true = np.array([[scale * np.cos(a), -scale * np.sin(a), shift[0]],
                       [scale * np.sin(a), scale * np.cos(a), shift[1]]])
    src = ARCFACE_TEMPLATE.astype(np.float64)
    m = similarity_transform(src, _apply(m_true, src))
    np.testing.assert_allclose(m, m_true, atol=1e-6)


def test_similarity_transform_is_least_squares_with_noise():
    rng = np.random.default_rng(0)
    src = ARCFACE_TEMPLATE.astype(np.float64) * 3 + 40
    noisy = src + rng.normal(0, 0.5, src.shape)
    m = similarity_transform(noisy, ARCFACE_TEMPLATE)
    assert np.abs(_apply(m, noisy) - ARCFACE_TEMPLATE).max() < 2.0
    assert np.sqrt(abs(np.linalg.det(m[:, :2]))) == pytest.approx(1 / 3, rel=0.05)


def test_similarity_transform_rejects_degenerate_points():
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), ARCFACE_TEMPLATE)
    with pytest.raises(ValueError, match="K, 2"):
        similarity_transform(np.ones((1, 2)), np.ones((1, 2)))


def test_align_maps_landmarks_onto_template():
    # a synthetic image with bright dots at the landmarks: after alignment the dots sit on the template
    img = np.zeros((400, 300, 3), np.uint8)
    lm = (ARCFACE_TEMPLATE * 2.2 + [60, 90]).astype(np.float32)
    for x, y in lm:
        cv2.circle(img, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    out = align_face(img, lm)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    for x, y in ARCFACE_TEMPLATE:
        assert out[int(round(y)), int(round(x))].min() > 200


def test_align_agrees_with_opencv_aligncrop(face_detector, models_dir, media_dir):
    img = read_image(media_dir / "scenes" / "astronaut.png")
    f = face_detector.detect(img)
    row = np.r_[f.xyxy[0, :2], f.xyxy[0, 2:] - f.xyxy[0, :2], f.landmarks[0].ravel(), f.score[0]]
    rec = cv2.FaceRecognizerSF.create(str(models_dir / "face" / "mobilefacenet_128d.onnx"), "")
    ref = rec.alignCrop(img, row.astype(np.float32)[None])
    assert np.abs(align_face(img, f.landmarks[0]).astype(int) - ref.astype(int)).mean() < 0.5


@pytest.mark.parametrize("name, dim, size", [("edgeface-xs", 512, 112), ("face-reid-0095", 256, 128),
                                             ("mobilefacenet", 128, 112)])
def test_every_recognizer_embeds_with_its_own_crop(stage_context, face_detector, media_dir, name, dim, size):
    from vision_app.face.stage import build_embedder

    emb = build_embedder(stage_context, name)
    img = read_image(media_dir / "scenes" / "group6.jpg")
    faces = face_detector.detect(img)
    crops = [emb.align(img, lm) for lm in faces.landmarks]
    assert crops[0].shape == (size, size, 3) and emb.spec.arcface112 is (size == 112)
    e_list = emb.embed(crops)
    e_arr = emb.embed(np.stack(crops))
    assert e_list.shape == (6, dim) and e_list.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e_list, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e_list, e_arr, atol=1e-5)
    np.testing.assert_allclose(emb.embed(crops[2]), e_list[2:3], atol=1e-5)
    assert emb.embed([]).shape == (0, dim)
    assert (emb.model_name, emb.model_version) == (name, stage_context.models.entry(name).version)
    # the six people of the group photo are six different people to every recognizer
    sim = e_list @ e_list.T
    assert sim[np.triu_indices(6, 1)].max() < 0.4


def test_reid_leaky_relu_rewrite_is_exact(models_dir, face_detector, media_dir, stage_context):
    """The engine runs face_reid_0095's scalar PRelus as LeakyRelu: same numbers as the file as it is."""
    import onnxruntime as ort

    from engines.onnx_rewrite import scalar_prelu_to_leaky_relu
    from vision_app.face.stage import build_embedder

    path = models_dir / "face" / "face_reid_0095.onnx"
    rewritten = scalar_prelu_to_leaky_relu(path)
    assert rewritten is not None and b"PRelu" not in rewritten
    assert scalar_prelu_to_leaky_relu(models_dir / "face" / "yunet_2026may.onnx") is None
    emb = build_embedder(stage_context, "face-reid-0095")
    img = read_image(media_dir / "scenes" / "astronaut.png")
    crop = emb.align(img, face_detector.detect(img).landmarks[0])
    x = emb.spec.preprocess(crop[None])
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = plain.run(None, {plain.get_inputs()[0].name: x})[0]
    got = emb.engine.infer({"input": x})
    np.testing.assert_allclose(next(iter(got.values())), ref, rtol=0, atol=1e-5)


def test_embed_rejects_unaligned_crop(face_embedder):
    with pytest.raises(ValueError, match="112, 112, 3"):
        face_embedder.embed([np.zeros((100, 100, 3), np.uint8)])


def test_same_person_scores_clearly_higher(identity_embeddings):
    labels, emb = identity_embeddings
    sim = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    iu = np.triu_indices(len(labels), 1)
    genuine, impostor = sim[iu][same[iu]], sim[iu][~same[iu]]
    assert genuine.mean() > 0.6 and impostor.mean() < 0.15, (genuine.mean(), impostor.mean())
    assert genuine.mean() - impostor.mean() > 0.5
    # leave-one-out nearest neighbour: the most similar other photo is the same person
    np.fill_diagonal(sim, -2)
    nn_ok = labels[sim.argmax(1)] == labels
    assert nn_ok.mean() >= 0.95, f"nearest neighbour right for {nn_ok.mean():.0%}"
