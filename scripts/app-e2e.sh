#!/usr/bin/env bash
# End-to-end check of the desktop app: ferry-app in a real X window (Xvfb) against
# `ferry-sim serve`, through every screen a person sees, then the archive is checked with
# `ferry verify` and byte for byte against the phone image's expected.json.
#
# The app runs with its autopilot (FERRY_APP_AUTOPILOT=1: it presses Trust, "Set up this
# folder" and Sync through the same Messages a click sends), saves a screenshot of each stage
# it reaches (FERRY_APP_SHOTS) and, after each one, waits for a line on its stdin
# (FERRY_APP_STEP=1). This script plays the user and the cable between the pictures through
# the simulator's control socket, so every step is a handshake, never a guess at timing:
#
#   no-usbmuxd     start the simulator (phone unplugged)   no-phone       plug the phone in
#   trust-needed   (the app presses Trust)                 trust-pending  tap Trust on the phone
#   library        (the app sets the folder up)            ready          arm a stall mid-copy
#   syncing        once the phone hangs, un-stall it       result         check the archive
#
# Screenshots go to $FERRY_SHOTS (default: a temp dir); docs/screenshots/ holds a set.
# Needs: xvfb and the X11 runtime libraries (scripts/install-peers.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v Xvfb >/dev/null || { echo "ERROR: Xvfb missing: run scripts/install-peers.sh (package xvfb)" >&2; exit 1; }
cargo build -q -p ferry-app -p ferry-cli -p ferry-sim
bin=target/debug
work=$(mktemp -d)
shots=${FERRY_SHOTS:-$work/shots}
mkdir -p "$shots"
rm -f "$shots"/*.png
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
fail() {
    echo "ERROR: $*" >&2
    for f in app sim xvfb; do [ -s "$work/$f.log" ] && { echo "--- $f.log" >&2; tail -n 40 "$work/$f.log" >&2; }; done
    exit 1
}

# A 100 MB (sparse) video makes the copy long enough to stall in the middle of.
"$bin/ferry-sim" make-phone --out "$work/phone" --assets 60 --seed 61 \
    --sparse-video-bytes 100000000 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
ctl() { "$bin/ferry-sim" ctl --control "$work/ctl.sock" "$@" >/dev/null; }

display=:$(( 90 + RANDOM % 100 ))
Xvfb "$display" -screen 0 800x900x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -e "/tmp/.X11-unix/X${display#:}" ] && break; sleep 0.1; done
[ -e "/tmp/.X11-unix/X${display#:}" ] || fail "Xvfb did not start on $display"

mkdir -p "$work/dest"
mkfifo "$work/step"
exec 3<>"$work/step"   # held open read-write: the app's stdin never sees end-of-file early
export HOME=$work/home FERRY_DATA_DIR=$work/home/data FERRY_CACHE_DIR=$work/home/cache
DISPLAY=$display USBMUXD_SOCKET_ADDRESS=$addr FERRY_APP_DEST=$work/dest \
    FERRY_APP_AUTOPILOT=1 FERRY_APP_SHOTS=$shots FERRY_APP_STEP=1 \
    "$bin/ferry-app" <"$work/step" >"$work/app.log" 2>&1 &
app=$!
pids+=($app)

# Waits (up to 60 s) for the app's picture of stage $1, then lets the app go on.
expect() {
    local stage=$1
    for _ in $(seq 1 600); do
        kill -0 "$app" 2>/dev/null || fail "ferry-app exited while waiting for stage $stage"
        if compgen -G "$shots/*-$stage.png" >/dev/null; then
            echo "  stage $stage: $(basename "$(compgen -G "$shots/*-$stage.png" | head -n1)")"
            return
        fi
        sleep 0.1
    done
    fail "ferry-app never showed stage $stage (stages so far: $(ls "$shots" | tr '\n' ' '))"
}
next() { echo next >&3; }

echo "app e2e: ferry-app on $display, usbmuxd at $addr"
expect no-usbmuxd
"$bin/ferry-sim" serve --phone "$work/phone" --listen "$addr" --control "$work/ctl.sock" \
    --unplugged --trust after:1000000 >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q USBMUXD_SOCKET_ADDRESS= "$work/sim.log" && break; sleep 0.1; done
grep -q USBMUXD_SOCKET_ADDRESS= "$work/sim.log" || fail "ferry-sim did not start"
next
expect no-phone;      ctl replug; next
expect trust-needed;  next
expect trust-pending; ctl trust auto; next
expect library;       next
want_bytes=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['archive_bytes'])" "$work/phone/expected.json")
expect ready;         ctl stall-after $(( want_bytes / 2 )); next
expect syncing
# The copy runs into the armed stall (half the bytes): wait for the phone to hang, then let go.
for _ in $(seq 1 600); do
    "$bin/ferry-sim" ctl --control "$work/ctl.sock" status | grep -q '"stalled": *true' && break
    sleep 0.1
done
"$bin/ferry-sim" ctl --control "$work/ctl.sock" status | grep -q '"stalled": *true' || fail "the phone never stalled mid-copy"
ctl unstall; next
expect result;        next

want=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['archive_files'])" "$work/phone/expected.json")
got=$(USBMUXD_SOCKET_ADDRESS=$addr "$bin/ferry" status --dest "$work/dest" --json \
      | python3 -c "import json,sys; print(json.load(sys.stdin)['phones'][0]['files'])")
[ "$got" = "$want" ] || fail "the app's sync archived $got of $want files"
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
        h = hashlib.sha256()
        with open(os.path.join(root, f), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        got[h.hexdigest()] += 1
if got != want:
    sys.exit(f"ERROR: archive differs from expected.json ({sum(got.values())} vs {sum(want.values())} files)")
PY
echo "app e2e: the app archived $got/$want files through $(ls "$shots" | wc -l) screens; screenshots in $shots"
