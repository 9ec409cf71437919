"""Benchmark: 1:N face search time on synthetic templates (`python main.py bench --tasks face_search`).

Random L2-normalised 128-d templates stand in for a large gallery (search cost does not depend on the
values). Measured: TemplateIndex.search for one query and for a batch of 8 (one matrix product + best
template per person) at 1,000 and 100,000 templates, with one and with five templates per person; and
the Matcher's cold build from an encrypted Gallery (decrypting every template), which is what the kiosk
pays once at start-up.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vision_app.benchmark import BenchTable, time_calls
from vision_app.gallery.gallery import Gallery
from vision_app.gallery.matcher import Matcher, TemplateIndex

MODEL = ("synthetic", "128d")
SIZES = (1_000, 100_000)


def synthetic_templates(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def search_rows(sizes: Sequence[int] = SIZES, per_person: Sequence[int] = (1, 5),
                batches: Sequence[int] = (1, 8), repeat: int = 200) -> list[dict[str, Any]]:
    """One row per (templates, templates per person, query batch): median and p95 ms per search call."""
    rows = []
    for n in sizes:
        emb = synthetic_templates(n)
        for k in per_person:
            people = max(1, n // k)
            index = TemplateIndex(emb, np.arange(n) % people, [f"p{i}" for i in range(people)], MODEL)
            for b in batches:
                q = synthetic_templates(b, seed=1)
                reps = max(5, repeat if n <= 10_000 else repeat // 10)
                t = time_calls(lambda: index.search(q, 0.4), reps)
                rows.append({"templates": n, "per_person": k, "people": people, "batch": b,
                             "p50_ms": round(float(np.median(t)) * 1e3, 3),
                             "p95_ms": round(float(np.percentile(t, 95)) * 1e3, 3),
                             "per_query_ms": round(float(np.median(t)) * 1e3 / b, 3)})
    return rows


def build_rows(sizes: Sequence[int] = SIZES) -> list[dict[str, Any]]:
    """Enrol n synthetic templates in a temporary encrypted gallery, then time the Matcher's cold build
    (decrypt all + stack) and an incremental rebuild after one more enrolment."""
    rows = []
    for n in sizes:
        emb = synthetic_templates(n)
        with tempfile.TemporaryDirectory() as tmp, Gallery(Path(tmp) / "bench.db") as g:
            t0 = time.perf_counter()
            per = 5
            for start in range(0, n, 10_000):  # a few big transactions, like an import
                chunk = emb[start:start + 10_000]
                g.load_records([_person(f"p{(start + i) // per}", chunk[i:i + per])
                                for i in range(0, len(chunk), per)])
            enrol_s = time.perf_counter() - t0
            m = Matcher(g, MODEL, 0.4)
            t0 = time.perf_counter()
            m.index()
            cold_s = time.perf_counter() - t0
            g.enroll("newcomer", synthetic_templates(1, seed=2), *MODEL)
            t0 = time.perf_counter()
            m.index()
            incr_s = time.perf_counter() - t0
        rows.append({"templates": n, "enrol_all_s": round(enrol_s, 3), "cold_build_s": round(cold_s, 3),
                     "rebuild_after_1_enrol_s": round(incr_s, 3)})
    return rows


def _person(name: str, emb: np.ndarray):
    from vision_app.gallery.records import PersonRecord, TemplateRecord

    return PersonRecord(name, "", [TemplateRecord(*MODEL, e) for e in emb])


def run_face_search_bench(ctx: Any) -> list[Any]:
    """Entry for the bench registry (vision_app.benchmark): two tables."""
    repeat = int(getattr(ctx, "repeat", 200))
    ctx.on_progress("1:N search on synthetic templates")
    search = BenchTable("1:N face search (TemplateIndex.search, 128-d float32)",
                        ["templates", "per_person", "people", "batch", "p50_ms", "p95_ms", "per_query_ms"],
                        search_rows(repeat=repeat),
                        ["one (batch, T) matrix product + np.maximum.reduceat per person + argmax"])
    ctx.on_progress("matcher build from an encrypted gallery")
    build = BenchTable("Matcher build from an encrypted SQLite gallery (Fernet)",
                       ["templates", "enrol_all_s", "cold_build_s", "rebuild_after_1_enrol_s"], build_rows(),
                       ["cold build decrypts every template once (kiosk start-up); later rebuilds "
                        "decrypt only new templates"])
    return [search, build]
