#!/usr/bin/env bash
# Installs what GPU Deck needs and is missing on Debian 12 (or newer): system libraries for Tauri
# (WebKitGTK 4.1), the Docker engine, xfsprogs (XFS-quota volumes), a CJK font (the zh-CN UI is
# boxes without one), Rust and Node.js, and the project's npm packages.
# With --test, also what the tests need: Xvfb, WebKitWebDriver, busybox-static, tauri-driver, and
# qemu + kmod + cpio for the XFS-quota volume tests in a VM (tests/vm).
# Safe to run again: it installs only what is missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root, or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

pkgs=(build-essential pkg-config file curl ca-certificates libwebkit2gtk-4.1-dev libssl-dev
      libayatana-appindicator3-dev librsvg2-dev docker.io xfsprogs fonts-wqy-microhei)
[ $want_test = 1 ] && pkgs+=(xvfb xauth webkit2gtk-driver busybox-static qemu-system-x86 kmod cpio iproute2)
command -v node >/dev/null || pkgs+=(nodejs npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Rust: Debian's rustc is too old for Tauri 2; rustup's stable is used when cargo is missing.
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
if ! command -v cargo >/dev/null; then
  echo "install-deps: installing Rust (rustup, stable)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
  export PATH="$HOME/.cargo/bin:$PATH"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || { echo "install-deps: Node.js 18 or newer is needed (found $(node --version))" >&2; exit 1; }

# npm packages, from the lock files (only when they changed).
for d in "$repo" "$repo/ui"; do
  if [ ! -f "$d/node_modules/.package-lock.json" ] || [ "$d/package-lock.json" -nt "$d/node_modules/.package-lock.json" ]; then
    # npm install, not npm ci: this registry mirror records only this platform's optional
    # packages in the lock file, which npm ci then calls out of sync.
    (cd "$d" && npm install --no-audit --no-fund --loglevel=error)
  fi
done

if [ $want_test = 1 ] && ! command -v tauri-driver >/dev/null; then
  echo "install-deps: installing tauri-driver (crates.io)"
  cargo install tauri-driver --locked --version 2.1.0
fi
