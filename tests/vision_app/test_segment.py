"""Segmentation stage on the real selfie and DeepLabV3 models and real photos from ../shared/media."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision_app.config import load_config
from vision_app.draw import render_result
from vision_app.pipeline import Pipeline
from vision_app.segment import build_segment_stage
from vision_app.segment.overlay import cover, soft_alpha
from vision_app.stages import StageContext
from vision_app.types import Detections, Frame, FrameResult

REPO = Path(__file__).resolve().parents[2]
ASTRONAUT_FACE = (178, 63, 268, 176)  # YuNet's box on astronaut.png (models README)


def make_stage(store, **overrides):
    cfg = load_config(None, {f"segment.{k}": v for k, v in overrides.items()})
    return build_segment_stage(StageContext(cfg, store, backend="onnxruntime", backend_reason="tests"))


@pytest.fixture(scope="module")
def scenes(media_dir: Path) -> dict[str, np.ndarray]:
    names = ("astronaut.png", "zidane.jpg", "bus.jpg", "chelsea.png", "coffee.png")
    return {n: cv2.imread(str(media_dir / "scenes" / n)) for n in names}


@pytest.fixture(scope="module")
def selfie(store):
    return make_stage(store, model="selfie", overlay="blur", smoothing=0.0)


@pytest.fixture(scope="module")
def deeplab(store):
    return make_stage(store, model="deeplab", overlay="color", smoothing=0.0)


def run(stage, img: np.ndarray, index: int = 0, source: str = "test") -> FrameResult:
    """The stage's per-frame process, then its in-order finish, as Pipeline.run does."""
    frame = Frame(img, index, 0.0, source)
    return stage.finish(stage.process(FrameResult(frame=frame, image=frame.image)))


@pytest.mark.parametrize("name", ["astronaut.png", "zidane.jpg"])
def test_selfie_finds_the_person(selfie, scenes, name: str) -> None:
    img = scenes[name]
    mask = run(selfie, img).mask
    assert mask.labels.shape == img.shape[:2] and mask.probs is not None
    assert mask.shares().get("person", 0.0) >= 0.45
    # smooth edges: the upsampled probability has intermediate values along the outline
    soft = np.count_nonzero((mask.probs > 0.1) & (mask.probs < 0.9))
    assert soft > 0.5 * (img.shape[0] + img.shape[1])


def test_selfie_mask_covers_the_astronauts_face(selfie, scenes) -> None:
    x1, y1, x2, y2 = ASTRONAUT_FACE
    mask = run(selfie, scenes["astronaut.png"]).mask
    assert mask.labels[y1:y2, x1:x2].mean() >= 0.95  # the box's corners reach past the cheeks
    dx, dy = (x2 - x1) // 10, (y2 - y1) // 10
    assert mask.labels[y1 + dy:y2 - dy, x1 + dx:x2 - dx].all()


@pytest.mark.parametrize("name, at_least, absent, largest", [
    ("chelsea.png", {"cat": 0.5}, ("person",), "cat"),
    ("bus.jpg", {"bus": 0.2, "person": 0.05}, (), "bus"),
    ("coffee.png", {}, ("person",), None),
])
def test_deeplab_classes(deeplab, scenes, name, at_least, absent, largest) -> None:
    shares = run(deeplab, scenes[name]).mask.shares()
    for cls, share in at_least.items():
        assert shares.get(cls, 0.0) >= share, shares
    for cls in absent:
        assert shares.get(cls, 0.0) < 0.001, shares
    if largest is not None:
        assert max((k for k in shares if k != "background"), key=shares.__getitem__) == largest


def test_deeplab_labels_match_full_upsampling_of_all_planes(deeplab, scenes) -> None:
    """Upsampling only the winning classes' planes gives the labels of resizing all 21."""
    img = scenes["bus.jpg"]
    seg = deeplab.segmenter
    probs = seg.probabilities(img)
    h, w = img.shape[:2]
    full = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in probs]).argmax(0)
    fast = seg.to_mask(probs, (h, w)).labels
    assert np.mean(full == fast) > 0.999
    # and the edges are not the 257-px staircase of nearest-neighbour label upsampling
    nearest = cv2.resize(probs.argmax(0).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    assert np.mean(full == fast) > np.mean(full == nearest)


def test_blur_keeps_the_person_and_blurs_the_background(selfie, scenes) -> None:
    img = scenes["astronaut.png"]
    before = img.copy()
    res = run(selfie, img)
    assert np.array_equal(img, before), "frame.image must not be modified"
    assert res.image.shape == img.shape and res.image.dtype == np.uint8
    probs = res.mask.probs
    sure_person = probs >= 0.5 + 0.4 / 2  # alpha 1 with the default threshold/softness
    assert np.array_equal(res.image[sure_person], img[sure_person])
    person = res.mask.labels == 1
    assert np.mean(np.all(res.image[person] == img[person], axis=1)) > 0.9
    background = probs < 0.1
    assert np.mean(np.any(res.image[background] != img[background], axis=1)) > 0.8


@pytest.mark.parametrize("overlay", ["replace", "cutout"])
def test_replace_and_cutout_fill_the_background(store, scenes, media_dir, overlay) -> None:
    bg_path = media_dir / "styles" / "style_wave.jpg"
    stage = make_stage(store, overlay=overlay, background=str(bg_path), smoothing=0.0)
    img = scenes["zidane.jpg"]
    res = run(stage, img)
    back = res.mask.probs < 0.5 - 0.4 / 2
    assert np.all(res.image[back] != img[back], axis=1).mean() > 0.5
    if overlay == "replace":
        expected = cover(cv2.imread(str(bg_path)), *img.shape[:2])
        assert np.array_equal(res.image[back], expected[back])
    front = res.mask.probs >= 0.5 + 0.4 / 2
    assert np.array_equal(res.image[front], img[front])


@pytest.mark.parametrize("opacity", [0.0, 1.0])
def test_colour_overlay_opacity(store, scenes, opacity) -> None:
    stage = make_stage(store, model="deeplab", overlay="color", opacity=opacity, legend=False, smoothing=0.0)
    img = scenes["chelsea.png"]
    res = run(stage, img)
    cat = res.mask.labels == res.mask.class_names.index("cat")
    if opacity == 0.0:
        assert np.array_equal(res.image, img)
    else:
        colour = stage.renderer.lut[res.mask.class_names.index("cat")]
        assert np.all(res.image[cat] == colour)
    legend = res.extras["segment"]["legend"]
    assert legend[0]["name"] == "cat" and legend[0]["share"] > 0.5


@pytest.mark.parametrize("probs, threshold, softness, alpha", [
    (0.0, 0.5, 0.4, 0.0), (0.3, 0.5, 0.4, 0.0), (0.5, 0.5, 0.4, 0.5), (0.7, 0.5, 0.4, 1.0),
    (0.99, 0.5, 0.4, 1.0), (0.6, 0.5, 0.0, 1.0), (0.4, 0.5, 0.0, 0.0), (0.45, 0.4, 0.2, 0.75),
])
def test_soft_alpha_table(probs, threshold, softness, alpha) -> None:
    out = soft_alpha(np.full((2, 3), probs, np.float32), threshold, softness)
    assert out.dtype == np.float32 and np.allclose(out, alpha, atol=1e-6)


def test_temporal_smoothing_reduces_flicker_and_resets_on_scene_change(store, scenes) -> None:
    rng = np.random.default_rng(0)
    base = scenes["zidane.jpg"]
    shifted = np.roll(base, 6, axis=1)
    frames = [(base if i % 2 == 0 else shifted) for i in range(8)]
    frames = [np.clip(f + rng.normal(0, 6, f.shape), 0, 255).astype(np.uint8) for f in frames]

    def flicker(stage) -> float:
        probs = [run(stage, f, i).mask.probs for i, f in enumerate(frames)]
        return float(np.mean([np.abs(a - b).mean() for a, b in zip(probs[3:], probs[4:])]))

    raw = flicker(make_stage(store, smoothing=0.0))
    smooth_stage = make_stage(store, smoothing=0.6)
    smooth = flicker(smooth_stage)
    assert smooth < 0.5 * raw, (smooth, raw)
    # a cut to another scene: the mask is the new frame's own, not a blend with the old scene
    coffee = cv2.resize(scenes["coffee.png"], base.shape[1::-1])
    fresh = run(make_stage(store, smoothing=0.0), coffee).mask.probs
    after = run(smooth_stage, coffee, index=100)
    assert after.extras["segment"]["new_scene"]
    assert np.allclose(after.mask.probs, fresh, atol=1e-5)
    same = run(smooth_stage, coffee, index=101)
    assert not same.extras["segment"]["new_scene"]
    # a resolution change resets too
    small = run(smooth_stage, cv2.resize(coffee, (320, 180)), index=102)
    assert small.extras["segment"]["new_scene"] and small.mask.labels.shape == (180, 320)


def test_throughput_mode_smooths_over_consecutive_frames(store, scenes) -> None:
    """Two workers' stage copies compute alternate frames; the first copy's in-order finish smooths them
    exactly as one stage would."""
    base = scenes["zidane.jpg"]
    frames = [Frame(np.roll(base, 5 * i, axis=1), i, 0.0, "tp") for i in range(4)]
    single = make_stage(store, smoothing=0.6)
    expected = [single.finish(single.process(FrameResult(f, f.image))).mask.probs for f in frames]
    a, b = make_stage(store, smoothing=0.6), make_stage(store, smoothing=0.6)
    partial = [(a if i % 2 == 0 else b).process(FrameResult(f, f.image)) for i, f in enumerate(frames)]
    got = [a.finish(p).mask.probs for p in partial]
    for e, g in zip(expected, got):
        assert np.allclose(e, g, atol=1e-5)


def test_segment_composes_with_annotations(selfie, scenes) -> None:
    """segment renders result.image, a later stage's boxes are drawn on top, frame.image is untouched."""
    img = scenes["astronaut.png"]
    before = img.copy()

    class FakeDetect:
        name = "detect"

        def process(self, result: FrameResult) -> FrameResult:
            assert result.frame.image is img  # data stages read the original frame
            dets = Detections(np.array([[150, 40, 300, 500]], np.float32), np.array([0.9], np.float32),
                              np.array([0], np.int32), None, ("person",))
            return FrameResult(result.frame, result.image, dets, mask=result.mask, extras=result.extras)

        def close(self) -> None:
            pass

    pipe = Pipeline([selfie, FakeDetect()], render=render_result)
    out = pipe.run(Frame(img, 0, 0.0, "compose"))
    assert not out.errors and np.array_equal(img, before) and out.mask is not None
    blurred_only = run(selfie, img, index=1).image
    assert not np.array_equal(out.image, blurred_only)  # the box was drawn
    assert np.array_equal(out.image[300:310, 200:250], blurred_only[300:310, 200:250])  # inside: same


def test_cli_segment_json(models_dir, media_dir) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "segment", str(media_dir / "scenes" / "astronaut.png"),
         "--seg-model", "selfie", "--json", "--models", str(models_dir)],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    shares = json.loads(proc.stdout)["shares"]
    assert set(shares) == {"person", "background"}
    assert shares["person"] >= 0.45 and abs(sum(shares.values()) - 1.0) < 1e-6


@pytest.mark.parametrize("overrides, match", [
    ({"overlay": "replace", "background": "no/such/image.jpg"}, "not a readable image"),
    ({"model": "deeplab", "foreground": ["persn"]}, "does not have"),
    ({"model": "yunet"}, "is a 'face_detect' model"),
])
def test_bad_segment_config_says_what_to_fix(store, overrides, match) -> None:
    from vision_app.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        make_stage(store, **overrides)
