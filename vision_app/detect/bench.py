"""Detection benchmark (`python main.py bench --tasks detect`): where the time of a detector frame goes.

Two tables:
1. synthetic decode + NMS on tensors with a known layout: Yolo-Fastest's two raw heads (1,500 anchor
   candidates) and a YOLOv5-640-style concatenated [1, 25200, 85] tensor (plus YOLOX-416 and
   YOLOv8-640 for scale). Objects are clusters of overlapping candidates, as real detectors emit them.
2. every detector on the video, offline: preprocess / model / decode+NMS / tracking per frame (median
   ms), end-to-end fps of the app's own pipeline (capture thread -> runner -> detect stage with
   tracking -> draw), with one worker and in throughput mode (2 workers x 1 thread), the pipeline
   overhead (wall time per frame minus model time) as % of model time, and the one-thread tutorial loop
   (read -> infer -> decode -> draw) for comparison.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any

import cv2
import numpy as np

from vision_app.benchmark import BenchContext, BenchTable, ms, time_calls
from vision_app.detect.decoders import build_decoder
from vision_app.detect.nms import nms
from vision_app.errors import VisionAppError
from vision_app.models import COCO80, ModelEntry
from vision_app.pipeline import finish_step
from vision_app.types import FrameResult

CONF, IOU = 0.25, 0.45


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _objects(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, 5) random objects [cx, cy, w, h, class] inside a size x size input."""
    wh = rng.uniform(0.05, 0.5, (n, 2)) * size
    cxy = rng.uniform(0.1, 0.9, (n, 2)) * size
    return np.concatenate([cxy, wh, rng.integers(0, 80, (n, 1))], axis=1)


def synthetic_anchor_heads(entry: ModelEntry, rng: np.random.Generator, n_objects: int = 10
                           ) -> dict[str, np.ndarray]:
    """Raw logit heads [1, 3*85, g, g] for the entry's heads: background cells score far below any
    threshold; each object fires the 3x3 cells around its centre on one anchor (a cluster for NMS)."""
    size = int(entry.input["size"][0])
    objs = _objects(rng, n_objects, size)
    outs = {}
    for head in entry.decode["heads"]:
        s, anchors = int(head["stride"]), np.asarray(head["anchors"], np.float32)
        g = size // s
        t = rng.normal(0, 1, (3, 85, g, g)).astype(np.float32)
        t[:, 4] = rng.normal(-7, 1.5, (3, g, g))
        t[:, 5:] = rng.normal(-6, 2, (3, 80, g, g))
        for cx, cy, w, h, c in objs:
            a = int(np.argmin(np.abs(np.log(anchors[:, 0] * anchors[:, 1] / (w * h)))))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    col, row = int(cx // s) + dx, int(cy // s) + dy
                    if 0 <= col < g and 0 <= row < g:
                        t[a, 0, row, col] = _logit(cx / s - col)
                        t[a, 1, row, col] = _logit(cy / s - row)
                        t[a, 2:4, row, col] = np.log([w / anchors[a, 0], h / anchors[a, 1]]) + rng.normal(0, .1, 2)
                        t[a, 4, row, col] = rng.uniform(0, 4)
                        t[a, 5 + int(c), row, col] = rng.uniform(1, 4)
        outs[str(head["output"])] = t.reshape(1, 3 * 85, g, g)
    return outs


def synthetic_rows(n_rows: int, size: int, rng: np.random.Generator, n_objects: int = 20, per_object: int = 15,
                   with_obj: bool = True) -> np.ndarray:
    """(n_rows, 85) decoded rows [cx, cy, w, h, obj, 80 probs] (84 without obj): low background scores,
    n_objects clusters of per_object jittered boxes with high scores."""
    v = 85 if with_obj else 84
    rows = np.empty((n_rows, v), np.float32)
    rows[:, :2] = rng.uniform(0, size, (n_rows, 2))
    rows[:, 2:4] = rng.uniform(4, size / 3, (n_rows, 2))
    first = 4
    if with_obj:
        rows[:, 4] = 1 / (1 + np.exp(-rng.normal(-6, 1.5, n_rows)))
        first = 5
    rows[:, first:] = rng.uniform(0, 0.05 if with_obj else 0.2, (n_rows, 80))
    picks = rng.choice(n_rows, n_objects * per_object, replace=False).reshape(n_objects, per_object)
    for (cx, cy, w, h, c), idx in zip(_objects(rng, n_objects, size), picks):
        rows[idx, :4] = [cx, cy, w, h] + rng.normal(0, 3, (per_object, 4))
        if with_obj:
            rows[idx, 4] = rng.uniform(0.4, 0.95, per_object)
        rows[idx, first + int(c)] = rng.uniform(0.5, 0.95, per_object)
    return rows


def _entry(name: str, size: int, decode: dict[str, Any]) -> ModelEntry:
    return ModelEntry(name=name, file="-", task="detect", license="-", classes=COCO80,
                      input={"name": "images", "size": [size, size]}, decode=decode)


def synthetic_cases(ctx: BenchContext, rng: np.random.Generator) -> list[tuple[str, ModelEntry, dict, float]]:
    fastest = ctx.models.entry("yolo-fastest-1.1-xl")
    heads = synthetic_anchor_heads(fastest, rng)
    v5 = synthetic_rows(25200, 640, rng)[None]
    yolox_entry = _entry("yolox-416", 416, {"type": "yolox", "output": "output", "strides": [8, 16, 32]})
    yolox = synthetic_rows(3549, 416, rng)[None]
    grid, stride = build_decoder(yolox_entry)._grid(416, 416)  # type: ignore[attr-defined]
    yolox[0, :, 0:2] = yolox[0, :, 0:2] / stride - grid  # YOLOX rows are offsets from their grid cell
    yolox[0, :, 2:4] = np.log(np.maximum(yolox[0, :, 2:4], 1) / stride)
    v8 = np.ascontiguousarray(synthetic_rows(8400, 640, rng, with_obj=False).T[None])
    return [
        ("Yolo-Fastest heads 2x[1,255,g,g] (1,500 cand.)", fastest, heads, 0.5),
        ("YOLOv5-640 [1,25200,85]", _entry("yolov5-640", 640, {"type": "yolov5", "output": "output"}),
         {"output": v5}, 3.0),
        ("YOLOX-416 [1,3549,85]", yolox_entry, {"output": yolox}, math.nan),
        ("YOLOv8-640 [1,84,8400]", _entry("yolov8-640", 640, {"type": "yolov8", "output": "output"}),
         {"output": v8}, math.nan),
    ]


def synthetic_table(ctx: BenchContext) -> BenchTable:
    table = BenchTable("decode + NMS on synthetic outputs (ms, median; conf .25, IoU .45, class-aware)",
                       ["tensor", "candidates", "kept", "decode", "nms", "decode+nms", "p95", "target"])
    rng = np.random.default_rng(0)
    for title, entry, outputs, target in synthetic_cases(ctx, rng):
        conf = CONF
        dec = build_decoder(entry)
        cand = dec(outputs, conf)

        def run_nms() -> np.ndarray:
            return nms(cand.xyxy, cand.scores, IOU, cand.class_id, max_detections=300, max_candidates=2000)

        def both() -> np.ndarray:
            c = dec(outputs, conf)
            return nms(c.xyxy, c.scores, IOU, c.class_id, max_detections=300, max_candidates=2000)

        t_dec = time_calls(lambda: dec(outputs, conf), ctx.repeat)
        t_nms = time_calls(run_nms, ctx.repeat)
        t_all = time_calls(both, ctx.repeat)
        table.rows.append({"tensor": title, "candidates": len(cand), "kept": len(run_nms()),
                           "decode": ms(t_dec), "nms": ms(t_nms), "decode+nms": ms(t_all),
                           "p95": ms(t_all, 95), "target": "-" if math.isnan(target) else f"<= {target:g}"})
        ctx.on_progress(f"synthetic {title}: {ms(t_all):.3f} ms")
    table.notes.append(f"{ctx.repeat} timed calls each after 3 warm-up calls; candidates = boxes above the "
                       f"confidence threshold going into NMS.")
    return table


def _read_frames(ctx: BenchContext) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(ctx.video))
    frames: list[np.ndarray] = []
    while not ctx.frames or len(frames) < ctx.frames:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def _stage_parts(sctx: Any, frames: list[np.ndarray]) -> dict[str, list[float]]:
    """Per-frame part times (s) of the detect stage with tracking, frames already decoded in memory."""
    from vision_app.stages import build_stage
    from vision_app.types import Frame

    stage = build_stage("detect", sctx)
    parts: dict[str, list[float]] = {"preprocess": [], "model": [], "postprocess": [], "track": [], "stage": []}
    try:
        finish = finish_step(stage)
        if finish is None:
            raise VisionAppError("bench: the detect stage has no finish step (tracking), so the "
                                 "'track' part cannot be timed")
        for i, img in enumerate(frames[:5]):  # warm-up (first ORT runs allocate)
            finish(stage.process(FrameResult(Frame(img, i, 0.0, "bench"), img)))
        for i, img in enumerate(frames):
            t = time.perf_counter()
            r = finish(stage.process(FrameResult(Frame(img, i, 0.0, "bench"), img)))
            parts["stage"].append(time.perf_counter() - t)
            for k, v in r.extras["detect"].items():
                parts[k].append(v)
    finally:
        stage.close()
    return parts


def _end_to_end(ctx: BenchContext, model: str, workers: int) -> tuple[float, float, int]:
    """The app's pipeline offline on the video: (fps, mean model seconds per frame, frames)."""
    from vision_app.runner import CallbackSink, LiveRun
    from vision_app.sources import open_source
    from vision_app.stages import StageContext, build_pipelines

    cfg = copy.deepcopy(ctx.config)
    cfg.detect.model = model
    sctx = StageContext(cfg, ctx.models)
    pipelines = build_pipelines(["detect"], sctx, workers, cfg.engine.threads or (1 if workers > 1 else 0))
    model_s: list[float] = []
    run = LiveRun(open_source(str(ctx.video)), pipelines[0],
                  [CallbackSink(lambda r: model_s.append(r.extras.get("detect", {}).get("model", 0.0)))],
                  mode="offline", max_frames=ctx.frames, extra_pipelines=pipelines[1:])
    try:
        run.start()
        run.wait(600)
    finally:
        run.stop(2.0)
        for p in pipelines:
            p.close()
    summary = run.summary()
    n = summary["frames_processed"]
    return float(summary["throughput_fps"]), (sum(model_s) / len(model_s) if model_s else math.nan), n


def _tutorial_loop(ctx: BenchContext, detector: Any) -> float:
    """read -> infer -> decode -> draw in one thread, no tracking: fps."""
    from vision_app.draw import draw_detections

    cap = cv2.VideoCapture(str(ctx.video))
    n, t = 0, time.perf_counter()
    while not ctx.frames or n < ctx.frames:
        ok, img = cap.read()
        if not ok:
            break
        draw_detections(img.copy(), detector(img))  # type: ignore[arg-type]
        n += 1
    cap.release()
    return n / (time.perf_counter() - t)


def video_table(ctx: BenchContext) -> BenchTable:
    from vision_app.detect.detector import Detector
    from vision_app.detect.stage import detect_params
    from vision_app.stages import StageContext

    frames = _read_frames(ctx)
    table = BenchTable(
        f"detectors on {ctx.video.name if ctx.video else '-'} ({len(frames)} frames, offline; ms = median "
        f"per frame)",
        ["model", "threads", "preprocess", "model_ms", "decode+nms", "track", "stage_overhead_%",
         "e2e_fps", "e2e_overhead_%", "e2e_fps_2w", "tutorial_fps"])
    names = ctx.model_names or [n for n in ctx.models.names("detect") if ctx.models.status(n) == "present"]
    for name in names:
        cfg = copy.deepcopy(ctx.config)
        cfg.detect.model = name
        sctx = StageContext(cfg, ctx.models)
        parts = _stage_parts(sctx, frames)
        fps1, model_mean, n1 = _end_to_end(ctx, name, 1)
        fps2, _, _ = _end_to_end(ctx, name, 2)
        detector = Detector(ctx.models.entry(name), sctx.engine(name), detect_params(cfg.detect))
        tutorial = _tutorial_loop(ctx, detector)
        detector.close()
        model_med = ms(parts["model"])
        in_stage = sum(np.asarray(parts[k]) for k in ("preprocess", "postprocess", "track"))
        table.rows.append({
            "model": name, "threads": cfg.engine.threads or "default",
            "preprocess": ms(parts["preprocess"]), "model_ms": model_med,
            "decode+nms": ms(parts["postprocess"]), "track": ms(parts["track"]),
            "stage_overhead_%": round(100 * float(np.sum(in_stage)) / float(np.sum(parts["model"])), 1),
            "e2e_fps": round(fps1, 1),
            "e2e_overhead_%": round(100 * (1 / fps1 - model_mean) / model_mean, 1) if fps1 else math.nan,
            "e2e_fps_2w": round(fps2, 1), "tutorial_fps": round(tutorial, 1)})
        ctx.on_progress(f"video {name}: {fps1:.1f} fps ({n1} frames), 2 workers {fps2:.1f} fps")
    table.notes += [
        "stage_overhead_% = (preprocess + decode/NMS + tracking) / model time, summed over the frames.",
        "e2e = the app's pipeline (capture thread, runner, detect stage with tracking, draw), no output file; "
        "e2e_overhead_% = (wall time per frame - mean model time in that run) / mean model time.",
        "e2e_fps_2w = throughput mode: 2 workers with one ONNX Runtime thread each, results in order.",
        "tutorial_fps = one thread: read -> infer -> decode+NMS -> draw, no tracking.",
    ]
    return table


def run_detect_bench(ctx: BenchContext) -> list[BenchTable]:
    tables = [synthetic_table(ctx)]
    if ctx.video is None or not ctx.video.is_file():
        tables[0].notes.append("no video: pass --video PATH for the per-model table")
    else:
        tables.append(video_table(ctx))
    return tables
