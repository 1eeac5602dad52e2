#!/usr/bin/env bash
# scripts/install-deps.sh against stand-in dpkg-query and apt-get (on PATH first): the lab's
# Docker engine is used whatever package it came from, docker.io is asked for only where there is
# no engine, apt is never allowed to remove anything, and a refusal says so and stops.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
pass=0 fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# $1: packages dpkg calls installed (space separated); the stand-in apt-get logs its arguments and
# exits with $APT_RC.
run_case() {
  local installed=$1
  mkdir -p "$work/bin"
  cat >"$work/bin/dpkg-query" <<SH
#!/bin/sh
for last; do :; done
for p in $installed; do [ "\$p" = "\$last" ] && { echo "install ok installed"; exit 0; }; done
exit 1
SH
  cat >"$work/bin/apt-get" <<'SH'
#!/bin/sh
echo "$*" >>"$APT_LOG"
[ "$1" = update ] && exit 0
exit "${APT_RC:-0}"
SH
  chmod +x "$work/bin/dpkg-query" "$work/bin/apt-get"
  : >"$work/apt.log"
  # No /usr/sbin on PATH: the host's own dockerd (if any) stays out of sight.
  PATH="$work/bin:$HOME/.cargo/bin:/usr/local/bin:/usr/bin:/bin" APT_LOG="$work/apt.log" \
    bash "$repo/scripts/install-deps.sh" >"$work/out.log" 2>&1
}

check() { # name, condition (a command)
  if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; sed 's/^/#   /' "$work/out.log" "$work/apt.log"; fi
}

# Everything else present; only xfsprogs missing.
base="build-essential pkg-config file curl ca-certificates libwebkit2gtk-4.1-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev fonts-wqy-microhei nodejs npm"

run_case "$base docker-ce containerd.io"; rc=$?
check "docker-ce installed: exit 0" "[ $rc = 0 ]"
check "docker-ce installed: docker.io is not asked for" "! grep -q docker.io '$work/apt.log'"
check "docker-ce installed: the missing package is, with --no-remove" "grep -q -- '--no-remove.*xfsprogs' '$work/apt.log'"
check "docker-ce installed: it says which engine it uses" "grep -q 'using the Docker engine that is here (docker-ce)' '$work/out.log'"

run_case "$base moby-engine"; rc=$?
check "moby-engine installed: docker.io is not asked for" "[ $rc = 0 ] && ! grep -q docker.io '$work/apt.log'"

run_case "$base xfsprogs"; rc=$?
check "no engine at all: docker.io is installed, with --no-remove" "[ $rc = 0 ] && grep -q -- '--no-remove.*docker.io' '$work/apt.log'"

APT_RC=100 run_case "$base"; rc=$?
check "apt would have to remove something: it stops and says so" "[ $rc != 0 ] && grep -q 'nothing was removed' '$work/out.log'"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
