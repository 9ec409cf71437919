"""The NVIDIA GPU path on a real GPU: the preprocessing kernel against the CPU path on real photos, pinned /
device buffer round trips on streams, the shared context from two threads (marked gpu: pycuda + a GPU);
TensorRT engines built from the real models and compared with ONNX Runtime, dynamic shapes, the engine
cache's reuse and rebuild (marked tensorrt as well). Everywhere else they skip and say why; run them with
scripts/gpu_check.sh on a GPU machine.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.trt_settings import TrtSettings
from vision_app.errors import EngineError

pytestmark = pytest.mark.gpu

@pytest.fixture(scope="module")
def gpu():
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed or finds no NVIDIA driver "
                                                "(scripts/gpu_check.sh installs it from ../shared/gpu-wheels)")
    from engines.cuda_context import GpuContext

    try:
        return GpuContext.get(0)
    except EngineError as exc:
        pytest.skip(f"no usable NVIDIA GPU: {exc}")


@pytest.fixture(scope="module")
def photos(media_dir: Path) -> dict[str, np.ndarray]:
    imgs = {p.name: cv2.imread(str(p)) for p in sorted((media_dir / "scenes").iterdir())}
    cap = cv2.VideoCapture(str(media_dir / "video" / "bigbuckbunny.mp4"))
    for i in range(3):
        ok, frame = cap.read()
        if ok:
            imgs[f"bigbuckbunny#{i}"] = frame
    cap.release()
    return imgs


MODELS_FOR_KERNEL = ["yolo-fastest-1.1-xl", "yolox-nano", "yunet", "selfie", "deeplab", "mobilefacenet"]


@pytest.mark.parametrize("model", MODELS_FOR_KERNEL)
def test_kernel_matches_cpu_preprocessing_on_real_images(gpu, store, photos, model: str) -> None:
    from engines.cuda_preprocess import GpuImageToTensor, PreprocessSpec
    from vision_app.detect.preprocess import Preprocessor

    if model not in store.entries:
        pytest.skip(f"no manifest entry '{model}'")
    entry = store.entry(model)
    spec, pre = PreprocessSpec.from_entry(entry), Preprocessor.from_entry(entry)
    k = GpuImageToTensor(gpu, spec)
    try:
        for name, img in photos.items():
            if spec.resize == "none" and spec.size is not None:  # fixed-size crop models: feed their size
                img = cv2.resize(img, spec.size)
            ref, _ = pre(img)
            got = k.run(img)
            assert got.shape == ref.shape, name
            levels = np.abs(got - ref) / np.asarray(spec.alpha, np.float32).reshape(1, 3, 1, 1)
            assert levels.max() <= 1.0 + 1e-4, (name, float(levels.max()))  # 1/255 of the range
            assert (levels > 1e-4).mean() <= 1e-3, name
    finally:
        k.close()


def test_pinned_device_round_trip_on_streams(gpu) -> None:
    from engines.cuda_context import PinnedBuffer

    cuda = gpu.cuda
    with gpu.active():
        a, b = PinnedBuffer(cuda, np.float32, "a"), PinnedBuffer(cuda, np.float32, "b")
        assert a.ensure((2, 3, 64, 64)) is True
        first_ptr = a.ptr
        assert a.ensure((1, 3, 32, 32)) is False and a.ptr == first_ptr  # shrinking reuses the memory
        assert a.ensure((2, 3, 64, 64)) is False
        assert a.ensure((4, 3, 64, 64)) is True  # growing reallocates (TensorRT must be told)
        b.ensure(a.shape)
        streams = [cuda.Stream(), cuda.Stream()]
        rng = np.random.default_rng(0)
        for s in streams:
            a.host[...] = rng.random(a.shape, dtype=np.float32)
            a.to_device(s)
            cuda.memcpy_dtod_async(b.device, a.device, a.nbytes, s)
            b.host[...] = 0
            b.to_host(s)
            s.synchronize()
            np.testing.assert_array_equal(a.host, b.host)
        a.free()
        b.free()


def test_two_threads_share_the_gpu_with_their_own_streams(gpu, store, photos) -> None:
    from engines.cuda_preprocess import GpuImageToTensor, PreprocessSpec

    spec = PreprocessSpec.from_entry(store.entry("yolo-fastest-1.1-xl"))
    imgs = [photos["bus.jpg"], photos["zidane.jpg"]]
    single = GpuImageToTensor(gpu, spec)
    expected = [single.run(i) for i in imgs]
    single.close()
    errors: list[BaseException] = []
    leaked: list[object] = []

    def work(idx: int) -> None:
        try:
            k = GpuImageToTensor(gpu, spec)
            for _ in range(50):
                np.testing.assert_array_equal(k.run(imgs[idx]), expected[idx])
            k.close()
            leaked.append(gpu.cuda.Context.get_current())  # popped: nothing left bound to this thread
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    assert leaked == [None, None]


# ---- TensorRT ---------------------------------------------------------------------------------------

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


def _yolo_input(store, photos, image: str) -> np.ndarray:
    from vision_app.detect.preprocess import Preprocessor

    return Preprocessor.from_entry(store.entry("yolo-fastest-1.1-xl"))(photos[image])[0]


@pytest.mark.tensorrt
def test_yolo_fastest_fp32_engine_matches_onnxruntime(yolo_fp32, store, photos) -> None:
    assert yolo_fp32.progress_seen and yolo_fp32.progress_seen[-1][1] == 1.0  # the build was visible
    ort_eng = _ort(store, "yolo-fastest-1.1-xl")
    for image in ("bus.jpg", "zidane.jpg", "dog.jpg"):
        x = _yolo_input(store, photos, image)
        ref, got = ort_eng.infer({"input": x}), yolo_fp32.infer({"input": x})
        for name in ref:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-3, atol=1e-3, err_msg=f"{image} {name}")


@pytest.mark.tensorrt
def test_yolo_fastest_fp16_engine_within_1e2(trt, store, photos, cache_dir) -> None:
    """FP16 criterion (see test_onnx_fp16): sigmoid scale, 99.9 % within 1e-2, none beyond 3e-2."""
    ort_eng = _ort(store, "yolo-fastest-1.1-xl")
    with _trt(store, "yolo-fastest-1.1-xl", cache_dir, precision="fp16") as eng:
        for image in ("bus.jpg", "zidane.jpg"):
            x = _yolo_input(store, photos, image)
            ref, got = ort_eng.infer({"input": x}), eng.infer({"input": x})
            for name in ref:
                d = np.abs(1 / (1 + np.exp(-got[name])) - 1 / (1 + np.exp(-ref[name])))
                assert np.quantile(d, 0.999) <= 1e-2 and d.max() <= 3e-2, (image, name, float(d.max()))


@pytest.mark.tensorrt
def test_yunet_dynamic_shapes_match_onnxruntime(trt, store, photos, cache_dir) -> None:
    from vision_app.detect.preprocess import Preprocessor

    pre = Preprocessor.from_entry(store.entry("yunet"))
    ort_eng = _ort(store, "yunet")
    with _trt(store, "yunet", cache_dir) as eng:
        assert eng.profiles["input"].max == (1, 3, 1088, 1920)
        for image in ("astronaut.png", "zidane.jpg", "group6.jpg", "astronaut.png"):  # shapes change back
            x, _ = pre(photos[image])
            ref, got = ort_eng.infer({"input": x}), eng.infer({"input": x})
            for name in ref:
                assert got[name].shape == ref[name].shape
                np.testing.assert_allclose(got[name], ref[name], rtol=1e-3, atol=1e-3, err_msg=f"{image} {name}")
        with pytest.raises(EngineError, match="outside the TensorRT engine's optimization profile"):
            eng.infer({"input": np.zeros((1, 3, 1120, 1920), np.float32)})


@pytest.mark.tensorrt
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


@pytest.mark.tensorrt
def test_gpu_preprocessing_into_the_engine_matches_the_cpu_path(yolo_fp32, store, photos) -> None:
    from engines.cuda_preprocess import GpuPreprocessor
    from vision_app.detect.preprocess import Preprocessor

    entry = store.entry("yolo-fastest-1.1-xl")
    gp = GpuPreprocessor(yolo_fp32, entry)
    for image in ("bus.jpg", "bigbuckbunny#0"):
        x, box_cpu = Preprocessor.from_entry(entry)(photos[image])
        ref = yolo_fp32.infer({"input": x})
        got, box_gpu = gp(photos[image])
        assert box_gpu == box_cpu
        for name in ref:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-3, atol=1e-3)
    gp.close()


@pytest.mark.tensorrt
def test_clone_runs_in_another_thread(yolo_fp32, store, photos) -> None:
    x = _yolo_input(store, photos, "zidane.jpg")
    expected = yolo_fp32.infer({"input": x})
    out: dict[str, np.ndarray] = {}
    clone = yolo_fp32.clone()

    def work() -> None:
        for _ in range(20):
            out.update(clone.infer({"input": x}))

    t = threading.Thread(target=work)
    t.start()
    for _ in range(20):
        yolo_fp32.infer({"input": x})
    t.join(timeout=60)
    clone.close()
    for name in expected:
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-5, atol=1e-5)


@pytest.mark.tensorrt
def test_detector_with_gpu_preprocessing_finds_what_the_cpu_detector_finds(yolo_fp32, store, photos) -> None:
    """The detect stage's path on TensorRT (kernel preprocessing) against the CPU path on ONNX Runtime."""
    from vision_app.detect.detector import DetectParams, Detector

    entry = store.entry("yolo-fastest-1.1-xl")
    cpu = Detector(entry, _ort(store, "yolo-fastest-1.1-xl"), DetectParams())
    gpu = Detector(entry, yolo_fp32.clone(), DetectParams(), gpu_preprocess=True)
    assert gpu._gpu is not None
    a, b = cpu(photos["bus.jpg"]), gpu(photos["bus.jpg"])
    assert sorted(a.class_id.tolist()) == sorted(b.class_id.tolist())
    np.testing.assert_allclose(np.sort(a.confidence), np.sort(b.confidence), atol=2e-3)
    cpu.close()
    gpu.close()
