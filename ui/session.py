"""One live source with its pipeline, started, reconfigured and stopped without blocking the GUI.

`Session` is plain Python (no Qt): it owns a vision_app.runner.LiveRun and reports through two
callbacks that are called from worker threads — `on_result(FrameResult)` for every processed frame and
`on_status(kind, message)` for events. The GUI passes FrameBridge.publish / FrameBridge.post_event.

Opening a source and loading models happen on a starter thread; a settings change builds the new
pipeline on a builder thread and swaps it in between two frames, so the video never stops for it.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.config import AppConfig, load_config
from vision_app.errors import SourceError, VisionAppError
from vision_app.models import ModelStore
from vision_app.monitoring.hub import Monitoring, SourceReport, detector_classes
from vision_app.pipeline import Pipeline
from vision_app.multirun import SharedPool
from vision_app.pool import WorkerPool
from vision_app.runner import CallbackSink, LiveRun, Sink
from vision_app.sources import FrameSource, open_source
from vision_app.stages import StageContext, build_pipeline, build_pipelines
from vision_app.types import Frame, FrameResult

from ui.recorder import RecorderSink

log = logging.getLogger(__name__)

StatusFn = Callable[[str, str], None]


@dataclass(frozen=True)
class PipelineSpec:
    """Which tasks run and the dotted config keys the controls override ({'detect.confidence': .4})."""

    tasks: tuple[str, ...] = ("passthrough",)
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def config(self, base_path: str | None, base_overrides: Mapping[str, Any] | None = None) -> AppConfig:
        """The config file, then base_overrides (command line), then this spec's overrides."""
        return load_config(base_path, {**(base_overrides or {}), **self.overrides})


def is_camera(source: str) -> bool:
    """camera:N or a bare index: a device only one window can hold at a time."""
    s = source.strip()
    return s.startswith("camera:") or s.isdigit()


class SwappablePipeline:
    """What the runner thread calls. `swap` waits for the frame in progress, so the old pipeline can be
    closed safely right after.

    media_fps: for a file processed offline (every frame, at whatever speed the CPU manages), frames
    are stamped with their time in the video (first frame's arrival + index / fps) instead of their
    read time, so time-based logic downstream (blink and motion windows, trackers, the kiosk's timers)
    sees the video as recorded however slow or fast the machine is."""

    def __init__(self, pipeline: Pipeline, media_fps: float | None = None) -> None:
        self._pipeline = pipeline
        self._lock = threading.Lock()
        self.media_fps = media_fps
        self._t0: float | None = None

    @property
    def current(self) -> Pipeline:
        return self._pipeline

    def run(self, frame: Frame) -> FrameResult:
        if self.media_fps:
            if self._t0 is None:
                self._t0 = frame.timestamp - frame.index / self.media_fps
            frame = replace(frame, timestamp=self._t0 + frame.index / self.media_fps)
        with self._lock:
            return self._pipeline.run(frame)

    def swap(self, new: Pipeline) -> Pipeline:
        with self._lock:
            old, self._pipeline = self._pipeline, new
        return old

    def close(self) -> None:
        with self._lock:
            self._pipeline.close()


class LoopingSource:
    """A file source that starts again at its end (monitor and kiosk demos on short clips)."""

    def __init__(self, inner: FrameSource) -> None:
        self.inner = inner
        self.source_id: str = inner.source_id
        self.live: bool = inner.live
        self.fps: float | None = inner.fps
        self.frame_count: int | None = None

    def open(self) -> None:
        self.inner.open()

    def read(self) -> NDArray[np.uint8] | None:
        img = self.inner.read()
        if img is None and not self.inner.live:
            self.inner.open()
            img = self.inner.read()
        return img

    def close(self) -> None:
        self.inner.close()


class Session:
    """source → capture → pipeline → (GUI callback, recorder, extra sinks), one at a time."""

    def __init__(self, *, config_path: str | None, store: Callable[[], ModelStore | None],
                 on_result: Callable[[FrameResult], None], on_status: StatusFn,
                 extra_sinks: Callable[[], Sequence[Sink]] = lambda: (), loop_files: bool = False,
                 base_overrides: Mapping[str, Any] | None = None, monitoring: Monitoring | None = None,
                 name: str = "session", pool: SharedPool | None = None) -> None:
        """pool: a pool of workers shared with other sessions (the monitor): this session then runs only
        its in-order steps (trackers, drawing, sinks) on its own fork of the pool's stages, and its
        tasks are fixed by the pool (reconfigure is refused)."""
        self.config_path = config_path
        self.base_overrides = dict(base_overrides or {})
        self._store_factory = store
        self._store: ModelStore | None = None
        self.on_result = on_result
        self.on_status = on_status
        self.extra_sinks = extra_sinks
        self.loop_files = loop_files
        self.name = name
        self.recorder = RecorderSink(on_status)
        self.monitoring = monitoring
        self.report: SourceReport | None = None  # zones, MQTT and metrics of the running source
        self.run: LiveRun | None = None
        self.pipeline: SwappablePipeline | None = None
        self.shared = pool
        self._fork: Pipeline | None = None  # with a shared pool: this session's in-order stages
        self.context: StageContext | None = None
        self.spec = PipelineSpec()
        self._active: PipelineSpec | None = None  # the spec the running pipeline was built from
        self.source_id = ""
        self._lock = threading.Lock()
        self._generation = 0
        self._starter: threading.Thread | None = None
        self._builder: threading.Thread | None = None
        self._wanted: PipelineSpec | None = None
        self._unjoined: list[threading.Thread] = []  # threads of a stopped run that outlived stop()

    # ---- state -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.run is not None and self.run.runner.is_alive()

    @property
    def starting(self) -> bool:
        return self._starter is not None and self._starter.is_alive()

    def threads(self) -> list[threading.Thread]:
        """Every thread this session started (for tests and shutdown checks)."""
        out = [t for t in (self._starter, self._builder, *self._unjoined) if t is not None]
        if self.run is not None:
            out += [self.run.capture, self.run.runner]
        return out

    def _status(self, kind: str, msg: str) -> None:
        try:
            self.on_status(kind, msg)
        except Exception:
            log.exception("status callback failed")

    # ---- start / stop ------------------------------------------------------------------------
    def start(self, source: str, spec: PipelineSpec) -> None:
        """Open the source and build the pipeline on a starter thread; returns at once."""
        self.stop()
        self._status("starting", f"opening {source} …")
        with self._lock:
            self._generation += 1
            gen = self._generation
            self.spec = spec
            self._starter = threading.Thread(target=self._start_worker, args=(gen, source, spec),
                                             name=f"{self.name}-starter", daemon=True)
            self._starter.start()

    def _cancelled(self, gen: int) -> bool:
        return gen != self._generation

    def _make_context(self, spec: PipelineSpec) -> StageContext:
        cfg = spec.config(self.config_path, self.base_overrides)
        needs_models = any(t != "passthrough" for t in spec.tasks)
        if needs_models and self._store is None:
            self._store = self._store_factory()
        if not needs_models:
            return StageContext(cfg, None, backend="none", backend_reason="passthrough needs no engine")
        store = self._store
        if self.context is not None and self.context.backend != "none":  # the backend is resolved once per session
            return StageContext(cfg, store, backend=self.context.backend,
                                backend_reason=self.context.backend_reason, on_status=self.on_status)
        return StageContext(cfg, store, on_status=self.on_status)

    def _build(self, spec: PipelineSpec) -> tuple[Pipeline, StageContext]:
        ctx = self._make_context(spec)
        pipeline = build_pipeline(list(spec.tasks), ctx,
                                  on_error=lambda stage, msg: self._status("stage_error", msg))
        return pipeline, ctx

    def _join_pool(self, shared: SharedPool, spec: PipelineSpec) -> tuple[WorkerPool, Pipeline, StageContext]:
        """The shared pool (its workers built from `spec` by the first session to start) and this
        session's fork of the stages."""
        ctx = self._make_context(spec)

        def build(workers: int, threads: int) -> list[Pipeline]:
            shared.context = ctx  # whose engines the workers run (backend and providers for the status)
            return build_pipelines(list(spec.tasks), ctx, workers, threads, on_error=shared.on_error)

        pool, fork = shared.stream(build, on_error=lambda stage, msg: self._status("stage_error", msg))
        return pool, fork, shared.context or ctx

    def _start_worker(self, gen: int, source_spec: str, spec: PipelineSpec) -> None:
        source: FrameSource | None = None
        pipeline: Pipeline | None = None
        try:
            cfg = spec.config(self.config_path, self.base_overrides)
            cap = cfg.capture
            source = open_source(source_spec, camera_size=(cap.camera_width, cap.camera_height),
                                 test_size=(cap.test_size[0], cap.test_size[1]), test_fps=cap.test_fps)
            if self.loop_files and not source.live:
                source = LoopingSource(source)
            pool: WorkerPool | None = None
            if self.shared is not None:
                pool, pipeline, ctx = self._join_pool(self.shared, spec)
            else:
                pipeline, ctx = self._build(spec)
            report = (self.monitoring.attach(source.source_id, detector_classes(ctx, spec.tasks))
                      if self.monitoring is not None else None)
            extra = list(self.extra_sinks())
        except Exception as exc:
            if source is not None:
                source.close()
            if pipeline is not None:
                pipeline.close()
            if isinstance(exc, VisionAppError):
                msg = str(exc)
            else:  # a bug must reach the window, not only the terminal
                log.exception("starting %s failed", source_spec)
                msg = f"starting {source_spec} failed: {type(exc).__name__}: {exc}"
            if not self._cancelled(gen):
                self._status("source_error" if isinstance(exc, SourceError) else "error", msg)
            return
        with self._lock:
            if self._cancelled(gen):
                source.close()
                pipeline.close()
                for sink in extra:
                    sink.close()
                return
            self.context = ctx
            self._active = spec
            mode = cfg.ui.file_mode
            media_clock = mode == "offline" and not source.live and source.fps
            self.source_id = source.source_id
            sinks: list[Sink] = [*(report.sinks if report else ()), *extra, self.recorder,
                                 CallbackSink(self.on_result)]
            reconnect = (cap.reconnect_initial_s, cap.reconnect_max_s, cap.reconnect_attempts)
            post = report.step if report else None
            if pool is not None:  # the pool's workers run the models; this thread the in-order steps
                self._fork = pipeline
                self.run = LiveRun(source, pipeline, sinks, mode=mode, on_status=self._status,
                                   reconnect=reconnect, pool=pool, post=post)
            else:
                self.pipeline = SwappablePipeline(pipeline, source.fps if media_clock else None)
                self.run = LiveRun(source, self.pipeline, sinks, mode=mode,  # type: ignore[arg-type]
                                   on_status=self._status, reconnect=reconnect, post=post)
            self.report = report
            if report is not None:
                report.track(self.run.counters)
                report.set_engine(ctx.backend, ctx.providers())
            self.run.start()
            changed_meanwhile = self.spec != spec  # settings changed while the source was opening
        self._status("started", source.source_id)
        self._status("engine", self.engine_text())
        if changed_meanwhile:
            self.reconfigure(self.spec)

    def signal_stop(self) -> None:
        """Tell the threads to stop without waiting (stop several sessions in parallel, then stop())."""
        run = self.run
        if run is not None:
            run.capture.stop()
            run.runner.stop()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop every thread of this session; True if all ended within `timeout` seconds."""
        with self._lock:
            self._generation += 1
            run, self.run = self.run, None
            pipeline, self.pipeline = self.pipeline, None
            fork, self._fork = self._fork, None
            self._active = None
            starter = self._starter
            self._wanted = None
        ok = True
        if run is not None:
            ok = run.stop(timeout)
            if ok and pipeline is not None:
                pipeline.close()
            if ok and fork is not None:
                fork.close()
            elif not ok:
                log.error("%s: threads did not stop within %.1f s", self.name, timeout)
                self._unjoined = [t for t in (run.capture, run.runner) if t.is_alive()]
            self._status("stopped", run.source.source_id)
        if starter is not None and starter is not threading.current_thread():
            starter.join(0.05)  # it may be blocked opening a camera; it cleans up after itself
        return ok

    def set_paused(self, paused: bool) -> None:
        run = self.run
        if run is not None:
            (run.runner.paused.set if paused else run.runner.paused.clear)()

    # ---- live reconfiguration ----------------------------------------------------------------
    def reconfigure(self, spec: PipelineSpec) -> None:
        """Build a pipeline for `spec` on the builder thread and swap it in; returns at once."""
        if self.shared is not None:
            if spec != self._active:
                log.warning("%s: tasks of a session on a shared pool are fixed; ignoring %s", self.name, spec)
            return
        with self._lock:
            self.spec = spec
            if self.run is None:
                return  # applied at the next start
            building = self._builder is not None and self._builder.is_alive()
            if spec == self._active and not building:
                return  # already running exactly this (e.g. controls re-emitting their settings)
            self._wanted = spec
            if self._builder is not None and self._builder.is_alive():
                return  # the running builder picks up the newest spec when it finishes
            self._builder = threading.Thread(target=self._build_worker, name=f"{self.name}-builder",
                                             daemon=True)
            self._builder.start()

    def _build_worker(self) -> None:
        while True:
            with self._lock:
                spec, self._wanted = self._wanted, None
                gen = self._generation
            if spec is None:
                return
            try:
                pipeline, ctx = self._build(spec)
            except VisionAppError as exc:
                self._status("error", str(exc))
                continue
            except Exception as exc:
                log.exception("building the pipeline failed")
                self._status("error", f"building the pipeline failed: {type(exc).__name__}: {exc}")
                continue
            with self._lock:
                holder = self.pipeline
                if self._cancelled(gen) or holder is None:
                    pipeline.close()
                    return
                self.context = ctx
                self._active = spec
            old = holder.swap(pipeline)
            old.close()
            if self.report is not None:
                self.report.set_engine(ctx.backend, ctx.providers())
            self._status("reconfigured", ", ".join(spec.tasks))
            self._status("engine", self.engine_text())

    # ---- info --------------------------------------------------------------------------------
    def engine_text(self) -> str:
        """e.g. 'onnxruntime [CPUExecutionProvider]' plus why auto picked it."""
        ctx = self.context
        if ctx is None or ctx.backend == "none":
            return "no engine (passthrough)"
        providers = ctx.providers()
        text = ctx.backend + (f" [{', '.join(providers)}]" if providers else "")
        return f"{text} — {ctx.backend_reason}" if ctx.backend_reason else text

