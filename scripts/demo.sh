#!/usr/bin/env bash
# The main job, for now: build the simulated iPhone, serve a sample phone on a loopback usbmuxd
# socket, and let real third-party clients (Debian's libimobiledevice tools, pymobiledevice3)
# list, pair with and read it — exactly as they would a real iPhone on a USB cable.
#
# Usage: bash scripts/demo.sh            (installs what it needs on Debian; run as root or with sudo)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash scripts/install-peers.sh
venv=${FERRY_PEERS_VENV:-$repo/.venv}
cargo build --release -p ferry-sim
sim=$repo/target/release/ferry-sim

work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
phone=$work/phone
if "$sim" make-phone --help >/dev/null 2>&1; then
  "$sim" make-phone --out "$phone" --assets 40 --schema ios17 --seed 1 --media-size small >/dev/null
else
  # Until the library generator lands: a hand-made image.
  mkdir -p "$phone/Media/DCIM/100APPLE" "$phone/Media/PhotoData"
  cat > "$phone/device.toml" <<'TOML'
udid = "00008030-001A2B3C4D5E802E"
name = "Demo iPhone"
product_type = "iPhone12,1"
product_version = "17.6.1"
build_version = "21G93"
serial_number = "F2LXK0AAAAAA"
total_bytes = 128000000000
free_bytes = 23000000000
TOML
  head -c 3000000 /dev/urandom > "$phone/Media/DCIM/100APPLE/IMG_0001.HEIC"
  head -c 12000000 /dev/urandom > "$phone/Media/DCIM/100APPLE/IMG_0001.MOV"
fi

"$sim" serve --phone "$phone" --link usb2 > "$work/addr" 2> "$work/sim.log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
[ -s "$work/addr" ] || { cat "$work/sim.log"; echo "ferry-sim did not start" >&2; exit 1; }
export $(cat "$work/addr")
export HOME=$work/home XDG_DATA_HOME=$work/home/.local
mkdir -p "$HOME"
echo "== ferry-sim is serving on $USBMUXD_SOCKET_ADDRESS"
echo "== idevice_id -l";                       idevice_id -l
echo "== ideviceinfo -s -k DeviceName";        ideviceinfo -s -k DeviceName
echo "== idevicepair pair";                    idevicepair pair
echo "== ideviceinfo -q com.apple.disk_usage"; ideviceinfo -q com.apple.disk_usage
echo "== pymobiledevice3 usbmux list";         "$venv/bin/pymobiledevice3" usbmux list
first=$(cd "$phone/Media" && find DCIM -type f | sort | head -n 1)
echo "== pymobiledevice3 afc pull /$first"
"$venv/bin/pymobiledevice3" afc pull "/$first" "$work/pulled"
if cmp -s "$work/pulled" "$phone/Media/$first"; then
  echo "== pulled file is byte-identical ($(stat -c %s "$work/pulled") bytes)"
else
  echo "== pulled file differs!" >&2; exit 1
fi
