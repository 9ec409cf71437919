"""Benchmark: CPU preprocessing (vision_app.detect.preprocess, cv2) vs the CUDA kernel for one frame.

    python scripts/bench_preprocess.py [--model yolo-fastest-1.1-xl] [--frames 200] [--size 1280x720]

Prints ms per frame for: the CPU path; the GPU kernel including the frame upload and the copy of the
model input back to the host (what a caller needing a host blob pays); and the GPU kernel with the
input left on the device (what the TensorRT pipeline pays: only the raw frame crosses the bus).
A number-printing benchmark, not a test. Needs pycuda and an NVIDIA GPU for the GPU rows.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vision_app.detect.preprocess import Preprocessor  # noqa: E402
from vision_app.models import ModelStore  # noqa: E402


def timed(fn, frames: int) -> float:
    fn()  # warm-up (kernel compile, buffer allocation, table upload)
    t0 = time.perf_counter()
    for _ in range(frames):
        fn()
    return 1000 * (time.perf_counter() - t0) / frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="yolo-fastest-1.1-xl")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", default="1280x720", help="frame WxH (a bigbuckbunny.mp4 frame, resized)")
    ap.add_argument("--models", default=os.environ.get("VISION_APP_MODELS", str(REPO.parent / "shared/models")))
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    cap = cv2.VideoCapture(str(REPO.parent / "shared/media/video/bigbuckbunny.mp4"))
    ok, frame = cap.read()
    cap.release()
    frame = cv2.resize(frame, (w, h)) if ok else np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
    entry = ModelStore(Path(args.models)).entry(args.model)
    pre = Preprocessor.from_entry(entry)
    print(f"preprocessing a {w}x{h} BGR frame for {args.model} ({dict(entry.preprocess)}), {args.frames} frames")
    print(f"  CPU (cv2 + numpy)                 {timed(lambda: pre(frame), args.frames):8.3f} ms/frame")
    try:
        from engines.cuda_context import GpuContext
        from engines.cuda_preprocess import GpuImageToTensor, PreprocessSpec

        gpu = GpuContext.get(0)
        k = GpuImageToTensor(gpu, PreprocessSpec.from_entry(entry))
    except Exception as exc:  # report why the GPU rows are missing instead of a traceback
        print(f"  GPU rows skipped: {exc}")
        return 0
    print(f"  GPU kernel, input back to host    {timed(lambda: k.run(frame), args.frames):8.3f} ms/frame "
          f"({gpu.info.name})")
    print(f"  GPU kernel, input stays on device {timed(lambda: k.run(frame, copy_back=False), args.frames):8.3f}"
          f" ms/frame")
    ref, _ = pre(frame)
    diff = np.abs(k.run(frame) - ref).max()
    print(f"  max |GPU - CPU| on this frame: {diff:.6f}")
    k.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
