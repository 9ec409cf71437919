"""The Triton backend against a real Triton Inference Server (tests/engines/conftest.py starts it once):
every task gives what local ONNX Runtime gives, over HTTP and gRPC, and wrong models or requests give
errors that name the server and the model."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.triton import TritonEngine
from engines.triton_client import Refused, TritonConnection
from vision_app.config import load_config
from vision_app.errors import EngineError
from vision_app.face.observation import observations
from vision_app.pipeline import Pipeline
from vision_app.serving.expect import from_onnx
from vision_app.stages import StageContext, build_stage
from vision_app.types import Frame

pytestmark = pytest.mark.triton


def _context(store, backend: str, url: str = "", **overrides) -> StageContext:
    cfg = load_config(None, {"engine.backend": backend, "engine.triton_url": url or None, **overrides})
    return StageContext(cfg, store, backend=backend, backend_reason="tests")


def _run(store, task: str, image: np.ndarray, backend: str, url: str = "", **overrides):
    stage = build_stage(task, _context(store, backend, url, **overrides))
    try:
        return Pipeline([stage]).run(Frame(image, 0, 0.0, "test"))
    finally:
        stage.close()


@pytest.fixture(params=["http", "grpc"])
def url(request, triton_server) -> str:
    return triton_server.http_url if request.param == "http" else triton_server.grpc_url


def test_detection_on_bus_gives_the_same_boxes_as_onnxruntime(store, media_dir: Path, url: str) -> None:
    img = cv2.imread(str(media_dir / "scenes" / "bus.jpg"))
    local = _run(store, "detect", img, "onnxruntime", **{"detect.track": False})
    remote = _run(store, "detect", img, "triton", url, **{"detect.track": False})
    assert not remote.errors
    assert local.detections is not None and remote.detections is not None and len(local.detections) >= 4
    assert 5 in local.detections.class_id  # the bus
    np.testing.assert_array_equal(remote.detections.class_id, local.detections.class_id)
    np.testing.assert_allclose(remote.detections.xyxy, local.detections.xyxy, atol=1e-2)
    np.testing.assert_allclose(remote.detections.confidence, local.detections.confidence, atol=1e-5)


@pytest.mark.parametrize("photo, faces", [("scenes/group6.jpg", 6), ("faces/id01", 1)])
def test_face_stage_works_through_triton(store, media_dir: Path, url: str, tmp_path: Path, photo: str,
                                         faces: int) -> None:
    path = media_dir / photo
    img = cv2.imread(str(path if path.is_file() else sorted(path.glob("*.jpg"))[0]))
    opts = {"face.gallery": str(tmp_path / "absent.db")}
    local = _run(store, "face", img, "onnxruntime", **opts)
    remote = _run(store, "face", img, "triton", url, **opts)
    assert not remote.errors and len(remote.faces) == len(local.faces) == faces
    np.testing.assert_allclose(remote.faces.xyxy, local.faces.xyxy, atol=1e-2)  # YuNet + our decoder
    np.testing.assert_allclose(remote.faces.liveness, local.faces.liveness, atol=1e-4)  # MiniFASNet pair
    pairs = list(zip(observations(remote.extras), observations(local.extras)))
    assert [a.passive_live for a, _ in pairs] == [b.passive_live for _, b in pairs]
    assert [a.embedding is None for a, _ in pairs] == [b.embedding is None for _, b in pairs]
    for a, b in pairs:
        assert a.ear == pytest.approx(b.ear, abs=1e-3, nan_ok=True)  # eye aspect ratio from the face mesh
        if b.embedding is not None:  # the recognizer (edgeface-xs)
            assert float(np.dot(a.embedding, b.embedding)) > 0.9999
    if faces == 1:
        assert pairs[0][1].embedding is not None  # the portrait passes the quality gates


def test_segment_and_style_run_unchanged(store, media_dir: Path, triton_server) -> None:
    img = cv2.imread(str(media_dir / "scenes" / "zidane.jpg"))
    for task, opts in (("segment", {"segment.model": "selfie", "segment.smoothing": 0.0}),
                       ("style", {"style.style": "johnson_wave", "style.working_size": 256})):
        local = _run(store, task, img, "onnxruntime", **opts)
        remote = _run(store, task, img, "triton", triton_server.grpc_url, **opts)
        assert not remote.errors, remote.errors
        assert remote.image.shape == local.image.shape
        diff = np.abs(remote.image.astype(np.int16) - local.image.astype(np.int16))
        assert diff.max() <= 1 and not np.array_equal(local.image, img), task  # the task changed the picture


def test_a_batch_larger_than_max_batch_is_split(store, triton_server, models_dir: Path) -> None:
    from engines.onnxruntime import OnnxRuntimeEngine

    x = np.random.default_rng(3).random((11, 3, 80, 80), dtype=np.float32) * 255
    with TritonEngine(url=triton_server.http_url, name="minifasnet-v2", version="1") as eng:
        assert eng.max_batch == 8 and eng.inputs["input"].shape == (None, 3, 80, 80)
        got = eng.infer({"input": x})["prob"]
    with OnnxRuntimeEngine(models_dir / store.entry("minifasnet-v2").file) as ort_eng:
        want = ort_eng.infer({"input": x})["prob"]
    assert got.shape == (11, 3)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_wrong_model_name_is_a_clear_error(triton_server, scheme: str) -> None:
    url = triton_server.http_url if scheme == "http" else triton_server.grpc_url
    with pytest.raises(EngineError, match=f"the Triton server at {url} has no ready model 'yolo-nope' version 1 "
                                          f".*export-triton DIR --names yolo-nope"):
        TritonEngine(url=url, name="yolo-nope", version="1")


def test_wrong_model_name_through_the_app(store, triton_server) -> None:
    ctx = _context(store, "triton", triton_server.http_url, **{"detect.model": "yolo-fastest-1.1"})
    with pytest.raises(EngineError, match=f"{triton_server.http_url} has no ready model 'yolo-fastest-1.1'"):
        build_stage("detect", ctx)  # in the manifest, not on this server


def test_served_model_that_differs_from_the_manifest_is_refused_at_load(triton_server, models_dir: Path) -> None:
    ins, outs = from_onnx(models_dir / "detection/yolo-fastest-1.1-xl.onnx")
    with pytest.raises(EngineError, match=r"model 'impostor' version 1 on the Triton server .* does not match "
                                          r"the local file: input 'input' is missing .*images.*re-export"):
        TritonEngine(url=triton_server.grpc_url, name="impostor", version="1", expected_inputs=ins,
                     expected_outputs=outs, expected_from="the local file", expected_complete=True)


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_server_refuses_a_wrong_shape(triton_server, scheme: str) -> None:
    conn = TritonConnection(triton_server.http_url if scheme == "http" else triton_server.grpc_url, 5.0)
    try:
        with pytest.raises(Refused, match="inference request refused"):
            conn.infer("yolo-fastest-1.1-xl", "1", {"input": np.zeros((1, 3, 320, 321), np.float32)}, ["l120"])
    finally:
        conn.close()


def test_engine_from_several_threads(triton_server) -> None:
    """The HTTP client is gevent-based and bound to its thread: the engine keeps one per thread."""
    import threading

    x = np.zeros((1, 3, 320, 320), np.float32)
    with TritonEngine(url=triton_server.http_url, name="yolo-fastest-1.1-xl", version="1") as eng:
        want = eng.infer({"input": x})["l129"]
        got: dict[int, np.ndarray] = {}
        threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, eng.infer({"input": x})["l129"]))
                   for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert len(got) == 3 and all(np.array_equal(g, want) for g in got.values())


def test_benchmark_clients_run_against_the_server(triton_server, models_dir: Path, media_dir: Path,
                                                  tmp_path: Path) -> None:
    """The benchmark's client processes (python main.py bench --tasks triton), briefly: they count frames
    and latencies; the figures themselves are the benchmark's business, not this test's."""
    from vision_app.serving.bench import FRAME_SIZE, measure

    frame = cv2.resize(cv2.imread(str(media_dir / "scenes" / "bus.jpg")), FRAME_SIZE)
    np.save(tmp_path / "frames.npy", np.stack([frame, frame[:, ::-1]]))
    job = {"models": str(models_dir), "model": "yolo-fastest-1.1-xl", "frames": str(tmp_path / "frames.npy"),
           "seconds": 1.0, "backend": "triton", "url": triton_server.grpc_url}
    r = measure(job, 2, triton_server)
    assert "error" not in r, r
    assert r["frames"] >= 2 and r["fps"] > 0 and 0 < r["p50"] <= r["p95"]
    assert 1.0 <= r["mean_batch"] <= 2.0  # two clients, one frame per request: batches of 1 or 2
    bad = measure({**job, "url": "grpc://127.0.0.1:1"}, 1)
    assert "cannot reach the Triton server at grpc://127.0.0.1:1" in bad["error"]
