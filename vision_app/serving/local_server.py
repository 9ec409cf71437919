"""A real Triton Inference Server on this machine, for the tests and the benchmark.

`LocalTritonServer` runs scripts/triton_serve.py (PyTriton's tritonserver with ONNX Runtime behind it)
with the Python of the Triton environment that scripts/triton_env.sh builds, on free 127.0.0.1 ports, in
its own process group so that stop() and kill() reach tritonserver and its backend processes too. It
waits (bounded) for the script's READY line, and the script stops by itself after `max_seconds`, so a
server is never left behind. Needs a source checkout (the scripts/ folder).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from vision_app.errors import EngineError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_SCRIPT = REPO_ROOT / "scripts" / "triton_serve.py"
ENV_SCRIPT = REPO_ROOT / "scripts" / "triton_env.sh"
REQUIREMENTS = REPO_ROOT / "scripts" / "triton-requirements.txt"
ENV_VAR = "VISION_APP_TRITON_ENV"


def env_dir() -> Path:
    """Where scripts/triton_env.sh builds the Triton environment."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vision-app" / "triton-env"


def server_python() -> tuple[Path | None, str]:
    """(the Triton environment's python, '') when it is built for the current requirements, else
    (None, why not and what to run)."""
    if not SERVE_SCRIPT.is_file() or not REQUIREMENTS.is_file():
        return None, f"{SERVE_SCRIPT} is missing: the local Triton server needs a source checkout of vision-app"
    env = env_dir()
    python = env / "bin" / "python"
    fix = f"run 'bash {ENV_SCRIPT.relative_to(REPO_ROOT)}' once (builds it from PyPI, a few minutes)"
    if not python.exists():
        return None, f"the Triton server environment {env} does not exist; {fix}"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    try:
        have = (env / ".stamp").read_text(encoding="utf-8").strip()
    except OSError:
        have = ""
    if have != want:
        return None, f"the Triton server environment {env} was built for other requirements; {fix}"
    return python, ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalTritonServer:
    """scripts/triton_serve.py serving `repository` (a `models export-triton` folder) on 127.0.0.1."""

    def __init__(self, repository: Path, *, names: Sequence[str] | None = None, python: Path | None = None,
                 http_port: int = 0, grpc_port: int = 0, threads: int = 1, start_timeout_s: float = 240.0,
                 max_seconds: float = 1800.0, log_path: Path | None = None) -> None:
        if python is None:
            python, why = server_python()
            if python is None:
                raise EngineError(why)
        self.python, self.repository, self.names = python, Path(repository), list(names or [])
        self.http_port, self.grpc_port = http_port or free_port(), grpc_port or free_port()
        self.threads, self.start_timeout_s, self.max_seconds = threads, start_timeout_s, max_seconds
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="vision-app-triton-log-")) / "server.log"
        self.stats_path = self.log_path.with_name(f"stats-{self.http_port}.json")
        self.proc: subprocess.Popen[bytes] | None = None
        self._shm_before: set[str] = set()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def start(self) -> "LocalTritonServer":
        ready_file = self.log_path.with_name(f"ready-{self.http_port}")
        ready_file.unlink(missing_ok=True)
        cmd = [str(self.python), str(SERVE_SCRIPT), str(self.repository), "--http-port", str(self.http_port),
               "--grpc-port", str(self.grpc_port), "--threads", str(self.threads),
               "--max-seconds", str(self.max_seconds), "--ready-file", str(ready_file),
               "--stats-file", str(self.stats_path), "--verbose"]
        if self.names:
            cmd += ["--names", *self.names]
        self._shm_before = {p.name for p in Path("/dev/shm").glob("psm_*")} if Path("/dev/shm").is_dir() else set()
        with self.log_path.open("a", encoding="utf-8") as log_fh:  # the script's and tritonserver's output
            self.proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env={**os.environ, "PYTHONNOUSERSITE": "1"})
        deadline = time.monotonic() + self.start_timeout_s
        while not ready_file.is_file():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                what = (f"exited with code {self.proc.returncode}" if self.proc.poll() is not None
                        else f"was not ready within {self.start_timeout_s:g} s")
                self.kill()
                raise EngineError(f"the local Triton server {what}; its log {self.log_path} ends with:\n"
                                  + self.log_tail())
            time.sleep(0.2)
        log.info("local Triton server ready: %s, %s (%s)", self.http_url, self.grpc_url, self.repository)
        return self

    def batch_stats(self, timeout_s: float = 10.0) -> dict[str, dict[str, int]]:
        """{model: {"executions", "items"}} since the server started (the script writes them on SIGUSR1)."""
        if self.proc is None or self.proc.poll() is not None:
            raise EngineError("the local Triton server is not running")
        before = self.stats_path.stat().st_mtime_ns if self.stats_path.is_file() else -1
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.stats_path.is_file() and self.stats_path.stat().st_mtime_ns != before:
                return dict(json.loads(self.stats_path.read_text(encoding="utf-8")))
            time.sleep(0.05)
        raise EngineError(f"the local Triton server did not write its statistics to {self.stats_path} "
                          f"within {timeout_s:g} s")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(log unreadable: {exc})"

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """Stop it the hard way (like a crash or a pulled plug): SIGKILL to the whole process group, then
        remove the shared-memory segments that only a clean stop would have removed."""
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reap_group()
        self._remove_shm()

    def _remove_shm(self) -> None:
        """/dev/shm segments of this server: the Python backend's (named after the script's pid) and the
        tensor store's psm_* ones that appeared while it ran and no live process maps any more."""
        shm = Path("/dev/shm")
        if self.proc is None or not shm.is_dir():
            return
        stale = set(shm.glob(f"pytrtion{self.proc.pid}-*"))
        new_psm = {p for p in shm.glob("psm_*") if p.name not in self._shm_before}
        if new_psm:
            mapped: set[str] = set()
            for maps in Path("/proc").glob("[0-9]*/maps"):
                try:
                    mapped.update(re.findall(r"/dev/shm/(psm_\w+)", maps.read_text(errors="replace")))
                except OSError:
                    continue
            stale |= {p for p in new_psm if p.name not in mapped}
        for p in stale:
            try:
                p.unlink()
            except OSError as exc:
                log.debug("could not remove %s: %s", p, exc)

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after timeout_s."""
        if self.proc is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("local Triton server did not stop within %.0f s; killing it", timeout_s)
        self.kill()

    def _reap_group(self) -> None:
        """Backend processes that outlived the server's own process get SIGKILL too (same group)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "LocalTritonServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
