#!/usr/bin/env bash
# The test rig's real parts: a Docker engine (started here when none answers; a running one is
# left alone) with the stand-in NVIDIA hook on its PATH, and the locally built test image.
# Idempotent. Needs root (dockerd) or a user in the docker group with an engine already running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${GPUDECK_RIG_DIR:-$here/../../target/rig}
mkdir -p "$state"
image=gpudeck-test/busybox:latest

if ! docker info >/dev/null 2>&1; then
  echo "rig: no Docker engine answers; starting dockerd (log: $state/dockerd.log)"
  [ "$(id -u)" = 0 ] || { echo "rig: starting dockerd needs root (sudo)"; exit 1; }
  PATH="$here/bin:$PATH" nohup dockerd >"$state/dockerd.log" 2>&1 &
  echo $! >"$state/dockerd.pid"
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "rig: dockerd did not come up:"; tail -20 "$state/dockerd.log"; exit 1; }
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "rig: building $image from busybox-static"
  bb=$(command -v busybox || echo /bin/busybox)
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp "$bb" "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - "$image" >/dev/null
  rm -rf "$root"
fi

# GPU device requests must reach containers; that needs the (stand-in) hook on dockerd's PATH.
if ! out=$(docker run --rm --gpus device=GPU-rig-probe "$image" sh -c 'echo $NVIDIA_VISIBLE_DEVICES' 2>&1) || [ "$out" != GPU-rig-probe ]; then
  echo "rig: this Docker engine rejects GPU device requests: $out"
  echo "rig: start dockerd with $here/bin on its PATH (or install nvidia-container-toolkit), then run again."
  exit 1
fi
echo "rig: Docker $(docker version -f '{{.Server.Version}}') ready; image $image; GPU device requests reach containers"
