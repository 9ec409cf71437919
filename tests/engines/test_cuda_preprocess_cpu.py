"""The GPU preprocessing kernel's code, checked where there is no GPU:
- its per-pixel C (PIXEL_SOURCE, the very text the CUDA kernel includes) is built with gcc and run on the
  real photos for every preprocessing mode in the manifest, against vision_app.detect.preprocess (cv2);
- the full CUDA source compiles with nvcc to PTX (where nvcc exists).
The kernel on a real GPU is tests/engines/test_gpu.py."""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.cuda_preprocess import KERNEL_SOURCE, PIXEL_SOURCE, PreprocessSpec, axis_table, geometry, \
    kernel_args, tables
from vision_app.detect.preprocess import Preprocessor

SHIM = r"""
#include <math.h>
#define PP_FN static inline
#define PP_MUL(u, a) ((u) * (a))
""" + PIXEL_SOURCE + r"""
void pp_run(const unsigned char* src, int src_pitch, const int* xt, const int* yt, float* dst, int dst_w,
            int dst_h, int off_x, int off_y, int new_w, int new_h, int pad, int swap_rb,
            float a0, float a1, float a2, float b0, float b1, float b2)
{
    for (int y = 0; y < dst_h; ++y)
        for (int x = 0; x < dst_w; ++x)
            pp_pixel(src, src_pitch, xt, yt, dst, dst_w, dst_h, off_x, off_y, new_w, new_h, pad, swap_rb,
                     a0, a1, a2, b0, b1, b2, x, y);
}
"""


class Entry:
    """The two fields of a ModelEntry that preprocessing reads."""

    def __init__(self, inp: dict, pp: dict) -> None:
        self.name, self.input, self.preprocess = "test", inp, pp


MODES = {
    "stretch rgb /255 (Yolo-Fastest)": Entry({"size": [320, 320]}, {"resize": "stretch", "color": "rgb",
                                                                    "scale": 1 / 255}),
    "letterbox topleft bgr pad 114 (YOLOX)": Entry({"size": [416, 416]}, {"resize": "letterbox", "anchor": "topleft",
                                                                         "pad": 114, "color": "bgr"}),
    "letterbox center mean/std": Entry({"size": [416, 320]}, {"resize": "letterbox", "anchor": "center", "pad": 0,
                                                              "color": "rgb", "mean": [127.5] * 3,
                                                              "std": [127.5] * 3}),
    "pad to x32 (YuNet)": Entry({"dynamic": True, "multiple_of": 32}, {"resize": "none", "color": "bgr"}),
    "upscale to 1280x720": Entry({"size": [1280, 720]}, {"resize": "stretch", "color": "rgb", "scale": 1 / 255}),
}


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> ctypes.CDLL:
    if shutil.which("gcc") is None:
        pytest.skip("no gcc on this machine to build the kernel's C code for the CPU")
    d = tmp_path_factory.mktemp("ppshim")
    (d / "pp.c").write_text(SHIM)
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-ffp-contract=off", "-o", str(d / "pp.so"), str(d / "pp.c"),
                    "-lm"], check=True, capture_output=True)
    return ctypes.CDLL(str(d / "pp.so"))


def run_shim(lib: ctypes.CDLL, spec: PreprocessSpec, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    g = geometry(spec, w, h)
    xt, yt = tables(g, w, h)
    out = np.full((1, 3, g.dst_h, g.dst_w), np.nan, np.float32)
    scalars = [ctypes.c_int(int(a)) if isinstance(a, np.int32) else ctypes.c_float(float(a))
               for a in kernel_args(spec, g)]
    vp = ctypes.c_void_p
    lib.pp_run(img.ctypes.data_as(vp), ctypes.c_int(w * 3), xt.ctypes.data_as(vp), yt.ctypes.data_as(vp),
               out.ctypes.data_as(vp), *scalars)
    return out


@pytest.fixture(scope="module")
def photos(media_dir: Path) -> dict[str, np.ndarray]:
    return {p.name: cv2.imread(str(p)) for p in sorted((media_dir / "scenes").iterdir())}


@pytest.mark.parametrize("mode", list(MODES))
def test_kernel_pixel_code_matches_cpu_preprocessing(shim, photos, mode: str) -> None:
    entry = MODES[mode]
    spec, pre = PreprocessSpec.from_entry(entry), Preprocessor.from_entry(entry)
    for name, img in photos.items():
        ref, _ = pre(img)
        got = run_shim(shim, spec, img)
        assert got.shape == ref.shape, name
        levels = np.abs(got - ref) / np.asarray(spec.alpha, np.float32).reshape(1, 3, 1, 1)
        assert levels.max() <= 1.0 + 1e-4, (name, float(levels.max()))  # the 1/255 budget
        assert (levels > 1e-4).mean() <= 1e-3, name  # and in practice bit-exact but for rare pixels


@pytest.mark.parametrize("src, dst", [(1080, 320), (320, 1080), (100, 100), (1, 5), (641, 640)])
def test_axis_table_taps_and_weights(src: int, dst: int) -> None:
    t = axis_table(src, dst)
    assert t.shape == (dst, 4) and t.dtype == np.int32
    assert (t[:, 0] >= 0).all() and (t[:, 1] <= src - 1).all() and (t[:, 1] >= t[:, 0]).all()
    assert ((t[:, 2] + t[:, 3]) == 2048).all()
    if src == dst:
        assert (t[:, 0] == np.arange(dst)).all() and (t[:, 2] == 2048).all()


def test_cuda_source_compiles_with_nvcc(tmp_path: Path) -> None:
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not installed: the CUDA kernel source is only compiled on machines with the toolkit")
    (tmp_path / "k.cu").write_text(KERNEL_SOURCE)
    r = subprocess.run(["nvcc", "-ptx", "-arch=compute_75", str(tmp_path / "k.cu"), "-o", str(tmp_path / "k.ptx")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert ".entry bgr_to_nchw" in (tmp_path / "k.ptx").read_text()


def test_cuda_source_compiles_with_nvrtc() -> None:
    """The NVRTC fallback's compile step (no GPU needed), where libnvrtc exists (a CUDA toolkit or the
    nvidia-cuda-nvrtc wheel); the kernel it builds runs on a GPU in test_gpu.py."""
    from engines.cuda_compile import find_nvrtc, nvrtc_ptx
    from vision_app.errors import EngineError

    lib = find_nvrtc()
    if lib is None:
        pytest.skip("no libnvrtc here (CUDA toolkit lib64, the loader's path or an nvidia-*-nvrtc wheel)")
    ptx = nvrtc_ptx(KERNEL_SOURCE, "compute_75", lib)
    assert b".entry bgr_to_nchw" in ptx and ptx.endswith(b"\0")  # NUL-terminated, as cuModuleLoadData wants
    with pytest.raises(EngineError, match=r"could not compile the kernel: .*error"):
        nvrtc_ptx("this is not CUDA C", "compute_75", lib)
