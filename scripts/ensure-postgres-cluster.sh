#!/usr/bin/env bash
# Make a private PostgreSQL cluster answer on 127.0.0.1:PORT and print its admin URL.
#
# usage: scripts/ensure-postgres-cluster.sh DATA_DIR PORT [MAX_CONNECTIONS]
#
# For servers the tests start that need a connection budget of their own (the loopback
# OpenStack keeps seven services' databases in one), so they never compete with the
# suite for the machine's shared server. Reused when it answers; created on first use
# from Debian's postgresql package (installed if missing); trust auth on loopback only.
# MAX_CONNECTIONS (default 300) is set at creation and on every start.
set -euo pipefail
data=${1:?usage: ensure-postgres-cluster.sh DATA_DIR PORT [MAX_CONNECTIONS]}
port=${2:?usage: ensure-postgres-cluster.sh DATA_DIR PORT [MAX_CONNECTIONS]}
max_connections=${3:-300}
log() { echo "ensure-postgres-cluster: $*" >&2; }
answers() { pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; }

if answers; then
  echo "postgresql://postgres@127.0.0.1:$port/postgres"; exit 0
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ]; then
  log "installing Debian's postgresql package"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
runas=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home "$data" postgres
  runas=(runuser -u postgres --)
fi
mkdir -p "$data"
[ "$(id -u)" = 0 ] && chown -R postgres "$data"
chmod 700 "$data"
if [ ! -f "$data/PG_VERSION" ]; then
  log "creating a private cluster in $data"
  "${runas[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust >&2
fi
log "starting the private cluster on 127.0.0.1:$port (max_connections=$max_connections)"
"${runas[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 120 \
  -o "-h 127.0.0.1 -p $port -k $data -c max_connections=$max_connections" start >&2
answers || { log "PostgreSQL does not answer on 127.0.0.1:$port; see $data/server.log"; exit 1; }
echo "postgresql://postgres@127.0.0.1:$port/postgres"
