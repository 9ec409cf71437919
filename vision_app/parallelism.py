"""How many whole-frame workers a run gets, and how many ONNX Runtime threads each worker's sessions use.

`engine.workers = "auto"` (the default) decides from the sources and the machine:

- one file or image folder processed offline (every frame, as fast as possible): one worker per core,
  ONNX Runtime threads per worker = cores / workers. Small detectors do not scale across the threads of
  one session but whole frames do (DESIGN.md: Yolo-Fastest-xl, one 2-thread session 108 inf/s, two
  1-thread sessions 186/s); output order is kept.
- one live source (camera, stream, test pattern) or a file paced like a camera: one worker with the
  runtime's default threads, taking the newest frame: the lowest capture-to-result latency.
- several sources (`run` with several --source, the monitor): one shared pool of one worker per core;
  each source keeps its newest frame and the oldest waiting frame goes first.

An explicit `engine.workers = N` always wins; its threads are then cores / N unless engine.threads is
set. The chosen plan and the reason are logged.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from vision_app.config import EngineConfig

log = logging.getLogger(__name__)

MAX_WORKERS = 16  # the validated range of engine.workers


def machine_cores() -> int:
    """CPU cores this process may run on (the affinity mask, e.g. a container's CPU set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """workers: whole-frame workers (pipelines); threads: ONNX Runtime intra-op threads per session
    (0 = the runtime's default); pooled: several sources share the workers; reason: for the log."""

    workers: int
    threads: int
    pooled: bool
    reason: str


def _threads(engine: EngineConfig, workers: int, cores: int) -> int:
    if engine.threads:
        return engine.threads
    return 0 if workers == 1 else max(1, cores // workers)


def plan_workers(engine: EngineConfig, *, sources: int = 1, live: bool = False, offline: bool = True,
                 backend: str = "onnxruntime", cores: int | None = None) -> WorkerPlan:
    """The plan for `sources` sources; live: any of them is a camera/stream; offline: files are processed
    frame by frame as fast as possible (capture.video_mode "offline"), not paced like a camera."""
    cores = cores or machine_cores()
    pooled = sources > 1
    if engine.workers != "auto":
        n = int(engine.workers)
        threads = _threads(engine, n, cores)
        why = f"engine.workers = {n} (set explicitly)"
    elif backend == "none":
        n, threads, why = 1, 0, "auto: no model runs, one worker is enough"
    elif pooled:
        n = min(cores, MAX_WORKERS)
        threads = _threads(engine, n, cores)
        why = f"auto: {sources} sources share one pool of {n} worker(s), one per core"
    elif live or not offline:
        n, threads = 1, engine.threads
        why = ("auto: live source: one worker on the newest frame (lowest latency)" if live else
               "auto: file paced like a camera: one worker on the newest frame (lowest latency)")
    elif backend == "triton":
        n = min(max(cores, 2), MAX_WORKERS)
        threads = engine.threads
        why = (f"auto: offline file on a Triton server: {n} workers, so a request of each is in flight at "
               f"the server while the others pre- and post-process")
    elif backend == "tensorrt":
        n = min(cores, 2)
        threads = engine.threads
        why = (f"auto: offline file on TensorRT: {n} worker(s), one engine context each, so the CPU "
               f"work of one frame overlaps the GPU work of the next")
    else:
        n = min(cores, MAX_WORKERS)
        threads = _threads(engine, n, cores)
        why = (f"auto: offline file on {cores} core(s): {n} whole-frame worker(s)" if n > 1 else
               "auto: offline file on 1 core: one worker")
    if (n > 1 or pooled) and backend == "onnxruntime":
        why += f", {threads or 'default'} ONNX Runtime thread(s) per worker"
    return WorkerPlan(n, threads, pooled, why)
