"""`python main.py models export-triton DIR`: write a Triton Inference Server model repository from the
manifest (vision_app/serving/repo.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vision_app.cli.common import app_config, model_store


def register(msub: argparse._SubParsersAction) -> None:
    """Add the ``export-triton`` action to the ``models`` sub-command."""
    from vision_app.cli import add_common
    from vision_app.serving.repo import PLATFORMS

    q = msub.add_parser("export-triton", help="write a Triton model repository (DIR/NAME/config.pbtxt and "
                        "DIR/NAME/VERSION/model.onnx) for the manifest's models")
    add_common(q)
    q.add_argument("dir", metavar="DIR", help="model repository folder to write (created if missing)")
    q.add_argument("--names", nargs="+", metavar="NAME", help="only these models (default: every present model)")
    q.add_argument("--max-batch", type=int, default=8, help="max_batch_size for models that run batched, with "
                   "Triton's dynamic batching (0 = no batching; default 8)")
    q.add_argument("--no-dynamic-batching", action="store_true", help="keep max_batch_size but leave Triton's "
                   "dynamic batcher off (each request runs alone)")
    q.add_argument("--instances", type=int, default=1, help="model instances per model (instance_group count)")
    q.add_argument("--platform", choices=PLATFORMS, default=PLATFORMS[0], help="onnxruntime_onnx (default) "
                   "or tensorrt_plan (builds plans; needs TensorRT and an NVIDIA GPU)")
    q.set_defaults(func=cmd_export_triton)


def cmd_export_triton(args: argparse.Namespace) -> int:
    from engines.trt_settings import TrtSettings
    from vision_app.serving.repo import RepositoryWriter

    store = model_store(args)
    trt = TrtSettings.from_config(app_config(args).tensorrt) if args.platform == "tensorrt_plan" else None
    writer = RepositoryWriter(store, Path(args.dir), max_batch=args.max_batch, instances=args.instances,
                              platform=args.platform, dynamic_batching=not args.no_dynamic_batching,
                              trt_settings=trt, on_progress=lambda m: print(f"  … {m}", file=sys.stderr))
    done = writer.export(args.names)
    w = max(len(m.name) for m in done)
    print(f"Triton model repository: {Path(args.dir).resolve()}")
    for m in done:
        batching = (f"max_batch_size {m.max_batch_size}, dynamic batching {'on' if m.dynamic_batching else 'off'}"
                    if m.max_batch_size else "no batching (max_batch_size 0)")
        print(f"  {m.name:<{w}}  version {m.version}  {m.platform}  {batching}  x{m.instances}  [{m.note}]")
    return 0
