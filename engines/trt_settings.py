"""TensorRT build settings and optimization profiles: pure Python, no tensorrt import.

An ONNX input with dynamic dimensions needs an optimization profile (min / opt / max shape) before
TensorRT can build an engine for it. The ranges come from the `[tensorrt]` config section:
- dim 0 of any input (batch, e.g. MiniFASNet's N): 1 .. max_batch, tuned for 1;
- dims 2 and 3 of a 4-D NCHW input (YuNet's and the Johnson nets' H x W): min_hw .. max_hw, tuned for
  opt_hw, rounded to the model's `multiple_of` (min/opt up, max down);
- any other dynamic dim cannot be guessed and is an EngineError that says so.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from vision_app.errors import EngineError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")

Shape = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ProfileRange:
    """min / opt / max shape of one dynamic input (every dim an int)."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.min) and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))

    def as_list(self) -> list[Any]:
        return [self.name, list(self.min), list(self.opt), list(self.max)]


@dataclass(frozen=True)
class TrtSettings:
    """Everything that decides how an engine is built and where it is cached.

    min_hw / opt_hw / max_hw: [height, width] of dynamic spatial dims; max_batch: upper bound of a
    dynamic batch dim; multiple_of: the model's spatial granularity (YuNet 32, Johnson 4).
    """

    precision: str = "fp32"
    workspace_mb: int = 1024
    cache_dir: Path | None = None
    timing_cache: bool = True
    device: int = 0
    min_hw: tuple[int, int] = (32, 32)
    opt_hw: tuple[int, int] = (480, 640)
    max_hw: tuple[int, int] = (1088, 1920)
    max_batch: int = 8
    multiple_of: int = 1

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineError(f"tensorrt precision must be one of {PRECISIONS}, got {self.precision!r}")
        for label, hw in (("min_hw", self.min_hw), ("opt_hw", self.opt_hw), ("max_hw", self.max_hw)):
            if len(hw) != 2 or min(hw) < 1:
                raise EngineError(f"tensorrt.{label} must be [height, width] of positive ints, got {list(hw)}")
        if not all(a <= b <= c for a, b, c in zip(self.min_hw, self.opt_hw, self.max_hw)):
            raise EngineError(f"tensorrt profile sizes must satisfy min_hw <= opt_hw <= max_hw per dim, got "
                              f"{list(self.min_hw)}, {list(self.opt_hw)}, {list(self.max_hw)}")
        if self.max_batch < 1:
            raise EngineError(f"tensorrt.max_batch must be >= 1, got {self.max_batch}")

    @classmethod
    def from_config(cls, section: Any, multiple_of: int = 1) -> "TrtSettings":
        """From the `[tensorrt]` config section (vision_app.config.TensorRTConfig); cache_dir "" means
        <user data>/engines."""
        from vision_app.models import user_data_dir

        cache = Path(section.cache_dir).expanduser() if section.cache_dir else user_data_dir() / "engines"
        return cls(precision=section.precision, workspace_mb=int(section.workspace_mb), cache_dir=cache,
                   timing_cache=bool(section.timing_cache), device=int(section.device),
                   min_hw=tuple(section.min_hw), opt_hw=tuple(section.opt_hw),
                   max_hw=tuple(section.max_hw), max_batch=int(section.max_batch),
                   multiple_of=max(1, int(multiple_of)))


def onnx_input_shapes(onnx_path: str | Path) -> dict[str, tuple[int | None, ...]]:
    """Graph inputs (initializers excluded) of an ONNX file: name -> shape, None for a dynamic dim."""
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError / OSError / ValueError depending on the damage
        raise EngineError(f"{onnx_path} is not a readable ONNX model: {exc}") from exc
    inits = {i.name for i in model.graph.initializer}
    out: dict[str, tuple[int | None, ...]] = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        out[inp.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
    return out


def _round_up(v: int, m: int) -> int:
    return max(m, math.ceil(v / m) * m)


def _round_down(v: int, m: int) -> int:
    return max(m, (v // m) * m)


def compute_profiles(inputs: Mapping[str, Sequence[int | None]], settings: TrtSettings,
                     model: str = "model") -> tuple[ProfileRange, ...]:
    """One ProfileRange per input that has a dynamic dim (static inputs need none), in input order."""
    m = settings.multiple_of
    hw_ranges = []
    for i in range(2):
        lo = _round_up(settings.min_hw[i], m)
        hi = max(lo, _round_down(settings.max_hw[i], m))
        opt = min(hi, max(lo, _round_up(settings.opt_hw[i], m)))
        hw_ranges.append((lo, opt, hi))
    profiles = []
    for name, shape in inputs.items():
        if all(d is not None for d in shape):
            continue
        lo_s, opt_s, hi_s = [], [], []
        for k, d in enumerate(shape):
            if d is not None:
                rng = (d, d, d)
            elif k == 0:
                rng = (1, 1, settings.max_batch)
            elif len(shape) == 4 and k in (2, 3):
                rng = hw_ranges[k - 2]
            else:
                dims = "x".join("?" if v is None else str(v) for v in shape)
                raise EngineError(f"{model}: input '{name}' [{dims}] has a dynamic dim {k} that is neither "
                                  f"the batch nor the H/W of an NCHW image, so no TensorRT optimization profile "
                                  f"can be chosen for it; export the model with that dim fixed, or use "
                                  f"--backend onnxruntime")
            lo_s.append(rng[0])
            opt_s.append(rng[1])
            hi_s.append(rng[2])
        profiles.append(ProfileRange(name, tuple(lo_s), tuple(opt_s), tuple(hi_s)))
    return tuple(profiles)


def check_in_profile(model: str, name: str, shape: Sequence[int], profile: ProfileRange) -> None:
    """Raise EngineError unless `shape` lies inside the engine's profile for input `name`."""
    if profile.contains(shape):
        return
    raise EngineError(f"{model}: input '{name}' shape {list(shape)} is outside the TensorRT engine's "
                      f"optimization profile (min {list(profile.min)}, max {list(profile.max)}); feed a "
                      f"smaller frame, or widen tensorrt.min_hw / max_hw / max_batch in the config (the "
                      f"engine is rebuilt once for the new range)")


def ort_tensorrt_options(section: Any) -> dict[str, str]:
    """ONNX Runtime TensorRT execution-provider options from the `[tensorrt]` section: its engines and
    timing cache go to <cache_dir>/onnxruntime-trt, so ORT does not rebuild them on every start either."""
    folder = TrtSettings.from_config(section).cache_dir / "onnxruntime-trt"  # type: ignore[operator]
    return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(folder),
            "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(folder),
            "trt_fp16_enable": "True" if section.precision == "fp16" else "False",
            "trt_max_workspace_size": str(int(section.workspace_mb) << 20)}
