"""What the Triton engine is told to expect of a server's model, from the manifest and the local file.

A thin client may have no model files at all: then the manifest entry says what it can (the input's name,
an NCHW float32 image of the manifest size or of any size for dynamic models, the outputs the decoder
reads). When the file is present and intact, its ONNX inputs and outputs are the full expectation (a
batch dimension that the export made variable still matches the file's 1).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engines.base import TensorSpec
from vision_app.config import EngineConfig
from vision_app.models import ModelEntry, ModelStore
from vision_app.serving.onnx_batch import graph_io, load_onnx
from vision_app.serving.repo import triton_version

Expectation = dict[str, TensorSpec | None]


def _decoder_outputs(entry: ModelEntry) -> list[str]:
    d = entry.decode
    names = [str(h["output"]) for h in d.get("heads", []) if isinstance(h, dict) and "output" in h]
    if isinstance(d.get("output"), str):
        names.append(d["output"])
    return names


def from_manifest(entry: ModelEntry) -> tuple[Expectation, Expectation]:
    ins: Expectation = {}
    name = entry.input.get("name")
    if isinstance(name, str):
        size = entry.input.get("size")
        hw = (int(size[1]), int(size[0])) if isinstance(size, list) and len(size) == 2 else (None, None)
        ins[name] = TensorSpec(name, (None, 3, *hw), np.dtype(np.float32))
    return ins, {o: None for o in _decoder_outputs(entry)}


def from_onnx(path: Path) -> tuple[Expectation, Expectation]:
    inputs, outputs = graph_io(load_onnx(path))
    return ({t.name: TensorSpec(t.name, t.dims, t.dtype) for t in inputs},
            {t.name: TensorSpec(t.name, t.dims, t.dtype) for t in outputs})


def triton_options(cfg: EngineConfig, store: ModelStore, name: str) -> tuple[Path | None, dict[str, Any]]:
    """(local model file or None, TritonEngine keyword options) for manifest model `name`."""
    entry = store.entry(name)
    local = store.root / entry.file
    opts: dict[str, Any] = {"url": cfg.triton_url, "name": name, "version": str(triton_version(entry)),
                            "timeout_s": cfg.triton_timeout_s, "retry_initial_s": cfg.triton_retry_initial_s,
                            "retry_max_s": cfg.triton_retry_max_s}
    if local.is_file() and store.status(name) == "present":
        ins, outs = from_onnx(local)
        opts.update(expected_inputs=ins, expected_outputs=outs, expected_complete=True,
                    expected_from=f"the model file {local}")
        return local, opts
    ins, outs = from_manifest(entry)
    opts.update(expected_inputs=ins, expected_outputs=outs, expected_complete=False,
                expected_from=f"the manifest entry '{name}' (no intact local copy of {entry.file})")
    return None, opts
