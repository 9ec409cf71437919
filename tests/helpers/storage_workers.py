"""Child processes for the storage stress tests: `python -m tests.helpers.storage_workers CMD ARGS...`.

Each command prints one JSON line with what it did (and, where a test synchronises with it, "READY" /
"ROW n" lines before that). Anything but our own GalleryError / VisionAppError escapes as a traceback and
a non-zero exit, which is what the tests look for: a raw sqlite3 "database is locked" must never get out.

    writer LOG_DB GALLERY_DB TAG N      wait for a line on stdin, then append N access-log rows and enrol N
                                        people (2 templates each), interleaved
    reader LOG_DB GALLERY_DB STOP       wait for a line on stdin, then read templates and verify the log over and
                                        over until the file STOP exists
    open-gallery GALLERY_DB             wait for a line on stdin, then open (create) the gallery, enrol one
                                        person named after the pid
    log-forever LOG_DB PAUSE_AT         append rows forever, printing "ROW seq" after each; with PAUSE_AT > 0
                                        stop inside the transaction of row PAUSE_AT (after its INSERT)
    full-log LOG_DB LIMIT               file-size limit LIMIT bytes (SIGXFSZ ignored: writes fail with EFBIG),
                                        then let an AccessController decide until the log write fails
    full-video VIDEO OUT LIMIT          file-size limit LIMIT bytes, then record VIDEO through a LiveRun with a
                                        VideoWriterSink to OUT
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from typing import Any

import numpy as np

MODEL = ("mobilefacenet", "128d-1")


def _unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _emit(**data: Any) -> None:
    print(json.dumps(data), flush=True)


def _limit_file_size(limit: int) -> None:
    """A full disk for this process: writes past `limit` bytes fail with EFBIG instead of killing it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def writer(log_db: str, gallery_db: str, tag: str, n: int) -> None:
    from vision_app.access.accesslog import AccessLog
    from vision_app.errors import GalleryError
    from vision_app.gallery.gallery import Gallery

    errors: list[str] = []
    rows: list[int] = []
    people = 0
    with AccessLog(log_db) as log, Gallery(gallery_db) as gallery:
        print("READY", flush=True)
        sys.stdin.readline()
        for i in range(n):
            try:
                rows.append(log.append(kiosk=tag, decision="denied", identity=None, reason=f"{tag} {i}",
                                       scores={"i": float(i)}, liveness="live").seq)
            except GalleryError as exc:
                errors.append(str(exc))
            try:
                people += gallery.enroll(f"{tag}-{i}", _unit(2, hash((tag, i)) % 2**32), *MODEL) // 2
            except GalleryError as exc:
                errors.append(str(exc))
    _emit(rows=rows, people=people, errors=errors)


def reader(log_db: str, gallery_db: str, stop_file: str) -> None:
    """What the kiosk does meanwhile: reload the matcher's templates and check the log, until stop_file."""
    from vision_app.access.accesslog import AccessLog
    from vision_app.errors import GalleryError
    from vision_app.gallery.gallery import Gallery

    errors: list[str] = []
    rounds = 0
    with AccessLog(log_db) as log, Gallery(gallery_db) as gallery:
        print("READY", flush=True)
        sys.stdin.readline()
        while not os.path.exists(stop_file) or rounds == 0:
            try:
                layout = gallery.layout()
                if len(gallery.embeddings(layout.ids.tolist())) != len(layout.ids):
                    errors.append("templates listed but not readable")
                report = log.verify_chain()
                if not report.ok:
                    errors.append(f"chain read as broken while being written: {report.problem}")
            except GalleryError as exc:
                errors.append(str(exc))
            rounds += 1
    _emit(rounds=rounds, errors=errors)


def open_gallery(gallery_db: str) -> None:
    from vision_app.errors import GalleryError
    from vision_app.gallery.gallery import Gallery

    print("READY", flush=True)
    sys.stdin.readline()
    try:
        with Gallery(gallery_db) as g:
            g.enroll(f"p{os.getpid()}", _unit(1, os.getpid()), *MODEL)
            _emit(ok=True, key_id=g.key_id)
    except GalleryError as exc:
        _emit(ok=False, error=str(exc))


def log_forever(log_db: str, pause_at: int) -> None:
    from vision_app.access.accesslog import AccessLog

    log = AccessLog(log_db)
    inserts = [0]

    def trace(sql: str) -> None:
        if sql.startswith("INSERT INTO access_log"):
            inserts[0] += 1
            if inserts[0] == pause_at:  # this row is inserted but not committed
                print("PAUSED", flush=True)
                time.sleep(60)

    log.db.conn.set_trace_callback(trace)
    while True:
        e = log.append(kiosk="k", decision="granted", identity="alice", reason="x" * 200,
                       scores={"similarity": 0.8}, liveness="live")
        print(f"ROW {e.seq}", flush=True)


def full_log(log_db: str, limit: int) -> None:
    from tests.helpers.kiosk import frame
    from vision_app.access.accesslog import AccessLog
    from vision_app.access.controller import AccessController
    from vision_app.access.door import LogOnlyDoor
    from vision_app.access.policy import AccessPolicy

    log = AccessLog(log_db)
    door = LogOnlyDoor()
    # no cooldown and a new track per decision: one decision every check_frames frames
    policy = AccessPolicy(blink_challenge=False, result_s=0.0, cooldown_s=0.0, recognition_interval_s=0.0,
                          max_failed_attempts=10**6)
    ctl = AccessController(policy, log, door, kiosk_id="full-disk")
    _limit_file_size(limit)
    decisions: list[dict[str, Any]] = []
    for i in range(20_000):
        for d in ctl.update(frame(i, track=1 + len(decisions))):
            decisions.append({"decision": d.decision, "logged": d.logged, "seq": d.log_seq,
                              "log_error": d.log_error, "reason": d.reason})
        if len(decisions) > 1 and not decisions[-1]["logged"] and not decisions[-2]["logged"]:
            break  # two failed writes in a row: the disk is full for good
    # space again (the limit lifted): the same controller and connection log the next decision
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    after: list[dict[str, Any]] = []
    for i in range(i + 1, i + 100):
        after += [{"decision": d.decision, "logged": d.logged, "seq": d.log_seq}
                  for d in ctl.update(frame(i, track=10 ** 6))]
        if after:
            break
    ctl.close()
    _emit(decisions=decisions, after=after, door_opened=door.opened)


def full_video(video: str, out: str, limit: int) -> None:
    from vision_app.pipeline import PassThroughStage, Pipeline
    from vision_app.runner import CallbackSink, LiveRun, VideoWriterSink
    from vision_app.sources import open_source

    _limit_file_size(limit)
    events: list[list[str]] = []
    seen: list[int] = []
    writer_sink = VideoWriterSink(out, 25.0)
    run = LiveRun(open_source(video), Pipeline([PassThroughStage()]),
                  [writer_sink, CallbackSink(lambda r: seen.append(r.frame.index))],
                  on_status=lambda kind, msg: events.append([kind, msg]))
    run.start()
    finished = run.wait(60)
    stopped = run.stop(2.0)
    _emit(finished=finished, stopped=stopped, processed=len(seen), recorded=writer_sink.frames,
          runner_error=run.runner.error, events=events, writer_open=writer_sink._writer is not None,
          summary={k: v for k, v in run.summary().items() if isinstance(v, (int, float, str, type(None)))})


def main(argv: list[str]) -> None:
    cmd, args = argv[0], argv[1:]
    if cmd == "writer":
        writer(args[0], args[1], args[2], int(args[3]))
    elif cmd == "reader":
        reader(args[0], args[1], args[2])
    elif cmd == "open-gallery":
        open_gallery(args[0])
    elif cmd == "log-forever":
        log_forever(args[0], int(args[1]))
    elif cmd == "full-log":
        full_log(args[0], int(args[1]))
    elif cmd == "full-video":
        full_video(args[0], args[1], int(args[2]))
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
