#!/usr/bin/env bash
# Installs what GPU Deck needs and is missing on Debian 12 (or newer): system libraries for Tauri
# (WebKitGTK 4.1), the Docker engine, xfsprogs (XFS-quota volumes), a CJK font (the zh-CN UI is
# boxes without one), Rust and Node.js, and the project's npm packages.
# With --test, also what the tests need: Xvfb, WebKitWebDriver, busybox-static, tauri-driver, and
# qemu + kmod + cpio for the XFS-quota volume tests in a VM (tests/vm), and Debian's docker-registry
# and htpasswd (apache2-utils) for the image tests' registry.
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

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

pkgs=(build-essential pkg-config file curl ca-certificates libwebkit2gtk-4.1-dev libssl-dev
      libayatana-appindicator3-dev librsvg2-dev xfsprogs fonts-wqy-microhei)
[ $want_test = 1 ] && pkgs+=(xvfb xauth webkit2gtk-driver busybox-static qemu-system-x86 kmod cpio iproute2
                             docker-registry apache2-utils)
command -v node >/dev/null || pkgs+=(nodejs npm)

# The Docker engine: the lab's own is used, whichever it is (Docker CE, Debian's docker.io, Moby,
# a dockerd installed by hand). Debian's docker.io is installed only where there is none at all;
# installing it beside docker-ce would make apt remove docker-ce and containerd.io and stop every
# running container.
engine=""
command -v dockerd >/dev/null && engine=$(command -v dockerd)
for p in docker-ce docker.io moby-engine docker-ee; do installed "$p" && engine=${engine:-$p}; done
if [ -n "$engine" ]; then
  echo "install-deps: using the Docker engine that is here ($engine)"
else
  pkgs+=(docker.io)
fi

missing=()
for p in "${pkgs[@]}"; do
  installed "$p" || missing+=("$p")
done
# The package lists are refreshed before any version is read from them.
[ ${#missing[@]} -gt 0 ] && $SUDO apt-get update -q
# Tests only: Debian 12's qemu-system-x86 needs the qemu-utils of its own version. A machine with a
# newer qemu-utils (bookworm-backports) gets that one changed to the matching version, said here;
# nothing is removed.
for i in "${!missing[@]}"; do
  if [ "${missing[$i]}" = qemu-system-x86 ] && installed qemu-utils; then
    want=$(apt-cache policy qemu-system-x86 2>/dev/null | awk '/Candidate:/{print $2}')
    have=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
    if [ -n "$want" ] && [ "$want" != "(none)" ] && [ "$have" != "$want" ]; then
      echo "install-deps: qemu-utils $have is changed to $want, the version qemu-system-x86 needs (tests only)"
      missing[$i]="qemu-system-x86 qemu-utils=$want"
      allow_downgrade=1
    fi
  fi
done
# shellcheck disable=SC2206
missing=(${missing[@]+${missing[@]}})
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  # --no-remove: apt stops rather than remove anything the machine has (never a package of the
  # lab's swapped out behind the admin's back).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends --no-remove \
    ${allow_downgrade:+--allow-downgrades} "${missing[@]}" || {
    echo "install-deps: apt-get could not install ${missing[*]} without removing something; nothing was removed. Install them by hand, deciding what may go." >&2
    exit 1
  }
fi

# Tests only: the image tests start their own registry on 127.0.0.1 with its own config. The one
# Debian's package starts listens on every interface without auth: it is stopped and disabled.
if [ $want_test = 1 ] && [ -d /run/systemd/system ] && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  echo "install-deps: stopping and disabling the docker-registry service Debian started (it listens on every interface; the tests run their own on 127.0.0.1)"
  $SUDO systemctl disable --now docker-registry || true
fi

# Rust: Debian's rustc is too old for Tauri 2; rustup's stable is used when cargo is missing.
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
if ! command -v cargo >/dev/null; then
  echo "install-deps: installing Rust (rustup, stable)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
  export PATH="$HOME/.cargo/bin:$PATH"
fi
# Node.js 18 or newer builds the UI. Where the distribution's is older (Ubuntu 22.04 has 12),
# Node.js 20 and npm 10 come from the npm registry (the node-linux-<arch> package carries the
# official binary) into ~/.cache/gpudeck/node, whose bin/ run.sh and test.sh put first on PATH.
nd="$HOME/.cache/gpudeck/node"
[ -x "$nd/bin/node" ] && export PATH="$nd/bin:$PATH"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 18 ]; then
  case $(uname -m) in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch="" ;; esac
  [ -n "$arch" ] && command -v npm >/dev/null || {
    echo "install-deps: Node.js 18 or newer is needed (found $(node --version 2>/dev/null || echo none)); install it and run this again" >&2
    exit 1
  }
  echo "install-deps: Node.js $(node --version) is too old; installing Node.js 20 under $nd"
  npm install --prefix "$nd" --no-audit --no-fund --loglevel=error "node-linux-$arch@20" npm@10
  mkdir -p "$nd/bin"
  ln -sf "../node_modules/node-linux-$arch/bin/node" "$nd/bin/node"
  for t in npm npx; do
    printf '#!/bin/sh\nexec "%s/bin/node" "%s/node_modules/npm/bin/%s-cli.js" "$@"\n' "$nd" "$nd" "$t" >"$nd/bin/$t"
    chmod +x "$nd/bin/$t"
  done
  export PATH="$nd/bin:$PATH"
  node --version
fi

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
