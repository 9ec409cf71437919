"""Real detectors on real photos: Yolo-Fastest-1.1-xl and YOLOX-nano through the manifest, the stage and
the `detect` CLI. Reference boxes are hand-drawn around the objects (not model outputs), matched at
IoU >= 0.5."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision_app.config import load_config
from vision_app.detect.detector import DetectParams, Detector
from vision_app.detect.nms import box_iou
from vision_app.errors import ModelError
from vision_app.stages import StageContext, build_stage
from vision_app.types import Detections, Frame, FrameResult

REPO = Path(__file__).resolve().parents[3]
README_PARAMS = DetectParams(conf=0.25, iou=0.45, max_detections=300)

# hand-drawn reference boxes [x1, y1, x2, y2] in source pixels
REFERENCE = {
    "bus.jpg": [("bus", [18, 230, 805, 750]), ("person", [48, 398, 245, 905]), ("person", [223, 405, 345, 860]),
                ("person", [668, 390, 810, 880]), ("person", [0, 550, 68, 875])],
    "dog.jpg": [("dog", [130, 220, 315, 540]), ("bicycle", [120, 125, 570, 450]), ("car", [465, 75, 690, 170])],
    "zidane.jpg": [("person", [745, 40, 1140, 720]), ("person", [125, 195, 715, 720])],
    "coffee.png": [("cup", [175, 10, 410, 290])],
}


@pytest.fixture(scope="module")
def fastest(stage_context) -> Detector:
    name = "yolo-fastest-1.1-xl"
    return Detector(stage_context.models.entry(name), stage_context.engine(name), README_PARAMS)


@pytest.fixture(scope="module")
def yolox(stage_context) -> Detector:
    name = "yolox-nano"
    return Detector(stage_context.models.entry(name), stage_context.engine(name), README_PARAMS)


def image(media_dir: Path, name: str) -> np.ndarray:
    img = cv2.imread(str(media_dir / "scenes" / name))
    assert img is not None, name
    return img


def labels(dets: Detections) -> list[str]:
    return sorted(dets.label(i) for i in range(len(dets)))


def assert_on_reference_objects(dets: Detections, refs: list[tuple[str, list[int]]]) -> None:
    """Every reference object is covered by exactly one detection of its class (IoU >= .5), and no class
    appears twice on one object."""
    for label, ref in refs:
        same = np.array([dets.label(i) == label for i in range(len(dets))], bool)
        iou = box_iou(np.array([ref], np.float32), dets.xyxy)[0]
        hits = np.flatnonzero(same & (iou >= 0.5))
        assert hits.size == 1, f"{label} at {ref}: {hits.size} detections with IoU >= .5 (IoUs {iou.round(2)})"
    for c in set(dets.class_id.tolist()):
        boxes = dets.xyxy[dets.class_id == c]
        iou = box_iou(boxes, boxes)
        np.fill_diagonal(iou, 0)
        assert (iou <= README_PARAMS.iou).all(), f"class {c} twice on one object: {iou.round(2)}"


def test_fastest_bus_matches_the_readme_scores_and_objects(fastest: Detector, media_dir: Path) -> None:
    dets = fastest(image(media_dir, "bus.jpg"))
    assert labels(dets) == ["bus", "person", "person", "person", "person"]
    persons = sorted((float(s) for s, c in zip(dets.confidence, dets.class_id) if c == 0), reverse=True)
    np.testing.assert_allclose(persons, [0.99, 0.98, 0.88, 0.41], atol=0.02)
    np.testing.assert_allclose(dets.confidence[dets.class_id == 5], [0.93], atol=0.02)
    assert_on_reference_objects(dets, REFERENCE["bus.jpg"])
    assert dets.xyxy.dtype == np.float32 and (dets.xyxy[:, 2:] <= [810, 1080]).all() and (dets.xyxy >= 0).all()
    assert list(dets.confidence) == sorted(dets.confidence, reverse=True)


@pytest.mark.parametrize("name, required", [
    ("dog.jpg", ["bicycle", "car", "dog"]),
    ("zidane.jpg", ["person", "person"]),
    ("coffee.png", ["cup"]),
])
def test_fastest_finds_the_objects(fastest: Detector, media_dir: Path, name: str, required: list[str]) -> None:
    dets = fastest(image(media_dir, name))
    found = labels(dets)
    for label in set(required):
        assert found.count(label) == required.count(label), f"{name}: {found}"
    assert_on_reference_objects(dets, REFERENCE[name])


@pytest.mark.parametrize("name, required", [("bus.jpg", {"bus", "person"}), ("zidane.jpg", {"person"})])
def test_yolox_nano(yolox: Detector, media_dir: Path, name: str, required: set[str]) -> None:
    dets = yolox(image(media_dir, name))
    assert required <= set(labels(dets))
    if name == "zidane.jpg":
        assert labels(dets).count("person") == 2
        assert_on_reference_objects(dets, REFERENCE[name])
    else:
        assert labels(dets).count("bus") == 1 and labels(dets).count("person") >= 3
        assert_on_reference_objects(dets, REFERENCE[name][:4])  # the cut-off person at the edge is optional


def test_agnostic_nms_and_max_detections(stage_context, fastest: Detector, media_dir: Path) -> None:
    img = image(media_dir, "dog.jpg")
    aware = fastest(img)
    assert {"car", "truck"} <= set(labels(aware))  # same object, two classes: allowed class-aware
    agnostic = Detector(fastest.entry, fastest.engine, replace(README_PARAMS, class_agnostic=True))(img)
    assert "truck" not in labels(agnostic) and "car" in labels(agnostic)
    capped = Detector(fastest.entry, fastest.engine, replace(README_PARAMS, max_detections=2))(img)
    assert len(capped) == 2 and np.allclose(capped.confidence, aware.confidence[:2])


def test_manifest_that_does_not_match_the_model_fails_at_load_with_expected_and_found(stage_context) -> None:
    good = stage_context.models.entry("yolo-fastest-1.1-xl")
    heads = [dict(h) for h in good.decode["heads"]]
    heads[0]["stride"] = 16  # the 10x10 head declared as stride 16 -> expects 20x20
    bad = replace(good, decode={**good.decode, "heads": heads})
    engine = stage_context.engine("yolo-fastest-1.1-xl")
    with pytest.raises(ModelError) as err:
        Detector(bad, engine, README_PARAMS)
    msg = str(err.value)
    assert "expects output 'l120' of shape [1, 255, 20, 20]" in msg and "the model has [1, 255, 10, 10]" in msg
    with pytest.raises(ModelError, match=r"expects output 'output' of shape \[1, 3549, 86\]"):
        Detector(replace(stage_context.models.entry("yolox-nano"), classes=tuple("x" * 81)),
                 stage_context.engine("yolox-nano"), README_PARAMS)


def test_stage_gives_source_pixel_detections_with_coco_names(store, media_dir: Path) -> None:
    cfg = load_config(overrides={"detect.track": False})
    stage = build_stage("detect", StageContext(cfg, store, backend="onnxruntime"))
    img = image(media_dir, "bus.jpg")
    frame = Frame(img, 0, 0.0, "bus.jpg")
    result = stage.finish(stage.process(FrameResult(frame=frame, image=img)))
    dets = result.detections
    assert dets is not None and dets.tracker_id is None and dets.class_names[5] == "bus"
    assert labels(dets) == ["bus", "person", "person", "person", "person"]
    assert set(result.extras["detect"]) == {"preprocess", "model", "postprocess"}
    stage.close()


def test_tracking_on_bikes_video_keeps_ids(store, media_dir: Path) -> None:
    """Every frame of bikes_640x272.mp4 through the stage with tracking on. An ID switch is a detection
    that continues a box of the same class from the previous frame (IoU >= .5) or from a track that
    vanished at most 10 frames ago (IoU >= .3) under another id."""
    stage = build_stage("detect", StageContext(load_config(), store, backend="onnxruntime"))
    cap = cv2.VideoCapture(str(media_dir / "video" / "bikes_640x272.mp4"))
    tracks: dict[int, list[tuple[int, np.ndarray, int]]] = {}
    switches: list[tuple[int, int, int]] = []
    prev: Detections | None = None
    index = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        r = stage.finish(stage.process(FrameResult(frame=Frame(img, index, 0.0, "bikes"), image=img)))
        dets = r.detections
        assert dets is not None and dets.tracker_id is not None
        ids = dets.tracker_id
        for j in np.flatnonzero(ids >= 0):
            tid, c, b = int(ids[j]), int(dets.class_id[j]), dets.xyxy[j]
            if tid not in tracks:  # a new id: was this object already tracked under another one?
                for other, hist in tracks.items():
                    last_i, last_b, last_c = hist[-1]
                    if other in ids or last_c != c or index - last_i > 10:
                        continue
                    thr = 0.5 if last_i == index - 1 else 0.3
                    if box_iou(last_b[None], b[None])[0, 0] >= thr:
                        switches.append((index, other, tid))
                        break
            tracks.setdefault(tid, []).append((index, b, c))
        prev = dets
        index += 1
    stage.close()
    assert index == 250 and prev is not None
    longest = sorted(tracks.values(), key=len, reverse=True)[:5]
    spans = [(h[0][0], h[-1][0], len(h)) for h in longest]
    # the longest tracks cover most of the frames of their span (no fragmentation into short pieces)
    assert all(n >= 20 and n >= 0.8 * (last - first + 1) for first, last, n in spans), spans
    # the cyclist crossing at frames ~105-136 keeps one person id through the shot
    cyclist = [h for h in tracks.values() if h[0][2] == 0 and h[0][0] <= 110 and h[-1][0] >= 130]
    assert len(cyclist) == 1, [(h[0][0], h[-1][0]) for h in tracks.values() if h[0][2] == 0]
    assert len(switches) <= 2, switches


def test_detect_cli_json_end_to_end(models_dir: Path, media_dir: Path) -> None:
    env = {**os.environ, "VISION_APP_MODELS": str(models_dir)}
    out = subprocess.run([sys.executable, "main.py", "detect", str(media_dir / "scenes" / "bus.jpg"),
                          "--json", "--conf", "0.25", "--iou", "0.45"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert list(data) == ["detections"]
    dets = data["detections"]
    assert sorted(d["label"] for d in dets) == ["bus", "person", "person", "person", "person"]
    bus = next(d for d in dets if d["label"] == "bus")
    assert list(bus) == ["label", "class_id", "score", "xyxy"] and bus["class_id"] == 5
    assert abs(bus["score"] - 0.93) <= 0.02
    assert box_iou(np.array([bus["xyxy"]]), np.array([REFERENCE["bus.jpg"][0][1]]))[0, 0] >= 0.5
    bad = subprocess.run([sys.executable, "main.py", "detect", str(media_dir / "nope.jpg"), "--json"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not found" in bad.stderr and bad.stdout == ""
