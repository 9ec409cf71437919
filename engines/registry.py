"""Backend registry: name → engine class, imported lazily.

tensorrt/pycuda are imported only when the tensorrt backend is asked for, so a machine without them
never notices them; asking for it there gives a clear EngineError.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Callable

from vision_app.errors import EngineError

log = logging.getLogger(__name__)

# name → (module, factory function, pip extra that provides it)
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("engines.onnxruntime", "OnnxRuntimeEngine", "onnxruntime"),
    "tensorrt": ("engines.tensorrt", "TensorRTEngine", "vision-app[tensorrt] (tensorrt, pycuda)"),
    "triton": ("engines.triton", "TritonEngine", "vision-app[triton] (tritonclient)"),
}


def register_backend(name: str, module: str, attr: str, provides: str) -> None:
    """Add a backend (module path and class name), imported only when first used."""
    _BACKENDS[name] = (module, attr, provides)


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def _load(name: str) -> Callable[..., Any]:
    if name not in _BACKENDS:
        raise EngineError(f"unknown engine backend '{name}'; choose one of {', '.join(backend_names())}")
    module, attr, provides = _BACKENDS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise EngineError(f"backend '{name}' is not usable here: {exc}. Install {provides}, "
                          f"or choose --backend onnxruntime") from exc
    return getattr(mod, attr)


def probe(name: str) -> str:
    """'ok' or why backend `name` cannot run here (missing package, no GPU, ...). Never raises."""
    try:
        cls = _load(name)
        check = getattr(cls, "probe", None)
        return str(check()) if callable(check) else "ok"
    except EngineError as exc:
        return str(exc)


def available_backends() -> dict[str, str]:
    """name → 'ok' or the reason it cannot be used here (import errors, no GPU)."""
    return {name: probe(name) for name in backend_names()}


def create_engine(model_path: str | Path | None, backend: str = "onnxruntime", **options: Any) -> Any:
    """Load model_path with the named backend. Options are passed to the backend class."""
    cls = _load(backend)
    return cls(model_path, **options)


def resolve_backend(requested: str) -> tuple[str, str]:
    """Turn 'auto' into a concrete backend name. Returns (name, reason): the reason is logged and shown
    in the GUI status bar. An explicitly requested backend that cannot run here is an EngineError (never
    a silent fallback); 'auto' takes TensorRT only when tensorrt, pycuda and a GPU are all usable."""
    if requested != "auto":
        status = probe(requested)
        if status != "ok":
            raise EngineError(f"backend '{requested}' was asked for but cannot run here: {status}. "
                              f"Use --backend auto (picks what works) or --backend onnxruntime")
        return requested, f"backend '{requested}' requested explicitly" + _detail(requested)
    trt_status = probe("tensorrt") if "tensorrt" in _BACKENDS else "not registered"
    if trt_status == "ok":
        return "tensorrt", "auto: TensorRT, because tensorrt, pycuda and an NVIDIA GPU are usable" + _detail("tensorrt")
    return "onnxruntime", f"auto: ONNX Runtime, because TensorRT is not usable here: {trt_status}"


def _detail(name: str) -> str:
    """' (TensorRT 10.x on NVIDIA ...)' for backends that can say where they run; '' otherwise."""
    env = getattr(_load(name), "environment", None)
    if not callable(env):
        return ""
    try:
        return f" ({env()})"
    except EngineError as exc:
        return f" ({exc})"
