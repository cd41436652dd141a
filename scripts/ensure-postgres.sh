#!/usr/bin/env bash
# Make a PostgreSQL server answer for the test suite and print its admin URL.
#
# 1. The server on 127.0.0.1:5432 when it answers (the machine's own).
# 2. Otherwise the machine's cluster, started if it is installed but down.
# 3. Otherwise Debian's postgresql package is installed and a private cluster is
#    started on loopback under .cache/postgres (port 55432), owned by this run.
# Anything else fails loudly: the PostgreSQL tests never skip.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "ensure-postgres: $*" >&2; }

answers() { pg_isready -q -h 127.0.0.1 -p "$1" 2>/dev/null; }

if command -v pg_isready >/dev/null && answers 5432; then
  echo "postgresql://postgres@127.0.0.1:5432/postgres"; exit 0
fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting the machine's cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>&1 || true
  for _ in $(seq 1 30); do answers 5432 && { echo "postgresql://postgres@127.0.0.1:5432/postgres"; exit 0; }; sleep 1; done
fi

port=55432
data="$here/.cache/postgres"
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ]; then
  log "installing Debian's postgresql package"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
if ! answers "$port"; then
  runas=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home "$data" postgres
    runas=(runuser -u postgres --)
  fi
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown -R postgres "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "creating a private cluster in $data"
    "${runas[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust >&2
  fi
  log "starting the private cluster on 127.0.0.1:$port"
  "${runas[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-h 127.0.0.1 -p $port -k $data" start >&2
fi
answers "$port" || { log "PostgreSQL does not answer on 127.0.0.1:$port"; exit 1; }
echo "postgresql://postgres@127.0.0.1:$port/postgres"
