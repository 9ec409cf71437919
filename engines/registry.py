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


def available_backends() -> dict[str, str]:
    """name → 'ok' or the reason it cannot be used here (import errors, no GPU)."""
    out: dict[str, str] = {}
    for name in backend_names():
        try:
            cls = _load(name)
            probe = getattr(cls, "probe", None)
            out[name] = probe() if callable(probe) else "ok"
        except EngineError as exc:
            out[name] = str(exc)
    return out


def create_engine(model_path: str | Path, backend: str = "onnxruntime", **options: Any) -> Any:
    """Load model_path with the named backend. Options are passed to the backend class."""
    cls = _load(backend)
    return cls(model_path, **options)


def resolve_backend(requested: str) -> tuple[str, str]:
    """Turn 'auto' into a concrete backend name. Returns (name, reason) — the reason is logged and shown."""
    if requested != "auto":
        _load(requested)  # fail now, with the install hint, if it cannot be used
        return requested, f"backend '{requested}' requested explicitly"
    status = available_backends()
    if status.get("tensorrt") == "ok":
        return "tensorrt", "auto: tensorrt, pycuda and an NVIDIA GPU are usable"
    why = status.get("tensorrt", "not registered")
    return "onnxruntime", f"auto: using onnxruntime (CPU) because TensorRT is not usable: {why}"
