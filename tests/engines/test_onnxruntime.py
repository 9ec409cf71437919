"""ONNX Runtime backend: real model, errors that name the file and what was expected, registry."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines import create_engine
from engines.registry import available_backends, resolve_backend
from vision_app.errors import EngineError

YF = "detection/yolo-fastest-1.1-xl.onnx"


@pytest.fixture(scope="module")
def engine(models_dir: Path):
    with create_engine(models_dir / YF, "onnxruntime", threads=1) as eng:
        yield eng


def test_specs_and_inference_on_a_real_model(engine) -> None:
    assert engine.inputs["input"].shape == (1, 3, 320, 320)
    assert set(engine.outputs) == {"l120", "l129"}
    out = engine.infer({"input": np.zeros((1, 3, 320, 320), np.float32)})
    assert out["l120"].shape == (1, 255, 10, 10) and out["l129"].shape == (1, 255, 20, 20)
    assert engine.providers == ["CPUExecutionProvider"]
    assert "CPUExecutionProvider" in engine.describe()


@pytest.mark.parametrize("feed, match", [
    ({"input": np.zeros((1, 3, 320, 321), np.float32)}, r"expected shape \[1, 3, 320, 320\], got \[1, 3, 320, 321\]"),
    ({"input": np.zeros((1, 3, 320, 320), np.float64)}, "expected dtype float32, got float64"),
    ({"image": np.zeros((1, 3, 320, 320), np.float32)}, "missing \\['input'\\]"),
])
def test_wrong_feeds_raise_engine_error(engine, feed, match) -> None:
    with pytest.raises(EngineError, match=match):
        engine.infer(feed)


def test_missing_file_and_not_onnx_bytes(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"model file not found: .*nope.onnx"):
        create_engine(tmp_path / "nope.onnx", "onnxruntime")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(EngineError, match=r"junk.onnx is not a valid ONNX model"):
        create_engine(junk, "onnxruntime")


def test_unavailable_provider_is_reported_not_silently_replaced(models_dir: Path, caplog) -> None:
    with pytest.raises(EngineError, match="CUDAExecutionProvider"):
        create_engine(models_dir / YF, "onnxruntime", providers=["CUDAExecutionProvider"])
    eng = create_engine(models_dir / YF, "onnxruntime", allow_fallback=True,
                        providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert eng.providers == ["CPUExecutionProvider"]
    assert any("CUDAExecutionProvider" in r.getMessage() for r in caplog.records)


def test_clone_gives_an_independent_session(engine) -> None:
    x = np.random.default_rng(1).random((1, 3, 320, 320), np.float32)
    with engine.clone() as other:
        a, b = engine.infer({"input": x}), other.infer({"input": x})
    np.testing.assert_allclose(a["l120"], b["l120"], atol=1e-5)


def test_registry_unknown_backend_and_auto_resolution() -> None:
    with pytest.raises(EngineError, match="unknown engine backend 'nope'"):
        create_engine("x.onnx", "nope")
    status = available_backends()
    assert status["onnxruntime"] == "ok"
    name, reason = resolve_backend("auto")
    if status.get("tensorrt") != "ok":
        assert name == "onnxruntime" and "TensorRT is not usable" in reason
