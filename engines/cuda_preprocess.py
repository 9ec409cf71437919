"""GPU preprocessing: a CUDA kernel turns the BGR uint8 frame into the model input (stretch / letterbox /
pad, colour order, scale, mean/std, NCHW float32), written straight into the engine's input buffer, so only
the raw frame crosses the bus.

Semantics are those of vision_app/detect/preprocess.py (the CPU path): the same letterbox geometry
(letterbox_geometry is imported from there), pad value round(pad), and cv2.INTER_LINEAR's own integer
method for uint8 images (11-bit weights from per-column / per-row tables computed on the host exactly as
cv2 computes them, and the rounding of its SIMD code), then `u8 * alpha - beta` per output channel with
alpha = scale/std, beta = mean/std in float32. So the kernel matches cv2 bit for bit on x86-64 and ARM
builds of OpenCV; a build without SIMD rounds the vertical pass exactly, which is at most one level
(1/255 of the range) away.

The per-pixel arithmetic is plain C shared by the CUDA kernel and a CPU build (PIXEL_SOURCE with the
PP_* macros), so the tests can check the very same code with gcc where there is no GPU. The kernel is
compiled with pycuda's SourceModule when nvcc is on PATH, else with NVRTC (libnvrtc, shipped with the
CUDA toolkit and with the nvidia-cuda-nvrtc wheels; engines/cuda_compile.py), once per device, and loaded
with pycuda.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from engines.cuda_compile import compile_module
from vision_app.errors import EngineError

log = logging.getLogger(__name__)

PIXEL_SOURCE = r"""
/* One output pixel (x, y) of the NCHW float32 model input from a BGR uint8 HWC frame.
   xtab/ytab: per resized column/row {first tap, second tap, weight 0, weight 1}; column taps are byte
   offsets (x * 3). Integer maths is cv2's INTER_LINEAR for uint8: 11-bit weights, the horizontal sums
   exact, the vertical pass as its SIMD code does it ((h >> 4) * w >> 16, then (+2) >> 2). */
PP_FN void pp_pixel(const unsigned char* src, int src_pitch, const int* xtab, const int* ytab,
                    float* dst, int dst_w, int dst_h, int off_x, int off_y, int new_w, int new_h,
                    int pad, int swap_rb, float a0, float a1, float a2, float b0, float b1, float b2,
                    int x, int y)
{
    int v[3];
    int rx = x - off_x, ry = y - off_y;
    if (rx < 0 || ry < 0 || rx >= new_w || ry >= new_h) {
        v[0] = v[1] = v[2] = pad;
    } else {
        const int* xt = xtab + 4 * rx;
        const int* yt = ytab + 4 * ry;
        const unsigned char* r0 = src + (long)yt[0] * src_pitch;
        const unsigned char* r1 = src + (long)yt[1] * src_pitch;
        for (int c = 0; c < 3; ++c) {
            int h0 = r0[xt[0] + c] * xt[2] + r0[xt[1] + c] * xt[3];
            int h1 = r1[xt[0] + c] * xt[2] + r1[xt[1] + c] * xt[3];
            int s = ((((h0 >> 4) * yt[2]) >> 16) + (((h1 >> 4) * yt[3]) >> 16) + 2) >> 2;
            v[c] = s < 0 ? 0 : (s > 255 ? 255 : s);
        }
    }
    long plane = (long)dst_w * dst_h, at = (long)y * dst_w + x;
    float a[3] = {a0, a1, a2}, b[3] = {b0, b1, b2};
    for (int k = 0; k < 3; ++k) {
        float u = (float)v[swap_rb ? 2 - k : k];
        dst[k * plane + at] = PP_MUL(u, a[k]) - b[k]; /* two roundings, like numpy's multiply then -= */
    }
}
"""

KERNEL_SOURCE = r"""
#define PP_FN __device__ __forceinline__
#define PP_MUL(u, a) __fmul_rn(u, a)
""" + PIXEL_SOURCE + r"""
extern "C" __global__ void bgr_to_nchw(const unsigned char* __restrict__ src, int src_pitch,
    const int* __restrict__ xtab, const int* __restrict__ ytab, float* __restrict__ dst, int dst_w,
    int dst_h, int off_x, int off_y, int new_w, int new_h, int pad, int swap_rb,
    float a0, float a1, float a2, float b0, float b1, float b2)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    pp_pixel(src, src_pitch, xtab, ytab, dst, dst_w, dst_h, off_x, off_y, new_w, new_h, pad, swap_rb,
             a0, a1, a2, b0, b1, b2, x, y);
}
"""
KERNEL_NAME = "bgr_to_nchw"
ARG_FORMAT = "PiPPPiiiiiiiiffffff"  # pycuda prepared-call types of bgr_to_nchw's parameters
BLOCK = (32, 8, 1)


@dataclass(frozen=True)
class PreprocessSpec:
    """A manifest `preprocess` table resolved: size (w, h) or None (resize "none"), mode, colour, maths."""

    size: tuple[int, int] | None
    resize: str
    anchor: str
    pad: int
    swap_rb: bool
    alpha: tuple[float, float, float]
    beta: tuple[float, float, float]
    multiple_of: int = 1

    @classmethod
    def from_entry(cls, entry: Any) -> "PreprocessSpec":
        """From a ModelEntry, with the same defaults and float32 maths as detect.preprocess.Preprocessor."""
        pp: Mapping[str, Any] = entry.preprocess
        size = entry.input.get("size")
        std = np.asarray(pp.get("std", (1.0, 1.0, 1.0)), np.float64)
        alpha = (float(pp.get("scale", 1.0)) / std).astype(np.float32)
        beta = (np.asarray(pp.get("mean", (0.0, 0.0, 0.0)), np.float64) / std).astype(np.float32)
        return cls(tuple(size) if size else None, pp.get("resize", "stretch"),
                   pp.get("anchor", "center"), int(round(float(pp.get("pad", 114)))),
                   pp.get("color", "rgb") == "rgb", tuple(float(a) for a in alpha),  # type: ignore[arg-type]
                   tuple(float(b) for b in beta), max(1, int(entry.input.get("multiple_of", 1))))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Geometry:
    """Where the frame lands in the model input: dst size, resized size and offset (input pixels)."""

    dst_w: int
    dst_h: int
    new_w: int
    new_h: int
    off_x: int
    off_y: int


def geometry(spec: PreprocessSpec, src_w: int, src_h: int) -> Geometry:
    """The same placement as detect.preprocess.Preprocessor.resize_image."""
    if spec.resize == "stretch":
        dw, dh = spec.size  # type: ignore[misc]
        return Geometry(dw, dh, dw, dh, 0, 0)
    if spec.resize == "letterbox":
        from vision_app.detect.preprocess import letterbox_geometry

        dw, dh = spec.size  # type: ignore[misc]
        nw, nh, px, py = letterbox_geometry(src_w, src_h, dw, dh, spec.anchor)
        return Geometry(dw, dh, nw, nh, px, py)
    m = spec.multiple_of
    return Geometry(-(-src_w // m) * m, -(-src_h // m) * m, src_w, src_h, 0, 0)


def axis_table(src: int, dst: int, step: int = 1) -> np.ndarray:
    """(dst, 4) int32 {tap 0, tap 1, weight 0, weight 1} per output index, as cv2.resize INTER_LINEAR
    computes them for uint8: source coordinate (d + 0.5) * src/dst - 0.5 in double, cast to float,
    clamped at both borders, weights rounded to 1/2048. Taps are multiplied by `step` (3: byte offsets)."""
    d = np.arange(dst, dtype=np.float64)
    f = ((d + 0.5) * (src / dst) - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    f = (f - i0.astype(np.float32)).astype(np.float32)
    low, high = i0 < 0, i0 >= src - 1
    f[low | high] = 0.0
    i0 = np.clip(i0, 0, src - 1)
    i1 = np.minimum(i0 + 1, src - 1)
    w1 = np.rint(f * np.float32(2048)).astype(np.int64)
    w0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int64)
    return np.ascontiguousarray(np.stack([i0 * step, i1 * step, w0, w1], axis=1).astype(np.int32))


def tables(g: Geometry, src_w: int, src_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Column and row tables of the resized region (see axis_table)."""
    return axis_table(src_w, g.new_w, 3), axis_table(src_h, g.new_h)


def kernel_args(spec: PreprocessSpec, g: Geometry) -> list[Any]:
    """Scalar arguments after the dst pointer, in bgr_to_nchw's order."""
    return [np.int32(g.dst_w), np.int32(g.dst_h), np.int32(g.off_x), np.int32(g.off_y), np.int32(g.new_w),
            np.int32(g.new_h), np.int32(spec.pad), np.int32(1 if spec.swap_rb else 0),
            *(np.float32(a) for a in spec.alpha), *(np.float32(b) for b in spec.beta)]


# ---- compilation (engines/cuda_compile.py) and the per-device kernel ------------------------------

_kernels: dict[int, Any] = {}
_modules: dict[int, Any] = {}
_kernel_lock = threading.Lock()


def load_kernel(gpu: Any) -> Any:
    """The prepared bgr_to_nchw function for `gpu` (an engines.cuda_context.GpuContext); compiled once
    per device, also when several workers build their preprocessors at the same moment (the others
    wait for the first one's compilation). Call with the context current."""
    fn = _kernels.get(gpu.device)
    if fn is not None:
        return fn
    with _kernel_lock:
        fn = _kernels.get(gpu.device)
        if fn is None:
            module = compile_module(gpu, KERNEL_SOURCE, "preprocessing kernel")
            fn = module.get_function(KERNEL_NAME)
            fn.prepare(ARG_FORMAT)
            _modules[gpu.device] = module  # a function is only valid while its module is loaded
            _kernels[gpu.device] = fn
    return fn


class _Tables:
    """The device copies of the resize tables for the current frame size (re-uploaded on a change)."""

    def __init__(self, cuda: Any) -> None:
        self.cuda = cuda
        self.key: tuple[Any, ...] | None = None
        self.x: Any = None
        self.y: Any = None

    def get(self, g: Geometry, src_w: int, src_h: int) -> tuple[int, int]:
        key = (g, src_w, src_h)
        if key != self.key:
            self.free()
            xt, yt = tables(g, src_w, src_h)
            self.x, self.y = self.cuda.to_device(xt), self.cuda.to_device(yt)
            self.key = key
        return int(self.x), int(self.y)

    def free(self) -> None:
        for buf in (self.x, self.y):
            if buf is not None:
                buf.free()
        self.x = self.y = self.key = None


def launch(fn: Any, stream: Any, src_ptr: int, tabs: tuple[int, int], dst_ptr: int, spec: PreprocessSpec,
           g: Geometry, src_pitch: int) -> None:
    grid = ((g.dst_w + BLOCK[0] - 1) // BLOCK[0], (g.dst_h + BLOCK[1] - 1) // BLOCK[1], 1)
    fn.prepared_async_call(grid, BLOCK, stream, np.intp(src_ptr), np.int32(src_pitch), np.intp(tabs[0]),
                           np.intp(tabs[1]), np.intp(dst_ptr), *kernel_args(spec, g))

def _check_frame(frame: np.ndarray) -> tuple[int, int]:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise EngineError(f"GPU preprocessing expects a BGR uint8 (H, W, 3) frame, got "
                          f"{getattr(frame, 'dtype', type(frame).__name__)} {tuple(getattr(frame, 'shape', ()))}")
    return frame.shape[1], frame.shape[0]


class GpuImageToTensor:
    """The kernel with its own frame/input buffers and stream: BGR uint8 (H, W, 3) frame -> (1, 3, h, w)
    float32 host array. For tests and benchmarks; the pipeline uses GpuPreprocessor (no copy back)."""

    def __init__(self, gpu: Any, spec: PreprocessSpec) -> None:
        from engines.cuda_context import PinnedBuffer

        self.gpu = gpu
        self.spec = spec
        with gpu.active():
            self._fn = load_kernel(gpu)
            self.stream = gpu.cuda.Stream()
            self._frame = PinnedBuffer(gpu.cuda, np.uint8, "frame")
            self._out = PinnedBuffer(gpu.cuda, np.float32, "input")
            self._tables = _Tables(gpu.cuda)

    def run(self, frame: np.ndarray, copy_back: bool = True) -> np.ndarray | None:
        """The model input for `frame` as a new host array; with copy_back=False the input stays on the
        device (what the TensorRT pipeline pays for) and None is returned."""
        w, h = _check_frame(frame)
        g = geometry(self.spec, w, h)
        with self.gpu.active():
            self._frame.ensure(frame.shape)
            self._out.ensure((1, 3, g.dst_h, g.dst_w))
            np.copyto(self._frame.host, frame)
            self._frame.to_device(self.stream)
            launch(self._fn, self.stream, self._frame.ptr, self._tables.get(g, w, h), self._out.ptr, self.spec, g,
                   w * 3)
            if copy_back:
                self._out.to_host(self.stream)
            self.stream.synchronize()
        return self._out.host.copy() if copy_back else None

    def close(self) -> None:
        """Release the stream (after it has finished), the pinned and device buffers and the tables now,
        inside the context; idempotent."""
        from engines.cuda_context import release_stream

        with self.gpu.active():
            release_stream(self)
            self._frame.free()
            self._out.free()
            self._tables.free()


class GpuPreprocessor:
    """Frame -> model input on the GPU, written into a TensorRT engine's input buffer, then inference.

    One per engine (i.e. per worker thread). `__call__(frame)` returns (outputs, BoxMap) exactly like
    running detect.preprocess.Preprocessor on the CPU and engine.infer() on its blob.
    """

    def __init__(self, engine: Any, entry: Any, input_name: str | None = None) -> None:
        from engines.cuda_context import PinnedBuffer

        self.engine = engine
        self.spec = PreprocessSpec.from_entry(entry)
        self.input_name = input_name or entry.input.get("name") or next(iter(engine.inputs))
        spec = engine.inputs.get(self.input_name)
        if spec is None or np.dtype(spec.dtype) != np.float32:
            raise EngineError(f"{engine.name}: GPU preprocessing needs a float32 input named "
                              f"'{self.input_name}', the engine has {[s.describe() for s in engine.inputs.values()]}")
        gpu = engine.gpu
        with gpu.active():
            self._fn = load_kernel(gpu)
            self._frame = PinnedBuffer(gpu.cuda, np.uint8, "frame")
            self._tables = _Tables(gpu.cuda)

    def __call__(self, frame: np.ndarray) -> tuple[dict[str, np.ndarray], Any]:
        from vision_app.detect.preprocess import BoxMap

        w, h = _check_frame(frame)
        g = geometry(self.spec, w, h)
        gpu = self.engine.gpu
        with gpu.active():
            dst = self.engine.prepare_input(self.input_name, (1, 3, g.dst_h, g.dst_w))
            self._frame.ensure(frame.shape)
            np.copyto(self._frame.host, frame)
            self._frame.to_device(self.engine.stream)
            launch(self._fn, self.engine.stream, self._frame.ptr, self._tables.get(g, w, h), dst, self.spec, g,
                   w * 3)
            outputs = self.engine.run_prepared()
        return outputs, BoxMap(g.new_w / w, g.new_h / h, float(g.off_x), float(g.off_y), w, h)

    def close(self) -> None:
        """Release the frame buffer and the tables now, inside the context (the stream is the engine's,
        released by its close()); idempotent."""
        gpu = self.engine.gpu
        with gpu.active():
            stream = self.engine.stream
            if stream is not None:  # the last kernel may still read the frame buffer
                stream.synchronize()
            self._frame.free()
            self._tables.free()
