"""Model manifest and model-folder lookup.

The manifest (manifest.toml beside this file, plus an optional `manifest.toml` in the model folder for
the user's own models) says for each model: file, sha256, task, input, preprocessing, decoding, license.
The folder comes from --models, else VISION_APP_MODELS, else the per-user data folder.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from vision_app.errors import ModelError

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")
ENV_VAR = "VISION_APP_MODELS"

COCO80 = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "sofa", "pottedplant", "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
VOC21 = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
_CLASS_SETS = {"coco80": COCO80, "voc21": VOC21}


@dataclass(frozen=True)
class ModelEntry:
    """One manifest entry. `preprocess` and `decode` are the raw tables from the manifest."""

    name: str
    file: str
    task: str
    license: str
    sha256: str | None = None
    noncommercial: bool = False
    version: str = "1"
    classes: tuple[str, ...] = ()
    input: Mapping[str, Any] = field(default_factory=dict)
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    decode: Mapping[str, Any] = field(default_factory=dict)
    calibration: Mapping[str, Any] = field(default_factory=dict)  # face_embed: impostor-score quantiles

    @classmethod
    def from_table(cls, name: str, t: Mapping[str, Any], origin: str) -> "ModelEntry":
        if not isinstance(t, Mapping):
            raise ModelError(f"{origin}: model '{name}' must be a table [models.\"{name}\"], got {t!r}")
        for key in ("file", "task", "license"):
            if key not in t:
                raise ModelError(f"{origin}: model '{name}' has no '{key}' key")
        classes = t.get("classes", [])
        for key in ("input", "preprocess", "decode", "calibration"):
            if not isinstance(t.get(key, {}), Mapping):
                raise ModelError(f"{origin}: model '{name}': '{key}' must be a table, got {t[key]!r}")
        if not isinstance(classes, (str, list)) or (isinstance(classes, list)
                                                     and not all(isinstance(c, str) for c in classes)):
            raise ModelError(f"{origin}: model '{name}': 'classes' must be a class-set name or a list of "
                             f"names, got {classes!r}")
        if isinstance(classes, str):
            if classes not in _CLASS_SETS:
                raise ModelError(f"{origin}: model '{name}': unknown class set '{classes}', "
                                 f"expected one of {sorted(_CLASS_SETS)} or a list of names")
            classes = _CLASS_SETS[classes]
        known = {"file", "task", "license", "sha256", "noncommercial", "version", "classes", "input",
                 "preprocess", "decode", "calibration"}
        unknown = sorted(set(t) - known)
        if unknown:
            raise ModelError(f"{origin}: model '{name}': unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(name=name, file=str(t["file"]), task=str(t["task"]), license=str(t["license"]),
                   sha256=t.get("sha256"), noncommercial=bool(t.get("noncommercial", False)),
                   version=str(t.get("version", "1")), classes=tuple(classes),
                   input=dict(t.get("input", {})), preprocess=dict(t.get("preprocess", {})),
                   decode=dict(t.get("decode", {})), calibration=dict(t.get("calibration", {})))


def _read_manifest(path: Path) -> dict[str, ModelEntry]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model manifest {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ModelError(f"cannot read model manifest {path}: {exc}") from exc
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ModelError(f"{path}: expected a [models.NAME] table per model")
    return {n: ModelEntry.from_table(n, t, str(path)) for n, t in models.items()}


def user_data_dir() -> Path:
    """Per-user data folder (XDG on Linux, AppData on Windows, Application Support on macOS)."""
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "vision-app"


HOW_TO_POINT = (f"point to the model folder with --models DIR or the {ENV_VAR} environment variable "
                f"(e.g. export {ENV_VAR}=../shared/models), or copy the models to {{default}}")


def find_model_dir(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The model folder: --models, else $VISION_APP_MODELS, else <user data>/models.

    Raises ModelError saying exactly how to point to one when none of them exists.
    """
    default = user_data_dir() / "models"
    for origin, value in (("--models", cli_value), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value:
            p = Path(value).expanduser()
            if not p.is_dir():
                raise ModelError(f"model folder {p} (from {origin}) does not exist; "
                                 + HOW_TO_POINT.format(default=default))
            return p.resolve()
    if default.is_dir():
        return default
    raise ModelError("no model folder found; " + HOW_TO_POINT.format(default=default))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class ModelStore:
    """The manifest resolved against one model folder."""

    def __init__(self, root: Path, entries: Mapping[str, ModelEntry] | None = None) -> None:
        self.root = Path(root)
        if entries is None:
            entries = dict(_read_manifest(MANIFEST_PATH))
            extra = self.root / "manifest.toml"
            if extra.is_file():
                entries.update(_read_manifest(extra))  # the user's own models (e.g. imported darknet)
        self.entries: dict[str, ModelEntry] = dict(entries)
        self._verified: dict[str, tuple[float, int, str]] = {}

    @classmethod
    def open(cls, cli_value: str | os.PathLike[str] | None = None) -> "ModelStore":
        return cls(find_model_dir(cli_value))

    def entry(self, name: str) -> ModelEntry:
        if name not in self.entries:
            raise ModelError(f"unknown model '{name}'; known models: {', '.join(sorted(self.entries))} "
                             f"(python main.py models list)")
        return self.entries[name]

    def names(self, task: str | None = None) -> list[str]:
        return sorted(n for n, e in self.entries.items() if task is None or e.task == task)

    def path(self, name: str, verify: bool = True) -> Path:
        """Path of a model's file; raises ModelError if missing or (verify=True) its checksum is wrong."""
        e = self.entry(name)
        p = self.root / e.file
        if not p.is_file():
            raise ModelError(f"model '{name}' is missing: expected {p}. " + HOW_TO_POINT.format(
                default=user_data_dir() / "models"))
        if verify and e.sha256:
            status = self.status(name)
            if status != "present":
                raise ModelError(f"model '{name}' at {p}: {status} (expected sha256 {e.sha256}); "
                                 f"replace the file with the original from the model pack")
        return p

    def status(self, name: str) -> str:
        """'present', 'missing' or 'checksum mismatch' (hashes are cached per file mtime and size)."""
        e = self.entry(name)
        p = self.root / e.file
        try:
            st = p.stat()
        except OSError:
            return "missing"
        cached = self._verified.get(name)
        if cached and cached[:2] == (st.st_mtime, st.st_size):
            digest = cached[2]
        else:
            digest = sha256_file(p)
            self._verified[name] = (st.st_mtime, st.st_size, digest)
        if e.sha256 and digest != e.sha256:
            return "checksum mismatch"
        return "present"
