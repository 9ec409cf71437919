"""Compiling CUDA C at run time: with nvcc through pycuda's SourceModule when nvcc is on PATH, else with
NVRTC (libnvrtc from the CUDA toolkit or an nvidia-*-nvrtc wheel, called through ctypes; no toolkit
binaries needed) to PTX that the driver loads. pycuda is imported inside the functions only.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import shutil
import sys
import time
from typing import Any

from vision_app.errors import EngineError

log = logging.getLogger(__name__)


def find_nvrtc() -> str | None:
    """Path of libnvrtc: the CUDA toolkit, the dynamic loader's path, or an nvidia-*-nvrtc wheel."""
    candidates = []
    for root in filter(None, [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]):
        candidates += sorted(glob.glob(os.path.join(root, "lib64", "libnvrtc.so*")))
    for site in sys.path:
        candidates += sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib", "libnvrtc.so*")))
        candidates += sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "lib", "libnvrtc.so*")))
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    real = [c for c in candidates if "builtins" not in os.path.basename(c) and "alt" not in os.path.basename(c)]
    return real[0] if real else None


def nvrtc_ptx(source: str, arch: str, lib: str | None = None) -> bytes:
    """Compile CUDA C source to PTX with NVRTC (no GPU needed). arch: 'compute_90'."""
    path = lib or find_nvrtc()
    if not path:
        raise EngineError("neither nvcc nor libnvrtc was found, so the CUDA kernels cannot be compiled; "
                          "install the CUDA toolkit or 'pip install nvidia-cuda-nvrtc'")
    nv = _load_nvrtc(path)
    prog = ctypes.c_void_p()
    _nvrtc_check(nv, nv.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kernel.cu", 0, None, None),
                 "create")
    try:
        opts = [f"--gpu-architecture={arch}".encode()]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = nv.nvrtcCompileProgram(prog, len(opts), arr)
        if rc != 0:
            size = ctypes.c_size_t()
            nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            nv.nvrtcGetProgramLog(prog, buf)
            raise EngineError(f"NVRTC ({path}, {arch}) could not compile the kernel: "
                              f"{buf.value.decode(errors='replace')}")
        size = ctypes.c_size_t()
        _nvrtc_check(nv, nv.nvrtcGetPTXSize(prog, ctypes.byref(size)), "ptx size")
        buf = ctypes.create_string_buffer(size.value)
        _nvrtc_check(nv, nv.nvrtcGetPTX(prog, buf), "ptx")
        return buf.raw
    finally:
        nv.nvrtcDestroyProgram(ctypes.byref(prog))


def _load_nvrtc(path: str) -> ctypes.CDLL:
    """libnvrtc at `path`, with its libnvrtc-builtins from the same folder loaded first: libnvrtc looks for
    builtins by name through the dynamic loader, which does not search libnvrtc's own folder (an
    nvidia-*-nvrtc wheel or a toolkit outside ld.so.conf); already loaded, the library is found by name."""
    folder = os.path.dirname(path)
    for builtins in sorted(glob.glob(os.path.join(folder, "libnvrtc-builtins.so*"))):
        if ".alt." in os.path.basename(builtins):
            continue
        try:
            ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
            break
        except OSError as exc:
            log.debug("could not preload %s: %s", builtins, exc)
    return ctypes.CDLL(path)


def _nvrtc_check(nv: Any, rc: int, what: str) -> None:
    if rc != 0:
        nv.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise EngineError(f"NVRTC {what} failed: {nv.nvrtcGetErrorString(rc).decode()}")


def compile_module(gpu: Any, source: str, what: str = "kernel") -> Any:
    """Compile CUDA C `source` and load it into the current context (a pycuda Module): with nvcc (pycuda's
    SourceModule) when nvcc is on PATH, else with NVRTC to PTX that the driver loads. `gpu`: an
    engines.cuda_context.GpuContext; call with its context current. EngineError saying why on failure."""
    cuda = gpu.cuda
    t0 = time.perf_counter()
    try:
        nvcc = shutil.which("nvcc")
        if nvcc:
            from pycuda.compiler import SourceModule

            module = SourceModule(source, no_extern_c=True, options=["-O3"])
            how = f"nvcc ({nvcc})"
        else:
            arch = "compute_" + gpu.info.compute_capability.replace(".", "")
            lib = find_nvrtc()
            module = cuda.module_from_buffer(nvrtc_ptx(source, arch, lib))
            how = f"NVRTC ({lib}, {arch}; no nvcc on PATH)"
    except EngineError:
        raise
    except (cuda.Error, OSError) as exc:
        raise EngineError(f"the {what} could not be built or loaded: {exc}") from exc
    except Exception as exc:  # pycuda.driver.CompileError is not a cuda.Error
        raise EngineError(f"the {what} could not be compiled: {exc}") from exc
    log.info("%s for CUDA device %d compiled with %s in %.2f s", what, gpu.device, how,
             time.perf_counter() - t0)
    return module
