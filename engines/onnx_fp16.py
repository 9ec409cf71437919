"""FP32 -> FP16 ONNX conversion, for TensorRT 11's strongly typed builds.

TensorRT 11 removed BuilderFlag.FP16: a network's precision follows the ONNX tensor types, so an FP16
engine needs an FP16 ONNX. This converts float32 weights, constants and computations to float16 while the
graph's inputs and outputs stay float32 (a Cast after each input and before each output), so the feed and
the decoders are the same for both precisions. Operator inputs that the ONNX spec requires to be float32
whatever the data type (Resize's roi and scales, Upsample's scales) stay float32. Only `onnx` is needed.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vision_app.errors import EngineError

log = logging.getLogger(__name__)

# (op_type, input index) that must stay float32 regardless of the computation type
FLOAT32_SLOTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
_FP16_MAX = float(np.finfo(np.float16).max)


def _to_fp16(arr: np.ndarray) -> np.ndarray:
    clipped = np.clip(arr, -_FP16_MAX, _FP16_MAX)  # out-of-range weights saturate instead of becoming inf
    return clipped.astype(np.float16)


def convert_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of `model` with float32 graph inputs/outputs. Raises EngineError on subgraphs
    (If/Loop), which this converter does not handle."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if any(a.type == onnx.AttributeProto.GRAPH or a.type == onnx.AttributeProto.GRAPHS
           for n in g.node for a in n.attribute):
        raise EngineError(f"{g.name or 'model'}: FP16 conversion does not handle control-flow subgraphs; "
                          f"use precision fp32 or convert the model with NVIDIA ModelOpt AutoCast")
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for n in g.node:
        for i, name in enumerate(n.input):
            if name:
                consumers[name].append((n, i))

    def fp32_slot(node: onnx.NodeProto, idx: int) -> bool:
        return (node.op_type, idx) in FLOAT32_SLOTS

    # 1. initializers: float32 -> float16, except those read only by float32 slots
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        uses = consumers.get(init.name, [])
        if uses and all(fp32_slot(n, i) for n, i in uses):
            continue
        if any(fp32_slot(n, i) for n, i in uses):  # read by both kinds: give the float32 slots a copy
            copy = numpy_helper.from_array(numpy_helper.to_array(init), init.name + "__fp32")
            g.initializer.append(copy)
            for n, i in uses:
                if fp32_slot(n, i):
                    n.input[i] = copy.name
        init.CopyFrom(numpy_helper.from_array(_to_fp16(numpy_helper.to_array(init)), init.name))

    new_nodes: list[onnx.NodeProto] = []
    # 2. graph inputs stay float32: cast them once, consumers read the float16 copy
    for inp in g.input:
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT or inp.name not in consumers:
            continue
        cast_out = inp.name + "__fp16"
        new_nodes.append(helper.make_node("Cast", [inp.name], [cast_out], to=TensorProto.FLOAT16,
                                          name=inp.name + "__cast_in"))
        for n, i in consumers[inp.name]:
            if not fp32_slot(n, i):
                n.input[i] = cast_out

    for n in g.node:
        # 3. float constants and casts to float now produce float16
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    outs = consumers.get(n.output[0], [])
                    if not (outs and all(fp32_slot(c, i) for c, i in outs)):
                        a.t.CopyFrom(numpy_helper.from_array(_to_fp16(numpy_helper.to_array(a.t)), a.t.name))
        elif n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
        # 4. a computed (now float16) tensor entering a float32 slot gets a cast back to float32
        for i, name in enumerate(n.input):
            if name and fp32_slot(n, i) and not _is_fp32_source(g, name):
                cast_out = f"{name}__fp32_for_{n.name or n.op_type}_{i}"
                new_nodes.append(helper.make_node("Cast", [name], [cast_out], to=TensorProto.FLOAT,
                                                  name=cast_out + "__cast"))
                n.input[i] = cast_out
        new_nodes.append(n)

    # 5. graph outputs stay float32: the producer writes a float16 tensor that is cast back
    for out in g.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        internal = out.name + "__fp16"
        for n in new_nodes:
            for i, name in enumerate(n.output):
                if name == out.name:
                    n.output[i] = internal
            for i, name in enumerate(n.input):
                if name == out.name:
                    n.input[i] = internal
        new_nodes.append(helper.make_node("Cast", [internal], [out.name], to=TensorProto.FLOAT,
                                          name=out.name + "__cast_out"))

    del g.node[:]
    g.node.extend(_topological(new_nodes, {i.name for i in g.input} | {i.name for i in g.initializer}))
    del g.value_info[:]  # stale float32 annotations; TensorRT and ORT infer the types
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as exc:
        raise EngineError(f"FP16 conversion produced an invalid model: {exc}; use precision fp32") from exc
    return m


def _is_fp32_source(g: onnx.GraphProto, name: str) -> bool:
    """True when `name` is an initializer or graph input that is (still) float32."""
    for init in g.initializer:
        if init.name == name:
            return init.data_type == TensorProto.FLOAT
    for inp in g.input:
        if inp.name == name:
            return inp.type.tensor_type.elem_type == TensorProto.FLOAT
    return False


def _topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """Nodes ordered so every input is produced before use (inserted casts land in place)."""
    have = set(available) | {""}
    pending = list(nodes)
    ordered: list[onnx.NodeProto] = []
    while pending:
        progressed = False
        rest = []
        for n in pending:
            if all(i in have for i in n.input):
                ordered.append(n)
                have.update(n.output)
                progressed = True
            else:
                rest.append(n)
        if not progressed:
            missing = sorted({i for n in rest for i in n.input if i not in have})[:5]
            raise EngineError(f"FP16 conversion: graph has inputs nobody produces: {missing}")
        pending = rest
    return ordered


def convert_file(src: str | Path, dst: str | Path) -> Path:
    """Read an FP32 ONNX file, write its FP16 version (float32 I/O) to dst; returns dst."""
    model = onnx.load(str(src))
    out = convert_model(model)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(out, str(dst))
    log.info("converted %s to FP16 (float32 inputs/outputs kept) at %s", Path(src).name, dst)
    return dst
