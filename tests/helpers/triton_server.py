"""Fixtures of the `triton` tests (tests/engines/conftest.py imports them): a real Triton Inference Server (PyTriton's tritonserver, ONNX Runtime
behind it) on a free 127.0.0.1 port, serving a repository exported from the manifest, started once per
session and stopped at the end.

The server runs in its own environment (scripts/triton_env.sh; nvidia-pytriton pins numpy < 2). Where that
environment is absent the tests skip with the reason, except in CI (the CI variable set), where they fail:
.ci/run builds it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# the models the served tests use: detect, the whole face stage, segment, style
TRITON_MODELS = ["yolo-fastest-1.1-xl", "yunet", "edgeface-xs", "minifasnet-v2", "minifasnet-v1se",
                 "face-mesh", "selfie", "johnson_wave"]
IMPOSTOR = "impostor"  # yolox-nano served under another name: metadata that does not match


@pytest.fixture(scope="session")
def triton_python() -> Path:
    from vision_app.serving.local_server import server_python

    python, why = server_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail(f"the triton tests must run in CI, but {why}")
        pytest.skip(why)
    return python


@pytest.fixture(scope="session")
def triton_repo(store, tmp_path_factory) -> Path:
    from vision_app.serving.repo import RepositoryWriter

    out = tmp_path_factory.mktemp("triton-repo")
    RepositoryWriter(store, out, max_batch=8).export(TRITON_MODELS)
    RepositoryWriter(store, out / ".impostor", max_batch=0).export(["yolox-nano"])
    src = out / ".impostor" / "yolox-nano"
    dst = out / IMPOSTOR
    src.rename(dst)
    cfg = dst / "config.pbtxt"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('name: "yolox-nano"', f'name: "{IMPOSTOR}"'),
                   encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def triton_server(triton_python: Path, triton_repo: Path, tmp_path_factory):
    from vision_app.serving.local_server import LocalTritonServer

    server = LocalTritonServer(triton_repo, python=triton_python, max_seconds=1800,
                               log_path=tmp_path_factory.mktemp("triton-log") / "server.log")
    server.start()
    yield server
    server.stop()
