#!/usr/bin/env bash
# The test rig's real parts: a Docker engine (started here when none answers; a running one is
# left alone) with the stand-in NVIDIA hook on its PATH and a runtime named "nvidia" (runc
# underneath: containers that take GPUs through NVIDIA_VISIBLE_DEVICES, as under the real
# nvidia-container-runtime), and the locally built test image.
# When the running engine cannot take GPU device requests (a system dockerd started by systemd
# without the hook), a separate rig engine is started beside it on its own socket, data and exec
# roots (no bridge network), and `target/rig/env` exports its DOCKER_HOST for the tests.
# Idempotent. Needs root to start an engine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${GPUDECK_RIG_DIR:-$here/../../target/rig}
mkdir -p "$state"
image=gpudeck-test/busybox:latest

sock="$state/docker.sock"
# A rig engine of its own, beside any other: own socket, data and exec roots, and a bridge of its
# own (never `--bridge none`: dockerd then deletes docker0, the other engine's network).
# GPUDECK_RIG_DOCKERD_ARGS adds flags (e.g. --storage-driver vfs).
start_separate() {
  [ "$(id -u)" = 0 ] || { echo "rig: starting a rig engine needs root (sudo)"; exit 1; }
  if ! DOCKER_HOST="unix://$sock" docker info >/dev/null 2>&1; then
    sum=$(printf %s "$state" | cksum | cut -d' ' -f1)
    br="gdrig$((sum % 100000))"
    if ! ip link show "$br" >/dev/null 2>&1; then
      # A /24 no other interface has (another clone's rig engine may still run beside this one).
      n=$((sum % 200 + 20))
      for _ in $(seq 1 200); do
        ip -4 -o addr show | grep -q " 172\.30\.$n\.[0-9]*/" || break
        n=$(((n - 19) % 200 + 20))
      done
      ip link add name "$br" type bridge
      ip addr add "172.30.$n.1/24" dev "$br"
      ip link set "$br" up
    fi
    # shellcheck disable=SC2086 # GPUDECK_RIG_DOCKERD_ARGS: extra flags, split on spaces
    # GPUDECK_RIG_NVIDIA=0: neither the stand-in hook nor a runtime named "nvidia" (a host with
    # only CDI specs, as nvidia-container-toolkit-base leaves it).
    if [ "${GPUDECK_RIG_NVIDIA:-1}" = 0 ]; then
      nvidia_path=$PATH nvidia_args=()
    else
      nvidia_path="$here/bin:$PATH" nvidia_args=(--add-runtime "nvidia=$(command -v runc)")
    fi
    PATH="$nvidia_path" nohup dockerd --host "unix://$sock" --data-root "$state/docker-data" \
      --exec-root "$state/docker-exec" --pidfile "$state/docker-rig.pid" --bridge "$br" --iptables=false \
      "${nvidia_args[@]}" ${GPUDECK_RIG_DOCKERD_ARGS:-} >"$state/dockerd-rig.log" 2>&1 &
    for _ in $(seq 1 60); do DOCKER_HOST="unix://$sock" docker info >/dev/null 2>&1 && break; sleep 0.5; done
    DOCKER_HOST="unix://$sock" docker info >/dev/null 2>&1 || { echo "rig: the rig engine did not come up:"; tail -20 "$state/dockerd-rig.log"; exit 1; }
  fi
  export DOCKER_HOST="unix://$sock"
}

build_image() {
  docker image inspect "$image" >/dev/null 2>&1 && return
  echo "rig: building $image from busybox-static"
  bb=$(command -v busybox || echo /bin/busybox)
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp "$bb" "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - "$image" >/dev/null
  rm -rf "$root"
}

# GPU device requests must reach containers; that needs the (stand-in) hook on dockerd's PATH.
gpu_probe() {
  out=$(docker run --rm --gpus device=GPU-rig-probe "$image" sh -c 'echo $NVIDIA_VISIBLE_DEVICES' 2>&1) && [ "$out" = GPU-rig-probe ]
}

if [ "${GPUDECK_RIG_SEPARATE:-0}" = 1 ]; then
  start_separate
elif ! docker info >/dev/null 2>&1; then
  echo "rig: no Docker engine answers; starting dockerd (log: $state/dockerd.log)"
  [ "$(id -u)" = 0 ] || { echo "rig: starting dockerd needs root (sudo)"; exit 1; }
  # shellcheck disable=SC2086 # GPUDECK_RIG_DOCKERD_ARGS: extra flags, split on spaces
  PATH="$here/bin:$PATH" nohup dockerd --add-runtime "nvidia=$(command -v runc)" ${GPUDECK_RIG_DOCKERD_ARGS:-} >"$state/dockerd.log" 2>&1 &
  echo $! >"$state/dockerd.pid"
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "rig: dockerd did not come up:"; tail -20 "$state/dockerd.log"; exit 1; }
fi
build_image
if [ "${GPUDECK_RIG_NVIDIA:-1}" = 0 ]; then
  # No hook: GPU device requests of the nvidia kind must be refused here.
  if gpu_probe; then echo "rig: an engine without the NVIDIA hook took a GPU device request"; exit 1; fi
elif ! gpu_probe; then
  [ "${GPUDECK_RIG_SEPARATE:-0}" = 1 ] && { echo "rig: the rig engine rejects GPU device requests: $out"; exit 1; }
  echo "rig: the running engine rejects GPU device requests ($out); starting a separate rig engine"
  start_separate
  build_image
  gpu_probe || { echo "rig: the rig engine rejects GPU device requests too: $out"; exit 1; }
fi
echo "${DOCKER_HOST:+export DOCKER_HOST=$DOCKER_HOST}" >"$state/env"
if [ "${GPUDECK_RIG_NVIDIA:-1}" = 0 ]; then
  echo "rig: Docker $(docker version -f '{{.Server.Version}}') ($(docker info -f '{{.Driver}}')) ready; image $image; no NVIDIA hook or runtime"
else
  echo "rig: Docker $(docker version -f '{{.Server.Version}}') ($(docker info -f '{{.Driver}}')) ready; image $image; GPU device requests reach containers"
fi

# Lab members for the service tests (tests/service.rs, tests/e2e/service.test.mjs): alice and bob
# in `gpudeck`, carol in no group, dana an admin (`gpudeck-admin`). Kept between runs.
if [ "$(id -u)" = 0 ]; then
  for g in gpudeck gpudeck-admin; do getent group "$g" >/dev/null || groupadd --system "$g"; done
  for spec in alice:gpudeck bob:gpudeck carol: dana:gpudeck,gpudeck-admin; do
    u=${spec%%:*} groups=${spec#*:}
    id -u "$u" >/dev/null 2>&1 || useradd -m -s /bin/sh ${groups:+-G "$groups"} "$u"
  done
fi
