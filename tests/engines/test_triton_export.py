"""`models export-triton`: the repository layout, config.pbtxt parsed with Triton's own ModelConfig schema,
batch dimensions made variable only where the graph really runs batched; the Triton engine's URL and
config checks, and its errors for a server that is not there or never answers (real sockets)."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from engines.triton import TritonEngine
from engines.triton_client import parse_url
from main import main as cli_main
from vision_app.config import load_config
from vision_app.errors import ConfigError, EngineError
from vision_app.serving.onnx_batch import batch_kind, load_onnx, relax_batch
from vision_app.serving.repo import RepositoryWriter, triton_version

NAMES = ["yolo-fastest-1.1-xl", "yunet", "minifasnet-v2", "mobilefacenet", "magenta-transfer"]


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def exported(models_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("repo")
    rc = cli_main(["models", "export-triton", str(out), "--models", str(models_dir), "--names", *NAMES,
                   "--max-batch", "4", "--instances", "2"])
    assert rc == 0
    return out


def test_layout_and_configs_parse_with_tritons_schema(exported: Path, store) -> None:
    assert sorted(p.name for p in exported.iterdir()) == sorted(NAMES)
    for name in NAMES:
        cfg = parse_config(exported / name / "config.pbtxt")
        version = triton_version(store.entry(name))
        assert (exported / name / str(version) / "model.onnx").is_file()
        assert cfg.name == name and cfg.platform == "onnxruntime_onnx"
        assert list(cfg.version_policy.specific.versions) == [version]
        assert [(g.count, g.kind) for g in cfg.instance_group] == [(2, model_config_pb2.ModelInstanceGroup.KIND_AUTO)]
        assert cfg.HasField("dynamic_batching") == (cfg.max_batch_size > 0)


def test_dims_and_batching_per_model(exported: Path) -> None:
    yolo = parse_config(exported / "yolo-fastest-1.1-xl" / "config.pbtxt")  # fixed 1 in the file, runs batched
    assert yolo.max_batch_size == 4
    assert [(t.name, list(t.dims), t.data_type) for t in yolo.input] == [("input", [3, 320, 320], model_config_pb2.TYPE_FP32)]
    assert {t.name: list(t.dims) for t in yolo.output} == {"l120": [255, 10, 10], "l129": [255, 20, 20]}
    fas = parse_config(exported / "minifasnet-v2" / "config.pbtxt")  # N x 3 x 80 x 80 already
    assert fas.max_batch_size == 4 and list(fas.input[0].dims) == [3, 80, 80]
    yunet = parse_config(exported / "yunet" / "config.pbtxt")  # reshapes to a fixed batch inside: kept whole
    assert yunet.max_batch_size == 0 and list(yunet.input[0].dims) == [1, 3, -1, -1]
    assert list(next(t for t in yunet.output if t.name == "bbox_8").dims) == [1, -1, 4]
    transfer = parse_config(exported / "magenta-transfer" / "config.pbtxt")  # two inputs
    assert transfer.max_batch_size == 0 and [t.name for t in transfer.input] == ["content_image",
                                                                                 "mobilenet_conv_Conv_BiasAdd"]


def test_relaxed_model_gives_the_same_outputs_batched(exported: Path, models_dir: Path) -> None:
    import onnxruntime as ort

    original = ort.InferenceSession(str(models_dir / "detection/yolo-fastest-1.1-xl.onnx"))
    relaxed = ort.InferenceSession(str(exported / "yolo-fastest-1.1-xl" / "1" / "model.onnx"))
    x = np.random.default_rng(1).random((3, 3, 320, 320), dtype=np.float32)
    batched = relaxed.run(None, {"input": x})
    for i in range(3):
        for one, both in zip(original.run(None, {"input": x[i:i + 1]}), batched):
            np.testing.assert_allclose(both[i:i + 1], one, rtol=1e-4, atol=1e-4)


def test_graphs_that_cannot_batch_are_not_relaxed(models_dir: Path) -> None:
    mesh = load_onnx(models_dir / "face/face_mesh_468.onnx")  # reshapes to [1, 1, 1, 1404] inside
    assert batch_kind(mesh) == "one" and relax_batch(mesh) is None


def test_no_batching_and_no_dynamic_batcher_options(store, tmp_path: Path) -> None:
    RepositoryWriter(store, tmp_path / "a", max_batch=0).export(["yolo-fastest-1.1-xl"])
    cfg = parse_config(tmp_path / "a" / "yolo-fastest-1.1-xl" / "config.pbtxt")
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [1, 3, 320, 320]
    assert not cfg.HasField("dynamic_batching")
    RepositoryWriter(store, tmp_path / "b", max_batch=8, dynamic_batching=False).export(["yolo-fastest-1.1-xl"])
    cfg = parse_config(tmp_path / "b" / "yolo-fastest-1.1-xl" / "config.pbtxt")
    assert cfg.max_batch_size == 8 and not cfg.HasField("dynamic_batching")


def test_tensorrt_plan_without_tensorrt_is_a_clear_error(models_dir: Path, tmp_path: Path, capsys) -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here: plans are built (tests/engines/test_gpu.py covers builds)")
    rc = cli_main(["models", "export-triton", str(tmp_path / "r"), "--models", str(models_dir),
                   "--names", "yunet", "--platform", "tensorrt_plan"])
    err = capsys.readouterr().err
    assert rc == 2 and "needs TensorRT, which is not installed here" in err and "onnxruntime_onnx" in err
    assert not (tmp_path / "r").exists()


def test_bad_arguments_and_unknown_models(store, tmp_path: Path) -> None:
    from vision_app.errors import ModelError

    with pytest.raises(ModelError, match="--max-batch must be 0"):
        RepositoryWriter(store, tmp_path, max_batch=-1)
    with pytest.raises(ModelError, match="--instances must be 1..64"):
        RepositoryWriter(store, tmp_path, instances=0)
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        RepositoryWriter(store, tmp_path).export(["nope"])


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8000", ("http", "127.0.0.1:8000")),
    ("grpc://triton.local", ("grpc", "triton.local:8001")),
    ("http://[::1]:9000/", ("http", "[::1]:9000")),
])
def test_urls(url: str, expected: tuple[str, str]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "https://x:8000", "grpc://", "http://h:8000/v2/models",
                                 "http://h:99999"])
def test_bad_urls_say_what_is_expected(url: str) -> None:
    with pytest.raises(EngineError, match="http://HOST:PORT|bad port"):
        parse_url(url)


def test_backend_triton_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="engine.triton_url"):
        load_config(None, {"engine.backend": "triton"})
    assert load_config(None, {"engine.backend": "triton", "engine.triton_url": "grpc://h:8001"}).engine.backend == "triton"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_nothing_listening_is_an_error_naming_url_and_model(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{_closed_port()}"
    with pytest.raises(EngineError, match=f"cannot reach the Triton server at {url} to load model 'yunet'.*"
                                          f"refused.*--triton-url"):
        TritonEngine(url=url, name="yunet", version="1", timeout_s=2.0)


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_a_server_that_never_answers_times_out(scheme: str) -> None:
    """A socket that accepts connections and never answers: the load fails after timeout_s, it does not hang."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    url = f"{scheme}://127.0.0.1:{srv.getsockname()[1]}"
    try:
        with pytest.raises(EngineError, match=f"cannot reach the Triton server at {url}.*no answer to server "
                                              f"health check within 0.5 s"):
            TritonEngine(url=url, name="yunet", version="1", timeout_s=0.5)
    finally:
        stop.set()
        t.join(2)
        for c in accepted:
            c.close()
        srv.close()


def test_triton_benchmark_runs_only_when_named() -> None:
    from vision_app.benchmark import parse_bench_tasks

    assert "triton" not in parse_bench_tasks(None) and "detect" in parse_bench_tasks(None)
    assert parse_bench_tasks("triton") == ["triton"]
