"""The GPU path's resource handling, checked where there is no GPU, against stand-ins that follow pycuda's
documented API and record what is called, in which order and whether the context was current (the same
code on a real GPU: test_gpu.py, test_gpu_tensorrt.py):
- close() releases the stream (after it has finished), the page-locked and device buffers and the
  TensorRT objects at once, in the context (GpuImageToTensor, GpuPreprocessor, TensorRTEngine);
- the preprocessing kernel is compiled once per device when workers race to build it.
Nothing here claims that pycuda works: only that this code calls it as documented.
"""
from __future__ import annotations

import contextlib
import itertools
import threading
import time
import types
from functools import partial
from typing import Any, Iterator

import numpy as np
import pytest

from engines import cuda_preprocess as cp
from engines.base import TensorSpec
from engines.cuda_context import PinnedBuffer
from tests.helpers.threads import run_in_threads
from vision_app.errors import EngineError

# ---- pycuda stand-ins --------------------------------------------------------------------------------


class Recorder:
    """Events as (what, context current?) in call order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bool]] = []
        self.depth = 0

    def __call__(self, what: str) -> None:
        self.events.append((what, self.depth > 0))

    def names(self) -> list[str]:
        return [e for e, _ in self.events]


class HostAllocation(bytearray):
    """pycuda's PagelockedHostAllocation: the .base of what pagelocked_empty returns; free() releases it
    now (a second free() raises, as pycuda's does)."""

    def __init__(self, nbytes: int, rec: Recorder) -> None:
        super().__init__(nbytes)
        self.rec, self.freed = rec, False

    def free(self) -> None:
        if self.freed:
            raise RuntimeError("pagelocked_host_allocation::free failed: invalid handle")
        self.freed = True
        self.rec("free host")


class DeviceAllocation:
    _addresses = itertools.count(0x7F0000000000, 0x100000)

    def __init__(self, nbytes: int, rec: Recorder) -> None:
        self.nbytes, self.rec, self.addr = nbytes, rec, next(self._addresses)

    def __int__(self) -> int:
        return self.addr

    def free(self) -> None:
        self.rec("free device")


class Stream:
    """pycuda's Stream: no destroy call; cuStreamDestroy runs when the object goes."""

    handle = 0x5000

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def synchronize(self) -> None:
        self.rec("synchronize")

    def __del__(self) -> None:
        self.rec("stream destroyed")


class FakeCuda:
    Error = RuntimeError

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def pagelocked_empty(self, n: int, dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        return np.ndarray((n,), dtype, buffer=HostAllocation(n * dtype.itemsize, self.rec))

    def mem_alloc(self, nbytes: int) -> DeviceAllocation:
        return DeviceAllocation(nbytes, self.rec)

    def to_device(self, arr: np.ndarray) -> DeviceAllocation:
        return DeviceAllocation(arr.nbytes, self.rec)

    def Stream(self) -> Stream:  # noqa: N802 - pycuda's name
        return Stream(self.rec)

    def memcpy_htod_async(self, dst: Any, src: np.ndarray, stream: Any) -> None:
        self.rec("copy to device")

    def memcpy_dtoh_async(self, dst: np.ndarray, src: Any, stream: Any) -> None:
        self.rec("copy to host")


class FakeGpu:
    """engines.cuda_context.GpuContext's surface: device, cuda, info, active()."""

    def __init__(self, device: int = 0) -> None:
        self.device = device
        self.rec = Recorder()
        self.cuda = FakeCuda(self.rec)
        self.info = types.SimpleNamespace(name="stand-in GPU", compute_capability="9.0")

    @contextlib.contextmanager
    def active(self) -> Iterator["FakeGpu"]:
        self.rec("push")
        self.rec.depth += 1
        try:
            yield self
        finally:
            self.rec.depth -= 1
            self.rec("pop")


class Kernel:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def prepared_async_call(self, *args: Any) -> None:
        self.rec("launch")


class Entry:
    name = "stand-in"
    input = {"name": "input", "size": [32, 32]}
    preprocess = {"resize": "letterbox", "color": "rgb", "scale": 1 / 255}


FRAME = np.zeros((48, 64, 3), np.uint8)


def _released_in_context(rec: Recorder) -> list[str]:
    """The events of one close(): checked to sit between one push and its pop, the stream synchronized
    before anything is freed; returned without push/pop."""
    names = rec.names()
    assert names[0] == "push" and names[-1] == "pop" and names.count("push") == 1, names
    assert all(inside for _, inside in rec.events[1:-1]), rec.events
    frees = [i for i, n in enumerate(names) if n.startswith("free")]
    assert frees and names.index("synchronize") < frees[0], names
    return names[1:-1]


def test_pinned_buffer_free_releases_both_allocations_now(monkeypatch) -> None:
    gpu = FakeGpu()
    buf = PinnedBuffer(gpu.cuda, np.float32, "x")
    assert buf.ensure((1, 3, 8, 8))
    host_alloc = buf._host_flat.base
    assert not buf.ensure((1, 3, 4, 4))  # smaller: the same memory, nothing freed
    assert gpu.rec.names() == []
    assert buf.ensure((1, 3, 16, 16))  # bigger: the old pair released before the new one is made
    assert gpu.rec.names() == ["free device", "free host"] and host_alloc.freed
    buf.free()
    assert gpu.rec.names()[2:] == ["free device", "free host"]
    assert buf.host.size == 0 and buf.device is None and buf.capacity == 0
    buf.free()  # idempotent
    assert len(gpu.rec.names()) == 4


def test_image_to_tensor_close_releases_stream_and_buffers_in_the_context(monkeypatch) -> None:
    gpu = FakeGpu()
    monkeypatch.setattr(cp, "load_kernel", lambda g: Kernel(g.rec))
    k = cp.GpuImageToTensor(gpu, cp.PreprocessSpec.from_entry(Entry()))
    out = k.run(FRAME)
    assert out is not None and out.shape == (1, 3, 32, 32)
    assert k.run(FRAME, copy_back=False) is None  # the input stays on the device: nothing to hand out
    gpu.rec.events.clear()
    k.close()
    released = _released_in_context(gpu.rec)
    assert sorted(released) == sorted(["synchronize", "stream destroyed", "free device", "free host", "free device",
                                       "free host", "free device", "free device"]), released  # + 2 tables
    assert k.stream is None
    gpu.rec.events.clear()
    k.close()  # a second close releases nothing twice
    assert gpu.rec.names() == ["push", "pop"]


def test_gpu_preprocessor_close_waits_for_the_engine_stream_and_frees_its_buffers(monkeypatch) -> None:
    gpu = FakeGpu()
    monkeypatch.setattr(cp, "load_kernel", lambda g: Kernel(g.rec))

    class Engine:  # the TensorRTEngine surface GpuPreprocessor uses
        name = "stand-in"
        inputs = {"input": TensorSpec("input", (1, 3, None, None), np.dtype(np.float32))}

        def __init__(self) -> None:
            self.gpu, self.stream = gpu, Stream(gpu.rec)

        def prepare_input(self, name: str, shape: tuple[int, ...]) -> int:
            return 0x7E0000000000

        def run_prepared(self) -> dict[str, np.ndarray]:
            self.stream.synchronize()
            return {"out": np.zeros(3, np.float32)}

    engine = Engine()
    pre = cp.GpuPreprocessor(engine, Entry())
    outputs, box = pre(FRAME)
    assert set(outputs) == {"out"} and box.src_w == 64
    gpu.rec.events.clear()
    pre.close()
    released = _released_in_context(gpu.rec)
    assert sorted(released) == sorted(["synchronize", "free device", "free host", "free device", "free device"])
    assert engine.stream is not None  # the engine's stream is the engine's to release


def test_tensorrt_engine_close_releases_stream_buffers_context_then_engine() -> None:
    from engines.tensorrt import TensorRTEngine

    gpu = FakeGpu()

    class Owned:  # TensorRT's IExecutionContext / the shared engine: destroyed when the last reference goes
        def __init__(self, what: str) -> None:
            self.what = what

        def __del__(self) -> None:
            gpu.rec(f"{self.what} destroyed")

    eng = object.__new__(TensorRTEngine)  # the state __init__ builds with TensorRT, without TensorRT
    eng.name, eng._closed, eng._gpu = "stand-in", False, gpu
    eng._stream, eng._context, eng._shared = Stream(gpu.rec), Owned("execution context"), Owned("engine")
    eng._io = {"input": PinnedBuffer(gpu.cuda, np.float32, "input"), "out": PinnedBuffer(gpu.cuda, np.float32, "out")}
    for buf in eng._io.values():
        buf.ensure((1, 3, 8, 8))
    gpu.rec.events.clear()
    eng.close()
    released = _released_in_context(gpu.rec)
    assert released[:2] == ["synchronize", "stream destroyed"], released
    assert released[-2:] == ["execution context destroyed", "engine destroyed"], released  # in that order
    assert sorted(released[2:-2]) == ["free device", "free device", "free host", "free host"]
    eng.close()
    assert gpu.rec.names()[-1] == "pop" and len(gpu.rec.names()) == len(released) + 2


# ---- the kernel is compiled once per device ---------------------------------------------------------------

class Module:
    def __init__(self, device: int) -> None:
        self.device = device
        self.prepared: list[str] = []

    def get_function(self, name: str) -> "Module":
        assert name == cp.KERNEL_NAME
        return self

    def prepare(self, fmt: str) -> None:
        self.prepared.append(fmt)


def test_racing_workers_compile_the_kernel_once_per_device(monkeypatch) -> None:
    compiled: list[int] = []
    guard = threading.Lock()

    def slow_compile(gpu: Any, source: str, what: str) -> Module:
        with guard:
            compiled.append(gpu.device)
        time.sleep(0.05)  # the window in which unguarded workers would all compile
        return Module(gpu.device)

    monkeypatch.setattr(cp, "compile_module", slow_compile)
    monkeypatch.setattr(cp, "_kernels", {})
    monkeypatch.setattr(cp, "_modules", {})
    gpus = [types.SimpleNamespace(device=d) for d in (0, 0, 0, 0, 1, 1, 1, 1)]
    start = threading.Barrier(len(gpus), timeout=30)
    got: dict[int, Any] = {}

    def worker(i: int) -> None:
        start.wait()
        got[i] = cp.load_kernel(gpus[i])

    run_in_threads(*(partial(worker, i) for i in range(len(gpus))))
    assert sorted(compiled) == [0, 1]
    assert len({id(got[i]) for i in range(4)}) == 1 and len({id(got[i]) for i in range(4, 8)}) == 1
    assert got[0].device == 0 and got[4].device == 1 and got[0].prepared == [cp.ARG_FORMAT]
    assert set(cp._modules) == {0, 1}


def test_a_failed_compilation_is_not_cached(monkeypatch) -> None:
    attempts = iter([EngineError("the preprocessing kernel could not be compiled: nvcc crashed"), Module(0)])

    def compile_once_failing(gpu: Any, source: str, what: str) -> Module:
        result = next(attempts)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(cp, "compile_module", compile_once_failing)
    monkeypatch.setattr(cp, "_kernels", {})
    monkeypatch.setattr(cp, "_modules", {})
    with pytest.raises(EngineError, match="nvcc crashed"):
        cp.load_kernel(types.SimpleNamespace(device=0))
    assert cp.load_kernel(types.SimpleNamespace(device=0)).device == 0
