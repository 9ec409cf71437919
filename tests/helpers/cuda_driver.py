"""What the CUDA driver itself says, asked through ctypes (libcuda.so.1), not through pycuda's bookkeeping:
the context current on this thread, and whether an address is memory the driver still knows. For the GPU
tests.
"""
from __future__ import annotations

import ctypes

CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2
MEMORY_TYPES = {1: "host", 2: "device", 3: "array", 4: "unified"}

_lib: ctypes.CDLL | None = None


def libcuda() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libcuda.so.1")
        lib.cuCtxGetCurrent.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.cuCtxGetCurrent.restype = ctypes.c_int
        lib.cuPointerGetAttribute.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
        lib.cuPointerGetAttribute.restype = ctypes.c_int
        lib.cuGetErrorName.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        lib.cuGetErrorName.restype = ctypes.c_int
        _lib = lib
    return _lib


def error_name(code: int) -> str:
    name = ctypes.c_char_p()
    if libcuda().cuGetErrorName(code, ctypes.byref(name)) != 0 or not name.value:
        return f"CUresult {code}"
    return name.value.decode()


def current_context() -> int:
    """The CUcontext current on this thread per the driver (cuCtxGetCurrent); 0 when none."""
    ctx = ctypes.c_void_p()
    rc = libcuda().cuCtxGetCurrent(ctypes.byref(ctx))
    if rc != 0:
        raise RuntimeError(f"cuCtxGetCurrent failed: {error_name(rc)}")
    return int(ctx.value or 0)


def memory_type(ptr: int) -> str:
    """'host' (page-locked), 'device', ... for memory the driver knows; else the driver's error name
    (CUDA_ERROR_INVALID_VALUE once it has been freed)."""
    value = ctypes.c_uint(0)
    rc = libcuda().cuPointerGetAttribute(ctypes.byref(value), CU_POINTER_ATTRIBUTE_MEMORY_TYPE, ptr)
    if rc != 0:
        return error_name(rc)
    return MEMORY_TYPES.get(value.value, f"memory type {value.value}")
