"""The model-manifest entry (TOML text) for a converted darknet detector.

The entry has the layout of vision_app/manifest.toml: the anchors, strides and ``scale_x_y`` come from
the cfg's ``[yolo]`` sections, so a user's own YOLOv3-tiny or v4-tiny needs no hand-typed anchors.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from vision_app.errors import ModelError
from vision_app.models import COCO80, ModelEntry

if TYPE_CHECKING:  # the converter imports onnx, which the CLI should not pay for at start-up
    from vision_app.detect.darknet import DarknetModel

DEFAULT_LICENSE = "unknown — check the model's license"
RGB_SCALE = 1 / 255  # darknet feeds RGB in [0, 1]


def read_names(path: str | Path) -> list[str]:
    """Class names from a darknet ``.names`` file: one per line, blank lines skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read class names from {path}: {exc}") from exc
    return [ln.strip() for ln in lines if ln.strip()]


def _num(v: float) -> str:
    """A TOML number: integers without a fraction (anchors 115 not 115.0), floats as repr."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings


def _classes(model: DarknetModel, names: Sequence[str] | None, names_origin: str) -> str:
    if names is not None:
        if len(names) != model.classes:
            raise ModelError(f"{names_origin} has {len(names)} class names but the cfg's [yolo] sections "
                             f"have classes={model.classes}; pass the .names file that belongs to this model")
        if tuple(names) == COCO80:
            return '"coco80"'
    elif model.classes == 80:
        return '"coco80"'  # darknet's 80-class models are COCO in coco.names order
    else:
        names = [f"class{k}" for k in range(model.classes)]  # placeholder: edit, or pass --names
    rows = [", ".join(_str(n) for n in names[k:k + 8]) for k in range(0, len(names), 8)]
    return "[\n" + "".join(f"  {r},\n" for r in rows) + "]"


def manifest_entry(name: str, file: str, sha256: str, model: DarknetModel, license: str = DEFAULT_LICENSE,
                   names: Sequence[str] | None = None, names_origin: str = "--names") -> str:
    """The ``[models."NAME"]`` table for a converted model, checked by parsing it back.

    ``file`` is the ONNX path relative to the model folder (or absolute); ``names`` the class names
    (default: COCO for 80 classes, else placeholders ``class0..``).
    """
    if len({h.classes for h in model.heads}) != 1:
        raise ModelError(f"the [yolo] sections disagree on classes: {[h.classes for h in model.heads]}")
    heads = []
    for h in model.heads:
        anchors = ", ".join(f"[{_num(w)}, {_num(hh)}]" for w, hh in h.anchors)
        extra = f", scale_x_y = {_num(h.scale_x_y)}" if h.scale_x_y != 1 else ""
        heads.append(f"  {{ output = {_str(h.output)}, stride = {_num(h.stride)}, "
                     f"anchors = [{anchors}]{extra} }},\n")
    width, height = model.input_size
    # darknet's letter_box fills with 0.5 (127 of 255)
    resize = '"letterbox", anchor = "center", pad = 127' if model.letterbox else '"stretch"'
    text = (f"[models.{_str(name)}]\n"
            f"file = {_str(file)}\n"
            f"sha256 = {_str(sha256)}\n"
            f'task = "detect"\n'
            f"license = {_str(license)}\n"
            f"classes = {_classes(model, names, names_origin)}\n"
            f"input = {{ name = {_str(model.input_name)}, size = [{width}, {height}] }}\n"
            f'preprocess = {{ resize = {resize}, color = "rgb", scale = {RGB_SCALE!r} }}\n'
            f'decode = {{ type = "yolo_anchor", heads = [\n{"".join(heads)}] }}\n')
    try:
        table = tomllib.loads(text)["models"][name]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise ModelError(f"internal error: the manifest entry for '{name}' does not parse ({exc}):\n{text}") \
            from exc
    ModelEntry.from_table(name, table, "darknet import")
    return text
