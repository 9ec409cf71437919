"""Config: documented defaults agree with the dataclasses; unknown keys and bad values name the key."""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from vision_app.config import DEFAULT_CONFIG_PATH, AppConfig, load_config
from vision_app.errors import ConfigError


def test_default_toml_documents_exactly_the_dataclass_defaults() -> None:
    doc = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
    assert doc == dataclasses.asdict(AppConfig())
    assert load_config(DEFAULT_CONFIG_PATH) == AppConfig()


def test_file_then_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[detect]\nconfidence = 0.4\nmodel = 'yolox-nano'\n[capture]\nvideo_mode = 'paced'\n")
    cfg = load_config(p, {"detect.confidence": 0.5, "detect.iou": None})
    assert cfg.detect.confidence == 0.5 and cfg.detect.model == "yolox-nano"
    assert cfg.capture.video_mode == "paced" and cfg.detect.iou == AppConfig().detect.iou


@pytest.mark.parametrize("text, match", [
    ("[detect]\nconfidnce = 0.4\n", "unknown config key 'detect.confidnce'"),
    ("[nosuch]\nx = 1\n", "unknown config key 'nosuch'"),
    ("[access]\nmin_live_ratio = 0.5\n", "'access.min_live_ratio' was removed: .*passive_threshold"),
    ("[detect]\nconfidence = 'high'\n", "config key 'detect.confidence' has a bad value 'high'"),
    ("[detect]\nconfidence = 1.5\n", "config key 'detect.confidence' has a bad value 1.5"),
    ("[engine]\nbackend = 'cuda'\n", "config key 'engine.backend' has a bad value 'cuda'"),
    ("detect = 3\n", "config key 'detect' must be a table"),
    ("[detect\nx=1", "not valid TOML"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
