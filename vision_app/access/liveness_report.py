"""Figures and text for `face-eval-liveness` (evaluate.py measures): APCER per attack type, BPCER, the
grant rate and time-to-grant on video/live, and the eye-aspect-ratio trace of live clips without a blink."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vision_app.access.evaluate import ClipResult, StillResult


def _rate(k: int, n: int) -> str:
    return f"{k}/{n} = {100 * k / n:.1f} %" if n else "-"


def still_figures(stills: Sequence[StillResult]) -> dict[str, Any]:
    apcer: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in stills:
        if s.attack:
            apcer[s.kind][0] += int(s.live)
            apcer[s.kind][1] += 1
    live = [s for s in stills if not s.attack]
    return {"apcer": {k: {"accepted": a, "attacks": n} for k, (a, n) in sorted(apcer.items())},
            "bpcer": {"refused": sum(not s.live for s in live), "live": len(live),
                      "no_face": sum(math.isnan(s.score) for s in live)}}


def clip_figures(clips: Sequence[ClipResult], live_folder: str = "video/live") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for blink in (False, True):
        rows = [c for c in clips if c.blink is blink]
        apcer: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for c in rows:
            if c.attack:
                apcer[c.kind][0] += int(c.decision == "granted")
                apcer[c.kind][1] += 1
        spoof_live = [c for c in rows if not c.attack and live_folder not in str(c.path)]
        video = [c for c in rows if not c.attack and live_folder in str(c.path)]
        granted = [c for c in video if c.decision == "granted"]
        countable = [c for c in video if not blink or c.blinks > 0]
        times = [c.at_s for c in granted]
        out["blink" if blink else "no_blink"] = {
            "apcer": {k: {"accepted": a, "attacks": n} for k, (a, n) in sorted(apcer.items())},
            "bpcer_spoof_sets": {"refused": sum(c.decision != "granted" for c in spoof_live), "live": len(spoof_live)},
            "video_live": {"granted": len(granted), "clips": len(video),
                           "granted_of_clips_with_a_blink": sum(c.decision == "granted" for c in countable),
                           "clips_with_a_blink": len(countable),
                           "time_to_grant_s": {"median": float(np.median(times)) if times else None,
                                               "max": float(max(times)) if times else None}},
        }
    return out


def to_json(stills: Sequence[StillResult], clips: Sequence[ClipResult], cfg: Any) -> dict[str, Any]:
    def row(x: Any) -> dict[str, Any]:
        d = asdict(x)
        d["path"] = str(d["path"])
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
    return {"passive_threshold": cfg.face.passive_threshold, "check_timeout_s": cfg.access.check_timeout_s,
            "stills": still_figures(stills), "clips": clip_figures(clips),
            "still_rows": [row(s) for s in stills], "clip_rows": [row(c) for c in clips]}


def format_report(stills: Sequence[StillResult], clips: Sequence[ClipResult], cfg: Any, media: Path) -> str:
    sf = still_figures(stills)
    out = [f"passive check on stills (media/spoof/*/{{live,spoof}}; threshold {cfg.face.passive_threshold}):"]
    for kind, v in sf["apcer"].items():
        out.append(f"  APCER {kind:<40} {_rate(v['accepted'], v['attacks'])}")
    b = sf["bpcer"]
    out.append(f"  BPCER {'bona fide stills':<40} {_rate(b['refused'], b['live'])}"
               + (f" ({b['no_face']} without a face)" if b["no_face"] else ""))
    for s in stills:
        if s.live == s.attack:
            out.append(f"    {'accepted' if s.attack else 'refused':<8} {s.path.relative_to(media)}  real-score "
                       + ("no face" if math.isnan(s.score) else f"{s.score:.3f}"))
    cf = clip_figures(clips)
    out += ["", f"kiosk loop on clips (first decision; deadline {cfg.access.check_timeout_s:g} s):",
            f"  {'clip':<44} {'no blink challenge':<34} with blink challenge"]
    by_path: dict[Path, dict[bool, ClipResult]] = defaultdict(dict)
    for c in clips:
        by_path[c.path][c.blink] = c
    for path, both in by_path.items():
        cells = []
        for blink in (False, True):
            got = both.get(blink)
            cells.append("-" if got is None else (f"{got.decision} at {got.at_s:.2f} s" if got.decision != "none"
                                                   else f"no decision in {got.duration_s:.1f} s"))
        tag = "ATTACK " if both[False].attack else ""
        out.append(f"  {tag + str(path.relative_to(media)):<44} {cells[0]:<34} {cells[1]}")
        for c in both.values():
            if c.decision != "granted":
                out.append(f"      ({'blink' if c.blink else 'no blink'}: {c.reason[:150]})")
    for key, title in (("no_blink", "without the blink challenge"), ("blink", "with the blink challenge")):
        f = cf[key]
        out += ["", f"{title}:"]
        for kind, v in f["apcer"].items():
            out.append(f"  APCER {kind:<40} {_rate(v['accepted'], v['attacks'])}")
        bp = f["bpcer_spoof_sets"]
        out.append(f"  BPCER {'live clips of the spoof sets':<40} {_rate(bp['refused'], bp['live'])}")
        v = f["video_live"]
        t = v["time_to_grant_s"]
        out.append(f"  video/live granted {v['granted']}/{v['clips']}"
                   + (f" ({v['granted_of_clips_with_a_blink']}/{v['clips_with_a_blink']} of the clips with a blink)"
                      if key == "blink" else "")
                   + (f"; time to grant median {t['median']:.2f} s, max {t['max']:.2f} s" if t["median"] is not None
                      else ""))
    quiet = [c for c in clips if c.blink and not c.attack and c.blinks == 0]
    if quiet:
        out += ["", f"live clips without any blink detected (EAR of the followed face, lowest per "
                f"{1 / 5:.1f} s; a blink = below {cfg.face.blink_close_ratio} x the track's own median):"]
        for c in quiet:
            e = np.array([x for x in c.ear_trace if not math.isnan(x)])
            med = float(np.median(e)) if len(e) else math.nan
            out.append(f"  {c.path.relative_to(media)}: median {med:.3f}, lowest {e.min() if len(e) else math.nan:.3f} "
                       f"(closing below {med * cfg.face.blink_close_ratio:.3f}): "
                       + " ".join("-" if math.isnan(x) else f"{x:.2f}" for x in c.ear_trace))
    return "\n".join(out)
