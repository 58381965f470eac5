#!/usr/bin/env bash
# A throwaway PostgreSQL server for squall's tests, CI and local runs: Debian's
# PostgreSQL (15 on the machine image; any version >= 13 works) in a cluster of its own
# under target/, listening on 127.0.0.1 only, trusting local connections.
#
#   scripts/postgres-up.sh [start]   init (first time), start, print POSTGRES_URL=...
#   scripts/postgres-up.sh stop      stop the server this script started
#   scripts/postgres-up.sh status    exit 0 if it is running
#   scripts/postgres-up.sh url       print the URL of a new empty database (createdb)
#
# Environment: SQUALL_PG_PORT (15432), SQUALL_PG_DIR (target/postgres; the cluster is kept
# between starts, `rm -rf` it for a clean one), SQUALL_PG_BIN (the directory of initdb and
# pg_ctl; default: the newest /usr/lib/postgresql/*/bin).
#
# As root (CI), the server runs as the `postgres` user that Debian's package creates;
# otherwise as the caller. The database user is `squall`, without a password, from
# 127.0.0.1 only.
set -euo pipefail

PORT=${SQUALL_PG_PORT:-15432}
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${SQUALL_PG_DIR:-$REPO/target/postgres}
DATA=$DIR/data
LOG=$DIR/postgres.log

find_bin() {
  if [ -n "${SQUALL_PG_BIN:-}" ]; then
    echo "$SQUALL_PG_BIN"
    return
  fi
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$newest" ] || [ ! -x "$newest/initdb" ]; then
    echo "no PostgreSQL server found under /usr/lib/postgresql; install Debian's postgresql package or set SQUALL_PG_BIN" >&2
    exit 1
  fi
  echo "$newest"
}

BIN=$(find_bin)

# Runs a command as the server's owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

running() {
  [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

url() {
  echo "postgres://squall@127.0.0.1:$PORT/$1"
}

init() {
  if [ -f "$DATA/PG_VERSION" ]; then
    return
  fi
  mkdir -p "$DIR"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "no postgres user: install Debian's postgresql package" >&2; exit 1; }
    chown postgres "$DIR"
    # The owner must reach the directory: every parent needs search permission.
    local d=$DIR
    while [ "$d" != "/" ]; do
      chmod o+x "$d" 2>/dev/null || true
      d=$(dirname "$d")
    done
  fi
  as_owner "$BIN/initdb" -D "$DATA" -U squall --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
  # Throwaway: no durability to pay for in tests; enough connections for several processes.
  cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
EOF
}

start() {
  init
  if running && listening; then
    echo "POSTGRES_URL=$(url squall)"
    return
  fi
  if listening; then
    echo "port $PORT is taken by another process; set SQUALL_PG_PORT" >&2
    exit 1
  fi
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null \
    || { echo "PostgreSQL did not start; its log:" >&2; cat "$LOG" >&2; exit 1; }
  # The database named after the user, for psql and the README's commands.
  "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U squall -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'squall'" | grep -q 1 \
    || "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U squall squall
  echo "POSTGRES_URL=$(url squall)"
}

stop() {
  if running; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  fi
}

newdb() {
  start >/dev/null
  local name=squall_$(date +%s%N)_$$
  "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U squall "$name"
  url "$name"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  url) newdb ;;
  *) echo "usage: $0 [start|stop|status|url]" >&2; exit 2 ;;
esac
