"""TensorRT path, the parts that run without a GPU: engine-cache keys and invalidation, corrupt/foreign
plan detection, optimization profiles from config, shape checks, build-progress bookkeeping, backend
selection when tensorrt/pycuda are absent, and that importing the app never touches them.

Nothing here claims TensorRT works: the builds and runs are in test_gpu.py (marked gpu / tensorrt).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engines.trt_build import BuildProgress
from engines.trt_cache import MAGIC, CacheMiss, EngineCache, EngineKey, pack, unpack
from engines.trt_settings import ProfileRange, TrtSettings, check_in_profile, compute_profiles, onnx_input_shapes
from vision_app.errors import EngineError

REPO = Path(__file__).resolve().parents[2]
HAS_TRT = importlib.util.find_spec("tensorrt") is not None

PROFILE = ProfileRange("input", (1, 3, 32, 32), (1, 3, 480, 640), (1, 3, 1088, 1920))
BASE = dict(model="yunet", onnx_sha256="ab" * 32, trt_version="10.8.0", gpu_name="NVIDIA H100 80GB HBM3",
            compute_capability="9.0", precision="fp32", profiles=(PROFILE,), workspace_mb=1024)


def key(**changes) -> EngineKey:
    return EngineKey.create(**{**BASE, **changes})


# ---- cache keys ------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("onnx_sha256", "cd" * 32), ("trt_version", "11.0.1"), ("gpu_name", "NVIDIA GeForce RTX 4090"),
    ("compute_capability", "8.9"), ("precision", "fp16"), ("workspace_mb", 2048),
    ("profiles", (ProfileRange("input", (1, 3, 32, 32), (1, 3, 720, 1280), (1, 3, 1088, 1920)),)),
    ("profiles", ()),
])
def test_every_key_field_changes_the_digest_and_file(field: str, value) -> None:
    a, b = key(), key(**{field: value})
    assert a.digest() != b.digest() and a.filename() != b.filename()
    assert key().digest() == a.digest()  # deterministic


def test_filename_is_safe_and_names_model_and_precision() -> None:
    k = key(model="../weird name/é")
    assert "/" not in k.filename() and k.filename().endswith("-fp32-" + k.digest()[:16] + ".engine")


def test_pack_unpack_round_trip() -> None:
    plan = bytes(range(256)) * 10
    assert unpack(pack(key(), plan, build_seconds=1.5), key()) == plan


def _corrupt(blob: bytes, how: str) -> bytes:
    if how == "truncated plan":
        return blob[:-7]
    if how == "flipped plan byte":
        return blob[:-1] + bytes([blob[-1] ^ 0xFF])
    if how == "too short":
        return blob[:5]
    if how == "foreign plan (no header)":
        return b"ftrt\x00\x00" + blob[40:]
    if how == "header length past the end":
        return MAGIC + (10**6).to_bytes(4, "little") + b"{}"
    if how == "header not json":
        return MAGIC + (5).to_bytes(4, "little") + b"{oops" + b"plan"
    if how == "other format":
        return pack(key(), b"plan").replace(b'"format": 1', b'"format": 9')
    raise AssertionError(how)


@pytest.mark.parametrize("how, reason", [
    ("truncated plan", "truncated"), ("flipped plan byte", "checksum mismatch"), ("too short", "too short"),
    ("foreign plan (no header)", "not written by this app"), ("header length past the end", "does not fit"),
    ("header not json", "not valid JSON"), ("other format", "format 9"),
])
def test_corrupt_or_foreign_plans_are_detected(how: str, reason: str) -> None:
    blob = _corrupt(pack(key(), b"P" * 1000), how)
    with pytest.raises(CacheMiss, match=reason):
        unpack(blob, key())


def test_plan_for_another_key_is_refused_naming_the_difference() -> None:
    blob = pack(key(trt_version="10.0.1", gpu_name="Tesla T4"), b"plan")
    with pytest.raises(CacheMiss, match="differs in: gpu_name, trt_version"):
        unpack(blob, key())


def test_cache_store_load_and_rebuild_after_damage(tmp_path: Path, caplog) -> None:
    cache = EngineCache(tmp_path)
    assert cache.load(key()) is None  # empty cache: a miss, no error
    path = cache.store(key(), b"PLAN" * 100, build_seconds=3.0)
    assert cache.load(key()) == b"PLAN" * 100
    assert cache.load(key(precision="fp16")) is None  # key change -> other file -> miss (rebuild)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file
    path.write_bytes(path.read_bytes()[:-3])
    with caplog.at_level(logging.WARNING, logger="engines.trt_cache"):
        assert cache.load(key()) is None
    assert "truncated" in caplog.text and "rebuilding" in caplog.text
    assert not path.exists()  # the bad file is removed so the rebuilt one replaces it


def test_foreign_file_under_our_name_is_rebuilt_not_crashing(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    cache.path_for(key()).write_bytes(b"\x00" * 4096)  # e.g. a raw trtexec plan copied into the folder
    assert cache.load(key()) is None


def test_entries_and_clear(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    cache.store(key(), b"a")
    cache.store(key(model="yolo-fastest-1.1", profiles=()), b"b")
    (tmp_path / "junk.engine").write_bytes(b"not a vision-app plan at all")
    tp = cache.timing_cache_path("10.8.0", "NVIDIA H100 80GB HBM3", "9.0")
    tp.write_bytes(b"t")
    assert tp.name == "timing-trt10.8.0-nvidia-h100-80gb-hbm3-sm90.cache"
    entries = {e.path.name: e for e in cache.entries()}
    assert entries["junk.engine"].header is None and "not written by this app" in entries["junk.engine"].problem
    assert sorted(e.header["key"]["model"] for e in entries.values() if e.header) == ["yolo-fastest-1.1", "yunet"]
    assert [p.name for p in cache.clear(model="yunet")] == [key().filename()]
    assert len(cache.clear(timing=True)) == 3 and not any(tmp_path.iterdir())


# ---- profiles and shape checks -------------------------------------------------------------------

@pytest.mark.parametrize("model_file, multiple_of, expected", [
    ("face/yunet_2026may.onnx", 32, [ProfileRange("input", (1, 3, 32, 32), (1, 3, 480, 640), (1, 3, 1088, 1920))]),
    ("style/johnson_wave.onnx", 4, [ProfileRange("input", (1, 3, 32, 32), (1, 3, 480, 640), (1, 3, 1088, 1920))]),
    ("face/minifasnet_v2_scale2.7.onnx", 1, [ProfileRange("input", (1, 3, 80, 80), (1, 3, 80, 80), (8, 3, 80, 80))]),
    ("detection/yolo-fastest-1.1-xl.onnx", 1, []),
    ("style/magenta_style_transfer_384.onnx", 1, []),
])
def test_profiles_from_the_real_models(models_dir: Path, model_file: str, multiple_of: int, expected) -> None:
    settings = TrtSettings(multiple_of=multiple_of)
    assert list(compute_profiles(onnx_input_shapes(models_dir / model_file), settings)) == expected


@pytest.mark.parametrize("min_hw, opt_hw, max_hw, m, lo, opt, hi", [
    ((30, 50), (479, 641), (1080, 1921), 32, (32, 64), (480, 672), (1056, 1920)),
    ((1, 1), (2, 3), (5, 5), 4, (4, 4), (4, 4), (4, 4)),
    ((100, 100), (100, 100), (100, 100), 1, (100, 100), (100, 100), (100, 100)),
    ((30, 30), (1000, 1000), (1000, 1000), 64, (64, 64), (960, 960), (960, 960)),  # opt clamped to max
])
def test_profile_rounding_to_the_model_multiple(min_hw, opt_hw, max_hw, m, lo, opt, hi) -> None:
    s = TrtSettings(min_hw=min_hw, opt_hw=opt_hw, max_hw=max_hw, multiple_of=m)
    (p,) = compute_profiles({"x": (1, 3, None, None)}, s)
    assert (p.min[2:], p.opt[2:], p.max[2:]) == (lo, opt, hi)


def test_undecidable_dynamic_dim_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match="dynamic dim 1 .* neither the batch nor the H/W"):
        compute_profiles({"x": (1, None, 32, 32)}, TrtSettings(), "m")


@pytest.mark.parametrize("kwargs, match", [
    (dict(precision="int8"), "precision must be one of"),
    (dict(min_hw=(64, 64), opt_hw=(32, 32)), "min_hw <= opt_hw <= max_hw"),
    (dict(max_hw=(0, 10)), "positive ints"),
    (dict(max_batch=0), "max_batch"),
])
def test_bad_settings(kwargs, match) -> None:
    with pytest.raises(EngineError, match=match):
        TrtSettings(**kwargs)


def test_settings_from_the_config_section(app_config) -> None:
    from vision_app.models import user_data_dir

    s = TrtSettings.from_config(app_config.tensorrt, multiple_of=32)
    assert s.cache_dir == user_data_dir() / "engines" and s.precision == "fp32" and s.multiple_of == 32
    custom = dataclasses.replace(app_config.tensorrt, cache_dir="~/x", precision="fp16", max_hw=[720, 1280])
    s2 = TrtSettings.from_config(custom)
    assert s2.cache_dir == Path("~/x").expanduser() and s2.precision == "fp16" and s2.max_hw == (720, 1280)


@pytest.mark.parametrize("shape, ok", [
    ((1, 3, 32, 32), True), ((1, 3, 1088, 1920), True), ((1, 3, 480, 640), True),
    ((1, 3, 1089, 1920), False), ((1, 3, 16, 640), False), ((2, 3, 64, 64), False), ((1, 3, 64), False),
])
def test_shape_checks_against_the_profile(shape, ok) -> None:
    if ok:
        check_in_profile("yunet", "input", shape, PROFILE)
    else:
        with pytest.raises(EngineError, match="outside the TensorRT engine's optimization profile"):
            check_in_profile("yunet", "input", shape, PROFILE)


# ---- build progress bookkeeping (TensorRT's IProgressMonitor calls, replayed) ---------------------

def test_progress_is_monotone_nested_and_reported() -> None:
    seen: list[tuple[str, float]] = []
    p = BuildProgress("yunet", lambda msg, f: seen.append((msg, f)), log_every_s=0)
    p.phase_start("Building engine", None, 2)
    p.phase_start("Tactic selection", "Building engine", 4)
    for i in range(4):
        assert p.step_complete("Tactic selection", i)
    p.phase_finish("Tactic selection")
    assert p.step_complete("Building engine", 0)
    assert abs(p.fraction - 0.5) < 1e-9
    p.phase_start("Serialize", "Building engine", 1)
    p.phase_finish("Serialize")
    p.step_complete("Building engine", 1)
    p.phase_finish("Building engine")
    p.done(12.0)
    fracs = [f for _, f in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0 and 0.25 in fracs
    assert "Tactic selection" in seen[2][0] and "yunet" in seen[0][0] and "12.0 s" in seen[-1][0]


def test_cancel_stops_the_build_and_a_broken_callback_does_not() -> None:
    cancel = threading.Event()

    def boom(msg: str, frac: float) -> None:
        raise RuntimeError("gui went away")

    p = BuildProgress("m", boom, cancel=cancel)
    p.phase_start("a", None, 3)
    assert p.step_complete("a", 0) is True
    cancel.set()
    assert p.step_complete("a", 1) is False


# ---- backend selection -----------------------------------------------------------------------------

@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here: the no-TensorRT behaviour cannot be seen")
def test_auto_falls_back_to_onnxruntime_and_says_why() -> None:
    from engines.registry import available_backends, resolve_backend

    name, reason = resolve_backend("auto")
    assert name == "onnxruntime"
    assert reason.startswith("auto: ONNX Runtime, because TensorRT is not usable here") and "tensorrt" in reason
    assert available_backends()["onnxruntime"] == "ok"
    assert "pip install" in available_backends()["tensorrt"]


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_explicit_tensorrt_without_it_is_a_clear_error(app_config, store) -> None:
    from engines.registry import resolve_backend
    from vision_app.stages import StageContext

    with pytest.raises(EngineError, match=r"backend 'tensorrt' was asked for but cannot run here: .*tensorrt"
                                          r".*--backend onnxruntime"):
        resolve_backend("tensorrt")
    cfg = dataclasses.replace(app_config, engine=dataclasses.replace(app_config.engine, backend="tensorrt"))
    with pytest.raises(EngineError, match="cannot run here"):
        StageContext(cfg, store)


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
@pytest.mark.parametrize("argv, message", [
    (["engines", "build", "--model", "yunet"], "cannot build TensorRT engines here"),
    (["run", "--backend", "tensorrt", "--tasks", "detect", "--source", "test:", "--max-frames", "1"],
     "backend 'tensorrt' was asked for but cannot run here"),
])
def test_cli_without_tensorrt_exits_with_the_reason(models_dir: Path, argv, message) -> None:
    r = subprocess.run([sys.executable, "main.py", *argv, "--models", str(models_dir)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr[-1500:]


def test_cli_engines_list_and_clear(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "engines")
    cache.store(key(), b"plan")
    (cache.root / "broken.engine").write_bytes(b"x" * 64)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[tensorrt]\ncache_dir = '{cache.root}'\n")
    run = lambda *a: subprocess.run([sys.executable, "main.py", "engines", *a, "--config", str(cfg)], cwd=REPO,
                                    capture_output=True, text=True, timeout=120)
    r = run("list")
    assert r.returncode == 0, r.stderr
    assert "yunet" in r.stdout and "TensorRT 10.8.0" in r.stdout and "NVIDIA H100" in r.stdout
    assert "broken.engine: UNUSABLE (not written by this app" in r.stdout
    r = run("clear", "--model", "yunet")
    assert r.returncode == 0 and "removed 1 file" in r.stdout
    assert [p.name for p in cache.root.iterdir()] == ["broken.engine"]


def test_auto_picks_tensorrt_when_the_probe_says_ok(monkeypatch) -> None:
    """Our own selection logic with a stubbed probe (this does not exercise TensorRT)."""
    from engines import registry
    from engines.tensorrt import TensorRTEngine

    monkeypatch.setattr(TensorRTEngine, "probe", staticmethod(lambda device=0: "ok"))
    monkeypatch.setattr(TensorRTEngine, "environment", staticmethod(lambda device=0: "TensorRT 10.8 on GPU X"))
    assert registry.resolve_backend("auto") == (
        "tensorrt", "auto: TensorRT, because tensorrt, pycuda and an NVIDIA GPU are usable (TensorRT 10.8 on GPU X)")
    assert registry.resolve_backend("tensorrt")[0] == "tensorrt"


@pytest.mark.parametrize("fake_version, pycuda_blocked, expect", [
    ("8.6.1", False, "TensorRT 8.6.1 is too old"),
    ("10.8.0", True, "pycuda is not usable"),
])
def test_probe_reasons(monkeypatch, fake_version: str, pycuda_blocked: bool, expect: str) -> None:
    """probe()'s reasons for an old tensorrt / a missing pycuda, with a stand-in tensorrt module object."""
    import types

    from engines.tensorrt import TensorRTEngine

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=fake_version))
    if pycuda_blocked:
        monkeypatch.setitem(sys.modules, "pycuda", None)
        monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    assert expect in TensorRTEngine.probe()


# ---- import hygiene --------------------------------------------------------------------------------

IMPORT_ALL = r"""
import importlib, importlib.util, pkgutil, sys
tried = []
class Guard:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorrt", "pycuda"):
            tried.append(name)
        return None
# declared dependencies this Python may lack (a GPU machine's ready-made environment): the modules
# needing them are listed, not imported; everywhere the project is installed they are all imported
absent = {n for n in ("cryptography", "PySide6") if importlib.util.find_spec(n) is None}
sys.meta_path.insert(0, Guard())
import vision_app, engines
mods, left_out = [], []
for pkg in (vision_app, engines):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if exc.name not in absent:
                raise
            left_out.append(info.name)
            continue
        mods.append(info.name)
from vision_app.cli import build_parser
build_parser()
assert "engines.tensorrt" in mods and "engines.cuda_preprocess" in mods, mods
print("TRIED", tried, len(mods))
print("LEFT OUT", sorted(absent), left_out)
"""


def test_importing_the_app_never_touches_tensorrt_or_pycuda() -> None:
    r = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "TRIED [] " in r.stdout, r.stdout
    absent = [n for n in ("cryptography", "PySide6") if importlib.util.find_spec(n) is None]
    if not absent:  # the project's own environment: every module was imported
        assert "LEFT OUT [] []" in r.stdout, r.stdout


# ---- ONNX Runtime's own CUDA / TensorRT execution providers ---------------------------------------

def test_ort_tensorrt_provider_options_cache_in_the_engine_folder(app_config) -> None:
    from engines.trt_settings import ort_tensorrt_options

    opts = ort_tensorrt_options(dataclasses.replace(app_config.tensorrt, cache_dir="/tmp/e", precision="fp16"))
    assert opts["trt_engine_cache_path"] == "/tmp/e/onnxruntime-trt" and opts["trt_engine_cache_enable"] == "True"
    assert opts["trt_fp16_enable"] == "True" and opts["trt_timing_cache_enable"] == "True"


def test_asking_for_gpu_providers_without_onnxruntime_gpu_is_refused(app_config, store) -> None:
    import onnxruntime as ort

    from vision_app.stages import StageContext

    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    if all(p in ort.get_available_providers() for p in wanted):
        pytest.skip("onnxruntime-gpu is installed here")
    cfg = dataclasses.replace(app_config, engine=dataclasses.replace(app_config.engine, backend="onnxruntime",
                                                                     providers=wanted))
    ctx = StageContext(cfg, store)
    with pytest.raises(EngineError, match="execution provider.*requested but this onnxruntime build only has"):
        ctx.engine("yolo-fastest-1.1")
    eng = __import__("engines").create_engine(store.path("yolo-fastest-1.1"), "onnxruntime",
                                              provider_options={"CPUExecutionProvider": {}})
    assert eng.providers == ["CPUExecutionProvider"] and eng.clone().providers == ["CPUExecutionProvider"]
