"""Style benchmark (`python main.py bench --tasks style`): stylized frames per second.

Cases: Magenta arbitrary style (fixed 384×384 model input) on 640×480 and 1280×720; Johnson wave at
320×240 (working size 320, i.e. full resolution), at 640×480 with working sizes 384 and 640, and at
1280×720 with 384. Target on the 2-core development CPU: Magenta ≥ 10 fps at 640×480. See
vision_app/stagebench.py for what is timed.
"""
from __future__ import annotations

from pathlib import Path

from vision_app.benchmark import BenchContext, BenchTable
from vision_app.stagebench import COLUMNS, StageCase, bench_video, load_frames, measure, seconds_per_case


def style_cases(painting: Path) -> list[StageCase]:
    def johnson(size: tuple[int, int], working: int) -> StageCase:
        return StageCase(f"Johnson wave, working {working}", "style", size,
                         {"style.style": "johnson_wave", "style.working_size": working})

    magenta = {"style.style": str(painting), "style.strength": 1.0}
    return [
        StageCase("Magenta style (384x384)", "style", (640, 480), magenta, 10),
        johnson((320, 240), 320), johnson((640, 480), 384), johnson((640, 480), 640),
        StageCase("Magenta style (384x384)", "style", (1280, 720), magenta),
        johnson((1280, 720), 384),
    ]


def run_style_bench(ctx: BenchContext) -> list[BenchTable]:
    video = bench_video(ctx)
    painting = video.parent.parent / "styles" / "style_wave.jpg"
    table = BenchTable(f"style transfer on {video.name} frames (stage: resize + model + resize back)", COLUMNS,
                       notes=[f"Magenta painting: {painting.name}, strength 1 (vector cached)",
                              "Johnson models: research / non-commercial license"])
    frames: dict[tuple[int, int], list] = {}
    for case in style_cases(painting):
        name = case.overrides["style.style"]
        model = "magenta-transfer" if name == str(painting) else name
        if ctx.model_names and model not in ctx.model_names:
            continue
        ctx.on_progress(f"style: {case.name} {case.size[0]}x{case.size[1]}")
        imgs = frames.setdefault(case.size, load_frames(video, case.size))
        table.rows.append(measure(case, ctx, imgs, seconds_per_case(ctx)))
    return [table]
