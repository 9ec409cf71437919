"""Benchmarks: task name -> benchmark function, imported lazily (like stages.TASKS), and the result table.

`python main.py bench --tasks detect,...` runs the registered functions. A benchmark function is
`fn(ctx: BenchContext) -> list[BenchTable]` in its own module; it measures and returns numbers, the CLI
prints them (tables or JSON). Timings are benchmarks, never test asserts.
"""
from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vision_app.config import AppConfig
from vision_app.errors import ConfigError
from vision_app.models import ModelStore

log = logging.getLogger(__name__)

BENCHMARKS: dict[str, str] = {
    "detect": "vision_app.detect.bench:run_detect_bench",
    "segment": "vision_app.segment.bench:run_segment_bench",
    "style": "vision_app.style.bench:run_style_bench",
    "face_search": "vision_app.gallery.bench_search:run_face_search_bench",
    "face": "vision_app.face.bench:run_face_bench",
    "monitoring": "vision_app.monitoring.bench:run_monitoring_bench",
    "triton": "vision_app.serving.bench:run_triton_bench",
    "throughput": "vision_app.throughput_bench:run_throughput_bench",
}
# run only when named: triton starts servers and needs the Triton environment; throughput takes minutes
# of whole-process runs
OPT_IN = {"triton", "throughput"}


def register_benchmark(task: str, target: str) -> None:
    """Add a benchmark: target is "module:function" taking a BenchContext, returning list[BenchTable]."""
    BENCHMARKS[task] = target


@dataclass
class BenchContext:
    """What a benchmark gets: config, model folder, the media video (None = not found), how many frames
    of it and how many repeats of synthetic timings to use, optional model names, a progress callback."""

    config: AppConfig
    models: ModelStore
    video: Path | None = None
    frames: int = 0                  # 0 = the whole video
    repeat: int = 200
    model_names: list[str] = field(default_factory=list)
    on_progress: Callable[[str], None] = lambda msg: None


@dataclass
class BenchTable:
    """One printed table: columns in order, rows as dicts keyed by column, notes printed below it."""

    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "notes": self.notes}


def time_calls(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> np.ndarray:
    """Seconds per call of fn over `repeat` calls after `warmup` untimed ones: (repeat,) float64."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeat)
    for i in range(repeat):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out



def ms(seconds: Any, q: float = 50) -> float:
    """Percentile q of a sequence of seconds, in milliseconds, rounded to 3 decimals."""
    arr = np.asarray(seconds, np.float64)
    return round(float(np.percentile(arr, q)) * 1e3, 3) if arr.size else float("nan")


def parse_bench_tasks(text: str | None) -> list[str]:
    tasks = [t.strip() for t in (text or "").split(",") if t.strip()] or [t for t in BENCHMARKS if t not in OPT_IN]
    unknown = [t for t in tasks if t not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"no benchmark for task(s) {unknown}; available: {', '.join(BENCHMARKS)}")
    return tasks


def run_benchmarks(tasks: list[str], ctx: BenchContext) -> dict[str, list[BenchTable]]:
    out: dict[str, list[BenchTable]] = {}
    for task in tasks:
        module, attr = BENCHMARKS[task].split(":")
        fn = getattr(importlib.import_module(module), attr)
        log.info("benchmark %s", task)
        out[task] = fn(ctx)
    return out
