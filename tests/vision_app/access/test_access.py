"""Access controller state machine and policy with hand-made observations (pure logic), the access log
and door it drives."""
from __future__ import annotations

import math
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from vision_app.access.accesslog import AccessLog
from vision_app.access.controller import AccessController, KioskState
from vision_app.access.door import LogOnlyDoor
from vision_app.access.policy import FAIL, PASS, PENDING, AccessPolicy, Evidence, check_identity, judge
from vision_app.face.observation import FaceObservation
from vision_app.types import Frame, FrameResult

FPS = 10.0
IMG = np.zeros((48, 64, 3), np.uint8)


THRESHOLD = 0.41


def obs(track: int = 1, identity: str | None = "alice", *, sim: float = 0.7, live: bool = True,
        temporal: bool | None = True, blinks: int = 0, quality: str | None = None,
        size: float = 100.0, runner_up: tuple[str, float] | None = None) -> FaceObservation:
    """What the face stage reports for one face and frame: identity None = a stranger (best candidate
    bob at 0.2); runner_up: the second candidate (default: someone else at 0.2)."""
    cands = ((identity, sim),) if identity else (("bob", 0.2),)
    second = runner_up or ("carol" if identity in ("bob", None) else "bob", 0.2 if identity else 0.15)
    return FaceObservation(
        track_id=track, xyxy=(0.0, 0.0, size, size), identity=identity, best_name=cands[0][0],
        similarity=cands[0][1], passive_score=0.9 if live else 0.1, passive_live=live,
        blink_seen=blinks > 0, blink_count=blinks, ear=0.3, motion=0.03 if temporal else 0.001,
        temporal_live=temporal, yaw_deg=0.0, head_turn_seen=False, quality=quality, frames_tracked=10,
        window_s=2.0, frame_index=0, timestamp=0.0, candidates=cands + (second,), match_threshold=THRESHOLD)


class Kiosk:
    """A controller with a real access log and a counting door, fed frame by frame at FPS."""

    def __init__(self, tmp_path, **policy):
        self.door = LogOnlyDoor()
        self.alarms = []
        self.log = AccessLog(tmp_path / "log.db")
        self.ctl = AccessController(AccessPolicy(**{"blink_challenge": False, **policy}), self.log, self.door,
                                    kiosk_id="test", on_alarm=self.alarms.append)
        self.i = 0
        self.decisions = []
        self.states = []

    def feed(self, *faces: FaceObservation, n: int = 1) -> list:
        out = []
        for _ in range(n):
            frame = Frame(IMG, self.i, self.i / FPS, "test")
            result = FrameResult(frame, IMG, extras={"face": tuple(faces)})
            out += self.ctl.update(result)
            self.states.append(self.ctl.state)
            self.i += 1
        self.decisions += out
        return out


def test_genuine_user_is_granted_then_cooldown_and_no_repeat(tmp_path):
    k = Kiosk(tmp_path)
    assert k.ctl.state == KioskState.IDLE
    got = k.feed(obs(), n=8)
    assert [d.decision for d in got] == ["granted"]
    d = got[0]
    assert d.identity == "alice" and d.liveness == "live" and d.logged and d.log_seq == 1
    assert d.scores["match_ratio"] == 1.0 and d.scores["similarity"] == pytest.approx(0.7)
    assert k.states[:8] == [KioskState.CHECKING] * 7 + [KioskState.GRANTED]
    assert k.ctl.guidance == "ACCESS GRANTED — alice" and k.door.opened == 1
    k.feed(obs(), n=int(2.0 * FPS))  # result_s on screen, then cooldown
    assert k.ctl.state == KioskState.COOLDOWN and k.ctl.guidance == "Please wait"
    k.feed(obs(), n=int(1.0 * FPS) + 1)
    assert k.ctl.state == KioskState.FACE_PRESENT and k.ctl.guidance == "Next person, please"
    assert k.feed(obs(), n=30) == [] and k.door.opened == 1  # same track within recognition_interval_s
    assert [e.decision for e in k.log.entries()] == ["granted"]
    assert k.log.verify_chain().ok


def test_blink_challenge(tmp_path):
    k = Kiosk(tmp_path, blink_challenge=True, blink_timeout_s=1.5)
    assert k.feed(obs(blinks=2), n=8) == []  # blinks from before the check started do not count
    assert k.ctl.state == KioskState.CHECKING and k.ctl.guidance == "Blink now"
    assert k.ctl.status().progress == 1.0
    assert k.feed(obs(blinks=2), n=5) == []
    got = k.feed(obs(blinks=3))
    assert got[0].decision == "granted" and "blink seen" in got[0].reason
    k2 = Kiosk(tmp_path / "2", blink_challenge=True, blink_timeout_s=1.0)
    got = k2.feed(obs(), n=8 + 11)
    assert [d.decision for d in got] == ["denied"] and "no blink within 1 s" in got[0].reason
    assert got[0].identity == "alice" and k2.door.opened == 0 and got[0].time == pytest.approx(1.0)
    k3 = Kiosk(tmp_path / "3", blink_challenge=True)  # asked from the start: a blink while checking counts
    got = k3.feed(obs(blinks=0), n=3) + k3.feed(obs(blinks=1), n=5)
    assert [d.decision for d in got] == ["granted"] and k3.i == 8


@pytest.mark.parametrize("face, words, liveness, at", [
    (obs(temporal=False), "a photo or a screen", "not live", 2.0),          # a still photo, at the deadline
    (obs(live=False), "presentation attack suspected", "not live", 0.7),   # printed photo / phone screen
    (obs(identity=None), "unknown face", "live", 0.7),                     # a stranger
    (obs(identity=None, live=False), "presentation attack", "not live", 0.7),
])
def test_denials(tmp_path, face, words, liveness, at):
    k = Kiosk(tmp_path, check_timeout_s=2.0)
    got = k.feed(face, n=25)
    assert [d.decision for d in got] == ["denied"] and got[0].time == pytest.approx(at)
    assert words in got[0].reason and got[0].liveness == liveness
    assert k.ctl.guidance == "ACCESS DENIED" and k.door.opened == 0
    assert k.log.entries()[0].decision == "denied"


def test_denied_even_though_identity_matches_when_not_live(tmp_path):
    k = Kiosk(tmp_path)
    got = k.feed(obs(temporal=False, sim=0.9), n=8 * int(FPS) + 1)
    assert got[0].decision == "denied" and got[0].identity == "alice"  # whose photo it was, for the log
    assert got[0].scores["match_ratio"] == 1.0 and k.door.opened == 0
    assert "no movement and no blink in 8.0 s" in got[0].reason


def test_calm_live_person_is_watched_until_the_deadline(tmp_path):
    """No movement for 5 s (a calm person), then a blink: granted, not refused after the first 2 s."""
    k = Kiosk(tmp_path)
    assert k.feed(obs(temporal=False), n=50) == [] and k.ctl.state == KioskState.CHECKING
    got = k.feed(obs(temporal=True))
    assert got[0].decision == "granted" and got[0].time == pytest.approx(5.0)


def test_identity_is_the_mean_over_the_window_not_one_frame(tmp_path):
    # similarity below the threshold in half the frames, well above in the others: mean .55 → granted
    k = Kiosk(tmp_path)
    got = [d for i in range(8) for d in k.feed(obs(sim=0.75 if i % 2 else 0.35))]
    assert got[0].decision == "granted" and got[0].scores["similarity"] == pytest.approx(0.55)
    assert got[0].scores["similarity_min"] == pytest.approx(0.35)
    # one lucky frame of a stranger does not make them someone: mean .375 → unknown
    k2 = Kiosk(tmp_path / "2")
    got = [d for i in range(8) for d in k2.feed(obs(sim=0.9 if i == 3 else 0.3))]
    assert got[0].decision == "denied" and "unknown face (mean similarity 0.37 over 8 frames < 0.41" in got[0].reason


def test_passive_score_is_averaged_over_the_frames(tmp_path):
    k = Kiosk(tmp_path)
    got = [d for i in range(8) for d in k.feed(obs(live=i not in (2, 5)))]  # two dips to .1: mean .7
    assert got[0].decision == "granted" and got[0].scores["passive_score"] == pytest.approx(0.7)


def test_bad_quality_guides_and_does_not_count(tmp_path):
    k = Kiosk(tmp_path)
    assert k.feed(obs(quality="too small (30 px < 40 px)"), n=20) == []
    assert k.ctl.state == KioskState.FACE_PRESENT and k.ctl.guidance == "Step closer"
    k.feed(obs(quality="pose: head turned (yaw ratio +0.60, limit 0.45)"))
    assert k.ctl.guidance == "Look at the camera"
    assert k.feed(obs(), n=7) == [] and k.ctl.status().progress == pytest.approx(7 / 8)
    k.feed(obs(quality="blurry (sharpness 12 < 40)"))
    assert k.ctl.guidance == "Hold still" and k.ctl.state == KioskState.CHECKING
    assert k.feed(obs())[0].decision == "granted"


def test_face_lost_or_replaced_mid_check_gives_no_decision(tmp_path):
    k = Kiosk(tmp_path, lost_frames=3)
    k.feed(obs(), n=5)
    k.feed(n=4)  # no face for more than lost_frames
    assert k.ctl.state == KioskState.IDLE and k.decisions == []
    k.feed(obs(track=1), n=5)
    got = k.feed(obs(track=2, identity="bob"), n=7)  # someone else steps in: their check starts over
    assert got == []
    assert k.feed(obs(track=2, identity="bob"))[0].identity == "bob"


def test_follows_the_checked_track_among_several_faces(tmp_path):
    k = Kiosk(tmp_path)
    k.feed(obs(track=1, size=100), n=4)
    got = k.feed(obs(track=1, size=100), obs(track=7, identity=None, size=150), n=4)
    assert got[0].identity == "alice" and got[0].track_id == 1


def test_inconsistent_identity_is_denied(tmp_path):
    """Both people score above the threshold on average, but neither is the best in 75 % of the frames."""
    k = Kiosk(tmp_path)
    got = []
    for i in range(8):
        got += k.feed(obs(identity="alice", runner_up=("bob", 0.65)) if i < 5 else
                      obs(identity="bob", runner_up=("alice", 0.65)))
    assert [d.decision for d in got] == ["denied"]
    assert "identity not consistent (alice best in 5 of 8 frames)" in got[0].reason


def test_temporal_pending_then_live(tmp_path):
    k = Kiosk(tmp_path)
    assert k.feed(obs(temporal=None), n=12) == []
    assert k.feed(obs(temporal=True))[0].decision == "granted"


def test_alarm_after_max_failed_attempts(tmp_path):
    k = Kiosk(tmp_path, max_failed_attempts=3, result_s=0.1, cooldown_s=0.1)
    for track in (1, 2, 3):
        k.feed(obs(track=track, identity=None), n=8)
        k.feed(n=3)
    assert [d.decision for d in k.decisions] == ["denied"] * 3
    assert [d.alarm for d in k.decisions] == [False, False, True]
    assert "ALARM: 3 failed attempts" in k.decisions[-1].reason
    assert k.alarms == [k.decisions[-1]] and k.ctl.status().alarm
    assert [e.alarm for e in k.log.entries()] == [False, False, True]


def test_log_failure_still_reports_and_keeps_the_door_closed(tmp_path):
    k = Kiosk(tmp_path)
    k.log.db.busy_timeout_s = 0.05
    k.log.db.conn.execute("PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        got = k.feed(obs(), n=8)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    d = got[0]
    assert d.decision == "denied" and not d.logged and "locked" in d.log_error
    assert "access log unavailable" in d.reason and k.door.opened == 0


def test_log_failure_can_be_allowed_to_open(tmp_path):
    door = LogOnlyDoor()
    ctl = AccessController(AccessPolicy(blink_challenge=False, grant_requires_log=False), None, door)
    d = [x for i in range(8) for x in ctl.update(FrameResult(Frame(IMG, i, i / FPS, "t"), IMG,
                                                               extras={"face": (obs(),)}))][0]
    assert d.decision == "granted" and d.log_error == "no access log configured" and door.opened == 1
    assert d.to_json()["decision"] == "granted" and d.to_json()["identity"] == "alice"


def _window(n=8, **kw):
    return [obs(**kw) for _ in range(n)]


@pytest.mark.parametrize("window, moved, status, identity", [
    (_window(), True, PASS, "alice"),
    (_window(6) + _window(2, identity=None), True, PASS, "alice"),       # mean .53, best in 6/8
    (_window(5) + _window(3, identity=None), True, FAIL, "alice"),       # best in 5/8 < .75 (mean .44)
    (_window(identity=None), True, FAIL, None),
    (_window(6) + _window(2, live=False), True, PASS, "alice"),          # passive mean .7
    (_window(2) + _window(6, live=False), True, FAIL, "alice"),          # passive mean .3: denied, whose face
    (_window(), False, PENDING, "alice"),                                # still watching for movement
])
def test_judge_table(window, moved, status, identity):
    p = AccessPolicy(blink_challenge=False)
    ident = check_identity(window, p)
    v = judge(Evidence(window, [o.passive_score for o in window], moved, False, 1.0, window[-1]), ident, p)
    assert (v.status, v.identity) == (status, identity if status != FAIL or ident[0] == PASS else None)
    assert all(isinstance(x, float) for x in v.scores.values())
    assert not math.isnan(v.scores["passive_score"])


def test_policy_from_config(app_config):
    p = AccessPolicy.from_config(app_config.access, passive_threshold=app_config.face.passive_threshold)
    assert p.blink_challenge is True  # on by default for the kiosk
    assert p.check_timeout_s == app_config.access.check_timeout_s and p.passive_threshold == 0.5
    assert AccessPolicy.from_config(app_config.access, blink_challenge=False).blink_challenge is False
    assert replace(p, check_frames=3).check_frames == 3
