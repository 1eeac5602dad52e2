#!/usr/bin/env bash
# Installs what is missing, then runs every test: Rust (unit + integration against a real Docker
# engine and the fake NVML), the UI's type-check and unit tests, the .deb build, and the end-to-end
# test of the built app under Xvfb through tauri-driver.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/install-deps.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
# Node.js 20 from install-deps, where the distribution's was too old.
[ -x "$HOME/.cache/gpudeck/node/bin/node" ] && export PATH="$HOME/.cache/gpudeck/node/bin:$PATH"
target=${CARGO_TARGET_DIR:-$repo/target}
# One feature set for every build here (and for CI's clippy), so nothing is compiled twice:
# custom-protocol as tauri build sets it, and crash-points, the recovery tests' hooks.
features=tauri/custom-protocol,crash-points

step() { printf '\n== %s ==\n' "$*"; }

step "test rig (Docker engine, stand-in NVIDIA hook, test image)"
bash tests/rig/setup.sh
# shellcheck disable=SC1091
. "$repo/target/rig/env"   # DOCKER_HOST when the rig had to start its own engine

step "install-deps: the lab's Docker engine is used, nothing is ever removed"
bash tests/scripts/install-deps.test.sh

step "UI: type-check and unit tests"
npm --prefix ui run typecheck
npm --prefix ui test

step "build the app and its .deb (tauri build, debug profile: the tests use this binary)"
npx tauri build --debug --bundles deb --features crash-points
deb=$(ls -t "$target"/debug/bundle/deb/*.deb | head -1)
bash tests/scripts/deb.test.sh "$deb"

step "the .deb installed as the quick start does it: gpudeckd on the default socket, a member as herself"
bash tests/scripts/deb-install.test.sh "$deb"

step "Rust: unit and integration tests"
cargo test --workspace --features "$features"

step "load test (loopback only, bounded): connections held and the service's memory and descriptors, printed"
cargo test --features "$features" --test service -- --exact --nocapture \
  idle_connections_are_bounded_per_peer_and_timed_out exec_output_is_streamed_or_capped_and_costs_the_service_no_more

step "replicaSets again on a second engine with --storage-driver vfs (no overlay2 anywhere)"
# Files are carried through the Docker API only; this proves it on a driver with no upper layer.
# (The disk-use and 50-run tests are left to the overlay2 run: vfs copies every layer in full.)
GPUDECK_RIG_DIR="$repo/target/rig-vfs" GPUDECK_RIG_SEPARATE=1 GPUDECK_RIG_DOCKERD_ARGS="--storage-driver vfs" \
  bash tests/rig/setup.sh
(
  # shellcheck disable=SC1091
  . "$repo/target/rig-vfs/env"
  cargo test --features "$features" --test replicaset -- --skip ten_patches --skip fifty_concurrent
)

step "every integration test again on Docker 26 with the containerd image store and CDI (as a fresh Docker CE install runs; Debian 13's engine, unpacked beside the rig, not installed)"
bash tests/rig/docker26.sh --containerd-store
(
  # shellcheck disable=SC1091
  . "$repo/target/rig-ctd/env"
  cargo test --features "$features" --test '*' -- --include-ignored --skip fifty_concurrent \
    --skip automatic_gpu_requests_go_through_cdi_where_only_cdi_serves_gpus
  # The app's pull, layer bars and all, on that store's own events.
  GPUDECK_APP="$target/debug/gpudeck-app" node --test tests/e2e/images.test.mjs
)

step "GPUs on a host served by CDI alone (no NVIDIA hook or runtime, as nvidia-container-toolkit-base leaves it): the same Docker 26, overlay2"
bash tests/rig/docker26.sh --cdi-only
(
  # shellcheck disable=SC1091
  . "$repo/target/rig-cdionly/env"
  cargo test --features "$features" --test replicaset -- --include-ignored \
    automatic_gpu_requests_go_through_cdi_where_only_cdi_serves_gpus
)

step "volumes on XFS project quotas, in a VM (this kernel has no XFS quota; Debian's has)"
# The same volume tests, run again inside tests/vm (Debian 12's kernel under qemu, emulated) with
# the data folder on XFS mounted with prjquota, so volumes get the xfs-quota backend.
if [ "${GPUDECK_SKIP_VM:-0}" = 1 ]; then
  echo "skipped (GPUDECK_SKIP_VM=1)"
else
  vol_bin=$(cargo test --features "$features" --test volume --no-run 2>&1 |
    sed -n 's/.*Executable tests\/volume.rs (\(.*\))/\1/p' | tail -1)
  case $vol_bin in /*) ;; *) vol_bin="$repo/$vol_bin" ;; esac
  export GPUDECK_VM_DIR="$target/vm"   # the kernel it fetches is kept with the build cache
  bash tests/vm/run.sh "GPUDECK_RIG_DIR=/run/rig GPUDECK_RIG_DOCKERD_ARGS='--bridge none --iptables=false' bash tests/rig/setup.sh \
    && mkdir -p /srv/xfs/tmp && TMPDIR=/srv/xfs/tmp GPUDECK_EXPECT_BACKEND=xfs-quota \
    GPUDECK_CRASH_STEPS=copied,recorded,create_made $vol_bin --test-threads=1"
fi

step "end to end: the app under Xvfb through tauri-driver"
GPUDECK_APP="$target/debug/gpudeck-app" node --test tests/e2e/
