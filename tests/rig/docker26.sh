#!/usr/bin/env bash
# A rig engine of a newer Docker, the way a fresh Docker CE install runs: Debian 12's docker.io is
# 20.10, which has neither CDI (`docker run --device nvidia.com/gpu=0`) nor the containerd image
# store, so Debian 13's docker.io, docker-cli and containerd (Docker 26, containerd 1.7) are
# fetched as packages (apt-get download, never installed: nothing of the machine's changes) and
# unpacked under target/docker26; that dockerd runs on bookworm's libc and runc, with the CDI
# feature on and a spec folder the tests write their fake GPUs' specs into.
#   tests/rig/docker26.sh                     overlay2 (graph driver), CDI: target/rig-cdi
#   tests/rig/docker26.sh --containerd-store  the containerd image store (as Docker 29's fresh
#                                             installs), CDI: target/rig-ctd
#   tests/rig/docker26.sh --cdi-only          overlay2, CDI, and no NVIDIA hook or runtime (a host
#                                             with only nvidia-container-toolkit-base's CDI
#                                             specs): target/rig-cdionly
# Writes `$state/env` (DOCKER_HOST, and PATH with that CLI first). Idempotent; needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=$(mkdir -p "$here/../../target" && cd "$here/../../target" && pwd)
store=graph nvidia=1
[ "${1:-}" = --containerd-store ] && store=containerd
[ "${1:-}" = --cdi-only ] && nvidia=0
if [ $nvidia = 0 ]; then
  state=${GPUDECK_RIG_DIR:-$target/rig-cdionly}
  features='{"cdi": true}'
elif [ $store = containerd ]; then
  state=${GPUDECK_RIG_DIR:-$target/rig-ctd}
  features='{"cdi": true, "containerd-snapshotter": true}'
else
  state=${GPUDECK_RIG_DIR:-$target/rig-cdi}
  features='{"cdi": true}'
fi
mkdir -p "$state"
state=$(cd "$state" && pwd)
pkgs="$target/docker26"
suite=${GPUDECK_DOCKER26_SUITE:-trixie}
bin="$pkgs/root/usr/sbin:$pkgs/root/usr/bin"

if [ ! -x "$pkgs/root/usr/sbin/dockerd" ] || [ ! -x "$pkgs/root/usr/bin/docker" ] || [ ! -x "$pkgs/root/usr/bin/containerd" ]; then
  echo "rig-docker26: fetching Debian $suite's docker.io, docker-cli and containerd (unpacked here, not installed)"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$keyring" ] || { echo "rig-docker26: $keyring is missing (apt-get install debian-archive-keyring): Debian's signatures are checked"; exit 1; }
  apt="$pkgs/apt"
  rm -rf "$pkgs/debs" "$pkgs/root"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$pkgs/debs"
  echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" \
    >"$apt/sources.list"
  opts=(-q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Debug::NoLocking=1
        -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update >"$pkgs/apt-update.log" 2>&1 ||
    { echo "rig-docker26: apt-get update of Debian $suite failed:"; tail -5 "$pkgs/apt-update.log"; exit 1; }
  (cd "$pkgs/debs" && apt-get "${opts[@]}" download docker.io docker-cli containerd >"$pkgs/apt-download.log" 2>&1) ||
    { echo "rig-docker26: apt-get download failed:"; tail -5 "$pkgs/apt-download.log"; exit 1; }
  for d in "$pkgs"/debs/*.deb; do dpkg-deb -x "$d" "$pkgs/root"; done
fi
export PATH="$bin:$PATH"

# The spec folder holds only what the tests write (a stale spec naming the same devices would
# make the engine refuse them all as conflicting).
mkdir -p "$state/cdi"
echo "{\"features\": $features}" >"$state/daemon.json"
GPUDECK_RIG_DIR="$state" GPUDECK_RIG_SEPARATE=1 GPUDECK_RIG_NVIDIA=$nvidia \
  GPUDECK_RIG_DOCKERD_ARGS="--config-file $state/daemon.json --cdi-spec-dir $state/cdi ${GPUDECK_RIG_DOCKERD_ARGS:-}" \
  bash "$here/setup.sh"
export DOCKER_HOST="unix://$state/docker.sock"
dirs=$(docker info -f '{{json .CDISpecDirs}}')
case $dirs in *"$state/cdi"*) ;; *) echo "rig-docker26: the engine reports no CDI spec folder ($dirs)"; exit 1 ;; esac
if [ $store = containerd ]; then
  drv=$(docker info -f '{{json .DriverStatus}}')
  case $drv in *io.containerd.snapshotter*) ;; *) echo "rig-docker26: the engine does not use the containerd image store ($drv)"; exit 1 ;; esac
fi
echo "export PATH=$bin:\$PATH" >>"$state/env"
echo "rig-docker26: $(dockerd --version); CDI on, specs in $state/cdi; image store: $store"
