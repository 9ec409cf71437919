"""Shared fixtures: the real model pack and media in ../shared (CI has the same layout)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VISION_APP_SHARED", REPO.parent / "shared"))
MODELS = Path(os.environ.get("VISION_APP_MODELS", SHARED / "models"))
MEDIA = SHARED / "media"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The app itself needs no model folder (the default models are bundled); the tests also use the other
# models of ../shared/models, in this process and in the CLI subprocesses they start.
if MODELS.is_dir():
    os.environ.setdefault("VISION_APP_MODELS", str(MODELS))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    if not (MODELS / "README.md").is_file() and not any(MODELS.glob("*/*.onnx")):
        pytest.fail(f"model pack not found at {MODELS}; set VISION_APP_MODELS to ../shared/models")
    return MODELS


@pytest.fixture(scope="session")
def media_dir() -> Path:
    if not MEDIA.is_dir():
        pytest.fail(f"media not found at {MEDIA}; ../shared/media must sit beside the repository")
    return MEDIA


@pytest.fixture(scope="session")
def store(models_dir: Path):
    from vision_app.models import ModelStore

    return ModelStore(models_dir)


@pytest.fixture(scope="session")
def app_config():
    from vision_app.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def stage_context(app_config, store):
    """A StageContext on ONNX Runtime (CPU) with the real model pack."""
    from vision_app.stages import StageContext

    return StageContext(app_config, store, backend="onnxruntime", backend_reason="tests")
