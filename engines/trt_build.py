"""Build a TensorRT engine (serialized plan) from an ONNX file, with visible progress and a timing cache.

Supports TensorRT 10 and 11, told apart by feature, not by version number:
- 10: precision "fp16" sets BuilderFlag.FP16 on the FP32 network (weak typing);
- 11: BuilderFlag.FP16 is gone and networks are strongly typed, so "fp16" builds from an FP16 copy of the
  ONNX (engines/onnx_fp16.py; inputs and outputs stay float32).
"fp32" clears BuilderFlag.TF32 so FP32 engines agree with ONNX Runtime to ~1e-4, not TF32's ~1e-3.

Progress: TensorRT's IProgressMonitor (nested phases with steps) feeds BuildProgress, which logs, and calls
`on_progress(message, fraction)` for the CLI bar and the GUI status line. A heartbeat thread logs every
few seconds even where the monitor is silent, so a long build is never silent. tensorrt is imported inside
the functions only.
"""
from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from engines.trt_settings import ProfileRange
from vision_app.errors import EngineError

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]  # (message, overall fraction 0..1)


class BuildProgress:
    """Bookkeeping for TensorRT's nested build phases (thread-safe: TensorRT calls from its own threads).

    Overall fraction: the top phase's completed steps, plus the current child phase's share of one step,
    recursively. cancel: an Event; once set, step_complete returns False and TensorRT stops the build.
    """

    def __init__(self, model: str, on_progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, log_every_s: float = 5.0) -> None:
        self.model = model
        self.on_progress = on_progress
        self.cancel = cancel or threading.Event()
        self.log_every_s = log_every_s
        self._stack: list[list[Any]] = []  # [name, num_steps, steps_done]
        self._lock = threading.Lock()
        self._last_log = 0.0
        self.t0 = time.monotonic()
        self.fraction = 0.0
        self.message = f"building TensorRT engine for {model}"

    def _fraction(self) -> float:
        frac, width = 0.0, 1.0
        for _, steps, done in self._stack:
            steps = max(1, steps)
            frac += width * min(done, steps) / steps
            width /= steps
        return min(1.0, frac)

    def _emit(self, force: bool = False) -> None:
        # called with the lock held; the user callback must be quick (CLI bar, queued GUI signal)
        self.fraction = max(self.fraction, self._fraction())  # phases restart; the bar never goes back
        phase = self._stack[-1][0] if self._stack else "finishing"
        elapsed = time.monotonic() - self.t0
        self.message = (f"building TensorRT engine for {self.model}: {100 * self.fraction:3.0f}% "
                        f"({phase}, {elapsed:.0f} s)")
        now = time.monotonic()
        if force or now - self._last_log >= self.log_every_s:
            log.info("%s", self.message)
            self._last_log = now
        if self.on_progress is not None:
            try:
                self.on_progress(self.message, self.fraction)
            except Exception:  # a broken progress callback must not abort a build inside TensorRT
                log.exception("build progress callback failed")

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            if parent_phase is not None:  # drop finished siblings still on the stack
                while self._stack and self._stack[-1][0] != parent_phase:
                    self._stack.pop()
            else:
                self._stack.clear()
            self._stack.append([phase_name, int(num_steps), 0])
            self._emit(force=len(self._stack) == 1)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            for entry in reversed(self._stack):
                if entry[0] == phase_name:
                    entry[2] = max(entry[2], int(step) + 1)
                    break
            self._emit()
        return not self.cancel.is_set()

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            for i in range(len(self._stack) - 1, -1, -1):
                if self._stack[i][0] == phase_name:
                    del self._stack[i:]
                    break
            self._emit()

    def heartbeat(self) -> None:
        with self._lock:
            self._emit(force=True)

    def done(self, seconds: float) -> None:
        with self._lock:
            self._stack.clear()
            self.fraction = 1.0
            self.message = f"built TensorRT engine for {self.model} in {seconds:.1f} s"
            log.info("%s", self.message)
            if self.on_progress is not None:
                self.on_progress(self.message, 1.0)


def _make_monitor(trt: Any, progress: BuildProgress) -> Any:
    """A trt.IProgressMonitor forwarding to `progress` (exceptions never cross into TensorRT)."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            try:
                progress.phase_start(phase_name, parent_phase, num_steps)
            except Exception:
                log.exception("progress monitor phase_start failed")

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                return progress.step_complete(phase_name, step)
            except Exception:
                log.exception("progress monitor step_complete failed")
                return True

        def phase_finish(self, phase_name: str) -> None:
            try:
                progress.phase_finish(phase_name)
            except Exception:
                log.exception("progress monitor phase_finish failed")

    return _Monitor()


_LOGGER: Any = None


def make_logger(trt: Any) -> Any:
    """The process's trt.ILogger, forwarding TensorRT's messages to logging. One instance only: TensorRT
    keeps the first logger it is given for the whole process and warns about others."""
    global _LOGGER
    if _LOGGER is None:
        _LOGGER = _new_logger(trt)
    return _LOGGER


def _new_logger(trt: Any) -> Any:
    levels = {trt.ILogger.Severity.INTERNAL_ERROR: logging.ERROR, trt.ILogger.Severity.ERROR: logging.ERROR,
              trt.ILogger.Severity.WARNING: logging.WARNING, trt.ILogger.Severity.INFO: logging.DEBUG,
              trt.ILogger.Severity.VERBOSE: logging.DEBUG}
    trt_log = logging.getLogger("engines.tensorrt.trt")

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            trt_log.log(levels.get(severity, logging.INFO), "%s", msg)

    return _Logger()


def strongly_typed_only(trt: Any) -> bool:
    """True on TensorRT 11+, where BuilderFlag.FP16 no longer exists."""
    return not hasattr(trt.BuilderFlag, "FP16")


def _load_timing_cache(config: Any, path: Path) -> Any:
    """Attach the timing cache at `path` to `config` and return it; None when none could be attached.

    A file TensorRT cannot read (create_timing_cache raises, or returns None as TensorRT 10/11 do for a
    bad blob) is removed and replaced by an empty cache, which the finished build saves over it. A build
    never fails because of its timing cache: without one it only takes longer."""
    data = b""
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read timing cache %s (%s); starting an empty one", path, exc)
    cache = None
    if data:
        why = "TensorRT could not read it"
        try:
            cache = config.create_timing_cache(data)
        except Exception as exc:  # some versions raise a RuntimeError-like error instead of returning None
            why = str(exc)
        if cache is None:
            log.warning("timing cache %s is unusable (%s); replacing it with an empty one", path, why)
            _remove_bad_timing_cache(path)
            data = b""
    if cache is None:
        try:
            cache = config.create_timing_cache(b"")
        except Exception as exc:
            log.warning("TensorRT could not create an empty timing cache (%s); building without one", exc)
            return None
        if cache is None:
            log.warning("TensorRT could not create an empty timing cache; building without one")
            return None
    if config.set_timing_cache(cache, True) is False:  # ignore_mismatch: another GPU's entries are just not used
        log.warning("TensorRT refused the timing cache %s; building without one", path)
        return None
    if data:
        log.info("reusing timing cache %s (%d KiB)", path, len(data) // 1024)
    return cache


def _remove_bad_timing_cache(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove the unusable timing cache %s (%s); the build writes over it", path, exc)


def _save_timing_cache(config: Any, path: Path) -> None:
    from engines.trt_cache import atomic_write

    try:
        cache = config.get_timing_cache()
        if cache is None:
            log.warning("TensorRT returned no timing cache after the build; %s is not updated", path)
            return
        atomic_write(path, bytes(memoryview(cache.serialize())))
    except (OSError, RuntimeError, TypeError) as exc:
        log.warning("could not save timing cache %s: %s", path, exc)


def build_plan(onnx_path: str | Path, *, model: str, precision: str, profiles: tuple[ProfileRange, ...],
               workspace_mb: int, timing_cache: Path | None, progress: BuildProgress,
               heartbeat_s: float = 10.0) -> bytes:
    """Parse the ONNX file and build a serialized engine; raises EngineError with TensorRT's reasons."""
    import tensorrt as trt

    t0 = time.monotonic()
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    typed = strongly_typed_only(trt)
    with tempfile.TemporaryDirectory(prefix="vision-app-trt-") as tmp:
        src = Path(onnx_path)
        if precision == "fp16" and typed:
            from engines.onnx_fp16 import convert_file

            src = convert_file(src, Path(tmp) / f"{src.stem}.fp16.onnx")
        network = builder.create_network(0)  # explicit batch is the only mode since 10; 11 types strongly
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(src)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineError(f"{model}: TensorRT {trt.__version__} cannot parse {src.name}: {errors}. Use "
                              f"--backend onnxruntime for this model")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
        if precision == "fp16" and not typed:
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
        if profiles:
            profile = builder.create_optimization_profile()
            for p in profiles:
                profile.set_shape(p.name, p.min, p.opt, p.max)
            config.add_optimization_profile(profile)
        cache = _load_timing_cache(config, timing_cache) if timing_cache is not None else None
        monitor = _make_monitor(trt, progress) if hasattr(trt, "IProgressMonitor") else None
        if monitor is not None:  # the local reference keeps it alive for the whole build
            config.progress_monitor = monitor
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(progress, stop, heartbeat_s), daemon=True,
                                name=f"trt-build-heartbeat-{model}")
        beat.start()
        try:
            plan = builder.build_serialized_network(network, config)
        finally:
            stop.set()
            beat.join(timeout=1.0)
        if plan is None:
            why = "cancelled" if progress.cancel.is_set() else "see the TensorRT errors logged above"
            raise EngineError(f"{model}: TensorRT {trt.__version__} failed to build an engine ({why}); "
                              f"use --backend onnxruntime for this model")
        if timing_cache is not None and cache is not None:
            _save_timing_cache(config, timing_cache)
    blob = bytes(memoryview(plan))
    progress.done(time.monotonic() - t0)
    return blob


def _heartbeat(progress: BuildProgress, stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        progress.heartbeat()
