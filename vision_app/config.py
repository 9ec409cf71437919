"""Configuration: dataclasses loaded from TOML (tomllib); each component reads its own section.

`default_config.toml` beside this file documents every key with its default. A user file given with
--config overrides those keys; command-line options override the file. Unknown sections or keys and
values of the wrong type are reported as ConfigError naming the key.
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from vision_app.errors import ConfigError
from vision_app.monitoring.config import MetricsConfig, MonitoringConfig, MqttConfig, monitoring_checks

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.toml")


@dataclass
class CaptureConfig:
    video_mode: str = "offline"       # "offline": every frame in order; "paced": at the file's fps
    reconnect_initial_s: float = 0.5  # first reconnect delay for a live source that stopped
    reconnect_max_s: float = 10.0     # backoff cap
    reconnect_attempts: int = 0       # 0 = keep trying until stopped
    read_timeout_s: float = 5.0       # a live source silent this long is reopened
    camera_width: int = 0             # 0 = the camera's default
    camera_height: int = 0
    test_size: list[int] = field(default_factory=lambda: [640, 480])
    test_fps: float = 30.0


@dataclass
class EngineConfig:
    backend: str = "auto"             # auto | onnxruntime | tensorrt | triton
    threads: int = 0                  # intra-op threads per session (0 = runtime default)
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    workers: int | str = "auto"       # whole-frame workers: "auto" (per source kind and core count) or 1..16
    triton_url: str = ""              # backend "triton": http://host:8000 or grpc://host:8001
    triton_timeout_s: float = 5.0     # deadline of every request to the Triton server
    triton_retry_initial_s: float = 0.5  # first wait after the server stopped answering, then doubled
    triton_retry_max_s: float = 10.0  # longest wait between tries while the server is down


@dataclass
class TensorRTConfig:
    precision: str = "fp32"           # fp32 | fp16 (TensorRT 10: builder flag; 11: an FP16 copy of the ONNX)
    workspace_mb: int = 1024          # builder workspace memory limit
    cache_dir: str = ""               # built engines + timing cache; "" = <user data>/engines
    timing_cache: bool = True         # reuse layer timings across builds (faster rebuilds)
    device: int = 0                   # CUDA device index
    # dynamic H x W inputs (YuNet, Johnson): smallest, tuned-for and largest [height, width]
    min_hw: list[int] = field(default_factory=lambda: [32, 32])
    opt_hw: list[int] = field(default_factory=lambda: [480, 640])
    max_hw: list[int] = field(default_factory=lambda: [1088, 1920])
    max_batch: int = 8                # dynamic batch dims (MiniFASNet): 1..max_batch
    gpu_preprocess: bool = True       # resize/normalise frames with a CUDA kernel straight into the input

@dataclass
class RunnerConfig:
    stats_interval_s: float = 5.0     # how often the CLI logs live stats
    output_fps: float = 0.0           # 0 = the source's fps (or 25 when unknown)
    output_codec: str = "mp4v"
    disable_stage_after: int = 50     # consecutive failures of one stage before it is disabled (0 = never)


@dataclass
class DetectConfig:
    model: str = "yolo-fastest-1.1-xl"
    confidence: float = 0.25
    iou: float = 0.45
    max_detections: int = 300         # cap after NMS (0 = no cap)
    max_candidates: int = 2000        # best-scored boxes kept before NMS (0 = all; NMS cost ~ its square)
    class_agnostic: bool = False      # NMS across classes (default: only boxes of the same class)
    track: bool = True                # ByteTrack ids across frames (drawn next to the label)
    track_high_score: float = 0.5     # detections at/above this are matched first and may start tracks
    track_low_score: float = 0.1      # detections between this and high only continue active tracks
    track_new_score: float = 0.6      # an unmatched detection at/above this starts a new track
    track_match_iou: float = 0.2      # least IoU for matching a high detection to a track
    track_low_match_iou: float = 0.5  # least IoU for matching a low detection to a track
    track_buffer_frames: int = 30     # frames a lost track is kept for re-identification


@dataclass
class FaceConfig:
    detector: str = "yunet"
    embedder: str = "edgeface-xs"     # recognizer: edgeface-xs | face-reid-0095 | mobilefacenet (README: choosing it)
    detect_score: float = 0.6
    gallery: str = ""                 # "" = <user data>/gallery.db
    overlay_details: bool = True      # names, similarity and liveness next to face boxes (kiosk: off)
    gallery_key: str = ""             # Fernet key file (mode 0600); "" = the gallery path + ".key"
    gallery_busy_timeout_s: float = 5.0  # wait this long for another process's lock on the gallery
    match_threshold: float = 0.41     # cosine floor for "same person" (edgeface-xs; face-eval on faces-eval/celeba)
    threshold_rule: str = "gallery_size"  # gallery_size: raise the threshold so templates x FAR <= open_set_far; fixed
    open_set_far: float = 0.003       # false accepts per attempt the gallery-size rule bounds (0.3 %)
    min_face_px: float = 40.0         # quality: shorter side of the face box in pixels
    blur_min: float = 40.0            # quality: min variance of the Laplacian on the aligned 112x112 crop
    max_yaw_ratio: float = 0.45       # quality: |nose offset from eye midpoint| / eye distance (~39 deg)
    max_roll_deg: float = 30.0        # quality: |eye-line tilt| in degrees
    passive_models: list[str] = field(default_factory=lambda: ["minifasnet-v2", "minifasnet-v1se"])  # V2 ×2.7, V1SE ×4.0 crops
    passive_threshold: float = 0.5    # MiniFASNet real-score (p_real / 2) for a live verdict; spoof_1 .23, astronaut .87
    mesh_model: str = "face-mesh"     # 468-point mesh for blink (EAR) and non-rigid motion; "" = no blink/temporal
    blink_close_ratio: float = 0.8    # EAR below the track's own median × this = eyes closing (carphone blink: .74)
    blink_open_ratio: float = 0.9     # back above median × this = reopened: one blink
    blink_max_closed_s: float = 0.5   # longer closures are not blinks
    blink_baseline_frames: int = 5    # EAR samples before the per-track baseline is trusted
    liveness_window_s: float = 2.0    # temporal check window: no blink and no motion in it = not live
    motion_min: float = 0.012         # non-rigid mesh motion / eye-corner distance; carphone >= .024, shaken photo <= .007
    head_turn_deg: float = 15.0       # optional head-turn challenge: yaw change from the track's start
    track_iou: float = 0.3            # face tracker: least IoU to continue a track
    track_buffer_frames: int = 15     # a lost face track may come back within this many frames


@dataclass
class AccessConfig:
    """The door kiosk's access controller (vision_app/access/controller.py), access log and door."""

    log_db: str = ""                  # access log SQLite file; "" = <user data>/access_log.db
    kiosk_id: str = "kiosk-1"         # written with every decision
    check_frames: int = 8             # good frames of the same tracked face judged together
    min_match_ratio: float = 0.75     # share of those frames in which the person is the best candidate
    blink_challenge: bool = True      # ask for a blink before granting (kiosk mode)
    blink_timeout_s: float = 8.0      # time to blink once asked (asked when the check starts)
    check_timeout_s: float = 8.0      # deadline: a check not passed by then is denied (movement/blink watched until it)
    result_s: float = 2.0             # ACCESS GRANTED / DENIED stays on screen this long
    cooldown_s: float = 1.0           # then no new check for this long
    recognition_interval_s: float = 10.0  # the same tracked face is not checked again within this time
    lost_frames: int = 5              # frames without the face before a check is abandoned
    max_failed_attempts: int = 3      # denials within alarm_window_s that raise the alarm
    alarm_window_s: float = 120.0
    grant_requires_log: bool = True   # never open the door when the decision cannot be logged
    door: str = "log"                 # log (no hardware) | webhook
    door_url: str = ""                # door = "webhook": POST JSON here
    door_timeout_s: float = 3.0       # per webhook request (sent off the decision thread)
    snapshot_dir: str = ""            # save each decision's frame as JPEG here; "" = no snapshots


@dataclass
class SegmentConfig:
    model: str = "selfie"
    overlay: str = "color"            # color | blur | replace | cutout
    opacity: float = 0.5
    smoothing: float = 0.6            # EMA weight of the previous mask (0 = off)
    threshold: float = 0.5            # person probability above which a pixel is labelled person (selfie)
    edge_softness: float = 0.4        # probability band around the threshold blended softly (0 = hard edge)
    foreground: list[str] = field(default_factory=lambda: ["person"])  # kept sharp by blur/replace/cutout; [] = all but background
    background: str = ""              # image for overlay "replace"; "" = a plain green screen
    blur_sigma: float = 0.03          # background blur strength as a fraction of the frame's short side
    legend: bool = True               # draw the class legend on the colour overlay
    scene_threshold: float = 0.15     # grey-thumbnail change (0..1) between frames that resets smoothing


@dataclass
class StyleConfig:
    style: str = ""                   # painting path or a fixed-style model name (johnson_wave)
    strength: float = 1.0
    working_size: int = 384           # long side of the working resolution for dynamic models
    content_every: int = 30           # strength < 1: frames between updates of the frame's own style vector
    disk_cache: bool = True           # keep painting style vectors in <user data>/style_vectors
    scene_threshold: float = 0.15     # grey-thumbnail change (0..1) that also updates the frame's own vector


@dataclass
class UiConfig:
    file_mode: str = "paced"          # video files in the desktop app: "paced" (at their fps) or "offline"
    capture_dir: str = ""             # snapshots and recordings; "" = <user data>/captures
    pin_max_attempts: int = 5         # wrong kiosk admin PINs in a row before the panel locks
    pin_lockout_s: float = 300.0      # how long the admin panel stays locked (survives a restart)
    admin_file: str = ""              # kiosk admin PIN hash + lockout state; "" = <user data>/kiosk_admin.json
    event_cooldown_s: float = 10.0    # monitor list + MQTT face events: the same person again after this
    event_min_frames: int = 3         # monitor list + MQTT face events: frames seen before announced
    decision_hold_s: float = 4.0      # kiosk: how long the GRANTED / DENIED banner stays up


@dataclass
class AppConfig:
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    tensorrt: TensorRTConfig = field(default_factory=TensorRTConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    access: AccessConfig = field(default_factory=AccessConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    style: StyleConfig = field(default_factory=StyleConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value)
    if tp is Any:
        return True
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


# Keys that older releases accepted, with what replaced them, so an old config file gets told what to do.
REMOVED_KEYS: dict[str, str] = {
    "access.min_live_ratio": "the kiosk now averages the passive anti-spoof score over all good frames of the "
                             "tracked face and compares it with face.passive_threshold",
}


def _table_list_item(tp: Any) -> Any:
    """The dataclass X when tp is list[X], else None."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list and len(args) == 1 and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def _apply(obj: Any, table: Mapping[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in table.items():
        path = f"{where}.{key}" if where else key
        if path in REMOVED_KEYS:
            raise ConfigError(f"config key '{path}' was removed: {REMOVED_KEYS[path]}; delete it from the file")
        if key not in names:
            raise ConfigError(f"unknown config key '{path}'; known keys here: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{path}' must be a table [{path}], got {value!r}")
            _apply(current, value, path)
            continue
        item = _table_list_item(hints[key])
        if item is not None:  # a list of tables ([[monitoring.sources]]): each one checked like a section
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"config key '{path}' must be a list of tables [[{path}]], got {value!r}")
            built = []
            for i, v in enumerate(value):
                entry = item()
                _apply(entry, v, f"{path}[{i}]")
                built.append(entry)
            setattr(obj, key, built)
            continue
        if not _type_ok(value, hints[key]):
            raise ConfigError(f"config key '{path}' has a bad value {value!r}: expected "
                              f"{getattr(hints[key], '__name__', str(hints[key]))}")
        setattr(obj, key, float(value) if hints[key] is float else value)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """Defaults, then the TOML file at `path`, then dotted-key overrides ({'detect.confidence': .3})."""
    cfg = AppConfig()
    if path is not None:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {p} not found; pass an existing TOML file to --config "
                              f"(see {DEFAULT_CONFIG_PATH} for every key)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {p}: {exc}") from exc
        _apply(cfg, data, "")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *sections, key = dotted.split(".")
        table: dict[str, Any] = {key: value}
        for s in reversed(sections):
            table = {s: table}
        _apply(cfg, table, "")
    validate(cfg)
    return cfg


def _hw_ok(v: list[int]) -> bool:
    return len(v) == 2 and all(x >= 1 for x in v)


def validate(cfg: AppConfig) -> None:
    """Range checks that types alone cannot express."""
    checks = [
        ("capture.video_mode", cfg.capture.video_mode in ("offline", "paced"), "'offline' or 'paced'"),
        ("engine.backend", cfg.engine.backend in ("auto", "onnxruntime", "tensorrt", "triton"),
         "'auto', 'onnxruntime', 'tensorrt' or 'triton'"),
        ("engine.triton_url", cfg.engine.backend != "triton" or cfg.engine.triton_url.strip() != "",
         "the server's URL when engine.backend is 'triton' (--triton-url http://HOST:8000 or grpc://HOST:8001)"),
        ("engine.triton_timeout_s", 0 < cfg.engine.triton_timeout_s <= 600, "> 0 and <= 600"),
        ("engine.triton_retry_initial_s", 0 < cfg.engine.triton_retry_initial_s <= cfg.engine.triton_retry_max_s,
         "> 0 and <= engine.triton_retry_max_s"),
        ("engine.triton_retry_max_s", cfg.engine.triton_retry_max_s <= 3600, "<= 3600"),
        ("engine.workers", cfg.engine.workers == "auto" or (
            isinstance(cfg.engine.workers, int) and 1 <= cfg.engine.workers <= 16), "\"auto\" or 1..16"),
        ("tensorrt.precision", cfg.tensorrt.precision in ("fp32", "fp16"), "'fp32' or 'fp16'"),
        ("tensorrt.workspace_mb", 64 <= cfg.tensorrt.workspace_mb <= 1 << 20, "64..1048576"),
        ("tensorrt.max_batch", 1 <= cfg.tensorrt.max_batch <= 256, "1..256"),
        ("tensorrt.min_hw", _hw_ok(cfg.tensorrt.min_hw), "[height, width] of positive ints"),
        ("tensorrt.opt_hw", _hw_ok(cfg.tensorrt.opt_hw) and all(
            a <= b <= c for a, b, c in zip(cfg.tensorrt.min_hw, cfg.tensorrt.opt_hw, cfg.tensorrt.max_hw)),
         "[height, width] between min_hw and max_hw"),
        ("tensorrt.max_hw", _hw_ok(cfg.tensorrt.max_hw), "[height, width] of positive ints"),
        ("detect.confidence", 0.0 <= cfg.detect.confidence <= 1.0, "0..1"),
        ("detect.iou", 0.0 <= cfg.detect.iou <= 1.0, "0..1"),
        ("detect.max_detections", cfg.detect.max_detections >= 0, ">= 0 (0 = no cap)"),
        ("detect.max_candidates", cfg.detect.max_candidates >= 0, ">= 0 (0 = no cap)"),
        ("detect.track_low_score", 0.0 <= cfg.detect.track_low_score <= cfg.detect.track_high_score <= 1.0,
         "0 <= track_low_score <= track_high_score <= 1"),
        ("detect.track_new_score", 0.0 <= cfg.detect.track_new_score <= 1.0, "0..1"),
        ("detect.track_match_iou", 0.0 <= cfg.detect.track_match_iou <= 1.0, "0..1"),
        ("detect.track_low_match_iou", 0.0 <= cfg.detect.track_low_match_iou <= 1.0, "0..1"),
        ("detect.track_buffer_frames", cfg.detect.track_buffer_frames >= 0, ">= 0"),
        ("face.detect_score", 0.0 <= cfg.face.detect_score <= 1.0, "0..1"),
        ("face.match_threshold", -1.0 <= cfg.face.match_threshold <= 1.0, "-1..1 (cosine)"),
        ("face.threshold_rule", cfg.face.threshold_rule in ("gallery_size", "fixed"), "'gallery_size' or 'fixed'"),
        ("face.open_set_far", 0.0 < cfg.face.open_set_far < 1.0, "0..1 (e.g. 0.003 for 0.3 %)"),
        ("access.check_frames", cfg.access.check_frames >= 1, ">= 1"),
        ("access.min_match_ratio", 0.0 < cfg.access.min_match_ratio <= 1.0, "0..1"),
        ("access.max_failed_attempts", cfg.access.max_failed_attempts >= 1, ">= 1"),
        ("access.door", cfg.access.door in ("log", "webhook"), "'log' or 'webhook'"),
        ("face.gallery_busy_timeout_s", cfg.face.gallery_busy_timeout_s >= 0, ">= 0"),
        ("face.min_face_px", cfg.face.min_face_px >= 0, ">= 0"),
        ("face.max_yaw_ratio", cfg.face.max_yaw_ratio > 0, "> 0"),
        ("face.max_roll_deg", 0 < cfg.face.max_roll_deg <= 180, "0..180"),
        ("face.passive_threshold", 0.0 <= cfg.face.passive_threshold <= 1.0, "0..1"),
        ("face.passive_models", len(cfg.face.passive_models) == 2, "two model names (V2 ×2.7, V1SE ×4.0)"),
        ("face.blink_close_ratio", 0.0 < cfg.face.blink_close_ratio < cfg.face.blink_open_ratio <= 1.0,
         "0 < blink_close_ratio < blink_open_ratio <= 1"),
        ("face.blink_baseline_frames", cfg.face.blink_baseline_frames >= 1, ">= 1"),
        ("face.liveness_window_s", cfg.face.liveness_window_s > 0, "> 0"),
        ("face.motion_min", cfg.face.motion_min > 0, "> 0"),
        ("face.track_iou", 0.0 < cfg.face.track_iou <= 1.0, "0..1"),
        ("face.track_buffer_frames", cfg.face.track_buffer_frames >= 0, ">= 0"),
        ("segment.overlay", cfg.segment.overlay in ("color", "blur", "replace", "cutout"),
         "color | blur | replace | cutout"),
        ("segment.opacity", 0.0 <= cfg.segment.opacity <= 1.0, "0..1"),
        ("style.strength", 0.0 <= cfg.style.strength <= 1.0, "0..1"),
        ("segment.smoothing", 0.0 <= cfg.segment.smoothing < 1.0, "0..1 (1 would freeze the mask)"),
        ("segment.threshold", 0.0 < cfg.segment.threshold < 1.0, "between 0 and 1"),
        ("segment.edge_softness", 0.0 <= cfg.segment.edge_softness <= 1.0, "0..1"),
        ("segment.blur_sigma", 0.0 < cfg.segment.blur_sigma <= 0.5, "0..0.5"),
        ("segment.scene_threshold", 0.0 <= cfg.segment.scene_threshold <= 1.0, "0..1"),
        ("style.working_size", 32 <= cfg.style.working_size <= 4096, "32..4096"),
        ("style.content_every", cfg.style.content_every >= 1, ">= 1"),
        ("style.scene_threshold", 0.0 <= cfg.style.scene_threshold <= 1.0, "0..1"),
        ("ui.file_mode", cfg.ui.file_mode in ("offline", "paced"), "'offline' or 'paced'"),
        ("ui.pin_max_attempts", cfg.ui.pin_max_attempts >= 1, ">= 1"),
        ("ui.pin_lockout_s", cfg.ui.pin_lockout_s >= 0, ">= 0"),
        ("ui.event_cooldown_s", cfg.ui.event_cooldown_s >= 0, ">= 0"),
        ("ui.event_min_frames", cfg.ui.event_min_frames >= 1, ">= 1"),
        ("ui.decision_hold_s", cfg.ui.decision_hold_s >= 0, ">= 0"),
    ]
    for key, ok, expected in checks:
        if not ok:
            section, name = key.split(".")
            raise ConfigError(f"config key '{key}' has a bad value {getattr(getattr(cfg, section), name)!r}: "
                              f"expected {expected}")
    for key, value, ok, expected in monitoring_checks(cfg.monitoring, cfg.mqtt, cfg.metrics):
        if not ok:
            raise ConfigError(f"config key '{key}' has a bad value {value!r}: expected {expected}")


def default_toml() -> str:
    return DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
