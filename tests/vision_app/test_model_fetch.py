"""`python main.py models fetch`: model packs from a real HTTP server on 127.0.0.1 and from a folder;
checksums before anything is moved into place, resumed downloads (HTTP Range), nothing half-written."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers.pack_server import PackServer
from vision_app.model_checksums import sha256_file
from vision_app.models import MANIFEST_PATH, ModelStore, manifest_entry_text

REPO = Path(__file__).resolve().parents[2]
TINY = "detection/yolo-fastest-1.1.onnx"  # 1.3 MB
LANDSCAPE = "segmentation/selfie_segmentation_landscape.onnx"  # 0.45 MB
MINE = "extra/my-det.onnx"


@pytest.fixture()
def pack(tmp_path: Path, models_dir: Path) -> Path:
    """A pack of two models the manifest knows and one it does not ("my-det")."""
    builtin = tomllib.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["models"]
    root = tmp_path / "pack"
    for f in (TINY, LANDSCAPE):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(models_dir / f, root / f)
    (root / MINE).parent.mkdir(parents=True)
    shutil.copy(models_dir / TINY, root / MINE)
    mine = {**builtin["yolo-fastest-1.1"], "file": MINE, "license": "mine"}
    text = "\n".join([manifest_entry_text("yolo-fastest-1.1", builtin["yolo-fastest-1.1"]),
                      manifest_entry_text("selfie-landscape", builtin["selfie-landscape"]),
                      manifest_entry_text("my-det", mine)])
    (root / "manifest.toml").write_text(text, encoding="utf-8")
    return root


def fetch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VISION_APP_MODELS"}  # only bundled + the target
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, str(REPO / "main.py"), "models", "fetch", *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_fetch_over_http_verifies_places_and_registers_the_models(pack: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    with PackServer(pack) as srv:
        p = fetch(tmp_path, srv.url, "--models", str(target))
        assert p.returncode == 0, p.stdout + p.stderr
        assert "fetched 3, already present 0, failed 0" in p.stdout and "100%" in p.stderr
        for f in (TINY, LANDSCAPE, MINE):
            assert sha256_file(target / f) == sha256_file(pack / f), f
        assert not (target / ".partial").exists()
        # only the model the built-in manifest lacks is added to the folder's own manifest
        assert list(tomllib.loads((target / "manifest.toml").read_text())["models"]) == ["my-det"]
        store = ModelStore(target)
        assert {n: store.status(n) for n in ("my-det", "yolo-fastest-1.1", "selfie-landscape")} == \
            dict.fromkeys(("my-det", "yolo-fastest-1.1", "selfie-landscape"), "present")
        assert store.entry("my-det").license == "mine"
        n_before = len(srv.requests)
        again = fetch(tmp_path, srv.url + "manifest.toml", "--models", str(target))
        assert again.returncode == 0 and "fetched 0, already present 3, failed 0" in again.stdout
        assert [r[0] for r in srv.requests[n_before:]] == ["manifest.toml"]  # no model file downloaded again


def test_a_cut_connection_leaves_nothing_half_written_and_the_next_fetch_resumes(pack: Path,
                                                                                tmp_path: Path) -> None:
    target = tmp_path / "target"
    size = (pack / TINY).stat().st_size
    with PackServer(pack) as srv:
        srv.cut[TINY] = 500_000
        p = fetch(tmp_path, srv.url, "--models", str(target), "--only", "yolo-fastest-1.1", "--retries", "0")
        assert p.returncode == 1
        assert f"cut after 500000 of {size} bytes" in p.stdout and "run the same command again" in p.stdout
        assert not (target / TINY).exists()  # the model folder holds no half-written model
        part = target / ".partial" / (TINY + ".part")
        assert part.stat().st_size == 500_000
        p = fetch(tmp_path, srv.url, "--models", str(target), "--only", "yolo-fastest-1.1")
        assert p.returncode == 0, p.stdout + p.stderr
        assert (TINY, "bytes=500000-", 206) in srv.requests  # resumed, not downloaded again
        assert sha256_file(target / TINY) == sha256_file(pack / TINY) and not (target / ".partial").exists()
        # within one run a cut is resumed by itself (--retries, default 2)
        srv.cut[LANDSCAPE] = 100_000
        p = fetch(tmp_path, srv.url, "--models", str(target), "--only", "selfie-landscape")
        assert p.returncode == 0 and (LANDSCAPE, "bytes=100000-", 206) in srv.requests
        assert sha256_file(target / LANDSCAPE) == sha256_file(pack / LANDSCAPE)


def test_a_checksum_mismatch_is_discarded_and_changes_nothing(pack: Path, tmp_path: Path) -> None:
    manifest = pack / "manifest.toml"
    wrong = sha256_file(pack / TINY)
    text = manifest.read_text()
    manifest.write_text(text.replace(sha256_file(pack / LANDSCAPE), wrong))  # LANDSCAPE now claims TINY's sha
    target = tmp_path / "target"
    with PackServer(pack) as srv:
        p = fetch(tmp_path, srv.url, "--models", str(target), "--only", "selfie-landscape,yolo-fastest-1.1")
    assert p.returncode == 1 and "does not match the manifest's" in p.stdout and "nothing was changed" in p.stdout
    assert "fetched 1, already present 0, failed 1" in p.stdout
    assert not (target / LANDSCAPE).exists() and not (target / ".partial").exists()
    assert "selfie-landscape" not in (target / "manifest.toml").read_text() if (target / "manifest.toml").exists() \
        else True
    assert sha256_file(target / TINY) == wrong  # the good one of the two was fetched


def test_bad_packs_are_refused_before_anything_is_written(pack: Path, tmp_path: Path) -> None:
    (pack / "manifest.toml").write_text(
        '[models.evil]\nfile = "../evil.onnx"\nsha256 = "' + "0" * 64 + '"\ntask = "detect"\nlicense = "x"\n')
    target = tmp_path / "target"
    p = fetch(tmp_path, str(pack), "--models", str(target))
    assert p.returncode == 2 and "must be relative to the pack and stay inside it" in p.stderr
    assert not target.exists() and not (tmp_path / "evil.onnx").exists()
    (pack / "manifest.toml").unlink()
    p = fetch(tmp_path, str(pack), "--models", str(target))
    assert p.returncode == 2 and "has no manifest.toml or SHA256SUMS" in p.stderr
    # a folder whose own manifest already has another entry of that name: refused, nothing moved
    target.mkdir()
    (target / "manifest.toml").write_text('[models."my-det"]\nfile = "x.onnx"\ntask = "detect"\nlicense = "y"\n')
    (pack / "manifest.toml").write_text(manifest_entry_text("my-det", {
        "file": MINE, "sha256": sha256_file(pack / MINE), "task": "detect", "license": "mine"}))
    p = fetch(tmp_path, str(pack), "--models", str(target))
    assert p.returncode == 2 and "already has different entries for ['my-det']" in p.stderr
    assert not (target / MINE).exists()


def test_fetch_from_a_folder_with_sha256sums_adds_only_what_is_missing(models_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    p = fetch(tmp_path, str(models_dir), "--models", str(target), "--only", "yolox-nano,yunet")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "(SHA256SUMS)" in p.stdout and "fetched 1, already present 1, failed 0" in p.stdout
    assert sha256_file(target / "detection/yolox_nano.onnx") == sha256_file(models_dir / "detection/yolox_nano.onnx")
    assert not (target / "face").exists()  # yunet is bundled: nothing to copy
    p = fetch(tmp_path, str(models_dir), "--models", str(target), "--only", "nope")
    assert p.returncode == 2 and "has no model(s) ['nope']" in p.stderr
