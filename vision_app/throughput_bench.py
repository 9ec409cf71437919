"""`python main.py bench --tasks throughput`: the app's `run` against the tutorial loop, where the time
per frame outside the model goes, and how many camera streams one machine sustains.

1. On a generated clip (default 1,000 frames of 640×272, from the shared bikes video, else synthetic;
   in a temporary folder) five alternated rounds of whole processes: `python main.py run --source CLIP
   --tasks detect -o OUT.mp4` exactly as a user types it (no flags; the model folder comes from
   VISION_APP_MODELS) and the tutorial loop (vision_app/tutorial_loop.py: read -> infer -> decode ->
   draw -> write, one thread, one 2-thread ONNX Runtime session) in two flavours: on the app's own
   per-frame code, and `--plain` as tutorials write it (cv2 + numpy only). Ratio = tutorial seconds / run
   seconds per round; the median of the rounds is the figure. All write the annotated video.
2. Each step of a frame measured on its own (CPU time of the thread doing it, so other processes on the
   machine distort it less than wall time): read, preprocess, model (1 thread, as the file workers run
   it), decode + NMS, tracking, drawing, encoding; the detect stage's own work as % of model time; and
   end to end: the run's core time per frame (cores / fps) minus model and steps = hand-offs and idle.
3. Streams per machine (streams_bench.py).
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vision_app.benchmark import BenchContext, BenchTable
from vision_app.errors import VisionAppError
from vision_app.parallelism import machine_cores

CLIP_FRAMES = 1000
CLIP_SIZE = (640, 272)
ROUNDS = 5  # alternated rounds of run / tutorial / plain tutorial (rotating order)
STAGE_TARGET_PCT = 15.0
RATIO_TARGET = 1.6


def synthetic_frame(i: int, size: tuple[int, int]) -> NDArray[np.uint8]:
    """A BGR frame of a generated scene: a gradient with a few moving blocks (no video at hand)."""
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[...] = (np.arange(w, dtype=np.uint16) * 255 // max(w - 1, 1)).astype(np.uint8)[None, :, None]
    for k in range(4):
        x = int((i * (3 + k) + k * w // 4) % max(w - 60, 1))
        y = int(h / 2 + (h / 4) * math.sin(i / (15.0 + k)))
        cv2.rectangle(img, (x, y - 30), (x + 40 + 10 * k, y + 30), (40 * k, 200, 255 - 50 * k), -1)
    return img


def make_clip(path: Path, frames: int, size: tuple[int, int], fps: float, source: Path | None) -> Path:
    """Write an mp4v clip of `frames` frames of `size` at `fps`: the source video's frames looped (and
    resized when needed), or synthetic frames when there is no source video."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise VisionAppError(f"cannot write the benchmark clip {path} (OpenCV has no mp4v writer)")
    n = 0
    try:
        while n < frames:
            cap = cv2.VideoCapture(str(source)) if source is not None else None
            got = 0
            while n < frames:
                if cap is not None:
                    ok, img = cap.read()
                    if not ok:
                        break
                    if img.shape[1::-1] != size:
                        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                else:
                    img = synthetic_frame(n, size)
                writer.write(img)
                n += 1
                got += 1
            if cap is not None:
                cap.release()
                if got == 0:  # an unreadable source: fall back to synthetic frames
                    source = None
    finally:
        writer.release()
    return path


def main_command() -> list[str]:
    """How a user starts the app: python main.py (or the installed package's main module)."""
    spec = importlib.util.find_spec("main")
    if spec is not None and spec.origin:
        return [sys.executable, spec.origin]
    return [sys.executable, "-c", "import sys; from vision_app.cli import main; sys.exit(main(sys.argv[1:]))"]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str], env: dict[str, str], timeout: float = 900) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process, its stdout)."""
    c = _children_cpu()
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise VisionAppError(f"benchmark command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return wall, _children_cpu() - c, p.stdout


def _load() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def compare_runs(ctx: BenchContext, clip: Path, tmp: Path, model: str, frames: int) -> tuple[BenchTable, float]:
    """The alternated rounds; returns the table and the median steady-state fps of the app's run."""
    env = {**os.environ, "VISION_APP_MODELS": str(ctx.models.root)}
    run_cmd = [*main_command(), "run", "--source", str(clip), "--tasks", "detect", "-o", str(tmp / "run.mp4")]
    if model != "yolo-fastest-1.1-xl":
        run_cmd += ["--model", model]
    tut_cmd = [sys.executable, "-m", "vision_app.tutorial_loop", str(clip), str(tmp / "tutorial.mp4"),
               "--model", model]
    cmds = {"run": run_cmd, "tutorial": tut_cmd}
    if ctx.models.entry(model).decode.get("type") == "yolo_anchor":
        cmds["plain"] = [*tut_cmd, "--plain"]
    table = BenchTable(
        f"`run --source CLIP --tasks detect -o out.mp4` vs the tutorial loop, whole processes, {frames} frames "
        f"of {CLIP_SIZE[0]}x{CLIP_SIZE[1]}, {model}",
        ["round", "order", "run_s", "tutorial_s", "plain_s", "ratio", "ratio_plain", "run_fps", "tutorial_fps",
         "plain_fps", "run_cpu_s", "tutorial_cpu_s", "load_before"])
    ratios: dict[str, list[float]] = {"tutorial": [], "plain": []}
    run_fps = []
    names = list(cmds)
    for k in range(ROUNDS):
        order = names[k % len(names):] + names[:k % len(names)]
        load = _load()
        got: dict[str, tuple[float, float, str]] = {}
        for which in order:
            ctx.on_progress(f"throughput: round {k + 1}/{ROUNDS}, {which}")
            got[which] = _timed(cmds[which], env)
        t_run, cpu_run, out_run = got["run"]
        m = re.search(r"throughput ([\d.]+) fps", out_run)
        fps_run = float(m.group(1)) if m else math.nan
        run_fps.append(fps_run)
        row: dict[str, Any] = {"round": k + 1, "order": " > ".join(order), "run_s": round(t_run, 2),
                               "run_fps": fps_run, "run_cpu_s": round(cpu_run, 2), "load_before": load,
                               "plain_s": "", "ratio_plain": "", "plain_fps": ""}
        for which, col in (("tutorial", "ratio"), ("plain", "ratio_plain")):
            if which not in got:
                continue
            t, cpu, out = got[which]
            ratios[which].append(t / t_run)
            row[f"{which}_s"] = round(t, 2)
            row[col] = round(t / t_run, 3)
            row[f"{which}_fps"] = float(json.loads(out.strip().splitlines()[-1])["fps"])
            if which == "tutorial":
                row["tutorial_cpu_s"] = round(cpu, 2)
        table.rows.append(row)
    med = statistics.median(ratios["tutorial"])
    med_plain = statistics.median(ratios["plain"]) if ratios["plain"] else math.nan
    table.rows.append({"round": "median", "order": "", "run_s": "", "tutorial_s": "", "plain_s": "",
                       "ratio": round(med, 3), "ratio_plain": "" if math.isnan(med_plain) else round(med_plain, 3),
                       "run_fps": statistics.median(run_fps), "tutorial_fps": "", "plain_fps": "",
                       "run_cpu_s": "", "tutorial_cpu_s": "", "load_before": _load()})

    def verdict(v: float) -> str:
        return f"{v:.2f}x, target >= {RATIO_TARGET}: {'ok' if v >= RATIO_TARGET else 'SHORT'}"

    table.notes += [
        "ratio = tutorial seconds / run seconds of whole processes (start-up, model loading and writing "
        "the video included), per round; the median is the figure.",
        f"tutorial = the loop on the app's own preprocessing, decoder, NMS and drawing (it gets every "
        f"per-frame saving the app has, so only scheduling differs): {verdict(med)}.",
    ]
    if not math.isnan(med_plain):
        table.notes.append(f"plain = the loop as tutorials write it (cv2.dnn.blobFromImage, numpy decode of every "
                           f"anchor, cv2.dnn.NMSBoxesBatched, cv2 drawing): {verdict(med_plain)}.")
    table.notes += [
        "run_fps / *_fps: frames per second of the processing itself, as each process reports it; "
        "*_cpu_s: CPU seconds each process used (all its threads; ONNX Runtime's 2-thread pool spins while "
        "it waits, so the tutorial's figure grows when the machine is busy).",
        f"load_before: the machine's 1/5/15-minute load average before the round ({machine_cores()} cores). "
        f"Other processes distort the ratio, mostly in the run's favour (the tutorial's 2-thread session "
        f"waits for its second thread whenever another process holds a core): quote figures taken at a "
        f"load well under 1.",
    ]
    return table, statistics.median(run_fps)


def step_times(ctx: BenchContext, clip: Path, model: str, frames: int) -> dict[str, NDArray[np.float64]]:
    """Seconds per frame of each step, on the clip, one frame after the other (see the module doc)."""
    import copy

    from vision_app.draw import render_result
    from vision_app.stages import StageContext, build_stage
    from vision_app.types import Frame, FrameResult

    cfg = copy.deepcopy(ctx.config)
    cfg.detect.model = model
    cfg.engine.threads = 1
    stage: Any = build_stage("detect", StageContext(cfg, ctx.models))
    cfg2 = copy.deepcopy(cfg)
    cfg2.engine.threads = 2
    two = StageContext(cfg2, ctx.models).engine(model)
    parts: dict[str, list[float]] = {k: [] for k in ("read", "preprocess", "model", "decode+nms", "track", "draw",
                                                     "encode", "model_2t_wall")}
    cap = cv2.VideoCapture(str(clip))
    writer = cv2.VideoWriter(str(clip.with_name("steps.mp4")), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, CLIP_SIZE)
    det = stage.detector
    clock = time.thread_time
    try:
        for i in range(frames):
            t0 = clock()
            ok, got = cap.read()
            if not ok:
                break
            img = np.asarray(got, np.uint8)  # typed view, no copy
            t1 = clock()
            blob, box_map = det.preprocess(img)
            t2 = clock()
            outputs = det.infer(blob)
            t3 = clock()
            dets = det.postprocess(outputs, box_map, stage._decode_conf)
            t4 = clock()
            result = stage.finish(FrameResult(Frame(img, i, 0.0, "bench"), img, detections=dets))
            t5 = clock()
            result = render_result(result)
            t6 = clock()
            writer.write(result.image)
            t7 = clock()
            w0 = time.perf_counter()
            two.infer({det.input_name: blob})
            w1 = time.perf_counter()
            if i >= 10:  # the first calls allocate and warm up
                for k, a, b in (("read", t0, t1), ("preprocess", t1, t2), ("model", t2, t3),
                                ("decode+nms", t3, t4), ("track", t4, t5), ("draw", t5, t6), ("encode", t6, t7),
                                ("model_2t_wall", w0, w1)):
                    parts[k].append(b - a)
    finally:
        cap.release()
        writer.release()
        stage.close()
        two.close()
    return {k: np.asarray(v) for k, v in parts.items()}


def steps_table(ctx: BenchContext, clip: Path, model: str, frames: int, run_fps: float) -> BenchTable:
    parts = step_times(ctx, clip, model, min(frames, 400))
    model_ms = float(parts["model"].mean()) * 1e3
    table = BenchTable(f"time per frame outside the model ({model}; ms, mean over {len(parts['model'])} frames; "
                       f"CPU time of the thread doing it)", ["step", "ms", "% of model"])
    steps = ("read", "preprocess", "decode+nms", "track", "draw", "encode")
    for k in ("model", *steps):
        v = float(parts[k].mean()) * 1e3
        table.rows.append({"step": k + (" (1 ORT thread)" if k == "model" else ""), "ms": round(v, 3),
                           "% of model": round(100 * v / model_ms, 1)})
    stage_ms = sum(float(parts[k].mean()) * 1e3 for k in ("preprocess", "decode+nms", "track"))
    stage_pct = 100 * stage_ms / model_ms
    table.rows.append({"step": "detect stage's own work (preprocess + decode+nms + track)",
                       "ms": round(stage_ms, 3), "% of model": round(stage_pct, 1)})
    m2 = float(parts["model_2t_wall"].mean()) * 1e3
    table.rows += [{"step": "model on one 2-thread session (live sources; wall time)", "ms": round(m2, 3),
                    "% of model": round(100 * m2 / model_ms, 1)},
                   {"step": "  detect stage's own work as % of that", "ms": round(stage_ms, 3),
                    "% of model": round(100 * stage_ms / m2, 1)}]
    outside = sum(float(parts[k].mean()) * 1e3 for k in steps)
    cores = machine_cores()
    if run_fps and not math.isnan(run_fps):
        core_ms = cores * 1e3 / run_fps
        table.rows += [
            {"step": "all steps outside the model", "ms": round(outside, 3),
             "% of model": round(100 * outside / model_ms, 1)},
            {"step": f"run end to end: {cores} cores / {run_fps:.1f} fps = core time per frame",
             "ms": round(core_ms, 3), "% of model": round(100 * core_ms / model_ms, 1)},
            {"step": "  end-to-end overhead (core time per frame - model)", "ms": round(core_ms - model_ms, 3),
             "% of model": round(100 * (core_ms - model_ms) / model_ms, 1)},
            {"step": "  of which hand-offs, waiting and idle cores", "ms": round(core_ms - model_ms - outside, 3),
             "% of model": round(100 * (core_ms - model_ms - outside) / model_ms, 1)},
        ]
    table.notes.append(f"target: detect stage's own work <= {STAGE_TARGET_PCT:g} % of model time (1-thread "
                       f"sessions, as the app runs files): {'ok' if stage_pct <= STAGE_TARGET_PCT else 'SHORT'}.")
    return table


def run_throughput_bench(ctx: BenchContext) -> list[BenchTable]:
    from vision_app.streams_bench import streams_table

    model = ctx.model_names[0] if ctx.model_names else ctx.config.detect.model
    frames = ctx.frames or CLIP_FRAMES
    source = ctx.video if ctx.video is not None and ctx.video.is_file() else None
    with tempfile.TemporaryDirectory(prefix="vision-app-throughput-") as tmp_name:
        tmp = Path(tmp_name)
        ctx.on_progress(f"throughput: writing a {frames}-frame clip "
                        f"({'from ' + source.name if source else 'synthetic'})")
        clip = make_clip(tmp / "clip.mp4", frames, CLIP_SIZE, 25.0, source)
        compare, run_fps = compare_runs(ctx, clip, tmp, model, frames)
        compare.notes.append(f"clip: {frames} frames, {'looped ' + source.name if source else 'synthetic'}.")
        steps = steps_table(ctx, clip, model, frames, run_fps)
        streams = streams_table(ctx, tmp, model, source)
    return [compare, steps, streams]
