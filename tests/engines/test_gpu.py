"""The NVIDIA GPU path on a real GPU (marked gpu: pycuda and a GPU; everywhere else they skip, saying why):
- the preprocessing kernel against the CPU path (vision_app.detect.preprocess) on real photos and video
  frames, for every preprocessing mode of the manifest;
- pinned / device buffers on streams; close() releasing page-locked memory, device memory and streams at
  once, inside the context, on worker threads, with nothing left for the collector on another thread;
- two threads sharing the primary context, each with its own activation, checked against the driver's
  current context (cuCtxGetCurrent), not only pycuda's stack;
- the NVRTC fallback: the kernel compiled without nvcc on PATH;
- the CUDA runtime (PyTorch, CuPy, cuda-python) working in the very primary context pycuda uses.
Their figures print under "GPU check report". TensorRT engines: test_gpu_tensorrt.py. Run both with
scripts/gpu_check.sh on a GPU machine.
"""
from __future__ import annotations

import gc
import importlib.util
import logging
import os
import shutil
import threading
import warnings
import weakref
from typing import Any, Callable

import cv2
import numpy as np
import pytest

from tests.helpers import cuda_driver as drv
from tests.helpers.threads import run_in_threads

pytestmark = pytest.mark.gpu

MODELS_FOR_KERNEL = ["yolo-fastest-1.1-xl", "yolox-nano", "yunet", "selfie", "deeplab", "mobilefacenet"]
PYCUDA_CLEANUP_WORDS = ("could not be cleaned up", "out-of-thread", "dead context", "PyCUDA")


def _levels(got: np.ndarray, ref: np.ndarray, spec: Any) -> np.ndarray:
    """|GPU - CPU| in steps of the uint8 input (1/255 of the range after scaling)."""
    return np.abs(got - ref) / np.asarray(spec.alpha, np.float32).reshape(1, 3, 1, 1)


def _kernel_input(spec: Any, img: np.ndarray) -> np.ndarray:
    if spec.resize == "none" and spec.size is not None:  # fixed-size crop models are fed their size
        return cv2.resize(img, spec.size)
    return img


@pytest.fixture(scope="module")
def primary(gpu, gpu_report) -> int:
    """The primary context's CUcontext handle, as the driver reports it while pycuda has it current."""
    with gpu.active():
        handle = drv.current_context()
    own = getattr(gpu.context, "handle", None)  # reported only: the driver's answer is the one that counts
    gpu_report("context", f"{gpu.info.name} (compute {gpu.info.compute_capability}, {gpu.info.total_mib} MiB, "
                          f"driver {gpu.info.driver}); primary CUcontext {handle:#x} per cuCtxGetCurrent inside "
                          f"gpu.active(); pycuda's Context.handle: {'n/a' if own is None else hex(int(own))}")
    assert handle != 0, "cuCtxGetCurrent says no context is current inside gpu.active()"
    return handle


@pytest.mark.parametrize("model", MODELS_FOR_KERNEL)
def test_kernel_matches_cpu_preprocessing_on_real_images(gpu, store, gpu_photos, gpu_report, model: str) -> None:
    from engines.cuda_preprocess import GpuImageToTensor, PreprocessSpec
    from vision_app.detect.preprocess import Preprocessor

    entry = store.entry(model)
    spec, pre = PreprocessSpec.from_entry(entry), Preprocessor.from_entry(entry)
    k = GpuImageToTensor(gpu, spec)
    rows = []
    try:
        for name, img in gpu_photos.items():
            img = _kernel_input(spec, img)
            ref, _ = pre(img)
            got = k.run(img)
            assert got is not None and got.shape == ref.shape, (name, None if got is None else got.shape, ref.shape)
            lv = _levels(got, ref, spec)
            rows.append((name, float(np.abs(got - ref).max()), float(lv.max()), float((lv > 1e-4).mean())))
    finally:
        k.close()
    worst = max(rows, key=lambda r: r[2])
    gpu_report("kernel vs CPU", f"{model} ({spec.resize}, {'rgb' if spec.swap_rb else 'bgr'}): {len(rows)} images, "
                                f"max |GPU - CPU| {max(r[1] for r in rows):.3g} = {worst[2]:.3f} uint8 levels "
                                f"({worst[0]}); values differing: at most {100 * max(r[3] for r in rows):.4f} %")
    for name, _, levels, share in rows:
        assert levels <= 1.0 + 1e-4, (name, levels)  # within one level (1/255 of the range)
        assert share <= 1e-3, (name, share)  # and in practice bit-exact but for rare pixels


def test_pinned_device_round_trip_on_streams(gpu, gpu_report) -> None:
    from engines.cuda_context import PinnedBuffer

    cuda = gpu.cuda
    with gpu.active():
        a, b = PinnedBuffer(cuda, np.float32, "a"), PinnedBuffer(cuda, np.float32, "b")
        assert a.ensure((2, 3, 64, 64)) is True
        first_ptr = a.ptr
        assert a.ensure((1, 3, 32, 32)) is False and a.ptr == first_ptr  # shrinking reuses the memory
        assert a.ensure((2, 3, 64, 64)) is False
        assert a.ensure((4, 3, 64, 64)) is True  # growing reallocates (TensorRT must be told)
        b.ensure(a.shape)
        streams = [cuda.Stream(), cuda.Stream()]
        rng = np.random.default_rng(0)
        for s in streams:
            a.host[...] = rng.random(a.shape, dtype=np.float32)
            a.to_device(s)
            cuda.memcpy_dtod_async(b.device, a.device, a.nbytes, s)
            b.host[...] = 0
            b.to_host(s)
            s.synchronize()
            np.testing.assert_array_equal(a.host, b.host)
        a.free()
        b.free()
        del streams, s  # destroyed here, in the context
    gpu_report("pinned buffers", "round trip host -> device -> device -> host on two streams: identical")


def _stream_watch(stream: Any) -> tuple[str, Callable[[], bool | None]]:
    """How to tell later that `stream` was destroyed: through a weak reference (None: cannot tell, this
    pycuda's Stream takes none)."""
    try:
        ref = weakref.ref(stream)
    except TypeError:
        return "nothing: pycuda's Stream takes no weak reference", lambda: None
    return "weak reference", lambda: ref() is None


def test_close_releases_pinned_memory_device_memory_and_streams(gpu, primary, store, gpu_report, capfd) -> None:
    """Model reloads on worker threads: each builds a GpuImageToTensor, runs a 4K frame and closes it; the
    object itself is then dropped and collected on yet another thread, as the garbage collector would.
    close() must release everything at once in the context: the driver no longer knows the page-locked
    and device addresses, the stream is gone, device memory does not grow, and pycuda neither prints nor
    warns about clean-ups it could not do."""
    from engines.cuda_context import PinnedBuffer
    from engines.cuda_preprocess import GpuImageToTensor, PreprocessSpec

    spec = PreprocessSpec.from_entry(store.entry("yolo-fastest-1.1-xl"))
    frame = np.random.default_rng(1).integers(0, 256, (2160, 3840, 3), np.uint8)  # 24.9 MB per buffer
    cuda, cycles = gpu.cuda, 8
    handoff: list[Any] = []
    seen: list[dict[str, Any]] = []

    def free_mib() -> float:
        with gpu.active():
            return cuda.mem_get_info()[0] / 2**20

    def reload_cycle() -> None:
        k = GpuImageToTensor(gpu, spec)
        k.run(frame)
        ptrs = {"pinned frame": k._frame.host.ctypes.data, "pinned input": k._out.host.ctypes.data,
                "device frame": k._frame.ptr, "device input": k._out.ptr}
        how, stream_gone = _stream_watch(k.stream)
        with gpu.active():
            before = {n: drv.memory_type(p) for n, p in ptrs.items()}
        k.close()
        with gpu.active():
            after = {n: drv.memory_type(p) for n, p in ptrs.items()}
        seen.append(dict(before=before, after=after, how=how, stream_gone=stream_gone(),
                         stream_attr=k.stream, ctx_after=drv.current_context()))
        handoff.append(k)

    def collect_elsewhere() -> None:
        handoff.clear()
        gc.collect()

    gc.collect()  # earlier tests' garbage goes here, on the context's own thread, not in the checks below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_in_threads(reload_cycle, timeout=120)  # warm-up: kernel, tables, allocator
        run_in_threads(collect_elsewhere)
        start = free_mib()
        for _ in range(cycles):
            run_in_threads(reload_cycle, timeout=120)
            run_in_threads(collect_elsewhere)
        end = free_mib()
    err = capfd.readouterr().err
    cleanup_warnings = [str(w.message) for w in caught if any(s in str(w.message) for s in PYCUDA_CLEANUP_WORDS)]
    printed = [ln for ln in err.splitlines() if "PyCUDA" in ln or "clean-up" in ln or "cleaned up" in ln]
    first = seen[0]
    gpu_report("release", f"{cycles + 1} reloads on worker threads, objects collected on other threads: before "
                          f"close() the driver knew {first['before']}; after close() it answers {first['after']}; "
                          f"streams destroyed at close() (by {first['how']}): "
                          f"{sum(bool(s['stream_gone']) for s in seen)}/{len(seen)}; device memory free "
                          f"{start:.0f} -> {end:.0f} MiB over {cycles} reloads of 2 x 24.9 MB; pycuda clean-up "
                          f"warnings: {len(cleanup_warnings)}, stderr lines: {len(printed)}; other warnings: "
                          f"{[str(w.message)[:80] for w in caught if str(w.message) not in cleanup_warnings][:3]}")
    for s in seen:
        assert all(v == ("host" if n.startswith("pinned") else "device") for n, v in s["before"].items()), s
        assert not any(v in ("host", "device") for v in s["after"].values()), f"still allocated after close(): {s}"
        assert s["stream_gone"] is not False and s["stream_attr"] is None, f"the stream outlived close(): {s}"
        assert s["ctx_after"] == 0, f"a context was left current on the worker: {s['ctx_after']:#x}"
    assert start - end < 32, f"device memory shrank by {start - end:.0f} MiB over {cycles} reloads: a leak"
    assert not cleanup_warnings and not printed, (cleanup_warnings, printed)

    # Control, reported only: what this pycuda does with a buffer nobody released, dropped on another
    # thread (the situation before the fix); it shows the checks above can see the leak.
    leaked: list[Any] = []

    def allocate() -> None:
        with gpu.active():
            buf = PinnedBuffer(cuda, np.uint8, "control")
            buf.ensure((1 << 20,))
            leaked.append((buf, buf.host.ctypes.data))

    def drop() -> None:
        leaked.clear()
        gc.collect()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_in_threads(allocate)
        ptr = leaked[0][1]
        run_in_threads(drop)
    with gpu.active():
        state = drv.memory_type(ptr)
    gpu_report("release", f"control: a 1 MiB page-locked buffer never released, dropped on another thread: the "
                          f"driver then answers {state!r} for it; pycuda warned {[str(w.message) for w in caught]}, "
                          f"printed {[ln for ln in capfd.readouterr().err.splitlines() if 'PyCUDA' in ln]}")


def test_two_threads_share_the_gpu_each_with_its_own_activation(gpu, primary, store, gpu_photos,
                                                                  gpu_report) -> None:
    from engines.cuda_preprocess import GpuImageToTensor, PreprocessSpec

    spec = PreprocessSpec.from_entry(store.entry("yolo-fastest-1.1-xl"))
    imgs = [gpu_photos["bus.jpg"], gpu_photos["zidane.jpg"]]
    single = GpuImageToTensor(gpu, spec)
    expected = [single.run(i) for i in imgs]
    single.close()
    seen: dict[int, dict[str, Any]] = {}
    both_started = threading.Barrier(2, timeout=60)

    def work(idx: int) -> None:
        state: dict[str, Any] = {"before": drv.current_context(), "inside": set(), "between": set()}
        seen[idx] = state
        k = GpuImageToTensor(gpu, spec)
        state["stream"] = getattr(k.stream, "handle", None)
        both_started.wait()  # the two run at the same time
        for _ in range(50):
            np.testing.assert_array_equal(k.run(imgs[idx]), expected[idx])
            state["between"].add(drv.current_context())  # popped after each run
            with gpu.active():
                state["inside"].add(drv.current_context())
                with gpu.active():  # nested activation: the same context, and the outer one restored
                    state["inside"].add(drv.current_context())
                state["inside"].add(drv.current_context())
        k.close()
        state["after"] = drv.current_context()
        state["pycuda_after"] = gpu.cuda.Context.get_current()

    run_in_threads(lambda: work(0), lambda: work(1))
    for idx, s in sorted(seen.items()):
        gpu_report("two threads", f"thread {idx}: driver's current context before {s['before']:#x}, inside "
                                  f"gpu.active() {sorted(hex(h) for h in s['inside'])}, between runs "
                                  f"{sorted(hex(h) for h in s['between'])}, after close {s['after']:#x}; pycuda "
                                  f"stack after: {s['pycuda_after']}; stream handle "
                                  f"{'n/a' if s['stream'] is None else hex(int(s['stream']))}; 50 runs identical")
    for s in seen.values():
        assert s["before"] == 0 and s["inside"] == {primary} and s["between"] == {0}, s
        assert s["after"] == 0 and s["pycuda_after"] is None, s
    if seen[0]["stream"] is not None:
        assert seen[0]["stream"] != seen[1]["stream"], "the two threads shared one stream"


def test_nvrtc_fallback_compiles_the_kernel_without_nvcc(gpu, store, gpu_photos, gpu_report, monkeypatch,
                                                         caplog) -> None:
    from engines import cuda_compile
    from engines import cuda_preprocess as cp
    from vision_app.detect.preprocess import Preprocessor

    lib = cuda_compile.find_nvrtc()
    if lib is None:
        pytest.skip("no libnvrtc here (CUDA toolkit lib64, the loader's path or an nvidia-*-nvrtc wheel): the "
                    "NVRTC fallback cannot run")
    entry = store.entry("yolox-nano")
    spec, pre = cp.PreprocessSpec.from_entry(entry), Preprocessor.from_entry(entry)
    default_compiler = "nvcc" if shutil.which("nvcc") else "NVRTC"
    k = cp.GpuImageToTensor(gpu, spec)  # the kernel as built by default
    default = {n: k.run(i) for n, i in gpu_photos.items()}
    k.close()
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not os.path.exists(os.path.join(d, "nvcc")))
    monkeypatch.setenv("PATH", path)
    assert shutil.which("nvcc") is None
    monkeypatch.setattr(cp, "_kernels", {})  # compile afresh, for this test only
    monkeypatch.setattr(cp, "_modules", {})
    with caplog.at_level(logging.INFO, logger="engines.cuda_compile"):
        k = cp.GpuImageToTensor(gpu, spec)
    how = [r.getMessage() for r in caplog.records if r.name == "engines.cuda_compile"]
    try:
        got = {n: k.run(i) for n, i in gpu_photos.items()}
    finally:
        k.close()
        with gpu.active():  # unload the NVRTC module now, in the context
            del k
            cp._kernels.clear()
            cp._modules.clear()
    worst = max(float(_levels(g, pre(gpu_photos[n])[0], spec).max()) for n, g in got.items())
    same = all(np.array_equal(got[n], default[n]) for n in got)
    gpu_report("NVRTC", f"{how[-1] if how else 'no compile message'}; yolox-nano on {len(got)} images: max "
                        f"{worst:.3f} uint8 levels from the CPU path; identical to the default ({default_compiler}) "
                        f"kernel: {same}")
    assert any("NVRTC" in m for m in how), how
    assert worst <= 1.0 + 1e-4, worst


def _in_runtime(name: str) -> tuple[int, int | None, Any]:
    """On this (fresh) thread: initialise CUDA through runtime `name` on device 0 and put 0..15 in its
    memory; the context the driver then has current, the pointer, and the object keeping it alive."""
    if name == "torch":
        import torch

        torch.cuda.set_device(0)
        x = torch.from_numpy(np.arange(16, dtype=np.float32)).to("cuda:0")  # a copy, no kernel needed
        torch.cuda.synchronize()
        return drv.current_context(), int(x.data_ptr()), x
    if name == "cupy":
        import cupy

        cupy.cuda.runtime.setDevice(0)
        y = cupy.asarray(np.arange(16, dtype=np.float32))  # a copy: no NVRTC compilation on CuPy's side
        cupy.cuda.runtime.deviceSynchronize()
        return drv.current_context(), int(y.data.ptr), y
    try:
        from cuda.bindings import runtime as rt
    except ImportError:  # cuda-python before 12.6
        from cuda import cudart as rt  # type: ignore[no-redef]
    for call, args in ((rt.cudaSetDevice, (0,)), (rt.cudaFree, (0,))):
        err = call(*args)[0]
        if int(getattr(err, "value", err)) != 0:
            raise RuntimeError(f"{call.__name__}{args} failed: {err}")
    return drv.current_context(), None, None


def test_cuda_runtime_shares_pycudas_primary_context(gpu, primary, gpu_report) -> None:
    """What TensorRT relies on: the CUDA runtime (here PyTorch, CuPy and cuda-python's cudart, each set up
    on a fresh thread) uses the device's primary context, the very one pycuda retains; and memory the
    runtime allocated is read by pycuda in its context."""
    modules = {"torch": "torch", "cupy": "cupy", "cuda-python": "cuda.bindings"}
    present = [n for n, m in modules.items() if importlib.util.find_spec(m.split(".")[0]) is not None]
    if not present:
        pytest.skip("none of torch, cupy, cuda-python is installed: no CUDA runtime to compare with")
    results: dict[str, Any] = {}

    def probe(name: str) -> Callable[[], None]:
        def run() -> None:
            try:
                results[name] = _in_runtime(name)
            except Exception as exc:  # reported below: one runtime that cannot start is not the question
                results[name] = exc
        return run

    for name in present:  # one after the other, each on a thread of its own
        run_in_threads(probe(name), timeout=120)
    checked = {}
    for name in present:
        r = results[name]
        if isinstance(r, Exception):
            gpu_report("runtime", f"{name}: could not initialise CUDA: {type(r).__name__}: {r}")
            continue
        handle, ptr, keep = r
        data = "n/a"
        if ptr is not None:
            host = np.zeros(16, np.float32)
            with gpu.active():
                gpu.cuda.memcpy_dtoh(host, ptr)
            data = "read back by pycuda: 0..15" if np.array_equal(host, np.arange(16)) else f"read back {host}"
        checked[name] = (handle, data)
        gpu_report("runtime", f"{name}: current CUcontext {handle:#x} vs pycuda's primary {primary:#x}: "
                              f"{'SAME' if handle == primary else 'DIFFERENT'}; {data}")
        del keep
    assert checked, f"no CUDA runtime could be initialised: {results}"
    assert all(h == primary for h, _ in checked.values()), checked
    assert all(d in ("n/a", "read back by pycuda: 0..15") for _, d in checked.values()), checked
