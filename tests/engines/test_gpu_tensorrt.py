"""TensorRT on a real GPU (marked gpu and tensorrt; skipped, saying why, where TensorRT, pycuda or a GPU is
missing): engines built from the real models and compared with ONNX Runtime, FP16 within its budget,
dynamic shapes, the engine cache's reuse and rebuild, the GPU preprocessing kernel writing into the
engine's input, a clone in another thread. Run with scripts/gpu_check.sh on a GPU machine.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from engines.trt_settings import TrtSettings
from tests.helpers.threads import run_in_threads
from vision_app.errors import EngineError

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]


@pytest.fixture(scope="module")
def trt(gpu):
    return pytest.importorskip("tensorrt", reason="TensorRT is not installed (it comes only from NVIDIA's "
                                                  "package index): pip install -e '.[tensorrt]'")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engines")


def _ort(store, name: str):
    from engines import create_engine

    return create_engine(store.path(name), "onnxruntime", name=name)


def _trt(store, name: str, cache_dir: Path, **kw):
    from engines.tensorrt import TensorRTEngine

    multiple_of = store.entry(name).input.get("multiple_of", 1)
    return TensorRTEngine(store.path(name), name=name,
                          settings=TrtSettings(cache_dir=cache_dir, multiple_of=multiple_of, **kw))


@pytest.fixture(scope="module")
def yolo_fp32(trt, store, cache_dir):
    progress: list[tuple[str, float]] = []
    from engines.tensorrt import TensorRTEngine

    eng = TensorRTEngine(store.path("yolo-fastest-1.1-xl"), name="yolo-fastest-1.1-xl",
                         settings=TrtSettings(cache_dir=cache_dir),
                         on_progress=lambda m, f: progress.append((m, f)))
    eng.progress_seen = progress  # type: ignore[attr-defined]
    yield eng
    eng.close()


def _yolo_input(store, gpu_photos, image: str) -> np.ndarray:
    from vision_app.detect.preprocess import Preprocessor

    return Preprocessor.from_entry(store.entry("yolo-fastest-1.1-xl"))(gpu_photos[image])[0]


def test_yolo_fastest_fp32_engine_matches_onnxruntime(yolo_fp32, store, gpu_photos) -> None:
    assert yolo_fp32.progress_seen and yolo_fp32.progress_seen[-1][1] == 1.0  # the build was visible
    ort_eng = _ort(store, "yolo-fastest-1.1-xl")
    for image in ("bus.jpg", "zidane.jpg", "dog.jpg"):
        x = _yolo_input(store, gpu_photos, image)
        ref, got = ort_eng.infer({"input": x}), yolo_fp32.infer({"input": x})
        for name in ref:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-3, atol=1e-3, err_msg=f"{image} {name}")


def test_yolo_fastest_fp16_engine_within_1e2(trt, store, gpu_photos, cache_dir) -> None:
    """FP16 criterion (see test_onnx_fp16): sigmoid scale, 99.9 % within 1e-2, none beyond 3e-2."""
    ort_eng = _ort(store, "yolo-fastest-1.1-xl")
    with _trt(store, "yolo-fastest-1.1-xl", cache_dir, precision="fp16") as eng:
        for image in ("bus.jpg", "zidane.jpg"):
            x = _yolo_input(store, gpu_photos, image)
            ref, got = ort_eng.infer({"input": x}), eng.infer({"input": x})
            for name in ref:
                d = np.abs(1 / (1 + np.exp(-got[name])) - 1 / (1 + np.exp(-ref[name])))
                assert np.quantile(d, 0.999) <= 1e-2 and d.max() <= 3e-2, (image, name, float(d.max()))


def test_yunet_dynamic_shapes_match_onnxruntime(trt, store, gpu_photos, cache_dir) -> None:
    from vision_app.detect.preprocess import Preprocessor

    pre = Preprocessor.from_entry(store.entry("yunet"))
    ort_eng = _ort(store, "yunet")
    with _trt(store, "yunet", cache_dir) as eng:
        assert eng.profiles["input"].max == (1, 3, 1088, 1920)
        for image in ("astronaut.png", "zidane.jpg", "group6.jpg", "astronaut.png"):  # shapes change back
            x, _ = pre(gpu_photos[image])
            ref, got = ort_eng.infer({"input": x}), eng.infer({"input": x})
            for name in ref:
                assert got[name].shape == ref[name].shape
                np.testing.assert_allclose(got[name], ref[name], rtol=1e-3, atol=1e-3, err_msg=f"{image} {name}")
        with pytest.raises(EngineError, match="outside the TensorRT engine's optimization profile"):
            eng.infer({"input": np.zeros((1, 3, 1120, 1920), np.float32)})


def test_cache_reuse_key_change_and_corrupt_plan(trt, yolo_fp32, store, cache_dir, caplog) -> None:
    from engines.tensorrt import TensorRTEngine

    plans = sorted(cache_dir.glob("yolo-fastest-1.1-xl-fp32-*.engine"))
    assert len(plans) == 1
    before = plans[0].stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="engines.tensorrt"):
        with _trt(store, "yolo-fastest-1.1-xl", cache_dir):
            pass
    assert "using cached TensorRT engine" in caplog.text and plans[0].stat().st_mtime_ns == before
    assert list(cache_dir.glob("timing-trt*.cache"))  # the timing cache was written and is reused
    with _trt(store, "yolo-fastest-1.1-xl", cache_dir, workspace_mb=512):  # a key change: a second plan
        pass
    assert len(list(cache_dir.glob("yolo-fastest-1.1-xl-fp32-*.engine"))) == 2
    plans[0].write_bytes(plans[0].read_bytes()[:1000])  # damaged: detected, rebuilt, works
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        eng = TensorRTEngine(store.path("yolo-fastest-1.1-xl"), name="yolo-fastest-1.1-xl",
                             settings=TrtSettings(cache_dir=cache_dir))
    assert "unusable" in caplog.text and plans[0].stat().st_size > 1000
    eng.close()


def test_gpu_preprocessing_into_the_engine_matches_the_cpu_path(yolo_fp32, store, gpu_photos) -> None:
    from engines.cuda_preprocess import GpuPreprocessor
    from vision_app.detect.preprocess import Preprocessor

    entry = store.entry("yolo-fastest-1.1-xl")
    gp = GpuPreprocessor(yolo_fp32, entry)
    for image in ("bus.jpg", "bigbuckbunny#0"):
        x, box_cpu = Preprocessor.from_entry(entry)(gpu_photos[image])
        ref = yolo_fp32.infer({"input": x})
        got, box_gpu = gp(gpu_photos[image])
        assert box_gpu == box_cpu
        for name in ref:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-3, atol=1e-3)
    gp.close()


def test_clone_runs_in_another_thread(yolo_fp32, store, gpu_photos) -> None:
    x = _yolo_input(store, gpu_photos, "zidane.jpg")
    expected = yolo_fp32.infer({"input": x})
    clone = yolo_fp32.clone()

    def check(engine) -> None:  # an exception here is reported with its traceback by run_in_threads
        for _ in range(20):
            got = engine.infer({"input": x})
            for name in expected:
                np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)

    try:
        run_in_threads(lambda: check(clone), lambda: check(yolo_fp32), timeout=60)
    finally:
        clone.close()


def test_detector_with_gpu_preprocessing_finds_what_the_cpu_detector_finds(yolo_fp32, store, gpu_photos) -> None:
    """The detect stage's path on TensorRT (kernel preprocessing) against the CPU path on ONNX Runtime."""
    from vision_app.detect.detector import DetectParams, Detector

    entry = store.entry("yolo-fastest-1.1-xl")
    cpu = Detector(entry, _ort(store, "yolo-fastest-1.1-xl"), DetectParams())
    gpu = Detector(entry, yolo_fp32.clone(), DetectParams(), gpu_preprocess=True)
    assert gpu._gpu is not None
    a, b = cpu(gpu_photos["bus.jpg"]), gpu(gpu_photos["bus.jpg"])
    assert sorted(a.class_id.tolist()) == sorted(b.class_id.tolist())
    np.testing.assert_allclose(np.sort(a.confidence), np.sort(b.confidence), atol=2e-3)
    cpu.close()
    gpu.close()


def test_corrupt_timing_cache_is_replaced_and_the_build_goes_on(trt, gpu, store, tmp_path, caplog) -> None:
    """TensorRT answers a damaged timing-cache blob with None (or an error): the build still succeeds and
    the damaged file is replaced by the new cache."""
    from engines.trt_cache import EngineCache

    timing = EngineCache(tmp_path).timing_cache_path(trt.__version__, gpu.info.name, gpu.info.compute_capability)
    timing.write_bytes(b"not a TensorRT timing cache" * 40)
    with caplog.at_level(logging.WARNING, logger="engines.trt_build"):
        with _trt(store, "yolo-fastest-1.1", tmp_path) as eng:
            assert eng.infer({"input": np.zeros((1, 3, 320, 320), np.float32)})
    assert "is unusable" in caplog.text, caplog.text
    assert timing.is_file() and b"not a TensorRT timing cache" not in timing.read_bytes()
