"""The CLI end to end in a subprocess, as a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=REPO)


def test_run_passthrough_on_bikes_writes_video_and_stats(media_dir: Path, tmp_path: Path) -> None:
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    p = run_cli("run", "--source", str(media_dir / "video/bikes_640x272.mp4"), "--output", str(out),
                "--stats", str(stats))
    assert p.returncode == 0, p.stderr
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 250
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (640, 272)
    s = json.loads(stats.read_text())
    assert s["frames_read"] == 250 and s["frames_processed"] == 250 and s["frames_dropped"] == 0
    assert s["throughput_fps"] > 0
    for key in ("passthrough", "draw"):
        assert set(s["stage_latency_ms"][key]) == {"p50", "p95"}
    assert s["capture_to_result_ms"]["p95"] >= s["capture_to_result_ms"]["p50"] > 0
    assert "frames read 250, processed 250, dropped 0" in p.stdout
    assert "100%" in p.stderr  # progress bar for a file


def test_main_job_without_camera_or_model_folder_detects_things_in_the_bundled_clip(tmp_path: Path) -> None:
    """The README's main job as a fresh user runs it: no camera, no VISION_APP_MODELS, no user folder."""
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    e = {k: v for k, v in os.environ.items() if k != "VISION_APP_MODELS"}
    e.update(env)
    p = subprocess.run([sys.executable, str(REPO / "main.py"), "run", "--tasks", "detect", "--max-frames", "60",
                        "--output", str(tmp_path / "out.mp4"), "--stats", str(tmp_path / "s.json")],
                       capture_output=True, text=True, timeout=300, env=e, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "no camera found" in p.stderr and "sample clip shipped with vision-app" in p.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["source"].endswith("bikes_640x272.mp4") and s["frames_processed"] == 60
    det = s["detections"]
    # a street: people and cars in most of the first 60 frames (the cyclists come later), tracked
    assert det["frames_with_detections"] >= 30 and det["per_class"]["person"] >= 20
    assert det["per_class"]["car"] >= 10 and det["tracks"] >= 2
    assert "detections " in p.stdout and "person" in p.stdout
    assert int(cv2.VideoCapture(str(tmp_path / "out.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 60


def test_a_model_folder_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    p = run_cli("models", "list", "--models", str(tmp_path / "nope"))
    assert p.returncode == 2
    assert "nope (from --models) does not exist" in p.stderr and "Traceback" not in p.stderr


def test_models_list_and_verify(models_dir: Path, tmp_path: Path) -> None:
    p = run_cli("models", "list", "--models", str(models_dir))
    assert p.returncode == 0 and "yolo-fastest-1.1-xl" in p.stdout and "NON-COMMERCIAL" in p.stdout
    assert run_cli("models", "verify", "--all", "--models", str(models_dir)).returncode == 0
    (tmp_path / "detection").mkdir()
    (tmp_path / "detection/yolox_nano.onnx").write_bytes(b"tampered")
    p = run_cli("models", "verify", "--models", str(tmp_path), "--json")
    assert p.returncode == 1
    rows = {r["name"]: r for r in json.loads(p.stdout)["models"]}
    assert rows["yolox-nano"]["status"] == "checksum mismatch" and rows["yolox-nano"]["origin"] == "--models"
    assert rows["yunet"]["status"] == "present" and rows["yunet"]["origin"] == "VISION_APP_MODELS"


def test_bad_source_and_bad_config_are_clear_errors(tmp_path: Path) -> None:
    p = run_cli("run", "--source", str(tmp_path / "nope.mp4"))
    assert p.returncode == 2 and "not found" in p.stderr and "Traceback" not in p.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text("[capture]\nvideo_mod = 'paced'\n")
    p = run_cli("run", "--config", str(cfg), "--source", "test:", "--max-frames", "2")
    assert p.returncode == 2 and "capture.video_mod" in p.stderr


def test_a_reader_that_stops_early_is_not_an_error(tmp_path: Path) -> None:
    """`python main.py models list | true` (a reader gone before the first line): exit 0, no traceback."""
    p = subprocess.run(["bash", "-c", f"set -o pipefail; '{sys.executable}' '{REPO / 'main.py'}' models list | true"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0 and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
