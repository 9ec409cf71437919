"""Several clients, one Triton server (`python main.py bench --tasks triton`).

N client processes (1, 2, 4), each a 640x480 detection stream (the benchmark video stretched to 640x480,
looped), run the app's Detector (preprocess -> model -> decode -> NMS) for SECONDS each:
- local: every client has its own ONNX Runtime session (1 intra-op thread, the app's throughput mode);
- triton: every client sends its frames to one server (gRPC), once with the server's dynamic batcher on
  and once off (same model repository, `max_batch_size` 8, INSTANCES instances of 1 thread each).
Printed per row: total frames/s of all clients, per-frame latency p50/p95 (the whole Detector call, as a
camera stream sees it), and throughput relative to local ONNX Runtime with as many clients.

The local server is scripts/triton_serve.py in the Triton environment (scripts/triton_env.sh); with
`engine.triton_url` set (--triton-url) that server is measured instead, as it is configured. Clients
and server share this machine's cores: on a small CPU the server competes with its own clients.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision_app.benchmark import BenchContext, BenchTable, ms

log = logging.getLogger(__name__)

CLIENTS = (1, 2, 4)
SECONDS = 5.0          # measured per client and configuration, after WARMUP frames
WARMUP = 5
FRAME_SIZE = (640, 480)
INSTANCES = 2
MODEL_DEFAULT = "yolo-fastest-1.1-xl"


def _client(job: dict[str, Any], start: Any, out: Any) -> None:
    """One client process: load the detector, wait for the others, run frames for job['seconds']."""
    from vision_app.config import load_config
    from vision_app.detect.detector import Detector
    from vision_app.detect.stage import detect_params
    from vision_app.models import ModelStore
    from vision_app.stages import StageContext

    try:
        overrides: dict[str, Any] = {"engine.backend": job["backend"], "engine.threads": 1,
                                     "engine.triton_url": job.get("url") or None}
        cfg = load_config(None, overrides)
        store = ModelStore(Path(job["models"]))
        ctx = StageContext(cfg, store, backend=job["backend"], backend_reason="benchmark")
        det = Detector(store.entry(job["model"]), ctx.engine(job["model"]), detect_params(cfg.detect))
        frames = np.load(job["frames"], mmap_mode="r")
        for i in range(WARMUP):
            det(np.ascontiguousarray(frames[i % len(frames)]))
    except Exception as exc:  # reported to the parent, which prints it in the table's notes
        start.abort()
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        return
    try:
        start.wait(timeout=300)
    except threading.BrokenBarrierError:
        out.put({"error": "another client failed to start"})
        return
    lat: list[float] = []
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < job["seconds"]:
        t = time.perf_counter()
        det(np.ascontiguousarray(frames[i % len(frames)]))
        lat.append(time.perf_counter() - t)
        i += 1
    out.put({"frames": i, "elapsed": time.perf_counter() - t0, "latencies": lat})
    ctx.engines[0].close()


def measure(job: dict[str, Any], clients: int, server: Any = None) -> dict[str, Any]:
    """Run `clients` processes of job; frames/s over all of them and latency percentiles. server: a
    LocalTritonServer whose batch statistics give the mean batch the model ran on meanwhile."""
    spawn = mp.get_context("spawn")  # a clean interpreter per client: no inherited threads or sessions
    start, out = spawn.Barrier(clients + 1), spawn.Queue()  # + this process: it marks the start
    procs = [spawn.Process(target=_client, args=(job, start, out), daemon=True) for _ in range(clients)]
    for p in procs:
        p.start()
    before = None
    try:
        start.wait(timeout=300)
        before = server.batch_stats() if server is not None else None
    except threading.BrokenBarrierError:
        pass  # a client failed to load: its error is in the queue
    results = [out.get(timeout=job["seconds"] + 300) for _ in procs]
    for p in procs:
        p.join(30)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return {"error": errors[0]}
    lat = np.concatenate([r["latencies"] for r in results])
    elapsed = max(r["elapsed"] for r in results)
    res = {"fps": sum(r["frames"] for r in results) / elapsed, "p50": ms(lat, 50), "p95": ms(lat, 95),
           "frames": int(lat.size)}
    if before is not None:
        after, m = server.batch_stats(), job["model"]
        runs = after[m]["executions"] - before.get(m, {}).get("executions", 0)
        items = after[m]["items"] - before.get(m, {}).get("items", 0)
        res["mean_batch"] = items / runs if runs else float("nan")
    return res


def _frames(ctx: BenchContext, path: Path) -> Path:
    frames: list[np.ndarray] = []
    cap = cv2.VideoCapture(str(ctx.video)) if ctx.video else None
    while cap is not None and len(frames) < (ctx.frames or 100):
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(img, FRAME_SIZE, interpolation=cv2.INTER_LINEAR))
    if cap is not None:
        cap.release()
    if not frames:  # no video: the generated test pattern at 640x480
        from vision_app.sources import TestPatternSource

        src = TestPatternSource(*FRAME_SIZE, fps=1000.0)
        frames = [f for f in (src.read() for _ in range(30)) if f is not None]
    np.save(path, np.stack(frames))
    return path


def _servers(ctx: BenchContext, model: str, tmp: Path) -> tuple[list[tuple[str, Any]], list[str]]:
    """[(label, LocalTritonServer | url)] for dynamic batching on and off, and notes."""
    if ctx.config.engine.triton_url:
        return [(f"as configured at {ctx.config.engine.triton_url}", ctx.config.engine.triton_url)], []
    from vision_app.serving.local_server import LocalTritonServer, server_python
    from vision_app.serving.repo import RepositoryWriter

    python, why = server_python()
    if python is None:
        return [], [f"no Triton rows: {why}"]
    out: list[tuple[str, Any]] = []
    for label, dyn in (("on", True), ("off", False)):
        repo = tmp / f"repo-{label}"
        RepositoryWriter(ctx.models, repo, max_batch=8, instances=INSTANCES, dynamic_batching=dyn).export([model])
        out.append((label, LocalTritonServer(repo, python=python, threads=1, max_seconds=900,
                                             log_path=tmp / f"server-{label}.log")))
    return out, []


def run_triton_bench(ctx: BenchContext) -> list[BenchTable]:
    model = ctx.model_names[0] if ctx.model_names else MODEL_DEFAULT
    load = os.getloadavg()
    table = BenchTable(
        f"{model}: N client processes x one 640x480 detection stream, {SECONDS:g} s each "
        f"(frames/s of all clients; latency of one Detector call, ms)",
        ["backend", "dynamic batching", "clients", "frames/s", "per client", "p50 ms", "p95 ms", "vs local",
         "mean batch"])
    table.notes.append(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / "
                       f"{load[2]:.2f} (1/5/15 min) at the start; clients and server share these cores")
    with tempfile.TemporaryDirectory(prefix="vision-app-triton-bench-") as tmpdir:
        tmp = Path(tmpdir)
        job = {"models": str(ctx.models.root), "model": model, "frames": str(_frames(ctx, tmp / "frames.npy")),
               "seconds": SECONDS}
        local: dict[int, float] = {}
        for n in CLIENTS:
            ctx.on_progress(f"local ONNX Runtime, {n} client(s)")
            r = measure({**job, "backend": "onnxruntime"}, n)
            local[n] = r.get("fps", float("nan"))
            _row(table, "onnxruntime (local, 1 thread/client)", "-", n, r, local[n])
        servers, notes = _servers(ctx, model, tmp)
        table.notes += notes
        for label, server in servers:
            url = server if isinstance(server, str) else None
            try:
                if url is None:
                    ctx.on_progress(f"starting the local Triton server, dynamic batching {label}")
                    server.start()
                    url = server.grpc_url
                for n in CLIENTS:
                    ctx.on_progress(f"Triton ({url}), dynamic batching {label}, {n} client(s)")
                    _row(table, "triton (gRPC)", label, n,
                         measure({**job, "backend": "triton", "url": url}, n,
                                 None if isinstance(server, str) else server), local[n])
            finally:
                if not isinstance(server, str):
                    server.stop()
        if servers and not isinstance(servers[0][1], str):
            table.notes.append(f"local Triton server: PyTriton's tritonserver, ONNX Runtime behind it, "
                               f"max_batch_size 8, {INSTANCES} instances x 1 thread; 'off' = the same "
                               f"repository without the dynamic_batching block; mean batch = frames per "
                               f"model execution on the server during the run")
    return [table]


def _row(table: BenchTable, backend: str, dyn: str, n: int, r: dict[str, Any], local_fps: float) -> None:
    if "error" in r:
        table.notes.append(f"{backend}, {n} client(s) failed: {r['error']}")
        return
    table.rows.append({"backend": backend, "dynamic batching": dyn, "clients": n, "frames/s": r["fps"],
                       "per client": r["fps"] / n, "p50 ms": r["p50"], "p95 ms": r["p95"],
                       "vs local": f"{r['fps'] / local_fps:.2f}x" if local_fps == local_fps else "-",
                       "mean batch": r["mean_batch"] if "mean_batch" in r else "-"})
