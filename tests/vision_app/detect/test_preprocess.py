"""Preprocessing: letterbox geometry, exact un-mapping to source pixels, colour order and normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from vision_app.detect.preprocess import BoxMap, Preprocessor, letterbox_geometry
from vision_app.errors import ModelError

GEOMETRY = [
    # src w, h, dst w, h, anchor, expected (new_w, new_h, pad_x, pad_y)
    (640, 480, 416, 416, "topleft", (416, 312, 0, 0)),
    (640, 480, 416, 416, "center", (416, 312, 0, 52)),
    (810, 1080, 416, 416, "center", (312, 416, 52, 0)),
    (810, 1080, 416, 416, "topleft", (312, 416, 0, 0)),
    (640, 272, 320, 320, "center", (320, 136, 0, 92)),
    (100, 100, 320, 320, "center", (320, 320, 0, 0)),     # upscale, square
    (101, 50, 64, 64, "center", (64, 32, 0, 16)),         # rounding: 50 * 64/101 = 31.7 -> 32
    (300, 100, 64, 65, "center", (64, 21, 0, 22)),        # odd padding: the extra pixel goes bottom
]


@pytest.mark.parametrize("sw, sh, dw, dh, anchor, expected", GEOMETRY)
def test_letterbox_geometry(sw: int, sh: int, dw: int, dh: int, anchor: str, expected: tuple) -> None:
    assert letterbox_geometry(sw, sh, dw, dh, anchor) == expected


UNMAP = [
    # src (w, h), model size, resize, anchor
    ((640, 480), (416, 416), "letterbox", "topleft"),
    ((640, 480), (416, 416), "letterbox", "center"),
    ((810, 1080), (416, 416), "letterbox", "center"),
    ((101, 50), (64, 64), "letterbox", "center"),
    ((640, 272), (320, 320), "stretch", "center"),
    ((1280, 720), (320, 320), "stretch", "center"),
]


@pytest.mark.parametrize("src, size, resize, anchor", UNMAP)
def test_box_map_round_trip_is_exact(src: tuple[int, int], size: tuple[int, int], resize: str,
                                     anchor: str) -> None:
    pre = Preprocessor(size, resize=resize, anchor=anchor)
    _, bm = pre.resize_image(np.zeros((src[1], src[0], 3), np.uint8))
    boxes = np.array([[0, 0, src[0], src[1]], [10.5, 20.25, 33, 47], [src[0] - 1, src[1] - 1, src[0], src[1]]],
                     np.float32)
    np.testing.assert_allclose(bm.to_source(bm.to_input(boxes)), boxes, atol=1e-3)
    # the whole source image lands exactly on the resized (unpadded) region of the model input
    full = bm.to_input(boxes[:1])[0]
    nw, nh, px, py = (letterbox_geometry(*src, *size, anchor) if resize == "letterbox" else (*size, 0, 0))
    np.testing.assert_allclose(full, [px, py, px + nw, py + nh], atol=1e-3)


@pytest.mark.parametrize("anchor", ["center", "topleft"])
def test_letterbox_puts_a_source_rectangle_where_the_map_says(anchor: str) -> None:
    """A white rectangle drawn in the source is found in the letterboxed image at bm.to_input(rect)."""
    src = np.zeros((480, 640, 3), np.uint8)
    rect = np.array([[200, 120, 440, 360]], np.float32)
    src[120:360, 200:440] = 255
    img, bm = Preprocessor((416, 416), resize="letterbox", anchor=anchor, pad=114).resize_image(src)
    ys, xs = np.nonzero(img[..., 0] > 200)
    found = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    np.testing.assert_allclose(found, bm.to_input(rect)[0], atol=1.0)
    pad_rows = img[:52] if anchor == "center" else img[-104:]
    assert (pad_rows == 114).all()  # the padding has the manifest's pad value


def test_to_source_clips_to_the_image() -> None:
    bm = BoxMap(0.5, 0.5, 0.0, 10.0, 100, 50)
    out = bm.to_source(np.array([[-10, 0, 60, 60]], np.float32))
    np.testing.assert_allclose(out, [[0, 0, 100, 50]])
    assert bm.to_source(np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_blob_colour_order_scale_mean_std() -> None:
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30  # B, G, R
    rgb = Preprocessor((3, 2), color="rgb", scale=1 / 255)(img)[0]
    assert rgb.shape == (1, 3, 2, 3) and rgb.dtype == np.float32 and rgb.flags.c_contiguous
    np.testing.assert_allclose(rgb[0, :, 0, 0], np.array([30, 20, 10]) / 255, rtol=1e-6)
    bgr = Preprocessor((3, 2), color="bgr", scale=1.0)(img)[0]
    np.testing.assert_allclose(bgr[0, :, 1, 2], [10, 20, 30])
    norm = Preprocessor((3, 2), color="rgb", scale=1.0, mean=(127.5, 127.5, 127.5), std=(128, 64, 32))(img)[0]
    np.testing.assert_allclose(norm[0, :, 0, 0], [(30 - 127.5) / 128, (20 - 127.5) / 64, (10 - 127.5) / 32],
                               rtol=1e-5)


def test_from_manifest_entries(store) -> None:
    fastest = Preprocessor.from_entry(store.entry("yolo-fastest-1.1-xl"))
    assert (fastest.size, fastest.resize, fastest.color) == ((320, 320), "stretch", "rgb")
    yolox = Preprocessor.from_entry(store.entry("yolox-nano"))
    assert (yolox.size, yolox.resize, yolox.anchor, yolox.pad, yolox.color) == \
        ((416, 416), "letterbox", "topleft", 114.0, "bgr")
    blob, bm = yolox(np.full((272, 640, 3), 7, np.uint8))
    assert blob.shape == (1, 3, 416, 416) and blob[0, 0, 0, 0] == 7.0 and blob[0, 0, -1, 0] == 114.0
    assert (bm.scale_x, bm.pad_x, bm.pad_y) == (416 / 640, 0.0, 0.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"resize": "crop"}, "preprocess.resize"),
    ({"anchor": "middle", "resize": "letterbox"}, "preprocess.anchor"),
    ({"color": "gray"}, "preprocess.color"),
    ({"std": (1.0, 0.0, 1.0)}, "no zero std"),
])
def test_bad_manifest_values_are_model_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        Preprocessor((32, 32), **kwargs)
