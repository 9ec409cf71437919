"""Hostile model outputs for the decoder fuzz tests: hypothesis strategies for tensors of the right, empty or
wrong shape filled with NaN, inf, huge and ordinary values, a fake engine that returns them, and a hang guard.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from hypothesis import strategies as st

from engines.base import TensorSpec

SPECIALS = (np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e30, -1e30, 6e4, -6e4, 1e-40, 0.0, -0.0, 88.0, -88.0)
SCALES = (0.0, 1.0, 4.0, 50.0, 1e4, 1e20, 3e38)


@st.composite
def shapes_like(draw: st.DrawFn, expected: tuple[int, ...]) -> tuple[int, ...]:
    """The expected shape half of the time, else: a zero dimension, one dimension off by one, an axis
    dropped or added, or any small shape at all."""
    mode = draw(st.sampled_from(["right"] * 4 + ["empty", "off", "ndim", "any"]))
    dims = list(expected)
    if mode == "right" or not dims:
        return tuple(dims) if mode == "right" else tuple(draw(st.lists(st.integers(0, 6), max_size=4)))
    i = draw(st.integers(0, len(dims) - 1))
    if mode == "empty":
        dims[i] = 0
    elif mode == "off":
        dims[i] = max(0, dims[i] + draw(st.sampled_from([-1, 1])))
    elif mode == "ndim":
        if draw(st.booleans()) and len(dims) > 1:
            del dims[i]
        else:
            dims.insert(i, draw(st.sampled_from([1, 2])))
    else:
        return tuple(draw(st.lists(st.integers(0, 6), max_size=5)))
    return tuple(dims)


@st.composite
def tensors(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
    """A float tensor of `shape`: random normals times a scale (0 .. 3e38), some share of its entries
    (none, a few, a third, all) replaced by NaN / ±inf / huge / denormal values; float32 mostly, sometimes
    float64 or float16 (a TensorRT FP16 engine overflows to inf)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    dtype = draw(st.sampled_from([np.float32] * 6 + [np.float64, np.float16]))
    with np.errstate(over="ignore", invalid="ignore"):
        arr = np.asarray(rng.standard_normal(shape) * draw(st.sampled_from(SCALES))).astype(dtype)
        share = draw(st.sampled_from([0.0, 0.0, 0.02, 0.3, 1.0]))
        if share and arr.size:
            picks = np.array(draw(st.lists(st.sampled_from(SPECIALS), min_size=1, max_size=3)))
            where = rng.random(shape) < share
            arr[where] = rng.choice(picks, size=int(where.sum())).astype(dtype)
    return arr


def outputs_for(expected: Mapping[str, tuple[int, ...]], drop: bool = False,
                fuzz_shapes: bool = True) -> st.SearchStrategy:
    """A dict name -> tensor for these expected shapes (each shape fuzzed on its own unless fuzz_shapes
    is False); drop=True also leaves an output out now and then (a replaced model with other output names)."""
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, np.ndarray]:
        out = {name: draw(tensors(draw(shapes_like(shape)) if fuzz_shapes else tuple(shape)))
               for name, shape in expected.items()}
        if drop and out and draw(st.integers(0, 9)) == 0:
            del out[draw(st.sampled_from(sorted(out)))]
        return out
    return build()


def probability_rows(n: int, k: int = 3) -> st.SearchStrategy:
    """(n, k) float32 rows that are proper softmax outputs (what a healthy classifier gives)."""
    return st.integers(0, 2 ** 32 - 1).map(
        lambda seed: np.random.default_rng(seed).dirichlet(np.ones(k), size=n).astype(np.float32))


class FakeEngine:
    """An Engine (engines.base protocol) whose infer() returns whatever the test set in `.next`
    (a dict of outputs, or a callable feed -> outputs)."""

    def __init__(self, name: str, inputs: Mapping[str, tuple[int | None, ...]],
                 outputs: Mapping[str, tuple[int | None, ...]]) -> None:
        self.name = name
        self.backend = "fake"
        self.inputs = {n: TensorSpec(n, tuple(s), np.dtype(np.float32)) for n, s in inputs.items()}
        self.outputs = {n: TensorSpec(n, tuple(s), np.dtype(np.float32)) for n, s in outputs.items()}
        self.next: dict[str, np.ndarray] | Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]] = {}

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(self.next(feed) if callable(self.next) else self.next)

    def close(self) -> None:
        pass


class Hang(Exception):
    pass


@contextmanager
def no_hang(seconds: float = 10.0) -> Iterator[None]:
    """Raise Hang if the block runs longer than `seconds` (SIGALRM; main thread only). Generous on
    purpose: it catches endless loops, not slowness on a loaded machine."""
    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds} s: hang")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
