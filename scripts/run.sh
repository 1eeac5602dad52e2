#!/usr/bin/env bash
# Installs what is missing, builds GPU Deck and its .deb (release), installs the .deb (the service,
# gpudeckd, starts: by systemd where it runs, else in the background), adds the invoking user to
# the groups gpudeck and gpudeck-admin, and opens the app as that user (never as root).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# Node.js 20 from install-deps, where the distribution's was too old.
[ -x "$HOME/.cache/gpudeck/node/bin/node" ] && export PATH="$HOME/.cache/gpudeck/node/bin:$PATH"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
systemd=0
[ -d /run/systemd/system ] && command -v systemctl >/dev/null && systemd=1
# Start the Docker engine when it is installed but not running (GPU Deck also opens without it).
if ! $SUDO docker info >/dev/null 2>&1 && [ $systemd = 1 ]; then
  $SUDO systemctl start docker || true
fi

npx tauri build --bundles deb
deb=$(ls -t "${CARGO_TARGET_DIR:-$repo/target}"/release/bundle/deb/*.deb | head -1)
echo "run: installing $deb"
# --no-remove: installing GPU Deck never takes anything of the machine's away.
$SUDO apt-get install -y -q --no-remove "$deb"

# The service: systemd started it from the package; elsewhere (containers) it runs in the
# background, logging to /var/log/gpudeckd.log.
sock=/run/gpudeck/gpudeck.sock
if [ $systemd = 0 ] && ! $SUDO test -S "$sock"; then
  echo "run: no systemd here; starting gpudeckd in the background (log: /var/log/gpudeckd.log)"
  $SUDO sh -c 'umask 077; nohup /usr/bin/gpudeckd >/var/log/gpudeckd.log 2>&1 &'
fi
for _ in $(seq 1 50); do $SUDO test -S "$sock" && break; sleep 0.2; done
$SUDO test -S "$sock" || { echo "run: gpudeckd did not start; see journalctl -u gpudeck or /var/log/gpudeckd.log" >&2; exit 1; }

# The person who ran this uses GPU Deck as themselves, an admin of it.
user=${SUDO_USER:-$(id -un)}
if [ "$user" = root ]; then
  echo "run: GPU Deck's service runs. The app does not run as root: open it as your desktop user (\`gpudeck\`), after \`sudo usermod -aG gpudeck,gpudeck-admin USER\`."
  exit 0
fi
$SUDO usermod -aG gpudeck,gpudeck-admin "$user"
echo "run: $user may use GPU Deck (groups gpudeck, gpudeck-admin); opening the app"
# sg: the new groups count now, without logging in again.
if [ "$(id -u)" = 0 ]; then
  exec runuser -u "$user" -- sg gpudeck -c "/usr/bin/gpudeck-app $*"
else
  exec sg gpudeck -c "/usr/bin/gpudeck-app $*"
fi
