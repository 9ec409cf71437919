"""Random bytes as an image, a video, a config file, an ONNX model and a model manifest: never a crash or
a hang, always our own error type with a message."""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines import create_engine
from vision_app.config import load_config
from vision_app.errors import ConfigError, EngineError, ModelError, SourceError
from vision_app.models import ModelStore
from vision_app.sources import open_source

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
ONNX_HEAD = b"\x08\x07\x12\x07pytorch"


def _write(data: bytes, suffix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="fuzz"))
    p = d / f"input{suffix}"
    p.write_bytes(data)
    return p


@FAST
@given(prefix=st.sampled_from([b"", JPEG_HEAD, b"\x89PNG\r\n\x1a\n"]), body=st.binary(max_size=2048))
def test_random_bytes_as_an_image(fuzz_counts, prefix: bytes, body: bytes) -> None:
    fuzz_counts["image bytes -> open_source/read"] += 1
    p = _write(prefix + body, ".jpg")
    try:
        src = open_source(str(p))
        while src.read() is not None:
            pass
    except SourceError as exc:
        assert str(exc)


@SLOW
@given(prefix=st.sampled_from([b"", MP4_HEAD]), body=st.binary(min_size=0, max_size=4096))
def test_random_bytes_as_a_video(fuzz_counts, prefix: bytes, body: bytes) -> None:
    fuzz_counts["video bytes -> open_source/read"] += 1
    p = _write(prefix + body, ".mp4")
    try:
        src = open_source(str(p))
        for _ in range(100):
            if src.read() is None:
                break
        src.close()
    except SourceError as exc:
        assert "input.mp4" in str(exc)


@FAST
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_random_text_as_a_config_file(fuzz_counts, text: str) -> None:
    fuzz_counts["config text -> load_config"] += 1
    p = _write(text.encode("utf-8", "surrogatepass"), ".toml")
    try:
        load_config(p)
    except ConfigError as exc:
        assert str(exc)


@FAST
@given(section=st.sampled_from(["capture", "engine", "detect", "segment", "style", "face", "runner"]),
       key=st.sampled_from(["confidence", "iou", "backend", "workers", "video_mode", "overlay", "model",
                            "strength", "threads", "test_size", "bogus"]),
       value=st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=10),
                       st.booleans(), st.lists(st.integers(-5, 5), max_size=3)))
def test_random_values_in_a_valid_config_shape(fuzz_counts, section: str, key: str, value: object) -> None:
    fuzz_counts["config values -> load_config"] += 1
    try:
        load_config(None, {f"{section}.{key}": value})
    except ConfigError as exc:
        assert key in str(exc) or section in str(exc)


@SLOW
@given(prefix=st.sampled_from([b"", ONNX_HEAD]), body=st.binary(max_size=4096))
def test_random_bytes_as_an_onnx_model(fuzz_counts, prefix: bytes, body: bytes) -> None:
    fuzz_counts["onnx bytes -> create_engine"] += 1
    p = _write(prefix + body, ".onnx")
    try:
        create_engine(p, "onnxruntime").close()
    except EngineError as exc:
        assert "input.onnx" in str(exc)


@FAST
@given(text=st.text(max_size=400))
def test_random_text_as_a_user_manifest(fuzz_counts, text: str) -> None:
    fuzz_counts["manifest text -> ModelStore"] += 1
    d = Path(tempfile.mkdtemp(prefix="fuzz"))
    (d / "manifest.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        ModelStore(d)
    except ModelError as exc:
        assert str(exc)


_toml_scalar = st.one_of(st.integers(-3, 3), st.text(max_size=5).map(repr), st.booleans().map(str).map(str.lower),
                         st.just("[1, 'a']"), st.just("{a = 1}"))


@FAST
@given(fields=st.dictionaries(st.sampled_from(["file", "task", "license", "classes", "input", "preprocess",
                                               "decode", "sha256", "noncommercial", "x"]), _toml_scalar,
                              max_size=6),
       as_table=st.booleans())
def test_structured_garbage_in_a_user_manifest(fuzz_counts, fields: dict, as_table: bool) -> None:
    fuzz_counts["manifest tables -> ModelStore"] += 1
    body = "\n".join(f"{k} = {v}" for k, v in fields.items())
    text = f'[models."m"]\n{body}\n' if as_table else f"models = {{m = {next(iter(fields.values()), 1)}}}\n"
    d = Path(tempfile.mkdtemp(prefix="fuzz"))
    (d / "manifest.toml").write_text(text)
    try:
        ModelStore(d)
    except ModelError as exc:
        assert str(exc)
