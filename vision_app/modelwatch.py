"""Notices model files that change on disk while a pipeline runs.

A stage keeps running the model it loaded, but a file deleted or replaced underneath a running kiosk means
someone or something is changing the install: the stage that owns the file is disabled and the change is
reported, instead of carrying on with a model nobody can verify any more (or crashing at the next reload).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size)


class ModelWatch:
    """stage name → model files it loaded, checked at most every `interval` seconds."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self._files: dict[str, dict[Path, tuple[float, int] | None]] = {}
        self._next = 0.0

    def add(self, stage: str, path: Path) -> None:
        self._files.setdefault(stage, {})[Path(path)] = _stamp(Path(path))

    def stages(self) -> list[str]:
        return list(self._files)

    def check(self, now: float | None = None) -> list[tuple[str, str]]:
        """[(stage, message)] for stages whose files changed since the last check (each reported once)."""
        now = time.monotonic() if now is None else now
        if now < self._next or not self._files:
            return []
        self._next = now + self.interval
        changed: list[tuple[str, str]] = []
        for stage, files in self._files.items():
            for path, stamp in files.items():
                cur = _stamp(path)
                if cur == stamp:
                    continue
                files[path] = cur
                what = "was deleted" if cur is None else "was replaced"
                changed.append((stage, f"model file {path} {what} while running; stage '{stage}' disabled. "
                                       f"Restore the file (python main.py models verify) and restart"))
        return changed
