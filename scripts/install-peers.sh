#!/usr/bin/env bash
# Installs the third-party peer clients the e2e tests drive against ferry-sim:
#   - Debian `libimobiledevice-utils` (idevice_id, ideviceinfo, idevicepair; libimobiledevice 1.3.0)
#   - `pymobiledevice3` (pinned) in a Python venv at $FERRY_PEERS_VENV (default: <repo>/.venv)
#
# Idempotent: a fast no-op when everything is already present at the pinned versions.
# Needs root (or sudo) for apt-get on a clean Debian 12 machine. Fails loudly otherwise.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FERRY_PEERS_VENV:-$REPO/.venv}"
PYMOBILEDEVICE3_VERSION="${PYMOBILEDEVICE3_VERSION:-11.45.0}"
# systemd: `systemd-analyze verify` checks the generated nightly units (crates/ferry-config).
# Xvfb, imagemagick, x11-utils and the X11/xkb libraries + a font: scripts/app-e2e.sh runs
# ferry-app (iced, tiny-skia, X11 loaded at run time) headless and screenshots it.
# exfatprogs, exfat-fuse, dosfstools, fusefat: crates/ferry-cli/tests/filesystems.rs formats
# exFAT and FAT32 images on loop devices (losetup: mount) and mounts them with FUSE.
APT_PACKAGES=(libimobiledevice-utils python3-venv python3-pip systemd
    xvfb xauth x11-utils imagemagick libx11-6 libx11-xcb1 libxcursor1 libxi6
    libxkbcommon-x11-0 fonts-dejavu-core
    exfatprogs exfat-fuse dosfstools fusefat mount)
# Debian's python3, not whatever pyenv/conda shim is first on PATH: python3-venv is for it.
PY="${FERRY_PEERS_PYTHON:-/usr/bin/python3}"

log() { printf 'install-peers: %s\n' "$*" >&2; }
die() { printf 'install-peers: ERROR: %s\n' "$*" >&2; exit 1; }

need_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        need_apt+=("$pkg")
    fi
done

if ((${#need_apt[@]})); then
    command -v apt-get >/dev/null || die "apt-get not found; install ${need_apt[*]} by hand (this script targets Debian 12)"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root to install ${need_apt[*]} (no sudo available)"
        SUDO=(sudo)
    fi
    log "apt-get installing: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq || die "apt-get update failed"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" \
        || die "apt-get install ${need_apt[*]} failed"
fi

for tool in idevice_id ideviceinfo idevicepair; do
    command -v "$tool" >/dev/null || die "$tool missing after installing libimobiledevice-utils"
done
for tool in mkfs.exfat mount.exfat-fuse mkfs.vfat fusefat losetup; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool || -x /sbin/$tool ]] \
        || die "$tool missing after installing exfatprogs exfat-fuse dosfstools fusefat mount"
done
[[ -x $PY ]] || die "$PY not found (install python3)"

pmd3_ok() {
    [[ -x $VENV/bin/pymobiledevice3 ]] || return 1
    local have
    have="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pymobiledevice3"))' 2>/dev/null)" || return 1
    [[ $have == "$PYMOBILEDEVICE3_VERSION" ]]
}

if ! pmd3_ok; then
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating venv $VENV"
        "$PY" -m venv "$VENV" || die "python3 -m venv $VENV failed (is python3-venv installed?)"
    fi
    log "pip installing pymobiledevice3==$PYMOBILEDEVICE3_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "pymobiledevice3==$PYMOBILEDEVICE3_VERSION" \
        || die "pip install pymobiledevice3==$PYMOBILEDEVICE3_VERSION failed"
    pmd3_ok || die "pymobiledevice3 $PYMOBILEDEVICE3_VERSION not importable from $VENV after install"
    # Smoke test: the CLI must start (imports all its command modules).
    "$VENV/bin/pymobiledevice3" --help >/dev/null || die "$VENV/bin/pymobiledevice3 --help failed"
fi

log "ok: $(command -v idevice_id) ($(dpkg-query -W -f='${Version}' libimobiledevice-utils)), pymobiledevice3 $PYMOBILEDEVICE3_VERSION in $VENV"
