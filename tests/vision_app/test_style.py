"""Style stage on the real Magenta and Johnson models and real photos/paintings from ../shared/media."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision_app.cli import main
from vision_app.config import AppConfig, load_config
from vision_app.errors import ConfigError
from vision_app.stages import StageContext
from vision_app.style import build_style_stage
from vision_app.style.stage import PREDICT_MODEL
from vision_app.style.stylizers import working_shape
from vision_app.style.vectors import StyleVectorCache
from vision_app.types import Frame, FrameResult


def make_stage(store, **overrides):
    overrides.setdefault("disk_cache", False)
    cfg = load_config(None, {f"style.{k}": v for k, v in overrides.items()})
    return build_style_stage(StageContext(cfg, store, backend="onnxruntime", backend_reason="tests"))


def run(stage, img: np.ndarray, index: int = 0) -> FrameResult:
    frame = Frame(img, index, 0.0, "test")
    return stage.process(FrameResult(frame=frame, image=frame.image))


def edge_map(img: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 2)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)).ravel()


def edge_corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(edge_map(a), edge_map(b))[0, 1])


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


@pytest.fixture(scope="module")
def photos(media_dir: Path) -> dict[str, np.ndarray]:
    return {n: cv2.imread(str(media_dir / "scenes" / n)) for n in ("chelsea.png", "coffee.png")}


@pytest.fixture(scope="module")
def paintings(media_dir: Path) -> dict[str, Path]:
    return {n: media_dir / "styles" / f"style_{n}.jpg" for n in ("wave", "scream")}


@pytest.fixture(scope="module")
def magenta(store, paintings):
    return {n: make_stage(store, style=str(p)) for n, p in paintings.items()}


@pytest.fixture(scope="module")
def johnson(store):
    return make_stage(store, style="johnson_wave", working_size=256)


@pytest.mark.parametrize("family", ["wave", "scream", "johnson"])
def test_output_is_stylized_but_keeps_the_structure(magenta, johnson, photos, family) -> None:
    stage = johnson if family == "johnson" else magenta[family]
    img = photos["chelsea.png"]
    before = img.copy()
    out = run(stage, img).image
    assert np.array_equal(img, before), "frame.image must not be modified"
    assert out.shape == img.shape and out.dtype == np.uint8
    assert mean_diff(out, img) > 20  # clearly different pixels
    other = cv2.resize(photos["coffee.png"], img.shape[1::-1])
    corr = edge_corr(out, img)
    assert corr > 0.4 and corr > edge_corr(out, other) + 0.3  # edges where the input has them


def test_two_paintings_give_different_outputs(magenta, photos) -> None:
    img = photos["coffee.png"]
    assert mean_diff(run(magenta["wave"], img).image, run(magenta["scream"], img).image) > 30


class CountingEngine:
    """Wraps an engine and counts infer() calls."""

    def __init__(self, engine) -> None:
        self.engine, self.calls = engine, 0
        self.inputs, self.outputs = engine.inputs, engine.outputs

    def infer(self, feed):
        self.calls += 1
        return self.engine.infer(feed)


def test_style_vector_cache_runs_the_network_once_per_painting(stage_context, store, paintings,
                                                               tmp_path: Path) -> None:
    entry = store.entry(PREDICT_MODEL)
    engine = CountingEngine(stage_context.engine(PREDICT_MODEL))
    cache = StyleVectorCache(engine, entry, model_sha=entry.sha256 or "x", disk_dir=tmp_path, memory={})
    wave = cache.for_file(paintings["wave"])
    assert wave.shape == (1, 100, 1, 1) and wave.dtype == np.float32
    assert np.array_equal(cache.for_file(paintings["wave"]), wave)
    cache.for_file(paintings["scream"])
    cache.for_file(paintings["wave"])
    cache.for_image(cv2.imread(str(paintings["scream"])))  # same painting, pixels hashed: computed once more
    cache.for_image(cv2.imread(str(paintings["scream"])))
    assert engine.calls == 3
    # a new process (empty memory) reads the vectors from disk instead of running the network
    again = StyleVectorCache(engine, entry, model_sha=entry.sha256 or "x", disk_dir=tmp_path, memory={})
    assert np.array_equal(again.for_file(paintings["wave"]), wave)
    assert engine.calls == 3
    # another predict model (different checksum) never reuses them
    other = StyleVectorCache(engine, entry, model_sha="0" * 64, disk_dir=tmp_path, memory={})
    other.for_file(paintings["wave"])
    assert engine.calls == 4


def test_stage_does_not_rerun_the_predict_network_per_frame(store, paintings, photos) -> None:
    stage = make_stage(store, style=str(paintings["wave"]), strength=1.0)
    vectors = stage.stylizer.vectors
    vectors.engine = CountingEngine(vectors.engine)
    for i in range(3):
        run(stage, photos["chelsea.png"], i)
    assert vectors.engine.calls == 0  # the painting's vector came from building the stage


def test_strength_blends_with_the_frames_own_style(store, paintings, photos) -> None:
    img = photos["chelsea.png"]
    diffs = [mean_diff(run(make_stage(store, style=str(paintings["wave"]), strength=s), img).image, img)
             for s in (0.0, 0.5, 1.0)]
    assert diffs[0] < diffs[1] < diffs[2], diffs
    # the frame's own vector: once per scene and every content_every frames, not every frame
    stage = make_stage(store, style=str(paintings["wave"]), strength=0.5, content_every=3)
    for i in range(6):
        run(stage, img, i)
    assert stage.stylizer.content_updates == 2
    run(stage, cv2.resize(photos["coffee.png"], img.shape[1::-1]), 6)  # a scene cut
    assert stage.stylizer.content_updates == 3


def test_johnson_license_is_reported(store, photos, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="vision_app.style"):
        stage = make_stage(store, style="johnson_udnie", working_size=128)
    assert any("non-commercial" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert stage.info["noncommercial"] and "non-commercial" in stage.info["license"]
    res = run(stage, photos["chelsea.png"])
    assert res.extras["style"]["license"] == stage.info["license"]
    assert res.image.shape == photos["chelsea.png"].shape


def test_default_style_is_never_a_noncommercial_model(store, paintings) -> None:
    assert AppConfig().style.style == ""  # nothing is chosen silently
    with pytest.raises(ConfigError, match="no style chosen"):
        make_stage(store)
    assert make_stage(store, style=str(paintings["wave"])).info["noncommercial"] is False


@pytest.mark.parametrize("style, match", [
    ("yunet", "not a style"), ("no/such/painting.jpg", "neither an image file nor a fixed-style model"),
    ("magenta-transfer", "not a style"),
])
def test_bad_style_names_say_what_to_pass(store, style, match) -> None:
    with pytest.raises(ConfigError, match=match):
        make_stage(store, style=style)


@pytest.mark.parametrize("h, w, long_side, expected", [
    (480, 640, 384, (288, 384)), (720, 1280, 384, (216, 384)), (240, 320, 384, (240, 320)),
    (300, 451, 256, (172, 256)), (101, 99, 1000, (100, 100)), (3, 3, 384, (4, 4)),
])
def test_working_shape_table(h, w, long_side, expected) -> None:
    assert working_shape(h, w, long_side) == expected


def test_cli_stylize(models_dir, media_dir, paintings, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the disk cache goes to a temp folder
    out = tmp_path / "out.png"
    src = media_dir / "scenes" / "chelsea.png"
    rc = main(["stylize", str(src), "--style", str(paintings["scream"]), "-o", str(out), "--strength", "0.8",
               "--models", str(models_dir)])
    assert rc == 0 and "Apache-2.0" in capsys.readouterr().out
    img, res = cv2.imread(str(src)), cv2.imread(str(out))
    assert res is not None and res.shape == img.shape and mean_diff(res, img) > 20
    assert len(list((tmp_path / "data").rglob("*.npy"))) == 1  # the painting's vector, cached on disk
