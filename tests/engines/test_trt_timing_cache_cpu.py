"""The TensorRT timing cache, checked where TensorRT cannot run, against a stand-in IBuilderConfig that
follows TensorRT 10/11's documented API: a cache file TensorRT cannot read (create_timing_cache returns
None, or raises) is removed and replaced by an empty cache, and the build goes on, instead of
set_timing_cache(None) raising a TypeError in every build; the new cache is saved over the bad file.
Nothing here claims TensorRT works (test_gpu_tensorrt.py does that on a GPU with TensorRT).
"""
from __future__ import annotations

import logging
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from engines import trt_build


class TimingCache:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def serialize(self) -> memoryview:  # an IHostMemory: a buffer
        return memoryview(b"TIMING:" + self.blob)


class BuilderConfig:
    """tensorrt.IBuilderConfig's timing-cache calls: create_timing_cache(blob) gives an ITimingCache, or
    None for a blob it cannot read (raises instead when raises=True, as some versions do);
    set_timing_cache(cache, ignore_mismatch) -> bool, and refuses None like the pybind11 binding;
    get_timing_cache() -> the cache set, or None. Plus the calls build_plan makes besides."""

    def __init__(self, raises: bool = False, empty_ok: bool = True, set_ok: bool = True) -> None:
        self.raises, self.empty_ok, self.set_ok = raises, empty_ok, set_ok
        self.attached: TimingCache | None = None
        self.progress_monitor = None

    def create_timing_cache(self, blob: bytes) -> TimingCache | None:
        blob = bytes(blob)
        if not blob:
            return TimingCache(b"") if self.empty_ok else None
        if blob.startswith(b"GOOD"):
            return TimingCache(blob)
        if self.raises:
            raise RuntimeError("Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG)")
        return None

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        if not isinstance(cache, TimingCache):
            raise TypeError("set_timing_cache(): incompatible function arguments")
        self.attached = cache
        return self.set_ok

    def get_timing_cache(self) -> TimingCache | None:
        return self.attached

    def set_memory_pool_limit(self, pool: Any, size: int) -> None: ...
    def set_flag(self, flag: Any) -> None: ...
    def clear_flag(self, flag: Any) -> None: ...
    def add_optimization_profile(self, profile: Any) -> int: return 0


@pytest.mark.parametrize("raises", [False, True], ids=["returns None", "raises"])
def test_unreadable_timing_cache_is_replaced_by_an_empty_one(tmp_path: Path, caplog, raises: bool) -> None:
    path = tmp_path / "timing.cache"
    path.write_bytes(b"\x00garbage from a crashed write")
    config = BuilderConfig(raises=raises)
    with caplog.at_level(logging.WARNING, logger="engines.trt_build"):
        cache = trt_build._load_timing_cache(config, path)
    assert cache is not None and config.attached is cache and cache.blob == b""
    assert "is unusable" in caplog.text and "replacing it with an empty one" in caplog.text
    assert not path.exists()  # gone at once: a build that fails later does not meet it again
    trt_build._save_timing_cache(config, path)
    assert path.read_bytes() == b"TIMING:"


def test_readable_timing_cache_is_reused(tmp_path: Path, caplog) -> None:
    path = tmp_path / "timing.cache"
    path.write_bytes(b"GOOD entries")
    config = BuilderConfig()
    with caplog.at_level(logging.INFO, logger="engines.trt_build"):
        cache = trt_build._load_timing_cache(config, path)
    assert cache.blob == b"GOOD entries" and "reusing timing cache" in caplog.text
    assert path.read_bytes() == b"GOOD entries"


@pytest.mark.parametrize("config, message", [
    (BuilderConfig(empty_ok=False), "could not create an empty timing cache"),
    (BuilderConfig(set_ok=False), "refused the timing cache"),
])
def test_without_a_usable_timing_cache_the_build_goes_on_without_one(tmp_path: Path, caplog, config, message) -> None:
    with caplog.at_level(logging.WARNING, logger="engines.trt_build"):
        assert trt_build._load_timing_cache(config, tmp_path / "missing.cache") is None
    assert message in caplog.text


def _fake_tensorrt(config: BuilderConfig) -> types.ModuleType:
    """The tensorrt names build_plan uses (TensorRT 10 layout), with `config` as the builder config."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.99.0-stand-in"

    class ILogger:
        Severity = types.SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

        def __init__(self) -> None: ...

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: Any, logger: Any) -> None: ...

        def parse_from_file(self, path: str) -> bool:
            return True

    class Builder:
        def __init__(self, logger: Any) -> None: ...
        def create_network(self, flags: int) -> object: return object()
        def create_builder_config(self) -> BuilderConfig: return config

        def build_serialized_network(self, network: Any, cfg: BuilderConfig) -> memoryview:
            return memoryview(b"PLAN")

    trt.ILogger, trt.OnnxParser, trt.Builder = ILogger, OnnxParser, Builder  # type: ignore[attr-defined]
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)  # type: ignore[attr-defined]
    trt.BuilderFlag = types.SimpleNamespace(FP16=0, TF32=1)  # type: ignore[attr-defined]
    return trt


def test_build_with_a_corrupt_timing_cache_succeeds_and_rewrites_it(tmp_path: Path, monkeypatch, caplog) -> None:
    """The whole build_plan flow: before the fix, set_timing_cache(None) raised a TypeError here and every
    build failed until the file was deleted by hand."""
    config = BuilderConfig()
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(config))
    monkeypatch.setattr(trt_build, "_LOGGER", None)
    timing = tmp_path / "timing-trt10.cache"
    timing.write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING, logger="engines.trt_build"):
        plan = trt_build.build_plan(tmp_path / "model.onnx", model="m", precision="fp32", profiles=(),
                                    workspace_mb=64, timing_cache=timing, progress=trt_build.BuildProgress("m"))
    assert plan == b"PLAN" and timing.read_bytes() == b"TIMING:" and "is unusable" in caplog.text
