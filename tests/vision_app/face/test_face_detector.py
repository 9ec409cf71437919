"""YuNet decoder: geometry on synthetic outputs, behaviour on real photos, agreement with OpenCV."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.helpers.face_media import read_image
from vision_app.face.detector import STRIDES, decode_yunet, pad_to_multiple


def _blank_outputs(ph: int, pw: int) -> dict[str, np.ndarray]:
    out = {}
    for s in STRIDES:
        n = (ph // s) * (pw // s)
        out[f"cls_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"obj_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"bbox_{s}"] = np.zeros((1, n, 4), np.float32)
        out[f"kps_{s}"] = np.zeros((1, n, 10), np.float32)
    return out


@pytest.mark.parametrize("stride,row,col,bbox,cls,obj,exp_box,exp_score", [
    # centre offset 0.5 cell, size exp(0)*s = s
    (8, 0, 0, (0.5, 0.5, 0.0, 0.0), 1.0, 1.0, (0, 0, 8, 8), 1.0),
    (16, 2, 3, (0.0, 0.0, np.log(2), np.log(4)), 0.81, 1.0, (3 * 16 - 16, 2 * 16 - 32, 3 * 16 + 16, 2 * 16 + 32), 0.9),
    (32, 1, 1, (0.25, 0.75, np.log(3), 0.0), 0.5, 0.5, (40 - 48, 56 - 16, 40 + 48, 56 + 16), 0.5),
    # cls/obj outside 0..1 are clipped before the geometric mean
    (8, 3, 5, (0.0, 0.0, 0.0, 0.0), 1.7, 0.64, (40 - 4, 24 - 4, 40 + 4, 24 + 4), 0.8),
])
def test_decode_one_grid_point(stride, row, col, bbox, cls, obj, exp_box, exp_score):
    ph, pw = 64, 96
    out = _blank_outputs(ph, pw)
    i = row * (pw // stride) + col
    out[f"cls_{stride}"][0, i, 0] = cls
    out[f"obj_{stride}"][0, i, 0] = obj
    out[f"bbox_{stride}"][0, i] = bbox
    out[f"kps_{stride}"][0, i] = np.arange(10, dtype=np.float32) / 10
    boxes, scores, kps = decode_yunet(out, (ph, pw), 0.3)
    assert boxes.shape == (1, 4) and kps.shape == (1, 5, 2)
    np.testing.assert_allclose(boxes[0], exp_box, atol=1e-4)
    assert scores[0] == pytest.approx(exp_score, abs=1e-5)
    k = np.arange(10, dtype=np.float32).reshape(5, 2) / 10
    np.testing.assert_allclose(kps[0], np.stack([(col + k[:, 0]) * stride, (row + k[:, 1]) * stride], 1),
                               atol=1e-4)


def test_decode_below_threshold_is_empty():
    out = _blank_outputs(32, 32)
    out["cls_8"][0, 0, 0] = out["obj_8"][0, 0, 0] = 0.5
    boxes, scores, kps = decode_yunet(out, (32, 32), 0.6)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and kps.shape == (0, 5, 2)


@pytest.mark.parametrize("h,w,exp", [(144, 176, (160, 192)), (32, 64, (32, 64)), (1, 33, (32, 64))])
def test_pad_to_multiple(h, w, exp):
    img = np.full((h, w, 3), 7, np.uint8)
    img[..., 2] = 200
    blob = pad_to_multiple(img)
    assert blob.shape == (1, 3, *exp) and blob.dtype == np.float32
    assert blob[0, 2, :h, :w].min() == 200 and blob[0, 0, :h, :w].max() == 7  # BGR order kept
    assert blob[0, :, h:, :].sum() == 0 and blob[0, :, :, w:].sum() == 0


def test_every_identity_photo_has_a_face(face_detector, identity_photos):
    missed = [str(p) for paths in identity_photos.values() for p in paths
              if len(face_detector.detect(read_image(p))) == 0]
    assert not missed, f"no face found in {missed}"


@pytest.mark.parametrize("name,count", [("coffee.png", 0), ("chelsea.png", 0), ("group6.jpg", 6),
                                        ("astronaut.png", 1)])
def test_face_counts_in_scenes(face_detector, media_dir, name, count):
    assert len(face_detector.detect(read_image(media_dir / "scenes" / name))) == count


def test_astronaut_box_and_eyes(face_detector, media_dir):
    faces = face_detector.detect(read_image(media_dir / "scenes" / "astronaut.png"))
    np.testing.assert_allclose(faces.xyxy[0], [178, 63, 268, 176], atol=2)
    np.testing.assert_allclose(faces.landmarks[0, :2], [[200, 102], [247, 103]], atol=2)


def test_carphone_frames_have_a_face(face_detector, carphone_frames):
    found = sum(len(face_detector.detect(f)) > 0 for f in carphone_frames)
    assert found >= 0.95 * len(carphone_frames), f"faces in {found}/{len(carphone_frames)} frames"


def _opencv_reference(models_dir, img):
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    h, w = img.shape[:2]
    ref = cv2.FaceDetectorYN.create(str(models_dir / "face" / "yunet_2026may.onnx"), "", (w, h), 0.6, 0.3, 5000)
    _, r = ref.detect(img)
    if r is None:
        return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32)
    r = r[np.argsort(-r[:, 14])]
    boxes = np.c_[r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]]
    return boxes, r[:, 4:14].reshape(-1, 5, 2)


@pytest.mark.parametrize("rel", ["scenes/group6.jpg", "scenes/zidane.jpg", "scenes/astronaut.png",
                                 "scenes/bus.jpg", "scenes/coffee.png", "faces/id09/1.jpg",
                                 "faces/id06/3.jpg", "spoof/spoof_1.jpg", "spoof/live_1.jpg"])
def test_decoder_matches_opencv(face_detector, models_dir, media_dir, rel):
    img = read_image(media_dir / rel)
    ref_boxes, ref_kps = _opencv_reference(models_dir, img)
    faces = face_detector.detect(img)
    assert len(faces) == len(ref_boxes)
    if len(faces):
        # both are sorted by score; match each reference face to our nearest box to be order-proof
        for rb, rk in zip(ref_boxes, ref_kps):
            j = int(np.argmin(np.abs(faces.xyxy - rb).sum(1)))
            assert np.abs(faces.xyxy[j] - rb).max() <= 1.0
            assert np.abs(faces.landmarks[j] - rk).max() <= 1.0


def test_detect_rejects_wrong_input(face_detector):
    with pytest.raises(ValueError, match="uint8 BGR"):
        face_detector.detect(np.zeros((10, 10), np.uint8))
