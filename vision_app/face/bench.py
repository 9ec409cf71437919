"""Benchmark and behaviour report for face analysis (`python main.py bench --tasks face`).

1. Per-face time of detect + align + embed + passive liveness (the kiosk's per-frame work on one face),
   part by part, on photos of several sizes and on the carphone video's 176×144 frames; the face mesh
   (blink / temporal) is timed separately.
2. How each liveness check behaves on the carphone video (a real, moving, talking face) next to a
   'video' made of one still photo (written through the mp4v codec so it carries real compression
   noise): passive scores, EAR range, blinks, non-rigid motion, temporal verdicts, yaw.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision_app.benchmark import BenchContext, BenchTable, ms, time_calls
from vision_app.face.align import align_face
from vision_app.face.liveness import LivenessParams, TrackLiveness
from vision_app.face.stage import build_detector, build_embedder, build_mesh, build_passive
from vision_app.stages import StageContext

PHOTOS = ("scenes/astronaut.png", "spoof/live_1.jpg", "faces/id06/1.jpg", "faces/id10/1.jpg")
CARPHONE = "video/carphone_face_176x144.mp4"
STILL_PHOTO = "faces/id01/2.jpg"


def _media_root(ctx: BenchContext) -> Path:
    return ctx.models.root.parent / "media"


def _read_video(path: Path, limit: int = 0) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames: list[np.ndarray] = []
    while not limit or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, float(fps)


def _still_video(photo: np.ndarray, seconds: float = 3.0, fps: float = 30.0) -> list[np.ndarray]:
    photo = cv2.resize(photo, (640, round(photo.shape[0] * 640 / photo.shape[1])))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "still.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, photo.shape[1::-1])
        for _ in range(int(seconds * fps)):
            writer.write(photo)
        writer.release()
        return _read_video(path)[0]


def _timing_rows(sctx: StageContext, images: list[tuple[str, np.ndarray]], repeat: int) -> list[dict]:
    det, emb, passive, mesh = build_detector(sctx), build_embedder(sctx), build_passive(sctx), build_mesh(sctx)
    rows = []
    for name, img in images:
        faces = det.detect(img)
        if len(faces) == 0:
            continue
        box, lm = faces.xyxy[:1], faces.landmarks[0]
        aligned = emb.align(img, lm)
        t_det = time_calls(lambda: det.detect(img), repeat)
        t_align = time_calls(lambda: (align_face(img, lm), None if emb.spec.arcface112 else emb.align(img, lm)),
                             repeat)
        t_emb = time_calls(lambda: emb.embed([aligned]), repeat)
        t_pas = time_calls(lambda: passive.check(img, box), repeat)
        t_mesh = time_calls(lambda: mesh.run(img, box[0]), repeat) if mesh else np.array([math.nan])
        total = ms(t_det) + ms(t_align) + ms(t_emb) + ms(t_pas)
        best = sum(float(t.min()) for t in (t_det, t_align, t_emb, t_pas)) * 1e3  # least disturbed run
        rows.append({"image": name, "size": f"{img.shape[1]}x{img.shape[0]}", "detect_ms": ms(t_det),
                     "align_ms": ms(t_align), "embed_ms": ms(t_emb), "passive_ms": ms(t_pas),
                     "per_face_ms": round(total, 3), "per_face_min_ms": round(best, 3), "mesh_ms": ms(t_mesh)})
    return rows


def _recognizer_rows(sctx: StageContext, images: list[tuple[str, np.ndarray]], repeat: int) -> list[dict]:
    """Per-face time (detect + align + embed + passive) with every recognizer of the manifest, the models
    taking turns call by call (order flipped every round), so machine load hits them alike; wall time
    and the calling thread's CPU time (less disturbed by other processes)."""
    det, passive = build_detector(sctx), build_passive(sctx)
    store = sctx.models
    names = [n for n in store.names("face_embed") if store.status(n) == "present"] if store is not None else []
    embs = {n: build_embedder(sctx, n) for n in names}

    def per_face(emb: Any, img: np.ndarray) -> None:
        faces = det.detect(img)
        lm = faces.landmarks[0]
        arc = align_face(img, lm)
        emb.embed([arc if emb.spec.arcface112 else emb.align(img, lm)])
        passive.check(img, faces.xyxy[:1])

    rows = []
    for label, img in images:
        if len(det.detect(img)) == 0:
            continue
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for n in names:
            per_face(embs[n], img)  # warm-up
        for r in range(repeat):
            for n in names if r % 2 == 0 else names[::-1]:
                t0, c0 = time.perf_counter(), time.thread_time()
                per_face(embs[n], img)
                wall[n].append(time.perf_counter() - t0)
                cpu[n].append(time.thread_time() - c0)
        base = float(np.median(cpu["mobilefacenet"])) if "mobilefacenet" in cpu else math.nan
        for n in names:
            rows.append({"image": label, "recognizer": n, "wall_ms": ms(wall[n]), "wall_min_ms": round(1e3 * min(wall[n]), 3),
                         "cpu_ms": ms(cpu[n]), "cpu_vs_mobilefacenet": f"{100 * (np.median(cpu[n]) / base - 1):+.1f} %"})
    return rows


def _behaviour(sctx: StageContext, frames: list[np.ndarray], fps: float) -> dict[str, Any]:
    det, passive, mesh = build_detector(sctx), build_passive(sctx), build_mesh(sctx)
    track = TrackLiveness(LivenessParams.from_config(sctx.config.face))
    scores, ears, motions, yaws, verdicts = [], [], [], [], []
    found = 0
    for i, frame in enumerate(frames):
        faces = det.detect(frame)
        if len(faces) == 0:
            continue
        found += 1
        scores.append(passive.check(frame, faces.xyxy[:1])[0].score)
        st = track.update(i / fps, faces.landmarks[0], mesh.run(frame, faces.xyxy[0]) if mesh else None)
        ears.append(st.ear)
        motions.append(st.motion)
        yaws.append(st.yaw_deg)
        verdicts.append(st.temporal_live)
    s, e, y = np.array(scores), np.array(ears, float), np.array(yaws)
    window = int(sctx.config.face.liveness_window_s * fps)
    m_full = np.array(motions[window:] or [math.nan])
    first_live = next((i for i, v in enumerate(verdicts) if v is True), None)
    blinks = [f"{round(b.closed_at * fps)}-{round(b.opened_at * fps)}" for b in track.blink.events]
    return {
        "frames": f"{found}/{len(frames)}",
        "passive_live": f"{int((s >= passive.threshold).sum())}/{len(s)}",
        "passive_min/med": f"{s.min():.3f}/{np.median(s):.3f}" if len(s) else "-",
        "EAR_min/med/max": (f"{np.nanmin(e):.3f}/{np.nanmedian(e):.3f}/{np.nanmax(e):.3f}"
                            if np.isfinite(e).any() else "-"),
        "blinks(frames)": ",".join(blinks) or "none",
        "motion_full_window": f"{np.nanmin(m_full):.4f}-{np.nanmax(m_full):.4f}",
        "temporal T/F/pending": f"{verdicts.count(True)}/{verdicts.count(False)}/{verdicts.count(None)}",
        "first_live_s": "-" if first_live is None else round(first_live / fps, 2),
        "yaw_deg": f"{y.min():.1f}..{y.max():.1f}" if len(y) else "-",
        "head_turn": track.head_turn.seen,
    }


def run_face_bench(ctx: BenchContext) -> list[BenchTable]:
    sctx = StageContext(ctx.config, ctx.models)
    media = _media_root(ctx)
    images = [(p, cv2.imread(str(media / p))) for p in PHOTOS if (media / p).is_file()]
    frames, fps = _read_video(media / CARPHONE, ctx.frames)
    if frames:
        images.append((f"{CARPHONE} frame 0", frames[0]))
    repeat = max(5, min(ctx.repeat, 50))
    ctx.on_progress(f"face: timing detect/align/embed/passive on {len(images)} images x {repeat}")
    t0 = time.perf_counter()
    timing = BenchTable("per-face time: detect + align + embed + passive liveness (median ms, one face)",
                        ["image", "size", "detect_ms", "align_ms", "embed_ms", "passive_ms", "per_face_ms",
                         "per_face_min_ms", "mesh_ms"], _timing_rows(sctx, [(n, i) for n, i in images if i is not None], repeat),
                        [f"engine threads: {ctx.config.engine.threads or 'ORT default'}; mesh (blink/temporal) "
                         "is extra, per face and frame; detect is per frame, shared by all its faces",
                         "per_face_min_ms sums each part's fastest call: closer to a quiet machine's figure"])
    ctx.on_progress("face: per-face time with each recognizer, interleaved")
    recognizers = BenchTable(
        "per-face time by recognizer (detect + align + embed + passive; the models take turns)",
        ["image", "recognizer", "wall_ms", "wall_min_ms", "cpu_ms", "cpu_vs_mobilefacenet"],
        _recognizer_rows(sctx, [(n, i) for n, i in images if i is not None], repeat),
        ["cpu_ms: CPU time of the calling thread (median), set engine.threads = 1 for it to cover all the "
         "work; wall_ms follows the machine's load", "mobilefacenet was the default before edgeface-xs"])
    rows = []
    if frames:
        ctx.on_progress("face: liveness behaviour on the carphone video")
        rows.append({"video": CARPHONE, **_behaviour(sctx, frames, fps)})
    photo = cv2.imread(str(media / STILL_PHOTO)) if (media / STILL_PHOTO).is_file() else None
    if photo is not None:  # missing or unreadable: no still-photo row, like the unreadable PHOTOS
        ctx.on_progress("face: liveness behaviour on a still-photo video")
        still = _still_video(photo)
        rows.append({"video": f"still {STILL_PHOTO} (3 s)", **_behaviour(sctx, still, 30.0)})
    cfg = ctx.config.face
    behaviour = BenchTable(
        "liveness checks on video (per frame of the one tracked face)",
        ["video", "frames", "passive_live", "passive_min/med", "EAR_min/med/max", "blinks(frames)",
         "motion_full_window", "temporal T/F/pending", "first_live_s", "yaw_deg", "head_turn"], rows,
        [f"passive threshold {cfg.passive_threshold}; blink = EAR < {cfg.blink_close_ratio} x own median, "
         f"reopened > {cfg.blink_open_ratio} x within {cfg.blink_max_closed_s} s; temporal window "
         f"{cfg.liveness_window_s} s, motion_min {cfg.motion_min}; head turn >= {cfg.head_turn_deg} deg",
         f"total benchmark time {time.perf_counter() - t0:.1f} s"])
    return [timing, recognizers, behaviour]
