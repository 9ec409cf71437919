"""CUDA context, streams and host/device buffers with pycuda (imported inside functions only).

Context model: every engine and thread of the process uses the device's *primary* context, the one the
CUDA runtime (and so TensorRT, CuPy, PyTorch) uses too, retained once per device. A thread makes it
current only while it works: `with gpu.active(): ...` pushes it and always pops it, so any number of
engines on any threads share one GPU without leaving a context bound to a thread that exits. Each engine
has its own stream, so threads do not serialise on one queue.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
from numpy.typing import DTypeLike

from vision_app.errors import EngineError

log = logging.getLogger(__name__)


def import_pycuda() -> Any:
    """pycuda.driver, initialised; EngineError with an install hint when it cannot be used."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise EngineError(f"pycuda is not usable ({exc}); install it with pip install -e \".[tensorrt]\" "
                          f"(it needs the NVIDIA driver)") from exc
    try:
        cuda.init()
    except cuda.Error as exc:
        raise EngineError(f"the NVIDIA driver could not be initialised ({exc}): no usable GPU here") from exc
    return cuda


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str  # "8.6"
    total_mib: int
    driver: str


def gpu_info(device: int = 0) -> GpuInfo:
    """Name, compute capability, memory and driver of one GPU; EngineError when there is none."""
    cuda = import_pycuda()
    try:
        count = cuda.Device.count()
        if count == 0:
            raise EngineError("no NVIDIA GPU found (the driver reports 0 devices)")
        if not 0 <= device < count:
            raise EngineError(f"tensorrt.device is {device} but this machine has {count} GPU(s) "
                              f"(0..{count - 1})")
        dev = cuda.Device(device)
        major, minor = dev.compute_capability()
        drv = cuda.get_driver_version()  # e.g. 13000
        return GpuInfo(device, dev.name(), f"{major}.{minor}", dev.total_memory() // 2**20,
                       f"{drv // 1000}.{drv % 1000 // 10}")
    except cuda.Error as exc:
        raise EngineError(f"CUDA device {device} is not usable: {exc}") from exc


class GpuContext:
    """The primary context of one device, shared process-wide. Use GpuContext.get(device)."""

    _instances: dict[int, "GpuContext"] = {}
    _lock = threading.Lock()

    def __init__(self, device: int) -> None:
        cuda = import_pycuda()
        self.cuda = cuda
        self.device = device
        self.info = gpu_info(device)
        self.context = cuda.Device(device).retain_primary_context()

    @classmethod
    def get(cls, device: int = 0) -> "GpuContext":
        with cls._lock:
            inst = cls._instances.get(device)
            if inst is None:
                inst = cls._instances[device] = cls(device)
                log.info("CUDA device %d: %s (compute %s, %d MiB, driver %s)", device, inst.info.name,
                         inst.info.compute_capability, inst.info.total_mib, inst.info.driver)
            return inst

    @contextlib.contextmanager
    def active(self) -> Iterator["GpuContext"]:
        """Make the context current on this thread for the block; nesting is fine (a stack)."""
        self.context.push()
        try:
            yield self
        finally:
            self.cuda.Context.pop()


class PinnedBuffer:
    """A page-locked host array and a device allocation of the same byte size, for one tensor.

    Grows only: `ensure(shape)` reallocates when the new shape needs more bytes than held and returns
    True (the caller then tells TensorRT the new address); otherwise the same memory is reused. `host`
    is a C-contiguous view of the current shape, valid until the next growing `ensure()` or `free()`:
    copy what must outlive them. Call every method with the owning context current (`gpu.active()`), on
    any thread: `free()` releases both allocations right there instead of leaving them to the garbage
    collector, which may run on a thread where pycuda cannot make the context current and then leaks them.
    """

    def __init__(self, cuda: Any, dtype: DTypeLike, name: str = "") -> None:
        self.cuda = cuda
        self.dtype = np.dtype(dtype)
        self.name = name
        self.capacity = 0
        self.shape: tuple[int, ...] = ()
        self._host_flat: np.ndarray | None = None
        self.device: Any = None
        self.host: np.ndarray = np.empty(0, self.dtype)

    def ensure(self, shape: tuple[int, ...]) -> bool:
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise EngineError(f"tensor '{self.name}' has an unresolved shape {list(shape)}: set every dynamic "
                              f"input shape first")
        count = int(np.prod(shape)) if shape else 1
        grew = False
        if count * self.dtype.itemsize > self.capacity or self._host_flat is None:
            self.free()
            n = max(count, 1)
            self._host_flat = self.cuda.pagelocked_empty(n, self.dtype)
            self.device = self.cuda.mem_alloc(n * self.dtype.itemsize)
            self.capacity = n * self.dtype.itemsize
            grew = True
        self.shape = shape
        self.host = self._host_flat[:count].reshape(shape)
        return grew

    @property
    def ptr(self) -> int:
        return int(self.device)

    @property
    def nbytes(self) -> int:
        return self.host.nbytes

    def to_device(self, stream: Any) -> None:
        self.cuda.memcpy_htod_async(self.device, self.host, stream)

    def to_host(self, stream: Any) -> None:
        self.cuda.memcpy_dtoh_async(self.host, self.device, stream)

    def free(self) -> None:
        """Release the device memory and the page-locked host memory now (idempotent). Synchronize the
        stream that last used them first."""
        self.host = np.empty(0, self.dtype)  # drop our views of the page-locked memory before it goes
        self.shape = ()
        flat, self._host_flat = self._host_flat, None
        device, self.device = self.device, None
        self.capacity = 0
        if device is not None:
            device.free()
        if flat is not None:
            allocation = flat.base  # pycuda's PagelockedHostAllocation behind the array
            del flat
            if allocation is not None and hasattr(allocation, "free"):
                allocation.free()


def release_stream(owner: Any, attr: str = "stream") -> None:
    """Synchronize and destroy the pycuda Stream held in `owner.<attr>`, with the context current.

    pycuda has no call that destroys a stream: cuStreamDestroy runs when the Stream object is collected.
    Dropping the last reference here, inside `gpu.active()`, makes that happen now, on this thread, in
    the right context, instead of later on whatever thread the garbage collector runs (where pycuda
    cannot activate the context and leaks the stream). Idempotent."""
    stream = getattr(owner, attr, None)
    if stream is None:
        return
    setattr(owner, attr, None)
    try:
        stream.synchronize()
    finally:
        del stream  # the last reference: cuStreamDestroy runs here
