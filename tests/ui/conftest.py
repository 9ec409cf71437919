"""UI test fixtures: offscreen Qt (tests/conftest.py sets QT_QPA_PLATFORM), a throw-away settings file
and user-data folder per test, the real model pack."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


@pytest.fixture
def ui_ctx(tmp_path: Path, store, monkeypatch):
    """An AppContext on the real model pack with settings, captures and kiosk files under tmp_path."""
    from PySide6.QtCore import QSettings

    from vision_app.config import load_config
    from ui.context import AppContext

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    overrides = {"ui.capture_dir": str(tmp_path / "captures"), "face.gallery": str(tmp_path / "gallery.db"),
                 "ui.admin_file": str(tmp_path / "admin.json"), "engine.backend": "onnxruntime"}
    cfg = load_config(None, overrides)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    return AppContext(cfg, None, settings, store, "", overrides)


def _qimage_to_array(img) -> np.ndarray:
    """A QImage as an (H, W, 3) uint8 BGR copy (for comparing what is shown with the frame)."""
    from PySide6.QtGui import QImage

    img = img.convertToFormat(QImage.Format.Format_BGR888)
    h, w = img.height(), img.width()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


@pytest.fixture
def as_array():
    """QImage → (H, W, 3) uint8 BGR copy."""
    return _qimage_to_array
