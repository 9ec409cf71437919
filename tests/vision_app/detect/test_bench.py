"""`bench --tasks detect` runs end to end and reports every column (numbers are not checked: timings
are benchmarks, never test asserts)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vision_app.benchmark import BENCHMARKS, parse_bench_tasks
from vision_app.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def test_registry_and_task_parsing() -> None:
    assert BENCHMARKS["detect"] == "vision_app.detect.bench:run_detect_bench"
    assert parse_bench_tasks("detect") == ["detect"]
    with pytest.raises(ConfigError, match="no benchmark for task"):
        parse_bench_tasks("detect,nope")


def test_bench_detect_json_smoke(models_dir: Path, media_dir: Path) -> None:
    env = {**os.environ, "VISION_APP_MODELS": str(models_dir)}
    out = subprocess.run([sys.executable, "main.py", "bench", "--tasks", "detect", "--json", "--frames", "8",
                          "--repeat", "2", "--model", "yolo-fastest-1.1",
                          "--video", str(media_dir / "video" / "bikes_640x272.mp4")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    synthetic, video = json.loads(out.stdout)["tasks"]["detect"]
    tensors = [r["tensor"] for r in synthetic["rows"]]
    assert any("Yolo-Fastest" in t for t in tensors) and any("25200" in t for t in tensors)
    assert all(r["candidates"] > r["kept"] > 0 for r in synthetic["rows"])
    (row,) = video["rows"]
    assert row["model"] == "yolo-fastest-1.1" and set(video["columns"]) == set(row)
    assert row["e2e_fps"] > 0 and row["e2e_fps_2w"] > 0 and row["model_ms"] > 0
