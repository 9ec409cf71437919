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


def test_run_without_camera_falls_back_to_test_source_and_says_so(tmp_path: Path) -> None:
    p = run_cli("run", "--max-frames", "20", "--stats", str(tmp_path / "s.json"))
    assert p.returncode == 0, p.stderr
    assert "no camera found" in p.stderr and "test:" in p.stderr
    assert json.loads((tmp_path / "s.json").read_text())["frames_processed"] >= 1


def test_missing_model_folder_says_how_to_point_to_one(tmp_path: Path) -> None:
    env = {"VISION_APP_MODELS": "", "XDG_DATA_HOME": str(tmp_path), "HOME": str(tmp_path)}
    p = run_cli("models", "list", env=env)
    assert p.returncode == 2
    assert "no model folder found" in p.stderr and "--models DIR" in p.stderr and "VISION_APP_MODELS" in p.stderr


def test_models_list_and_verify(models_dir: Path, tmp_path: Path) -> None:
    p = run_cli("models", "list", "--models", str(models_dir))
    assert p.returncode == 0 and "yolo-fastest-1.1-xl" in p.stdout and "NON-COMMERCIAL" in p.stdout
    assert run_cli("models", "verify", "--models", str(models_dir)).returncode == 0
    (tmp_path / "detection").mkdir()
    (tmp_path / "detection/yolox_nano.onnx").write_bytes(b"tampered")
    p = run_cli("models", "verify", "--models", str(tmp_path), "--json")
    assert p.returncode == 1
    rows = {r["name"]: r["status"] for r in json.loads(p.stdout)["models"]}
    assert rows["yolox-nano"] == "checksum mismatch" and rows["yunet"] == "missing"


def test_bad_source_and_bad_config_are_clear_errors(tmp_path: Path) -> None:
    p = run_cli("run", "--source", str(tmp_path / "nope.mp4"))
    assert p.returncode == 2 and "not found" in p.stderr and "Traceback" not in p.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text("[capture]\nvideo_mod = 'paced'\n")
    p = run_cli("run", "--config", str(cfg), "--source", "test:", "--max-frames", "2")
    assert p.returncode == 2 and "capture.video_mod" in p.stderr
