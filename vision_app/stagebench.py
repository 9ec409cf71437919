"""Frames-per-second of one image-rendering stage (segment, style) on real video frames.

Shared by the segment and style benchmarks (`python main.py bench --tasks segment,style`). A case builds
the real stage from config overrides (as `run --tasks ...` does), feeds it decoded frames resized to
the case's size, and times process + finish (model, smoothing, mask, overlay or stylization, resize
back); decoding is not timed. Two modes: one pipeline with the configured ONNX Runtime threads, and
throughput mode (2 workers with one thread each on alternate frames, finish in frame order), as
`run` does for files (one worker per core).
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.benchmark import BenchContext, ms
from vision_app.config import validate
from vision_app.errors import SourceError
from vision_app.pipeline import Pipeline
from vision_app.stages import StageContext, build_stage
from vision_app.types import Frame, FrameResult

HD_VIDEO = "bigbuckbunny.mp4"  # 1280×720 clip in the shared media, beside the default bench video


@dataclass
class StageCase:
    """One row: a task's stage with config overrides on frames of `size` (width, height)."""

    name: str
    task: str
    size: tuple[int, int]
    overrides: dict[str, Any] = field(default_factory=dict)
    target_fps: float | None = None


def bench_video(ctx: BenchContext) -> Path:
    """The 1280×720 clip beside the bench video when present, else the bench video itself."""
    if ctx.video is None:
        raise SourceError("the segment/style benchmarks need a video: pass --video (e.g. "
                          f"../shared/media/video/{HD_VIDEO})")
    hd = ctx.video.parent / HD_VIDEO
    return hd if hd.is_file() else ctx.video


def load_frames(video: Path, size: tuple[int, int], limit: int = 48) -> list[NDArray[np.uint8]]:
    """Up to `limit` BGR uint8 frames of the video, resized (INTER_AREA) to size=(width, height)."""
    cap = cv2.VideoCapture(str(video))
    frames: list[NDArray[np.uint8]] = []
    while len(frames) < limit:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img if img.shape[1::-1] == size else  # type: ignore[arg-type]
                      cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise SourceError(f"cannot read frames from {video}")
    return frames


def _pipeline(case: StageCase, bctx: BenchContext, threads: int) -> Pipeline:
    """The case's stage in a pipeline of its own, on a copy of the bench config with its overrides."""
    cfg = copy.deepcopy(bctx.config)
    for dotted, value in {"engine.threads": threads, "style.disk_cache": False, **case.overrides}.items():
        section, key = dotted.split(".")
        setattr(getattr(cfg, section), key, value)
    validate(cfg)
    ctx = StageContext(cfg, bctx.models, backend="onnxruntime", backend_reason="benchmark")
    return Pipeline([build_stage(case.task, ctx)])


def _frame(frames: list[NDArray[np.uint8]], i: int) -> Frame:
    return Frame(frames[i % len(frames)], i, 0.0, "bench")


def time_single(pipe: Pipeline, frames: list[NDArray[np.uint8]], seconds: float) -> list[float]:
    """Seconds per pipe.run on consecutive frames, for about `seconds` (at least 5 frames)."""
    for i in range(3):  # warm-up: the first runs allocate
        pipe.run(_frame(frames, i))
    per: list[float] = []
    t0 = time.perf_counter()
    i = 0
    while (time.perf_counter() - t0 < seconds or i < 5) and i < 5000:
        t = time.perf_counter()
        pipe.run(_frame(frames, i + 3))
        per.append(time.perf_counter() - t)
        i += 1
    return per


def time_workers(pipes: list[Pipeline], frames: list[NDArray[np.uint8]], n: int) -> float:
    """fps of throughput mode over n frames: worker k runs begin() on frames k, k+W, ...; the caller
    runs finish() in frame order on the first pipeline (Runner's parallel mode)."""
    for p in pipes:
        p.run(_frame(frames, 0))
    done: dict[int, FrameResult] = {}
    cond = threading.Condition()

    def worker(k0: int, p: Pipeline) -> None:
        for k in range(k0, n, len(pipes)):
            r = p.begin(_frame(frames, k))
            with cond:
                done[k] = r
                cond.notify_all()

    threads = [threading.Thread(target=worker, args=(i, p), daemon=True) for i, p in enumerate(pipes)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for k in range(n):
        with cond:
            cond.wait_for(lambda: k in done)
            r = done.pop(k)
        pipes[0].finish(r)
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    return n / elapsed


def measure(case: StageCase, bctx: BenchContext, frames: list[NDArray[np.uint8]], seconds: float,
            workers: int = 2) -> dict[str, Any]:
    """One table row: fps and p50 ms with one pipeline, fps in throughput mode, target verdict."""
    pipe = _pipeline(case, bctx, threads=bctx.config.engine.threads)
    try:
        per = time_single(pipe, frames, seconds)
    finally:
        pipe.close()
    fps = len(per) / sum(per)
    pipes = [_pipeline(case, bctx, threads=1) for _ in range(workers)]
    try:
        wfps = time_workers(pipes, frames, max(2 * workers, min(len(per) * 2, 400)))
    finally:
        for p in pipes:
            p.close()
    row: dict[str, Any] = {"case": case.name, "frame": f"{case.size[0]}x{case.size[1]}",
                           "fps": round(fps, 1), "ms p50": ms(per), f"fps {workers} workers": round(wfps, 1),
                           "target": ""}
    if case.target_fps is not None:
        best = max(fps, wfps)
        row["target"] = f">={case.target_fps:g} " + ("ok" if best >= case.target_fps else "SHORT")
    return row


COLUMNS = ["case", "frame", "fps", "ms p50", "fps 2 workers", "target"]


def seconds_per_case(bctx: BenchContext) -> float:
    """--repeat scales the time spent per case: the default 200 gives 3 s."""
    return max(0.5, bctx.repeat / 200 * 3.0)
