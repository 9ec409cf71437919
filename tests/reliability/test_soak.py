"""Soak verdict logic on synthetic samples, and a short real soak run end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vision_app.soak import Sample, verdict

REPO = Path(__file__).resolve().parents[2]


def samples(rss: list[float], fds: list[int] | None = None, threads: list[int] | None = None) -> list[Sample]:
    n = len(rss)
    fds = fds or [10] * n
    threads = threads or [5] * n
    return [Sample(t=i * 60.0, rss_mb=r, threads=th, fds=f, frames=i * 100, fps=20.0, latency_p95_ms=5.0)
            for i, (r, f, th) in enumerate(zip(rss, fds, threads))]


@pytest.mark.parametrize("rss, fds, threads, expected, reason", [
    ([100] * 21, None, None, "PASS", None),
    ([100 + i * 2 for i in range(21)], None, None, "FAIL", "memory grows"),
    ([100, 150] + [150] * 19, None, None, "PASS", None),            # one-off growth during warm-up
    ([100] * 10 + [103] + [103] * 10, None, None, "PASS", None),     # one cache filling, then flat
    ([100] * 21, [10 + i for i in range(21)], None, "FAIL", "file descriptors"),
    ([100] * 21, None, [5 + i for i in range(21)], "FAIL", "threads"),
])
def test_verdict(rss, fds, threads, expected, reason) -> None:
    v = verdict(samples(rss, fds, threads), warmup_s=60)
    assert v["verdict"] == expected
    if reason:
        assert any(reason in r for r in v["reasons"])


def test_short_soak_run_end_to_end(models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    p = subprocess.run([sys.executable, str(REPO / "main.py"), "soak", "--minutes", "0.08", "--tasks",
                        "passthrough", "--interval", "0.5", "--warmup", "1", "--json", str(out),
                        "--csv", str(tmp_path / "s.csv")],
                       capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={**os.environ, "VISION_APP_MODELS": str(models_dir)})
    assert p.returncode in (0, 1), p.stderr
    s = json.loads(out.read_text())
    assert s["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert len(s["runs"]) == 2 and all(r["frames_processed"] > 0 for r in s["runs"])
    assert len((tmp_path / "s.csv").read_text().splitlines()) >= 5
