"""The core packages (vision_app, engines) stay mypy-clean (DESIGN.md: "type hints everywhere").

Runs only where the installed packages match constraints.txt (skipped with the reason otherwise).

Runs `python -m mypy` with the [tool.mypy] section of pyproject.toml (files, python_version,
warn_unused_ignores, ...). The incremental cache is the repository's .mypy_cache (git-ignored): about
15 s on a cold cache, about 1 s after that.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.lock import installed_mismatches

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (pip install -e '.[dev]' installs it)")
def test_core_packages_are_mypy_clean() -> None:
    # what mypy reports depends on the installed packages' type stubs (cv2, numpy, ...): it runs against
    # the versions of the lock, so that a new release of a dependency cannot turn the suite red by itself
    differ = installed_mismatches()
    if differ:
        pytest.skip(f"the installed packages differ from constraints.txt ({len(differ)}: {'; '.join(differ[:4])}"
                    f"{' ...' if len(differ) > 4 else ''}), so mypy's view of their stubs may differ too; install "
                    f"with python -m pip install -c constraints.txt -e \".[dev]\" to run this check, or refresh "
                    f"the lock with python scripts/refresh_lock.py --test")
    p = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml")],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    report = p.stdout + p.stderr
    assert p.returncode == 0, f"mypy found problems in the core (fix them; see pyproject [tool.mypy]):\n{report}"
    # It checked every module of both packages, not an empty or mistyped file list.
    m = re.search(r"Success: no issues found in (\d+) source files", report)
    assert m is not None, report
    modules = [f for pkg in ("vision_app", "engines") for f in (REPO / pkg).rglob("*.py")]
    assert int(m.group(1)) == len(modules), report
