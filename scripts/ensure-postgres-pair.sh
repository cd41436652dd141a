#!/usr/bin/env bash
# The management database and its streaming standby, as two private PostgreSQL clusters on
# loopback: "qingdao" (the primary, the management center's site) and "dezhou" (the standby in
# the DR site), streamed with PostgreSQL's own physical replication through a replication slot.
# Never the shared server on 5432: each pair has its own directory and ports.
#
#   scripts/ensure-postgres-pair.sh start [--dir DIR] [--primary-port P] [--standby-port S]
#       makes both answer (creating them on first use) and prints two lines:
#       the primary's admin URL, then the standby's
#   scripts/ensure-postgres-pair.sh stop  [--dir DIR]      stops both (their data stays)
#   scripts/ensure-postgres-pair.sh stop-site NAME [--dir DIR]   stops one site (qingdao|dezhou)
#   scripts/ensure-postgres-pair.sh start-site NAME [--dir DIR]  starts one site again
#
# Defaults: DIR=.cache/pg-pair, primary 55441, standby 55442. The ports a pair was created
# with are kept in DIR/ports. As root, the clusters run as the postgres user.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "ensure-postgres-pair: $*" >&2; }
die() { log "$*"; exit 1; }

command=${1:-start}; shift || true
site=""
case "$command" in start-site|stop-site) site=${1:-}; shift || true ;; esac
dir="$here/.cache/pg-pair"; primary_port=55441; standby_port=55442
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --primary-port) primary_port=$2; shift 2 ;;
    --standby-port) standby_port=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$bindir" ] || die "PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)"
runas=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home "$dir" postgres
  runas=(runuser -u postgres --)
fi
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
if [ -f "$dir/ports" ]; then read -r primary_port standby_port < "$dir/ports"; fi

answers() { "$bindir/pg_isready" -q -h 127.0.0.1 -p "$1" 2>/dev/null; }
running() { "${runas[@]}" "$bindir/pg_ctl" -D "$1" status >/dev/null 2>&1; }
start_cluster() {  # data port
  running "$1" || "${runas[@]}" "$bindir/pg_ctl" -D "$1" -l "$1/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $2 -k $1" start >&2
  for _ in $(seq 1 60); do answers "$2" && return 0; sleep 1; done
  die "PostgreSQL in $1 does not answer on 127.0.0.1:$2"
}
stop_cluster() { running "$1" && "${runas[@]}" "$bindir/pg_ctl" -D "$1" -m fast -w stop >&2 || true; }
url() { echo "postgresql://postgres@127.0.0.1:$1/postgres"; }
data_of() { case "$1" in qingdao) echo "$dir/qingdao" ;; dezhou) echo "$dir/dezhou" ;; *) die "no site $1 (qingdao or dezhou)" ;; esac; }
port_of() { case "$1" in qingdao) echo "$primary_port" ;; dezhou) echo "$standby_port" ;; esac; }

case "$command" in
  stop) stop_cluster "$dir/dezhou"; stop_cluster "$dir/qingdao"; exit 0 ;;
  stop-site) stop_cluster "$(data_of "$site")"; exit 0 ;;
  start-site) start_cluster "$(data_of "$site")" "$(port_of "$site")"; url "$(port_of "$site")"; exit 0 ;;
  start) ;;
  *) die "unknown command $command (start, stop, start-site, stop-site)" ;;
esac

echo "$primary_port $standby_port" > "$dir/ports"
if [ ! -f "$dir/qingdao/PG_VERSION" ]; then
  log "creating the primary (qingdao) in $dir/qingdao"
  "${runas[@]}" "$bindir/initdb" -D "$dir/qingdao" -U postgres --auth=trust >&2
  cat >> "$dir/qingdao/postgresql.conf" <<EOF
# cloudctl management database: streams to the standby in the DR site
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '256MB'
hot_standby = on
wal_log_hints = on
max_connections = 60
shared_buffers = '32MB'
cluster_name = 'qingdao'
EOF
fi
start_cluster "$dir/qingdao" "$primary_port"
if [ ! -f "$dir/dezhou/PG_VERSION" ]; then
  log "seeding the standby (dezhou) in $dir/dezhou from the primary"
  "${runas[@]}" "$bindir/psql" -q -h 127.0.0.1 -p "$primary_port" -U postgres -d postgres -c \
    "SELECT pg_create_physical_replication_slot('dezhou') WHERE NOT EXISTS
       (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'dezhou')" >/dev/null
  "${runas[@]}" "$bindir/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
    -D "$dir/dezhou" -R -X stream -S dezhou --checkpoint=fast >&2
  "${runas[@]}" sed -i "s/^cluster_name = 'qingdao'/cluster_name = 'dezhou'/" "$dir/dezhou/postgresql.conf"
fi
start_cluster "$dir/dezhou" "$standby_port"
url "$primary_port"
url "$standby_port"
