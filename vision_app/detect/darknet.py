"""Darknet ``.cfg`` + ``.weights`` → ONNX (opset 13), because OpenCV 5 no longer reads darknet.

Layers: convolutional (batch-norm folded into the weights and bias, grouped, activations linear /
leaky / relu / logistic / swish / mish / tanh), maxpool (darknet's asymmetric padding), route (with
``groups``/``group_id`` channel slicing as in YOLOv4-tiny), shortcut, upsample, dropout (identity)
and yolo (heads become raw graph outputs). Tensor names follow the reference conversion of
Yolo-Fastest: the input is ``input`` (1×C×H×W float32, RGB in [0, 1]); layer N's output is ``lN``
and each head is the output ``lN`` of the layer feeding its ``[yolo]`` section.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from vision_app.detect.darknet_cfg import Section, WeightsReader, parse_cfg
from vision_app.errors import ModelError
from vision_app.models import sha256_file

log = logging.getLogger(__name__)

OPSET = 13
IR_VERSION = 8  # readable by every ONNX Runtime the project supports (>= 1.17)
INPUT_NAME = "input"
BN_EPS = 1e-5  # darknet (AlexeyAB) normalises with (x - mean) / sqrt(var + .00001)
LEAKY_ALPHA = 0.1


@dataclass(frozen=True)
class YoloHead:
    """One ``[yolo]`` section: the graph output it reads and how to decode it.

    ``anchors`` are (width, height) in input pixels for this head's mask, in mask order;
    ``grid`` is (rows, cols); ``stride`` = input size / grid size.
    """

    layer: int
    output: str
    grid: tuple[int, int]
    stride: float
    anchors: tuple[tuple[float, float], ...]
    classes: int
    scale_x_y: float


@dataclass(frozen=True)
class DarknetModel:
    """The converted graph plus what the manifest needs. ``input_size`` is (width, height);
    ``letterbox`` is the cfg's ``letter_box=1`` (trained on centred letterboxed images, not stretched)."""

    model: onnx.ModelProto
    input_name: str
    input_size: tuple[int, int]
    channels: int
    heads: tuple[YoloHead, ...]
    letterbox: bool = False

    @property
    def classes(self) -> int:
        return self.heads[0].classes


@dataclass(frozen=True)
class _Tensor:
    name: str
    c: int
    h: int
    w: int


class _GraphBuilder:
    def __init__(self, net: Section, weights: WeightsReader) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.layers: list[_Tensor] = []
        self.heads: list[YoloHead] = []
        self.width = net.get_int("width")
        self.height = net.get_int("height")
        self.channels = net.get_int("channels", 3)
        self.letterbox = bool(net.get_int("letter_box", 0))
        if min(self.width, self.height, self.channels) <= 0:
            raise ModelError(f"{net.where()}: width, height and channels must be positive, found "
                             f"{self.width}, {self.height}, {self.channels}")
        self.handlers: dict[str, Callable[[Section, _Tensor], _Tensor]] = {
            "convolutional": self._conv, "maxpool": self._maxpool, "route": self._route,
            "shortcut": self._shortcut, "upsample": self._upsample, "dropout": self._dropout,
            "yolo": self._yolo}

    # -- plumbing ---------------------------------------------------------------------------------
    def _node(self, op: str, inputs: list[str], output: str, name: str | None = None, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=name or output, **attrs))
        return output

    def _init(self, name: str, array: NDArray) -> str:
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def _ref(self, sec: Section, value: int, key: str) -> int:
        """Layer index of a route/shortcut reference (negative = relative to this layer)."""
        idx = sec.index + value if value < 0 else value
        if not 0 <= idx < sec.index:
            raise ModelError(f"{sec.where(key)}: {key} refers to layer {idx}, but only layers 0.."
                             f"{sec.index - 1} come before this one")
        return idx

    def _activation(self, sec: Section, act: str, src: str, out: str, prefix: str) -> str:
        """Nodes computing activation ``act`` of tensor ``src`` into ``out``."""
        if act == "linear":
            return self._node("Identity", [src], out) if src != out else out
        if act == "leaky":
            return self._node("LeakyRelu", [src], out, f"{prefix}_act", alpha=LEAKY_ALPHA)
        simple = {"relu": "Relu", "logistic": "Sigmoid", "tanh": "Tanh"}
        if act in simple:
            return self._node(simple[act], [src], out, f"{prefix}_act")
        if act == "swish":  # x * sigmoid(x)
            sig = self._node("Sigmoid", [src], f"{prefix}_sigmoid")
            return self._node("Mul", [src, sig], out, f"{prefix}_act")
        if act == "mish":  # x * tanh(softplus(x)); opset 13 has no Mish operator
            sp = self._node("Softplus", [src], f"{prefix}_softplus")
            th = self._node("Tanh", [sp], f"{prefix}_tanh")
            return self._node("Mul", [src, th], out, f"{prefix}_act")
        raise ModelError(f"{sec.where('activation')}: activation={act!r} is not supported; the importer "
                         f"converts linear, leaky, relu, logistic, tanh, swish and mish")

    # -- layers -----------------------------------------------------------------------------------
    def _conv(self, sec: Section, x: _Tensor) -> _Tensor:
        for key, allowed, why in (("dilation", 1, "dilated darknet convolutions"),
                                  ("antialiasing", 0, "anti-aliased strided convolution"),
                                  ("binary", 0, "binary weights"), ("xnor", 0, "XNOR layers"),
                                  ("deform", 0, "deformable convolution"), ("sway", 0, "sway"),
                                  ("rotate", 0, "rotate"), ("stretch", 0, "stretch"),
                                  ("stretch_sway", 0, "stretch_sway")):
            sec.reject(key, allowed, why)
        if sec.has("share_index"):
            raise ModelError(f"{sec.where('share_index')}: share_index (weights shared with another layer) "
                             f"is not supported")
        i = sec.index
        n = sec.get_int("filters", 1)
        size = sec.get_int("size", 1)
        stride = sec.get_int("stride", 1)
        sy, sx = sec.get_int("stride_y", stride), sec.get_int("stride_x", stride)
        pad = size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
        groups = sec.get_int("groups", 1)
        if min(n, size, sy, sx, groups) <= 0 or pad < 0:
            raise ModelError(f"{sec.where()}: filters, size, stride and groups must be positive and padding "
                             f"not negative; found filters={n} size={size} stride={sy}x{sx} groups={groups} "
                             f"padding={pad}")
        if x.c % groups or n % groups:
            raise ModelError(f"{sec.where('groups')}: groups={groups} must divide both the input channels "
                             f"({x.c}) and filters ({n})")
        h, w = (x.h + 2 * pad - size) // sy + 1, (x.w + 2 * pad - size) // sx + 1
        if h <= 0 or w <= 0:
            raise ModelError(f"{sec.where()}: a {size}x{size} kernel with padding {pad} does not fit the "
                             f"{x.h}x{x.w} input")
        # weights order in the file (darknet load_convolutional_weights): biases, [scales, mean, var], kernel
        # float32 arithmetic in this order reproduces the reference conversion bit for bit
        bias = self.weights.take(n)
        k = np.ones(n, np.float32)
        if sec.get_int("batch_normalize", 0):
            scales, mean, var = (self.weights.take(n) for _ in range(3))
            std = np.sqrt(var + np.float32(BN_EPS))
            k = scales / std
            bias = bias - mean * scales / std
        kernel = self.weights.take(n * (x.c // groups) * size * size)
        kernel = kernel.reshape(n, x.c // groups, size, size) * k[:, None, None, None]
        act = sec.get_str("activation", "logistic").lower()  # darknet's default for this layer type
        conv_out = f"l{i}" if act == "linear" else f"l{i}_conv"
        self._node("Conv", [x.name, self._init(f"l{i}_w", kernel),
                            self._init(f"l{i}_b", bias)], conv_out, f"l{i}_conv",
                   group=groups, kernel_shape=[size, size], pads=[pad, pad, pad, pad], strides=[sy, sx])
        return _Tensor(self._activation(sec, act, conv_out, f"l{i}", f"l{i}"), n, h, w)

    def _maxpool(self, sec: Section, x: _Tensor) -> _Tensor:
        sec.reject("maxpool_depth", 0, "channel-wise max pooling")
        sec.reject("antialiasing", 0, "anti-aliased pooling")
        stride = sec.get_int("stride", 1)
        sy, sx = sec.get_int("stride_y", stride), sec.get_int("stride_x", stride)
        size = sec.get_int("size", stride)
        padding = sec.get_int("padding", size - 1)
        # darknet starts each window at -padding/2 and sizes the output as (w + padding - size)/stride + 1,
        # so the rest of the padding lands on the bottom/right (size=2, stride=1: pad 0 before, 1 after)
        before, after = padding // 2, padding - padding // 2
        if min(size, sy, sx) <= 0 or before < 0 or after >= size:
            raise ModelError(f"{sec.where()}: maxpool size={size} stride={sy}x{sx} padding={padding} cannot "
                             f"be expressed (padding must be >= 0 and smaller than the window on each side)")
        h, w = (x.h + padding - size) // sy + 1, (x.w + padding - size) // sx + 1
        self._node("MaxPool", [x.name], f"l{sec.index}", kernel_shape=[size, size],
                   pads=[before, before, after, after], strides=[sy, sx])
        return _Tensor(f"l{sec.index}", x.c, h, w)

    def _route(self, sec: Section, x: _Tensor) -> _Tensor:
        i = sec.index
        srcs = [self.layers[self._ref(sec, v, "layers")] for v in sec.get_numbers("layers")]
        if not srcs:
            raise ModelError(f"{sec.where('layers')}: route needs at least one layer in layers=")
        groups, gid = sec.get_int("groups", 1), sec.get_int("group_id", 0)
        if groups <= 0 or not 0 <= gid < groups:
            raise ModelError(f"{sec.where('group_id')}: expected groups >= 1 and 0 <= group_id < groups, "
                             f"found groups={groups} group_id={gid}")
        if any((t.h, t.w) != (srcs[0].h, srcs[0].w) for t in srcs):
            raise ModelError(f"{sec.where('layers')}: routed layers differ in size: "
                             + ", ".join(f"{t.name} {t.h}x{t.w}" for t in srcs))
        parts = []
        for k, t in enumerate(srcs):
            if groups == 1:
                parts.append(t.name)
                continue
            if t.c % groups:
                raise ModelError(f"{sec.where('groups')}: groups={groups} does not divide the {t.c} "
                                 f"channels of {t.name}")
            part = t.c // groups
            out = f"l{i}" if len(srcs) == 1 else f"l{i}_part{k}"
            ends = [self._init(f"{out}_{what}", np.array([v], np.int64))
                    for what, v in (("starts", gid * part), ("ends", (gid + 1) * part), ("axes", 1))]
            parts.append(self._node("Slice", [t.name, *ends], out))
        channels = sum(t.c for t in srcs) // groups
        if len(parts) == 1:  # a single un-sliced layer is just a reference: no node, like the reference
            return _Tensor(parts[0], channels, srcs[0].h, srcs[0].w)
        return _Tensor(self._node("Concat", parts, f"l{i}", axis=1), channels, srcs[0].h, srcs[0].w)

    def _shortcut(self, sec: Section, x: _Tensor) -> _Tensor:
        sec.reject("weights_type", "none", "weighted shortcuts")
        i = sec.index
        act = sec.get_str("activation", "linear").lower()
        srcs = [self.layers[self._ref(sec, v, "from")] for v in sec.get_numbers("from")]
        if not srcs:
            raise ModelError(f"{sec.where('from')}: shortcut needs a layer in from=")
        summed = f"l{i}" if act == "linear" else f"l{i}_add"
        out = x.name
        for k, t in enumerate(srcs):
            if (t.c, t.h, t.w) != (x.c, x.h, x.w):
                raise ModelError(f"{sec.where('from')}: shortcut adds {t.name} ({t.c}x{t.h}x{t.w}) to "
                                 f"{x.name} ({x.c}x{x.h}x{x.w}); only equal shapes are supported")
            out = self._node("Add", [out, t.name], summed if k == len(srcs) - 1 else f"l{i}_add{k}")
        return _Tensor(self._activation(sec, act, summed, f"l{i}", f"l{i}"), x.c, x.h, x.w)

    def _upsample(self, sec: Section, x: _Tensor) -> _Tensor:
        i = sec.index
        stride, scale = sec.get_int("stride", 2), sec.get_float("scale", 1.0)
        if stride <= 0:
            raise ModelError(f"{sec.where('stride')}: upsample stride={stride}: down-sampling (negative "
                             f"stride) is not supported")
        scales = self._init(f"l{i}_scales", np.array([1, 1, stride, stride], np.float32))
        out = self._node("Resize", [x.name, "", scales], f"l{i}" if scale == 1 else f"l{i}_resize",
                         coordinate_transformation_mode="asymmetric", mode="nearest", nearest_mode="floor")
        if scale != 1:
            out = self._node("Mul", [out, self._init(f"l{i}_scale", np.array(scale, np.float32))], f"l{i}")
        return _Tensor(out, x.c, x.h * stride, x.w * stride)

    def _dropout(self, sec: Section, x: _Tensor) -> _Tensor:
        return x  # identity at inference; later layers refer straight to the input tensor

    def _yolo(self, sec: Section, x: _Tensor) -> _Tensor:
        sec.reject("new_coords", 0, "scaled-YOLOv4 coordinates need another decoder")
        classes, num = sec.get_int("classes", 20), sec.get_int("num", 1)
        anchors = sec.get_numbers("anchors", float)
        mask = sec.get_numbers("mask") if sec.has("mask") else list(range(num))
        if len(anchors) < 2 * num or any(not 0 <= m < num for m in mask):
            raise ModelError(f"{sec.where('anchors')}: expected {num} anchor pairs (num={num}) and mask "
                             f"indices below {num}; found {len(anchors)} values and mask={mask}")
        if x.c != len(mask) * (classes + 5):
            raise ModelError(f"{sec.where()}: the layer before [yolo] has {x.c} filters; {len(mask)} "
                             f"anchors x ({classes} classes + 5) needs filters={len(mask) * (classes + 5)}")
        stride = self.width / x.w
        if not math.isclose(stride, self.height / x.h):
            raise ModelError(f"{sec.where()}: the {x.h}x{x.w} grid gives different strides across and down "
                             f"for a {self.width}x{self.height} input")
        out = f"l{sec.index - 1}"
        if x.name != out:
            self._node("Identity", [x.name], out)
        self.heads.append(YoloHead(sec.index, out, (x.h, x.w), stride,
                                   tuple((anchors[2 * m], anchors[2 * m + 1]) for m in mask), classes,
                                   sec.get_float("scale_x_y", 1.0)))
        return _Tensor(out, x.c, x.h, x.w)

    def build(self, layers: list[Section]) -> onnx.ModelProto:
        x = _Tensor(INPUT_NAME, self.channels, self.height, self.width)
        for sec in layers:
            handler = self.handlers.get(sec.kind)
            if handler is None:
                raise ModelError(f"{sec.path}:{sec.line}: unknown layer type [{sec.kind}] (layer {sec.index}); "
                                 f"the importer converts {', '.join(f'[{k}]' for k in self.handlers)}")
            x = handler(sec, x)
            self.layers.append(x)
        if not self.heads:
            raise ModelError(f"{layers[0].path}: no [yolo] section; the importer converts YOLO detectors")
        outs = {h.output: self.layers[h.layer] for h in self.heads}
        graph = helper.make_graph(
            self.nodes, "darknet",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, self.channels, self.height,
                                                                            self.width])],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, t.c, t.h, t.w]) for n, t in outs.items()],
            initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="vision-app darknet importer", ir_version=IR_VERSION)
        try:
            onnx.checker.check_model(model)
            return onnx.shape_inference.infer_shapes(model, strict_mode=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise ModelError(f"the converted graph is invalid ({exc}); please report this cfg") from exc


def load_darknet(cfg: str | Path, weights: str | Path) -> DarknetModel:
    """Convert a darknet cfg + weights pair to an in-memory ONNX model (nothing is written)."""
    net, layers = parse_cfg(cfg)
    reader = WeightsReader(weights)
    builder = _GraphBuilder(net, reader)
    model = builder.build(layers)
    reader.finish(cfg)
    log.info("converted %s (%d layers, %d yolo heads, weights format %s)", cfg, len(layers),
             len(builder.heads), ".".join(map(str, reader.version)))
    return DarknetModel(model, INPUT_NAME, (builder.width, builder.height), builder.channels,
                        tuple(builder.heads), builder.letterbox)


def convert_darknet(cfg: str | Path, weights: str | Path, output: str | Path) -> tuple[DarknetModel, str]:
    """Convert and write the ONNX file; returns the model and the sha256 of the written file."""
    result = load_darknet(cfg, weights)
    output = Path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(result.model, str(output))
    except OSError as exc:
        raise ModelError(f"cannot write {output}: {exc}") from exc
    return result, sha256_file(output)
