"""The style pipeline stage: frame.image → stylized result.image (same size, BGR uint8).

`style.style` is a painting path (arbitrary style, Magenta, Apache-2.0: the default family) or the name
of a fixed-style model (johnson_wave, johnson_udnie). The Johnson networks are for research and
non-commercial use only: choosing one logs a warning with the license, and the stage's `info` (also in
result.extras['style']) carries the license so the GUI can show it.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from vision_app.config import StyleConfig
from vision_app.errors import ConfigError
from vision_app.models import ModelStore, sha256_file, user_data_dir
from vision_app.scene import SceneChangeDetector
from vision_app.style.stylizers import JohnsonStylizer, MagentaStylizer
from vision_app.style.vectors import StyleVectorCache
from vision_app.types import FrameResult

log = logging.getLogger(__name__)

PREDICT_MODEL = "magenta-predict"
TRANSFER_MODEL = "magenta-transfer"


class Stylizer(Protocol):
    def stylize(self, img: NDArray[np.uint8], new_scene: bool) -> NDArray[np.uint8]: ...


class StyleStage:
    """Stage 'style'. info: {style, family, models, license, noncommercial, ...} (a new dict per call)."""

    name = "style"

    def __init__(self, stylizer: Stylizer, info: dict[str, Any], scene: SceneChangeDetector,
                 engines: list[Any]) -> None:
        self.stylizer = stylizer
        self._info = dict(info)
        self.scene = scene
        self._engines = engines

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def process(self, result: FrameResult) -> FrameResult:
        frame = result.frame
        new_scene = self.scene.update(frame)
        image = self.stylizer.stylize(frame.image, new_scene)
        return replace(result, image=image, extras={**result.extras, "style": self.info})

    def close(self) -> None:
        for eng in self._engines:
            eng.close()


def fixed_style_names(store: ModelStore) -> list[str]:
    """Models that are a style by themselves (Johnson): style task, not the Magenta transfer net."""
    return [n for n in store.names("style") if n != TRANSFER_MODEL]


def build_style_stage(ctx: Any) -> StyleStage:
    """Builder for TASKS['style'] from ctx.config.style (ctx: vision_app.stages.StageContext)."""
    cfg: StyleConfig = ctx.config.style
    store: ModelStore | None = ctx.models
    if store is None:
        raise ConfigError("the style task needs a model folder (--models)")
    fixed = fixed_style_names(store)
    if not cfg.style:
        raise ConfigError("no style chosen: set style.style (or --style) to a painting image path "
                          f"or a fixed-style model ({', '.join(fixed)})")
    scene = SceneChangeDetector(cfg.scene_threshold)
    if cfg.style in fixed:
        entry = store.entry(cfg.style)
        engine = ctx.engine(cfg.style)
        stylizer: Stylizer = JohnsonStylizer(engine, entry, working_size=cfg.working_size)
        info = {"style": cfg.style, "family": "johnson", "models": [entry.name], "license": entry.license,
                "noncommercial": entry.noncommercial, "working_size": cfg.working_size}
        if entry.noncommercial:
            log.warning("style model %s: %s. Do not use it in a commercial product; use a painting "
                        "(arbitrary style) instead.", entry.name, entry.license)
        return StyleStage(stylizer, info, scene, [engine])
    if cfg.style in store.entries:
        raise ConfigError(f"--style {cfg.style!r} is a '{store.entry(cfg.style).task}' model, not a style; "
                          f"pass a painting image path or one of {', '.join(fixed)}")
    painting = Path(cfg.style).expanduser()
    if not painting.is_file():
        raise ConfigError(f"style {cfg.style!r} is neither an image file nor a fixed-style model; pass a "
                          f"painting path (e.g. ../shared/media/styles/style_wave.jpg) or one of "
                          f"{', '.join(fixed)}")
    p_entry, t_entry = store.entry(PREDICT_MODEL), store.entry(TRANSFER_MODEL)
    predict, transfer = ctx.engine(PREDICT_MODEL), ctx.engine(TRANSFER_MODEL)
    model_sha = p_entry.sha256 or sha256_file(store.path(PREDICT_MODEL))
    vectors = StyleVectorCache(predict, p_entry, model_sha=model_sha,
                               disk_dir=user_data_dir() / "style_vectors" if cfg.disk_cache else None)
    style_vector = vectors.for_file(painting)
    stylizer = MagentaStylizer(transfer, t_entry, vectors, style_vector, strength=cfg.strength,
                               content_every=cfg.content_every)
    licenses = sorted({p_entry.license, t_entry.license})
    info = {"style": str(painting), "family": "magenta", "models": [p_entry.name, t_entry.name],
            "license": ", ".join(licenses), "noncommercial": p_entry.noncommercial or t_entry.noncommercial,
            "strength": cfg.strength, "working_size": t_entry.input.get("size"),
            "content_vector": (f"frame's own style vector on each new scene and every {cfg.content_every} "
                               f"frames" if cfg.strength < 1.0 else "not used (strength 1)")}
    log.info("style: %s with Magenta arbitrary style (%s), strength %.2f", painting.name,
             info["license"], cfg.strength)
    return StyleStage(stylizer, info, scene, [predict, transfer])
