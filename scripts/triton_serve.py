"""A real Triton Inference Server (PyTriton's tritonserver) serving a model repository written by
`python main.py models export-triton`, with ONNX Runtime sessions behind it, on 127.0.0.1 only.

Run it with the Python of the Triton test environment (scripts/triton_env.sh prints where it is; that
environment holds nvidia-pytriton, which pins numpy < 2 and so cannot share the app's environment):

    $(bash scripts/triton_env.sh) scripts/triton_serve.py REPO --http-port 8000 --grpc-port 8001

Each model's config.pbtxt is honoured: its name and version, tensors and dims, max_batch_size, the
dynamic_batching block (present = Triton's dynamic batcher joins concurrent requests) and the instance
count (one ONNX Runtime session per instance). The official Triton container serves the same folder with
its own ONNX Runtime backend; this script is for machines without Docker (tests, CI, the benchmark).
It prints one line `READY http=PORT grpc=PORT models=N` when every model is loaded (and writes it to
--ready-file, which is safer to wait for: tritonserver's own log shares stdout), and stops cleanly on
SIGTERM / SIGINT, or by itself after --max-seconds.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger("triton_serve")

NP_TYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_FP64": np.float64, "TYPE_UINT8": np.uint8,
            "TYPE_INT8": np.int8, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64, "TYPE_BOOL": np.bool_}


def read_config(path: Path) -> Any:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


class BatchStats:
    """Per model: how many times the model ran and on how many items, so that a client can see the batches
    Triton's dynamic batcher formed (its own statistics API is closed in PyTriton). Written as JSON to
    --stats-file on SIGUSR1 and at exit: {"model": {"executions": n, "items": m}}."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.counts: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def add(self, model: str, items: int) -> None:
        with self.lock:
            c = self.counts.setdefault(model, [0, 0])
            c[0] += 1
            c[1] += items

    def write(self, *_: Any) -> None:
        if self.path is None:
            return
        with self.lock:
            data = {m: {"executions": c[0], "items": c[1]} for m, c in self.counts.items()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(self.path)


STATS = BatchStats(None)


def make_infer(model: str, onnx_path: Path, threads: int, output_names: list[str]
               ) -> Callable[..., dict[str, np.ndarray]]:
    import onnxruntime as ort
    from pytriton.decorators import batch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        STATS.add(model, len(next(iter(inputs.values()))))
        return dict(zip(output_names, session.run(output_names, inputs)))

    return infer


def bind_model(triton: Any, model_dir: Path, threads: int) -> str:
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    cfg = read_config(model_dir / "config.pbtxt")
    versions = list(cfg.version_policy.specific.versions) or sorted(
        int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not versions:
        raise SystemExit(f"{model_dir}: no version folder (expected {model_dir}/1/model.onnx)")
    version = max(versions)
    onnx_path = model_dir / str(version) / (cfg.default_model_filename or "model.onnx")
    if cfg.platform != "onnxruntime_onnx" or not onnx_path.is_file():
        raise SystemExit(f"{model_dir}: this server runs ONNX models only (platform onnxruntime_onnx with "
                         f"{onnx_path.name}); found platform '{cfg.platform}'")

    def tensors(items: Any) -> list[Any]:
        return [Tensor(name=t.name, dtype=NP_TYPES[model_config_type(t.data_type)], shape=tuple(t.dims))
                for t in items]

    outputs = [t.name for t in cfg.output]
    count = sum(g.count or 1 for g in cfg.instance_group) or 1
    batching = cfg.max_batch_size > 0
    config = ModelConfig(batching=batching, max_batch_size=cfg.max_batch_size if batching else 4,
                         batcher=DynamicBatcher() if cfg.HasField("dynamic_batching") else None)
    triton.bind(model_name=cfg.name, infer_func=[make_infer(cfg.name, onnx_path, threads, outputs) for _ in range(count)],
                inputs=tensors(cfg.input), outputs=tensors(cfg.output), model_version=version, config=config,
                strict=False)
    log.info("bound %s version %d: max_batch_size %d, dynamic batching %s, %d instance(s)", cfg.name, version,
             cfg.max_batch_size, "on" if cfg.HasField("dynamic_batching") else "off", count)
    return str(cfg.name)


def model_config_type(value: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return str(model_config_pb2.DataType.Name(value))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repository", type=Path, help="model repository (python main.py models export-triton DIR)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--names", nargs="*", help="serve only these models (default: every folder with a config.pbtxt)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per model instance")
    p.add_argument("--max-seconds", type=float, default=0, help="stop by itself after this long (0 = never)")
    p.add_argument("--ready-file", type=Path, help="write the READY line to this file when serving")
    p.add_argument("--stats-file", type=Path, help="write executions and items per model here (JSON) on "
                   "SIGUSR1 and at exit: items / executions = the mean batch the model ran on")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dirs = sorted(d for d in args.repository.iterdir() if (d / "config.pbtxt").is_file()) \
        if args.repository.is_dir() else []
    if args.names:
        dirs = [d for d in dirs if d.name in set(args.names)]
        missing = sorted(set(args.names) - {d.name for d in dirs})
        if missing:
            raise SystemExit(f"{args.repository} has no model(s) {missing}; export them first")
    if not dirs:
        raise SystemExit(f"{args.repository} holds no model (no NAME/config.pbtxt); run "
                         f"'python main.py models export-triton {args.repository}' first")
    # The Python backend's stub loads libpython through the dynamic loader; without this it may take the
    # system's libpython (another patch release) next to this interpreter's standard library, and fails in
    # multiprocessing ('_thread.RLock' object has no attribute '_recursion_count', pytriton issue #51).
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        os.environ["LD_LIBRARY_PATH"] = ":".join(x for x in (libdir, os.environ.get("LD_LIBRARY_PATH")) if x)

    from pytriton.triton import Triton, TritonConfig

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    STATS.path = args.stats_file
    signal.signal(signal.SIGUSR1, STATS.write)
    config = TritonConfig(http_address="127.0.0.1", http_port=args.http_port, grpc_address="127.0.0.1",
                          grpc_port=args.grpc_port, allow_metrics=False, exit_timeout_secs=1,
                          log_verbose=0)
    with tempfile.TemporaryDirectory(prefix="vision-app-pytriton-") as workspace:
        with Triton(config=config, workspace=Path(workspace) / "pytriton") as triton:
            names = [bind_model(triton, d, args.threads) for d in dirs]
            triton.run()
            ready = f"READY http={args.http_port} grpc={args.grpc_port} models={len(names)}"
            if args.ready_file:
                tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
                tmp.write_text(ready + "\n", encoding="utf-8")
                tmp.replace(args.ready_file)
            print(ready, flush=True)
            stop.wait(args.max_seconds or None)
            log.info("stopping")
    STATS.write()
    reap_group()
    return 0


def reap_group() -> None:
    """tritonserver's Python-backend stubs can outlive it when its exit timeout expires; when this script
    leads its own process group (a shell job, or LocalTritonServer's new session), end what is left of it."""
    group = os.getpgrp()
    if group != os.getpid():
        return
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue
        if pid != os.getpid() and int(fields[2]) == group:  # fields after "(comm)": state, ppid, pgrp
            try:
                os.kill(pid, signal.SIGKILL)
                log.info("ended leftover process %d", pid)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
