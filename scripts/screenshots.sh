#!/usr/bin/env bash
# Screenshots of every window mode on ../shared/media, under a virtual X server (Xvfb):
#   main_detect.png      main window, detection on bikes_640x272.mp4
#   main_segment.png     main window, selfie segmentation (background blur) on carphone_face_176x144.mp4
#   main_style.png       main window, Magenta style (style_wave.jpg) on bigbuckbunny.mp4
#   gallery.png          gallery manager with one person enrolled from photos
#   kiosk_granted.png    kiosk, the carphone person enrolled, on the carphone video (a real, moving face)
#   kiosk_denied.png     kiosk, the same person as a still photo replayed as video
#   monitor.png          monitoring grid of 4 sources with the event list
#
# usage: scripts/screenshots.sh [OUT_DIR]     (default: ./screenshots)
# Everything the app writes (settings, gallery, PIN, access log) goes to a temporary folder.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="$(mkdir -p "${1:-screenshots}" && cd "${1:-screenshots}" && pwd)"
SHARED="${VISION_APP_SHARED:-$(cd .. && pwd)/shared}"
MEDIA="$SHARED/media"
export VISION_APP_MODELS="${VISION_APP_MODELS:-$SHARED/models}"
PY="${PYTHON:-python}"

if ! command -v Xvfb >/dev/null 2>&1; then
    echo "Xvfb is not installed: install it first (Debian/Ubuntu: apt-get install -y xvfb), then run again." >&2
    exit 1
fi
QXCB="$("$PY" -c 'import os, PySide6; print(os.path.join(os.path.dirname(PySide6.__file__), "Qt/plugins/platforms/libqxcb.so"))')"
MISSING="$(ldd "$QXCB" 2>/dev/null | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')"
if [ -n "$MISSING" ]; then
    echo "Qt's X11 platform plugin lacks system libraries: $MISSING" >&2
    echo "Debian/Ubuntu: apt-get install -y libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0" >&2
    exit 1
fi

WORK="$(mktemp -d)"
DISP=99
while [ -e "/tmp/.X${DISP}-lock" ]; do DISP=$((DISP + 1)); done
Xvfb ":$DISP" -screen 0 1280x800x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
XVFB_PID=$!
cleanup() { kill "$XVFB_PID" 2>/dev/null; wait "$XVFB_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
sleep 1
if ! kill -0 "$XVFB_PID" 2>/dev/null; then
    echo "Xvfb did not start:" >&2; cat "$WORK/xvfb.log" >&2; exit 1
fi
export DISPLAY=":$DISP" QT_QPA_PLATFORM=xcb XDG_DATA_HOME="$WORK/data"

cat >"$WORK/app.toml" <<EOF
[face]
gallery = "$WORK/gallery.db"
[access]
log_db = "$WORK/access_log.db"
snapshot_dir = "$WORK/snapshots"
[ui]
admin_file = "$WORK/admin.json"
capture_dir = "$WORK/captures"
[segment]
overlay = "blur"
[style]
style = "$MEDIA/styles/style_wave.jpg"
strength = 0.8
EOF
APP=(--config "$WORK/app.toml")
FAILED=()
shot() {  # shot NAME COMMAND...
    local name="$1"; shift
    echo "== $name"
    if ! "$PY" main.py "$@" --screenshot "$OUT/$name.png" >"$WORK/$name.log" 2>&1 || [ ! -s "$OUT/$name.png" ]; then
        echo "   FAILED (log below)"; tail -n 15 "$WORK/$name.log" | sed 's/^/   /'; FAILED+=("$name")
    else
        echo "   $OUT/$name.png"
    fi
}

shot main_detect gui "${APP[@]}" --source "$MEDIA/video/bikes_640x272.mp4" --tasks detect \
    --settings "$WORK/gui1.ini" --quit-after 7
shot main_segment gui "${APP[@]}" --source "$MEDIA/video/carphone_face_176x144.mp4" --tasks segment --loop \
    --settings "$WORK/gui2.ini" --quit-after 6
shot main_style gui "${APP[@]}" --source "$MEDIA/video/bigbuckbunny.mp4" --tasks style --loop \
    --settings "$WORK/gui3.ini" --quit-after 8

# the kiosk's person: enrolled from frames of the carphone video; the replay attack: one frame as a video
"$PY" - "$MEDIA/video/carphone_face_176x144.mp4" "$WORK" <<'EOF' || FAILED+=("prepare")
import sys, cv2
video, work = sys.argv[1], sys.argv[2]
cap = cv2.VideoCapture(video)
frames = [cap.read()[1] for _ in range(120)]
for i in (10, 40, 70, 100):
    cv2.imwrite(f"{work}/person_{i}.png", frames[i])
still = frames[40]
out = cv2.VideoWriter(f"{work}/still.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 30, (still.shape[1], still.shape[0]))
for _ in range(30 * 20):
    out.write(still)
out.release()
EOF
"$PY" main.py gallery enroll "Carphone driver" "$WORK"/person_*.png --config "$WORK/app.toml" >"$WORK/enrol.log" 2>&1 \
    || { echo "== enrolment FAILED:"; tail -n 5 "$WORK/enrol.log"; FAILED+=("enrol"); }
echo 2468 | "$PY" main.py kiosk --set-pin --config "$WORK/app.toml" >/dev/null 2>&1 || FAILED+=("set-pin")

"$PY" - "$WORK" "$OUT/gallery.png" "$MEDIA" <<'EOF' || FAILED+=("gallery")
# the gallery dialog, opened the way the toolbar button opens it, with its list loaded
import sys, argparse
from PySide6.QtCore import QTimer
from ui.app import application, grab_to_file
from ui.context import AppContext
from ui.gallery_dialog import GalleryDialog
work, png, media = sys.argv[1:4]
app = application()
ctx = AppContext.from_args(argparse.Namespace(config=f"{work}/app.toml", settings=f"{work}/g.ini", models=None))
dlg = GalleryDialog(ctx, camera=f"{media}/video/carphone_face_176x144.mp4")
dlg.show()
dlg.btn_camera.setChecked(True)
def finish():
    dlg.people.setCurrentRow(0)
    app.processEvents()
    grab_to_file(dlg, png).join()
    dlg.done(0)
    app.quit()
QTimer.singleShot(4000, finish)
app.exec()
EOF

shot kiosk_granted kiosk "${APP[@]}" --source "$MEDIA/video/carphone_face_176x144.mp4" --quit-on-decision --quit-after 40
shot kiosk_denied kiosk "${APP[@]}" --source "$WORK/still.mp4" --quit-on-decision --quit-after 40
shot monitor monitor "${APP[@]}" "$MEDIA/video/bikes_640x272.mp4" "$MEDIA/video/carphone_face_176x144.mp4" \
    "$MEDIA/video/bigbuckbunny.mp4" test: --loop --settings "$WORK/mon.ini" --quit-after 10

if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "failed: ${FAILED[*]}" >&2
    exit 1
fi
echo "all screenshots in $OUT"
