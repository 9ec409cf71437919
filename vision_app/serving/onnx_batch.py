"""A dynamic batch dimension for ONNX models exported with a fixed batch of 1, where the graph allows it.

Triton's dynamic batcher can only join requests for a model whose first dimension is variable. Many of
the model pack's files say 1 there although their graphs run on any batch (convolutions, pooling,
resizes of the spatial dims); others reshape to a fixed [1, ...] inside and cannot. Which is which is not
guessed: the first dimension of every input and output is made symbolic, and the model is run on a batch
of two random inputs and on each of them alone; only when the graph runs and the batched outputs equal the
single ones is the relaxed model used.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vision_app.errors import ModelError

log = logging.getLogger(__name__)

BATCH_DIM = "batch"
_ONNX_TYPES = {1: np.float32, 10: np.float16, 11: np.float64, 2: np.uint8, 3: np.int8, 6: np.int32,
               7: np.int64, 9: np.bool_}


@dataclass(frozen=True)
class GraphTensor:
    """One graph input or output: name, numpy dtype, dims (None = dynamic)."""

    name: str
    dtype: np.dtype
    dims: tuple[int | None, ...]


def load_onnx(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError / OSError / ValueError depending on the damage
        raise ModelError(f"{path} is not a readable ONNX model: {exc}; replace it with the original") from exc


def _dims(value_info: Any) -> tuple[int | None, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in value_info.type.tensor_type.shape.dim)


def graph_io(model: Any) -> tuple[list[GraphTensor], list[GraphTensor]]:
    """(inputs, outputs) of an onnx.ModelProto, initializers excluded."""
    inits = {i.name for i in model.graph.initializer}

    def tensor(v: Any) -> GraphTensor:
        elem = v.type.tensor_type.elem_type
        if elem not in _ONNX_TYPES:
            raise ModelError(f"ONNX tensor '{v.name}' has element type {elem}, which vision-app cannot serve "
                             f"(expected float, float16, double, (u)int8, int32, int64 or bool)")
        return GraphTensor(v.name, np.dtype(_ONNX_TYPES[elem]), _dims(v))

    return ([tensor(v) for v in model.graph.input if v.name not in inits],
            [tensor(v) for v in model.graph.output])


def batch_kind(model: Any) -> str:
    """'dynamic' (every input and output already starts with a variable dim), 'one' (every one starts with
    a fixed 1) or 'none' (anything else: scalars, mixed first dims)."""
    inputs, outputs = graph_io(model)
    firsts = [t.dims[0] if t.dims else 0 for t in inputs + outputs]
    if all(f is None for f in firsts):
        return "dynamic"
    if all(f == 1 for f in firsts):
        return "one"
    return "none"


def _session(model: Any) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # a graph that cannot batch fails loudly inside ORT: that is the answer
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def relax_batch(model: Any, probe_hw: int = 64, tol: float = 1e-4) -> Any | None:
    """A copy of `model` (first dim 1 everywhere) with a symbolic batch dim, or None when the graph does not
    give the same outputs for a batch of two as for each item alone. probe_hw: size for dynamic dims."""
    import onnx

    relaxed = onnx.ModelProto()
    relaxed.CopyFrom(model)
    inits = {i.name for i in relaxed.graph.initializer}
    for v in [*[i for i in relaxed.graph.input if i.name not in inits], *relaxed.graph.output]:
        first = v.type.tensor_type.shape.dim[0]
        first.ClearField("dim_value")
        first.dim_param = BATCH_DIM
    del relaxed.graph.value_info[:]  # inferred intermediate shapes still say 1
    inputs, _ = graph_io(model)
    rng = np.random.default_rng(0)
    feed = {t.name: (rng.random((2, *[d or probe_hw for d in t.dims[1:]])) * 255).astype(t.dtype) for t in inputs}
    try:
        batched = _session(relaxed).run(None, feed)
        single = _session(model)
        for b in range(2):
            for one, both in zip(single.run(None, {k: v[b:b + 1] for k, v in feed.items()}), batched):
                part = both[b:b + 1]
                if one.shape != part.shape or not np.allclose(one, part, rtol=tol, atol=tol, equal_nan=True):
                    return None
    except Exception as exc:  # ORT's own error types: the graph fixes its batch internally
        log.debug("batch probe failed: %s", exc)
        return None
    return relaxed
