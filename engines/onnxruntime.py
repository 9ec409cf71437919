"""ONNX Runtime backend (CPU by default; CUDA/TensorRT execution providers when present and asked for)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.base import EngineBase, TensorSpec
from vision_app.errors import EngineError

log = logging.getLogger(__name__)

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32)))


class OnnxRuntimeEngine(EngineBase):
    """An onnxruntime.InferenceSession behind the Engine protocol.

    providers: execution providers in order of preference, e.g. ["CPUExecutionProvider"]. A requested
    provider that this onnxruntime build lacks raises EngineError (set allow_fallback=True to accept the
    remaining ones; the fallback is logged as a warning). threads: intra-op threads (0 = ORT default).
    provider_options: per-provider option dicts, e.g. the TensorRT EP's engine-cache folder.
    """

    backend = "onnxruntime"

    def __init__(self, model_path: str | Path, *, providers: Sequence[str] | None = None,
                 threads: int = 0, allow_fallback: bool = False, name: str | None = None,
                 provider_options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(model_path)
        self.name = name or self.path.stem
        self._threads = int(threads)
        self._allow_fallback = allow_fallback
        if not self.path.is_file():
            raise EngineError(f"model file not found: {self.path}. Check the model folder "
                              f"(--models or VISION_APP_MODELS) and run 'python main.py models list'")
        available = ort.get_available_providers()
        wanted = list(providers) if providers else ["CPUExecutionProvider"]
        missing = [p for p in wanted if p not in available]
        if missing:
            msg = (f"{self.name}: execution provider(s) {missing} requested but this onnxruntime build "
                   f"only has {available}")
            if not allow_fallback:
                raise EngineError(msg + "; install the matching onnxruntime package or change 'providers'")
            log.warning("%s; continuing with the others", msg)
            wanted = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        self._providers = wanted
        self._provider_options = {k: dict(v) for k, v in (provider_options or {}).items()}
        opts = ort.SessionOptions()
        if self._threads > 0:
            opts.intra_op_num_threads = self._threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            from engines.onnx_rewrite import scalar_prelu_to_leaky_relu

            model: str | bytes = scalar_prelu_to_leaky_relu(self.path) or str(self.path)
            self._session = ort.InferenceSession(model, sess_options=opts, providers=wanted,
                                                 provider_options=[self._provider_options.get(p, {}) for p in wanted])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise EngineError(f"{self.path} is not a valid ONNX model that onnxruntime can load "
                              f"(expected an .onnx file from the model folder): {exc}") from exc
        self.inputs = {a.name: _spec(a) for a in self._session.get_inputs()}
        self.outputs = {a.name: _spec(a) for a in self._session.get_outputs()}
        self._output_names = list(self.outputs)
        self.providers = list(self._session.get_providers())
        log.info("loaded %s with onnxruntime, execution provider(s) %s, threads %s",
                 self.path.name, self.providers, self._threads or "default")

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_feed(feed)
        try:
            outs = self._session.run(self._output_names, dict(feed))
        except Exception as exc:
            raise EngineError(f"{self.name}: inference failed: {exc}") from exc
        return dict(zip(self._output_names, outs))

    def clone(self) -> "OnnxRuntimeEngine":
        """A sibling session for another thread (ORT sessions are thread-safe, but a separate session per
        thread avoids contention of their thread pools)."""
        return OnnxRuntimeEngine(self.path, providers=self._providers, threads=self._threads,
                                 allow_fallback=self._allow_fallback, name=self.name,
                                 provider_options=self._provider_options)

    def close(self) -> None:
        self._session = None

    def describe(self) -> str:
        return f"{super().describe()} [providers {', '.join(self.providers)}]"

    @staticmethod
    def probe() -> str:
        return "ok"
