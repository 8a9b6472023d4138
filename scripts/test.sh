#!/usr/bin/env bash
# The project's test command (README): format check, lints, and every test in the workspace,
# including the end-to-end tests that drive real peer clients against ferry-sim.
# It first runs scripts/install-peers.sh (idempotent, a fast no-op once installed; needs root
# the first time). Without the peer tools the e2e tests fail with an install hint, never skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Tests that need an installed tool (systemd-analyze, …) fail instead of skipping.
export FERRY_REQUIRE_PEERS=1
# iced_test renders with tiny-skia whatever GPU stack the machine has (stable snapshots).
export ICED_TEST_BACKEND=tiny-skia

t0=$(date +%s)
step() { printf '\n==> [%4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }

step "scripts/install-peers.sh"
bash scripts/install-peers.sh

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# The e2e harness builds ferry-sim itself (`cargo build -p ferry-sim`) so that it is never
# stale; doing it here first keeps that build's output out of the test log.
step "cargo build -p ferry-sim"
cargo build -p ferry-sim --bin ferry-sim

# --no-fail-fast: one failing test binary must not hide the results of the others.
step "cargo test --workspace --no-fail-fast"
cargo test --workspace --no-fail-fast

step "scripts/app-e2e.sh (ferry-app under Xvfb, driven by its autopilot)"
bash scripts/app-e2e.sh
step "done"
