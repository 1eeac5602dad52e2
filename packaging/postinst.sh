#!/bin/sh
# GPU Deck's .deb: the groups whose members may use GPU Deck (gpudeck) and administer it
# (gpudeck-admin), then the service, started now where systemd runs.
set -e
getent group gpudeck >/dev/null || groupadd --system gpudeck
getent group gpudeck-admin >/dev/null || groupadd --system gpudeck-admin
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  systemctl enable gpudeck.service >/dev/null 2>&1 || true
  systemctl restart gpudeck.service || echo "gpu-deck: the service did not start; see: journalctl -u gpudeck" >&2
fi
exit 0
