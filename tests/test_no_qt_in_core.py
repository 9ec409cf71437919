"""vision_app and engines never import PySide6 (nor tensorrt/pycuda unless asked for)."""
from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_core_packages_import_without_qt_or_gpu_packages() -> None:
    mods = [m.name for pkg in ("vision_app", "engines")
            for m in pkgutil.walk_packages([str(REPO / pkg)], prefix=pkg + ".")]
    assert len(mods) > 10
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n"
            "    try:\n        importlib.import_module(m)\n"
            "    except ImportError as e:\n"
            "        if 'tensorrt' not in str(e) and 'pycuda' not in str(e): raise\n"
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('PySide6', 'shiboken6', 'tensorrt', 'pycuda'))\n"
            "print(bad)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
