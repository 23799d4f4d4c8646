#!/usr/bin/env bash
# Start the local services the tests use, if they are not running (idempotent).
set -uo pipefail
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! mysqladmin -uroot -h127.0.0.1 --connect-timeout=2 ping >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
# The browser tests drive Debian's Chromium; never a downloaded browser.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# The metrics test scrapes through a real Prometheus server: Debian's, never a downloaded one.
# The test starts its own on a loopback port; the package's service must not start (policy-rc.d).
if [ ! -x /usr/bin/prometheus ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  no_start=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    no_start=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  [ -z "$no_start" ] || rm -f /usr/sbin/policy-rc.d
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 \
    && mysqladmin -uroot -h127.0.0.1 --connect-timeout=2 ping >/dev/null 2>&1 \
    && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "services did not start (PostgreSQL, MariaDB, Redis)" >&2
exit 1
