"""Pipeline: runs the enabled stages on a Frame, times each, returns a FrameResult.

A stage is a small class with a `name` and `process(result) -> result` that adds its part (detections,
faces, a mask, a rendered image) to the frame's result with dataclasses.replace — frames and results are
never mutated.

Stateful work (a tracker, temporal smoothing, liveness over time) goes in an optional
`finish(result) -> result` method. `process` must be independent per frame (it may run for several
frames at once on different workers, each with its own stage instance); `finish` always runs in frame
order, on one stage instance, after every stage's `process`. Then annotations are drawn (render). A stage that raises is logged with its traceback once per kind of error, counted, and
reported in result.errors; the other stages still run and the loop goes on.

An EngineUnavailable (an inference server down or restarting; its engine retries with backoff) is an
outage, not a failure of the stage: it is reported once when the outage starts (log + on_error) and once
when the stage works again (log + on_recovered), and never counts towards disabling the stage.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Callable, Iterable, Protocol, runtime_checkable

from vision_app.errors import ConfigError, EngineUnavailable
from vision_app.modelwatch import ModelWatch
from vision_app.types import Frame, FrameResult

log = logging.getLogger(__name__)


@runtime_checkable
class Stage(Protocol):
    name: str

    def process(self, result: FrameResult) -> FrameResult: ...

    def close(self) -> None: ...


def finish_step(stage: Stage) -> Callable[[FrameResult], FrameResult] | None:
    """The stage's optional in-order `finish(result) -> result` method, or None when it has none."""
    finish = getattr(stage, "finish", None)
    return finish if callable(finish) else None


class PassThroughStage:
    """Does nothing but copy the frame into the result: exercises the loop end to end."""

    name = "passthrough"

    def process(self, result: FrameResult) -> FrameResult:
        return result

    def close(self) -> None:
        pass


ErrorCallback = Callable[[str, str], None]  # (stage name, message)


class Pipeline:
    def __init__(self, stages: Iterable[Stage], *, render: Callable[[FrameResult], FrameResult] | None = None,
                 on_error: ErrorCallback | None = None, disable_after: int = 0,
                 watch: ModelWatch | None = None, on_recovered: ErrorCallback | None = None) -> None:
        """render: optional final step (draws annotations on a copy; timed as 'draw').
        disable_after: disable a stage after this many consecutive failures (0 = never).
        watch: model files per stage; a stage whose file changes on disk is disabled and reported.
        on_recovered: (stage, message) when a stage works again after an inference-server outage."""
        self.stages = list(stages)
        self.render = render
        self.on_error = on_error
        self.on_recovered = on_recovered
        self.outages: dict[str, float] = {}  # stage -> monotonic time its server outage began
        self.disable_after = disable_after
        self.error_counts: dict[tuple[str, str], int] = {}
        self._consecutive: dict[str, int] = {}
        self.disabled: set[str] = set()
        self.watch = watch
        self._borrowed: set[int] = set()  # ids of stages shared with the pipeline this one was forked from

    def _notify(self, callback: ErrorCallback | None, stage: str, msg: str) -> None:
        if callback:
            try:
                callback(stage, msg)
            except Exception:
                log.exception("error callback failed")

    def _outage(self, stage: str, exc: EngineUnavailable) -> str:
        msg = f"stage '{stage}' is waiting for its inference server: {exc}"
        if stage not in self.outages:
            self.outages[stage] = time.monotonic()
            log.warning("%s", msg)
            self._notify(self.on_error, stage, msg)
        return msg

    def _recovered(self, stage: str) -> None:
        began = self.outages.pop(stage)
        msg = f"stage '{stage}' works again: its inference server answered after {time.monotonic() - began:.1f} s"
        log.info("%s", msg)
        self._notify(self.on_recovered, stage, msg)

    def _failed(self, stage: str, exc: BaseException) -> str:
        if isinstance(exc, EngineUnavailable):
            return self._outage(stage, exc)
        kind = (stage, type(exc).__name__)
        n = self.error_counts.get(kind, 0) + 1
        self.error_counts[kind] = n
        msg = f"stage '{stage}' failed: {type(exc).__name__}: {exc}"
        if n == 1:  # once per kind, with the traceback; later ones are only counted
            log.error("%s", msg, exc_info=exc)
            self._notify(self.on_error, stage, msg)
        c = self._consecutive[stage] = self._consecutive.get(stage, 0) + 1
        if self.disable_after and c >= self.disable_after:
            self.disable(stage, f"stage '{stage}' disabled after {c} consecutive failures (last: {exc})")
        return msg

    def _steps(self, result: FrameResult, steps: list[tuple[str, Callable[[FrameResult], FrameResult]]],
               timings: dict[str, float], errors: list[str], per_frame: bool = False) -> FrameResult:
        """per_frame: these are the stages' `process` steps (the ones that call engines), whose success
        ends an inference-server outage."""
        for name, fn in steps:
            t = time.perf_counter()
            try:
                result = fn(result)
                self._consecutive[name] = 0
                if per_frame and name in self.outages:
                    self._recovered(name)
            except Exception as exc:
                errors.append(self._failed(name, exc))
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
        return result

    def disable(self, stage: str, message: str) -> None:
        if stage in self.disabled:
            return
        self.disabled.add(stage)
        log.error("%s", message)
        self._notify(self.on_error, stage, message)

    def begin(self, frame: Frame) -> FrameResult:
        """Every enabled stage's per-frame `process` (safe to run for several frames in parallel on
        separate Pipeline instances)."""
        if self.watch is not None:
            for stage, message in self.watch.check():
                self.disable(stage, message)
        timings: dict[str, float] = {}
        errors: list[str] = []
        steps: list[tuple[str, Callable[[FrameResult], FrameResult]]] = [
            (s.name, s.process) for s in self.stages if s.name not in self.disabled]
        result = self._steps(FrameResult(frame=frame, image=frame.image), steps, timings, errors, per_frame=True)
        return replace(result, timings=timings, errors=tuple(errors))

    def finish(self, result: FrameResult) -> FrameResult:
        """The stages' in-order `finish` steps, then render; call in frame order."""
        timings = dict(result.timings)
        errors = list(result.errors)
        steps: list[tuple[str, Callable[[FrameResult], FrameResult]]] = []
        for s in self.stages:
            finish = finish_step(s)
            if s.name not in self.disabled and finish is not None:
                steps.append((s.name, finish))
        if self.render is not None:
            steps.append(("draw", self.render))
        result = self._steps(result, steps, timings, errors)
        return replace(result, timings=timings, errors=tuple(errors), done_time=time.monotonic())

    def run(self, frame: Frame) -> FrameResult:
        return self.finish(self.begin(frame))

    def fork(self, on_error: ErrorCallback | None = None) -> "Pipeline":
        """A pipeline for another stream that shares this one's models: each stage with in-order state
        (a `finish` step) is replaced by its `fork()` (same models, its own trackers / smoothing); the
        others are shared as they are. Several sources served by one WorkerPool each run `finish` on a
        fork while the pool's pipelines run `begin`. Closing a fork leaves the shared models open.
        Raises ConfigError for a stage with a finish step but no fork()."""
        stages: list[Stage] = []
        for s in self.stages:
            if finish_step(s) is None:
                stages.append(s)
                continue
            fork = getattr(s, "fork", None)
            if not callable(fork):
                raise ConfigError(f"stage '{s.name}' keeps per-stream state (it has a finish step) but no "
                                  f"fork(), so several sources cannot share its models; give the stage a "
                                  f"fork() method or run each source on its own (engine.workers = 1)")
            stages.append(fork())
        twin = Pipeline(stages, render=self.render, on_error=on_error or self.on_error,
                        disable_after=self.disable_after, on_recovered=self.on_recovered)
        twin.disabled = set(self.disabled)
        twin._borrowed = {id(s) for s in stages if any(s is own for own in self.stages)}
        return twin

    def close(self) -> None:
        for s in self.stages:
            if id(s) in self._borrowed:
                continue
            try:
                s.close()
            except Exception:
                log.exception("closing stage %s failed", s.name)
