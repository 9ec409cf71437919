"""A Triton server that stops mid-run and comes back (a real server, killed and restarted on the same
ports): the stage reports the outage once, every frame still comes out (no hang, the runner thread lives),
the stage is not disabled, and detections come back when the server does."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.triton import TritonEngine
from vision_app.capture import LatestSlot
from vision_app.config import load_config
from vision_app.errors import EngineError, EngineUnavailable
from vision_app.runner import CallbackSink, Runner
from vision_app.serving.local_server import LocalTritonServer
from vision_app.stages import StageContext, build_pipeline
from vision_app.types import Frame, FrameResult

pytestmark = pytest.mark.triton

MODEL = "yolo-fastest-1.1-xl"


@pytest.fixture(scope="module")
def small_server(triton_python: Path, triton_repo: Path, tmp_path_factory):
    server = LocalTritonServer(triton_repo, names=[MODEL], python=triton_python, max_seconds=900,
                               log_path=tmp_path_factory.mktemp("triton-outage") / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_engine_outage_backoff_and_recovery(small_server: LocalTritonServer, scheme: str) -> None:
    url = small_server.http_url if scheme == "http" else small_server.grpc_url
    x = np.zeros((1, 3, 320, 320), np.float32)
    eng = TritonEngine(url=url, name=MODEL, version="1", timeout_s=3.0, retry_initial_s=0.2, retry_max_s=0.8)
    try:
        want = eng.infer({"input": x})["l120"]
        small_server.kill()
        with pytest.raises(EngineUnavailable, match=f"model '{MODEL}' version 1 on the Triton server {url} "
                                                    f"unavailable: .*retrying in 0.2 s"):
            eng.infer({"input": x})
        with pytest.raises(EngineUnavailable, match="next try in"):  # inside the backoff: no request at all
            eng.infer({"input": x})
        with pytest.raises(EngineError, match=f"cannot reach the Triton server at {url} to load model"):
            TritonEngine(url=url, name=MODEL, version="1", timeout_s=3.0)  # a stopped server, at load
        small_server.start()
        got = None
        deadline = time.monotonic() + 60
        while got is None and time.monotonic() < deadline:
            try:
                got = eng.infer({"input": x})["l120"]
            except EngineUnavailable:
                time.sleep(0.1)
        assert got is not None and np.array_equal(got, want)
    finally:
        eng.close()


def test_runner_survives_a_server_restart(store, small_server: LocalTritonServer, media_dir: Path) -> None:
    cfg = load_config(None, {"engine.backend": "triton", "engine.triton_url": small_server.grpc_url,
                             "engine.triton_retry_initial_s": 0.2, "engine.triton_retry_max_s": 1.0,
                             "detect.track": False, "runner.disable_stage_after": 3})
    statuses: list[tuple[str, str]] = []
    ctx = StageContext(cfg, store, backend="triton", backend_reason="tests",
                       on_status=lambda kind, msg: statuses.append((kind, msg)))
    pipeline = build_pipeline(["detect"], ctx)
    results: list[FrameResult] = []
    slot: LatestSlot[Frame] = LatestSlot(drop=False)
    runner = Runner(slot, pipeline, [CallbackSink(results.append)], on_status=lambda k, m: statuses.append((k, m)))
    runner.start()
    img = cv2.imread(str(media_dir / "scenes" / "bus.jpg"))
    sent = 0

    def feed(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            slot.put(Frame(img, sent, sent / 20, "bus"), timeout=30)
            sent += 1
            time.sleep(0.05)

    def wait_for(pred, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if pred():
                return True
            feed(1)
        return pred()

    try:
        feed(5)
        assert wait_for(lambda: len(results) >= 5, 30)
        before = results[-1]
        assert not before.errors and before.detections is not None and len(before.detections) >= 4
        small_server.kill()
        down_from = sent
        assert wait_for(lambda: sum(1 for r in results[down_from:] if r.errors) >= 8, 60)  # > disable_after
        small_server.start()
        assert wait_for(lambda: any(r.frame.index > down_from and not r.errors for r in results), 90)
        feed(3)
        assert wait_for(lambda: len(results) >= sent, 30)  # every frame came out, none hung
    finally:
        slot.close()
        runner.join(30)
        pipeline.close()
    assert not runner.is_alive() and runner.error is None
    assert "detect" not in pipeline.disabled
    failed = [r for r in results if r.errors]
    assert all("waiting for its inference server" in e for r in failed for e in r.errors)
    after = results[-1]
    assert not after.errors and after.detections is not None
    np.testing.assert_allclose(after.detections.xyxy, before.detections.xyxy, atol=1e-3)
    outage_reports = [m for k, m in statuses if k == "error" and "waiting for its inference server" in m]
    recovered = [m for k, m in statuses if k == "reconnected" and "works again" in m]
    assert len(outage_reports) == 1 and len(recovered) == 1, statuses
