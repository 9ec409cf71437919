"""Triton Inference Server backend: the model runs on a shared server, this process is a thin client.

Chosen with `--backend triton` and `engine.triton_url` (`http://host:8000` or `grpc://host:8001`). The
model name and version are the manifest's (vision_app/serving/repo.py writes the server's repository
under the same names). At load the server's model metadata is read and checked against what the app
expects of the model (the manifest entry and, when the model file is present locally, its ONNX inputs
and outputs), so a server that serves something else fails at start with the differences listed, not
with odd boxes later. Decoding and NMS stay in the app: this engine only moves tensors.

Outages: a server that cannot be reached, does not answer within `timeout_s`, or has not loaded the model
(yet) raises EngineUnavailable. The engine then waits `retry_initial_s`, doubling up to `retry_max_s`,
before it tries the server again; calls in between fail at once with the time to the next try, so a frame
loop never blocks on a dead server. The first answer after an outage ends it.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engines.base import EngineBase, TensorSpec
from engines.triton_client import Refused, ServerDown, TritonConnection, dtype_of, parse_url
from vision_app.errors import EngineError, EngineUnavailable

log = logging.getLogger(__name__)

Expectation = Mapping[str, TensorSpec | None]  # None: the tensor must exist, any shape and type


def _specs(items: Any, where: str) -> dict[str, TensorSpec]:
    return {t["name"]: TensorSpec(t["name"], tuple(None if int(d) < 0 else int(d) for d in t["shape"]),
                                  dtype_of(t["datatype"], where)) for t in items}


def _dims_match(expected: tuple[int | None, ...], actual: tuple[int | None, ...]) -> bool:
    return len(expected) == len(actual) and all(e is None or a is None or e == a for e, a in zip(expected, actual))


class TritonEngine(EngineBase):
    """A model on a Triton Inference Server behind the Engine protocol. One client per calling thread."""

    backend = "triton"

    def __init__(self, model_path: str | Path | None = None, *, url: str, name: str, version: str = "",
                 timeout_s: float = 5.0, retry_initial_s: float = 0.5, retry_max_s: float = 10.0,
                 expected_inputs: Expectation | None = None, expected_outputs: Expectation | None = None,
                 expected_from: str = "the manifest", expected_complete: bool = False) -> None:
        parse_url(url)  # a bad URL is a config error, before anything is tried
        self.path = None  # the model lives on the server: nothing local to watch
        self.local_path = Path(model_path) if model_path else None
        self.url, self.name, self.version = url, name, str(version or "")
        self.timeout_s, self.retry_initial_s, self.retry_max_s = timeout_s, retry_initial_s, retry_max_s
        self._expect = (expected_inputs, expected_outputs, expected_from, expected_complete)
        self._local = threading.local()
        self._conns: list[TritonConnection] = []
        self._conns_lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._delay = 0.0
        self._failures = 0
        self._reason = ""
        self.max_batch = 0
        self._load()
        self._output_names = list(self.outputs)
        log.info("loaded %s", self.describe())

    # --- loading ----------------------------------------------------------------------------------
    def where(self) -> str:
        return f"model '{self.name}' version {self.version or '(latest)'} on the Triton server {self.url}"

    def _load(self) -> None:
        conn = self._conn()
        try:
            conn.is_live()
        except ServerDown as exc:
            raise EngineError(f"cannot reach the Triton server at {self.url} to load model '{self.name}': {exc}. "
                              f"Start the server (README: Triton Inference Server) or fix engine.triton_url / "
                              f"--triton-url") from exc
        try:
            ready = conn.is_model_ready(self.name, self.version)
        except ServerDown as exc:
            ready, why = False, str(exc)
        else:
            why = "the server says it is not loaded or not ready"
        if not ready:
            models = conn.model_list()
            have = (f"; the server's repository has: {', '.join(models) or 'no models'}" if models is not None
                    else "")
            raise EngineError(f"the Triton server at {self.url} has no ready model '{self.name}' version "
                              f"{self.version or '(latest)'} ({why}){have}. Export it with 'python main.py models "
                              f"export-triton DIR --names {self.name}', (re)load it on the server, or choose a "
                              f"model the server has")
        try:
            meta = conn.metadata(self.name, self.version)
            config = conn.config(self.name, self.version)
        except (ServerDown, EngineError) as exc:
            raise EngineError(f"cannot read the metadata of {self.where()}: {exc}") from exc
        self.inputs = _specs(meta.get("inputs", []), self.where())
        self.outputs = _specs(meta.get("outputs", []), self.where())
        self.max_batch = int(config.get("max_batch_size", 0) or 0)
        self.platform = str(meta.get("platform", "?"))
        self._check_expected()

    def _check_expected(self) -> None:
        ins, outs, origin, complete = self._expect
        problems: list[str] = []
        for kind, expected, actual in (("input", ins, self.inputs), ("output", outs, self.outputs)):
            for n, spec in (expected or {}).items():
                got = actual.get(n)
                if got is None:
                    problems.append(f"{kind} '{n}' is missing (the server's {kind}s: {', '.join(actual) or 'none'})")
                elif spec is not None and got.dtype != spec.dtype:
                    problems.append(f"{kind} '{n}' is {got.describe()} on the server, expected type "
                                    f"{np.dtype(spec.dtype).name}")
                elif spec is not None and not _dims_match(spec.shape, got.shape):
                    problems.append(f"{kind} '{n}' is {got.shape_text()} on the server, expected {spec.shape_text()}")
        if complete and ins is not None:
            problems += [f"input '{n}' exists only on the server" for n in self.inputs if n not in ins]
        if problems:
            raise EngineError(f"{self.where()} does not match {origin}: " + "; ".join(problems)
                              + ". The server serves another model under this name: re-export the repository "
                              f"with 'python main.py models export-triton DIR --names {self.name}' and reload "
                              f"the model on the server")

    # --- clients, one per thread --------------------------------------------------------------------
    def _conn(self) -> TritonConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = TritonConnection(self.url, self.timeout_s)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _drop_conn(self) -> None:
        """Forget this thread's client after a failure: a restarted server needs a fresh connection, and a
        gRPC channel's own reconnect backoff would otherwise delay the recovery."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._conns_lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()

    # --- inference -----------------------------------------------------------------------------------
    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_feed(feed)
        now = time.monotonic()
        if self._down_since is not None and now < self._retry_at:
            raise EngineUnavailable(f"{self.where()} unavailable for {now - self._down_since:.1f} s "
                                    f"({self._reason}); next try in {self._retry_at - now:.1f} s")
        try:
            out = self._infer_chunks(feed)
        except ServerDown as exc:
            self._drop_conn()
            self._outage(str(exc))
            raise EngineUnavailable(f"{self.where()} unavailable: {exc}; retrying in {self._delay:.1f} s "
                                    f"(backoff up to {self.retry_max_s:g} s)") from exc
        except Refused as exc:
            sent = ", ".join(f"{n}{list(a.shape)} {a.dtype.name}" for n, a in feed.items())
            raise EngineError(f"{self.where()} refused the request ({exc}); sent {sent}. The server's model "
                              f"config does not fit the app's manifest: re-export it with 'python main.py "
                              f"models export-triton' and reload it") from exc
        if self._down_since is not None:
            log.info("%s is back after %.1f s (%d failed tries)", self.where(), now - self._down_since,
                     self._failures)
            self._down_since, self._failures, self._delay = None, 0, 0.0
        return out

    def _outage(self, reason: str) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since, self._delay = now, self.retry_initial_s
        else:
            self._delay = min(max(self._delay * 2, self.retry_initial_s), self.retry_max_s)
        self._failures += 1
        self._reason = reason
        self._retry_at = now + self._delay
        log.debug("%s: %s; next try in %.1f s", self.where(), reason, self._delay)

    def _infer_chunks(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request, or several when a batch is larger than the server's max_batch_size."""
        conn = self._conn()
        n = len(next(iter(feed.values()))) if feed and self.max_batch > 0 else 0
        if n <= self.max_batch:
            return conn.infer(self.name, self.version, feed, self._output_names)
        parts = [conn.infer(self.name, self.version, {k: v[i:i + self.max_batch] for k, v in feed.items()},
                            self._output_names) for i in range(0, n, self.max_batch)]
        return {o: np.concatenate([p[o] for p in parts]) for o in self._output_names}

    # --- the rest of the protocol ------------------------------------------------------------------
    def clone(self) -> "TritonEngine":
        ins, outs, origin, complete = self._expect
        return TritonEngine(self.local_path, url=self.url, name=self.name, version=self.version,
                            timeout_s=self.timeout_s, retry_initial_s=self.retry_initial_s,
                            retry_max_s=self.retry_max_s, expected_inputs=ins, expected_outputs=outs,
                            expected_from=origin, expected_complete=complete)

    def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def describe(self) -> str:
        batch = f"max_batch_size {self.max_batch}" if self.max_batch else "no batching"
        return f"{super().describe()} [{self.url}, platform {self.platform}, {batch}]"

    @staticmethod
    def probe() -> str:
        try:
            import tritonclient.grpc  # noqa: F401
            import tritonclient.http  # noqa: F401
        except ImportError as exc:
            return f"tritonclient is not installed ({exc}); pip install -e '.[triton]'"
        return "ok"
