"""Fixtures of the GPU tests (test_gpu.py, test_gpu_tensorrt.py): the GPU, real photos and video frames,
and their figures (kernel differences, context handles, released buffers...) printed after the run under
"GPU check report", so a run's output alone tells what was measured, not only that the tests passed.
The `triton` tests' server fixtures live in tests/helpers/triton_server.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from helpers.triton_server import triton_python, triton_repo, triton_server  # noqa: F401 - fixtures

_REPORT = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def gpu_report(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """gpu_report(section, text): one line of the report."""
    lines = request.config.stash.setdefault(_REPORT, [])

    def add(section: str, text: str) -> None:
        lines.append(f"[{section}] {text}")

    return add


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001 - pytest hook
    lines = config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("GPU check report")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def gpu() -> Any:
    """The primary context of GPU 0 (engines.cuda_context.GpuContext); a skip saying why where pycuda or a
    GPU is missing (scripts/gpu_check.sh fails the run for such a skip on a machine that has a GPU)."""
    try:
        import pycuda.driver  # noqa: F401
    except ImportError as exc:  # not installed, or a library it links (libcuda, libcurand) not found
        pytest.skip(f"pycuda cannot be imported ({exc}); scripts/gpu_check.sh installs it from "
                    f"../shared/gpu-wheels")
    from engines.cuda_context import GpuContext
    from vision_app.errors import EngineError

    try:
        return GpuContext.get(0)
    except EngineError as exc:
        pytest.skip(f"no usable NVIDIA GPU: {exc}")


@pytest.fixture(scope="session")
def gpu_photos(media_dir: Path) -> dict[str, np.ndarray]:
    """The scene photos plus the first three frames of bigbuckbunny.mp4 (1280x720), BGR uint8."""
    import cv2

    imgs = {p.name: cv2.imread(str(p)) for p in sorted((media_dir / "scenes").iterdir())}
    cap = cv2.VideoCapture(str(media_dir / "video" / "bigbuckbunny.mp4"))
    for i in range(3):
        ok, frame = cap.read()
        if not ok:
            pytest.fail(f"cannot read frame {i} of {media_dir / 'video' / 'bigbuckbunny.mp4'}")
        imgs[f"bigbuckbunny#{i}"] = frame
    cap.release()
    bad = [name for name, img in imgs.items() if img is None]
    if bad:
        pytest.fail(f"cannot read {bad} in {media_dir / 'scenes'}")
    return imgs
