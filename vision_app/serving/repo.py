"""`python main.py models export-triton DIR`: a Triton Inference Server model repository from the manifest.

Layout (Triton's own): `DIR/NAME/config.pbtxt` and `DIR/NAME/VERSION/model.onnx` (or `model.plan` for
`--platform tensorrt_plan`). NAME is the manifest name and VERSION the manifest version's trailing number
(Triton versions are positive integers: "1" -> 1, "128d-1" -> 1), so the Triton engine finds the model
under the same name and version that the app's manifest gives.

Batching: with max_batch > 0, a model whose first dimension is already variable gets `max_batch_size`
and a `dynamic_batching` block; a model exported with a fixed batch of 1 gets them too when its graph
runs batched (vision_app/serving/onnx_batch.py proves it by running it), and the relaxed copy is what is
written; any other model is written as it is with `max_batch_size: 0` (Triton then passes whole tensors).
"""
from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from engines.triton_client import datatype_of
from vision_app.errors import EngineError, ModelError
from vision_app.models import ModelEntry, ModelStore
from vision_app.serving.onnx_batch import GraphTensor, batch_kind, graph_io, load_onnx, relax_batch

log = logging.getLogger(__name__)

PLATFORMS = ("onnxruntime_onnx", "tensorrt_plan")


def triton_version(entry: ModelEntry) -> int:
    """The Triton model version for a manifest entry: the trailing number of its version, else 1."""
    m = re.search(r"(\d+)$", entry.version)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else 1


@dataclass(frozen=True)
class ExportedModel:
    name: str
    version: int
    platform: str
    max_batch_size: int
    dynamic_batching: bool
    instances: int
    config: Path
    note: str


def _dims(t: GraphTensor, batched: bool) -> str:
    dims = t.dims[1:] if batched else t.dims
    return "[ " + ", ".join("-1" if d is None else str(d) for d in dims) + " ]"


def config_text(entry: ModelEntry, platform: str, inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor],
                max_batch: int, dynamic_batching: bool, instances: int) -> str:
    """config.pbtxt (protobuf text of Triton's ModelConfig) for one model."""
    kind = "KIND_GPU" if platform == "tensorrt_plan" else "KIND_AUTO"

    def tensors(label: str, items: Sequence[GraphTensor]) -> list[str]:
        rows = [f"{label} ["]
        for i, t in enumerate(items):
            sep = "," if i < len(items) - 1 else ""
            rows.append(f'  {{ name: "{t.name}" data_type: TYPE_{datatype_of(t.dtype)} '
                        f"dims: {_dims(t, max_batch > 0)} }}{sep}")
        return rows + ["]"]

    lines = [f"# vision-app: manifest model '{entry.name}' (version '{entry.version}', task {entry.task}, "
             f"sha256 {entry.sha256 or 'not recorded'})",
             f'name: "{entry.name}"', f'platform: "{platform}"', f"max_batch_size: {max_batch}",
             f"version_policy: {{ specific: {{ versions: [ {triton_version(entry)} ] }} }}",
             *tensors("input", inputs), *tensors("output", outputs),
             f"instance_group [ {{ count: {instances} kind: {kind} }} ]"]
    if max_batch > 0 and dynamic_batching:
        lines.append("dynamic_batching { }")
    return "\n".join(lines) + "\n"


def check_platform(platform: str) -> None:
    """Raise EngineError when `platform` is unknown or cannot be built here (TensorRT not installed)."""
    if platform not in PLATFORMS:
        raise EngineError(f"unknown Triton platform '{platform}'; choose one of {', '.join(PLATFORMS)}")
    if platform == "tensorrt_plan" and importlib.util.find_spec("tensorrt") is None:
        raise EngineError("--platform tensorrt_plan needs TensorRT, which is not installed here: install "
                          "vision-app[tensorrt] on a machine with an NVIDIA GPU, ideally the Triton server's own "
                          "GPU with the TensorRT version of its container (plans only run on the GPU model and "
                          "TensorRT version that built them), or export --platform onnxruntime_onnx")


ProgressFn = Callable[[str], None]


class RepositoryWriter:
    """Writes manifest models into one Triton model repository folder with shared settings."""

    def __init__(self, store: ModelStore, out: Path, *, max_batch: int = 8, instances: int = 1,
                 platform: str = "onnxruntime_onnx", dynamic_batching: bool = True, trt_settings: object = None,
                 on_progress: ProgressFn | None = None) -> None:
        if max_batch < 0 or max_batch > 1024:
            raise ModelError(f"--max-batch must be 0 (no batching) .. 1024, got {max_batch}")
        if instances < 1 or instances > 64:
            raise ModelError(f"--instances must be 1..64, got {instances}")
        check_platform(platform)
        self.store, self.out = store, Path(out)
        self.max_batch, self.instances, self.platform = max_batch, instances, platform
        self.dynamic_batching = dynamic_batching
        self.trt_settings = trt_settings
        self.on_progress = on_progress or (lambda msg: None)

    def default_names(self) -> list[str]:
        """Every manifest model whose file is present and intact."""
        return [n for n in self.store.names() if self.store.status(n) == "present"]

    def export(self, names: Sequence[str] | None = None) -> list[ExportedModel]:
        chosen = list(names) if names else self.default_names()
        if not chosen:
            raise ModelError(f"no model to export: none of the manifest's models is present in {self.store.root}; "
                             f"check --models / VISION_APP_MODELS")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelError(f"cannot create the model repository {self.out}: {exc}") from exc
        return [self.export_one(n) for n in chosen]

    def export_one(self, name: str) -> ExportedModel:
        entry = self.store.entry(name)
        src = self.store.path(name)  # checksum verified
        model = load_onnx(src)
        kind = batch_kind(model)
        max_batch, note, relaxed = 0, "written as it is", None
        if self.max_batch > 0 and kind == "dynamic":
            max_batch, note = self.max_batch, "batch dim already dynamic"
        elif self.max_batch > 0 and kind == "one":
            self.on_progress(f"{name}: checking whether the graph runs batched")
            relaxed = relax_batch(model)
            if relaxed is not None:
                model, max_batch, note = relaxed, self.max_batch, "fixed batch 1 made dynamic (verified)"
            else:
                note = "fixed batch 1 kept: the graph does not run batched"
        inputs, outputs = graph_io(model)
        version_dir = self.out / name / str(triton_version(entry))
        try:
            version_dir.mkdir(parents=True, exist_ok=True)
            if self.platform == "tensorrt_plan":
                self._write_plan(name, model, inputs, max_batch, version_dir / "model.plan")
            elif relaxed is not None:
                (version_dir / "model.onnx").write_bytes(model.SerializeToString())
            else:
                shutil.copyfile(src, version_dir / "model.onnx")
            config = self.out / name / "config.pbtxt"
            config.write_text(config_text(entry, self.platform, inputs, outputs, max_batch,
                                          self.dynamic_batching, self.instances), encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"cannot write model '{name}' into {self.out}: {exc}") from exc
        return ExportedModel(name, triton_version(entry), self.platform, max_batch,
                             max_batch > 0 and self.dynamic_batching, self.instances, config, note)

    def _write_plan(self, name: str, model: object, inputs: Sequence[GraphTensor], max_batch: int,
                    dest: Path) -> None:
        """Build a TensorRT plan with the `[tensorrt]` settings; a batched model's profile covers
        1..max_batch."""
        from dataclasses import replace

        from engines.trt_build import BuildProgress, build_plan
        from engines.trt_settings import TrtSettings, compute_profiles

        settings = self.trt_settings if isinstance(self.trt_settings, TrtSettings) else TrtSettings()
        multiple_of = int(self.store.entry(name).input.get("multiple_of", 1))
        settings = replace(settings, max_batch=max(1, max_batch), multiple_of=max(1, multiple_of))
        shapes = {t.name: ((None,) + t.dims[1:] if max_batch > 0 else t.dims) for t in inputs}
        with tempfile.TemporaryDirectory(prefix="vision-app-triton-") as tmp:
            onnx_file = Path(tmp) / "model.onnx"
            onnx_file.write_bytes(model.SerializeToString())  # type: ignore[attr-defined]
            plan = build_plan(onnx_file, model=name, precision=settings.precision,
                              profiles=compute_profiles(shapes, settings, name), workspace_mb=settings.workspace_mb,
                              timing_cache=None,
                              progress=BuildProgress(name, lambda msg, _f: self.on_progress(msg)))
        dest.write_bytes(plan)
