"""TensorRT backend: cached engines built from the ONNX models, run with pycuda buffers and streams.

Importing this module imports neither tensorrt nor pycuda; they are imported when an engine is created or
`probe()` is called. An engine:
- loads its plan from the engine cache (engines/trt_cache.py) or builds it once with visible progress
  (engines/trt_build.py); a stale, corrupt or foreign plan, or one TensorRT refuses to deserialize, is
  rebuilt instead of crashing;
- uses name-based I/O (num_io_tensors / get_tensor_name / get_tensor_mode);
- owns an execution context and a CUDA stream; page-locked host and device buffers are allocated once per
  shape (grown, never shrunk) and their addresses given to TensorRT once per allocation;
- runs `execute_async_v3` on its stream between async copies; a False return raises EngineError;
- `clone()` gives another thread its own execution context and stream over the same deserialized engine.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from engines.base import EngineBase, TensorSpec
from engines.trt_settings import ProfileRange, TrtSettings, check_in_profile
from vision_app.errors import EngineError

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[tensorrt]"'


class _SharedEngine:
    """The deserialized engine (weights) shared by an engine and its clones."""

    def __init__(self, runtime: Any, engine: Any, key_text: str, plan_path: Path | None) -> None:
        self.runtime = runtime
        self.engine = engine
        self.key_text = key_text
        self.plan_path = plan_path

    def __del__(self) -> None:
        self.engine = None  # TensorRT wants an engine destroyed before the runtime that made it
        self.runtime = None


_build_locks: dict[str, threading.Lock] = {}
_build_locks_guard = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _build_locks_guard:
        return _build_locks.setdefault(key, threading.Lock())


class TensorRTEngine(EngineBase):
    """One ONNX model as a TensorRT engine on one GPU. Not shareable across threads: clone() instead.

    settings: build/cache settings (TrtSettings.from_config(cfg.tensorrt, multiple_of)); on_progress:
    (message, fraction) callback while an engine is being built; rebuild: ignore the cached plan.
    """

    backend = "tensorrt"

    def __init__(self, model_path: str | Path, *, name: str | None = None, settings: TrtSettings | None = None,
                 on_progress: Callable[[str, float], None] | None = None, rebuild: bool = False,
                 _shared: _SharedEngine | None = None) -> None:
        import tensorrt as trt

        from engines.cuda_context import GpuContext

        self.trt = trt
        self.path = Path(model_path)
        self.name = name or self.path.stem
        self.settings = settings or TrtSettings()
        self._gpu = GpuContext.get(self.settings.device)
        self._closed = False
        with self._gpu.active():
            self._shared = _shared or self._load_or_build(on_progress, rebuild)
            eng = self._shared.engine
            self._context = eng.create_execution_context()
            if self._context is None:
                raise EngineError(f"{self.name}: TensorRT could not create an execution context (GPU memory "
                                  f"full?); close other GPU programs or use --backend onnxruntime")
            self._stream = self._gpu.cuda.Stream()
            self._io: dict[str, Any] = {}
            self.inputs, self.outputs = {}, {}
            self.profiles: dict[str, ProfileRange] = {}
            self._cur_shape: dict[str, tuple[int, ...]] = {}
            from engines.cuda_context import PinnedBuffer

            input_shapes: dict[str, tuple[int, ...]] = {}  # as the engine reports them, -1 = dynamic
            for i in range(eng.num_io_tensors):
                tname = eng.get_tensor_name(i)
                dtype = np.dtype(trt.nptype(eng.get_tensor_dtype(tname)))
                shape = tuple(int(d) for d in eng.get_tensor_shape(tname))
                spec = TensorSpec(tname, tuple(None if d < 0 else d for d in shape), dtype)
                self._io[tname] = PinnedBuffer(self._gpu.cuda, dtype, tname)
                if eng.get_tensor_mode(tname) == trt.TensorIOMode.INPUT:
                    self.inputs[tname] = spec
                    input_shapes[tname] = shape
                    if any(d < 0 for d in shape):
                        lo, opt, hi = eng.get_tensor_profile_shape(tname, 0)
                        self.profiles[tname] = ProfileRange(tname, tuple(lo), tuple(opt), tuple(hi))
                else:
                    self.outputs[tname] = spec
            if not self.profiles:  # static shapes: every buffer once, now
                self._set_shapes(input_shapes)
        log.info("%s: TensorRT engine ready on %s (%s)", self.name, self._gpu.info.name, self._shared.key_text)

    # ---- engine plan: cache or build -------------------------------------------------------------
    def _load_or_build(self, on_progress: Callable[[str, float], None] | None, rebuild: bool) -> _SharedEngine:
        from engines.trt_build import BuildProgress, build_plan, make_logger
        from engines.trt_cache import EngineCache, EngineKey
        from engines.trt_settings import compute_profiles, onnx_input_shapes
        from vision_app.models import sha256_file

        trt, s, info = self.trt, self.settings, self._gpu.info
        if not self.path.is_file():
            raise EngineError(f"model file not found: {self.path}; run 'python main.py models list'")
        profiles = compute_profiles(onnx_input_shapes(self.path), s, self.name)
        key = EngineKey.create(model=self.name, onnx_sha256=sha256_file(self.path), trt_version=trt.__version__,
                               gpu_name=info.name, compute_capability=info.compute_capability,
                               precision=s.precision, profiles=profiles, workspace_mb=s.workspace_mb)
        cache = EngineCache(s.cache_dir) if s.cache_dir else None
        runtime = trt.Runtime(make_logger(trt))
        key_text = f"TensorRT {trt.__version__}, {s.precision}, key {key.digest()[:12]}"
        with _lock_for(key.digest()):  # two stages asking for the same model build it once
            plan = None if (rebuild or cache is None) else cache.load(key)
            if plan is not None and cache is not None:  # (only the cache gives a plan here)
                try:
                    engine = runtime.deserialize_cuda_engine(plan)
                except (RuntimeError, TypeError) as exc:  # some versions raise instead of returning None
                    log.warning("%s: deserializing the cached plan failed: %s", self.name, exc)
                    engine = None
                if engine is not None:
                    log.info("%s: using cached TensorRT engine %s", self.name, cache.path_for(key))
                    return _SharedEngine(runtime, engine, key_text, cache.path_for(key))
                log.warning("%s: TensorRT %s refused the cached plan %s (driver or library change?); "
                            "rebuilding it", self.name, trt.__version__, cache.path_for(key))
            log.warning("%s: building a TensorRT engine (%s, %s) - this runs once per model, GPU and TensorRT "
                        "version and can take minutes", self.name, s.precision, info.name)
            progress = BuildProgress(self.name, on_progress)
            timing = (cache.timing_cache_path(trt.__version__, info.name, info.compute_capability)
                      if cache is not None and s.timing_cache else None)
            plan = build_plan(self.path, model=self.name, precision=s.precision, profiles=profiles,
                              workspace_mb=s.workspace_mb, timing_cache=timing, progress=progress)
            path = None
            if cache is not None:
                try:
                    path = cache.store(key, plan, onnx=str(self.path), driver=info.driver,
                                       build_seconds=round(time.monotonic() - progress.t0, 1))
                except OSError as exc:
                    log.warning("%s: could not cache the engine in %s (%s); it will be rebuilt next run",
                                self.name, s.cache_dir, exc)
            engine = runtime.deserialize_cuda_engine(plan)
            if engine is None:
                raise EngineError(f"{self.name}: TensorRT built a plan it cannot load; use --backend onnxruntime")
            return _SharedEngine(runtime, engine, key_text, path)

    # ---- buffers and shapes ----------------------------------------------------------------------
    def _set_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Set input shapes (dynamic ones through set_input_shape), read output shapes back, and make
        sure every buffer is big enough; TensorRT gets a tensor's address only when it changes."""
        changed = False
        for name, shape in shapes.items():
            if self._cur_shape.get(name) == shape:
                continue
            if name in self.profiles:
                check_in_profile(self.name, name, shape, self.profiles[name])
                if not self._context.set_input_shape(name, shape):
                    raise EngineError(f"{self.name}: TensorRT rejected shape {list(shape)} for input '{name}'")
            self._cur_shape[name] = shape
            changed = True
        if not changed:
            return
        for name in self.inputs:
            self._bind(name, self._cur_shape.get(name, tuple(d or 0 for d in self.inputs[name].shape)))
        for name in self.outputs:
            self._bind(name, tuple(int(d) for d in self._context.get_tensor_shape(name)))

    def _bind(self, name: str, shape: tuple[int, ...]) -> None:
        buf = self._io[name]
        if buf.ensure(shape) and not self._context.set_tensor_address(name, buf.ptr):
            raise EngineError(f"{self.name}: TensorRT refused the buffer address for '{name}'")

    # ---- inference ------------------------------------------------------------------------------
    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host arrays in, host arrays out (copies: the pinned buffers are reused by the next call)."""
        self.check_feed(feed)
        self._check_open()
        with self._gpu.active():
            self._set_shapes({n: tuple(a.shape) for n, a in feed.items()})
            for name, arr in feed.items():
                buf = self._io[name]
                np.copyto(buf.host, arr)
                buf.to_device(self._stream)
            return self._execute()

    def prepare_input(self, name: str, shape: tuple[int, ...]) -> int:
        """Device pointer of input `name` sized for `shape`, for a kernel that writes the input in place
        on `self.stream` (GPU preprocessing); then call run_prepared()."""
        if name not in self.inputs:
            raise EngineError(f"{self.name}: no input '{name}'; inputs are {list(self.inputs)}")
        self._check_open()
        with self._gpu.active():
            self._set_shapes({name: tuple(int(d) for d in shape)})
            return self._io[name].ptr

    def run_prepared(self, host_feed: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Execute with device inputs already written by prepare_input's user, plus any host inputs."""
        self._check_open()
        with self._gpu.active():
            for name, arr in (host_feed or {}).items():
                self.inputs[name].check(arr, self.name)
                self._set_shapes({name: tuple(arr.shape)})
                np.copyto(self._io[name].host, arr)
                self._io[name].to_device(self._stream)
            return self._execute()

    def _execute(self) -> dict[str, np.ndarray]:
        if not self._context.execute_async_v3(self._stream.handle):
            raise EngineError(f"{self.name}: TensorRT execute_async_v3 failed (see the TensorRT error logged "
                              f"above); input shapes {self._cur_shape}")
        for name in self.outputs:
            self._io[name].to_host(self._stream)
        self._stream.synchronize()
        return {name: self._io[name].host.copy() for name in self.outputs}

    @property
    def stream(self) -> Any:
        """This engine's pycuda Stream (launch preprocessing kernels on it to keep the order)."""
        return self._stream

    @property
    def gpu(self) -> Any:
        return self._gpu

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError(f"{self.name}: engine is closed")

    def clone(self) -> "TensorRTEngine":
        """A sibling for another thread: own execution context and stream, same deserialized engine."""
        self._check_open()
        return TensorRTEngine(self.path, name=self.name, settings=self.settings, _shared=self._shared)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        from engines.cuda_context import release_stream

        with self._gpu.active():  # everything CUDA goes now, on this thread, in the context
            release_stream(self, "_stream")  # waits for the last inference first
            for buf in self._io.values():
                buf.free()
            self._context = None
            self._shared = None  # type: ignore[assignment]  # the last clone closed destroys the engine

    def __del__(self) -> None:
        self._context = None  # an execution context must go before the engine it was created from

    def describe(self) -> str:
        return f"{super().describe()} [{self._shared.key_text if self._shared else 'closed'}]"

    # ---- availability ---------------------------------------------------------------------------
    @staticmethod
    def probe(device: int = 0) -> str:
        """'ok' when tensorrt (10 or 11), pycuda and a GPU are all usable; otherwise the reason."""
        try:
            import tensorrt as trt
        except (ImportError, OSError) as exc:  # OSError: the package is there but libnvinfer is not
            return f"tensorrt is not installed or cannot load its libraries ({exc}); {INSTALL_HINT}"
        major = _major(getattr(trt, "__version__", "0"))
        if major < 10:
            return f"TensorRT {trt.__version__} is too old: this app needs TensorRT 10 or 11"
        try:
            from engines.cuda_context import gpu_info

            info = gpu_info(device)
        except EngineError as exc:
            return str(exc)
        except OSError as exc:
            return f"pycuda cannot load the NVIDIA driver ({exc})"
        log.debug("tensorrt probe ok: TensorRT %s on %s", trt.__version__, info.name)
        return "ok"

    @staticmethod
    def environment(device: int = 0) -> str:
        """One line for the log / status bar: TensorRT version and GPU (call after probe() said ok)."""
        import tensorrt as trt

        from engines.cuda_context import gpu_info

        info = gpu_info(device)
        return f"TensorRT {trt.__version__} on {info.name} (compute {info.compute_capability}, driver {info.driver})"


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0

