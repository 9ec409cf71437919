"""The README's first code block is what a new user runs and what .ci/run runs: install with the lock,
the main job with no environment variable, the tests."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def first_block() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    assert m is not None
    return [ln.split("#", 1)[0].strip() for ln in m.group(1).splitlines()]


def test_the_first_code_block_is_install_main_job_tests() -> None:
    install, job, tests = first_block()
    assert "pip install -c constraints.txt" in install and (REPO / "constraints.txt").is_file()
    assert job.startswith("python main.py run ") and "=" not in job.split("python")[0]  # no VAR=... prefix
    assert "VISION_APP_MODELS" not in job and tests == "python -m pytest -q"


def test_ci_runs_exactly_those_lines() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    p = subprocess.run(["bash", "-c", "awk '/^```/ { n++; next } n == 1' README.md"], cwd=REPO,
                       capture_output=True, text=True, check=True)
    assert [ln.split("#", 1)[0].strip() for ln in p.stdout.splitlines()] == first_block()
    assert "awk '/^```/ { n++; next } n == 1' README.md" in script and 'bash -euo pipefail -c "$line"' in script
