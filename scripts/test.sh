#!/usr/bin/env bash
# Installs what is missing, then runs every test: Rust (unit + integration against a real Docker
# engine and the fake NVML), the UI's type-check and unit tests, the .deb build, and the end-to-end
# test of the built app under Xvfb through tauri-driver.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/install-deps.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
target=${CARGO_TARGET_DIR:-$repo/target}

step() { printf '\n== %s ==\n' "$*"; }

step "test rig (Docker engine, stand-in NVIDIA hook, test image)"
bash tests/rig/setup.sh
# shellcheck disable=SC1091
. "$repo/target/rig/env"   # DOCKER_HOST when the rig had to start its own engine

step "UI: type-check and unit tests"
npm --prefix ui run typecheck
npm --prefix ui test

step "build the app and its .deb (tauri build, debug profile: the tests use this binary)"
npx tauri build --debug --bundles deb
ls "$target"/debug/bundle/deb/*.deb

step "Rust: unit and integration tests"
cargo test --workspace --features tauri/custom-protocol

step "end to end: the app under Xvfb through tauri-driver"
GPUDECK_APP="$target/debug/gpudeck-app" node --test tests/e2e/
