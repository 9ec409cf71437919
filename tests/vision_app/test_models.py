"""The manifest against the real model pack: every file present with the right checksum, and the folder
lookup order and its messages."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engines import create_engine
from vision_app.errors import ModelError
from vision_app.models import BUNDLED_DIR, ENV_VAR, ModelStore, model_folders


def test_every_manifest_model_is_present_and_verified(store: ModelStore) -> None:
    assert len(store.names()) >= 14
    bad = {n: store.status(n) for n in store.names() if store.status(n) != "present"}
    assert bad == {}


def test_manifest_inputs_match_the_real_models(store: ModelStore) -> None:
    for name in store.names():
        e = store.entry(name)
        with create_engine(store.path(name), "onnxruntime", threads=1) as eng:
            assert e.input["name"] in eng.inputs, f"{name}: manifest input {e.input['name']} not in model"
            if "size" in e.input:
                w, h = e.input["size"]
                assert eng.inputs[e.input["name"]].shape[-2:] == (h, w), name


def test_noncommercial_models_flagged(store: ModelStore) -> None:
    flagged = {n for n in store.names() if store.entry(n).noncommercial}
    assert flagged == {"johnson_wave", "johnson_udnie"}
    assert all("non-commercial" in store.entry(n).license for n in flagged)


def test_checksum_mismatch_and_missing(tmp_path: Path, models_dir: Path) -> None:
    (tmp_path / "detection").mkdir()
    shutil.copy(models_dir / "detection/yolo-fastest-1.1.onnx", tmp_path / "detection/yolo-fastest-1.1-xl.onnx")
    s = ModelStore(tmp_path)
    assert s.status("yolo-fastest-1.1-xl") == "checksum mismatch"
    assert s.status("yolox-nano") == "missing"
    with pytest.raises(ModelError, match="checksum mismatch"):
        s.path("yolo-fastest-1.1-xl")
    with pytest.raises(ModelError, match=r"missing: expected detection/yolox_nano.onnx"):
        s.path("yolox-nano")
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        s.entry("nope")


def test_model_folder_lookup_order_and_message(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert [(f.path, f.origin) for f in model_folders()] == [(tmp_path.resolve(), ENV_VAR), (BUNDLED_DIR, "bundled")]
    other = tmp_path / "cli"
    other.mkdir()
    (tmp_path / "xdg/vision-app/models").mkdir(parents=True)
    # --models first, then the environment, then the per-user folder, then the bundled models
    assert [f.origin for f in model_folders(other)] == ["--models", ENV_VAR, "user folder", "bundled"]
    assert model_folders(other)[0].path == other.resolve()
    monkeypatch.delenv(ENV_VAR)
    assert [f.origin for f in model_folders()] == ["user folder", "bundled"]
    with pytest.raises(ModelError, match=r"model folder .*nope \(from --models\) does not exist"):
        model_folders(tmp_path / "nope")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(ModelError, match=r"gone \(from VISION_APP_MODELS\) does not exist"):
        model_folders()


def test_missing_model_says_how_to_add_it(tmp_path: Path) -> None:
    s = ModelStore(tmp_path)
    with pytest.raises(ModelError, match=r"model 'yolox-nano' is missing: expected detection/yolox_nano.onnx in "
                                         r"one of .* add model 'yolox-nano' with `python main.py models fetch"):
        s.path("yolox-nano")


def test_user_manifest_in_the_model_folder_adds_models(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text(
        '[models."my-tiny"]\nfile = "my.onnx"\ntask = "detect"\nlicense = "mine"\nclasses = ["a", "b"]\n')
    s = ModelStore(tmp_path)
    assert s.entry("my-tiny").classes == ("a", "b") and "yolox-nano" in s.names()
    (tmp_path / "manifest.toml").write_text('[models.bad]\nfile = "x"\ntask = "detect"\nlicense = "x"\nfoo = 1\n')
    with pytest.raises(ModelError, match=r"unknown key\(s\) \['foo'\]"):
        ModelStore(tmp_path)
