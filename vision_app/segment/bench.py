"""Segmentation benchmark (`python main.py bench --tasks segment`): overlay fps per model and frame size.

Cases: selfie colour overlay and background blur, DeepLab colour overlay, each on 640×480 and on the
1280×720 Big Buck Bunny clip. Targets on the 2-core development CPU: selfie ≥ 60 fps, DeepLab ≥ 20 fps
at 640×480. See vision_app/stagebench.py for what is timed.
"""
from __future__ import annotations

from vision_app.benchmark import BenchContext, BenchTable
from vision_app.stagebench import COLUMNS, StageCase, bench_video, load_frames, measure, seconds_per_case


def segment_cases() -> list[StageCase]:
    out = []
    for size in ((640, 480), (1280, 720)):
        vga = size == (640, 480)
        out += [
            StageCase("selfie colour overlay", "segment", size,
                      {"segment.model": "selfie", "segment.overlay": "color"}, 60 if vga else None),
            StageCase("selfie background blur", "segment", size,
                      {"segment.model": "selfie", "segment.overlay": "blur"}),
            StageCase("DeepLab colour overlay", "segment", size,
                      {"segment.model": "deeplab", "segment.overlay": "color"}, 20 if vga else None),
        ]
    return out


def run_segment_bench(ctx: BenchContext) -> list[BenchTable]:
    video = bench_video(ctx)
    table = BenchTable(f"segmentation overlays on {video.name} frames (stage: model + smoothing + mask + "
                       f"overlay)", COLUMNS,
                       notes=["fps: one pipeline, ORT default threads; 2 workers: throughput mode, 1 thread "
                              "each, smoothing in frame order"])
    frames: dict[tuple[int, int], list] = {}
    for case in segment_cases():
        if ctx.model_names and case.overrides["segment.model"] not in ctx.model_names:
            continue
        ctx.on_progress(f"segment: {case.name} {case.size[0]}x{case.size[1]}")
        imgs = frames.setdefault(case.size, load_frames(video, case.size))
        table.rows.append(measure(case, ctx, imgs, seconds_per_case(ctx)))
    return [table]
