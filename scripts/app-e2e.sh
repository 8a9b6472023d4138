#!/usr/bin/env bash
# End-to-end check of the desktop app: ferry-app under Xvfb against `ferry-sim serve`, driven
# by its autopilot (FERRY_APP_AUTOPILOT=1 presses Trust, "Set up this folder" and Sync through
# the same Messages a click sends), then the archive is checked with `ferry verify` and against
# the image's expected.json. Screenshots of the window go to $FERRY_SHOTS (default: a temp dir).
# Needs: xvfb x11-utils imagemagick and the X11 runtime libraries (scripts/install-peers.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in Xvfb import xwininfo; do
    command -v "$tool" >/dev/null || { echo "ERROR: $tool missing: run scripts/install-peers.sh (packages xvfb imagemagick x11-utils)" >&2; exit 1; }
done
cargo build -q -p ferry-app -p ferry-cli -p ferry-sim
bin=target/debug
work=$(mktemp -d)
shots=${FERRY_SHOTS:-$work/shots}
mkdir -p "$shots"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$bin/ferry-sim" make-phone --out "$work/phone" --assets 60 --seed 61 >/dev/null
"$bin/ferry-sim" serve --phone "$work/phone" >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q USBMUXD_SOCKET_ADDRESS= "$work/sim.log" && break; sleep 0.1; done
addr=$(grep -m1 USBMUXD_SOCKET_ADDRESS= "$work/sim.log" | cut -d= -f2)
[ -n "$addr" ] || { echo "ERROR: ferry-sim did not start:" >&2; cat "$work/sim.log" >&2; exit 1; }

display=:$(( 90 + RANDOM % 100 ))
Xvfb "$display" -screen 0 800x900x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do xwininfo -root -display "$display" >/dev/null 2>&1 && break; sleep 0.1; done

mkdir -p "$work/dest"
export HOME=$work/home FERRY_DATA_DIR=$work/home/data FERRY_CACHE_DIR=$work/home/cache
DISPLAY=$display USBMUXD_SOCKET_ADDRESS=$addr FERRY_APP_DEST=$work/dest FERRY_APP_AUTOPILOT=1 \
    "$bin/ferry-app" >"$work/app.log" 2>&1 &
app=$!
pids+=($app)

want=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['archive_files'])" "$work/phone/expected.json")
shot() { import -display "$display" -window root -crop 760x820+0+0 +repage "$shots/$1.png" 2>/dev/null || true; }
got=0
for i in $(seq 1 600); do
    kill -0 "$app" 2>/dev/null || { echo "ERROR: ferry-app exited:" >&2; cat "$work/app.log" >&2; exit 1; }
    [ "$i" = 10 ] && shot early
    if compgen -G "$work/dest/.ferry/reports/*/latest.json" >/dev/null; then
        got=$(USBMUXD_SOCKET_ADDRESS=$addr "$bin/ferry" status --dest "$work/dest" --json \
              | python3 -c "import json,sys; print(json.load(sys.stdin)['phones'][0]['files'])")
        [ "$got" = "$want" ] && break
    fi
    sleep 0.1
done
[ "$got" = "$want" ] || { echo "ERROR: the app's sync archived $got of $want files" >&2; cat "$work/app.log" >&2; exit 1; }
sleep 1   # let the window draw the result before the screenshot (not a synchronisation)
shot result
"$bin/ferry" verify --dest "$work/dest"
# Byte for byte: the archive's SHA-256 multiset is expected.json's.
python3 - "$work/phone/expected.json" "$work/dest" <<'PY'
import collections, hashlib, json, os, sys
exp = json.load(open(sys.argv[1]))
want = collections.Counter(r["sha256"] for a in exp["assets"] if a["exclusion"] is None
                           for r in a["resources"] if r["action"] == "archive")
got = collections.Counter()
for root, dirs, files in os.walk(sys.argv[2]):
    dirs[:] = [d for d in dirs if d != ".ferry"]
    for f in files:
        got[hashlib.sha256(open(os.path.join(root, f), "rb").read()).hexdigest()] += 1
if got != want:
    sys.exit(f"ERROR: archive differs from expected.json ({sum(got.values())} vs {sum(want.values())} files)")
PY
echo "app e2e: the app archived $got/$want files; screenshots in $shots"
