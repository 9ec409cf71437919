"""Decoders: hand-built raw tensors for every layout decode to the boxes placed in them."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vision_app.detect.decoders import DECODERS, build_decoder
from vision_app.errors import DecodeError, ModelError
from vision_app.models import ModelEntry

C = 5            # classes
W, H = 128, 96   # model input (not square, so rows and columns cannot be swapped unnoticed)
LOW = -12.0      # logit of "nothing here"
OBJ, CLS = 0.9, 0.8


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def entry(decode: dict, classes: int = C, size: tuple[int, int] = (W, H)) -> ModelEntry:
    return ModelEntry(name="synthetic", file="x.onnx", task="detect", license="-",
                      classes=tuple(f"c{i}" for i in range(classes)), input={"name": "in", "size": list(size)},
                      decode=decode)


# boxes to place: (cx, cy, w, h, class) in input pixels
PLACED = [(40.0, 30.0, 20.0, 36.0, 3), (100.0, 70.0, 50.0, 30.0, 1)]
HEADS = [{"output": "p32", "stride": 32, "anchors": [[40, 40], [60, 30], [90, 70]]},
         {"output": "p16", "stride": 16, "anchors": [[10, 12], [20, 36], [30, 20]]}]


def expected_xyxy() -> np.ndarray:
    return np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] for cx, cy, w, h, _ in PLACED], np.float32)


def raw_heads(style: str, layout: str, scale_x_y: float = 1.0) -> dict[str, np.ndarray]:
    """Raw anchor-head logits with PLACED boxes put in head p16 (anchor 1) and head p32 (anchor 2)."""
    outs = {}
    for head in HEADS:
        s, gh, gw = head["stride"], H // head["stride"], W // head["stride"]
        t = np.full((3, gh, gw, 5 + C), LOW, np.float32)
        outs[head["output"]] = t
    for (cx, cy, w, h, k), (name, a) in zip(PLACED, [("p16", 1), ("p32", 2)]):
        head = next(hd for hd in HEADS if hd["output"] == name)
        s = head["stride"]
        aw, ah = head["anchors"][a]
        col, row = int(cx // s), int(cy // s)
        fx, fy = cx / s - col, cy / s - row
        if style == "v5":
            sx, sy = (fx + 0.5) / 2, (fy + 0.5) / 2
            sw, sh = math.sqrt(w / aw) / 2, math.sqrt(h / ah) / 2
            vals = [logit(sx), logit(sy), logit(sw), logit(sh)]
        else:
            sx, sy = (fx + 0.5 * (scale_x_y - 1)) / scale_x_y, (fy + 0.5 * (scale_x_y - 1)) / scale_x_y
            vals = [logit(sx), logit(sy), math.log(w / aw), math.log(h / ah)]
        v = outs[name][a, row, col]
        v[:4] = vals
        v[4] = logit(OBJ)
        v[5 + k] = logit(CLS)
    if layout == "nahwc":
        return {n: t[None] for n, t in outs.items()}
    return {n: np.ascontiguousarray(t.transpose(0, 3, 1, 2)).reshape(1, 3 * (5 + C), *t.shape[1:3])
            for n, t in outs.items()}


def concat_rows(kind: str) -> dict[str, np.ndarray]:
    """Already-decoded tensors: yolov5 concat [1, N, 5+C], yolox [1, N, 5+C] raw offsets, yolov8 [1, 4+C, N]."""
    strides = (8, 16, 32)
    sizes = [(H // s, W // s) for s in strides]
    n = sum(gh * gw for gh, gw in sizes)
    if kind == "yolov8":
        t = np.zeros((1, 4 + C, n), np.float32)
        t[0, 4:] = 0.01
        for i, (cx, cy, w, h, k) in enumerate(PLACED):
            t[0, :4, 7 + 50 * i] = [cx, cy, w, h]
            t[0, 4 + k, 7 + 50 * i] = CLS
        return {"out": t}
    if kind == "yolov5":
        t = np.zeros((1, 3 * n, 5 + C), np.float32)
        t[0, :, 4] = 0.01
        for i, (cx, cy, w, h, k) in enumerate(PLACED):
            t[0, 11 + 77 * i, :5] = [cx, cy, w, h, OBJ]
            t[0, 11 + 77 * i, 5 + k] = CLS
        return {"out": t}
    t = np.zeros((1, n, 5 + C), np.float32)  # yolox
    t[0, :, 4] = 0.01
    offsets = np.cumsum([0] + [gh * gw for gh, gw in sizes])
    for (cx, cy, w, h, k), si in zip(PLACED, (0, 1)):  # first box on stride 8, second on stride 16
        s, (gh, gw) = strides[si], sizes[si]
        col, row = int(cx // s), int(cy // s)
        t[0, offsets[si] + row * gw + col, :5] = [cx / s - col, cy / s - row, math.log(w / s), math.log(h / s), OBJ]
        t[0, offsets[si] + row * gw + col, 5 + k] = CLS
    return {"out": t}


LAYOUTS = [
    # id, decode table, outputs builder
    ("yolo_anchor nchw", {"type": "yolo_anchor", "heads": HEADS}, lambda: raw_heads("v3", "nchw")),
    ("yolo_anchor nahwc", {"type": "yolo_anchor", "heads": HEADS, "layout": "nahwc"},
     lambda: raw_heads("v3", "nahwc")),
    ("yolo_anchor scale_x_y 1.05", {"type": "yolo_anchor", "heads": HEADS, "scale_x_y": 1.05},
     lambda: raw_heads("v3", "nchw", 1.05)),
    ("yolov5 raw heads", {"type": "yolov5", "heads": HEADS}, lambda: raw_heads("v5", "nchw")),
    ("yolov7 raw heads nahwc", {"type": "yolov7", "heads": HEADS, "layout": "nahwc"},
     lambda: raw_heads("v5", "nahwc")),
    ("yolov5 concatenated", {"type": "yolov5", "output": "out", "strides": [8, 16, 32]},
     lambda: concat_rows("yolov5")),
    ("yolox", {"type": "yolox", "output": "out", "strides": [8, 16, 32]}, lambda: concat_rows("yolox")),
    ("yolov8", {"type": "yolov8", "output": "out", "strides": [8, 16, 32]}, lambda: concat_rows("yolov8")),
]


@pytest.mark.parametrize("decode, make", [(d, m) for _, d, m in LAYOUTS], ids=[i for i, _, _ in LAYOUTS])
def test_synthetic_tensors_decode_to_the_placed_boxes(decode: dict, make) -> None:
    dec = build_decoder(entry(decode))
    outputs = make()
    dec.check_outputs({n: a.shape for n, a in outputs.items()})  # the layout is self-consistent
    cand = dec(outputs, 0.25)
    assert len(cand) == len(PLACED)
    order = np.argsort(cand.xyxy[:, 0])
    np.testing.assert_allclose(cand.xyxy[order], expected_xyxy(), atol=1e-3)
    assert cand.class_id[order].tolist() == [k for *_, k in PLACED]
    want = CLS if decode["type"] == "yolov8" else OBJ * CLS
    np.testing.assert_allclose(cand.scores, want, atol=1e-5)
    assert cand.xyxy.dtype == np.float32 and cand.scores.dtype == np.float32 and cand.class_id.dtype == np.int32
    # above every score: nothing; decoding twice (cached grids) gives the same result
    assert len(dec(outputs, 0.95)) == 0
    np.testing.assert_array_equal(dec(outputs, 0.25).xyxy, cand.xyxy)


def test_registry_names_every_layout_and_rejects_unknown_types() -> None:
    assert {"yolo_anchor", "yolov5", "yolov7", "yolox", "yolov8", "yolo11"} <= set(DECODERS)
    with pytest.raises(ModelError, match=r"decode type 'ssd' is not a detector layout; expected one of"):
        build_decoder(entry({"type": "ssd"}))


MISMATCH = [
    # decode table, the model's real output shapes, text the error must contain (None: shapes are right)
    ({"type": "yolo_anchor", "heads": HEADS}, {"p32": (1, 30, 3, 4), "p16": (1, 30, 6, 8)}, None),
    ({"type": "yolox", "output": "out", "strides": [8, 16, 32]}, {"out": (1, 252, 10)}, None),
    ({"type": "yolo_anchor", "heads": HEADS}, {"p32": (1, 30, 6, 8), "p16": (1, 30, 6, 8)},
     "expects output 'p32' of shape [1, 30, 3, 4] (3 anchors x (5 + 5 classes), stride 32 on a 128x96 input), "
     "the model has [1, 30, 6, 8]"),
    ({"type": "yolo_anchor", "heads": HEADS}, {"p32": (1, 255, 3, 4), "p16": (1, 255, 6, 8)},
     "the model has [1, 255, 3, 4]"),
    ({"type": "yolo_anchor", "heads": HEADS}, {"out": (1, 30, 3, 4)},
     "reads output 'p32', but the model's outputs are ['out']"),
    ({"type": "yolox", "output": "out", "strides": [8, 16, 32]}, {"out": (1, 3549, 85)},
     "expects output 'out' of shape [1, 252, 10]"),
    ({"type": "yolov8", "output": "out", "strides": [8, 16, 32]}, {"out": (1, 252, 9)},
     "expects output 'out' of shape [1, 9, 252]"),
]


@pytest.mark.parametrize("decode, shapes, message", MISMATCH)
def test_output_shape_mismatch_says_expected_and_found(decode: dict, shapes: dict, message: str | None
                                                        ) -> None:
    dec = build_decoder(entry(decode))
    if message is None:
        dec.check_outputs(shapes)  # matching shapes pass
        return
    with pytest.raises(ModelError) as err:
        dec.check_outputs(shapes)
    assert message in str(err.value) and "synthetic" in str(err.value)


def test_dynamic_dims_match_anything_but_wrong_runtime_shapes_are_decode_errors() -> None:
    dec = build_decoder(entry({"type": "yolo_anchor", "heads": HEADS}))
    dec.check_outputs({"p32": (1, 30, None, None), "p16": (None, 30, None, None)})
    with pytest.raises(DecodeError, match="output 'p32' has shape"):
        dec({"p32": np.zeros((1, 29, 3, 4), np.float32), "p16": np.zeros((1, 30, 6, 8), np.float32)}, 0.25)


@pytest.mark.parametrize("decode, message", [
    ({"type": "yolo_anchor"}, "needs a 'heads' list"),
    ({"type": "yolo_anchor", "heads": [{"output": "a", "anchors": [[1, 2]]}]}, "expected output, stride"),
    ({"type": "yolo_anchor", "heads": HEADS, "layout": "nhwc"}, "decode.layout"),
    ({"type": "yolox"}, "needs 'output'"),
    ({"type": "yolov8"}, "needs 'output'"),
])
def test_bad_decode_tables_are_model_errors(decode: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build_decoder(entry(decode))
