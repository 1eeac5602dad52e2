#!/bin/sh
# Stops the service before its files go (a remove or an upgrade; the upgrade's postinst starts it).
set -e
if [ -d /run/systemd/system ]; then
  systemctl stop gpudeck.service >/dev/null 2>&1 || true
  [ "$1" = remove ] && systemctl disable gpudeck.service >/dev/null 2>&1 || true
fi
exit 0
