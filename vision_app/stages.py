"""Task name → stage builder, imported lazily, and the context builders get.

`--tasks detect,face` builds the pipeline from this table. Each builder is
`build(ctx: StageContext) -> Stage` in its own module; only the asked-for tasks are imported.
Stages run in the table's order: image-rendering stages (style, segment) first, then the data stages
(detect, face) which always read the original frame.image; annotations are drawn last (draw.py).
"""
from __future__ import annotations

import importlib
from functools import partial
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from engines.registry import create_engine, resolve_backend
from vision_app.config import AppConfig
from vision_app.errors import ConfigError
from vision_app.models import ModelEntry, ModelStore
from vision_app.modelwatch import ModelWatch
from vision_app.pipeline import Pipeline, Stage

log = logging.getLogger(__name__)

TASKS: dict[str, str] = {
    "passthrough": "vision_app.pipeline:PassThroughStage",
    "style": "vision_app.style:build_style_stage",
    "segment": "vision_app.segment:build_segment_stage",
    "detect": "vision_app.detect.stage:build_detect_stage",
    "face": "vision_app.gallery.identify:build_face_stage",
}


@dataclass
class StageContext:
    """What a stage builder needs: config, model folder, and an engine factory for the chosen backend."""

    config: AppConfig
    models: ModelStore | None
    backend: str = ""
    backend_reason: str = ""
    on_status: Callable[[str, str], None] | None = None
    engines: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.backend:  # resolved once: every stage of a run uses the same backend
            self.backend, self.backend_reason = resolve_backend(self.config.engine.backend)
            log.info("engine backend: %s (%s)", self.backend, self.backend_reason)

    def model_entry(self, name: str, task: str, key: str) -> ModelEntry:
        """The manifest entry `name`, which must be a `task` model; key: the config key that chose it
        (named in the error). Raises ConfigError when there is no model folder or the task differs."""
        if self.models is None:
            raise ConfigError(f"{key} = '{name}' needs a model folder (--models or VISION_APP_MODELS)")
        entry = self.models.entry(name)
        if entry.task != task:
            raise ConfigError(f"{key} '{name}' is a '{entry.task}' model; choose one of "
                              f"{', '.join(self.models.names(task))}")
        return entry

    def providers(self) -> list[str]:
        """The execution providers of the loaded engines, in order, without repeats (ONNX Runtime)."""
        out: list[str] = []
        for eng in self.engines:
            for p in getattr(eng, "providers", []) or []:
                if p not in out:
                    out.append(p)
        return out

    def engine(self, model_name: str, **options: Any) -> Any:
        """Load a manifest model (checksum verified) with the context's backend."""
        if self.models is None:
            raise ConfigError(f"model '{model_name}' needed but no model folder is set (--models)")
        if self.backend == "triton":  # the server has the model; a local copy only sharpens the checks
            from vision_app.serving.expect import triton_options

            local, triton_opts = triton_options(self.config.engine, self.models, model_name)
            eng = create_engine(local, "triton", **{**triton_opts, **options})
            self.engines.append(eng)
            return eng
        path = self.models.path(model_name)
        opts: dict[str, Any] = {"name": model_name}
        if self.backend == "onnxruntime":
            opts.update(threads=self.config.engine.threads, providers=self.config.engine.providers)
            if "TensorrtExecutionProvider" in self.config.engine.providers:  # ORT's own TensorRT: cache it too
                from engines.trt_settings import ort_tensorrt_options

                opts.update(provider_options={"TensorrtExecutionProvider": ort_tensorrt_options(self.config.tensorrt)})
        elif self.backend == "tensorrt":  # engine build/cache settings; build progress goes to on_status
            from engines.trt_settings import TrtSettings

            multiple_of = self.models.entry(model_name).input.get("multiple_of", 1)
            status = self.on_status
            opts.update(settings=TrtSettings.from_config(self.config.tensorrt, multiple_of),
                        on_progress=(lambda msg, _frac: status("engine_build", msg)) if status else None)
        opts.update(options)
        eng = create_engine(path, self.backend, **opts)
        self.engines.append(eng)
        return eng


def parse_tasks(text: str | list[str] | None) -> list[str]:
    if not text:
        return ["passthrough"]
    items = text if isinstance(text, list) else [text]
    tasks = [t.strip() for item in items for t in item.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    return sorted(set(tasks), key=list(TASKS).index)


def build_stage(task: str, ctx: StageContext) -> Stage:
    module, attr = TASKS[task].split(":")
    try:
        builder = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"task '{task}' is not available in this build: {exc}") from exc
    return builder(ctx) if attr.startswith("build_") else builder()


def build_pipeline(tasks: list[str], ctx: StageContext, **pipeline_options: Any) -> Pipeline:
    from vision_app.draw import render_result

    watch = ModelWatch()
    stages = []
    for t in tasks:
        first = len(ctx.engines)
        stage = build_stage(t, ctx)
        stages.append(stage)
        for eng in ctx.engines[first:]:  # the engines this stage's builder loaded
            if getattr(eng, "path", None) is not None:
                watch.add(stage.name, eng.path)
    pipeline_options.setdefault("disable_after", ctx.config.runner.disable_stage_after)
    status = ctx.on_status
    pipeline_options.setdefault("on_error", (lambda s, m: status("error", m)) if status else None)
    pipeline_options.setdefault("on_recovered", (lambda s, m: status("reconnected", m)) if status else None)
    render = partial(render_result, face_details=ctx.config.face.overlay_details)
    return Pipeline(stages, render=render, watch=watch, **pipeline_options)


def build_pipelines(tasks: list[str], ctx: StageContext, workers: int, threads: int,
                    **pipeline_options: Any) -> list[Pipeline]:
    """`workers` independent pipelines of the same tasks, each with its own engines (one per worker
    thread); their ONNX Runtime sessions use `threads` intra-op threads (0 = the runtime's default).
    A failure closes the ones already built."""
    ctx.config.engine.threads = threads
    out: list[Pipeline] = []
    try:
        for _ in range(max(1, workers)):
            out.append(build_pipeline(tasks, ctx, **pipeline_options))
    except BaseException:
        for p in out:
            p.close()
        raise
    return out
