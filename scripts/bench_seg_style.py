"""Benchmark: segmentation overlays and style transfer, frames per second on this machine.

    python scripts/bench_seg_style.py [--models DIR] [--media DIR] [--seconds 3] [--only selfie,magenta]

Each case builds the real stage from config (as `run --tasks ...` does), feeds it decoded frames of
../shared/media/video/bigbuckbunny.mp4 (1280×720, resized for the smaller cases) and times
process + finish (model, smoothing, mask, overlay / stylization, resize back). Decoding is not timed.
Two columns: one pipeline with the runtime's default threads, and throughput mode (2 workers with one
ONNX Runtime thread each on alternate frames, finish in frame order), as `run --workers 2` does.
Numbers are printed, never asserted; other processes on the machine change them.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vision_app.config import load_config  # noqa: E402
from vision_app.models import ModelStore  # noqa: E402
from vision_app.pipeline import Pipeline  # noqa: E402
from vision_app.stages import StageContext, build_stage  # noqa: E402
from vision_app.types import Frame  # noqa: E402


@dataclass
class Case:
    name: str
    task: str
    size: tuple[int, int]  # frame (width, height)
    overrides: dict[str, Any] = field(default_factory=dict)
    target_fps: float | None = None


def cases(media: Path) -> list[Case]:
    wave = str(media / "styles" / "style_wave.jpg")
    out: list[Case] = []
    for size in ((640, 480), (1280, 720)):
        big = size == (1280, 720)
        out += [
            Case("selfie colour overlay", "segment", size, {"segment.model": "selfie"}, None if big else 60),
            Case("selfie background blur", "segment", size, {"segment.model": "selfie",
                                                             "segment.overlay": "blur"}),
            Case("DeepLab colour overlay", "segment", size, {"segment.model": "deeplab"}, None if big else 20),
            Case("Magenta style (384x384)", "style", size, {"style.style": wave}, None if big else 10),
            Case("Johnson wave, working 384", "style", size, {"style.style": "johnson_wave",
                                                             "style.working_size": 384}),
        ]
        if not big:
            out.append(Case("Johnson wave, working 640", "style", size, {"style.style": "johnson_wave",
                                                                        "style.working_size": 640}))
    out.insert(0, Case("Johnson wave, working 320", "style", (320, 240), {"style.style": "johnson_wave",
                                                                         "style.working_size": 320}))
    return out


def load_frames(video: Path, size: tuple[int, int], limit: int = 48) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < limit:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img if img.shape[1::-1] == size else cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise SystemExit(f"cannot read frames from {video}")
    return frames


def build(case: Case, store: ModelStore, threads: int) -> Pipeline:
    cfg = load_config(None, {**case.overrides, "engine.threads": threads, "style.disk_cache": False})
    ctx = StageContext(cfg, store, backend="onnxruntime", backend_reason="benchmark")
    return Pipeline([build_stage(case.task, ctx)])


def time_single(pipe: Pipeline, frames: list[np.ndarray], seconds: float) -> tuple[float, float]:
    """(fps, median ms per frame) of pipe.run on consecutive frames for about `seconds`."""
    for i in range(3):  # warm-up: first runs allocate
        pipe.run(Frame(frames[i % len(frames)], i, 0.0, "bench-warmup"))
    per: list[float] = []
    t0 = time.perf_counter()
    i = 0
    while (time.perf_counter() - t0 < seconds or i < 5) and i < 2000:
        t = time.perf_counter()
        pipe.run(Frame(frames[i % len(frames)], i, 0.0, "bench"))
        per.append(time.perf_counter() - t)
        i += 1
    return i / (time.perf_counter() - t0), 1000 * float(np.median(per))


def time_workers(pipes: list[Pipeline], frames: list[np.ndarray], seconds: float) -> float:
    """fps of throughput mode: each worker runs begin() on its share, finish() in frame order."""
    n = max(10, int(seconds * 8))
    for p in pipes:
        p.run(Frame(frames[0], 0, 0.0, "bench-warmup"))
    done: dict[int, Any] = {}
    cond = threading.Condition()
    jobs: Queue[int | None] = Queue()

    def worker(p: Pipeline) -> None:
        while (k := jobs.get()) is not None:
            r = p.begin(Frame(frames[k % len(frames)], k, 0.0, "bench"))
            with cond:
                done[k] = r
                cond.notify_all()

    threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in pipes]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for k in range(n):
        jobs.put(k)
    for _ in threads:
        jobs.put(None)
    for k in range(n):
        with cond:
            cond.wait_for(lambda: k in done)
            r = done.pop(k)
        pipes[0].finish(r)
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    return n / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = Path(os.environ.get("VISION_APP_SHARED", REPO.parent / "shared"))
    ap.add_argument("--models", default=os.environ.get("VISION_APP_MODELS", str(shared / "models")))
    ap.add_argument("--media", default=str(shared / "media"))
    ap.add_argument("--seconds", type=float, default=3.0, help="time per case and mode")
    ap.add_argument("--only", help="comma-separated words; run the cases whose name contains one")
    ap.add_argument("--no-workers", action="store_true", help="skip the 2-worker column")
    args = ap.parse_args()
    store = ModelStore(Path(args.models))
    media = Path(args.media)
    video = media / "video" / "bigbuckbunny.mp4"
    chosen = [c for c in cases(media)
              if not args.only or any(w.lower() in c.name.lower() for w in args.only.split(","))]
    frame_cache: dict[tuple[int, int], list[np.ndarray]] = {}
    print(f"{'case':30s} {'frame':>9s} {'fps':>7s} {'ms p50':>7s} {'2 workers':>10s} {'target':>7s}")
    for c in chosen:
        frames = frame_cache.setdefault(c.size, load_frames(video, c.size))
        pipe = build(c, store, threads=0)
        fps, ms = time_single(pipe, frames, args.seconds)
        pipe.close()
        w = ""
        if not args.no_workers:
            pipes = [build(c, store, threads=1) for _ in range(2)]
            w = f"{time_workers(pipes, frames, args.seconds):10.1f}"
            for p in pipes:
                p.close()
        target = "" if c.target_fps is None else (f">={c.target_fps:.0f}" + (" ok" if max(
            fps, float(w or 0)) >= c.target_fps else " SHORT"))
        print(f"{c.name:30s} {c.size[0]:>4d}x{c.size[1]:<4d} {fps:7.1f} {ms:7.1f} {w:>10s} {target:>7s}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
