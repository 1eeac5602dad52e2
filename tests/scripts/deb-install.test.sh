#!/usr/bin/env bash
# The quick start's path, for real: the .deb installed with apt (nothing removed), the service
# started as run.sh starts it where no systemd runs, and a lab member using it as themselves with
# the CLI at /usr/bin, on the default socket. The package is removed again at the end.
set -euo pipefail
deb=$(readlink -f "${1:?usage: deb-install.test.sh PACKAGE.deb}")
[ "$(id -u)" = 0 ] || { echo "deb-install.test.sh: needs root"; exit 1; }
fail=0
ok() { echo "ok - $*"; }
bad() { echo "not ok - $*"; fail=1; }
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-remove "$deb" >/dev/null 2>&1
started=0
if [ ! -d /run/systemd/system ]; then
  sh -c 'umask 077; nohup /usr/bin/gpudeckd >/tmp/gpudeckd-deb-test.log 2>&1 & echo $! >/tmp/gpudeckd-deb-test.pid'
  started=1
fi
for _ in $(seq 1 100); do [ -S /run/gpudeck/gpudeck.sock ] && break; sleep 0.1; done
[ "$(stat -c '%a %U %G' /run/gpudeck/gpudeck.sock)" = "660 root gpudeck" ] && ok "the socket is 0660 root:gpudeck" || bad "socket: $(stat -c '%a %U %G' /run/gpudeck/gpudeck.sock 2>&1)"
[ "$(stat -c '%a' /var/lib/gpudeck)" = 700 ] && ok "/var/lib/gpudeck is 0700" || bad "/var/lib/gpudeck: $(stat -c '%a' /var/lib/gpudeck)"
role=$(runuser -u alice -- /usr/bin/gpudeck whoami --json | sed -n 's/.*"role": "\(.*\)".*/\1/p')
[ "$role" = member ] && ok "alice uses it as herself: $role" || bad "alice: $role"
out=$(runuser -u carol -- /usr/bin/gpudeck rs ls 2>&1 || true)
grep -q "usermod -aG gpudeck" <<<"$out" && ok "carol is told which group to join" || bad "carol: $out"
if [ $started = 1 ]; then
  kill "$(cat /tmp/gpudeckd-deb-test.pid)" 2>/dev/null || true
  for _ in $(seq 1 50); do [ -S /run/gpudeck/gpudeck.sock ] || break; sleep 0.1; done
fi
DEBIAN_FRONTEND=noninteractive apt-get remove -y -q gpu-deck >/dev/null 2>&1
exit $fail
