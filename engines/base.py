"""Engine protocol: tensors in, tensors out (Polygraphy's runner is the model).

Engines know tensors, not tasks: decoding, NMS and un-letterboxing live in vision_app.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from vision_app.errors import EngineError


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Name, shape (None for a dynamic dimension) and numpy dtype of one model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def shape_text(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def describe(self) -> str:
        return f"{self.name}{self.shape_text()} {np.dtype(self.dtype).name}"

    def check(self, arr: np.ndarray, model: str) -> None:
        """Raise EngineError unless arr matches this spec (dynamic dims match anything)."""
        if not isinstance(arr, np.ndarray):
            raise EngineError(f"{model}: input '{self.name}' must be a numpy array, got {type(arr).__name__}")
        if arr.dtype != self.dtype:
            raise EngineError(f"{model}: input '{self.name}' expected dtype {np.dtype(self.dtype).name}, "
                              f"got {arr.dtype.name}; convert the feed with .astype()")
        if arr.ndim != len(self.shape) or any(e is not None and e != g for e, g in zip(self.shape, arr.shape)):
            raise EngineError(f"{model}: input '{self.name}' expected shape {self.shape_text()}, "
                              f"got {list(arr.shape)}")


@runtime_checkable
class Engine(Protocol):
    """One loaded model. One instance per worker thread; clone() gives a sibling for another thread."""

    name: str
    backend: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def clone(self) -> "Engine": ...

    def close(self) -> None: ...

    def __enter__(self) -> "Engine": ...

    def __exit__(self, *exc: Any) -> None: ...

    def describe(self) -> str: ...


class EngineBase:
    """Shared helpers for backends: feed validation, context manager, description."""

    name: str = "?"
    backend: str = "?"
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]

    def check_feed(self, feed: Mapping[str, np.ndarray]) -> None:
        missing = [n for n in self.inputs if n not in feed]
        extra = [n for n in feed if n not in self.inputs]
        if missing or extra:
            exp = ", ".join(s.describe() for s in self.inputs.values())
            raise EngineError(f"{self.name}: feed has inputs {sorted(feed)}, model expects {exp}"
                              + (f"; missing {missing}" if missing else "")
                              + (f"; unknown {extra}" if extra else ""))
        for n, spec in self.inputs.items():
            spec.check(feed[n], self.name)

    def __enter__(self) -> "EngineBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def describe(self) -> str:
        ins = ", ".join(s.describe() for s in self.inputs.values())
        outs = ", ".join(s.describe() for s in self.outputs.values())
        return f"{self.name} on {self.backend}: in {ins}; out {outs}"
