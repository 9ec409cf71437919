"""Darknet → ONNX importer: the real Yolo-Fastest files against the shipped ONNX on real photos, the
layer types Yolo-Fastest does not use against a numpy darknet, bad files, and the CLI end to end."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

import darknet_numpy
from vision_app.detect.darknet import convert_darknet, load_darknet
from vision_app.detect.darknet_manifest import DEFAULT_LICENSE, manifest_entry, read_names
from vision_app.errors import ModelError
from vision_app.models import ModelEntry, ModelStore

REPO = Path(__file__).resolve().parents[3]
TOL = 1e-4


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _rgb_input(path: Path) -> np.ndarray:
    """The Yolo-Fastest input: RGB, stretched to 320×320, /255, NCHW float32."""
    bgr = cv2.imread(str(path))
    if bgr is None:
        pytest.fail(f"cannot read test image {path}")
    rgb = cv2.cvtColor(cv2.resize(bgr, (320, 320)), cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) / 255).transpose(2, 0, 1)[None]


@pytest.fixture(scope="module", params=["yolo-fastest-1.1-xl", "yolo-fastest-1.1"])
def converted(request, models_dir: Path, tmp_path_factory) -> tuple[str, Path, object, str]:
    name = request.param
    out = tmp_path_factory.mktemp("darknet") / f"{name}.onnx"
    up = models_dir / "upstream"
    model, sha = convert_darknet(up / f"{name}.cfg", up / f"{name}.weights", out)
    return name, out, model, sha


@pytest.mark.parametrize("image", ["bus.jpg", "dog.jpg"])
def test_matches_reference_onnx_on_real_photos(converted, models_dir: Path, media_dir: Path, image: str) -> None:
    name, out, _, _ = converted
    ours, ref = _session(out), _session(models_dir / "detection" / f"{name}.onnx")
    assert [(i.name, i.shape) for i in ours.get_inputs()] == [("input", [1, 3, 320, 320])]
    assert [(o.name, o.shape) for o in ours.get_outputs()] == [(o.name, o.shape) for o in ref.get_outputs()] \
        == [("l120", [1, 255, 10, 10]), ("l129", [1, 255, 20, 20])]
    x = _rgb_input(media_dir / "scenes" / image)
    for head, a, b in zip(("l120", "l129"), ours.run(None, {"input": x}), ref.run(None, {"input": x})):
        diff = float(np.abs(a - b).max())
        print(f"{name} {image} {head}: max abs diff {diff:.3g} (outputs up to {np.abs(b).max():.1f})")
        assert diff <= TOL
        assert np.abs(b).max() > 1  # a real activation map, not an all-zero head that matches trivially


def test_manifest_entry_has_the_cfg_anchors_and_loads(converted) -> None:
    name, out, model, sha = converted
    text = manifest_entry(name, f"detection/{out.name}", sha, model)
    entry = ModelEntry.from_table(name, tomllib.loads(text)["models"][name], "test")
    assert (entry.file, entry.sha256, entry.task, entry.license) == (f"detection/{out.name}", sha, "detect",
                                                                     DEFAULT_LICENSE)
    assert len(entry.classes) == 80 and entry.classes[5] == "bus"
    assert entry.input == {"name": "input", "size": [320, 320]}
    assert entry.preprocess == {"resize": "stretch", "color": "rgb", "scale": 1 / 255}
    assert entry.decode == {"type": "yolo_anchor", "heads": [
        {"output": "l120", "stride": 32, "anchors": [[115, 73], [119, 199], [242, 238]]},
        {"output": "l129", "stride": 16, "anchors": [[12, 18], [37, 49], [52, 132]]}]}


# --- layer types Yolo-Fastest does not use, against the numpy darknet --------------------------------
SMALL_CFG = """\
[net]
width=16
height=12
channels=3
[convolutional]       # 0: 8x12x16
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky
[maxpool]             # 1: size 2 stride 1: darknet pads 0 before, 1 after
size=2
stride=1
[convolutional]       # 2: grouped
batch_normalize=1
filters=8
groups=4
size=3
stride=1
pad=1
activation=mish
[route]               # 3: channels 4..7 of layer 2 (YOLOv4-tiny's split)
layers=-1
groups=2
group_id=1
[convolutional]       # 4
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=swish
[dropout]             # 5
probability=.1
[shortcut]            # 6: layer 5 (= 4) + layer 1
from=1
activation=linear
[maxpool]             # 7: 8x6x8
size=3
stride=2
[convolutional]       # 8: no batch norm, 16x3x4
filters=16
size=3
stride=2
pad=1
activation=relu
[upsample]            # 9: 16x6x8
stride=2
[route]               # 10: first halves of layers 9 and 7: 12x6x8
layers=-1,7
groups=2
group_id=0
[convolutional]       # 11: head, stride 2
filters=18
size=1
stride=1
pad=1
activation=linear
[yolo]                # 12
mask=0,1,2
anchors=2,3, 4,5, 6,7, 8,9, 10,11, 12.5,13
classes=1
num=6
scale_x_y=1.05
[route]               # 13
layers=8
[convolutional]       # 14: padding= instead of pad=1
filters=8
size=3
stride=1
padding=1
activation=logistic
[convolutional]       # 15: head, stride 4
filters=18
size=1
stride=1
activation=linear
[yolo]                # 16
mask=3,4,5
anchors=2,3, 4,5, 6,7, 8,9, 10,11, 12.5,13
classes=1
num=6
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path, dict]:
    d = tmp_path_factory.mktemp("small")
    cfg, weights = d / "small.cfg", d / "small.weights"
    cfg.write_text(SMALL_CFG)
    params = darknet_numpy.write_weights(weights, darknet_numpy.parse(SMALL_CFG), np.random.default_rng(7))
    return cfg, weights, params


def test_small_network_matches_numpy_darknet(small, tmp_path: Path) -> None:
    cfg, weights, params = small
    model, _ = convert_darknet(cfg, weights, tmp_path / "small.onnx")
    image = np.random.default_rng(1).uniform(0, 1, (3, 12, 16))
    expected = darknet_numpy.forward(darknet_numpy.parse(SMALL_CFG), params, image)
    sess = _session(tmp_path / "small.onnx")
    got = dict(zip([o.name for o in sess.get_outputs()],
                   sess.run(None, {"input": image[None].astype(np.float32)})))
    assert list(got) == ["l11", "l15"] and list(expected) == ["l11", "l15"]
    for name in got:
        assert got[name].shape == (1, *expected[name].shape)
        assert np.abs(expected[name]).max() > 0.5
        assert float(np.abs(got[name][0] - expected[name]).max()) <= TOL, name
    assert [(h.output, h.grid, h.stride, h.anchors, h.scale_x_y) for h in model.heads] == [
        ("l11", (6, 8), 2.0, ((2, 3), (4, 5), (6, 7)), 1.05),
        ("l15", (3, 4), 4.0, ((8, 9), (10, 11), (12.5, 13)), 1.0)]


def test_small_network_manifest_entry(small, tmp_path: Path) -> None:
    cfg, weights, _ = small
    model = load_darknet(cfg, weights)
    text = manifest_entry("small", "small.onnx", "0" * 64, model, license="MIT")
    table = tomllib.loads(text)["models"]["small"]
    entry = ModelEntry.from_table("small", table, "test")
    assert entry.classes == ("class0",) and entry.input["size"] == [16, 12]
    assert entry.decode["heads"] == [
        {"output": "l11", "stride": 2, "anchors": [[2, 3], [4, 5], [6, 7]], "scale_x_y": 1.05},
        {"output": "l15", "stride": 4, "anchors": [[8, 9], [10, 11], [12.5, 13]]}]
    names = tmp_path / "my.names"
    names.write_text("cat\n\ndog\n")
    with pytest.raises(ModelError, match=r"2 class names .* classes=1"):
        manifest_entry("small", "small.onnx", "0" * 64, model, names=read_names(names), names_origin=str(names))
    assert ModelEntry.from_table("s", tomllib.loads(manifest_entry("s", "s.onnx", "0" * 64, model,
                                 names=["cat"]))["models"]["s"], "test").classes == ("cat",)


def test_letter_box_cfg_asks_for_a_centred_letterbox(small, tmp_path: Path) -> None:
    cfg, weights, _ = small
    (tmp_path / "lb.cfg").write_text(SMALL_CFG.replace("[net]\n", "[net]\nletter_box=1\n"))
    model = load_darknet(tmp_path / "lb.cfg", weights)
    table = tomllib.loads(manifest_entry("lb", "lb.onnx", "0" * 64, model))["models"]["lb"]
    assert table["preprocess"] == {"resize": "letterbox", "anchor": "center", "pad": 127, "color": "rgb",
                                   "scale": 1 / 255}


# --- bad files ------------------------------------------------------------------------------------
def test_truncated_weights_say_how_many_floats(models_dir: Path, tmp_path: Path) -> None:
    src = models_dir / "upstream" / "yolo-fastest-1.1.weights"
    data = src.read_bytes()
    need, have = (len(data) - 20) // 4, (len(data) // 2 - 20) // 4
    (tmp_path / "cut.weights").write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelError, match=rf"too short .* expected {need} floats .* found {have}"):
        load_darknet(models_dir / "upstream" / "yolo-fastest-1.1.cfg", tmp_path / "cut.weights")
    (tmp_path / "tiny.weights").write_bytes(data[:10])
    with pytest.raises(ModelError, match="not a darknet weights file"):
        load_darknet(models_dir / "upstream" / "yolo-fastest-1.1.cfg", tmp_path / "tiny.weights")


HEAD = "[net]\nwidth=8\nheight=8\nchannels=3\n"
CONV = "[convolutional]\nfilters={f}\nsize=1\nactivation={a}\n"
YOLO = "[yolo]\nmask=0\nanchors=1,2\nclasses=1\nnum=1\n"


@pytest.mark.parametrize("cfg, message", [
    (HEAD + CONV.format(f=6, a="linear") + "[reorg3d]\nstride=2\n" + YOLO,
     r"bad\.cfg:9: unknown layer type \[reorg3d\] \(layer 1\)"),
    (HEAD + CONV.format(f="six", a="linear") + YOLO, r"bad\.cfg:6: .*filters='six': expected an integer"),
    (HEAD + CONV.format(f=6, a="gelu") + YOLO, r"bad\.cfg:8: .*activation='gelu' is not supported"),
    (HEAD + CONV.format(f=7, a="linear") + YOLO, r"has 7 filters.*needs filters=6"),
    (HEAD + CONV.format(f=6, a="linear") + "[route]\nlayers=3\n" + YOLO, r"refers to layer 3"),
    (HEAD + CONV.format(f=6, a="linear"), r"no \[yolo\] section"),
    ("[convolutional]\nfilters=1\n", r"must start with \[net\]"),
    (HEAD + "garbage\n" + YOLO, r"bad\.cfg:5: expected key=value inside \[net\], found 'garbage'"),
], ids=["unknown-section", "bad-int", "bad-activation", "head-filters", "forward-route", "no-yolo",
        "no-net", "stray-line"])
def test_bad_cfg_is_a_model_error_that_says_where(cfg: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "bad.cfg").write_text(cfg)
    (tmp_path / "w.weights").write_bytes(b"\0" * 20 + np.zeros(100, "<f4").tobytes())
    with pytest.raises(ModelError, match=message):
        load_darknet(tmp_path / "bad.cfg", tmp_path / "w.weights")


# --- CLI ------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VISION_APP_MODELS"}
    return subprocess.run([sys.executable, str(REPO / "main.py"), "models", "import-darknet", *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def test_cli_imports_appends_and_refuses_duplicates(models_dir: Path, tmp_path: Path) -> None:
    up = models_dir / "upstream"
    folder = tmp_path / "models"
    folder.mkdir()
    args = [str(up / "yolo-fastest-1.1.cfg"), str(up / "yolo-fastest-1.1.weights"), "--models", str(folder),
            "-o", str(folder / "detection" / "mine.onnx"), "--name", "my-yolo", "--license", "YOLO v2"]
    r = _cli(*args, "--append-manifest")
    assert r.returncode == 0, r.stderr
    printed = tomllib.loads(r.stdout)["models"]["my-yolo"]
    assert printed["decode"]["heads"][0]["anchors"] == [[115, 73], [119, 199], [242, 238]]
    store = ModelStore(folder)  # loads the folder's manifest.toml beside the built-in one
    assert store.entry("my-yolo").file == "detection/mine.onnx" and store.status("my-yolo") == "present"
    assert store.path("my-yolo") == folder / "detection" / "mine.onnx"
    again = _cli(*args, "--append-manifest")
    assert again.returncode == 2 and "already in the manifest" in again.stderr
    over = _cli(*args[:-4], "--name", "other")  # same -o: would silently break my-yolo's checksum
    assert over.returncode == 2 and "is the file of model 'my-yolo'" in over.stderr
    builtin = _cli(*args[:-4], "--name", "yolo-fastest-1.1", "--append-manifest")
    assert builtin.returncode == 2 and "already in the manifest" in builtin.stderr
    assert len(re.findall(r"^\[models\.", (folder / "manifest.toml").read_text(), re.M)) == 1
    outside = _cli(*args[:4], "-o", str(tmp_path / "elsewhere.onnx"), "--name", "x", "--append-manifest")
    assert outside.returncode == 2 and "inside the model folder" in outside.stderr
    assert not (tmp_path / "elsewhere.onnx").exists()
