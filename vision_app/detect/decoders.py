"""YOLO-family output decoders: raw model tensors -> candidate boxes in model-input pixels.

Each decoder is built from a manifest entry's ``decode`` table (registry :data:`DECODERS`, keyed by
``decode.type``), checks the model's real output shapes once at load time (:meth:`check_outputs`), and
turns one inference's outputs into :class:`Candidates` above a confidence threshold. Everything is
vectorised numpy; grids are built once per head size and cached. NMS is not done here (see nms.py).

Layouts (C = number of classes, A = anchors per head, s = stride, input h x w):
- ``yolo_anchor`` (YOLOv3/v4, Yolo-Fastest): heads ``[1, A*(5+C), h/s, w/s]`` of logits;
  ``xy = (sig(t)*sxy - (sxy-1)/2 + cell) * s``, ``wh = exp(t) * anchor``, score = sig(obj) * sig(cls).
- ``yolov5`` (YOLOv5/v7) raw heads as above with ``xy = (2 sig(t) - 0.5 + cell) * s``,
  ``wh = (2 sig(t))^2 * anchor``; or, with ``output = NAME`` instead of ``heads``, the exported
  concatenated ``[1, N, 5+C]`` tensor (xywh in input pixels, obj and cls already sigmoided).
- ``yolox``: ``[1, N, 5+C]`` with rows = grid points of each stride, row-major;
  ``xy = (o + cell) * s``, ``wh = exp(o) * s``, obj/cls already sigmoided.
- ``yolov8`` (v8/v11): ``[1, 4+C, N]`` xywh in input pixels and class probabilities, no objectness.
Raw heads may declare ``layout = "nahwc"`` for ``[1, A, h/s, w/s, 5+C]`` and ``sigmoid = false`` when
the model already applies the sigmoid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
from numpy.typing import NDArray

from vision_app.errors import DecodeError, ModelError


@dataclass(frozen=True, slots=True)
class Candidates:
    """Scored boxes before NMS. xyxy: (K, 4) float32 in model-input pixels; scores: (K,) float32;
    class_id: (K,) int32."""

    xyxy: NDArray[np.float32]
    scores: NDArray[np.float32]
    class_id: NDArray[np.int32]

    @classmethod
    def empty(cls) -> "Candidates":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])


class Decoder(Protocol):
    output_names: tuple[str, ...]

    def check_outputs(self, shapes: Mapping[str, Sequence[int | None]]) -> None: ...

    def __call__(self, outputs: Mapping[str, np.ndarray], conf: float) -> Candidates: ...


@dataclass(frozen=True)
class DecodeSpec:
    """What a decoder factory gets: the model name (for messages), the decode table, the number of
    classes and the model input size (w, h), None when the input is dynamic."""

    model: str
    table: Mapping[str, Any]
    num_classes: int
    input_size: tuple[int, int] | None


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def _logit(p: float) -> float:
    """Threshold on raw logits instead of sigmoiding every value: sig(x) > p  <=>  x > logit(p)."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p / (1.0 - p))


def _finite(xyxy: NDArray[np.float32], scores: NDArray[np.float32], class_id: NDArray[np.int32]) -> Candidates:
    """Candidates without the rows whose box or score is NaN or infinite. A broken or replaced model, or a
    float16 engine that overflows, gives such values (exp() of a huge logit is inf): they are not
    detections, and a NaN box would poison NMS, tracking and drawing further on."""
    ok = np.isfinite(xyxy).all(axis=1) & np.isfinite(scores)
    if not ok.all():
        xyxy, scores, class_id = xyxy[ok], scores[ok], class_id[ok]
    return Candidates(xyxy, scores, class_id)


def _cxcywh_to_xyxy(xy: NDArray[np.float32], wh: NDArray[np.float32]) -> NDArray[np.float32]:
    half = wh * 0.5
    return np.concatenate([xy - half, xy + half], axis=1).astype(np.float32, copy=False)


def _shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _check_shape(model: str, kind: str, name: str, expected: Sequence[int | None],
                 shapes: Mapping[str, Sequence[int | None]], why: str) -> None:
    """Raise ModelError unless output `name` exists with a shape compatible with `expected`
    (None on either side matches any size)."""
    if name not in shapes:
        raise ModelError(f"model '{model}': manifest decode '{kind}' reads output '{name}', but the model's "
                         f"outputs are {sorted(shapes)}; fix the output names in the manifest's decode table")
    found = tuple(shapes[name])
    ok = len(found) == len(expected) and all(
        e is None or f is None or e == f for e, f in zip(expected, found))
    if not ok:
        raise ModelError(f"model '{model}': manifest decode '{kind}' expects output '{name}' of shape "
                         f"{_shape_text(expected)} ({why}), the model has {_shape_text(found)}; fix the "
                         f"manifest entry (decode type, anchors, strides, classes or input size)")


def _runtime_shape(model: str, name: str, arr: np.ndarray, ndim: int, last: int, axis: int) -> None:
    if arr.ndim != ndim or arr.shape[0] != 1 or arr.shape[axis] != last:
        raise DecodeError(f"model '{model}': output '{name}' has shape {list(arr.shape)}, expected "
                          f"{ndim} dims, batch 1 and {last} values on axis {axis}")


def _best_class(probs: NDArray[np.float32], obj: NDArray[np.float32] | None, conf: float
                ) -> tuple[NDArray[np.intp], NDArray[np.float32], NDArray[np.int32]]:
    """(K, C) class probabilities (and (K,) objectness) -> rows above conf, their scores and classes."""
    cls = probs.argmax(axis=1)
    score = probs[np.arange(probs.shape[0]), cls]
    if obj is not None:
        score = score * obj
    keep = np.flatnonzero(score > conf)
    return keep, score[keep].astype(np.float32, copy=False), cls[keep].astype(np.int32)


class _GridCache:
    """Cell-centre offsets (col, row) per grid size, built once: (gh*gw, 2) float32, row-major."""

    def __init__(self) -> None:
        self._grids: dict[tuple[int, int], NDArray[np.float32]] = {}

    def get(self, gh: int, gw: int) -> NDArray[np.float32]:
        g = self._grids.get((gh, gw))
        if g is None:
            rows, cols = np.mgrid[0:gh, 0:gw]
            g = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float32)
            self._grids[(gh, gw)] = g
        return g


@dataclass(frozen=True)
class _Head:
    output: str
    stride: int
    anchors: NDArray[np.float32]  # (A, 2) in input pixels
    scale_x_y: float


class AnchorHeadDecoder:
    """Raw anchor heads, YOLOv3/v4 (``style="v3"``) or YOLOv5/v7 (``style="v5"``) box formulas."""

    def __init__(self, spec: DecodeSpec, style: str) -> None:
        t = spec.table
        self.model, self.kind, self.style = spec.model, str(t.get("type")), style
        self.num_classes = spec.num_classes
        self.input_size = spec.input_size
        self.layout = t.get("layout", "nchw")
        if self.layout not in ("nchw", "nahwc"):
            raise ModelError(f"model '{spec.model}': decode.layout: expected 'nchw' or 'nahwc', got {self.layout!r}")
        self.sigmoid = bool(t.get("sigmoid", True))
        heads = t.get("heads")
        if not heads:
            raise ModelError(f"model '{spec.model}': decode '{self.kind}' needs a 'heads' list of "
                             f"{{output, stride, anchors}} tables")
        self.heads = []
        for h in heads:
            try:
                anchors = np.asarray(h["anchors"], np.float32).reshape(-1, 2)
                self.heads.append(_Head(str(h["output"]), int(h["stride"]), anchors,
                                        float(h.get("scale_x_y", t.get("scale_x_y", 1.0)))))
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelError(f"model '{spec.model}': decode head {h!r}: expected output, stride and "
                                 f"anchors [[w, h], ...] ({exc})") from None
        self.output_names = tuple(h.output for h in self.heads)
        self._grids = _GridCache()
        self._tables: dict[tuple[tuple[int, int], ...], tuple[NDArray[np.float32], NDArray[np.float32],
                                                              NDArray[np.float32], list[int]]] = {}

    def _expected(self, head: _Head) -> list[int | None]:
        a, v = len(head.anchors), 5 + self.num_classes
        gh = gw = None
        if self.input_size is not None:
            gw, gh = self.input_size[0] // head.stride, self.input_size[1] // head.stride
        return [1, a * v, gh, gw] if self.layout == "nchw" else [1, a, gh, gw, v]

    def check_outputs(self, shapes: Mapping[str, Sequence[int | None]]) -> None:
        for head in self.heads:
            why = (f"{len(head.anchors)} anchors x (5 + {self.num_classes} classes), stride {head.stride}"
                   + (f" on a {self.input_size[0]}x{self.input_size[1]} input" if self.input_size else ""))
            _check_shape(self.model, self.kind, head.output, self._expected(head), shapes, why)

    def _table(self, key: tuple[tuple[int, int], ...]) -> tuple[NDArray[np.float32], NDArray[np.float32],
                                                                  NDArray[np.float32], list[int]]:
        """For heads with grids `key` ((gh, gw) per head): per candidate row (head, anchor, cell in that
        order) the box-centre offset (N, 2) and scale (N, 1) in input pixels, the anchor (N, 2), and each
        head's first row. Built once per grid sizes: xy = t * scale + offset is the darknet / YOLOv5
        formula with every per-cell constant folded in."""
        table = self._tables.get(key)
        if table is None:
            offsets, scales, anchors, bases, n = [], [], [], [], 0
            for head, (gh, gw) in zip(self.heads, key):
                a, cells = len(head.anchors), gh * gw
                grid = self._grids.get(gh, gw)
                if self.style == "v5":  # xy = (2 sig - 0.5 + cell) * s
                    scale, shift = 2.0 * head.stride, -0.5
                else:  # xy = (sig * sxy - (sxy - 1) / 2 + cell) * s
                    scale, shift = head.scale_x_y * head.stride, -0.5 * (head.scale_x_y - 1.0)
                offsets.append(np.tile((grid + shift) * head.stride, (a, 1)))
                scales.append(np.full((a * cells, 1), scale, np.float32))
                anchors.append(np.repeat(head.anchors, cells, axis=0))
                bases.append(n)
                n += a * cells
            table = (np.concatenate(offsets).astype(np.float32), np.concatenate(scales),
                     np.concatenate(anchors).astype(np.float32), bases)
            self._tables[key] = table
        return table

    def _select(self, head: _Head, out: np.ndarray, conf: float
                ) -> tuple[tuple[int, int], NDArray[np.float32] | None, NDArray[np.intp] | None]:
        """One head: its grid size, the rows whose objectness passes conf (K, 5+C) and their row number
        within the head (anchor * cells + cell), or None, None."""
        a, v = len(head.anchors), 5 + self.num_classes
        if self.layout == "nchw":
            _runtime_shape(self.model, head.output, out, 4, a * v, 1)
            gh, gw = out.shape[2:]
            view = out.reshape(a, v, gh * gw)
            obj_raw = view[:, 4, :]
        else:
            _runtime_shape(self.model, head.output, out, 5, v, 4)
            if out.shape[1] != a:
                raise DecodeError(f"model '{self.model}': output '{head.output}' has shape {list(out.shape)}, "
                                  f"expected {a} anchors on axis 1")
            gh, gw = out.shape[2:4]
            view = out.reshape(a, gh * gw, v)
            obj_raw = view[:, :, 4]
        # score = obj * cls <= obj: drop cells on objectness (compared as logits) before anything else
        a_idx, cell = np.nonzero(obj_raw > (_logit(conf) if self.sigmoid else conf))
        if a_idx.size == 0:
            return (gh, gw), None, None
        raw = view[a_idx, :, cell] if self.layout == "nchw" else view[a_idx, cell]
        return (gh, gw), raw, a_idx * (gh * gw) + cell

    def __call__(self, outputs: Mapping[str, np.ndarray], conf: float) -> Candidates:
        picked = [self._select(h, outputs[h.output], conf) for h in self.heads]
        offset, scale, anchor, bases = self._table(tuple(p[0] for p in picked))
        found = [(raw, rows + base) for (_, raw, rows), base in zip(picked, bases)
                 if raw is not None and rows is not None]
        if not found:
            return Candidates.empty()
        if len(found) == 1:
            raw, row = found[0]
        else:
            raw, row = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
        cls_raw = raw[:, 5:]
        cls = cls_raw.argmax(axis=1)  # the sigmoid is monotonic: the best logit is the best probability
        best = cls_raw[np.arange(cls.size), cls]
        score = _sigmoid(raw[:, 4]) * _sigmoid(best) if self.sigmoid else raw[:, 4] * best
        keep = np.flatnonzero(score > conf)
        raw, row = raw[keep], row[keep]
        txy = _sigmoid(raw[:, 0:2]) if self.sigmoid else raw[:, 0:2]
        xy = txy * scale[row] + offset[row]
        if self.style == "v5":
            twh = _sigmoid(raw[:, 2:4]) if self.sigmoid else raw[:, 2:4]
            wh = (twh * 2.0) ** 2 * anchor[row]
        else:  # darknet activates xy/obj/cls only; wh stays in log space
            wh = np.exp(raw[:, 2:4]) * anchor[row]
        return _finite(_cxcywh_to_xyxy(xy, wh), score[keep].astype(np.float32, copy=False),
                       cls[keep].astype(np.int32))


class ConcatDecoder:
    """One ``[1, N, 5+C]`` tensor (YOLOv5/v7 export) or ``[1, 4+C, N]`` (YOLOv8/11): xywh in input
    pixels, probabilities already sigmoided. has_obj False = the v8 layout (no objectness, transposed)."""

    def __init__(self, spec: DecodeSpec, has_obj: bool) -> None:
        self.model, self.kind = spec.model, str(spec.table.get("type"))
        self.num_classes = spec.num_classes
        self.has_obj = has_obj
        self.output = str(spec.table.get("output", ""))
        if not self.output:
            raise ModelError(f"model '{spec.model}': decode '{self.kind}' needs 'output' (the output name)")
        self.output_names: tuple[str, ...] = (self.output,)
        strides = spec.table.get("strides")
        self.n_expected: int | None = None
        if strides and spec.input_size:
            w, h = spec.input_size
            per_cell = int(spec.table.get("anchors_per_cell", 3 if has_obj else 1))
            self.n_expected = per_cell * sum((w // s) * (h // s) for s in strides)

    def check_outputs(self, shapes: Mapping[str, Sequence[int | None]]) -> None:
        v = (5 if self.has_obj else 4) + self.num_classes
        exp = [1, self.n_expected, v] if self.has_obj else [1, v, self.n_expected]
        _check_shape(self.model, self.kind, self.output, exp, shapes,
                     f"{'xywh, obj' if self.has_obj else 'xywh'} + {self.num_classes} class scores per box")

    def __call__(self, outputs: Mapping[str, np.ndarray], conf: float) -> Candidates:
        out = outputs[self.output]
        if self.has_obj:
            _runtime_shape(self.model, self.output, out, 3, 5 + self.num_classes, 2)
            rows = out[0]
            idx = np.flatnonzero(rows[:, 4] > conf)
            sel = rows[idx]
            keep, score, cls = _best_class(sel[:, 5:], sel[:, 4], conf)
            box = sel[keep, :4]
        else:
            _runtime_shape(self.model, self.output, out, 3, 4 + self.num_classes, 1)
            probs = out[0, 4:]  # (C, N), contiguous per class: the max over classes is one fast pass
            idx = np.flatnonzero(probs.max(axis=0) > conf)
            keep, score, cls = _best_class(probs[:, idx].T, None, conf)
            box = out[0, :4][:, idx[keep]].T
        box = np.asarray(box, np.float32).reshape(-1, 4)
        return _finite(_cxcywh_to_xyxy(box[:, :2], box[:, 2:4]), score, cls)


class YoloxDecoder:
    """Anchor-free YOLOX ``[1, N, 5+C]``: rows are grid points of each stride in order, row-major."""

    def __init__(self, spec: DecodeSpec) -> None:
        t = spec.table
        self.model, self.kind = spec.model, str(t.get("type"))
        self.num_classes = spec.num_classes
        self.output = str(t.get("output", ""))
        self.strides = [int(s) for s in t.get("strides", (8, 16, 32))]
        if not self.output:
            raise ModelError(f"model '{spec.model}': decode 'yolox' needs 'output' (the output name)")
        self.output_names: tuple[str, ...] = (self.output,)
        if spec.input_size is None:
            raise ModelError(f"model '{spec.model}': decode 'yolox' needs a fixed input size (input.size)")
        self.input_size: tuple[int, int] = spec.input_size
        self._cache: dict[tuple[int, int], tuple[NDArray[np.float32], NDArray[np.float32]]] = {}

    def _grid(self, w: int, h: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(N, 2) cell offsets and (N, 1) strides for an input of w x h, cached."""
        key = (w, h)
        if key not in self._cache:
            cells = _GridCache()
            grids = [cells.get(h // s, w // s) for s in self.strides]
            strides = [np.full((len(g), 1), s, np.float32) for g, s in zip(grids, self.strides)]
            self._cache[key] = (np.concatenate(grids), np.concatenate(strides))
        return self._cache[key]

    def check_outputs(self, shapes: Mapping[str, Sequence[int | None]]) -> None:
        n = len(self._grid(*self.input_size)[0])
        _check_shape(self.model, self.kind, self.output, [1, n, 5 + self.num_classes], shapes,
                     f"grid points of strides {self.strides} x (4 box + obj + {self.num_classes} classes)")

    def __call__(self, outputs: Mapping[str, np.ndarray], conf: float) -> Candidates:
        out = outputs[self.output]
        _runtime_shape(self.model, self.output, out, 3, 5 + self.num_classes, 2)
        size = self.input_size
        grid, stride = self._grid(*size)
        rows = out[0]
        if rows.shape[0] != grid.shape[0]:
            raise DecodeError(f"model '{self.model}': output '{self.output}' has {rows.shape[0]} rows, "
                              f"strides {self.strides} on {size[0]}x{size[1]} give {grid.shape[0]}")
        idx = np.flatnonzero(rows[:, 4] > conf)
        sel = rows[idx]
        keep, score, cls = _best_class(sel[:, 5:], sel[:, 4], conf)
        idx, sel = idx[keep], sel[keep]
        xy = (sel[:, 0:2] + grid[idx]) * stride[idx]
        wh = np.exp(sel[:, 2:4]) * stride[idx]
        return _finite(_cxcywh_to_xyxy(xy, wh), score, cls)


DecoderFactory = Callable[[DecodeSpec], Decoder]


def _yolov5(spec: DecodeSpec) -> Decoder:
    return AnchorHeadDecoder(spec, "v5") if spec.table.get("heads") else ConcatDecoder(spec, has_obj=True)


DECODERS: dict[str, DecoderFactory] = {
    "yolo_anchor": lambda spec: AnchorHeadDecoder(spec, "v3"),
    "yolov5": _yolov5,
    "yolov7": _yolov5,
    "yolox": YoloxDecoder,
    "yolov8": lambda spec: ConcatDecoder(spec, has_obj=False),
    "yolo11": lambda spec: ConcatDecoder(spec, has_obj=False),
}


def register_decoder(type_name: str, factory: DecoderFactory) -> None:
    """Add a decoder for manifest entries with ``decode.type = type_name``."""
    DECODERS[type_name] = factory


def build_decoder(entry: Any) -> Decoder:
    """The decoder for a ModelEntry (uses entry.decode, entry.classes and entry.input['size'])."""
    kind = entry.decode.get("type")
    if kind not in DECODERS:
        raise ModelError(f"model '{entry.name}': decode type {kind!r} is not a detector layout; expected "
                         f"one of {sorted(DECODERS)}")
    if not entry.classes:
        raise ModelError(f"model '{entry.name}': a detector needs 'classes' (e.g. \"coco80\") in the manifest")
    size = entry.input.get("size")
    return DECODERS[kind](DecodeSpec(entry.name, entry.decode, len(entry.classes),
                                     (int(size[0]), int(size[1])) if size else None))
