#!/usr/bin/env bash
# A real Kafka-protocol broker for squall's tests, CI and local runs: tansu 0.6.0 (a Kafka
# broker in Rust, from crates.io) with SQLite storage, on 127.0.0.1 only.
#
#   scripts/kafka-up.sh [start]   install once (cached), start, print KAFKA_BROKERS=...
#   scripts/kafka-up.sh install   only install (~15 min on 2 cores the first time)
#   scripts/kafka-up.sh stop      stop the broker this script started
#   scripts/kafka-up.sh status    exit 0 if it is running
#
# Environment: SQUALL_KAFKA_PORT (19092), SQUALL_KAFKA_DIR (target/kafka, wiped on start),
# SQUALL_CACHE (~/.cache/squall; the install root is $SQUALL_CACHE/tansu-0.6.0).
set -euo pipefail

VERSION=0.6.0
CACHE=${SQUALL_CACHE:-$HOME/.cache/squall}
ROOT=$CACHE/tansu-$VERSION
BIN=$ROOT/bin/tansu
PORT=${SQUALL_KAFKA_PORT:-19092}
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${SQUALL_KAFKA_DIR:-$REPO/target/kafka}
PIDFILE=$DIR/tansu.pid

install() {
  if [ -x "$BIN" ]; then
    return
  fi
  echo "installing tansu $VERSION into $ROOT (first time only; ~15 min on 2 cores)" >&2
  mkdir -p "$ROOT"
  cargo install tansu --version "$VERSION" --locked --no-default-features --features libsql \
    --root "$ROOT" >&2
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start() {
  install
  if running && listening; then
    echo "KAFKA_BROKERS=127.0.0.1:$PORT"
    return
  fi
  if listening; then
    echo "port $PORT is taken by another process; set SQUALL_KAFKA_PORT" >&2
    exit 1
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  # tansu reads ./.env and resolves the database path from its working directory.
  (
    cd "$DIR"
    nohup "$BIN" broker \
      --storage-engine sqlite://tansu.db \
      --listener-url "tcp://127.0.0.1:$PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$PORT" \
      > tansu.log 2>&1 &
    echo $! > "$PIDFILE"
  )
  for _ in $(seq 1 150); do
    if listening; then
      echo "KAFKA_BROKERS=127.0.0.1:$PORT"
      return
    fi
    if ! running; then
      echo "tansu exited; its log:" >&2
      cat "$DIR/tansu.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "tansu did not listen on 127.0.0.1:$PORT within 30 s; its log:" >&2
  cat "$DIR/tansu.log" >&2
  exit 1
}

stop() {
  if running; then
    kill "$(cat "$PIDFILE")"
    rm -f "$PIDFILE"
  fi
}

case "${1:-start}" in
  start) start ;;
  install) install ;;
  stop) stop ;;
  status) running && listening ;;
  *) echo "usage: $0 [start|install|stop|status]" >&2; exit 2 ;;
esac
