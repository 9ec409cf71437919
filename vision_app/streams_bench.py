"""Streams per machine (part of `bench --tasks throughput`): how many 640×480 @ 15 fps detection streams
this machine sustains with at most 5 % of their frames dropped.

Each stream is a generated 640×480 clip played in a loop at 15 fps like a camera (`loop:` source: the
frames are decoded, as a real stream's are, and a frame the app has not taken when the next arrives is
dropped and counted). Two ways of running K streams:

- shared pool: what `run` with several sources and the monitor do now: one pool of one worker per core
  (1 ONNX Runtime thread each), each stream finishing on its own fork of the stages;
- one pipeline per source: what they did before: K pipelines, each with its own sessions at the runtime's
  default thread count, each on its own runner thread.

For K = 1, 2, ... each run gets 2 s to settle, then the dropped share of the frames read in the next
seconds (default 6; `--repeat` scales it: 200 = 6 s) is measured; the answer is the largest K at or under 5 %
overall. The worst single stream's share is shown too: a pool that starved one source would show there.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from vision_app.benchmark import BenchContext, BenchTable
from vision_app.multirun import MultiRun
from vision_app.parallelism import machine_cores, plan_workers
from vision_app.runner import LiveRun
from vision_app.sources import open_source
from vision_app.stages import StageContext, build_pipeline, build_pipelines

STREAM_SIZE = (640, 480)
STREAM_FPS = 15.0
MAX_DROP = 0.05
SETTLE_S = 2.0
MAX_STREAMS = 32


def _counts(runs: list[LiveRun]) -> list[tuple[int, int]]:
    return [(r.capture.stats.read, r.slot.dropped) for r in runs]


def trial(ctx: BenchContext, clip: Path, k: int, pooled: bool, model: str, seconds: float) -> dict[str, Any]:
    """Run k looped streams for SETTLE_S + seconds; the dropped share of the frames read after settling."""
    cfg = copy.deepcopy(ctx.config)
    cfg.detect.model = model
    cfg.engine.workers = "auto"
    sctx = StageContext(cfg, ctx.models)
    plan = plan_workers(cfg.engine, sources=k, live=True, backend=sctx.backend)
    if pooled:
        pipelines = build_pipelines(["detect"], sctx, plan.workers, plan.threads)
    else:
        sctx.config.engine.threads = 0
        pipelines = [build_pipeline(["detect"], sctx) for _ in range(k)]
    sources = [open_source(f"loop:{clip}") for _ in range(k)]  # opened last: their clocks start now
    multi = MultiRun(sources, pipelines) if pooled else None
    runs = multi.runs if multi is not None else [LiveRun(s, p) for s, p in zip(sources, pipelines)]
    try:
        if multi is not None:
            multi.start()
        else:
            for r in runs:
                r.start()
        time.sleep(SETTLE_S)
        before = _counts(runs)
        t0 = time.monotonic()
        time.sleep(seconds)
        after = _counts(runs)
        span = time.monotonic() - t0
    finally:
        if multi is not None:
            multi.stop(2.0)
            multi.close()
        else:
            for r in runs:
                r.stop(2.0)
            for p in pipelines:
                p.close()
    read = [a[0] - b[0] for a, b in zip(after, before)]
    dropped = [a[1] - b[1] for a, b in zip(after, before)]
    total = max(sum(read), 1)
    return {"streams": k, "drop": sum(dropped) / total,
            "worst": max(d / max(r, 1) for d, r in zip(dropped, read)),
            "fps": (sum(read) - sum(dropped)) / span, "workers": plan.workers if pooled else k}


def max_streams(ctx: BenchContext, clip: Path, pooled: bool, model: str, seconds: float
                ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the largest K that passed, the first K that failed), K counting up from 1."""
    best = failed = None
    for k in range(1, MAX_STREAMS + 1):
        r = trial(ctx, clip, k, pooled, model, seconds)
        ctx.on_progress(f"streams: {'pool' if pooled else 'per-source'} x{k}: {100 * r['drop']:.1f} % dropped "
                        f"(worst stream {100 * r['worst']:.1f} %)")
        if r["drop"] > MAX_DROP:
            failed = r
            break
        best = r
    return best, failed


def streams_table(ctx: BenchContext, tmp: Path, model: str, source: Path | None) -> BenchTable:
    from vision_app.throughput_bench import make_clip

    seconds = max(1.0, 6.0 * ctx.repeat / 200)
    clip = make_clip(tmp / "stream.mp4", int(STREAM_FPS * 20), STREAM_SIZE, STREAM_FPS, source)
    cores = machine_cores()
    table = BenchTable(
        f"{STREAM_SIZE[0]}x{STREAM_SIZE[1]} @ {STREAM_FPS:g} fps detection streams ({model}) one {cores}-core "
        f"machine sustains with <= {100 * MAX_DROP:g} % of frames dropped",
        ["how", "streams", "dropped_%", "worst_stream_%", "frames/s", "next: streams", "next: dropped_%"])
    for pooled, how in ((True, f"shared pool ({min(cores, 16)} workers x 1 thread)"),
                        (False, "one pipeline per source (default threads)")):
        best, failed = max_streams(ctx, clip, pooled, model, seconds)
        table.rows.append({
            "how": how, "streams": best["streams"] if best else 0,
            "dropped_%": round(100 * best["drop"], 1) if best else "",
            "worst_stream_%": round(100 * best["worst"], 1) if best else "",
            "frames/s": round(best["fps"], 1) if best else "",
            "next: streams": failed["streams"] if failed else f">{MAX_STREAMS}",
            "next: dropped_%": round(100 * failed["drop"], 1) if failed else ""})
    table.notes += [f"each count: {SETTLE_S:g} s to settle, then {seconds:g} s measured; streams are a "
                    f"generated clip looped at {STREAM_FPS:g} fps (decoded like a camera stream).",
                    "next: the first count over the limit and its dropped share."]
    return table
