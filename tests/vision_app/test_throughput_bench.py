"""`bench --tasks throughput` parts run end to end on small inputs and report every column (the numbers
are not checked: timings are benchmarks, never test asserts)."""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from vision_app.benchmark import BenchContext, parse_bench_tasks
from vision_app.config import load_config
from vision_app.models import ModelStore
from vision_app.parallelism import machine_cores


@pytest.fixture()
def bctx(models_dir: Path) -> BenchContext:
    return BenchContext(load_config(), ModelStore(models_dir), repeat=10)


def test_throughput_is_only_run_when_asked_for() -> None:
    assert "throughput" not in parse_bench_tasks(None)
    assert parse_bench_tasks("throughput") == ["throughput"]


def test_clip_from_the_video_or_synthetic(media_dir: Path, tmp_path: Path) -> None:
    from vision_app.throughput_bench import make_clip

    for source in (media_dir / "video/carphone_face_176x144.mp4", None):
        clip = make_clip(tmp_path / "c.mp4", 130, (320, 136), 25.0, source)  # longer than the 120-frame video
        cap = cv2.VideoCapture(str(clip))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 130
        assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (320, 136)
        cap.release()


def test_both_tutorial_flavours_find_the_bus_and_people(media_dir: Path, tmp_path: Path) -> None:
    """The plain loop (cv2 + numpy, as tutorials write it) is a fair baseline: on bus.jpg it draws the same
    boxes per frame as the app's detector (bus + 4 people), so the ratio compares equal work."""
    import json
    import subprocess
    import sys

    img = cv2.imread(str(media_dir / "scenes/bus.jpg"))
    clip = tmp_path / "bus.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, img.shape[1::-1])
    for _ in range(3):
        w.write(img)
    w.release()
    found = {}
    for flavour in ([], ["--plain"]):
        p = subprocess.run([sys.executable, "-m", "vision_app.tutorial_loop", str(clip), str(tmp_path / "o.mp4"),
                            *flavour], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout.strip().splitlines()[-1])
        assert got["frames"] == 3
        found[bool(flavour)] = got["detections"]
    assert found[False] >= 3 * 5 and abs(found[True] - found[False]) <= 3, found


def test_alternated_rounds_and_steps_on_a_short_clip(bctx: BenchContext, media_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from vision_app import throughput_bench
    from vision_app.throughput_bench import CLIP_SIZE, compare_runs, make_clip, steps_table

    monkeypatch.setattr(throughput_bench, "ROUNDS", 3)
    clip = make_clip(tmp_path / "clip.mp4", 24, CLIP_SIZE, 25.0, media_dir / "video/bikes_640x272.mp4")
    table, run_fps = compare_runs(bctx, clip, tmp_path, "yolo-fastest-1.1-xl", 24)
    assert [r["order"] for r in table.rows[:3]] == ["run > tutorial > plain", "tutorial > plain > run",
                                                     "plain > run > tutorial"]
    med = table.rows[-1]
    assert med["round"] == "median" and med["ratio"] > 0 and med["ratio_plain"] > 0 and run_fps > 0
    for name in ("run.mp4", "tutorial.mp4"):  # all wrote the annotated video, every frame
        assert int(cv2.VideoCapture(str(tmp_path / name)).get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    steps = steps_table(bctx, clip, "yolo-fastest-1.1-xl", 24, run_fps)
    names = [r["step"] for r in steps.rows]
    for step in ("read", "preprocess", "decode+nms", "track", "draw", "encode"):
        assert step in names
    assert any(n.startswith("detect stage's own work") for n in names)
    assert any("hand-offs" in n for n in names) and all(r["ms"] >= 0 or "hand-offs" in r["step"] for r in steps.rows)


@pytest.mark.parametrize("pooled", [True, False])
def test_a_streams_trial_counts_reads_and_drops(bctx: BenchContext, tmp_path: Path, pooled: bool) -> None:
    from vision_app.streams_bench import STREAM_FPS, STREAM_SIZE, trial
    from vision_app.throughput_bench import make_clip

    clip = make_clip(tmp_path / "s.mp4", 60, STREAM_SIZE, STREAM_FPS, None)
    r = trial(bctx, clip, 2, pooled, "yolo-fastest-1.1-xl", 0.7)
    assert r["streams"] == 2 and 0.0 <= r["drop"] <= r["worst"] <= 1.0 and r["fps"] > 0
    assert r["workers"] == (min(machine_cores(), 16) if pooled else 2)
