"""A plain numpy darknet forward pass for importer tests, written from darknet's C definitions
(float64, batch norm NOT folded, maxpool by darknet's window loop), independent of the importer.

Also writes a random ``.weights`` file for a small cfg. Arrays are CHW float64, one image.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

ACT = {
    "linear": lambda x: x,
    "leaky": lambda x: np.where(x > 0, x, 0.1 * x),
    "relu": lambda x: np.maximum(x, 0),
    "logistic": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "swish": lambda x: x / (1 + np.exp(-x)),
    "mish": lambda x: x * np.tanh(np.log1p(np.exp(x))),
}


def parse(text: str) -> list[dict[str, str]]:
    """[{'type': 'net', 'width': '16', ...}, ...] — comments and blank lines dropped."""
    secs: list[dict[str, str]] = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("["):
            secs.append({"type": line[1:-1]})
        elif line:
            k, v = line.split("=")
            secs[-1][k.strip()] = v.strip()
    return secs


def conv_params(sec: dict[str, str], c_in: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n, size, groups = int(sec["filters"]), int(sec.get("size", 1)), int(sec.get("groups", 1))
    p = {"bias": rng.normal(0, 0.3, n)}
    if sec.get("batch_normalize") == "1":
        p["scales"] = rng.uniform(0.5, 1.5, n)
        p["mean"] = rng.normal(0, 0.3, n)
        p["var"] = rng.uniform(0.2, 2.0, n)
    p["weights"] = rng.normal(0, 0.4, (n, c_in // groups, size, size))
    return p


def _conv(x: np.ndarray, sec: dict[str, str], p: dict[str, np.ndarray]) -> np.ndarray:
    n, size = int(sec["filters"]), int(sec.get("size", 1))
    stride, groups = int(sec.get("stride", 1)), int(sec.get("groups", 1))
    pad = size // 2 if sec.get("pad") == "1" else int(sec.get("padding", 0))
    c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
    out = np.zeros((n, oh, ow))
    cg, ng = c // groups, n // groups
    for f in range(n):
        g = f // ng
        for i in range(oh):
            for j in range(ow):
                patch = xp[g * cg:(g + 1) * cg, i * stride:i * stride + size, j * stride:j * stride + size]
                out[f, i, j] = np.sum(patch * p["weights"][f])
    if "scales" in p:  # darknet forward_batchnorm_layer at inference
        out = (out - p["mean"][:, None, None]) / np.sqrt(p["var"][:, None, None] + 1e-5)
        out = out * p["scales"][:, None, None]
    out = out + p["bias"][:, None, None]
    return ACT[sec.get("activation", "logistic")](out)


def _maxpool(x: np.ndarray, sec: dict[str, str]) -> np.ndarray:
    stride = int(sec.get("stride", 1))
    size = int(sec.get("size", stride))
    pad = int(sec.get("padding", size - 1))
    c, h, w = x.shape
    oh, ow = (h + pad - size) // stride + 1, (w + pad - size) // stride + 1
    off = -(pad // 2)  # C: w_offset = -l.pad / 2
    out = np.full((c, oh, ow), -np.inf)
    for i in range(oh):
        for j in range(ow):
            for n in range(size):
                for m in range(size):
                    y, xx = off + i * stride + n, off + j * stride + m
                    if 0 <= y < h and 0 <= xx < w:
                        out[:, i, j] = np.maximum(out[:, i, j], x[:, y, xx])
    return out


def _ref(i: int, value: str) -> int:
    """darknet's layer references: negative = relative to layer i, else absolute."""
    return i + int(value) if int(value) < 0 else int(value)


def forward(secs: list[dict[str, str]], params: dict[int, dict], image: np.ndarray) -> dict[str, np.ndarray]:
    """Run the network on a CHW image; returns {'l<N>': output of the layer feeding each yolo}."""
    outs: list[np.ndarray] = []
    heads: dict[str, np.ndarray] = {}
    x = image
    for i, sec in enumerate(secs[1:]):
        t = sec["type"]
        if t == "convolutional":
            x = _conv(x, sec, params[i])
        elif t == "maxpool":
            x = _maxpool(x, sec)
        elif t == "route":
            groups, gid = int(sec.get("groups", 1)), int(sec.get("group_id", 0))
            parts = []
            for v in sec["layers"].split(","):
                src = outs[_ref(i, v)]
                k = src.shape[0] // groups
                parts.append(src[gid * k:(gid + 1) * k])
            x = np.concatenate(parts, axis=0)
        elif t == "shortcut":
            x = ACT[sec.get("activation", "linear")](x + outs[_ref(i, sec["from"])])
        elif t == "upsample":
            s = int(sec.get("stride", 2))
            x = np.repeat(np.repeat(x, s, axis=1), s, axis=2)
        elif t == "yolo":
            heads[f"l{i - 1}"] = x
        elif t != "dropout":
            raise ValueError(f"reference has no layer type {t}")
        outs.append(x)
    return heads


def write_weights(path: Path, secs: list[dict[str, str]], rng: np.random.Generator) -> dict[int, dict]:
    """Random parameters for every convolutional layer, written in darknet's file order (format 0.2.5)."""
    net = secs[0]
    shapes: list[int] = []  # channels per layer
    c = int(net.get("channels", 3))
    params: dict[int, dict] = {}
    blob = []
    for i, sec in enumerate(secs[1:]):
        t = sec["type"]
        if t == "convolutional":
            params[i] = p = conv_params(sec, c, rng)
            blob += [p["bias"]] + [p[k] for k in ("scales", "mean", "var") if k in p] + [p["weights"].ravel()]
            c = int(sec["filters"])
        elif t == "route":
            groups = int(sec.get("groups", 1))
            c = sum(shapes[_ref(i, v)] for v in sec["layers"].split(",")) // groups
        shapes.append(c)
    floats = np.concatenate(blob).astype("<f4")
    path.write_bytes(struct.pack("<iiiq", 0, 2, 5, 0) + floats.tobytes())
    # the reference runs on the float32-rounded values the file holds
    for p in params.values():
        for k, v in p.items():
            p[k] = v.astype(np.float32).astype(np.float64)
    return params
