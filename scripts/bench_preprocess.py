"""Benchmark: CPU preprocessing (vision_app.detect.preprocess, cv2) vs the CUDA kernel for one frame.

    python scripts/bench_preprocess.py [--model yolo-fastest-1.1-xl] [--frames 200] [--size 1280x720]
                                       [--models DIR] [--media DIR] [--require-gpu]

Prints ms per frame for: the CPU path; the GPU kernel including the frame upload and the copy of the
model input back to the host (what a caller needing a host blob pays); and the GPU kernel with the
input left on the device (what the TensorRT pipeline pays: only the raw frame crosses the bus).
A number-printing benchmark, not a test. Needs pycuda and an NVIDIA GPU for the GPU rows (without them it
says why and prints the CPU row only; --require-gpu makes that exit 1). Models and media come from
--models / --media, else $VISION_APP_MODELS / $VISION_APP_SHARED/media, else ../shared beside the checkout.
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
    shared = Path(os.environ.get("VISION_APP_SHARED", REPO.parent / "shared"))
    ap.add_argument("--models", default=os.environ.get("VISION_APP_MODELS", str(shared / "models")))
    ap.add_argument("--media", default=str(shared / "media"), help="the media folder (video/bigbuckbunny.mp4)")
    ap.add_argument("--require-gpu", action="store_true", help="exit 1 when the GPU rows cannot run")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    video = Path(args.media) / "video" / "bigbuckbunny.mp4"
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    if ok:
        frame = cv2.resize(frame, (w, h))
    else:
        print(f"  ({video} could not be read: timing a random frame instead)")
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
    entry = ModelStore(Path(args.models)).entry(args.model)
    pre = Preprocessor.from_entry(entry)
    print(f"preprocessing a {w}x{h} BGR frame for {args.model} ({dict(entry.preprocess)}), {args.frames} frames")
    print(f"  CPU (cv2 + numpy)                 {timed(lambda: pre(frame), args.frames):8.3f} ms/frame")
    try:
        from engines.cuda_context import GpuContext
        from engines.cuda_preprocess import GpuImageToTensor, PreprocessSpec

        gpu = GpuContext.get(0)
        spec = PreprocessSpec.from_entry(entry)
        k = GpuImageToTensor(gpu, spec)
    except Exception as exc:  # report why the GPU rows are missing instead of a traceback
        print(f"  GPU rows skipped: {exc}")
        return 1 if args.require_gpu else 0
    print(f"  GPU kernel, input back to host    {timed(lambda: k.run(frame), args.frames):8.3f} ms/frame "
          f"({gpu.info.name})")
    print(f"  GPU kernel, input stays on device {timed(lambda: k.run(frame, copy_back=False), args.frames):8.3f}"
          f" ms/frame")
    ref, _ = pre(frame)
    got = np.asarray(k.run(frame))  # copy_back=True: the model input on the host
    diff = np.abs(got - ref)
    levels = diff / np.asarray(spec.alpha, np.float32).reshape(1, 3, 1, 1)  # in 1/255 steps of the uint8 range
    print(f"  max |GPU - CPU| on this frame: {diff.max():.6f} ({levels.max():.3f} uint8 levels; "
          f"{int((levels > 1e-4).sum())} of {levels.size} values differ)")
    k.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
