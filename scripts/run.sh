#!/usr/bin/env bash
# Installs what is missing, builds GPU Deck (release, and its .deb) and launches it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# Node.js 20 from install-deps, where the distribution's was too old.
[ -x "$HOME/.cache/gpudeck/node/bin/node" ] && export PATH="$HOME/.cache/gpudeck/node/bin:$PATH"
# Start the Docker engine when it is installed but not running (GPU Deck also opens without it).
if ! docker info >/dev/null 2>&1 && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  ${SUDO:-$( [ "$(id -u)" = 0 ] || echo sudo )} systemctl start docker || true
fi
npx tauri build --bundles deb
echo "GPU Deck built; the .deb is in ${CARGO_TARGET_DIR:-target}/release/bundle/deb/"
exec "${CARGO_TARGET_DIR:-$repo/target}/release/gpudeck-app" "$@"
