#!/usr/bin/env bash
# The .deb carries the service: gpudeckd, the CLI and the app in /usr/bin, the systemd unit, and a
# postinst that creates the groups gpudeck and gpudeck-admin and starts the service where systemd
# runs. Checked on the built package, and the postinst run against stand-in groupadd/systemctl.
set -euo pipefail
deb=${1:?usage: deb.test.sh PACKAGE.deb}
fail=0
ok() { echo "ok - $*"; }
bad() { echo "not ok - $*"; fail=1; }
files=$(dpkg-deb -c "$deb")
for f in usr/bin/gpudeckd usr/bin/gpudeck usr/bin/gpudeck-app usr/lib/systemd/system/gpudeck.service; do
  grep -Eq " (\./)?$f$" <<<"$files" && ok "it holds /$f" || bad "it lacks /$f"
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -e "$deb" "$work/control"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards "*usr/lib/systemd/system/gpudeck.service"
grep -q '^ExecStart=/usr/bin/gpudeckd --socket /run/gpudeck/gpudeck.sock --data-dir /var/lib/gpudeck$' \
  "$work/usr/lib/systemd/system/gpudeck.service" && ok "the unit starts gpudeckd on the default socket and data folder" || bad "the unit's ExecStart"
grep -q '^Recommends:.*docker-ce | docker.io' "$work/control/control" && ok "it recommends docker-ce | docker.io" || bad "Recommends"
# The postinst with stand-ins: groups that do not exist yet are made; systemd is told when present.
mkdir -p "$work/bin" "$work/run/systemd/system"
cat >"$work/bin/getent" <<'S'
#!/bin/sh
exit 2
S
cat >"$work/bin/groupadd" <<S
#!/bin/sh
echo "groupadd \$*" >>"$work/log"
S
cat >"$work/bin/systemctl" <<S
#!/bin/sh
echo "systemctl \$*" >>"$work/log"
S
chmod +x "$work/bin/"*
sed "s|/run/systemd/system|$work/run/systemd/system|" "$work/control/postinst" >"$work/postinst"
PATH="$work/bin:$PATH" sh "$work/postinst" configure
grep -q "groupadd --system gpudeck$" "$work/log" && ok "postinst creates the group gpudeck" || bad "no group gpudeck"
grep -q "groupadd --system gpudeck-admin$" "$work/log" && ok "postinst creates the group gpudeck-admin" || bad "no group gpudeck-admin"
grep -q "systemctl enable gpudeck.service" "$work/log" && grep -q "systemctl restart gpudeck.service" "$work/log" \
  && ok "postinst enables and starts the service under systemd" || bad "the service is not started: $(cat "$work/log")"
exit $fail
