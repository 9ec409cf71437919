"""Stages that fail: injected exceptions are counted and reported once per kind; a model file deleted or
replaced while running disables its stage (reported), not the app."""
from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vision_app.config import load_config
from vision_app.models import ModelStore
from vision_app.runner import CallbackSink, LiveRun
from vision_app.sources import open_source
from vision_app.stages import TASKS, StageContext, build_pipeline


class ProbeStage:
    """Runs the real selfie model on every frame (a stand-in for any model-backed stage)."""

    name = "probe"

    def __init__(self, engine) -> None:
        self.engine = engine

    def process(self, result):
        x = np.zeros((1, 3, 256, 256), np.float32)
        out = self.engine.infer({"input_1": x})
        return replace(result, extras={**result.extras, "probe": float(next(iter(out.values())).mean())})

    def close(self) -> None:
        self.engine.close()


class FlakyStage:
    name = "flaky"

    def process(self, result):
        if result.frame.index % 3 == 0:
            raise ValueError("injected fault")
        if result.frame.index % 7 == 0:
            raise KeyError("another kind")
        return result

    def close(self) -> None:
        pass


def build_probe_stage(ctx):
    return ProbeStage(ctx.engine("selfie"))


def build_flaky_stage(ctx):
    return FlakyStage()


@pytest.fixture()
def tasks(monkeypatch):
    monkeypatch.setitem(TASKS, "probe", f"{__name__}:build_probe_stage")
    monkeypatch.setitem(TASKS, "flaky", f"{__name__}:build_flaky_stage")


def test_injected_stage_faults_counted_and_reported_once_per_kind(tasks, store, media_dir: Path) -> None:
    events: list[tuple[str, str]] = []
    ctx = StageContext(load_config(), store, backend="onnxruntime", on_status=lambda k, m: events.append((k, m)))
    pipeline = build_pipeline(["flaky", "passthrough"], ctx)
    got: list[int] = []
    run = LiveRun(open_source(str(media_dir / "video/carphone_face_176x144.mp4")), pipeline,
                  [CallbackSink(lambda r: got.append(r.frame.index))], on_status=lambda k, m: events.append((k, m)))
    run.start()
    assert run.wait(30)
    assert got == list(range(120))  # the pipeline never stopped
    assert pipeline.error_counts == {("flaky", "ValueError"): 40, ("flaky", "KeyError"): 12}
    reported = [m for k, m in events if k == "error"]
    assert len(reported) == 2 and {"ValueError" in m or "KeyError" in m for m in reported} == {True}
    assert run.summary()["stage_errors"] == 52


@pytest.mark.parametrize("change", ["delete", "replace"])
def test_model_file_changed_while_running_disables_the_stage(tasks, models_dir: Path, tmp_path: Path,
                                                             change: str) -> None:
    (tmp_path / "segmentation").mkdir()
    model = tmp_path / "segmentation/selfie_segmentation.onnx"
    shutil.copy(models_dir / "segmentation/selfie_segmentation.onnx", model)
    events: list[tuple[str, str]] = []
    ctx = StageContext(load_config(), ModelStore(tmp_path), backend="onnxruntime",
                       on_status=lambda k, m: events.append((k, m)))
    pipeline = build_pipeline(["probe"], ctx)
    pipeline.watch.interval = 0.05
    probed: list[bool] = []
    run = LiveRun(open_source("test:160x120@100"), pipeline, [CallbackSink(lambda r: probed.append("probe" in r.extras))])
    run.start()
    try:
        deadline = time.monotonic() + 10
        while len(probed) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        if change == "delete":
            model.unlink()
        else:
            model.write_bytes(b"not the model any more")
        deadline = time.monotonic() + 10
        while "probe" not in pipeline.disabled and time.monotonic() < deadline:
            time.sleep(0.02)
        n = len(probed)
        time.sleep(0.3)
    finally:
        assert run.stop(2.0)
    assert "probe" in pipeline.disabled
    assert any(probed[:10]) and len(probed) > n  # frames still flow after the stage was disabled
    assert not any(probed[n + 1:])
    msgs = [m for k, m in events if k == "error"]
    assert len(msgs) == 1 and ("deleted" if change == "delete" else "replaced") in msgs[0]
