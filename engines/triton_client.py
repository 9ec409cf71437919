"""One connection to a Triton Inference Server over HTTP or gRPC (tritonclient), the same for both.

`http://host:8000` uses tritonclient.http (gevent-based: a client may only be used by the thread that made
it), `grpc://host:8001` tritonclient.grpc. Every call has a deadline, so nothing waits forever on a server
that accepted the connection and then went silent. Failures come back in two kinds:
- `ServerDown`: the server cannot be reached, dropped the connection, did not answer in time, or does not
  have the model loaded (yet): worth retrying later (a restart looks like this);
- `Refused` (an EngineError): the server answered and said no (wrong shape or type, bad request).
tritonclient is imported only when a connection is made.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import numpy as np

from vision_app.errors import EngineError

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 8000, "grpc": 8001}
DATATYPES: dict[str, np.dtype] = {
    "FP32": np.dtype(np.float32), "FP16": np.dtype(np.float16), "FP64": np.dtype(np.float64),
    "UINT8": np.dtype(np.uint8), "INT8": np.dtype(np.int8), "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64), "BOOL": np.dtype(np.bool_),
}
_TYPE_NAMES = {v: k for k, v in DATATYPES.items()}
# what the server says when a model is not loaded (unknown, unloading, still loading after a restart)
_NOT_LOADED = ("unknown model", "is not found", "not ready", "is not loaded", "unavailable model")


class ServerDown(Exception):
    """The server is unreachable, silent, or lacks the model for now; retry later."""


class Refused(EngineError):
    """The server answered and refused the request."""


def parse_url(url: str) -> tuple[str, str]:
    """('http' | 'grpc', 'host:port') from `http://host:8000` / `grpc://host:8001` (port optional)."""
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise EngineError(f"Triton server URL {text!r} is not usable: expected http://HOST:PORT (HTTP, usually "
                          f"port 8000) or grpc://HOST:PORT (gRPC, usually 8001); set engine.triton_url or "
                          f"--triton-url")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise EngineError(f"Triton server URL {text!r} has a bad port: {exc}") from exc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts.scheme, f"{host}:{port}"


def dtype_of(datatype: str, where: str) -> np.dtype:
    if datatype not in DATATYPES:
        raise EngineError(f"{where}: tensor type {datatype} is not supported by vision-app (expected one of "
                          f"{', '.join(DATATYPES)})")
    return DATATYPES[datatype]


def datatype_of(dtype: np.dtype) -> str:
    return _TYPE_NAMES.get(np.dtype(dtype), "?")


class TritonConnection:
    """One tritonclient client for one thread. timeout_s bounds connecting and every request."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.protocol, self.address = parse_url(url)
        self.timeout_s = float(timeout_s)
        try:
            if self.protocol == "http":
                import tritonclient.http as client_mod
                self.client: Any = client_mod.InferenceServerClient(
                    self.address, connection_timeout=self.timeout_s, network_timeout=self.timeout_s)
            else:
                import tritonclient.grpc as client_mod
                self.client = client_mod.InferenceServerClient(self.address)
        except ImportError as exc:
            raise EngineError(f"the triton backend needs tritonclient: pip install -e '.[triton]' ({exc})") from exc
        self._mod = client_mod

    def _kw(self) -> dict[str, Any]:
        return {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) with errors sorted into ServerDown / Refused."""
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, **kwargs, **self._kw())
        except InferenceServerException as exc:
            status = str(exc.status() or "")
            text = str(exc.message() or exc)
            low = f"{status} {text}".lower()
            if "deadline" in low or "timed out" in low or "timeout" in low:
                raise ServerDown(f"no answer to {what} within {self.timeout_s:g} s") from exc
            if "unavailable" in low or "failed to connect" in low or "connection" in low or "socket" in low:
                raise ServerDown(f"{what} failed: {text}") from exc
            if any(s in low for s in _NOT_LOADED):
                raise ServerDown(f"the model is not loaded on the server: {text}") from exc
            raise Refused(f"{what} refused: {text}") from exc
        except TimeoutError as exc:  # the HTTP client's socket deadline
            raise ServerDown(f"no answer to {what} within {self.timeout_s:g} s") from exc
        except (OSError, EOFError) as exc:  # refused/reset sockets (HTTP client)
            raise ServerDown(f"{what} failed: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("gevent", "geventhttpclient"):  # its parse/closed errors
                raise ServerDown(f"{what} failed: {type(exc).__name__}: {exc}") from exc
            raise

    # --- what the engine asks ------------------------------------------------------------------
    def is_live(self) -> bool:
        return bool(self.call("server health check", self.client.is_server_live))

    def is_model_ready(self, name: str, version: str) -> bool:
        return bool(self.call("model readiness check", self.client.is_model_ready, name, version))

    def metadata(self, name: str, version: str) -> dict[str, Any]:
        kw = {"as_json": True} if self.protocol == "grpc" else {}
        return dict(self.call("model metadata request", self.client.get_model_metadata, name, version, **kw))

    def config(self, name: str, version: str) -> dict[str, Any]:
        if self.protocol == "grpc":
            return dict(self.call("model config request", self.client.get_model_config, name, version,
                                  as_json=True).get("config", {}))
        return dict(self.call("model config request", self.client.get_model_config, name, version))

    def model_list(self) -> list[str] | None:
        """'name (version, state)' of every model in the server's repository; None when the server does not
        say (the repository API can be restricted)."""
        try:
            if self.protocol == "grpc":
                index = self.call("repository index", self.client.get_model_repository_index,
                                  as_json=True).get("models", [])
            else:
                index = self.call("repository index", self.client.get_model_repository_index)
        except (ServerDown, EngineError) as exc:
            log.debug("repository index not available: %s", exc)
            return None
        return [f"{m.get('name')} (version {m.get('version', '?')}, {m.get('state', 'state unknown')})"
                for m in index]

    def infer(self, name: str, version: str, feed: Mapping[str, np.ndarray],
              outputs: Sequence[str]) -> dict[str, np.ndarray]:
        http = self.protocol == "http"
        inputs = []
        for n, arr in feed.items():
            inp = self._mod.InferInput(n, list(arr.shape), datatype_of(arr.dtype))
            if http:
                inp.set_data_from_numpy(np.ascontiguousarray(arr), binary_data=True)
            else:
                inp.set_data_from_numpy(np.ascontiguousarray(arr))
            inputs.append(inp)
        requested = [self._mod.InferRequestedOutput(o, binary_data=True) if http else
                     self._mod.InferRequestedOutput(o) for o in outputs]
        result = self.call("inference request", self.client.infer, name, inputs, model_version=version,
                           outputs=requested)
        out = {}
        for o in outputs:
            arr = result.as_numpy(o)
            if arr is None:
                raise Refused(f"the answer has no output '{o}'")
            out[o] = arr
        return out

    def close(self) -> None:
        try:
            self.client.close()
        except Exception as exc:  # a gevent client closed from another thread; nothing is lost
            log.debug("closing the Triton client of %s: %s", self.url, exc)
