"""Model manifest and model-folder lookup.

The manifest (manifest.toml beside this file, plus an optional `manifest.toml` in each model folder for
the user's own models) says for each model: file, sha256, task, input, preprocessing, decoding, license.
Model files are looked up in several folders, first match wins: --models, VISION_APP_MODELS, the
per-user data folder, and the permissively licensed default models bundled with the package
(vision_app/bundled/models). Checksums are verified on first use and remembered (model_checksums).
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from vision_app.errors import ModelError
from vision_app.model_checksums import CACHE_NAME, ChecksumCache
from vision_app.model_checksums import sha256_file as sha256_file  # callers hash ONNX files through here

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")
ENV_VAR = "VISION_APP_MODELS"
BUNDLED_DIR = Path(__file__).parent / "bundled" / "models"
BUNDLED, USER_FOLDER = "bundled", "user folder"

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
    bundled: bool = False  # shipped inside the package (vision_app/bundled/models)
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
        known = {"file", "task", "license", "sha256", "noncommercial", "bundled", "version", "classes",
                 "input", "preprocess", "decode", "calibration"}
        unknown = sorted(set(t) - known)
        if unknown:
            raise ModelError(f"{origin}: model '{name}': unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(name=name, file=str(t["file"]), task=str(t["task"]), license=str(t["license"]),
                   sha256=t.get("sha256"), noncommercial=bool(t.get("noncommercial", False)),
                   bundled=bool(t.get("bundled", False)), version=str(t.get("version", "1")),
                   classes=tuple(classes),
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


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_value(v: Any) -> str:
    """A TOML value for the types manifests hold (strings, numbers, booleans, arrays, inline tables)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise ModelError(f"manifest value {v!r} of type {type(v).__name__} cannot be written to a manifest")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k, ensure_ascii=False)


def manifest_entry_text(name: str, table: Mapping[str, Any]) -> str:
    """The ``[models."NAME"]`` table as TOML text, checked by parsing it back and validating the entry."""
    text = f"[models.{json.dumps(name, ensure_ascii=False)}]\n" + "".join(
        f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in table.items())
    try:
        back = tomllib.loads(text)["models"][name]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise ModelError(f"internal error: the manifest entry for '{name}' does not parse ({exc}):\n{text}") from exc
    if back != dict(table):
        raise ModelError(f"internal error: the manifest entry for '{name}' does not round-trip:\n{text}")
    ModelEntry.from_table(name, back, "manifest entry")
    return text


def manifest_tables(path: Path) -> dict[str, Any]:
    """The raw [models.NAME] tables of a user's manifest.toml ({} when there is none)."""
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        models = tomllib.loads(text).get("models", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}; fix or move it first") from exc
    if not isinstance(models, dict):
        raise ModelError(f"{path}: expected a [models.NAME] table per model")
    return models


def append_manifest_entry(manifest: Path, name: str, entry: str, replace_same: bool = False) -> None:
    """Append ``entry`` (TOML text of one model) to a user's manifest, refusing to shadow an entry it
    already has; with replace_same, an identical entry already there is left as it is."""
    existing = manifest_tables(manifest)
    if name in existing:
        if replace_same and existing[name] == tomllib.loads(entry)["models"][name]:
            return
        raise ModelError(f"{manifest} already has a model named '{name}'; choose another name, or remove "
                         f"that entry first")
    old = manifest.read_text(encoding="utf-8") if manifest.is_file() else ""
    sep = "" if not old or old.endswith("\n\n") else ("\n" if old.endswith("\n") else "\n\n")
    try:
        with manifest.open("a", encoding="utf-8") as fh:
            fh.write(sep + entry)
    except OSError as exc:
        raise ModelError(f"cannot append to {manifest}: {exc}") from exc


def user_data_dir() -> Path:
    """Per-user data folder (XDG on Linux, AppData on Windows, Application Support on macOS)."""
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "vision-app"


def user_model_dir() -> Path:
    return user_data_dir() / "models"


def how_to_add(name: str = "") -> str:
    what = f"model '{name}'" if name else "models"
    return (f"add {what} with `python main.py models fetch PACK` (a model pack folder or URL), or point to "
            f"a folder that has {'it' if name else 'them'} with --models DIR or the {ENV_VAR} environment "
            f"variable (e.g. {ENV_VAR}=../shared/models), or copy {'it' if name else 'them'} to "
            f"{user_model_dir()}")


@dataclass(frozen=True)
class ModelFolder:
    """A folder model files are looked up in, and where it was named (for `models list`)."""

    path: Path
    origin: str  # "--models" | ENV_VAR | "user folder" | "bundled" | "folder" (a store made in code)


def model_folders(cli_value: str | os.PathLike[str] | None = None, must_exist: bool = True) -> list[ModelFolder]:
    """The folders searched for model files, first match wins: --models, $VISION_APP_MODELS, the
    per-user folder (if it exists), the models bundled with the package.

    Raises ModelError when --models or $VISION_APP_MODELS names a folder that does not exist (unless
    must_exist is False: `models fetch` creates it).
    """
    folders: list[ModelFolder] = []
    for origin, value in (("--models", cli_value), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value:
            p = Path(value).expanduser()
            if must_exist and not p.is_dir():
                raise ModelError(f"model folder {p} (from {origin}) does not exist; pass an existing folder, "
                                 f"or leave {origin} out to use the bundled models and {user_model_dir()}")
            folders.append(ModelFolder(p.resolve(), origin))
    if user_model_dir().is_dir():
        folders.append(ModelFolder(user_model_dir(), USER_FOLDER))
    folders.append(ModelFolder(BUNDLED_DIR, BUNDLED))
    seen: set[Path] = set()
    unique = []
    for f in folders:  # the same folder named twice counts once, under its first name
        key = f.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def fetch_target_dir(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """Where `models fetch` puts models: --models, else $VISION_APP_MODELS, else the per-user folder."""
    for value in (cli_value, os.environ.get(ENV_VAR)):
        if value:
            return Path(value).expanduser().resolve()
    return user_model_dir()


def checksum_cache() -> ChecksumCache:
    return ChecksumCache(user_data_dir() / CACHE_NAME)


class ModelStore:
    """The manifest resolved against model folders (highest precedence first).

    `ModelStore(path)` looks in that one folder only (tests, tools); `ModelStore.open(--models)` looks in
    --models, $VISION_APP_MODELS, the per-user folder and the bundled models, in that order.
    """

    def __init__(self, folders: str | os.PathLike[str] | Sequence[ModelFolder],
                 entries: Mapping[str, ModelEntry] | None = None, checksums: ChecksumCache | None = None) -> None:
        if isinstance(folders, (str, os.PathLike)):
            folders = [ModelFolder(Path(folders), "folder")]
        if not folders:
            raise ValueError("ModelStore: expected at least one model folder, got none")
        self.folders: list[ModelFolder] = list(folders)
        self.root = self.folders[0].path  # the highest-precedence folder
        if entries is None:
            entries = dict(_read_manifest(MANIFEST_PATH))
            for folder in reversed(self.folders):  # the user's own models; a higher folder's entry wins
                extra = folder.path / "manifest.toml"
                if extra.is_file():
                    entries.update(_read_manifest(extra))
        self.entries: dict[str, ModelEntry] = dict(entries)
        self.checksums = checksums if checksums is not None else checksum_cache()

    @classmethod
    def open(cls, cli_value: str | os.PathLike[str] | None = None) -> "ModelStore":
        return cls(model_folders(cli_value))

    @property
    def root_is_bundled(self) -> bool:
        """True when no folder of the user's own is in use (only the package's bundled models)."""
        return self.folders[0].origin == BUNDLED

    def entry(self, name: str) -> ModelEntry:
        if name not in self.entries:
            raise ModelError(f"unknown model '{name}'; known models: {', '.join(sorted(self.entries))} "
                             f"(python main.py models list)")
        return self.entries[name]

    def names(self, task: str | None = None) -> list[str]:
        return sorted(n for n, e in self.entries.items() if task is None or e.task == task)

    def locate(self, name: str) -> tuple[Path, ModelFolder] | None:
        """The model's file in the first folder that has it, with that folder; None when none has it."""
        e = self.entry(name)
        for folder in self.folders:
            p = folder.path / e.file
            if p.is_file():
                return p, folder
        return None

    def origin(self, name: str) -> str | None:
        """Where the model's file comes from ("--models", ENV_VAR, "user folder", "bundled", ...)."""
        found = self.locate(name)
        return found[1].origin if found else None

    def path(self, name: str, verify: bool = True) -> Path:
        """Path of a model's file; raises ModelError if missing or (verify=True) its checksum is wrong."""
        e = self.entry(name)
        found = self.locate(name)
        if found is None:
            where = ", ".join(f"{f.path} ({f.origin})" for f in self.folders)
            raise ModelError(f"model '{name}' is missing: expected {e.file} in one of {where}; " + how_to_add(name))
        p = found[0]
        if verify and e.sha256:
            status = self.status(name)
            if status != "present":
                raise ModelError(f"model '{name}' at {p}: {status} (expected sha256 {e.sha256}); replace the "
                                 f"file with the original from the model pack (python main.py models fetch PACK)")
        return p

    def status(self, name: str) -> str:
        """'present', 'missing' or 'checksum mismatch' (digests cached by path, size and mtime)."""
        e = self.entry(name)
        found = self.locate(name)
        if found is None:
            return "missing"
        try:
            digest = self.checksums.digest(found[0])
        except OSError as exc:
            log.warning("cannot read model file %s: %s", found[0], exc)
            return "missing"
        if e.sha256 and digest != e.sha256:
            return "checksum mismatch"
        return "present"
